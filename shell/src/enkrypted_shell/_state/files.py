"""Atomic file replacement for the profile home (one implementation for every writer)."""

from __future__ import annotations

__all__ = ["write_atomic"]

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Replace ``path`` with ``data`` through a temporary file in the same folder and a rename, so
    a reader never sees half a file; the temporary file is removed if anything fails.  ``sync``
    flushes it to disk before the rename (records that must survive a crash).  Missing parent
    folders are created private (0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
