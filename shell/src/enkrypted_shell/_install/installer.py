"""``enkrypted plugins install`` / ``refresh``: plugins from the private registry, verified twice.

All network and file I/O of the install path lives here; the decisions are the pure functions of
:mod:`.provenance` (signature, statement, slot policy) and :mod:`.trust` (``trust.toml``).

Install, for a registry at ``INDEX`` (its base URL; ``INDEX/tuf/`` holds TUF metadata and
``INDEX/plugins/<slot>/<wheel>`` the TUF targets):

1. **TUF refresh** with python-tuf's ngclient from the root pinned for this index in
   ``HOME/tuf/<sha256(INDEX)[:16]>/`` - given with ``--root`` or, on first use, fetched from
   ``INDEX/tuf/1.root.json`` (trust on first use, announced loudly).  Rollback, freeze,
   mix-and-match and bad signatures stop here.
2. **Choose the release** from the verified delegated role of each slot (the index pages are not
   read at all): the highest final version of the project whose wheel *and* ``.provenance`` are
   targets, or exactly ``NAME==VERSION``.  A revoked release is no longer a target, so it does not
   exist for the client.  Each candidate is confirmed with ``Updater.get_targetinfo``.
3. **Download** wheel and provenance with ``Updater.download_target`` (length and sha256 checked
   against the signed target).
4. **Verify the release** (:func:`.provenance.verify_release`) under ``HOME/trust.toml`` - which,
   when absent, is created from the TUF-verified top-level targets metadata (announced loudly) -
   for the slot of the target path, the wheel's filename and sha256: the DSSE provenance, and every
   Sigstore bundle it carries, fully verified offline (a slot listing Sigstore identities requires
   one); then compare every member of the wheel with the signed file list.
5. **pip** installs the verified files, hash-pinned (``--require-hashes --no-index --no-deps``,
   machine pip configuration ignored).  Third-party dependencies are installed only when a
   ``deps_index`` is given (a separate, not hash-pinned pip call); otherwise the shell's start-up
   skew check names what is missing.
6. Only after pip succeeded: a :class:`.provenance_store.StoredProvenance` record per plugin, the
   Sigstore verdicts (:class:`.provenance.SigstoreVerdicts`, so that load time need not import
   sigstore-python) and an ``installed`` record in the load log.

Any failure before step 5 installs nothing.  ``refresh`` re-runs step 1 for every index the stored
records name and marks a record revoked when its target is gone from (or changed in) the signed
metadata; it writes nothing unless every index refreshed cleanly.
"""

from __future__ import annotations

__all__ = [
    "InstalledPlugin",
    "RefreshReport",
    "RevokedRecord",
    "install",
    "metadata_dir",
    "normalize_index_url",
    "refresh",
]

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import tomli_w
from packaging.tags import Tag, sys_tags
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from .._pipeline.integrity import RESERVED_PACKAGES, wheel_layout_problems
from .._pipeline.manifest import MANIFEST_FILENAME
from .._state.files import write_atomic
from .._state.loadlog import LoadLog
from .._state.provenance_store import ProvenanceStore, StoredProvenance
from .._trust.policy import SigstoreIdentity, TrustPolicy
from .._trust.provenance import VerifiedProvenance, VerifiedRelease, verify_release
from .._trust.sigstore import SigstoreVerdicts
from ..contracts import SLOTS
from ..errors import ProvenanceError, ShellError, ShellUsageError
from ..limits import LIMITS
from .tuf_client import Notify, TufClient, connect, locked, metadata_dir, normalize_index_url

_NAME_RE = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?:==([A-Za-z0-9.!+_-]+))?$")


# ------------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class InstalledPlugin:
    """One plugin installed by :func:`install`."""

    distribution: str
    version: str
    slot: str
    plugin: str
    wheel_filename: str
    wheel_sha256: str
    target_path: str
    signer_keyid: str
    record_path: Path
    sigstore: tuple[SigstoreIdentity, ...] = ()  # Sigstore signers whose bundles verified


