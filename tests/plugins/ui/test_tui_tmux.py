"""Two `enkrypted chat` processes in real terminals (tmux), typed into with send-keys, chatting
through our broker over WebRTC on loopback — asserted from what the screens show (capture-pane).

Each person has their own HOME and encrypted profile; the shell verifies, unlocks the profile,
and hands the ui plugin the identity, its store namespace and the p2p 2.0 chat service. Every
process is stopped by its PID: the broker, the two chat processes and the tmux server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.environments import Environments
from tools.loopback import free_port, wait_port

PASSPHRASE = "correct horse battery staple"


class Tmux:
    """One private tmux server (its own socket), stopped by PID."""

    def __init__(self, socket: Path, environ: dict[str, str]) -> None:
        self.socket, self.environ = socket, environ

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], capture_output=True,
                              text=True, env=self.environ, check=True, timeout=20).stdout

    def screen(self, session: str) -> str:
        return self("capture-pane", "-p", "-t", session)

    def keys(self, session: str, *keys: str) -> None:
        self("send-keys", "-t", session, *keys)

    def wait_for(self, session: str, wanted: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen(session)
            if wanted(shown):
                return shown
            time.sleep(0.3)
        raise AssertionError(f"{session}'s screen never showed it within {timeout} s:\n{shown}")

    def pids(self) -> list[int]:
        out = self("list-panes", "-a", "-F", "#{pane_pid}")
        return [int(p) for p in out.split()]

    def server_pid(self) -> int:
        return int(self("display-message", "-p", "#{pid}").strip())


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def installed(tmp_path: Path, dist_wheels: dict[str, Path], environments: Environments) -> Path:
    core = ["enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto"]
    env = environments.make(tmp_path / "env", *(dist_wheels[n] for n in core))
    return env.bin / "enkrypted"


@pytest.fixture
def broker(installed: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    environ = _environ(tmp_path / "broker-home")
    proc = subprocess.Popen([str(installed), "broker", "--port", str(port)], env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc, 60)  # type: ignore[arg-type]
        yield f"ws://127.0.0.1:{port}/"
    finally:
        _stop(proc.pid)
        proc.wait(10)


def _environ(home: Path) -> dict[str, str]:
    skip = ("PYTHONPATH", "ENKRYPTED_DEV", "ENKRYPTED_PROFILE", "TMUX")
    return {**{k: v for k, v in os.environ.items() if k not in skip},
            "ENKRYPTED_HOME": str(home), "ENKRYPTED_ALLOW_UNSIGNED": "1",
            "ENKRYPTED_PASSPHRASE": PASSPHRASE, "TERM": "xterm-256color", "LANG": "C.UTF-8"}


def _person(enkrypted: Path, home: Path, name: str, broker_url: str) -> dict[str, str]:
    home.mkdir(parents=True)
    (home / "config.toml").write_text(
        "[settings.p2p]\n"
        f'broker_url = "{broker_url}"\n'
        'host_addresses = ["127.0.0.1"]\n'
        'remote_networks = ["127.0.0.0/8"]\n', encoding="utf-8")
    environ = _environ(home)
    subprocess.run([str(enkrypted), "profile", "create", name], env=environ, check=True,
                   capture_output=True, timeout=120)
    return environ


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_two_people_chat_in_real_terminals(installed: Path, broker: str, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: run make test (tools/setup/system-packages.sh)")
    people = {name: _person(installed, tmp_path / name, name, broker) for name in ("alice", "bob")}
    tmux = Tmux(tmp_path / "tmux.sock", people["alice"])
    started: list[int] = []
    try:
        for name, environ in people.items():
            command = [str(installed), "chat", "--profile", name, "--peer-id", name]
            if name == "bob":
                command += ["--connect", "alice"]
                tmux.wait_for("alice", lambda s: "alice" in s and "F2" in s, 90)
            exports = [f"-e{k}={v}" for k, v in environ.items() if k.startswith(("ENKRYPTED_", "TERM", "LANG"))]
            tmux("new-session", "-d", "-s", name, "-x", "100", "-y", "30", *exports, *command)
            started = tmux.pids()
        tmux.wait_for("bob", lambda s: "ready" in s, 120)
        tmux.keys("bob", "hello alice, from a real terminal", "Enter")
        tmux.wait_for("alice", lambda s: "bob" in s, 60)
        tmux.keys("alice", "F7")
        tmux.wait_for("alice", lambda s: "hello alice, from a real terminal" in s, 60)
        tmux.keys("alice", "hi bob", "Enter")
        bob = tmux.wait_for("bob", lambda s: "hi bob" in s, 60)
        tmux.wait_for("bob", lambda s: "✓" in s, 30)
        assert "hello alice, from a real terminal" in bob
        for name in people:
            tmux.keys(name, "C-q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in started):
            time.sleep(0.2)
        assert not any(_alive(p) for p in started), "a chat process did not quit on Ctrl+Q"
    finally:
        for pid in started:
            _stop(pid)
        if tmux.socket.exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                _stop(tmux.server_pid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")
