"""Re-hash every installed file of a distribution against its RECORD, before any import.

A changed, missing or unrecorded file anywhere under the distribution's package directories (or its
``.dist-info``) refuses the load and names the file (DESIGN.md §6).  The *content digest* of a
distribution is derived from its RECORD so that the same value comes from the wheel and from the
installed copy; the lock and the signed provenance carry it.
"""

from __future__ import annotations

__all__ = ["IntegrityReport", "content_digest", "verify_distribution"]

import base64
import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import IntegrityError

_INSTALL_TIME = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"})
MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class IntegrityReport:
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


def verify_distribution(dist: metadata.Distribution) -> IntegrityReport:
    """Check every recorded file and look for unrecorded ones; raise :class:`IntegrityError`."""
    name, version = str(dist.metadata["Name"]), dist.version
    where = f"{name} {version}"
    files = dist.files
    if not files:
        raise IntegrityError(f"{where}: no RECORD; cannot verify", plugin=name, fix=_REINSTALL)
    recorded: dict[Path, str] = {}
    entries: list[tuple[str, str]] = []
    resolve = _Resolver()
    for item in files:
        path = str(item)
        location = resolve(Path(str(dist.locate_file(item))))
        if path.endswith(".pth"):
            raise IntegrityError(
                f"{where}: ships {path}, which runs code at interpreter start-up",
                plugin=name,
                fix="plugins must not install .pth files; remove the distribution",
            )
        if item.hash is None:
            if _is_bytecode(path) or _is_record(path):
                recorded[location] = ""
                continue
            raise IntegrityError(f"{where}: {path} has no hash in RECORD", plugin=name)
        if item.hash.mode != "sha256":
            raise IntegrityError(f"{where}: {path} uses {item.hash.mode}, not sha256", plugin=name)
        _check_file(where, name, path, location, item.hash.value)
        recorded[location] = item.hash.value
        entries.append((path, item.hash.value))
    _check_unrecorded(where, name, dist, files, recorded, resolve)
    return IntegrityReport(name, version, len(entries), content_digest(entries))


class _Resolver:
    """``Path.resolve()`` for many files in a few folders, with the same result: each folder is
    resolved once (cached); a file's own name is only ``lstat``-ed, and followed with a full
    ``Path.resolve()`` when it is a symlink.  (``realpath`` walks a path left to right, so for a
    final component that is not a symlink ``realpath(d/name) == realpath(d)/name``.)  This saves
    an ``lstat`` per path component and a ``stat`` per file, which was most of the verify time."""

    def __init__(self) -> None:
        self._folders: dict[str, Path] = {}

    def __call__(self, path: Path) -> Path:
        head, tail = os.path.split(str(path))
        if tail in ("", ".", ".."):
            return path.resolve()
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            is_link = False  # missing: resolve() would not follow it either
        if is_link:
            return path.resolve()
        folder = self._folders.get(head)
        if folder is None:
            folder = self._folders[head] = Path(head).resolve()
        return folder / tail


_REINSTALL = "reinstall the distribution from a trusted index (`enkrypted plugins install`)"


def _check_file(where: str, name: str, path: str, location: Path, expected: str) -> None:
    try:
        if location.stat().st_size > MAX_FILE_BYTES:
            raise IntegrityError(f"{where}: {path} is implausibly large", plugin=name)
        data = location.read_bytes()
    except FileNotFoundError:
        raise IntegrityError(
            f"{where}: recorded file {path} is missing", plugin=name, fix=_REINSTALL
        ) from None
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
    dist: metadata.Distribution,
    files: list[metadata.PackagePath],
    recorded: dict[Path, str],
    resolve: _Resolver,
) -> None:
    tops = {str(f).split("/")[0] for f in files if "/" in str(f) and not str(f).startswith("..")}
    roots = {resolve(Path(str(dist.locate_file(top)))) for top in tops}
    for root in sorted(roots):
        for folder, _dirs, names in os.walk(root):
            for filename in names:
                found = resolve(Path(folder) / filename)
                if found not in recorded and not _is_bytecode(f"{Path(folder).name}/{filename}"):
                    rel = os.path.relpath(found, root.parent)
                    raise IntegrityError(
                        f"{where}: {rel} is not in the distribution's RECORD (added after install)",
                        plugin=name,
                        fix=f"delete {found} or reinstall the distribution",
                    )
