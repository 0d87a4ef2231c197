"""Helpers for registry tests: real plugin wheels built with pip + hatchling, registries, servers.

Wheels are built once per session (one ``pip wheel`` call for all projects); each test gets its
own registry directory. Servers run ``enkrypted-registry serve`` in a subprocess on 127.0.0.1:0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
REGISTRY_SRC = ROOT / "registry" / "src"
SHELL_SRC = ROOT / "shell" / "src"  # the registry enforces the shell's contracts

# (project dir name, distribution, version, slot, plugin name, top package)
PLUGINS = [
    ("crypto10", "demo-crypto", "1.0.0", "crypto", "demo-crypto", "demo_crypto"),
    ("crypto11", "demo-crypto", "1.1.0", "crypto", "demo-crypto", "demo_crypto"),
    ("ui10", "demo-ui", "1.0.0", "ui", "demo-ui", "demo_ui"),
]


def pip_env() -> dict[str, str]:
    """Environment for stock pip isolated from the machine's pip.conf (no other index)."""
    env = dict(os.environ)
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PYTHONPATH=os.pathsep.join([str(REGISTRY_SRC), str(SHELL_SRC)]),
    )
    return env


def write_project(base: Path, dist: str, version: str, slot: str, plugin: str, pkg: str) -> Path:
    project = base / f"{pkg}-{version}"
    (project / "src" / pkg).mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"

            [project]
            name = "{dist}"
            version = "{version}"
            requires-python = ">=3.11"

            [project.entry-points."enkrypted.plugins"]
            {plugin} = "{pkg}.plugin"

            [tool.hatch.build.targets.wheel]
            packages = ["src/{pkg}"]
            """
        )
    )
    (project / "src" / pkg / "__init__.py").write_text(f'"""{plugin}"""\n')
    (project / "src" / pkg / "plugin.py").write_text(f"VERSION = {version!r}\n")
    (project / "src" / pkg / "enkrypted-plugin.toml").write_text(
        textwrap.dedent(
            f"""
            [plugin]
            name = "{plugin}"
            slot = "{slot}"
            contract = "1.0"
            shell = ">=0.1,<1"

            [capabilities]
            primitives = ["x25519", "aes-256-gcm"]
            """
        )
    )
    return project


@dataclass(frozen=True)
class Wheels:
    crypto10: Path
    crypto11: Path
    ui10: Path
    dir: Path


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]


def start_process(
    args: list[str], pattern: str, stream: str = "stdout"
) -> tuple[subprocess.Popen[str], str]:
    """Start a server subprocess and wait for the line announcing its port."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if stream == "stdout" else subprocess.PIPE,
        text=True,
        env=pip_env(),
    )
    assert proc.stdout is not None
    lines: list[str] = []
    for _ in range(20):
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(pattern, line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise AssertionError(f"server did not start: {lines}")


def build_demo_wheels(tmp_path_factory: Any) -> Wheels:
    """The demo plugin wheels (built once per session by the ``wheels`` fixtures)."""
    base = tmp_path_factory.mktemp("projects")
    out = tmp_path_factory.mktemp("wheels")
    projects = [write_project(base, *spec[1:]) for spec in PLUGINS]
    # pip refuses two versions of one project in one call: build each in parallel processes.
    procs = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--isolated",
                "--no-index",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(out),
                str(project),
            ],
            env=pip_env(),
        )
        for project in projects
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [0] * len(procs)
    found = {p.name: p for p in out.glob("*.whl")}
    return Wheels(
        crypto10=found["demo_crypto-1.0.0-py3-none-any.whl"],
        crypto11=found["demo_crypto-1.1.0-py3-none-any.whl"],
        ui10=found["demo_ui-1.0.0-py3-none-any.whl"],
        dir=out,
    )
