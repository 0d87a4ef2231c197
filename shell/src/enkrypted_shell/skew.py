"""Version-skew rules across the selected set (DESIGN.md §4), pure over versions.

* shell <-> plugin: the plugin implements the slot contract with the same MAJOR and a MINOR at least
  the one the shell speaks, and the shell's version is in the plugin's ``shell`` range;
* plugin <-> plugin: each ``[requires]`` contract range is met by the plugin selected for that slot;
* shared libraries: every ``Requires-Dist`` of a selected plugin is satisfied by what is installed
  (Module Federation's ``requiredVersion`` + ``strictVersion``, always strict here).
"""

from __future__ import annotations

__all__ = ["installed_version", "check_skew"]

from collections.abc import Callable, Mapping
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from .discovery import Candidate
from .errors import SkewError
from .manifest import ContractVersion


def installed_version(name: str) -> str | None:
    """Version of an installed distribution as the import system would see it, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def check_skew(
    plan: Mapping[str, Candidate],
    *,
    shell_version: str,
    contracts: Mapping[str, str],
    installed: Callable[[str], str | None] = installed_version,
) -> None:
    """Raise one :class:`SkewError` listing every rule the selected set breaks."""
    problems: list[tuple[str, str]] = []
    for slot, cand in plan.items():
        found = _shell_rules(slot, cand, shell_version, contracts)
        found += _plugin_rules(cand, plan)
        found += _shared_rules(cand, installed)
        problems += [(cand.name, line) for line in found]
    if problems:
        raise SkewError(
            "version skew:\n  - " + "\n  - ".join(line for _, line in problems),
            plugin=problems[0][0],
            fix="install versions that fit (see each line), or pin a working set with a lock",
        )


def _shell_rules(
    slot: str, cand: Candidate, shell_version: str, contracts: Mapping[str, str]
) -> list[str]:
    out: list[str] = []
    need = ContractVersion.parse(contracts[slot])
    have = cand.manifest.contract
    if not have.satisfies(need):
        change = "an older shell" if have.major > need.major else f"a newer {cand.dist_name}"
        out.append(
            f"{cand.label} implements {slot} contract {have}, the shell speaks {need} "
            f"(rule: same MAJOR, MINOR >= {need.minor}); install {change} "
            f"that matches {slot} contract {need.major}.x"
        )
    if not cand.manifest.shell.contains(shell_version, prereleases=True):
        out.append(
            f"{cand.label} needs enkrypted-shell {cand.manifest.shell}, installed is {shell_version}; "
            f"install 'enkrypted-shell{cand.manifest.shell}' or another {cand.dist_name}"
        )
    return out


def _plugin_rules(cand: Candidate, plan: Mapping[str, Candidate]) -> list[str]:
    out: list[str] = []
    for other_slot, spec in cand.manifest.requires.items():
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


def _shared_rules(cand: Candidate, installed: Callable[[str], str | None]) -> list[str]:
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
        if not ok:
            out.append(
                f"{cand.label} requires {req}, installed is {req.name} {have} "
                f"(shared library); pip install '{req}'"
            )
    return out
