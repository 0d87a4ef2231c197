"""Fixtures: npm ``peer``, our broker and ``redis-server`` on loopback, stopped by PID."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.p2p.servers import Server, free_port, start_npm_peer, start_our_broker, stop, wait_port


@pytest.fixture
def npm_peer(tmp_path: Path) -> Iterator[Server]:
    server = start_npm_peer(tmp_path)
    yield server
    stop(server.proc)


@pytest.fixture
def our_broker(tmp_path: Path) -> Iterator[Server]:
    server = start_our_broker(tmp_path)
    yield server
    stop(server.proc)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is missing: run make test (tools/setup/system-packages.sh)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield port
    finally:
        stop(proc)
