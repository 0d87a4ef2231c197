"""Workspace helpers shared by the demo, the tests and the benchmarks: build real wheels of the
distributions and make throw-away environments that install them as a user would (not editable).

Third-party libraries are installed into each environment from real wheels in ``wheelhouse/``
(``make`` downloads the pinned ``requirements-dev.txt`` set there once), resolved by pip as a user's
install would be: no ``.pth`` file, nothing shared with the development environment, so the shell's
isolated start and whole-closure lock see an ordinary environment.  No network is used here: wheels
are built with ``--no-build-isolation`` and installed with ``--no-index``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISTS = {
    "enkrypted-shell": ROOT / "shell",
    "enkrypted-p2p": ROOT / "plugins" / "p2p",
    "enkrypted-p2p-memory": ROOT / "plugins" / "p2p_memory",
    "enkrypted-ui-cli": ROOT / "plugins" / "ui_cli",
    "enkrypted-ui-web": ROOT / "plugins" / "ui_web",
    "enkrypted-crypto": ROOT / "plugins" / "cryptography",
    "enkrypted-crypto-nacl": ROOT / "plugins" / "cryptography_nacl",
    "enkrypted-registry": ROOT / "registry",
}
WHEELHOUSE = ROOT / "wheelhouse"


def build_wheels(projects: list[Path], out: Path) -> list[Path]:
    """Build one wheel per project directory into ``out``; returns the wheel paths in order."""
    out.mkdir(parents=True, exist_ok=True)
    built = []
    for project in projects:
        before = set(out.glob("*.whl"))
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--no-index", "-q", "-w", str(out), str(project)],
            check=True, env=_quiet_env(),
        )
        new = sorted(set(out.glob("*.whl")) - before)
        if not new:  # same wheel rebuilt in place
            stem = project.name
            new = sorted(out.glob("*.whl"), key=lambda p: p.stat().st_mtime)[-1:]
            assert new, f"no wheel built for {stem}"
        built.append(new[0])
    return built


def _quiet_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("PYTHONPATH", None)
    return env


class Env:
    """A throw-away virtual environment."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.python = path / "bin" / "python"
        self.bin = path / "bin"

    @property
    def site_packages(self) -> Path:
        out = subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        )
        return Path(out.stdout.strip())

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(self.python), *args],
            check=True, capture_output=True, text=True, env=_quiet_env(),
        )

    def install(self, *wheels: Path, no_deps: bool = False) -> None:
        """Install ``wheels`` and (unless ``no_deps``) what they require, from ``wheelhouse/`` and
        the folders of the given wheels only."""
        if not (WHEELHOUSE / ".fetched").exists():
            raise RuntimeError(f"{WHEELHOUSE} is not populated: run `make test` (or `make wheelhouse/.fetched`)")
        links = [str(WHEELHOUSE), *sorted({str(Path(w).parent) for w in wheels})]
        args = ["install", "-q", "--no-index", *(a for link in links for a in ("--find-links", link))]
        if no_deps:
            args.append("--no-deps")
        self.pip(*args, *map(str, wheels))

    def install_requirements(self, *requirements: str) -> None:
        """Third-party requirements (``pynacl``, ``sigstore>=4``) from ``wheelhouse/`` only."""
        self.pip("install", "-q", "--no-index", "--find-links", str(WHEELHOUSE), *requirements)

    def uninstall(self, *names: str) -> None:
        self.pip("uninstall", "-y", *names)


PLUGINS = ("enkrypted-p2p", "enkrypted-p2p-memory", "enkrypted-ui-cli", "enkrypted-ui-web",
           "enkrypted-crypto", "enkrypted-crypto-nacl")


def plugin_libraries() -> tuple[str, ...]:
    """The third-party requirements of the plugin distributions, as their pyprojects declare them:
    what a user installs beside plugins that `enkrypted plugins install` put in without
    dependencies (it installs third-party libraries only with --deps-index)."""
    import tomllib

    found: set[str] = set()
    for name in PLUGINS:
        project = tomllib.loads((DISTS[name] / "pyproject.toml").read_text("utf-8"))["project"]
        found.update(r for r in project.get("dependencies", []) if not r.startswith("enkrypted-"))
    return tuple(sorted(found))


def make_env(path: Path, *, with_pip: bool = False) -> Env:
    """A fresh venv; :meth:`Env.install` puts wheels and their dependencies in it. ``with_pip``:
    pip itself too (from ``wheelhouse/``), for ``enkrypted plugins install`` into it."""
    venv.EnvBuilder(with_pip=False, clear=True, symlinks=True).create(path)
    env = Env(path)
    if with_pip:
        pips = sorted(WHEELHOUSE.glob("pip-*.whl"))
        if not pips:
            raise RuntimeError(f"no pip wheel in {WHEELHOUSE}: run `make test`")
        env.install(pips[-1], no_deps=True)
    return env


def clone_env(template: Env, dest: Path) -> Env:
    """A copy of ``template`` at ``dest``, byte for byte what installing the same wheels at
    ``dest`` gives (bytecode aside: its recorded source path is corrected on import); the tests'
    cheap stand-in for another :func:`make_env` and :meth:`Env.install`.

    A venv is relocatable but for its own path, which ``venv`` writes into ``pyvenv.cfg`` and the
    ``activate`` scripts (with its name as the prompt), and pip into the ``#!`` line of each script
    it generates in ``bin/``: those are rewritten, and each rewritten script's hash and size in
    its distribution's ``RECORD``.  ``enkrypted`` itself is a ``#!/bin/sh`` script, copied as is."""
    if dest.exists():  # as make_env's clear=True
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # cp -a: a third of copytree's time on the ~4,000 files of an environment
    subprocess.run(["cp", "-a", str(template.path), str(dest)], check=True)
    swaps = [(str(template.path).encode(), str(dest).encode()),
             (f"({template.path.name}) ".encode(), f"({dest.name}) ".encode())]
    rewritten: dict[bytes, bytes] = {}
    for path in [dest / "pyvenv.cfg", *(dest / "bin").iterdir()]:
        if path.is_symlink() or not path.is_file():
            continue
        data = original = path.read_bytes()
        for old, new in swaps:
            data = data.replace(old, new)
        if data != original:
            path.write_bytes(data)
            rewritten[f"../../../bin/{path.name}".encode()] = data
    clone = Env(dest)
    for record in clone.site_packages.glob("*.dist-info/RECORD") if rewritten else ():
        lines = record.read_bytes().split(b"\n")
        fixed = [_record_line(line, rewritten) for line in lines]
        if fixed != lines:
            record.write_bytes(b"\n".join(fixed))
    return clone


def _record_line(line: bytes, rewritten: dict[bytes, bytes]) -> bytes:
    """``line`` of a RECORD (its ``\\r`` kept) with the hash and size of ``rewritten[path]``."""
    path = line.rsplit(b",", 2)[0]
    if path not in rewritten:
        return line
    data = rewritten[path]
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    end = b"\r" if line.endswith(b"\r") else b""
    return b"%s,sha256=%s,%d%s" % (path, digest, len(data), end)


def fresh_copy(project: Path, dest: Path) -> Path:
    """Copy a distribution's source tree (to build a variant of it)."""
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns("__pycache__", "build", "dist", "*.egg-info"))
    return dest
