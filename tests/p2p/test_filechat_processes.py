"""Files between two separate processes over real aiortc data channels on loopback, through our
broker (docs/protocol.md "File transfer"; the issue's checks): 0, 1, 8191, 8192, 8193 B and
>= 50 MB on both paths with the SHA-256 verified on the receiving side; the connection killed
mid-way and either process killed mid-way and restarted, each resumed with nothing lost or duplicated; a
text message during a big transfer arrives within a bound; the ``sendfile`` / ``listen
--accept-files`` / ``files`` commands.  Every process is stopped by its PID."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.p2p.servers import ROOT, SRC, Server, stop

pytestmark = pytest.mark.slow

PATHS = [*SRC, ROOT / "plugins" / "cryptography" / "src", ROOT]
MB = 1024 * 1024
TEXT_DELAY_BOUND_S = 2.0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in PATHS)}


def start(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.p2p.filechat_peer", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=ROOT)


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for proc in procs:
            stop(proc)  # type: ignore[arg-type]


def read_event(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no line within {timeout} s (exit {proc.poll()})")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise EOFError(f"process ended ({proc.poll()}): {err[-3000:]}")
    event: dict[str, Any] = json.loads(line)
    return event


def wait_for(proc: subprocess.Popen[str], check: Callable[[dict[str, Any]], bool],
             timeout: float, seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Read lines until one passes ``check`` (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        event = read_event(proc, max(0.1, deadline - time.monotonic()))
        if seen is not None:
            seen.append(event)
        if check(event):
            return event
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing matched within {timeout} s")


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, MB))
            f.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def hash_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MB):
            digest.update(block)
    return digest.hexdigest()


def url(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def receiver(server: Server, state: Path, *extra: str) -> subprocess.Popen[str]:
    proc = start("peer", "--broker", url(server), "--id", "bob", "--state-dir", str(state),
                 "--accept", *extra)
    assert read_event(proc, 60)["event"] == "listening"
    return proc


def sender(server: Server, state: Path, *extra: str) -> subprocess.Popen[str]:
    proc = start("peer", "--broker", url(server), "--id", "alice", "--state-dir", str(state),
                 "--dial", "bob", *extra)
    assert read_event(proc, 60)["event"] == "listening"
    return proc


def check_received(events: list[dict[str, Any]], expected: dict[str, str]) -> None:
    """Every file once, its hash verified by the receiver and again on the exported copy."""
    got = [e for e in events if e["event"] == "file-received"]
    assert sorted(e["sha256"] for e in got) == sorted(expected.values())
    for e in got:
        assert hash_of(Path(e["path"])) == e["sha256"]


def test_small_files_on_both_paths_between_processes(our_broker: Server, tmp_path: Path) -> None:
    sizes = [0, 1, 8191, 8192, 8193]
    expected: dict[str, str] = {}
    args: list[str] = []
    for size in sizes:
        for fast in (False, True):
            path = tmp_path / f"f{size}{'-fast' if fast else ''}.bin"
            expected[path.name] = make_file(path, size)
            args += ["--send-fast" if fast else "--send", str(path)]
    with processes() as procs:
        procs.append(bob := receiver(our_broker, tmp_path / "bob", "--exit-after", "10"))
        procs.append(alice := sender(our_broker, tmp_path / "alice", *args,
                                     "--exit-after", "10"))
        seen: list[dict[str, Any]] = []
        for _ in range(10):
            wait_for(bob, lambda e: e["event"] in ("file-received", "file-failed"), 120, seen)
        check_received(seen, expected)
        assert {e["fast"] for e in seen if e["event"] == "file-received"} == {False, True}
        sent = [wait_for(alice, lambda e: e["event"] == "file-sent", 60) for _ in range(10)]
        assert sorted(e["sha256"] for e in sent) == sorted(expected.values())


@pytest.mark.e2e
@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_a_50_mb_file_and_a_text_message_during_it(our_broker: Server, tmp_path: Path,
                                                   fast: bool) -> None:
    path = tmp_path / "big.bin"
    sha = make_file(path, 50 * MB)
    with processes() as procs:
        procs.append(bob := receiver(our_broker, tmp_path / "bob", "--exit-after", "1"))
        started = time.monotonic()
        procs.append(alice := sender(our_broker, tmp_path / "alice",
                                     "--send-fast" if fast else "--send", str(path),
                                     "--text-at", str(10 * MB), "--exit-after", "1"))
        sent = wait_for(alice, lambda e: e["event"] == "sent", 120)
        seen: list[dict[str, Any]] = []
        message = wait_for(bob, lambda e: e["event"] == "message", 60, seen)
        delay = message["received_at"] - sent["sent_at"]
        wait_for(bob, lambda e: e["event"] in ("file-received", "file-failed"), 300, seen)
        elapsed = time.monotonic() - started
        check_received(seen, {"big": sha})
        print(f"{'fast' if fast else 'standard'}: 50 MB in {elapsed:.1f} s; a text sent at "
              f"{sent['at_bytes'] / MB:.0f} MB arrived after {delay * 1000:.0f} ms")
        assert delay < TEXT_DELAY_BOUND_S
        wait_for(alice, lambda e: e["event"] == "file-sent", 60)


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_the_connection_killed_mid_way_resumes(our_broker: Server, tmp_path: Path,
                                               fast: bool) -> None:
    path = tmp_path / "big.bin"
    sha = make_file(path, 24 * MB)
    with processes() as procs:
        procs.append(bob := receiver(our_broker, tmp_path / "bob", "--exit-after", "1"))
        procs.append(sender(our_broker, tmp_path / "alice", "--send-fast" if fast else "--send",
                            str(path), "--exit-after", "1"))
        seen: list[dict[str, Any]] = []
        at = wait_for(bob, lambda e: e["event"] == "progress" and e["bytes"] >= 4 * MB, 120, seen)
        os.kill(bob.pid, signal.SIGUSR1)
        wait_for(bob, lambda e: e["event"] == "cut", 10, seen)
        done = wait_for(bob, lambda e: e["event"] in ("file-received", "file-failed"), 180, seen)
        assert done["event"] == "file-received", done
        assert at["bytes"] < at["total"]
        assert any(e["event"] == "ready" and e["resumed"] for e in seen), seen[-5:]
        check_received(seen, {"big": sha})


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_the_receiving_process_killed_mid_way_resumes_after_restart(
        our_broker: Server, tmp_path: Path, fast: bool) -> None:
    path = tmp_path / "big.bin"
    sha = make_file(path, 24 * MB)
    state = tmp_path / "bob"
    with processes() as procs:
        procs.append(bob := receiver(our_broker, state))
        procs.append(sender(our_broker, tmp_path / "alice", "--send-fast" if fast else "--send",
                            str(path), "--exit-after", "1"))
        at = wait_for(bob, lambda e: e["event"] == "progress" and e["bytes"] >= 6 * MB, 120)
        bob.kill()
        bob.wait(10)
        assert at["bytes"] < at["total"]
        assert list(state.glob("files/*.part")), "the partial encrypted file is kept"
        procs.append(bob := receiver(our_broker, state, "--dial", "alice", "--exit-after", "1"))
        seen: list[dict[str, Any]] = []
        done = wait_for(bob, lambda e: e["event"] in ("file-received", "file-failed"), 180, seen)
        assert done["event"] == "file-received", done
        first = next(e for e in seen if e["event"] == "progress")
        assert first["bytes"] > 0, "resumed from the verified chunks, not from zero"
        check_received(seen, {"big": sha})
        assert not list(state.glob("files/*.part"))


def test_sendfile_listen_accept_files_and_files_commands(our_broker: Server,
                                                         tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    sha = make_file(path, 200_000)
    home, out = tmp_path / "listener", tmp_path / "inbox"
    with processes() as procs:
        procs.append(listener := start("cmd", "--home", str(home), "listen", "--broker",
                                       url(our_broker), "--loopback", "--accept-files", str(out),
                                       "--count", "1"))
        peer_id = read_event(listener, 60)["peer_id"]
        procs.append(send := start("cmd", "--home", str(tmp_path / "sender"), "sendfile",
                                   "--broker", url(our_broker), "--loopback", "--fast",
                                   peer_id, str(path)))
        stdout, stderr = send.communicate(timeout=120)
        assert send.returncode == 0, (stdout, stderr)
        lines = [json.loads(line) for line in stdout.splitlines()]
        assert [e["event"] for e in lines][:2] == ["ready", "offered"]
        assert lines[1]["protection"].startswith("reduced") and lines[-1]["event"] == "file-sent"
        assert lines[-1]["sha256"] == sha
        got = wait_for(listener, lambda e: e["event"] == "file-received", 60)
        assert got["sha256"] == sha and hash_of(Path(got["path"])) == sha
        assert Path(got["path"]).parent == out and Path(got["path"]).name == "report.pdf"
        listener.wait(30)
    listed = subprocess.run([sys.executable, "-m", "tests.p2p.filechat_peer", "cmd", "--home",
                             str(home), "files", "list"], capture_output=True, text=True,
                            env=_env(), cwd=ROOT, timeout=60, check=True)
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (entry["name"], entry["sha256"], entry["size"]) == ("report.pdf", sha, 200_000)
    exported = subprocess.run([sys.executable, "-m", "tests.p2p.filechat_peer", "cmd", "--home",
                               str(home), "files", "export", entry["id"], str(tmp_path / "x")],
                              capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=60,
                              check=True)
    assert json.loads(exported.stdout)["path"] == str(tmp_path / "x")
    assert hash_of(tmp_path / "x") == sha


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_the_sending_process_killed_mid_way_resumes_after_restart(
        our_broker: Server, tmp_path: Path, fast: bool) -> None:
    path = tmp_path / "big.bin"
    sha = make_file(path, 24 * MB)
    state = tmp_path / "alice"
    with processes() as procs:
        procs.append(bob := receiver(our_broker, tmp_path / "bob", "--exit-after", "1"))
        procs.append(alice := sender(our_broker, state, "--send-fast" if fast else "--send",
                                     str(path)))
        seen: list[dict[str, Any]] = []
        wait_for(bob, lambda e: e["event"] == "progress" and e["bytes"] >= 6 * MB, 120, seen)
        alice.kill()
        alice.wait(10)
        procs.append(alice := sender(our_broker, state, "--exit-after", "1"))
        done = wait_for(bob, lambda e: e["event"] in ("file-received", "file-failed"), 180, seen)
        assert done["event"] == "file-received", done
        check_received(seen, {"big": sha})
        sent = wait_for(alice, lambda e: e["event"] == "file-sent", 60)
        assert sent["sha256"] == sha
