"""Real servers on loopback for the signaling tests (helpers; fixtures in conftest.py): npm ``peer``, our broker, ``redis-server``.

Every process is started here and stopped by its own PID (SIGTERM, then SIGKILL after 3 s); every
wait is bounded.  Missing Node packages make the tests FAIL with the fix ("run make test"): the
project's own set-up installs them, so their absence is a broken checkout, not a reason to skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.loopback import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "tools" / "node" / "node_modules"
PEER_CLI = NODE_MODULES / "peer" / "dist" / "bin" / "peerjs.js"
SRC = [ROOT / "shell" / "src", ROOT / "plugins" / "p2p" / "src"]


def require_node_modules() -> Path:
    node = shutil.which("node")
    if node is None or not PEER_CLI.is_file():
        pytest.fail(f"node or {NODE_MODULES} is missing: run make test (it runs npm ci in tools/node)")
    return Path(node)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop exactly this PID: ``sig``, then SIGKILL after 3 s."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(3)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    key: str
    path: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid


def start_npm_peer(tmp: Path, *, key: str = "peerjs", path: str = "/",
                   extra: tuple[str, ...] = ()) -> Server:
    node = require_node_modules()
    port = free_port()
    log = tmp / f"peer-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(node), str(PEER_CLI), "--host", "127.0.0.1", "--port",
                                 str(port), "--key", key, "--path", path, *extra],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, proc)
    except BaseException:
        stop(proc)
        raise
    return Server(proc, port, key, path, log)


def start_our_broker(tmp: Path, *, key: str = "peerjs", path: str = "/",
                     extra: tuple[str, ...] = (), env: dict[str, str] | None = None,
                     port: int | None = None) -> Server:
    """Our broker on ``port`` (a free one by default; a restart passes the old one)."""
    port = free_port() if port is None else port
    log = tmp / f"broker-{port}.log"
    environ = {**os.environ, **(env or {}),
               "PYTHONPATH": os.pathsep.join(str(p) for p in SRC)}
    with log.open("ab") as err:  # a restart on the same port appends
        proc = subprocess.Popen([sys.executable, "-m", "enkrypted_p2p.signaling", "--port",
                                 str(port), "--key", key, "--path", path, *extra],
                                stdout=subprocess.DEVNULL, stderr=err, env=environ)
    try:
        wait_port(port, proc)
    except BaseException:
        stop(proc)
        raise
    return Server(proc, port, key, path, log)
