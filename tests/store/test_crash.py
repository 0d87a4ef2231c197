"""kill -9 at random moments: during ``passwd`` the old or the new passphrase opens the store,
never neither; during history writes no committed message (or its session state) is lost.

Real processes, real SIGKILL (sent to the worker's own PID), bounded in count and time."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enkrypted_shell import errors
from enkrypted_shell._state.store import INSECURE_TEST_KDF, Profile, Vault

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("crash_worker.py")
ROUNDS = 12


def _passphrase(n: int) -> bytes:
    return f"pass-{n}".encode()


def _start(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "shell" / "src"))
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _kill_after_open(proc: subprocess.Popen[str], window: float, rng: random.Random) -> list[str]:
    """Wait until the worker unlocked the store, let it write for a random time, SIGKILL it."""
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    assert first == "open", (first, proc.stderr.read() if proc.stderr else "")
    time.sleep(rng.uniform(0, window))
    os.kill(proc.pid, signal.SIGKILL)  # by PID: only the process this test started
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return [line for line in out.splitlines() if line]


def test_kill_9_during_passwd_leaves_the_old_or_the_new_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with Vault.create(path, _passphrase(0), kdf=INSECURE_TEST_KDF) as vault:
        Profile(vault).add_message("peer-1", "in", 1.0, "kept", "received")
    rng = random.Random(13)
    current, changes = 0, 0
    deadline = time.monotonic() + 60
    for _ in range(ROUNDS):
        if time.monotonic() > deadline:
            break
        lines = _kill_after_open(_start("passwd", str(path), str(current)), 0.3, rng)
        committed = int(lines[-1]) if lines else current
        # the worker may have committed pass-(committed+1) and died before printing it
        candidates = (committed, committed + 1)
        working = []
        for n in candidates:
            try:
                with Vault.open(path, _passphrase(n), upgrade_to=None) as vault:
                    assert [m.text for m in Profile(vault).history("peer-1")] == ["kept"]
                working.append(n)
            except errors.WrongPassphraseError:
                pass
        assert len(working) == 1, f"after kill at change {committed}: {working} open the store"
        for stale in range(max(0, committed - 2), committed):
            with pytest.raises(errors.WrongPassphraseError):
                Vault.open(path, _passphrase(stale), upgrade_to=None)
        changes += working[0] - current
        current = working[0]
    assert changes >= ROUNDS  # the kills really landed during a stream of passwd commits


def test_kill_9_during_history_writes_loses_no_committed_message(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    Vault.create(path, _passphrase(0), kdf=INSECURE_TEST_KDF).close()
    rng = random.Random(7)
    history: list[object] = []
    deadline = time.monotonic() + 60
    for _ in range(ROUNDS):
        if time.monotonic() > deadline:
            break
        before = history
        lines = _kill_after_open(_start("history", str(path)), 0.2, rng)
        with Vault.open(path, _passphrase(0), upgrade_to=None) as vault:
            profile = Profile(vault)
            history = profile.history("peer-1", limit=10_000)
            last = int(lines[-1]) if lines else len(before)
            assert len(history) in (last, last + 1)  # every printed commit, maybe one more
            assert [m.text for m in history] == [f"message {i}" for i in range(1, len(history) + 1)]
            # the session state and the message it produced were committed together
            expected = f"state {len(history)}".encode() if history else None
            assert profile.session("peer-1") == expected
    assert len(history) > ROUNDS


def test_another_process_holding_the_write_lock_then_killed(tmp_path: Path) -> None:
    """Across processes (WAL): readers go on while another process holds a write transaction, a
    writer gives up with StoreBusyError past its wait; kill -9 of the holder rolls its write back
    and frees the lock."""
    from enkrypted_shell._state.store import StoreLimits

    path = tmp_path / "store.sqlite"
    with Vault.create(path, _passphrase(0), kdf=INSECURE_TEST_KDF) as vault:
        vault.put("t", "profile", b"k", b"committed")
    holder = _start("hold", str(path))
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with Vault.open(path, _passphrase(0), upgrade_to=None,
                        limits=StoreLimits(busy_timeout_s=0.3)) as vault:
            assert vault.get("t", "profile", b"k") == b"committed"
            with pytest.raises(errors.StoreBusyError):
                vault.put("t", "profile", b"k2", b"mine")
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(30)
            vault.put("t", "profile", b"k2", b"mine")
            assert vault.get("t", "profile", b"k") == b"committed"  # its write was rolled back
            assert vault.get("t", "profile", b"k2") == b"mine"
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
        holder.communicate(timeout=30)
