"""Fixtures for registry tests: wheels built once per session, a registry per test, a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from enkrypted_registry import Repository, publish
from tests.registry.support import (
    PYTHON,
    Server,
    Wheels,
    build_demo_wheels,
    start_process,
)


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    return build_demo_wheels(tmp_path_factory)


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
