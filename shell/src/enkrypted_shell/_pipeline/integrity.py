"""Re-hash every installed file of a distribution against its RECORD, before any import.

A changed, missing or unrecorded file anywhere under the distribution's package directories (or its
``.dist-info``) refuses the load and names the file (DESIGN.md §6).  The *content digest* of a
distribution is derived from its RECORD so that the same value comes from the wheel and from the
installed copy; the lock and the signed provenance carry it.
"""

from __future__ import annotations

__all__ = [
    "IntegrityReport",
    "content_digest",
    "import_names",
    "wheel_layout_problems",
    "owned_names",
    "parse_record",
    "read_recorded",
    "verify_distribution",
]

import base64
import csv
import hashlib
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping
from importlib import metadata
from types import MappingProxyType
from typing import NamedTuple

from ..errors import IntegrityError
from ..limits import LIMITS

_INSTALL_TIME = frozenset({"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"})


class IntegrityReport(NamedTuple):
    """What was checked for one distribution."""

    distribution: str
    version: str
    files_checked: int
    content_digest: str
    # What the verified import loader needs (runtime.load): the real path of every verified
    # ``.py`` file with the exact bytes that were hashed, the real package folders, and the
    # top-level import names (package folders and single-file modules) the distribution owns.
    sources: Mapping[str, bytes] = MappingProxyType({})
    roots: tuple[str, ...] = ()
    top_level: tuple[str, ...] = ()
    assets: Mapping[str, bytes] = MappingProxyType({})
    """The verified bytes of every file under the asset folder the caller named (its manifest's
    ``plugin.assets``), by path relative to that folder: what the plugin may serve."""

    def asset_digests(self) -> dict[str, str]:
        """``{path: "sha256:<hex>"}`` of :attr:`assets`, for the load log and the reports."""
        return {
            name: "sha256:" + hashlib.sha256(data).hexdigest()
            for name, data in sorted(self.assets.items())
        }


def _in_digest(path: str) -> bool:
    """RECORD entries that come from the wheel itself (not written by the installer)."""
    parts = path.split("/")
    if path.startswith("..") or "__pycache__" in parts:
        return False
    return not (len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in _INSTALL_TIME)


def _is_bytecode(path: str) -> bool:
    """Installer-compiled bytecode (``.../__pycache__/NAME.pyc``).  pip records it without a hash,
    so it cannot be verified; the shell never executes it: verified plugin modules are compiled by
    the shell's own loader from the bytes that were hashed (ADR 0005), so in-tree ``__pycache__``
    folders are not read."""
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


def record_hash(data: bytes) -> str:
    """The RECORD form of a file hash: urlsafe base64 of its sha256, unpadded (PEP 376 / 627)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def _safe(text: str) -> str:
    """A path for a message: undecodable bytes of a file name shown escaped, never a crash."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_REINSTALL = "reinstall the distribution from a trusted index (`enkrypted plugins install`)"


def parse_record(text: str | None, *, where: str, name: str) -> list[tuple[str, str]]:
    """(path, hash field) of every RECORD row.  A missing, empty or malformed RECORD refuses."""
    if not text:
        raise IntegrityError(f"{where}: no RECORD; cannot verify", plugin=name, fix=_REINSTALL)
    if len(text) > LIMITS.record_chars:
        raise IntegrityError(f"{where}: RECORD is implausibly large", plugin=name, fix=_REINSTALL)
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


def read_recorded(
    dist: metadata.Distribution, rows: Iterable[tuple[str, str]], path: str, *, where: str, name: str
) -> bytes:
    """The bytes of one RECORD-listed file, checked against its RECORD hash as they are read, so
    what gets parsed (the manifest, METADATA) is exactly what was verified."""
    hash_field = dict(rows).get(path)
    if not hash_field:
        raise IntegrityError(f"{where}: {path} has no hash in RECORD", plugin=name, fix=_REINSTALL)
    mode, _, expected = hash_field.partition("=")
    if mode != "sha256":
        raise IntegrityError(f"{where}: {path} uses {mode}, not sha256", plugin=name)
    return _check_file(where, name, path, os.path.join(str(dist.locate_file("")), path), expected)


