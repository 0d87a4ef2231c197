"""The store's commands as a user runs them: ``enkrypted profile|passwd|contacts`` in a subprocess
(the shell's sources, the test-only Argon2 parameters), exit codes from docs/errors.md."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAIN = "import sys; from enkrypted_shell._cli.main import main; sys.argv[0] = 'enkrypted'; main()"
WRONG_PASSPHRASE, STORE_CORRUPT, USAGE = 20, 21, 2


@dataclass
class Result:
    code: int
    out: str
    err: str


class Enkrypted:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ENKRYPTED_")}
        self.env.update(PYTHONPATH=str(ROOT / "shell" / "src"), ENKRYPTED_INSECURE_TEST_KDF="1")

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-c", MAIN, "--home", str(self.home), *args]

    def __call__(self, *args: str, passphrase: str | None = "pw", fds: dict[int, str] | None = None,
                 **env: str) -> Result:
        environ = dict(self.env, **env)
        if passphrase is not None:
            environ["ENKRYPTED_PASSPHRASE"] = passphrase
        pipes = {}
        for fd, text in (fds or {}).items():
            r, w = os.pipe()
            os.write(w, text.encode())
            os.close(w)
            pipes[fd] = r
        try:
            proc = subprocess.run(
                self.argv(*args), capture_output=True, text=True, env=environ, timeout=60,
                pass_fds=tuple(pipes.values()),
                stdin=subprocess.DEVNULL,
            )
        finally:
            for r in pipes.values():
                os.close(r)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def enk(tmp_path: Path) -> Enkrypted:
    return Enkrypted(tmp_path / "home")


def _fd_args(flag: str, secret: str) -> tuple[list[str], dict[int, str]]:
    """``--flag N`` and the pipe to pass as descriptor N (N chosen by the OS in the child)."""
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    return [flag, str(r)], {r: secret + "\n"}


def test_profile_lifecycle_and_contacts(enk: Enkrypted) -> None:
    args, fds = _fd_args("--passphrase-fd", "from a pipe")
    res = enk("profile", "create", "alice", *args, passphrase=None, fds=fds)
    assert res.code == 0, res.err
    assert "weak passphrase hashing" in res.err  # the test-only parameters are never silent
    assert enk("--profile", "bob", "profile", "create", passphrase="bobs").code == 0
    listed = json.loads(enk("--profile", "alice", "profile", "list", "--json").out)
    assert [(p["name"], p["selected"]) for p in listed["profiles"]] == [("alice", True), ("bob", False)]

    a = ("--profile", "alice")
    args, fds = _fd_args("--passphrase-fd", "from a pipe")
    res = enk(*a, "contacts", "add", "peer-b", "--name", "Bob", "--fingerprint", "12:34", *args,
              passphrase=None, fds=fds)
    assert res.code == 0, res.err
    pw = {"passphrase": "from a pipe"}
    assert enk(*a, "contacts", "add", "peer-c", "--name", "Carol", **pw).code == 0
    assert enk(*a, "contacts", "rename", "Bob", "Robert", **pw).code == 0
    bad = enk(*a, "contacts", "verify", "peer-b", "--fingerprint", "99:99", **pw)
    assert bad.code == USAGE and "fingerprint mismatch" in bad.err
    assert enk(*a, "contacts", "verify", "peer-b", "--fingerprint", "12:34", **pw).code == 0
    assert enk(*a, "contacts", "remove", "Carol", **pw).code == 0
    rows = json.loads(enk(*a, "contacts", "list", "--json", **pw).out)["contacts"]
    assert rows == [{"name": "Robert", "peer_id": "peer-b", "fingerprint": "12:34",
                     "verification": "verified"}]
    assert json.loads(enk("--profile", "bob", "contacts", "list", "--json",
                          passphrase="bobs").out) == {"contacts": []}

    res = enk(*a, "passwd", **pw, ENKRYPTED_NEW_PASSPHRASE="changed")
    assert res.code == 0, res.err
    wrong = enk(*a, "contacts", "list", **pw)
    assert wrong.code == WRONG_PASSPHRASE
    assert wrong.err.splitlines()[0].startswith("enkrypted: refused (WrongPassphraseError): wrong passphrase")
    assert "Robert" in enk(*a, "contacts", "list", passphrase="changed").out

    assert enk("profile", "delete", "bob", "--yes").code == 0
    assert [p["name"] for p in json.loads(enk("profile", "list", "--json").out)["profiles"]] == ["alice"]
    missing = enk("--profile", "bob", "contacts", "list")
    assert missing.code == USAGE and "no profile 'bob'" in missing.err


def test_clear_errors(enk: Enkrypted) -> None:
    assert enk("profile", "create", passphrase="").code == USAGE  # no prompt on a closed stdin
    assert enk("--profile", "../x", "profile", "create").code == USAGE
    assert enk("profile", "create").code == 0
    again = enk("profile", "create")
    assert again.code == USAGE and "already exists" in again.err
    store = enk.home / "profiles" / "default" / "store.sqlite"
    store.write_bytes(b"\x00" * 4096)
    foreign = enk("contacts", "list")
    assert foreign.code == STORE_CORRUPT and "not an Enkrypted profile store" in foreign.err
    assert len(foreign.err.strip().splitlines()) == 1
    store.write_bytes(b"SQLite")
    assert enk("contacts", "list").code == STORE_CORRUPT


def test_kill_9_of_the_passwd_command_leaves_old_or_new(enk: Enkrypted) -> None:
    assert enk("profile", "create", passphrase="p0").code == 0
    assert enk("contacts", "add", "peer-1", "--name", "Ann", passphrase="p0").code == 0
    started = time.monotonic()
    assert enk("passwd", passphrase="p0", ENKRYPTED_NEW_PASSPHRASE="p1").code == 0
    duration = time.monotonic() - started
    rng, current, changed = random.Random(5), 1, 0
    for n in range(2, 8):
        env = dict(enk.env, ENKRYPTED_PASSPHRASE=f"p{current}", ENKRYPTED_NEW_PASSPHRASE=f"p{n}")
        proc = subprocess.Popen(enk.argv("passwd"), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 1.1) * duration)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        opens = [p for p in (current, n)
                 if enk("contacts", "list", passphrase=f"p{p}").code == 0]
        assert len(opens) == 1, opens
        changed += opens[0] != current
        current = opens[0]
    assert "Ann" in enk("contacts", "list", passphrase=f"p{current}").out


def _pty_run(enk: Enkrypted, args: tuple[str, ...], answers: list[str]) -> tuple[int, str]:
    """Run the CLI with a new pseudo-terminal as its controlling terminal, answer each hidden
    prompt in turn, return (exit code, everything the terminal showed)."""
    import fcntl
    import pty
    import select
    import termios

    environ = {k: v for k, v in enk.env.items() if k != "ENKRYPTED_PASSPHRASE"}
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        enk.argv(*args), env=environ, stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True,  # setsid, then the terminal becomes the session's
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # noqa: PLW1509
    )
    os.close(slave)
    shown, pending, asked = b"", list(answers), 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            prompts = shown.count(b": ")
            while pending and prompts > asked:
                os.write(master, pending.pop(0).encode() + b"\n")
                asked += 1
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        os.close(master)
    return proc.returncode, shown.decode(errors="replace")


def test_interactive_prompts_on_a_terminal(enk: Enkrypted) -> None:
    code, shown = _pty_run(enk, ("profile", "create"), ["typed secret", "typed secret"])
    assert code == 0, shown
    assert "New passphrase for default" in shown and "Repeat for confirmation" in shown
    assert "typed secret" not in shown  # hidden input: never echoed
    code, shown = _pty_run(enk, ("passwd",), ["typed secret", "second", "second"])
    assert code == 0, shown
    code, shown = _pty_run(enk, ("contacts", "list"), ["typed secret"])
    assert code == WRONG_PASSPHRASE and "wrong passphrase" in shown
    assert enk("contacts", "list", passphrase="second").code == 0
