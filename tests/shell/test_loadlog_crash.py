"""The load log survives a crash during append (issue 9 item 5): a torn final record is preserved
aside and noted in the chain; a tampered middle record still refuses every start (exit 18)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enkrypted_shell import errors
from enkrypted_shell._state.loadlog import TORN_EVENT, LoadLog

REPO = Path(__file__).resolve().parents[2]
LOG_CORRUPT = 18


def _log(tmp_path: Path, n: int = 3) -> LoadLog:
    log = LoadLog(tmp_path / "load-log.jsonl")
    for i in range(n):
        log.append("verified", plugin=f"p{i}")
    return log


def _assert_recovered(log: LoadLog, torn: bytes) -> None:
    """The torn bytes are kept aside, byte for byte, and a chained record names them."""
    state = log.read()
    assert state.intact and state.torn == b"", state.problem
    digest = hashlib.sha256(torn).hexdigest()
    notes = [r for r in state.records if r["event"] == TORN_EVENT and r["torn_sha256"] == digest]
    assert len(notes) == 1, [r["event"] for r in state.records]
    note = notes[0]
    assert note["torn_bytes"] == len(torn)
    aside = log.path.with_name(str(note["preserved_as"]))
    assert aside.read_bytes() == torn


@pytest.mark.parametrize(
    "torn",
    [
        pytest.param(b'{"seq": 4, "prev": "ab', id="cut-json"),
        pytest.param(b"\0" * 512, id="nul-filled-after-power-loss"),
        pytest.param(b"   ", id="blanks"),
        pytest.param(b'{"seq": 4, "hash": "\xff', id="cut-inside-utf8"),
    ],
)
def test_a_torn_final_record_is_preserved_and_the_chain_continues(
    tmp_path: Path, torn: bytes
) -> None:
    log = _log(tmp_path)
    with log.path.open("ab") as handle:
        handle.write(torn)
    before = log.read()
    assert before.intact and before.torn == torn  # audit: not a break, a crash to recover
    record = log.append("verified", plugin="next")
    assert record["event"] == "verified" and record["seq"] == 5  # 4 is the note
    _assert_recovered(log, torn)
    assert log.path.read_bytes().endswith(b"\n")


def test_a_complete_record_without_its_newline_is_torn_too(tmp_path: Path) -> None:
    """The write was cut before its last byte: the record never became part of the chain."""
    log = _log(tmp_path)
    data = log.path.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[1]
    log.path.write_bytes(data[: -len(last) - 1])  # drop the last record, then re-add it unterminated
    with log.path.open("ab") as handle:
        handle.write(last)
    log.append("verified", plugin="after")
    _assert_recovered(log, last)


def test_a_crash_during_recovery_is_recovered_again(tmp_path: Path) -> None:
    """Recovery writes its records over the torn bytes, then truncates what is left of them: cut
    between the two, the file ends in the rest of the old torn bytes (no newline), which the next
    append preserves in turn."""
    log = _log(tmp_path)
    torn = b'{"seq": 4, ' + b"x" * 4000
    with log.path.open("ab") as handle:
        handle.write(torn)
    note = log.append("verified", plugin="next")
    written = log.path.read_bytes()
    log.path.write_bytes(written + torn[-1000:])  # as if the truncate had been lost
    log.append("verified", plugin="again")
    _assert_recovered(log, torn[-1000:])
    assert note["seq"] == 5


@pytest.mark.parametrize("how", ["edit", "remove", "swap", "insert-blank"])
def test_a_tampered_middle_record_refuses_the_append(tmp_path: Path, how: str) -> None:
    log = _log(tmp_path, 5)
    lines = log.path.read_bytes().split(b"\n")
    if how == "edit":
        record = json.loads(lines[1])
        record["plugin"] = "evil"
        lines[1] = json.dumps(record, sort_keys=True).encode()
    elif how == "remove":
        del lines[2]
    elif how == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    else:
        lines.insert(2, b"")
    log.path.write_bytes(b"\n".join(lines))
    with pytest.raises(errors.LoadLogCorruptError) as caught:
        log.append("verified", plugin="next")
    assert caught.value.exit_code == LOG_CORRUPT
    assert not log.read().intact


def test_a_log_without_log_digests_is_walked_in_full(tmp_path: Path) -> None:
    """Logs written before ``log_sha256`` still verify (full walk) and continue with it."""
    from enkrypted_shell._state.loadlog import GENESIS, _digest

    path = tmp_path / "load-log.jsonl"
    prev, lines = GENESIS, []
    for seq in (1, 2):
        record: dict[str, object] = {"seq": seq, "time": 1.0, "prev": prev, "event": "verified"}
        record["hash"] = prev = _digest(record)
        lines.append(json.dumps(record, sort_keys=True))
    path.write_text("\n".join(lines) + "\n")
    log = LoadLog(path)
    new = log.append("verified", plugin="p")
    assert new["seq"] == 3 and new["prev"] == prev and "log_sha256" in new
    # ... and an edit of an old, digest-less record is still found after that
    lines[0] = lines[0].replace('"verified"', '"refused"')
    path.write_bytes(("\n".join(lines) + "\n").encode() + path.read_bytes().split(b"\n", 2)[2])
    with pytest.raises(errors.LoadLogCorruptError):
        log.append("verified")


def test_a_forged_last_record_is_the_only_way_past_the_fast_check(tmp_path: Path) -> None:
    """Documented limit: the check at append trusts the last record's digest of the bytes before
    it, so whoever re-signs that record (no secret is involved: anyone who can write HOME can) gets
    an edited middle record past ``run``; ``audit`` (the full walk) still reports it."""
    from enkrypted_shell._state.loadlog import _digest

    log = _log(tmp_path, 4)
    lines = log.path.read_bytes().split(b"\n")
    record = json.loads(lines[1])
    record["plugin"] = "evil"
    lines[1] = json.dumps(record, sort_keys=True).encode()
    last = json.loads(lines[3])
    del last["hash"]
    last["log_sha256"] = hashlib.sha256(b"\n".join(lines[:3]) + b"\n").hexdigest()
    last["hash"] = _digest(last)
    lines[3] = json.dumps(last, sort_keys=True).encode()
    log.path.write_bytes(b"\n".join(lines))
    log.append("verified", plugin="next")  # passes the fast check
    state = log.read()
    assert not state.intact and state.problem is not None and state.problem.startswith("line 2")


# ------------------------------------------------------------------------- a real kill -9
_APPENDER = r"""
import sys
from pathlib import Path
from enkrypted_shell._state.loadlog import LoadLog
log = LoadLog(Path(sys.argv[1]))
blob = "x" * int(sys.argv[2])
log.append("stress-start")
print("ready", flush=True)
while True:
    log.append("stress", blob=blob)