@dataclass(frozen=True, slots=True)
class RevokedRecord:
    distribution: str
    version: str
    index: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What :func:`refresh` found."""

    indexes: tuple[str, ...]
    checked: int
    newly_revoked: tuple[RevokedRecord, ...]
    already_revoked: tuple[RevokedRecord, ...]


# ------------------------------------------------------------------------------------- helpers
def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quiet(_message: str) -> None:
    return None


def _parse_request(text: str) -> tuple[str, Version | None]:
    match = _NAME_RE.match(text.strip())
    if not match:
        raise ShellUsageError(
            f"{text!r} is not NAME or NAME==VERSION",
            fix="e.g. `enkrypted plugins install enkrypted-crypto==0.1.0 --index URL`",
        )
    name, version = match.group(1), match.group(2)
    try:
        return canonicalize_name(name), Version(version) if version else None
    except InvalidVersion as exc:
        raise ShellUsageError(f"{text!r}: {version!r} is not a PEP 440 version") from exc


# ---------------------------------------------------------------------------------- trust.toml
def _policy(home: Path, client: TufClient, say: Notify) -> TrustPolicy:
    path = home / "trust.toml"
    try:
        return TrustPolicy.from_toml(path.read_text("utf-8"), source=str(path))
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise ShellUsageError(f"cannot read {path}: {exc}") from exc
    policy = TrustPolicy.from_tuf_targets(client.verified_bytes("targets"))
    doc: dict[str, Any] = {
        "version": 1,
        "slots": {
            slot: {"keys": [key.raw.hex() for key in policy.slots[slot].keys]}
            for slot in SLOTS
            if slot in policy.slots
        },
    }
    text = (
        f"# Created by `enkrypted plugins install` from the TUF-verified targets metadata of\n"
        f"# {client.index} on {_now()} (trust on first use of that registry's slot keys).\n"
        "# Edit to narrow or widen who may publish each slot; keys are raw Ed25519 public keys.\n"
        + tomli_w.dumps(doc)
    )
    TrustPolicy.from_toml(text, source=str(path))  # what we write must parse back
    write_atomic(path, text.encode("utf-8"))
    lines = [
        f"!!   [{slot}] " + ", ".join(k.keyid[:16] + "…" for k in policy.slots[slot].keys)
        for slot in SLOTS
        if slot in policy.slots
    ]
    say(
        "!" * 78
        + f"\n!! CREATED {path} from the registry's delegated slot keys (trust on first use):\n"
        + "\n".join(lines)
        + "\n!! Only these keys may publish plugins of each slot. Review the file.\n"
        + "!" * 78
    )
    return policy


# ------------------------------------------------------------------------------ choose a release
@dataclass(frozen=True, slots=True)
class _Candidate:
    slot: str
    path: str
    filename: str
    version: Version


def _catalog(client: TufClient) -> dict[str, list[_Candidate]]:
    """Every wheel target per canonical project name, from the verified slot roles."""
    out: dict[str, list[_Candidate]] = {}
    for slot in SLOTS:
        for path in client.slot_wheels(slot):
            filename = path.rsplit("/", 1)[1]
            try:
                name, version, _build, _tags = parse_wheel_filename(filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            out.setdefault(str(name), []).append(_Candidate(slot, path, filename, version))
    return out


@functools.cache
def _supported_tags() -> frozenset[Tag]:
    """This interpreter's wheel tags (computing them takes ~10 ms; they cannot change in-process)."""
    return frozenset(sys_tags())


def _compatible(filename: str) -> bool:
    tags = parse_wheel_filename(filename)[3]
    supported = _supported_tags()
    return any(tag in supported for tag in tags)


