"""The unlocked profile as plugins get it, through the installed ``enkrypted`` (real wheels): with
``--profile`` / ``ENKRYPTED_PROFILE`` the shell unlocks the profile after verification and before
the service hooks, and each slot's ``AppContext`` carries its own store namespace (``slot:p2p``,
``slot:ui``) and the profile's identity made by the loaded crypto plugin (docs/hooks.md, "The
store"; docs/adr/0010-profile-store.md).  The plugins are tests/store/vault_probe (test-only p2p
and ui plugins over the real crypto plugin)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from enkrypted_shell._state.store import Vault, store_path
from tools.workspace import Env, build_wheels, make_env

pytestmark = pytest.mark.e2e

PROBE = Path(__file__).resolve().parents[1] / "store" / "vault_probe"
STORE_ENV = {"ENKRYPTED_PASSPHRASE": "pw", "ENKRYPTED_INSECURE_TEST_KDF": "1"}
WRONG_PASSPHRASE, STORE_BUSY, USAGE = 20, 22, 2
KILL_ROUNDS = 4


@pytest.fixture(scope="module")
def probe_env(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> Env:
    """One environment for the module (the shell, the real crypto plugin, the probe plugins);
    every test gets its own HOME."""
    probe = build_wheels([PROBE], tmp_path_factory.mktemp("probe"))[0]
    env = make_env(tmp_path_factory.mktemp("probe-env") / "env")
    env.install(wheels["enkrypted-shell"], wheels["enkrypted-crypto"], probe)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str


class Shell:
    def __init__(self, env: Env, home: Path) -> None:
        self.env = env
        self.home = home

    def environ(self, extra: dict[str, str]) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items()
                   if k != "PYTHONPATH" and not k.startswith("ENKRYPTED_")}
        environ.update(ENKRYPTED_HOME=str(self.home), ENKRYPTED_ALLOW_UNSIGNED="1", **extra)
        return environ

    def run(self, *args: str, extra_env: dict[str, str] | None = None,
            pass_fds: tuple[int, ...] = ()) -> Result:
        proc = subprocess.run(
            [str(self.env.bin / "enkrypted"), *args], capture_output=True, text=True,
            env=self.environ(extra_env or {}), timeout=120, pass_fds=pass_fds,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def sh(probe_env: Env, tmp_path: Path) -> Shell:
    shell = Shell(probe_env, tmp_path / "home")
    res = shell.run("profile", "create", "alice", extra_env=STORE_ENV)
    assert res.code == 0, res.err
    return shell


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_each_slot_gets_its_own_namespace_and_the_profiles_identity(sh: Shell) -> None:
    ran = sh.run("--profile", "alice", "run", extra_env=STORE_ENV)
    assert ran.code == 0, ran.err
    seen = json.loads(ran.out)
    assert seen["ui"]["namespace"] == "slot:ui" and seen["p2p"]["namespace"] == "slot:p2p"
    shown = json.loads(sh.run("--profile", "alice", "id", "--json", extra_env=STORE_ENV).out)
    for slot in ("ui", "p2p"):
        assert seen[slot]["identity"] and not seen[slot]["identity_in_repr"]  # secret: no repr
        assert seen[slot]["fingerprint"] == shown["fingerprint"]  # the identity `id` shows
    # ENKRYPTED_PROFILE selects it too; without a selection nothing is unlocked (as before)
    by_env = sh.run("run", extra_env={**STORE_ENV, "ENKRYPTED_PROFILE": "alice"})
    assert json.loads(by_env.out) == seen
    bare = json.loads(sh.run("run", extra_env=STORE_ENV).out)
    assert bare["ui"]["namespace"] is None and not bare["ui"]["identity"]
    assert bare["p2p"]["namespace"] is None and not bare["p2p"]["identity"]


def test_a_slot_reads_only_its_own_namespace_and_its_values_survive_a_restart(sh: Shell) -> None:
    alice = ("--profile", "alice")
    info = json.loads(sh.run(*alice, "p2p-vault", "info", extra_env=STORE_ENV).out)
    assert info["namespace"] == "slot:p2p"  # a command gets its own slot's context, not the ui's
    assert sh.run(*alice, "p2p-vault", "put", "notes", "k", "from p2p", extra_env=STORE_ENV).code == 0
    assert sh.run(*alice, "ui-vault", "get", "notes", "k", extra_env=STORE_ENV).code == 3
    assert sh.run(*alice, "ui-vault", "put", "notes", "k", "from ui", extra_env=STORE_ENV).code == 0
    # every command is a new process: what a plugin wrote was committed and is read back
    assert sh.run(*alice, "p2p-vault", "get", "notes", "k", extra_env=STORE_ENV).out == "from p2p\n"
    assert sh.run(*alice, "ui-vault", "get", "notes", "k", extra_env=STORE_ENV).out == "from ui\n"
    with Vault.open(store_path(sh.home, "alice"), b"pw", upgrade_to=None) as vault:
        assert vault.get("notes", "slot:p2p", b"k") == b"from p2p"
        assert vault.get("notes", "slot:ui", b"k") == b"from ui"
        assert vault.get("notes", "slot:crypto", b"k") is None
        assert vault.items("notes", "profile") == []  # the shell's own records: untouched
    off = sh.run("ui-vault", "put", "notes", "k", "no profile", extra_env=STORE_ENV)
    assert off.code == 1 and "context.store is None" in off.err


def test_passphrase_from_a_descriptor_for_a_plugin_command(sh: Shell) -> None:
    r, w = os.pipe()
    os.write(w, b"pw\n")
    os.close(w)
    try:
        res = sh.run("--profile", "alice", "ui-vault", "--passphrase-fd", str(r), "info",
                     extra_env={"ENKRYPTED_INSECURE_TEST_KDF": "1"}, pass_fds=(r,))
    finally:
        os.close(r)
    assert res.code == 0, res.err
    assert json.loads(res.out)["namespace"] == "slot:ui"
    # with no passphrase source and no terminal it refuses rather than read an echoed one
    none = sh.run("--profile", "alice", "ui-vault", "info", extra_env={"ENKRYPTED_INSECURE_TEST_KDF": "1"})
    assert none.code == USAGE and "no passphrase given" in none.err


def _run_on_a_terminal(sh: Shell, args: list[str], answer: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``enkrypted`` with a pseudo-terminal as its controlling terminal, type ``answer`` at the
    passphrase prompt; everything the terminal showed, and the exit code.  Bounded: 60 s."""
    import pty
    import select

    pid, master = pty.fork()
    if pid == 0:  # the child: exec at once, nothing else runs here
        os.execve(str(sh.env.bin / "enkrypted"), ["enkrypted", *args], sh.environ(env))
    shown, answered = b"", False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if not answered and b"Passphrase for" in shown:
                os.write(master, answer.encode() + b"\n")
                answered = True
    finally:
        os.close(master)
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)  # by PID: the child this test forked
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_the_passphrase_prompt_on_a_terminal_is_not_echoed(sh: Shell) -> None:
    secret = "zebra-Quartz-91"
    made = sh.run("profile", "create", "carol", extra_env={**STORE_ENV, "ENKRYPTED_PASSPHRASE": secret})
    assert made.code == 0, made.err
    code, shown = _run_on_a_terminal(sh, ["--profile", "carol", "ui-vault", "info"], secret,
                                     {"ENKRYPTED_INSECURE_TEST_KDF": "1"})
    assert code == 0, shown
    assert "Passphrase for carol" in shown and '"namespace": "slot:ui"' in shown
    assert secret not in shown


