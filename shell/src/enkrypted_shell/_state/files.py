"""Reading and writing files in the profile home: one implementation for every reader and writer.

Writes are crash-safe (:func:`write_atomic`): a temporary file in the same folder, ``fsync`` of the
file, ``os.replace``, ``fsync`` of the folder - after a crash or power loss the path holds the old or
the new bytes, never a mix, and a completed write survives.  Reads (:func:`read_home_file`) never
block on a FIFO, never follow a path into a folder, and turn every wrong kind of path or unreadable
file into one :class:`~enkrypted_shell.errors.HomeError` that names the path (docs/errors.md).
"""

from __future__ import annotations

__all__ = [
    "check_tree",
    "ensure_dir",
    "fsync_dir",
    "fsync_tree",
    "home_error",
    "read_home_file",
    "write_atomic",
]

import contextlib
import errno
import os
import stat
from pathlib import Path

from ..errors import HomeError

_FIX = (
    "move it aside and put a good copy back, or let the shell recreate it "
    "(docs/operations.md: what each HOME path holds and how it is recreated)"
)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def home_error(path: Path, exc: OSError, doing: str) -> HomeError:
    """One line for an ``OSError`` met while ``doing`` something with ``path`` in HOME."""
    reason = {
        errno.ENOTDIR: "a file is in the way of a folder on its path",
        errno.EISDIR: "it is a directory, a file belongs there",
        errno.ELOOP: "too many levels of symbolic links",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EEXIST: "a file is in the way of a folder on its path",
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "read-only file system",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return HomeError(f"cannot {doing} {path}: {reason}", fix=_FIX)


def read_home_file(path: Path, *, limit: int | None = None) -> bytes | None:
    """The bytes of the regular file ``path`` (a symbolic link to one is fine), ``None`` if nothing
    is there; :class:`HomeError` for a directory, FIFO, device, dangling link, unreadable file or
    more than ``limit`` bytes.  Opened non-blocking so a FIFO is refused rather than waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if path.is_symlink():
            raise HomeError(
                f"cannot read {path}: a symbolic link to a missing file", fix=_FIX
            ) from None
        return None
    except OSError as exc:
        raise home_error(path, exc, "read") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise HomeError(f"cannot read {path}: it is {_kind(mode)}, not a file", fix=_FIX)
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read() if limit is None else handle.read(limit + 1)
        except OSError as exc:
            raise home_error(path, exc, "read") from exc
    if limit is not None and len(data) > limit:
        raise HomeError(f"{path}: larger than {limit} bytes", fix=_FIX)
    return data


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """``fsync`` every regular file and folder under ``root`` (for files another library wrote
    with a rename but no ``fsync``, e.g. python-tuf's metadata)."""
    for folder, _dirs, names in os.walk(root):
        for name in names:
            entry = Path(folder, name)
            if entry.is_symlink() or not entry.is_file():
                continue
            fd = os.open(entry, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(folder))


def check_tree(root: Path) -> None:
    """Refuse (:class:`HomeError`) anything under ``root`` that is not a readable folder or
    regular file (a symbolic link to one is fine): for folders another library reads with a plain
    ``open()``, which would wait forever on a FIFO (python-tuf's metadata)."""
    for folder, dirs, names in os.walk(root):
        for name in dirs + names:
            entry = Path(folder, name)
            try:
                mode = os.stat(entry).st_mode
            except OSError as exc:
                raise home_error(entry, exc, "use") from exc
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise HomeError(f"cannot use {entry}: it is {_kind(mode)}", fix=_FIX)
            if not os.access(entry, os.R_OK):
                raise HomeError(f"cannot read {entry}: permission denied", fix=_FIX)


def ensure_dir(path: Path) -> None:
    """Create folder ``path`` and missing parents, private (0700), each made durable in its
    parent; :class:`HomeError` if a file (or anything else) is in the way."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise HomeError(f"cannot create {probe}: a symbolic link to a missing path", fix=_FIX)
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    if not missing and not path.is_dir():
        raise HomeError(f"cannot use {path}: it is not a directory", fix=_FIX)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            if not folder.is_dir():
                raise HomeError(f"cannot use {folder}: it is not a directory", fix=_FIX) from None
            continue  # created concurrently
        except OSError as exc:
            raise home_error(folder, exc, "create") from exc
        with contextlib.suppress(OSError):  # durability of a new folder is best effort
            fsync_dir(folder.parent)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data``: a temporary file in the same folder, ``fsync``, rename,
    ``fsync`` of the folder - a reader never sees half a file and, once this returns, a crash or
    power loss does not undo it.  The temporary file is removed if anything fails.  A new file is
    private (0600), a replaced one keeps its mode; missing parent folders are created private
    (0700).  :class:`HomeError` for a wrong kind of path in the way,
    no space or no permission.

    ``durable=False`` skips both ``fsync`` calls, for cache entries that carry their own checksum
    (after a crash such a file may be empty or cut off, never half old and half new)."""
    ensure_dir(path.parent)
    try:
        import tempfile  # only writers need it (~10 ms to import); most starts write nothing

        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    except OSError as exc:
        raise home_error(path.parent, exc, "write in") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            with contextlib.suppress(OSError):  # keep a replaced file's mode; new files: 0600
                os.fchmod(fd, stat.S_IMODE(os.stat(path).st_mode))
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise home_error(path, exc, "write") from exc
        raise
