"""The profile home's layout, checked once per command before anything in it is used.

Every path the shell reads or writes in HOME is listed in :data:`HOME_LAYOUT` (docs/operations.md
describes each).  :func:`check_home` refuses, with one :class:`~enkrypted_shell.errors.HomeError`
line (exit 2) naming the path, a home that is not a directory and any listed path of the wrong
kind (a directory where a file belongs, a file where a directory belongs, a FIFO, socket or
device), a dangling or looping symbolic link, or a path this user cannot read.  A missing path is
fine: the shell creates it when it first writes it.  The readers check again when they open a file
(:func:`.files.read_home_file`), so a path changed in between is refused too, never waited on.
Content is checked by each reader (malformed configuration, trust policy, lock, provenance record:
exit 2; broken load log chain: exit 18; a malformed cache entry is ignored and rewritten).
"""

from __future__ import annotations

__all__ = ["HOME_LAYOUT", "HomePath", "check_home"]

import os
import stat
from pathlib import Path
from typing import Literal, NamedTuple

from ..errors import HomeError
from .files import home_error

Kind = Literal["file", "directory"]


class HomePath(NamedTuple):
    name: str  # relative to HOME
    kind: Kind
    what: str


HOME_LAYOUT: tuple[HomePath, ...] = (
    HomePath("config.toml", "file", "configuration (plugin choices, settings)"),
    HomePath("trust.toml", "file", "trust policy (who may publish each slot)"),
    HomePath("plugins.lock.toml", "file", "lock of the plugin set (--locked)"),
    HomePath("load-log.jsonl", "file", "hash-chained load log"),
    HomePath("provenance", "directory", "install-time provenance records"),
    HomePath("tuf", "directory", "pinned TUF roots and metadata per index"),
    HomePath("bytecode", "directory", "code cache of verified plugin modules"),
    HomePath("cache", "directory", "caches"),
    HomePath("cache/skew-verdicts.json", "file", "skew-check verdicts (cache)"),
    HomePath("cache/pycache", "directory", "bytecode of what the shell imports (sys.pycache_prefix)"),
    HomePath("sigstore-verified.json", "file", "Sigstore verification verdicts (cache)"),
    HomePath("profiles", "directory", "encrypted profile stores, one folder per profile"),
)

_FIX = (
    "move it aside and put a good copy back, or let the shell recreate it "
    "(docs/operations.md: what each HOME path holds and how it is recreated)"
)


def _describe(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def _check(path: Path, kind: Kind, what: str) -> bool:
    """Refuse ``path`` unless it is missing or a readable ``kind``; True if it exists."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise HomeError(
                f"{what} {path} is a symbolic link to a missing path", fix=_FIX
            ) from None
        return False
    except OSError as exc:  # ELOOP, EACCES on a parent, ENOTDIR (a file on the way)
        raise home_error(path, exc, f"use {what}") from exc
    want = stat.S_ISDIR if kind == "directory" else stat.S_ISREG
    if not want(mode):
        raise HomeError(
            f"{what} {path} is {_describe(mode)}; a {kind} belongs there", fix=_FIX
        )
    access = os.R_OK | (os.X_OK if kind == "directory" else 0)
    if not os.access(path, access):
        raise HomeError(f"{what} {path} is not readable (permission denied)", fix=_FIX)
    return True


def check_home(home: Path) -> None:
    """Refuse a home, or a path in it, that the shell cannot use (module doc); cheap: one
    ``stat`` per listed path, nothing read."""
    if not _check(home, "directory", "the profile home (--home / ENKRYPTED_HOME)"):
        return  # created on first write
    for entry in HOME_LAYOUT:
        path = home / entry.name
        if "/" in entry.name and not path.parent.is_dir():
            continue  # its folder is missing (a folder of the wrong kind was refused above)
        _check(path, entry.kind, entry.what)