def test_wrong_passphrase_or_missing_profile_is_one_line_and_changes_nothing(sh: Shell) -> None:
    folder = store_path(sh.home, "alice").parent
    before = _digest(folder)
    wrong = sh.run("--profile", "alice", "ui-vault", "put", "t", "k", "v",
                   extra_env={**STORE_ENV, "ENKRYPTED_PASSPHRASE": "nope"})
    assert wrong.code == WRONG_PASSPHRASE and "wrong passphrase" in wrong.err
    assert [line for line in wrong.err.splitlines() if line.startswith("enkrypted:")] == [
        "enkrypted: refused (WrongPassphraseError): wrong passphrase for this profile; "
        "nothing was changed"
    ] and "Traceback" not in wrong.err
    assert _digest(folder) == before
    ran = sh.run("--profile", "alice", "run", extra_env={**STORE_ENV, "ENKRYPTED_PASSPHRASE": "x"})
    assert ran.code == WRONG_PASSPHRASE and ran.out == ""  # the ui never ran
    missing = sh.run("--profile", "bob", "run", extra_env=STORE_ENV)
    assert missing.code == USAGE and "no profile 'bob'" in missing.err
    fd_only = sh.run("ui-vault", "--passphrase-fd", "0", "info", extra_env=STORE_ENV)
    assert fd_only.code == USAGE and "no profile selected" in fd_only.err