def _choose(
    client: TufClient, catalog: dict[str, list[_Candidate]], name: str, pinned: Version | None
) -> tuple[_Candidate, Any, Any]:
    """The release to install, with the TUF target infos of its wheel and provenance."""
    listed = catalog.get(name, [])
    confirmed: list[tuple[_Candidate, Any, Any]] = []
    for cand in listed:
        wheel = client.targetinfo(cand.path)
        prov = client.targetinfo(f"{cand.path}.provenance")
        if wheel is not None and prov is not None:
            confirmed.append((cand, wheel, prov))
    slots = {c.slot for c, _, _ in confirmed}
    if len(slots) > 1:
        raise ProvenanceError(f"{name} is listed in several slots ({', '.join(sorted(slots))})")
    want = f"{name}=={pinned}" if pinned else name
    if not confirmed:
        raise ProvenanceError(
            f"no signed release of {name} in {client.index}: no wheel with a .provenance is a "
            f"target of the registry's TUF metadata (slots {', '.join(SLOTS)})",
            plugin=name,
            fix="it was never published with `enkrypted-registry publish`, was revoked, or the "
            "index lists an unsigned file; ask the registry operator",
        )
    if pinned is not None:
        matching = [c for c in confirmed if c[0].version == pinned]
        if not matching:
            have = ", ".join(sorted({str(c.version) for c, _, _ in confirmed}, key=Version))
            raise ProvenanceError(
                f"{want} is not a signed target of {client.index} (revoked or never published); "
                f"signed versions: {have}",
                plugin=name,
            )
    else:
        matching = [c for c in confirmed if not c[0].version.is_prerelease]
        if not matching:
            raise ProvenanceError(
                f"{name} has only pre-releases in {client.index}; pin one with NAME==VERSION",
                plugin=name,
            )
    usable = [c for c in matching if _compatible(c[0].filename)]
    if not usable:
        raise ShellUsageError(
            f"no signed wheel of {want} is compatible with this interpreter: "
            + ", ".join(c.filename for c, _, _ in matching)
        )
    return max(usable, key=lambda c: (c[0].version, c[0].filename))


# ------------------------------------------------------------------------------ verify download
@dataclass(frozen=True, slots=True)
class _Verified:
    candidate: _Candidate
    wheel: Path
    sha256: str
    provenance: dict[str, Any]
    release: VerifiedRelease
    requires: tuple[str, ...]

    @property
    def proof(self) -> VerifiedProvenance:
        return self.release.provenance


def _check_members(wheel: Path, proof: VerifiedProvenance) -> tuple[str, ...]:
    """Every member of the wheel is in the signed file list with the same sha256, and vice versa.

    Returns the wheel's ``Requires-Dist`` lines (for the optional dependency step)."""
    signed = dict(proof.files)
    problems = wheel_layout_problems(signed)
    if problems:
        raise ProvenanceError(
            f"{wheel.name}: not a plugin wheel layout: " + "; ".join(problems[:5]),
            plugin=proof.plugin,
            fix="a plugin wheel contains only its package and its .dist-info (docs/hooks.md)",
        )
    try:
        with zipfile.ZipFile(wheel) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            if len(infos) > LIMITS.provenance_files:
                raise ProvenanceError(f"{wheel.name}: more than {LIMITS.provenance_files} members")
            if sum(i.file_size for i in infos) > LIMITS.wheel_uncompressed_bytes:
                raise ProvenanceError(f"{wheel.name}: uncompressed size too large")
            seen: set[str] = set()
            metadata = b""
            for info in infos:
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "RECORD":
                    continue
                digest = hashlib.sha256()
                with archive.open(info) as member:
                    while chunk := member.read(1 << 20):
                        digest.update(chunk)
                if signed.get(info.filename) != digest.hexdigest():
                    raise ProvenanceError(
                        f"{wheel.name}: {info.filename} is not in the signed file list with this "
                        "sha256",
                        plugin=proof.plugin,
                    )
                seen.add(info.filename)
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    metadata = archive.read(info)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ProvenanceError(f"{wheel.name}: not a readable wheel ({exc})") from exc
    missing = sorted(set(signed) - seen)
    if missing:
        raise ProvenanceError(
            f"{wheel.name}: signed files missing from the wheel: {', '.join(missing[:5])}",
            plugin=proof.plugin,
        )
    headers = BytesHeaderParser().parsebytes(metadata)
    return tuple(str(v) for v in headers.get_all("Requires-Dist") or [])


