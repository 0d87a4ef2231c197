"""The one module of the install path that runs pip (step 5 of an install).

Verified wheels are installed hash-pinned (``--require-hashes --no-index --no-deps``, the machine's
pip configuration ignored); third-party dependencies only from an explicit ``deps_index``, each
dependency wheel checked against the plugin wheel rules first; nothing may overwrite a package
another distribution owns.
"""

from __future__ import annotations

__all__ = ["check_ownership", "install_dependencies", "install_verified"]

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion

from .._pipeline.integrity import RESERVED_PACKAGES
from .._pipeline.manifest import MANIFEST_FILENAME
from ..errors import ProvenanceError, ShellError
from ..limits import LIMITS
from .tuf_client import Notify
from .wheels import VerifiedDownload, sha256_file


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


def install_dependencies(
    python: str,
    deps_index: str,
    verified: list[VerifiedDownload],
    registry_projects: set[str],
    tmp: Path,
    say: Notify,
) -> None:
    """Third-party requirements from ``deps_index`` (not hash-pinned: documented).

    Requirements that name a plugin project of the registry (or one being installed) are never
    fetched from there - that is the dependency-confusion hole - they must come from the registry.
    Resolve (dry run), download exactly the resolved versions, check each wheel, then install
    those files hash-pinned."""
    lines = _third_party_requirements(verified, registry_projects)
    if not lines:
        return
    requirements = tmp / "deps.txt"
    requirements.write_text("\n".join(lines) + "\n", "utf-8")
    say(f"resolving third-party dependencies from {deps_index} (not signed by the registry)")
    from_index = ["--isolated", "--only-binary", ":all:", "--index-url", deps_index, "--no-cache-dir"]
    report = tmp / "deps-report.json"
    _pip(  # what pip would install into the target environment (installed ones are kept)
        python,
        ["install", *from_index, "--dry-run", "--quiet", "--report", str(report), "-r", str(requirements)],
        f"resolving dependencies from {deps_index}",
    )
    wanted = _report_items(report, deps_index)
    if not wanted:
        return
    downloads = tmp / "deps"
    _pip(
        python,
        ["download", *from_index, "--no-deps", "-d", str(downloads), *(f"{n}=={v}" for n, v in wanted)],
        f"downloading dependencies from {deps_index}",
    )
    plugin_packages = {
        p.split("/", 1)[0] for item in verified for p, _ in item.proof.files if "/" in p
    } | set(RESERVED_PACKAGES)
    pins = []
    for wheel in sorted(downloads.glob("*")):
        _check_dependency_wheel(wheel, registry_projects, plugin_packages, deps_index)
        pins.append((wheel, sha256_file(wheel)))
    say(f"installing {len(pins)} third-party wheel(s) resolved from {deps_index}")
    _pip_install_pinned(
        python, pins, tmp / "deps-pinned.txt", f"installing dependencies from {deps_index}"
    )


def _third_party_requirements(
    verified: list[VerifiedDownload], registry_projects: set[str]
) -> list[str]:
    """The verified wheels' ``Requires-Dist`` lines that do not name a registry project."""
    from packaging.requirements import InvalidRequirement, Requirement  # only with --deps-index

    lines: set[str] = set()
    for item in verified:
        for text in item.requires:
            try:
                req = Requirement(text)
            except InvalidRequirement as exc:
                raise ProvenanceError(
                    f"{item.candidate.filename}: bad Requires-Dist {text!r}"
                ) from exc
            if canonicalize_name(req.name) not in registry_projects:
                lines.add(text)
    return sorted(lines)


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


def check_ownership(python: str, verified: list[VerifiedDownload]) -> None:
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


def install_verified(python: str, verified: list[VerifiedDownload], tmp: Path) -> None:
    _pip_install_pinned(
        python,
        [(v.wheel, v.sha256) for v in verified],
        tmp / "verified.txt",
        "installing the verified wheels",
        reinstall=True,
    )