def test_a_busy_store_is_one_line(sh: Shell) -> None:
    """Another process holds the write lock: the plugin's write waits, then StoreBusyError."""
    with Vault.open(store_path(sh.home, "alice"), b"pw", upgrade_to=None) as vault, \
            vault.transaction():
        vault.put("t", "profile", b"k", b"held")
        busy = sh.run("--profile", "alice", "ui-vault", "put", "t", "k", "v", extra_env=STORE_ENV)
    assert busy.code == STORE_BUSY and "Traceback" not in busy.err
    assert "another process is writing the profile store" in busy.err


def _kill_during_fill(sh: Shell, rng: random.Random) -> list[int]:
    proc = subprocess.Popen(
        [str(sh.env.bin / "enkrypted"), "--profile", "alice", "ui-vault", "fill", "log"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=sh.environ(STORE_ENV),
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first == "open", (first, proc.stderr.read() if proc.stderr else "")
        time.sleep(rng.uniform(0.05, 0.5))
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # by PID: the process this test started (execv'd shell)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return [int(line) for line in out.splitlines()[1:] if line.strip()]


def test_kill_9_during_a_plugin_write_leaves_the_store_consistent(sh: Shell) -> None:
    """Each append and put is one transaction: after SIGKILL every number the plugin printed
    (committed) is there, the log is 1..N with no gap, and "last" is N or N-1 (killed between
    the two transactions), never anything else; the next start continues from N+1."""
    rng = random.Random(7)
    printed: list[int] = []
    deadline = time.monotonic() + 120
    for _ in range(KILL_ROUNDS):
        if time.monotonic() > deadline:
            break
        printed += _kill_during_fill(sh, rng)
        res = sh.run("--profile", "alice", "ui-vault", "check", "log", extra_env=STORE_ENV)
        assert res.code == 0, res.err
        state = json.loads(res.out)
        n = len(state["seqs"])
        assert state["seqs"] == list(range(1, n + 1)) and state["values"] == state["seqs"]
        assert set(printed) <= set(state["values"])
        assert state["last"] in (n, n - 1) or (n == 0 and state["last"] is None)
    assert printed, "the plugin never committed a write before it was killed"
    with Vault.open(store_path(sh.home, "alice"), b"pw", upgrade_to=None) as vault:
        assert len(vault.read_log("slot:ui", b"log", limit=10_000)) >= len(printed)


def test_id_shows_the_invite_link_and_its_terminal_qr_code(sh: Shell) -> None:
    """``enkrypted://peer/<fingerprint>?id=<peer-id>`` (docs/hooks.md, "Invite links"); the QR
    code is segno's, error correction M, drawn with half blocks."""
    import io

    import segno

    alice = ("--profile", "alice")
    bad = sh.run(*alice, "id", "--peer-id", "a/b", extra_env=STORE_ENV)
    assert bad.code == USAGE and "bad peer id" in bad.err
    shown = json.loads(sh.run(*alice, "id", "--json", "--peer-id", "alice-1", extra_env=STORE_ENV).out)
    link = f"enkrypted://peer/{shown['fingerprint']}?id=alice-1"
    assert shown["invite"] == link
    assert json.loads(sh.run(*alice, "id", "--json", extra_env=STORE_ENV).out)["invite"] == (
        f"enkrypted://peer/{shown['fingerprint']}")
    res = sh.run(*alice, "id", "--qr", "--peer-id", "alice-1", extra_env=STORE_ENV)
    assert res.code == 0, res.err
    expected = io.StringIO()
    segno.make(link, error="m", micro=False).terminal(out=expected, compact=True)
    assert res.out.startswith(expected.getvalue().rstrip("\n"))
    assert res.out.rstrip("\n").endswith(link)
    as_json = sh.run(*alice, "id", "--qr", "--json", "--peer-id", "alice-1", extra_env=STORE_ENV)
    assert json.loads(as_json.out)["invite"] == link  # --json: the link, no drawing
