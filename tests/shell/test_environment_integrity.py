"""The whole import path is verified (docs/trust-model.md "What a locked start verifies"):
``plugins lock`` pins every library the loaded set runs on, file by file, and ``--locked`` refuses
any drift in them, naming the distribution and the file. Real wheels in throw-away environments.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import tomllib

import pytest

pytestmark = pytest.mark.e2e

LOCK = 12


def _locked(sh):
    res = sh.run("plugins", "lock")
    assert res.code == 0, res.err
    assert "libraries" in res.out
    return tomllib.loads((sh.home / "plugins.lock.toml").read_text("utf-8"))


def test_the_lock_pins_the_shell_and_every_library_under_the_plugins(shell_env):
    sh = shell_env()
    lock = _locked(sh)
    assert lock["lock-version"] == "2.0"
    names = {lib["name"].lower() for lib in lock["libraries"]}
    assert {"enkrypted-shell", "cryptography", "pluggy", "click", "packaging", "cffi"} <= names
    assert not names & {"enkrypted-p2p", "enkrypted-crypto", "enkrypted-ui-cli"}  # pinned as plugins
    crypto = next(lib for lib in lock["libraries"] if lib["name"].lower() == "cryptography")
    assert any(p.endswith(".so") for p in crypto["files"])  # extension modules too
    assert not any("__pycache__" in p for p in crypto["files"])  # bytecode: never read, see below
    assert sh.run("plugins", "verify", "--locked").code == 0
    assert sh.run("run", "--locked").code == 0


@pytest.mark.parametrize(
    ("library", "relative"),
    [
        ("cryptography", "cryptography/hazmat/primitives/ciphers/aead.py"),
        ("pluggy", "pluggy/_manager.py"),
        ("click", "click/core.py"),
        ("enkrypted_shell", "enkrypted_shell/_pipeline/plan.py"),
    ],
)
def test_an_edited_library_file_is_refused_naming_it(shell_env, library, relative):
    sh = shell_env()
    _locked(sh)
    target = sh.site() / relative
    target.write_text(target.read_text("utf-8") + "\n# edited after the lock\n", "utf-8")
    for args in (["plugins", "verify", "--locked"], ["run", "--locked"]):
        res = sh.run(*args)
        assert res.code == LOCK, (args, res.err)
        assert relative in res.err and "drifted from the lock" in res.err
    assert sh.run("plugins", "verify").code == 0  # without --locked the libraries are version-checked only


def test_an_edit_that_also_rewrites_record_is_still_refused(shell_env):
    sh = shell_env()
    _locked(sh)
    relative = "pluggy/_hooks.py"
    target = sh.site() / relative
    data = target.read_bytes() + b"\nEVIL = 1\n"
    target.write_bytes(data)
    record = next(sh.site().glob("pluggy-*.dist-info")) / "RECORD"
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    lines = [
        f"{relative},sha256={digest},{len(data)}" if line.startswith(relative + ",") else line
        for line in record.read_text().splitlines()
    ]
    record.write_text("\n".join(lines) + "\n")
    res = sh.run("run", "--locked")
    assert res.code == LOCK and relative in res.err


def test_a_planted_bytecode_file_never_runs_in_the_shell(shell_env, tmp_path):
    """A .pyc beside a library source, with a header matching that source, is what a normal Python
    loads instead of the source. The shell's process reads bytecode only from HOME/cache/pycache
    (sys.pycache_prefix), so the planted file never runs, locked or not."""
    import importlib._bootstrap_external as bootstrap

    sh = shell_env()
    _locked(sh)
    source = sh.site() / "click" / "__init__.py"
    marker = tmp_path / "planted-pyc-ran"
    stat = source.stat()
    body = source.read_text() + f"\nimport pathlib as _p; _p.Path({str(marker)!r}).write_text('x')\n"
    code = compile(body, str(source), "exec")
    pyc = sh.site() / "click" / "__pycache__" / "__init__.cpython-311.pyc"
    pyc.write_bytes(bytes(bootstrap._code_to_timestamp_pyc(code, int(stat.st_mtime), stat.st_size)))
    subprocess.run([str(sh.env.python), "-c", "import click"], check=True)  # a normal Python runs it
    assert marker.exists()
    marker.unlink()
    for args in (["run", "--locked"], ["run"]):
        res = sh.run(*args)
        assert res.code == 0, res.err
        assert not marker.exists()
    assert any((sh.home / "cache" / "pycache").rglob("*.pyc"))


def test_a_replaced_library_version_is_refused(shell_env):
    from tools.workspace import WHEELHOUSE

    sh = shell_env()
    _locked(sh)
    old = sorted(WHEELHOUSE.glob("cryptography-45*.whl"))
    sh.env.install(old[0], no_deps=True)
    res = sh.run("run", "--locked")
    assert res.code == LOCK and "cryptography" in res.err and "45.0.7" in res.err


def test_an_old_lock_without_libraries_is_refused_with_the_fix(shell_env):
    sh = shell_env()
    (sh.home).mkdir(parents=True, exist_ok=True)
    (sh.home / "plugins.lock.toml").write_text('lock-version = "1.0"\n', "utf-8")
    res = sh.run("run", "--locked")
    assert res.code == 2 and "re-create it with `enkrypted plugins lock`" in res.err


def test_a_drifted_library_is_refused_before_its_code_runs(shell_env, tmp_path):
    """With --locked the launcher re-hashes the libraries before click or pluggy are imported."""
    sh = shell_env()
    _locked(sh)
    marker = tmp_path / "click-ran"
    core = sh.site() / "click" / "__init__.py"
    core.write_text(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')\n" + core.read_text("utf-8"))
    res = sh.run("run", "--locked")
    assert res.code == LOCK and "click/__init__.py" in res.err
    assert not marker.exists()
    log = (sh.home / "load-log.jsonl").read_text("utf-8").splitlines()
    assert '"refused"' in log[-1] and "click/__init__.py" in log[-1]


def test_the_default_home_is_platformdirs_user_data_dir(monkeypatch):
    import platformdirs

    from enkrypted_shell._state.config import default_home

    monkeypatch.delenv("ENKRYPTED_HOME", raising=False)
    assert str(default_home()) == platformdirs.user_data_dir("enkrypted")
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/data")
    assert str(default_home()) == platformdirs.user_data_dir("enkrypted") == "/srv/data/enkrypted"


def test_run_locked_refuses_each_edited_library_file_when_imported_before_it_runs(shell_env, tmp_path):
    """`run --locked` checks library modules as they are imported (lazily; docs/trust-model.md):
    an edited source (imported by the launcher, the CLI or deep inside a plugin's import), an edited
    extension module and a planted module are each refused with exit 12, naming the distribution
    and the file, logged, and the edited code never runs."""
    sh = shell_env()
    _locked(sh)
    site = sh.site()
    targets = [
        ("click", "click/core.py"),
        ("pluggy", "pluggy/_manager.py"),
        ("cryptography", "cryptography/hazmat/primitives/ciphers/aead.py"),  # imported by the plugin
    ]
    for library, relative in targets:
        target = site / relative
        original = target.read_bytes()
        marker = tmp_path / f"{library}-ran"
        target.write_bytes(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')\n".encode() + original)
        res = sh.run("run", "--locked")
        assert res.code == LOCK, (relative, res.err)
        assert f"library {library} " in res.err and relative in res.err and "before it ran" in res.err
        assert len(res.err.strip().splitlines()) <= 3, res.err  # warning, refusal, fix
        assert not marker.exists(), relative
        log = (sh.home / "load-log.jsonl").read_text("utf-8").splitlines()
        assert '"refused"' in log[-1] and relative in log[-1]
        target.write_bytes(original)
    rust = next((site / "cryptography" / "hazmat" / "bindings").glob("_rust*.so"))
    original = rust.read_bytes()
    rust.write_bytes(original + b"\0")
    res = sh.run("run", "--locked")
    assert res.code == LOCK and f"cryptography/hazmat/bindings/{rust.name} changed" in res.err
    rust.write_bytes(original)
    planted = site / "pluggy" / "_planted.py"
    planted.write_text("import os; os._exit(99)\n")
    res = sh.run("run", "--locked")
    assert res.code == LOCK and "pluggy/_planted.py" in res.err and "does not list" in res.err
    planted.unlink()
    assert sh.run("run", "--locked").code == 0


def test_run_locked_defers_modules_it_never_imports_and_verify_locked_checks_everything(shell_env):
    """What the lazy start does not import it does not hash (it cannot run either); the audit,
    `plugins verify --locked`, still re-hashes every file of every locked library."""
    sh = shell_env()
    _locked(sh)
    relative = "click/testing.py"  # the shell never imports click's test runner
    target = sh.site() / relative
    target.write_text(target.read_text("utf-8") + "\n# edited after the lock\n", "utf-8")
    assert sh.run("run", "--locked").code == 0
    res = sh.run("plugins", "verify", "--locked")
    assert res.code == LOCK and relative in res.err


@pytest.mark.parametrize("planted", ["aiodns.py", "hiredis/__init__.py"])
def test_a_locked_start_refuses_an_unlisted_module_in_site_packages_before_it_runs(shell_env, tmp_path, planted):
    """Locked libraries import optional dependencies (aiohttp ``import aiodns``, redis ``import
    hiredis``) that are usually absent: a module or package planted under such a name, listed by no
    locked library and no installed distribution, is refused by ``run --locked`` (exit 12, one
    line naming it) before anything could import it."""
    sh = shell_env()
    _locked(sh)
    marker = tmp_path / "planted-ran"
    target = sh.site() / planted
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')\n")
    entry = sh.site() / planted.partition("/")[0]
    res = sh.run("run", "--locked")
    assert res.code == LOCK, res.err
    refusal = [line for line in res.err.splitlines() if line.startswith("enkrypted: refused")]
    assert len(refusal) == 1 and f"site-packages holds {entry}," in refusal[0], res.err
    assert not marker.exists()
    log = (sh.home / "load-log.jsonl").read_text("utf-8").splitlines()
    assert '"refused"' in log[-1] and str(entry) in log[-1]


def test_no_pth_file_runs_in_any_process_the_launcher_starts(shell_env, tmp_path):
    """The ``enkrypted`` script is a ``#!/bin/sh`` script that runs itself with the environment's
    Python as ``python -I -S``: a ``.pth`` file (which could delete itself after running) never runs,
    not even in the first process, for any command; the unrecorded ``.pth`` is still refused
    (exit 10), locked or not. A symlink to the script starts it the same way."""
    sh = shell_env()
    _locked(sh)
    assert (sh.env.bin / "enkrypted").read_bytes().startswith(b"#!/bin/sh\n")
    marker = tmp_path / "pth-ran"
    (sh.site() / "zz-evil.pth").write_text(
        f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"
    )
    link = tmp_path / "elsewhere" / "enkrypted"
    link.parent.mkdir()
    link.symlink_to(sh.env.bin / "enkrypted")
    res = sh.run("plugins", "list")  # lists, loads nothing: no refusal, and the .pth never ran
    assert res.code == 0 and "enkrypted-crypto" in res.out, res.err
    assert not marker.exists()
    for args in (["run", "--locked"], ["run"]):
        res = sh.run(*args)
        assert res.code == 10, (args, res.err)
        assert "zz-evil.pth" in res.err and "compromised" in res.err
        assert not marker.exists(), args
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ENKRYPTED_DEV")}
    environ["ENKRYPTED_HOME"] = str(sh.home)
    environ["ENKRYPTED_ALLOW_UNSIGNED"] = "1"
    proc = subprocess.run([str(link), "run"], capture_output=True, text=True, env=environ, timeout=120)
    assert proc.returncode == 10 and "zz-evil.pth" in proc.stderr, proc.stderr
    assert not marker.exists()