def verify_distribution(
    dist: metadata.Distribution,
    *,
    name: str | None = None,
    version: str | None = None,
    record: str | None = None,
    assets: str | None = None,
) -> IntegrityReport:
    """Check every recorded file and look for unrecorded ones; raise :class:`IntegrityError`.

    ``assets`` (``"<package>/<folder>/"``) keeps the verified bytes of the files below that folder
    in the report, at most ``LIMITS.asset_bytes`` in all.

    ``name`` and ``version`` (for messages and the report) are read from METADATA unless given by a
    caller that has already parsed it; ``record`` is the RECORD text that caller read (so one
    reading of RECORD decides everything), else it is read here.

    Rules (each refusal names the file):

    * every row but the dist-info's own ``RECORD`` and ``__pycache__/*.pyc`` bytecode carries a
      sha256 that matches the file; ``.pth`` files are refused;
    * paths are canonical (no ``.``/``..`` components, not absolute); rows leading out of the
      install folder (``../``, e.g. scripts) must not land inside the distribution's folders;
    * ``__pycache__`` rows are ``.pyc`` files directly in a ``__pycache__`` folder; their hash, if
      any, is checked, and they are never part of the content digest (the shell never runs them);
    * inside the distribution's folders (its top-level packages and its ``.dist-info``) no
      symlink exists, and every file is a hashed row, the ``RECORD`` itself or bytecode.
    """
    if name is None or version is None:
        meta = dist.metadata
        name, version = str(meta["Name"]), str(meta["Version"])
    where = f"{name} {version}"
    rows = parse_record(dist.read_text("RECORD") if record is None else record, where=where, name=name)
    base = str(dist.locate_file(""))  # RECORD paths are relative to the install folder
    resolve = _Resolver()
    tops = sorted({p.split("/")[0] for p, _ in rows if "/" in p and not p.startswith("../")})
    for top in tops:
        if os.path.islink(os.path.join(base, top)):
            raise IntegrityError(
                f"{where}: {_safe(top)} is a symlink (wheels contain none)",
                plugin=name,
                fix=f"delete {_safe(os.path.join(base, top))} or reinstall the distribution",
            )
    roots = {top: os.path.realpath(os.path.join(base, top)) for top in tops}
    hashed: dict[str, str] = {}  # real location -> RECORD hash, of files inside and outside roots
    entries: list[tuple[str, str]] = []
    sources: dict[str, bytes] = {}
    kept: dict[str, bytes] = {}
    kept_bytes = 0
    for path, hash_field in rows:
        _check_row_path(where, name, path, hash_field)
        if not hash_field:  # RECORD itself or bytecode (checked above): nothing to hash
            continue
        mode, _, value = hash_field.partition("=")
        if mode != "sha256":
            raise IntegrityError(f"{where}: {_safe(path)} uses {mode}, not sha256", plugin=name)
        location = resolve(os.path.join(base, path))
        if path.startswith("../") and inside(location, roots.values()):
            raise IntegrityError(
                f"{where}: RECORD row {_safe(path)} leads back into the distribution's own folders",
                plugin=name,
                fix=_REINSTALL,
            )
        data = _check_file(where, name, path, location, value)
        hashed[location] = value
        if not path.startswith("../") and "__pycache__" not in path.split("/"):
            entries.append((path, value))
            if path.endswith(".py") and _in_digest(path):  # importable only if signed
                sources[location] = data
            if assets and path.startswith(assets):
                kept[path[len(assets) :]] = data
                kept_bytes += len(data)
                if kept_bytes > LIMITS.asset_bytes:
                    raise IntegrityError(
                        f"{where}: the files of {assets} exceed {LIMITS.asset_bytes} bytes",
                        plugin=name,
                    )
    for top, root in roots.items():
        _check_folder(where, name, top, root, hashed)
    return IntegrityReport(
        name,
        version,
        len(entries),
        content_digest(entries),
        MappingProxyType(sources),
        tuple(root for top, root in roots.items() if not top.endswith(".dist-info")),
        _top_level(rows),
        MappingProxyType(kept),
    )


