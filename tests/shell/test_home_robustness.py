"""Every path of the profile home through every way it can be unusable (issue 9 item 5).

For each path of ``HOME_LAYOUT`` and HOME itself: missing, the wrong kind (a directory where a
file belongs and the reverse), a FIFO, a dangling symbolic link, unreadable, malformed content.
The real ``enkrypted`` CLI runs ``plugins list``, ``plugins verify`` and ``run`` (with
``--locked`` for the lock) on a copy of a working HOME; each gives its documented exit code and
never a traceback (docs/errors.md).

Unreadable: ``chmod 000`` when not root; as root (CI) ``chmod`` does not deny reads, which this
module checks, and a symbolic link loop (ELOOP, unreadable for root too) stands in for it.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.util import MAGIC_NUMBER
from pathlib import Path

import pytest

from enkrypted_shell._state.home import HOME_LAYOUT
from tests.environments import Environments
from tools.workspace import Env

pytestmark = pytest.mark.e2e

OK, USAGE, LOG_CORRUPT = 0, 2, 18
LIST, VERIFY, RUN = ("plugins", "list"), ("plugins", "verify"), ("run",)
COMMANDS = (LIST, VERIFY, RUN)
IS_ROOT = os.geteuid() == 0
STORE_ENV = {"ENKRYPTED_PASSPHRASE": "pw", "ENKRYPTED_INSECURE_TEST_KDF": "1"}
CORE = ["enkrypted-shell", "enkrypted-p2p", "enkrypted-p2p-memory", "enkrypted-ui-cli",
        "enkrypted-crypto"]
P2P = ("--p2p", "p2p-memory")  # two p2p plugins; the offline run uses the in-process one


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path], environments: Environments
) -> Env:
    return environments.make(tmp_path_factory.mktemp("robust") / "env", *(wheels[n] for n in CORE))


def _enkrypted(
    env: Env, home: Path, args: tuple[str, ...], extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ENKRYPTED_DEV")}
    environ.update(ENKRYPTED_HOME=str(home), ENKRYPTED_ALLOW_UNSIGNED="1", **(extra or {}))
    return subprocess.run(
        [str(env.bin / "enkrypted"), *P2P, *args],
        capture_output=True, text=True, env=environ, timeout=120,
    )


@pytest.fixture(scope="module")
def good_home(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME where every listed path exists and every command passes."""
    home = tmp_path_factory.mktemp("good") / "home"
    home.mkdir()
    (home / "config.toml").write_text('[settings.ui]\n')
    (home / "trust.toml").write_text("version = 1\n")
    for args in (VERIFY, RUN, ("plugins", "lock"), ("run", "--locked")):
        res = _enkrypted(env, home, args)
        assert res.returncode == 0, (args, res.stderr)
    (home / "provenance").mkdir()
    (home / "tuf").mkdir()
    (home / "sigstore-verified.json").write_text('{"format": 1, "verdicts": {}}')
    res = _enkrypted(env, home, ("profile", "create"), STORE_ENV)
    assert res.returncode == 0, res.stderr
    missing = [p.name for p in HOME_LAYOUT if not (home / p.name).exists()]
    assert not missing, f"the good HOME lacks {missing}"
    assert list((home / "bytecode").glob("*/*.code")), "run wrote no code cache entries"
    return home


# --------------------------------------------------------------------------- how a path breaks
def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def missing(path: Path) -> None:
    _remove(path)


def wrong_kind(path: Path) -> None:
    was_dir = path.is_dir()
    _remove(path)
    if was_dir:
        path.write_text("a file where a directory belongs\n")
    else:
        path.mkdir()


def fifo(path: Path) -> None:
    _remove(path)
    os.mkfifo(path)


def dangling_symlink(path: Path) -> None:
    _remove(path)
    path.symlink_to(path.parent / "no-such-target")


def unreadable(path: Path) -> None:
    if not IS_ROOT:
        os.chmod(path, 0)
        return
    # root reads through chmod 000: prove it, then use a symlink loop (ELOOP) instead
    os.chmod(path, 0)
    if path.is_file():
        path.read_bytes()
    else:
        os.listdir(path)
    os.chmod(path, 0o700)
    _remove(path)
    path.symlink_to(path.name)


BREAKS: dict[str, Callable[[Path], None]] = {
    "missing": missing,
    "wrong-kind": wrong_kind,
    "fifo": fifo,
    "dangling-symlink": dangling_symlink,
    "unreadable": unreadable,
}

REFUSED = {LIST: USAGE, VERIFY: USAGE, RUN: USAGE}
PASSES = {LIST: OK, VERIFY: OK, RUN: OK}

# What "missing" means per path: created again, or (the lock under --locked) a usage error.
MISSING = {p.name: PASSES for p in HOME_LAYOUT} | {
    "plugins.lock.toml": {LIST: OK, VERIFY: USAGE, RUN: USAGE},  # run with --locked
}


def _edit_middle_record(path: Path) -> None:
    lines = path.read_bytes().split(b"\n")
    record = json.loads(lines[1])
    record["selected_because"] = "edited"
    lines[1] = json.dumps(record, sort_keys=True).encode()
    path.write_bytes(b"\n".join(lines))


