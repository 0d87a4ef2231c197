"""Version-skew rules across the selected set (DESIGN.md §4), pure over versions.

* shell <-> plugin: the plugin implements the slot contract with the same MAJOR and a MINOR no newer
  than the one the shell speaks, and the shell's version is in the plugin's ``shell`` range;
* plugin <-> plugin: each ``[requires]`` contract range is met by the plugin selected for that slot;
* shared libraries: every ``Requires-Dist`` of a selected plugin is satisfied by what is installed
  (Module Federation's ``requiredVersion`` + ``strictVersion``, always strict here).

:func:`check_skew` is a pure function of the selected plugins' manifests and METADATA, the shell's
version and contracts, the interpreter/platform (environment markers) and the installed versions of
the required libraries.  :class:`SkewVerdicts` remembers which inputs passed, keyed by the content
digests verification computed this start (which pin the manifests and METADATA byte for byte), so a
later start with the same inputs - the installed versions re-read every time - skips re-parsing
PEP 440/508 text (``packaging``'s parsers are most of the shell's import time).  A refusal is never
remembered, and anything unreadable in the file is a miss.
"""

from __future__ import annotations

__all__ = ["SkewVerdicts", "check_skew", "installed_version", "requirement_name"]

import contextlib
import email.parser
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

from .._state.files import read_home_file, write_atomic
from ..errors import HomeError, SkewError
from ..limits import LIMITS
from .discover import Candidate
from .manifest import ContractVersion, specifier

# PEP 508: a requirement starts with its name, ``identifier = letterOrDigit identifier_end*``.
_NAME = re.compile(r"\s*([A-Za-z0-9](?:[-_.]*[A-Za-z0-9])*)")


def requirement_name(line: str) -> str | None:
    """The distribution name a ``Requires-Dist`` line starts with (PEP 508 ``name``), or None.

    Exact for every valid line; a line that is not valid PEP 508 is refused by :func:`check_skew`,
    which the start-up pipeline runs before anything is imported."""
    match = _NAME.match(line)
    return match.group(1) if match else None


