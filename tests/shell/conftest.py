"""Fixtures for tests that build real wheels and run the shell in throw-away environments."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.environments import Environments
from tools.workspace import DISTS, Env, build_wheels, fresh_copy

CORE = ["enkrypted-shell", "enkrypted-p2p", "enkrypted-p2p-memory", "enkrypted-ui-cli",
        "enkrypted-crypto"]
P2P_CHOICE = '[plugins]\np2p = "p2p-memory"\n'
"""Two p2p plugins are installed (p2p-webrtc, and p2p-memory, which depends on it): the offline
``run`` (ui-cli's scripted conversation) chooses the in-process one, as tools/demo.py does."""


@pytest.fixture(scope="session")
def wheels(dist_wheels: dict[str, Path]) -> dict[str, Path]:
    return {n: dist_wheels[n] for n in [*CORE, "enkrypted-crypto-nacl"]}


@dataclass
class Result:
    code: int
    out: str
    err: str


class Shell:
    """A throw-away environment with the shell installed, and a way to run `enkrypted` in it."""

    def __init__(self, env: Env, home: Path) -> None:
        self.env = env
        self.home = home

    def run(self, *args: str, extra_env: dict[str, str] | None = None) -> Result:
        environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ENKRYPTED_DEV")}
        environ["ENKRYPTED_HOME"] = str(self.home)
        environ["ENKRYPTED_ALLOW_UNSIGNED"] = "1"  # these wheels are installed without a registry
        environ.update(extra_env or {})
        proc = subprocess.run(
            [str(self.env.bin / "enkrypted"), *args],
            capture_output=True, text=True, env=environ, timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def site(self) -> Path:
        return self.env.site_packages


@pytest.fixture
def shell_env(
    tmp_path: Path, wheels: dict[str, Path], environments: Environments
) -> Callable[..., Shell]:
    def make(*names: str) -> Shell:
        env = environments.make(tmp_path / "env", *(wheels[n] for n in (names or CORE)))
        home = tmp_path / "home"
        if "enkrypted-p2p-memory" in (names or CORE):
            home.mkdir(parents=True, exist_ok=True)
            (home / "config.toml").write_text(P2P_CHOICE, "utf-8")
        return Shell(env, home)

    return make


@pytest.fixture
def variant(tmp_path: Path) -> Callable[..., Path]:
    """Build a variant wheel of a distribution with edited files: {relative path: (old, new)}."""
    counter = iter(range(1000))

    def build(dist: str, edits: dict[str, tuple[str, str]]) -> Path:
        src = fresh_copy(DISTS[dist], tmp_path / f"variant-{next(counter)}")
        for rel, (old, new) in edits.items():
            path = src / rel
            text = path.read_text("utf-8")
            assert re.search(re.escape(old), text), f"{old!r} not in {rel}"
            path.write_text(text.replace(old, new, 1), "utf-8")
        return build_wheels([src], tmp_path / f"variant-wheels-{next(counter)}")[0]

    return build