def _write(text: str | bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(text.encode() if isinstance(text, str) else text)

    return write


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def _entry(source: bytes) -> bytes:
    """A code cache entry as the shell writes it: magic, sha256 of the payload, payload."""
    payload = marshal.dumps(compile(source, "forged", "exec"))
    return MAGIC_NUMBER + hashlib.sha256(payload).digest() + payload


def _garbage_pycache(home: Path) -> None:
    entries = list((home / "cache" / "pycache").rglob("*.pyc"))
    assert entries, "the shell wrote no bytecode under HOME/cache/pycache"
    for entry in entries:
        entry.write_bytes(b"\0garbage")


def _each_entry(under: str, change: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(home: Path) -> None:
        entries = [p for p in (home / under).glob("*/*.code")]
        assert entries
        for entry in entries:
            change(entry)

    return apply


# (path, case) -> (change applied to HOME, expected exit code per command)
CONTENT: dict[tuple[str, str], tuple[Callable[[Path], None], dict[tuple[str, ...], int]]] = {
    ("config.toml", "not-toml"): (
        lambda h: _write("[plugins\n")(h / "config.toml"), REFUSED),
    ("config.toml", "not-utf8"): (lambda h: _write(b"\xff\xfe")(h / "config.toml"), REFUSED),
    ("config.toml", "wrong-types"): (
        lambda h: _write("plugins = 3\n")(h / "config.toml"), REFUSED),
    ("trust.toml", "not-toml"): (
        lambda h: _write("version = [\n")(h / "trust.toml"), {LIST: OK, VERIFY: USAGE, RUN: USAGE}),
    ("trust.toml", "wrong-types"): (
        lambda h: _write('version = "one"\n')(h / "trust.toml"),
        {LIST: OK, VERIFY: USAGE, RUN: USAGE}),
    ("plugins.lock.toml", "not-toml"): (
        lambda h: _write("[[plugin\n")(h / "plugins.lock.toml"),
        {LIST: OK, VERIFY: USAGE, RUN: USAGE}),
    ("plugins.lock.toml", "wrong-types"): (
        lambda h: _write("lock-version = []\n")(h / "plugins.lock.toml"),
        {LIST: OK, VERIFY: USAGE, RUN: USAGE}),
    ("load-log.jsonl", "middle-record-edited"): (
        lambda h: _edit_middle_record(h / "load-log.jsonl"),
        {LIST: OK, VERIFY: LOG_CORRUPT, RUN: LOG_CORRUPT}),
    ("load-log.jsonl", "not-json"): (
        lambda h: _write("not a record\n")(h / "load-log.jsonl"),
        {LIST: OK, VERIFY: LOG_CORRUPT, RUN: LOG_CORRUPT}),
    ("load-log.jsonl", "torn-final-record"): (
        lambda h: _append(h / "load-log.jsonl", b'{"seq": 99, "ev'), PASSES),
    ("provenance", "malformed-record"): (
        lambda h: _write("{not json")(h / "provenance" / "enkrypted-p2p.json"), REFUSED),
    ("provenance", "wrong-types-record"): (
        lambda h: _write('{"format": 1, "distribution": 7}')(
            h / "provenance" / "enkrypted-p2p.json"), REFUSED),
    ("provenance", "record-is-a-directory"): (
        lambda h: (h / "provenance" / "enkrypted-p2p.json").mkdir(), REFUSED),
    ("provenance", "record-is-a-fifo"): (
        lambda h: os.mkfifo(h / "provenance" / "enkrypted-p2p.json"), REFUSED),
    ("tuf", "garbage-metadata"): (  # read by install/refresh only (exit 16 there)
        lambda h: (h / "tuf" / "0123456789abcdef").mkdir() or _write("{")(
            h / "tuf" / "0123456789abcdef" / "root.json"), PASSES),
    ("bytecode", "garbage-entries"): (_each_entry("bytecode", _write(b"\0garbage")), PASSES),
    ("bytecode", "entries-cut-off-by-a-crash"): (
        _each_entry("bytecode", lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])),
        PASSES),
    ("bytecode", "entries-with-a-wrong-checksum"): (  # valid code that must not run
        _each_entry("bytecode", _write(
            MAGIC_NUMBER + bytes(32) + marshal.dumps(compile("raise SystemExit(99)", "x", "exec"))
        )),
        PASSES),
    # Documented limit (docs/trust-model.md, "The profile home is trusted"): the checksum is no
    # authenticator - whoever writes HOME/bytecode runs code.  If this ever refuses, update the doc.
    ("bytecode", "forged-entries-run"): (
        _each_entry("bytecode", _write(_entry(b"raise SystemExit(99)"))),
        {LIST: OK, VERIFY: OK, RUN: 99}),
    ("bytecode", "entries-are-directories"): (
        _each_entry("bytecode", lambda p: (p.unlink(), p.mkdir())), PASSES),
    ("bytecode", "entries-are-fifos"): (
        _each_entry("bytecode", lambda p: (p.unlink(), os.mkfifo(p))), PASSES),
    # Bytecode of what the shell imports lives here (sys.pycache_prefix): damaged entries are
    # recompiled; like bytecode/, it is as trusted as HOME (docs/trust-model.md).
    ("cache/pycache", "garbage-entries"): (_garbage_pycache, PASSES),
    ("cache/skew-verdicts.json", "not-json"): (
        lambda h: _write("[")(h / "cache" / "skew-verdicts.json"), PASSES),
    ("cache/skew-verdicts.json", "wrong-types"): (
        lambda h: _write('{"format": 1, "entries": []}')(h / "cache" / "skew-verdicts.json"),
        PASSES),
    # The profile store is opened only by the store commands (tests/store: foreign, truncated,
    # tampered stores are exit 21 there); plugin commands never read it, so they pass.
    ("profiles", "foreign-store"): (
        lambda h: _write(b"\0" * 4096)(h / "profiles" / "default" / "store.sqlite"), PASSES),
    ("profiles", "truncated-store"): (
        lambda h: _write(b"SQLite format 3\0")(h / "profiles" / "default" / "store.sqlite"), PASSES),
    ("sigstore-verified.json", "not-json"): (
        lambda h: _write("{")(h / "sigstore-verified.json"), PASSES),
    ("sigstore-verified.json", "wrong-types"): (
        lambda h: _write('{"format": 1, "verdicts": [1]}')(h / "sigstore-verified.json"), PASSES),
}