def installed_version(name: str) -> str | None:
    """Version of an installed distribution as the import system would see it, or None.

    The same distribution and ``Version`` field as ``importlib.metadata.version``, read from the
    METADATA headers only (its full parse also walks the long description on every start)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    version = email.parser.HeaderParser().parsestr(text, headersonly=True)["Version"] if text else None
    return str(version) if version is not None else dist.version


def check_skew(
    plan: Mapping[str, Candidate],
    *,
    shell_version: str,
    contracts: Mapping[str, str],
    installed: Callable[[str], str | None] = installed_version,
) -> dict[str, str]:
    """Raise one :class:`SkewError` listing every rule the selected set breaks; on success return
    the installed version of every shared library that was checked (name -> version)."""
    problems: list[tuple[str, str]] = []
    checked: dict[str, str] = {}
    for slot, cand in plan.items():
        found = _shell_rules(slot, cand, shell_version, contracts)
        found += _plugin_rules(cand, plan)
        found += _shared_rules(cand, installed, checked)
        problems += [(cand.name, line) for line in found]
    if problems:
        raise SkewError(
            "version skew:\n  - " + "\n  - ".join(line for _, line in problems),
            plugin=problems[0][0],
            fix="install versions that fit (see each line), or pin a working set with a lock",
        )
    return checked


class SkewVerdicts:
    """``HOME/cache/skew-verdicts.json``: inputs that passed :func:`check_skew` (see module doc).

    A verdict applies only to the same shell version and contracts, the same interpreter and
    platform, the same selected plugins with the same *verified* content digests, and the same
    installed version of every library that was checked.  The file is as trusted as the rest of
    the profile home (it can only skip a compatibility check, never an integrity or signature one).
    """

    def __init__(self, home: Path) -> None:
        self.path = home / "cache" / "skew-verdicts.json"

    @staticmethod
    def key(
        plan: Mapping[str, Candidate],
        digests: Mapping[str, str],
        *,
        shell_version: str,
        contracts: Mapping[str, str],
    ) -> str:
        uname = os.uname()
        body = {
            "format": 1,
            "shell": shell_version,
            "contracts": dict(sorted(contracts.items())),
            "python": [sys.version, sys.implementation.name, sys.platform, os.name],
            "platform": [uname.sysname, uname.release, uname.version, uname.machine],
            "plugins": sorted(
                [slot, c.dist_name, c.version, digests[slot]] for slot, c in plan.items()
            ),
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()

    def _entries(self) -> dict[str, object]:
        try:
            doc = json.loads(read_home_file(self.path) or b"{}")
        except (HomeError, ValueError, RecursionError):  # a cache: a damaged one costs a check
            return {}
        entries = doc.get("entries") if isinstance(doc, dict) and doc.get("format") == 1 else None
        return entries if isinstance(entries, dict) else {}

    def passed(self, key: str, installed: Callable[[str], str | None] = installed_version) -> bool:
        """True if these inputs passed before and every checked library is still that version."""
        entry = self._entries().get(key)
        if not isinstance(entry, dict):
            return False
        libraries = entry.get("installed")
        if not isinstance(libraries, dict):
            return False
        return all(
            isinstance(version, str) and installed(name) == version
            for name, version in libraries.items()
        )

    def remember(self, key: str, checked: Mapping[str, str]) -> None:
        """Best effort (a read-only home still starts); written atomically."""
        entries = self._entries()
        entries.pop(key, None)
        entries[key] = {"installed": dict(sorted(checked.items()))}
        while len(entries) > LIMITS.skew_verdicts:
            entries.pop(next(iter(entries)))
        data = json.dumps({"format": 1, "entries": entries}).encode("utf-8")
        with contextlib.suppress(HomeError):  # a read-only or damaged home still starts
            write_atomic(self.path, data)


def _spoken(slot: str, newest: ContractVersion) -> list[ContractVersion]:
    """``newest``, and the newest MINOR of every older MAJOR the shell still publishes for the
    slot (``contracts.PUBLISHED``: p2p keeps 1.0 beside 2.0, so a 1.0 p2p plugin still loads)."""
    from ..contracts import PUBLISHED

    published = PUBLISHED.get(slot, {})
    if str(newest) not in published:  # not this shell's table (a hypothetical shell in a test)
        return [newest]
    older: dict[int, ContractVersion] = {}
    for text in published:
        version = ContractVersion.parse(text)
        if version.major < newest.major and version.minor >= older.get(version.major, version).minor:
            older[version.major] = version
    return [newest, *older.values()]


def _shell_rules(
    slot: str, cand: Candidate, shell_version: str, contracts: Mapping[str, str]
) -> list[str]:
    out: list[str] = []
    need = ContractVersion.parse(contracts[slot])
    have = cand.manifest.contract
    if not any(have.served_by(spoken) for spoken in _spoken(slot, need)):
        if have.major < need.major:
            change = f"a newer {cand.dist_name} built for {slot} contract {need.major}.x"
        else:
            change = f"a newer enkrypted-shell that speaks {slot} contract {have}"
        out.append(
            f"{cand.label} implements {slot} contract {have}, the shell speaks {need} "
            f"(rule: same MAJOR, MINOR <= {need.minor}); install {change}"
        )
    source = f"{cand.label}: manifest"
    if not specifier(cand.manifest.shell, key="plugin.shell", source=source).contains(
        shell_version, prereleases=True
    ):
        out.append(
            f"{cand.label} needs enkrypted-shell {cand.manifest.shell}, installed is {shell_version}; "
            f"install 'enkrypted-shell{cand.manifest.shell}' or another {cand.dist_name}"
        )
    return out


def _plugin_rules(cand: Candidate, plan: Mapping[str, Candidate]) -> list[str]:
    out: list[str] = []
    for other_slot, text in cand.manifest.requires.items():
        spec = specifier(text, key=f"requires.{other_slot}", source=f"{cand.label}: manifest")
        other = plan.get(other_slot)
        if other is None:
            continue
        have = str(other.manifest.contract)
        if not spec.contains(have, prereleases=True):
            out.append(
                f"{cand.label} requires {other_slot} contract {spec}, but {other.label} implements "
                f"{have}; select or install a {other_slot} plugin implementing {spec}"
            )
    return out


def _shared_rules(
    cand: Candidate, installed: Callable[[str], str | None], checked: dict[str, str]
) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    out: list[str] = []
    for line in cand.requires:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            out.append(f"{cand.label} has an unparsable Requires-Dist {line!r}")
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        have = installed(req.name)
        if have is None:
            out.append(f"{cand.label} requires {req}, which is not installed; pip install '{req}'")
            continue
        try:
            ok = req.specifier.contains(Version(have), prereleases=True)
        except InvalidVersion:
            ok = False
        checked[req.name] = have
        if not ok:
            out.append(
                f"{cand.label} requires {req}, installed is {req.name} {have} "
                f"(shared library); pip install '{req}'"
            )
    return out
