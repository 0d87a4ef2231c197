"""Start the shell isolated, before any third-party code runs.

``python -m enkrypted_shell`` starts in a Python that started normally: ``PYTHONPATH``, the user
site, the current directory and every ``.pth`` file of site-packages were honoured. The
``enkrypted`` script (``shell/scripts/enkrypted``) does not: a ``#!/bin/sh`` script, it runs itself
with the Python beside it as ``python -I -S`` (so not even its first process runs a ``.pth``). Both
re-execute the same interpreter as ``python -I -S <this file>`` (the script finds this file by path,
never through ``sys.path``):

* ``-I`` (isolated): no ``PYTHONPATH``/``PYTHON*`` variables, no user site, no script or current
  directory on ``sys.path`` — a copy of ``pluggy`` or ``enkrypted_shell`` there is never seen;
* ``-S`` (no ``site``): no ``.pth`` file and no ``sitecustomize`` / ``usercustomize`` runs in the
  shell's process. The launcher then adds this environment's site-packages folders to ``sys.path``
  itself, as ``site`` would, without executing anything in them.

Start-up hooks found there are refused by the load pipeline (:mod:`._pipeline.environment`) unless a
distribution records them; ``--dev`` (``ENKRYPTED_DEV=1``) processes ``.pth`` files (editable
installs need them), loudly. This module imports only the standard library (and, for ``--locked``,
shell modules that do too); it runs as ``__main__`` in the isolated process, so it imports the
package by absolute name.
"""

from __future__ import annotations

import contextlib
import os
import sys
import sysconfig
from pathlib import Path
from typing import NoReturn

_DEV_VALUES = ("1", "true", "yes", "on")


def site_folders() -> list[str]:
    """This environment's site-packages folders (purelib, platlib), as ``site`` adds them.

    Under ``-S`` the interpreter has not applied its virtual environment (``site.venv`` does that
    in 3.11), so the ``pyvenv.cfg`` next to the executable is read here the same way."""
    bases = [sys.prefix]
    if sys.flags.no_site:
        venv = _virtual_environment()
        if venv is not None:
            prefix, include_system = venv
            bases = [prefix, sys.base_prefix] if include_system else [prefix]
    found: list[str] = []
    for base in bases:
        paths = sysconfig.get_paths(vars={"base": base, "platbase": base})
        for key in ("purelib", "platlib"):
            folder = paths.get(key)
            if folder and folder not in found and os.path.isdir(folder):
                found.append(folder)
    return found


def _virtual_environment() -> tuple[str, bool] | None:
    """``(prefix, include-system-site-packages)`` of the venv this interpreter runs in, if any
    (the lookup of ``site.venv``: ``pyvenv.cfg`` beside the executable or one folder up)."""
    exe_dir = os.path.dirname(os.path.abspath(sys.executable))
    prefix = os.path.dirname(exe_dir)
    for conf in (os.path.join(exe_dir, "pyvenv.cfg"), os.path.join(prefix, "pyvenv.cfg")):
        if os.path.isfile(conf):
            include = False
            with open(conf, encoding="utf-8") as handle:
                for line in handle:
                    key, _, value = line.partition("=")
                    if key.strip().lower() == "include-system-site-packages":
                        include = value.strip().lower() == "true"
            return prefix, include
    return None


def _dev_requested(argv: list[str]) -> bool:
    if os.environ.get("ENKRYPTED_DEV", "").lower() in _DEV_VALUES:
        return True
    return "--dev" in argv[: argv.index("--")] if "--" in argv else "--dev" in argv


def _isolated() -> bool:
    return bool(sys.flags.isolated and sys.flags.no_site)


def _installed_here() -> bool:
    """Whether this shell was imported from this environment's site-packages (not from
    ``PYTHONPATH`` or a source checkout), so that the isolated process will find it again."""
    here = os.path.realpath(Path(__file__).parent)
    return any(
        os.path.commonpath([here, os.path.realpath(folder)]) == os.path.realpath(folder)
        for folder in site_folders()
    )


def main() -> NoReturn:
    """``python -m enkrypted_shell``: re-execute isolated (or, for a source checkout, run with
    ``--dev`` only)."""
    argv = sys.argv[1:]
    if not _isolated():
        if _installed_here():
            # Same interpreter, same PID (a caller stopping us by PID still can), now isolated.
            os.execv(sys.executable, [sys.executable, "-I", "-S", str(Path(__file__)), *argv])  # noqa: S606
        if not _dev_requested(argv):
            sys.stderr.write(
                "enkrypted: refused (IsolationError): this shell was imported from "
                f"{Path(__file__).parent}, outside the environment's site-packages "
                "(PYTHONPATH or a source checkout), so it cannot start isolated\n"
                "  fix: install the enkrypted-shell wheel, or pass --dev for a development checkout\n"
            )
            sys.exit(2)
        sys.stderr.write("WARNING: dev mode: the shell runs from a source checkout, not isolated\n")
    _run_cli(argv)