def _kind_cases() -> list[tuple[str, str]]:
    cases = [(p.name, case) for p in HOME_LAYOUT for case in BREAKS]
    return cases + [("HOME", case) for case in BREAKS] + [("HOME", "below-a-file")]


def _args(path: str, command: tuple[str, ...]) -> tuple[str, ...]:
    if path == "plugins.lock.toml" and command != LIST:
        return (*command, "--locked")
    return command


def _check_all(
    env: Env, tmp_path: Path, good_home: Path, label: str,
    change: Callable[[Path], Path | None], expected: dict[tuple[str, ...], int], path: str,
) -> None:
    """Run each command on its own copy of the broken HOME, in parallel."""

    def one(command: tuple[str, ...]) -> tuple[tuple[str, ...], int, str]:
        home = tmp_path / f"{'-'.join(command)}" / "home"
        shutil.copytree(good_home, home, symlinks=True)
        moved = change(home)
        home = moved if isinstance(moved, Path) else home
        res = _enkrypted(env, home, _args(path, command))
        return command, res.returncode, res.stderr

    with ThreadPoolExecutor(len(COMMANDS)) as pool:
        results = list(pool.map(one, COMMANDS))
    for command, code, err in results:
        where = f"{label}: enkrypted {' '.join(_args(path, command))}"
        assert "Traceback" not in err, f"{where}\n{err}"
        assert code == expected[command], f"{where}: exit {code}, want {expected[command]}\n{err}"
        refusals = [line for line in err.splitlines() if line.startswith("enkrypted: ")]
        if code in (USAGE, LOG_CORRUPT):
            assert len(refusals) == 1, f"{where}: want one refusal line\n{err}"
            assert path == "HOME" or path.partition("/")[0] in refusals[0], f"{where}\n{err}"
        elif code == OK:
            assert not refusals, f"{where}\n{err}"


@pytest.mark.parametrize(("path", "case"), _kind_cases())
def test_a_home_path_of_the_wrong_kind(
    env: Env, tmp_path: Path, good_home: Path, path: str, case: str
) -> None:
    if path == "HOME":
        expected = PASSES if case == "missing" else REFUSED

        def change(home: Path) -> Path | None:
            if case == "below-a-file":
                return home / "config.toml" / "home"
            BREAKS[case](home)
            return None
    else:
        expected = MISSING[path] if case == "missing" else REFUSED

        def change(home: Path) -> Path | None:
            BREAKS[case](home / path)
            return None

    _check_all(env, tmp_path, good_home, f"{path} {case}", change, expected, path)


@pytest.mark.parametrize(("path", "case"), sorted(CONTENT))
def test_a_home_path_with_bad_content(
    env: Env, tmp_path: Path, good_home: Path, path: str, case: str
) -> None:
    change, expected = CONTENT[(path, case)]
    _check_all(env, tmp_path, good_home, f"{path} {case}", change, expected, path)


def test_every_home_path_is_walked() -> None:
    """A new HOME path must come with its content cases here (kinds are walked for all)."""
    names = {p.name for p in HOME_LAYOUT}
    with_content = {path for path, _ in CONTENT}
    assert with_content <= names
    assert names - with_content == {"cache"}  # a folder whose only content is a listed file


def test_home_given_as_a_file_with_the_option(env: Env, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    for args in (("--home", str(afile), *LIST), ("--home", str(afile), *RUN)):
        res = subprocess.run(
            [str(env.bin / "enkrypted"), *args], capture_output=True, text=True, timeout=120,
            env={k: v for k, v in os.environ.items() if k != "ENKRYPTED_HOME"},
        )
        assert res.returncode == USAGE and "Traceback" not in res.stderr, res.stderr
        assert f"{afile} is a file; a directory belongs there" in res.stderr