def _check_row_path(where: str, name: str, path: str, hash_field: str) -> None:
    if path.endswith(".pth"):
        raise IntegrityError(
            f"{where}: ships {_safe(path)}, which runs code at interpreter start-up",
            plugin=name,
            fix="plugins must not install .pth files; remove the distribution",
        )
    inner = path
    while inner.startswith("../"):
        inner = inner[3:]
    if path.split("/", maxsplit=1)[0].startswith(".") and not path.startswith("../"):
        raise IntegrityError(  # e.g. "..x/...": neither inside the install folder nor outside it
            f"{where}: RECORD lists a path with a hidden first component {_safe(path)!r}",
            plugin=name,
            fix=_REINSTALL,
        )
    if path.startswith("/") or "\\" in path or posixpath.normpath(inner) != inner:
        raise IntegrityError(
            f"{where}: RECORD lists a non-canonical path {_safe(path)!r}", plugin=name, fix=_REINSTALL
        )
    parts = path.split("/")
    if "__pycache__" in parts and not path.startswith("../") and not _is_bytecode(path):
        raise IntegrityError(
            f"{where}: RECORD lists {_safe(path)} in __pycache__, which is not bytecode",
            plugin=name,
            fix=_REINSTALL,
        )
    if not hash_field and not (_is_bytecode(path) or _is_record(path)):
        raise IntegrityError(f"{where}: {_safe(path)} has no hash in RECORD", plugin=name)


def inside(location: str, roots: Iterable[str]) -> bool:
    """Whether a real path is one of ``roots`` or below one of them."""
    return any(location == r or location.startswith(r + os.sep) for r in roots)


MANIFEST_NAME = "enkrypted-plugin.toml"  # = manifest.MANIFEST_FILENAME (no import cycle)
RESERVED_PACKAGES = frozenset({"enkrypted_shell"})


def wheel_layout_problems(paths: Iterable[str]) -> list[str]:
    """What is wrong with the layout of a plugin wheel, given its member paths (empty: fine).

    The rule, enforced when the registry publishes and again when the shell installs: a plugin
    wheel contains exactly one package - the folder holding ``enkrypted-plugin.toml`` - and its one
    ``.dist-info``; nothing else (no other top-level module or package, no ``.data`` folder, no
    ``.pth`` file anywhere), and its package is not the shell's.  A signed wheel of one slot can so
    never write into the shell, another plugin or the interpreter's start-up."""
    paths = [p for p in paths if not p.endswith("/")]
    manifests = sorted(p for p in paths if p.count("/") == 1 and p.endswith("/" + MANIFEST_NAME))
    dist_infos = sorted({p.split("/", 1)[0] for p in paths if p.split("/", 1)[0].endswith(".dist-info")})
    problems: list[str] = []
    if len(manifests) != 1:
        problems.append(f"a plugin wheel has exactly one <package>/{MANIFEST_NAME} (found {len(manifests)})")
    if len(dist_infos) != 1:
        problems.append(f"a plugin wheel has exactly one .dist-info folder (found {len(dist_infos)})")
    package = manifests[0].split("/", 1)[0] if manifests else None
    if package in RESERVED_PACKAGES:
        problems.append(f"{package}/ is the shell's package; a plugin cannot ship it")
    allowed = {package, *dist_infos} - {None}
    for path in sorted(paths):
        if path.endswith(".pth"):
            problems.append(f"{path}: .pth files run code at interpreter start-up")
        elif path.split("/", 1)[0] not in allowed or "/" not in path:
            problems.append(f"{path}: outside the plugin's package {package}/ and its .dist-info")
    return problems


