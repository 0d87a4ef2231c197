"""Re-hash every installed file of a distribution against its RECORD, before any import.

A changed, missing or unrecorded file anywhere under the distribution's package directories (or its
``.dist-info``) refuses the load and names the file (DESIGN.md §6).  The *content digest* of a
distribution is derived from its RECORD so that the same value comes from the wheel and from the
installed copy; the lock and the signed provenance carry it.
"""

from __future__ import annotations

__all__ = ["IntegrityReport", "content_digest", "verify_distribution"]

import base64
import csv
import hashlib
import os
import stat
from collections.abc import Iterable
from importlib import metadata
from typing import NamedTuple

from .errors import IntegrityError

_INSTALL_TIME = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"})
MAX_FILE_BYTES = 256 * 1024 * 1024


class IntegrityReport(NamedTuple):
    """What was checked for one distribution."""

    distribution: str
    version: str
    files_checked: int
    content_digest: str


def _in_digest(path: str) -> bool:
    """RECORD entries that come from the wheel itself (not written by the installer)."""
    parts = path.split("/")
    if path.startswith("..") or "__pycache__" in parts:
        return False
    return not (len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in _INSTALL_TIME)


def _is_bytecode(path: str) -> bool:
    """Installer-compiled bytecode.  pip records it without a hash, so it cannot be verified; the
    shell never executes it: plugins are imported with ``sys.pycache_prefix`` pointing at the
    profile's own bytecode cache, so in-tree ``__pycache__`` folders are not read (see
    ``docs/trust-model.md``)."""
    parts = path.split("/")
    return len(parts) >= 2 and parts[-2] == "__pycache__" and parts[-1].endswith(".pyc")


def _is_record(path: str) -> bool:
    parts = path.split("/")
    return len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "RECORD"


def content_digest(entries: Iterable[tuple[str, str]]) -> str:
    """``sha256:<hex>`` over sorted ``path,hash`` lines of the wheel-owned RECORD entries.

    ``entries`` are (path, urlsafe-base64 sha256 without padding) pairs, as in RECORD.
    """
    lines = sorted(f"{path},{digest}\n" for path, digest in entries if _in_digest(path))
    return "sha256:" + hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def _record_rows(dist: metadata.Distribution, where: str, name: str) -> list[tuple[str, str]]:
    """(path, hash field) of every RECORD row, read as text: string paths, no ``PackagePath``
    objects (building those was most of the verify time).  A malformed row refuses."""
    text = dist.read_text("RECORD")
    if not text:
        raise IntegrityError(f"{where}: no RECORD; cannot verify", plugin=name, fix=_REINSTALL)
    rows: list[tuple[str, str]] = []
    try:
        for number, row in enumerate(csv.reader(text.splitlines()), start=1):
            if not row:
                continue
            if len(row) != 3 or not row[0]:
                raise IntegrityError(
                    f"{where}: RECORD line {number} is malformed", plugin=name, fix=_REINSTALL
                )
            rows.append((row[0], row[1]))
    except csv.Error as exc:
        raise IntegrityError(
            f"{where}: RECORD is not valid CSV ({exc})", plugin=name, fix=_REINSTALL
        ) from exc
    if not rows:
        raise IntegrityError(f"{where}: RECORD is empty; cannot verify", plugin=name, fix=_REINSTALL)
    return rows


def verify_distribution(
    dist: metadata.Distribution, *, name: str | None = None, version: str | None = None
) -> IntegrityReport:
    """Check every recorded file and look for unrecorded ones; raise :class:`IntegrityError`.

    ``name`` and ``version`` (for messages and the report) are read from METADATA unless given by a
    caller that has already parsed it."""
    if name is None or version is None:
        meta = dist.metadata
        name, version = str(meta["Name"]), str(meta["Version"])
    where = f"{name} {version}"
    rows = _record_rows(dist, where, name)
    base = str(dist.locate_file(""))  # RECORD paths are relative to the install folder
    recorded: dict[str, str] = {}
    entries: list[tuple[str, str]] = []
    resolve = _Resolver()
    for path, hash_field in rows:
        location = resolve(os.path.join(base, path))
        if path.endswith(".pth"):
            raise IntegrityError(
                f"{where}: ships {path}, which runs code at interpreter start-up",
                plugin=name,
                fix="plugins must not install .pth files; remove the distribution",
            )
        if not hash_field:
            if _is_bytecode(path) or _is_record(path):
                recorded[location] = ""
                continue
            raise IntegrityError(f"{where}: {path} has no hash in RECORD", plugin=name)
        mode, _, value = hash_field.partition("=")
        if mode != "sha256":
            raise IntegrityError(f"{where}: {path} uses {mode}, not sha256", plugin=name)
        _check_file(where, name, path, location, value)
        recorded[location] = value
        entries.append((path, value))
    _check_unrecorded(where, name, base, [p for p, _ in rows], recorded, resolve)
    return IntegrityReport(name, version, len(entries), content_digest(entries))


class _Resolver:
    """``os.path.realpath`` (what ``Path.resolve()`` does) for many files in a few folders, with
    the same result: each folder is resolved once (cached); a file's own name is only
    ``lstat``-ed, and followed with a full ``realpath`` when it is a symlink.  (``realpath`` walks
    a path left to right, so for a final component that is not a symlink
    ``realpath(d/name) == realpath(d)/name``.)  This saves an ``lstat`` per path component and a
    ``stat`` per file, which was most of the verify time."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        head, tail = os.path.split(path)
        if tail in ("", ".", ".."):
            return os.path.realpath(path)
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            is_link = False  # missing: realpath would not follow it either
        if is_link:
            return os.path.realpath(path)
        folder = self._folders.get(head)
        if folder is None:
            folder = self._folders[head] = os.path.realpath(head)
        return os.path.join(folder, tail)


_REINSTALL = "reinstall the distribution from a trusted index (`enkrypted plugins install`)"


def _check_file(where: str, name: str, path: str, location: str, expected: str) -> None:
    try:
        with open(location, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_FILE_BYTES:
                raise IntegrityError(f"{where}: {path} is implausibly large", plugin=name)
            data = handle.read()
    except FileNotFoundError:
        raise IntegrityError(
            f"{where}: recorded file {path} is missing", plugin=name, fix=_REINSTALL
        ) from None
    except IsADirectoryError:
        raise IntegrityError(f"{where}: recorded file {path} is a directory", plugin=name) from None
    except OSError as exc:
        raise IntegrityError(f"{where}: cannot read {path}: {exc}", plugin=name) from exc
    if _b64(data) != expected:
        raise IntegrityError(
            f"{where}: {path} was changed after install (sha256 differs from RECORD)",
            plugin=name,
            fix=_REINSTALL,
        )


def _check_unrecorded(
    where: str,
    name: str,
    base: str,
    paths: list[str],
    recorded: dict[str, str],
    resolve: _Resolver,
) -> None:
    tops = {p.split("/")[0] for p in paths if "/" in p and not p.startswith("..")}
    roots = {resolve(os.path.join(base, top)) for top in tops}
    for root in sorted(roots):
        parent = os.path.dirname(root)
        for folder, _dirs, names in os.walk(root):
            for filename in names:
                found = resolve(os.path.join(folder, filename))
                if found not in recorded and not _is_bytecode(
                    f"{os.path.basename(folder)}/{filename}"
                ):
                    rel = os.path.relpath(found, parent)
                    raise IntegrityError(
                        f"{where}: {rel} is not in the distribution's RECORD (added after install)",
                        plugin=name,
                        fix=f"delete {found} or reinstall the distribution",
                    )
