"""Fixtures for registry tests: wheels built once per session, a registry per test, a server."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from enkrypted_registry import Repository, publish
from tests.registry.support import (
    PLUGINS,
    PYTHON,
    Server,
    Wheels,
    pip_env,
    start_process,
    write_project,
)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
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


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(tmp_path / "registry")


@pytest.fixture
def published(repo: Repository, wheels: Wheels) -> Repository:
    publish(repo, [wheels.crypto10], repo.key("crypto"))
    publish(repo, [wheels.ui10], repo.key("ui"))
    return repo


@pytest.fixture
def server(published: Repository) -> Iterator[Server]:
    proc, url = start_process(
        [PYTHON, "-m", "enkrypted_registry", "serve", str(published.root), "--port", "0"],
        r"^serving (http://127\.0\.0\.1:\d+/)$",
    )
    try:
        yield Server(url=url, process=proc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