def owned_names(record: str | None) -> tuple[str, ...]:
    """The top-level import names a RECORD text claims (empty if it is missing or malformed)."""
    try:
        return _top_level(parse_record(record, where="", name=""))
    except IntegrityError:
        return ()


def import_names(paths: Iterable[str]) -> tuple[str, ...]:
    """The top-level import names a list of wheel paths claims."""
    return _top_level((path, "") for path in paths)


def _top_level(rows: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Import names the distribution owns: its top-level folders (regular packages, and folders
    without an ``__init__.py``, which Python imports as namespace packages) and top-level ``.py``
    modules."""
    names: set[str] = set()
    for path, _ in rows:
        if path.startswith("../"):
            continue
        parts = path.split("/")
        if len(parts) >= 2 and not parts[0].endswith((".dist-info", ".data")):
            if parts[0].isidentifier():
                names.add(parts[0])
        elif len(parts) == 1 and path.endswith(".py") and path[:-3].isidentifier():
            names.add(path[:-3])
    return tuple(sorted(names))


def _check_folder(where: str, name: str, top: str, root: str, hashed: Mapping[str, str]) -> None:
    """No symlink and no unrecorded file anywhere under one of the distribution's folders."""
    if not os.path.isdir(root):
        return  # a folder named only by RECORD rows of missing files: those rows refused already
    is_dist_info = top.endswith(".dist-info")
    def refuse(error: OSError) -> None:
        raise IntegrityError(
            f"{where}: cannot list {_safe(str(error.filename))} inside the distribution ({error.strerror})",
            plugin=name,
            fix="make the distribution's folders readable, or reinstall it",
        )

    for folder, dirs, names in os.walk(root, onerror=refuse):
        for entry in dirs + names:
            full = os.path.join(folder, entry)
            rel = _safe(os.path.relpath(full, os.path.dirname(root)))
            if os.path.islink(full):
                raise IntegrityError(
                    f"{where}: {rel} is a symlink inside the distribution (wheels contain none)",
                    plugin=name,
                    fix=f"delete {_safe(full)} or reinstall the distribution",
                )
        for filename in names:
            full = os.path.join(folder, filename)
            if full in hashed:
                continue
            if os.path.basename(folder) == "__pycache__" and filename.endswith(".pyc"):
                continue  # never executed (ADR 0005)
            if is_dist_info and folder == root and filename == "RECORD":
                continue
            rel = _safe(os.path.relpath(full, os.path.dirname(root)))
            raise IntegrityError(
                f"{where}: {rel} is not in the distribution's RECORD (added after install)",
                plugin=name,
                fix=f"delete {_safe(full)} or reinstall the distribution",
            )


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


def _check_file(where: str, name: str, path: str, location: str, expected: str) -> bytes:
    """Read one file (following no more than the OS does) and compare its sha256; the bytes."""
    try:
        with open(location, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > LIMITS.installed_file_bytes:
                raise IntegrityError(f"{where}: {_safe(path)} is implausibly large", plugin=name)
            data = handle.read()
    except FileNotFoundError:
        raise IntegrityError(
            f"{where}: recorded file {_safe(path)} is missing", plugin=name, fix=_REINSTALL
        ) from None
    except IsADirectoryError:
        raise IntegrityError(
            f"{where}: recorded file {_safe(path)} is a directory", plugin=name
        ) from None
    except OSError as exc:
        raise IntegrityError(f"{where}: cannot read {_safe(path)}: {exc}", plugin=name) from exc
    if record_hash(data) != expected:
        raise IntegrityError(
            f"{where}: {_safe(path)} was changed after install (sha256 differs from RECORD)",
            plugin=name,
            fix=_REINSTALL,
        )
    return data