"""


def _kill_during_appends(path: Path, blob: int, *, mid_write: bool = False) -> bytes:
    """Start a process appending big records in a loop and SIGKILL it by its PID after a random
    delay - at once, or (``mid_write``) as soon as the file is seen growing, which lands inside a
    write most of the time.  Returns the bytes after the last newline (empty: the kill fell between
    two writes)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "shell" / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", _APPENDER, str(path), str(blob)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(random.uniform(0.0, 0.2))
        size, until = path.stat().st_size, time.monotonic() + 5
        while mid_write and path.stat().st_size == size and time.monotonic() < until:
            pass  # spin: the kernel grows the file page by page while it copies a write
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    data = path.read_bytes()
    return data[data.rfind(b"\n") + 1 :]


@pytest.mark.slow
def test_kill_9_during_append_then_start_again(tmp_path: Path) -> None:
    """Bounded: at most 40 kills or 60 s, until a kill has landed inside a write and one between
    two writes; odd attempts kill at a random moment, even ones as the file grows.  Every attempt,
    torn or not, must leave a log that the next append (what a start does) continues."""
    deadline, outcomes = time.monotonic() + 60, set()
    for attempt in range(40):
        if outcomes == {"torn", "clean"} or time.monotonic() > deadline:
            break
        path = tmp_path / f"home-{attempt}" / "load-log.jsonl"
        path.parent.mkdir()
        torn = _kill_during_appends(path, 8 * 1024 * 1024, mid_write=attempt % 2 == 0)
        log = LoadLog(path)
        record = log.append("verified", plugin="after-crash")  # the next start's append
        assert record["event"] == "verified"
        if torn:
            outcomes.add("torn")
            _assert_recovered(log, torn)
        else:
            outcomes.add("clean")
            state = log.read()
            assert state.intact and not any(r["event"] == TORN_EVENT for r in state.records)
    assert "torn" in outcomes, "no kill landed inside a write in 40 attempts"


# ------------------------------------------------------------------ the real CLI (e2e)
@pytest.mark.e2e
def test_run_and_verify_recover_a_torn_record_and_refuse_a_tampered_one(shell_env) -> None:
    """kill -9 of a process appending to a real profile's log, then the real CLI starts."""
    sh = shell_env()
    assert sh.run("plugins", "verify").code == 0
    assert sh.run("run").code == 0
    log = sh.home / "load-log.jsonl"
    torn, deadline = b"", time.monotonic() + 60
    for _attempt in range(40):
        torn = _kill_during_appends(log, 4 * 1024 * 1024, mid_write=True)
        if torn or time.monotonic() > deadline:
            break
        res = sh.run("plugins", "verify")  # a kill between two writes: nothing to recover
        assert res.code == 0, res.err
    assert torn, "no kill landed inside a write in 40 attempts"
    audit = sh.run("plugins", "audit", "--json")
    assert audit.code == 0 and json.loads(audit.out)["log"]["torn_bytes"] == len(torn)
    res = sh.run("run")
    assert res.code == 0, res.err
    _assert_recovered(LoadLog(log), torn)
    assert sh.run("plugins", "verify").code == 0
    assert sh.run("plugins", "audit").code == 0

    lines = log.read_bytes().split(b"\n")
    record = json.loads(lines[1])
    record["selected_because"] = "edited"
    lines[1] = json.dumps(record, sort_keys=True).encode()
    log.write_bytes(b"\n".join(lines))
    for args in (("run",), ("plugins", "verify"), ("plugins", "audit")):
        res = sh.run(*args)
        assert res.code == LOG_CORRUPT, (args, res.code, res.err)
        assert "Traceback" not in res.err
    assert "line 2" in sh.run("run").err


def test_an_append_does_not_re_parse_every_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole chain is checked through the last record's digest of the bytes before it: the
    record-by-record walk (215-440 ms for 10,000 records) runs only for an older log or a break."""
    from enkrypted_shell._state import loadlog

    log = _log(tmp_path, 50)

    def walk(_lines: object) -> None:
        raise AssertionError("full walk on an intact log")

    monkeypatch.setattr(loadlog, "verify_chain", walk)
    assert log.append("verified")["seq"] == 51