def _fetch_and_verify(
    client: TufClient,
    catalog: dict[str, list[_Candidate]],
    name: str,
    pinned: Version | None,
    policy: TrustPolicy,
    tmp: Path,
) -> _Verified:
    cand, wheel_info, prov_info = _choose(client, catalog, name, pinned)
    folder = tmp / cand.slot
    folder.mkdir(exist_ok=True)
    wheel_path = folder / cand.filename
    wheel_bytes = client.download(wheel_info, wheel_path)
    prov_bytes = client.download(prov_info, folder / f"{cand.filename}.provenance")
    sha256 = hashlib.sha256(wheel_bytes).hexdigest()
    # No verdicts passed in: install always runs the full Sigstore verification.
    release = verify_release(
        prov_bytes,
        policy=policy,
        slot=cand.slot,
        wheel_sha256=sha256,
        wheel_filename=cand.filename,
        offline=True,
    )
    proof = release.provenance
    if canonicalize_name(proof.distribution) != name or Version(proof.version) != cand.version:
        raise ProvenanceError(
            f"provenance of {cand.path} is for {proof.distribution} {proof.version}",
            plugin=proof.plugin,
        )
    requires = _check_members(wheel_path, proof)
    try:
        document = json.loads(prov_bytes)
    except ValueError as exc:  # verify_provenance parsed it already; defensive
        raise ProvenanceError(f"{cand.path}.provenance is not JSON") from exc
    return _Verified(cand, wheel_path, sha256, document, release, requires)


# ----------------------------------------------------------------------------------------- pip
def _pip_base(python: str) -> list[str]:
    """``python -m pip`` of this interpreter aimed at ``python`` (or the target's own pip)."""
    import importlib.util

    # abspath, not realpath: every venv's python is a symlink to the same base interpreter.
    same = os.path.abspath(python) == os.path.abspath(sys.executable)
    if same or importlib.util.find_spec("pip") is None:
        return [python, "-m", "pip"]
    return [sys.executable, "-m", "pip", "--python", python]