def _option(argv: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` / ``--name=VALUE`` among the shell's own options."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1 :]
    return None


def _home(argv: list[str]) -> Path:
    from enkrypted_shell._state.config import default_home

    return Path(_option(argv, "--home") or os.environ.get("ENKRYPTED_HOME") or default_home()).expanduser()


def _private_bytecode(argv: list[str]) -> None:
    """Bytecode of everything the shell's process imports is read and written under
    ``HOME/cache/pycache`` (``sys.pycache_prefix``), never from the ``__pycache__`` folders of
    site-packages: a ``.pyc`` planted there, with a header matching its source, never runs, and
    the lock pins sources, not bytecode that reinstalls rewrite. Plugins use their own verified
    code cache (docs/adr/0005)."""
    sys.pycache_prefix = str(_home(argv) / "cache" / "pycache")


def _audit_command(argv: list[str]) -> bool:
    """``plugins …`` commands (``verify --locked``, ``graph``, ``audit``) re-hash every locked file
    up front; the commands that load plugins (``run``, plugin commands) check lazily. When in doubt
    (``plugins`` anywhere among the shell's arguments), the full check."""
    return "plugins" in (argv[: argv.index("--")] if "--" in argv else argv)


def _check_locked_libraries(argv: list[str]) -> None:
    """With ``--locked``, before click, pluggy or any other third-party module is imported (the
    CLI imports them), so an edited library is refused before its code runs: ``plugins …``
    re-hashes every file of every library the lock pins; a start checks up front what an import
    cannot, then each locked module as it is imported (:mod:`._pipeline.lazylock`). The shell
    modules used here import only the standard library."""
    if "--locked" not in (argv[: argv.index("--")] if "--" in argv else argv):
        return
    home = _home(argv)
    path = Path(_option(argv, "--lock") or home / "plugins.lock.toml")
    try:
        guard_locked(home, path, audit=_audit_command(argv))
    except Exception as exc:
        from enkrypted_shell.errors import ShellError

        if not isinstance(exc, ShellError):
            raise
        _refuse(home, exc)


def guard_locked(home: Path, path: Path, *, audit: bool = False) -> None:
    """The launcher's lock step (also what the startup benchmark times): nothing if there is no
    lock file (the pipeline reports that); raises ``ShellError`` on drift found now."""
    from enkrypted_shell._pipeline.closure import check_libraries, remember_verified
    from enkrypted_shell._pipeline.lock import parse_lock
    from enkrypted_shell._state.files import read_home_file
    from enkrypted_shell._state.loadlog import LoadLog  # imported now: checked with the others

    del LoadLog
    data = read_home_file(path)  # never blocks: a FIFO or a folder is a one-line refusal
    if data is None:
        return
    lock = parse_lock(data, source=str(path), cache=home / "cache" / "locks")
    if audit:
        check_libraries(lock.libraries)
        remember_verified(data)
        return
    from enkrypted_shell._pipeline.lazylock import guard_imports

    guard_imports(
        lock.libraries, data, home / "bytecode", sites=site_folders(), on_drift=lambda exc: _refuse(home, exc)
    )


def _refuse(home: Path, exc: Exception) -> NoReturn:
    """A lock refusal from the launcher or from an import anywhere later: logged, one line, exit 12
    (``os._exit`` for the latter: no handler between the import and here may swallow it)."""
    from enkrypted_shell._state.loadlog import LoadLog
    from enkrypted_shell.errors import ShellError

    assert isinstance(exc, ShellError)
    with contextlib.suppress(ShellError, OSError):  # the refusal must reach the user anyway
        LoadLog(home / "load-log.jsonl").append(
            "refused", plugin=exc.plugin, rule=exc.rule, reason=exc.message, dev=False
        )
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
    sys.stderr.write(f"enkrypted: refused ({exc.rule}): {exc}\n")
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(int(exc.exit_code))


def _run_cli(argv: list[str]) -> NoReturn:
    if _isolated():
        _private_bytecode(argv)
    _check_locked_libraries(argv)
    from enkrypted_shell._cli.main import main as cli_main

    result = cli_main(argv)
    sys.exit(result if isinstance(result, int) else 0)


def _isolated_entry() -> NoReturn:
    """``python -I -S _boot.py ARGS``: site-packages on ``sys.path`` without running anything."""
    argv = sys.argv[1:]
    sys.path[:] = [p for p in sys.path if p != os.path.dirname(os.path.abspath(__file__))]
    if _dev_requested(argv):
        import site

        for folder in site_folders():
            site.addsitedir(folder)  # runs .pth files: editable installs need them (dev only)
        sys.stderr.write("WARNING: dev mode: .pth files of site-packages were processed\n")
    else:
        for folder in site_folders():
            if folder not in sys.path:
                sys.path.append(folder)
    _run_cli(argv)


if __name__ == "__main__":
    _isolated_entry()
