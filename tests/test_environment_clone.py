"""The suite's copied environments are what the tests say they are: ``clone_env`` of an installed
environment gives, file for file and byte for byte, what installing the same wheels at the new
path gives (bytecode aside: the source path it records is corrected when it is imported).

The e2e tests install the shell and its plugins once per recipe and copy that environment for
each test (tests/environments.py); if pip ever wrote the environment's path somewhere new, the
copies would silently differ from a user's install, and this test fails instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.environments import Environments
from tools.workspace import Env, clone_env, make_env

pytestmark = pytest.mark.e2e

CORE = ["enkrypted-shell", "enkrypted-p2p", "enkrypted-p2p-memory", "enkrypted-ui-cli",
        "enkrypted-crypto"]


def _files(root: Path) -> dict[str, bytes | str]:
    """Every path under ``root`` but bytecode: a file's bytes, a symbolic link's target."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts:
            continue
        if path.is_symlink():
            found[str(rel)] = f"-> {path.readlink()}"
        elif path.is_file():
            found[str(rel)] = path.read_bytes()
    return found


def test_a_copied_environment_is_a_fresh_install_at_its_path(
    tmp_path: Path, dist_wheels: dict[str, Path], environments: Environments
) -> None:
    wheels = [dist_wheels[n] for n in CORE]
    fresh = make_env(tmp_path / "env", with_pip=True)
    fresh.install(*wheels)
    fresh.path.rename(tmp_path / "fresh")  # bytes stay; the path is free for the copy

    template = environments.make(tmp_path / "template" / "venv", *wheels, with_pip=True)
    copied = clone_env(template, tmp_path / "env")

    want, got = _files(tmp_path / "fresh"), _files(copied.path)
    assert sorted(got) == sorted(want)
    assert [rel for rel in want if got[rel] != want[rel]] == []
    assert str(template.path).encode() not in b"".join(
        v for v in got.values() if isinstance(v, bytes))
    assert isinstance(copied, Env) and copied.site_packages.is_relative_to(copied.path)