def _pip(python: str, args: Sequence[str], what: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    command = [*_pip_base(python), *args]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=LIMITS.pip_timeout_s, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ShellError(f"could not run pip for {python}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n    ".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise ShellError(
            f"pip failed while {what} (exit {proc.returncode}):\n    {tail}",
            fix=f"command: {' '.join(command)}",
        )


def _install_deps(
    python: str,
    deps_index: str,
    verified: list[_Verified],
    registry_projects: set[str],
    tmp: Path,
    say: Notify,
) -> None:
    """Third-party requirements from ``deps_index`` (not hash-pinned: documented).

    Requirements that name a plugin project of the registry (or one being installed) are never
    fetched from there - that is the dependency-confusion hole - they must come from the registry."""
    from packaging.requirements import InvalidRequirement, Requirement  # only with --deps-index

    lines: list[str] = []
    for item in verified:
        for text in item.requires:
            try:
                req = Requirement(text)
            except InvalidRequirement as exc:
                raise ProvenanceError(
                    f"{item.candidate.filename}: bad Requires-Dist {text!r}"
                ) from exc
            if canonicalize_name(req.name) in registry_projects:
                continue
            lines.append(text)
    if not lines:
        return
    requirements = tmp / "deps.txt"
    requirements.write_text("\n".join(sorted(set(lines))) + "\n", "utf-8")
    say(f"resolving third-party dependencies from {deps_index} (not signed by the registry)")
    report = tmp / "deps-report.json"
    _pip(  # what pip would install into the target environment (installed ones are kept)
        python,
        [
            "install",
            "--isolated",
            "--dry-run",
            "--quiet",
            "--report",
            str(report),
            "--only-binary",
            ":all:",
            "--index-url",
            deps_index,
            "--no-cache-dir",
            "-r",
            str(requirements),
        ],
        f"resolving dependencies from {deps_index}",
    )
    wanted = _report_items(report, deps_index)
    if not wanted:
        return
    downloads = tmp / "deps"
    _pip(
        python,
        [
            "download",
            "--isolated",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--index-url",
            deps_index,
            "--no-cache-dir",
            "-d",
            str(downloads),
            *(f"{name}=={version}" for name, version in wanted),
        ],
        f"downloading dependencies from {deps_index}",
    )
    plugin_packages = {
        p.split("/", 1)[0] for item in verified for p, _ in item.proof.files if "/" in p
    } | set(RESERVED_PACKAGES)
    pins = []
    for wheel in sorted(downloads.glob("*")):
        _check_dependency_wheel(wheel, registry_projects, plugin_packages, deps_index)
        pins.append((wheel, _sha256_file(wheel)))
    say(f"installing {len(pins)} third-party wheel(s) resolved from {deps_index}")
    _pip_install_pinned(
        python, pins, tmp / "deps-pinned.txt", f"installing dependencies from {deps_index}"
    )


def _report_items(report: Path, deps_index: str) -> list[tuple[str, str]]:
    """(name, version) of each distribution a ``pip install --dry-run --report`` would install."""
    try:
        doc = json.loads(report.read_bytes())
        items = [
            (str(i["metadata"]["name"]), str(i["metadata"]["version"])) for i in doc["install"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ShellError(f"cannot read pip's resolution report for {deps_index}: {exc}") from exc
    return sorted(items)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_dependency_wheel(
    wheel: Path, registry_projects: set[str], plugin_packages: set[str], deps_index: str
) -> None:
    """A wheel resolved from the (unsigned) dependency index must not be, or pose as, plugin code:
    not a project the registry or this profile knows as a plugin, no ``enkrypted.plugins`` entry
    point, no ``.pth`` file, nothing written into a plugin's or the shell's package."""
    where = f"{wheel.name} (resolved from {deps_index})"
    try:
        name = canonicalize_name(parse_wheel_filename(wheel.name)[0])
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise ProvenanceError(f"{where}: not a wheel") from exc
    if name in registry_projects:
        raise ProvenanceError(
            f"{where}: {name} is a plugin project; it is installed only from the registry, "
            "signed, never from the dependency index (dependency confusion)",
            fix=f"install it with `enkrypted plugins install {name} --index <registry>`",
        )
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [i.filename for i in archive.infolist() if not i.is_dir()]
            entry_points = b"".join(
                archive.read(m) for m in members
                if m.count("/") == 1 and m.endswith(".dist-info/entry_points.txt")
            )
    except (zipfile.BadZipFile, OSError, KeyError, NotImplementedError) as exc:
        raise ProvenanceError(f"{where}: not a readable wheel ({exc})") from exc
    bad = [m for m in members if m.endswith(".pth")]
    bad += [m for m in members if m.split("/", 1)[0] in plugin_packages]
    if b"enkrypted.plugins" in entry_points:
        bad.append("an enkrypted.plugins entry point")
    if bad:
        raise ProvenanceError(
            f"{where}: refused, it would install {', '.join(sorted(bad)[:5])}",
            fix="plugins and their files come only from the registry; fix the dependency index",
        )


_OWNERS_SCRIPT = (
    "import importlib.metadata as m, json, sys\n"
    "json.dump({k: sorted(set(v)) for k, v in m.packages_distributions().items()}, sys.stdout)\n"
)


def _installed_owners(python: str) -> dict[str, list[str]]:
    """Top-level import name -> distributions that install it, in the target environment."""
    try:
        proc = subprocess.run(
            [python, "-I", "-c", _OWNERS_SCRIPT],
            capture_output=True, text=True, timeout=LIMITS.pip_timeout_s, check=False,
        )
        owners = json.loads(proc.stdout) if proc.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ShellError(f"cannot list the packages installed for {python}: {exc}") from exc
    if not isinstance(owners, dict):
        raise ShellError(f"cannot list the packages installed for {python}: {proc.stderr.strip()}")
    return owners


def _owners_here(packages: set[str]) -> dict[str, list[str]]:
    """:func:`_installed_owners` for this interpreter's own environment, cheaply: a package folder
    that does not exist in its install folders has no owner (the common first install); only
    for one that exists are the installed distributions' file lists searched."""
    import importlib.metadata
    import sysconfig

    folders = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    present = {p for p in packages if any(os.path.lexists(os.path.join(f, p)) for f in folders)}
    owners: dict[str, list[str]] = {}
    if present:
        for dist in importlib.metadata.distributions():
            tops = {str(path).split("/", 1)[0] for path in dist.files or ()} & present
            for top in tops:
                owners.setdefault(top, []).append(str(dist.metadata["Name"]))
    return owners


def _check_ownership(python: str, verified: list[_Verified]) -> None:
    """A plugin's package must not already belong to another installed distribution: installing
    it would overwrite that distribution's files (e.g. the shell's, or another slot's plugin)."""
    packages = {
        p.split("/", 1)[0] for item in verified for p, _ in item.proof.files
        if p.endswith("/" + MANIFEST_FILENAME)
    }
    same_env = os.path.abspath(python) == os.path.abspath(sys.executable)
    owners = _owners_here(packages) if same_env else _installed_owners(python)
    for item in verified:
        package = next(p.split("/", 1)[0] for p, _ in item.proof.files if p.endswith("/" + MANIFEST_FILENAME))
        own = canonicalize_name(item.proof.distribution)
        others = sorted(o for o in owners.get(package, []) if canonicalize_name(o) != own)
        if others:
            raise ProvenanceError(
                f"{item.candidate.filename}: its package {package}/ is already installed by "
                f"{', '.join(others)}; installing would overwrite that distribution's files",
                plugin=item.proof.plugin,
                fix=f"uninstall {', '.join(others)} first if replacing it is really intended",
            )


def _pip_install_pinned(
    python: str,
    wheels: Sequence[tuple[Path, str]],
    requirements: Path,
    what: str,
    *,
    reinstall: bool = False,
) -> None:
    """Install exactly these local wheel files, each pinned to its sha256: no index, no
    dependency resolution, no pip or user configuration."""
    requirements.write_text(
        "".join(f"{wheel.resolve().as_uri()} --hash=sha256:{sha}\n" for wheel, sha in wheels),
        "utf-8",
    )
    _pip(
        python,
        [
            "install",
            "--isolated",
            "--no-index",
            "--no-deps",
            "--require-hashes",
            "--only-binary",
            ":all:",
            *(["--force-reinstall"] if reinstall else []),
            "--no-cache-dir",
            "-r",
            str(requirements),
        ],
        what,
    )


def _pip_install_verified(python: str, verified: list[_Verified], tmp: Path) -> None:
    _pip_install_pinned(
        python,
        [(v.wheel, v.sha256) for v in verified],
        tmp / "verified.txt",
        "installing the verified wheels",
        reinstall=True,
    )


# ------------------------------------------------------------------------------------- install
def install(
    names: Sequence[str],
    *,
    index_url: str,
    home: Path,
    root: Path | None = None,
    python: str = sys.executable,
    deps_index: str | None = None,
    notify: Notify | None = None,
) -> list[InstalledPlugin]:
    """Install plugins from the registry at ``index_url`` (see the module docstring).

    Raises :class:`ProvenanceError` for anything TUF or provenance refuses, :class:`ShellUsageError`
    for bad arguments and :class:`ShellError` when the registry cannot be reached or pip fails.
    """
    say = notify or _quiet
    log = LoadLog(home / "load-log.jsonl")
    try:
        return _install(names, index_url, home, root, python, deps_index, say, log)
    except ShellError as exc:
        log.append(
            "install-refused",
            plugin=exc.plugin,
            requested=list(names),
            index=index_url,
            rule=exc.rule,
            reason=exc.message,
        )
        raise


def _install(
    names: Sequence[str],
    index_url: str,
    home: Path,
    root: Path | None,
    python: str,
    deps_index: str | None,
    say: Notify,
    log: LoadLog,
) -> list[InstalledPlugin]:
    if not names:
        raise ShellUsageError("name at least one plugin distribution to install")
    requests = [_parse_request(n) for n in names]
    dupes = sorted({n for n, _ in requests if [m for m, _ in requests].count(n) > 1})
    if dupes:
        raise ShellUsageError(f"requested more than once: {', '.join(dupes)}")
    if os.sep not in python:
        python = shutil.which(python) or python
    if not Path(python).is_file() or not os.access(python, os.X_OK):
        raise ShellUsageError(f"--python {python}: not an executable file")
    if deps_index is not None:
        normalize_index_url(deps_index)  # same URL rules
    index = normalize_index_url(index_url)
    store = ProvenanceStore(home)
    with (
        locked(metadata_dir(home, index).with_suffix(".lock")),
        tempfile.TemporaryDirectory(prefix="enkrypted-install-") as tmpdir,
    ):
        tmp = Path(tmpdir)
        client = connect(index, home, root, tmp / "targets", say, pinned_only=False)
        policy = _policy(home, client, say)
        catalog = _catalog(client)
        verified = [
            _fetch_and_verify(client, catalog, name, pinned, policy, tmp)
            for name, pinned in requests
        ]
        _check_ownership(python, verified)
        if deps_index is not None:
            known = set(catalog) | {n for n, _ in requests} | set(store.names())
            _install_deps(python, deps_index, verified, known, tmp, say)
        _pip_install_verified(python, verified, tmp)
        installed_at = _now()
        verdicts = SigstoreVerdicts(home)
        try:
            verdicts.remember(s for item in verified for s in item.release.sigstore)
        except OSError as exc:  # only costs a full verification at the next load
            say(f"note: could not record Sigstore verdicts in {verdicts.path}: {exc}")
        results = []
        for item in verified:
            proof, cand = item.proof, item.candidate
            record = StoredProvenance(
                distribution=proof.distribution,
                version=proof.version,
                slot=cand.slot,
                wheel_filename=cand.filename,
                wheel_sha256=item.sha256,
                index=index,
                tuf_role=cand.slot,
                target_path=cand.path,
                installed_at=installed_at,
                provenance=item.provenance,
                revoked=None,
            )
            path = store.put(record)
            log.append(
                "installed",
                slot=cand.slot,
                plugin=proof.plugin,
                distribution=proof.distribution,
                version=proof.version,
                wheel_sha256=item.sha256,
                content_digest=proof.content_digest,
                signer=proof.signer_keyid,
                sigstore=[str(s.signer) for s in item.release.sigstore],
                index=index,
                target_path=cand.path,
                python=python,
            )
            results.append(
                InstalledPlugin(
                    proof.distribution,
                    proof.version,
                    cand.slot,
                    proof.plugin,
                    cand.filename,
                    item.sha256,
                    cand.path,
                    proof.signer_keyid,
                    path,
                    tuple(s.signer for s in item.release.sigstore),
                )
            )
        return results


# ------------------------------------------------------------------------------------- refresh
def refresh(home: Path, *, notify: Notify | None = None) -> RefreshReport:
    """Refresh TUF metadata of every index the stored records name; mark records revoked whose
    target (wheel or provenance) is gone from, or changed in, the signed metadata.

    All indexes are refreshed and checked before any record is written: a TUF failure raises
    :class:`ProvenanceError` and changes nothing.
    """
    say = notify or _quiet
    store = ProvenanceStore(home)
    records = store.all()
    by_index: dict[str, list[StoredProvenance]] = {}
    for record in records:
        by_index.setdefault(normalize_index_url(record.index), []).append(record)
    updates: list[StoredProvenance] = []
    already: list[RevokedRecord] = []
    when = _now()
    for index, group in sorted(by_index.items()):
        with (
            locked(metadata_dir(home, index).with_suffix(".lock")),
            tempfile.TemporaryDirectory(prefix="enkrypted-refresh-") as tmpdir,
        ):
            client = connect(index, home, None, Path(tmpdir), say, pinned_only=True)
            for record in group:
                if record.revoked:
                    already.append(
                        RevokedRecord(
                            record.distribution,
                            record.version,
                            index,
                            record.revoked.get("reason", ""),
                        )
                    )
                    continue
                reason = _still_signed(client, record)
                if reason is not None:
                    updates.append(replace(record, revoked={"at": when, "reason": reason}))
    log = LoadLog(home / "load-log.jsonl")
    newly = []
    for record in updates:
        store.put(record)
        assert record.revoked is not None
        log.append(
            "revoked",
            slot=record.slot,
            distribution=record.distribution,
            version=record.version,
            index=record.index,
            target_path=record.target_path,
            reason=record.revoked["reason"],
        )
        newly.append(
            RevokedRecord(
                record.distribution, record.version, record.index, record.revoked["reason"]
            )
        )
    return RefreshReport(tuple(sorted(by_index)), len(records), tuple(newly), tuple(already))


def _still_signed(client: TufClient, record: StoredProvenance) -> str | None:
    """None if the record's wheel and provenance are still the same signed targets, else why not."""
    role = record.tuf_role
    wheel = client.targetinfo(record.target_path)
    prov = client.targetinfo(f"{record.target_path}.provenance")
    if wheel is None:
        return f"target {record.target_path} removed from {role} metadata"
    if prov is None:
        return f"target {record.target_path}.provenance removed from {role} metadata"
    signed = wheel.hashes.get("sha256")
    if signed != record.wheel_sha256:
        return (
            f"target {record.target_path} changed in {role} metadata (sha256 {signed}, "
            f"installed {record.wheel_sha256})"
        )
    return None
