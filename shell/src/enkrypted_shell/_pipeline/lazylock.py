"""``run --locked``: check locked library files as they are imported, before their code runs.

:func:`.closure.check_libraries` re-hashes every file of every locked library (~150 MB, most of it
PyAV's bundled codecs a data-channel start never loads). ``plugins verify --locked`` still does
that (the audit). A start instead splits the lock in two:

* **up front** (:func:`guard_imports`, called by the launcher before any third-party import), what
  an import cannot check later: every locked distribution is installed at its locked version; the
  set of files is the locked one (nothing missing, no RECORD row or loadable file the lock does not
  list, in every folder holding locked files); and the sha256 of every file that is *not* code
  loaded by import — ``.dist-info`` files, data (certificate bundles, ``py.typed``, trust roots,
  ``.pyi``), ``.pth`` files, a ``.py`` outside an importable path — and of every module the process
  already imported (the shell modules that ran before the check);
* **at import** (:class:`LockedImportGuard`, on ``sys.meta_path``), for every module under a name a
  locked distribution owns: the file the import system found must be a locked file (an unlisted
  module, a shadowing copy, a symlink is refused) with its locked sha256. A source is compiled from
  the bytes that were hashed (content-addressed code cache, as for plugins: ADR 0005); an extension
  module's ``.so`` is hashed right before it is loaded; and before the first module of a
  distribution runs, every shared library it bundles (``*.libs/``, ``.dylibs/``, ``lib*.so*``:
  ``dlopen``-ed by its extension modules, not imported) is hashed.

A mismatch raises :class:`LockMismatchError` naming the distribution and the file, from
``find_spec``, i.e. before the module's code runs (the launcher turns it into exit 12 even when the
import happens deep inside a plugin).
"""

from __future__ import annotations

__all__ = [
    "GuardStats",
    "LockedImportGuard",
    "guard_imports",
    "guarded_in_this_process",
]

import base64
import contextlib
import csv
import hashlib
import importlib.machinery
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from ..errors import LockMismatchError
from .closure import LOADABLE, LockedLibrary, drift
from .importer import VerifiedLoader

_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)
_SOURCES = tuple(importlib.machinery.SOURCE_SUFFIXES)
_BYTECODE = tuple(importlib.machinery.BYTECODE_SUFFIXES)
_MODULE_SUFFIXES = (*_EXTENSIONS, *_SOURCES, *_BYTECODE)
_MODULE_ENDINGS = tuple({s.rpartition(".")[2] and "." + s.rpartition(".")[2] for s in _MODULE_SUFFIXES})


class _File(NamedTuple):
    library: LockedLibrary
    path: str  # relative to the install folder, as in the lock
    expected: str  # RECORD form (urlsafe b64 sha256, unpadded)
    location: str  # real path


@dataclass(slots=True)
class GuardStats:
    """What the guard checked, for the benchmark and the load log."""

    up_front_files: int = 0
    up_front_bytes: int = 0
    imported_files: int = 0
    imported_bytes: int = 0
    shared_files: int = 0
    shared_bytes: int = 0
    hash_seconds: float = 0.0


def _hash_file(location: str, stats: GuardStats) -> tuple[str | None, int]:
    """(RECORD-form sha256, size) of a file, or (None, 0) if it is missing or unreadable."""
    start = time.perf_counter()
    try:
        with open(location, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").digest()
            size = handle.tell()
    except OSError:
        return None, 0
    finally:
        stats.hash_seconds += time.perf_counter() - start
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"), size


def _module_name(path: str) -> str | None:
    """The module a locked file would be imported as, or None if no import loads it."""
    if not path.endswith(_MODULE_ENDINGS):
        return None
    parts = path.split("/")
    name = parts[-1]
    for suffix in _MODULE_SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            break
    else:
        return None
    if "__pycache__" in parts or not all(p.isidentifier() for p in (*parts[:-1], stem)):
        return None
    return ".".join(parts[:-1] if stem == "__init__" else [*parts[:-1], stem])


def _is_shared_library(path: str, module: str | None) -> bool:
    """A bundled shared library that extension modules ``dlopen`` (not importable itself)."""
    parts = path.split("/")
    name = parts[-1]
    return (
        parts[0].endswith(".libs")
        or ".dylibs" in parts
        or (module is None and (".so." in name or name.endswith((".so", ".dylib", ".dll"))))
    )


class _Index(NamedTuple):
    files: dict[str, _File]  # real location -> locked file (deferred to import)
    tops: dict[str, LockedLibrary]  # top-level names whose package/module a locked library ships
    spaces: frozenset[str]  # top-level names of namespace folders holding locked files
    folders: dict[str, LockedLibrary]  # real folders holding locked modules
    shared: dict[str, list[_File]]  # library name -> its bundled shared libraries
    namespaces: dict[str, LockedLibrary]  # dotted names of namespace folders above locked modules
    roots: dict[str, frozenset[str]]  # real site folder -> the entries a distribution lists there


def _normal(name: str) -> str:
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part)


class _DistInfos:
    """The ``.dist-info`` / ``.egg-info`` folders on ``sys.path``, first one per normalized name
    (the one ``importlib.metadata`` finds: first path entry, as listed), from one ``listdir`` per
    path entry instead of a metadata search (and METADATA parse) per locked library."""

    def __init__(self) -> None:
        self._found: dict[str, tuple[str, str]] = {}
        for folder in sys.path:
            try:
                names = os.listdir(folder or ".")
            except OSError:
                continue
            for name in names:
                if name.endswith((".dist-info", ".egg-info")):
                    stem = name.rpartition(".")[0].partition("-")[0]
                    self._found.setdefault(_normal(stem), (folder or ".", name))

    def get(self, name: str) -> tuple[str, str] | None:
        return self._found.get(_normal(name))


def _installed(entry: LockedLibrary, installed: _DistInfos) -> tuple[str, str]:
    """(real install folder, RECORD text) of a locked library: the distribution the import system
    sees must be the one the lock pins (same ``.dist-info`` folder, whose METADATA - with its
    version - is hashed up front)."""
    pinned = {p.split("/", 1)[0] for p in entry.files if p.split("/", 1)[0].endswith(".dist-info")}
    found = installed.get(entry.name)
    if found is None:
        raise drift(entry, "is no longer installed")
    folder, info = found
    if info not in pinned:
        version = info.rpartition(".")[0].partition("-")[2] or "unknown"
        raise drift(entry, f"is now version {version} ({info})")
    try:
        with open(os.path.join(folder, info, "RECORD"), encoding="utf-8") as handle:
            record = handle.read()
    except (OSError, UnicodeDecodeError):
        record = ""
    return os.path.realpath(folder), record


def _check_listing(entry: LockedLibrary, record: str, base: str) -> None:
    """Nothing missing, nothing added: one ``listdir`` per folder holding locked files, no
    hashing. Added means a RECORD row the lock does not list, or a loadable file (``.py``,
    ``.pyc``, ``.so``, ``.pyd``, ``.pth``) in one of those folders (:func:`.closure.unlisted`)."""
    by_folder: dict[str, set[str]] = {}
    for path in entry.files:
        folder, _, name = path.rpartition("/")
        by_folder.setdefault(folder, set()).add(name)
    added: list[str] = []
    for folder in sorted(by_folder):
        if not folder:  # site-packages itself (top-level modules): shared, never listed
            missing = sorted(n for n in by_folder[folder] if not os.path.exists(os.path.join(base, n)))
        else:
            try:
                present = set(os.listdir(os.path.join(base, folder)))
            except OSError:
                present = set()
            missing = sorted(by_folder[folder] - present)
            added.extend(f"{folder}/{n}" for n in sorted(present - by_folder[folder]) if n.endswith(LOADABLE))
        if missing:
            raise drift(entry, f"file {folder + '/' if folder else ''}{missing[0]} is missing")
    recorded = sorted(_recorded(record) - set(entry.files))
    added = [p for p in recorded if os.path.lexists(os.path.join(base, p))] + added
    if added:
        raise drift(entry, f"has a file the lock does not list: {added[0]}")


def _recorded(text: str) -> set[str]:
    """RECORD paths inside the install folder (bytecode and RECORD itself left out), tolerant:
    a broken RECORD is no drift by itself (the lock holds the hashes)."""
    with contextlib.suppress(csv.Error):
        return {
            row[0]
            for row in csv.reader(text.splitlines())
            if row
            and not row[0].startswith(("../", "/"))
            and not row[0].endswith(".dist-info/RECORD")
            and "__pycache__" not in row[0].split("/")
        }
    return set()


def _index(locked: Mapping[str, LockedLibrary], stats: GuardStats, sites: Sequence[str] = ()) -> _Index:
    """Check everything an import cannot (module doc) and index what imports will check."""
    index = _Index({}, {}, frozenset(), {}, {}, {}, {})
    spaces: set[str] = set()
    installed = _DistInfos()
    listed: dict[str, set[str]] = {os.path.realpath(site): set() for site in sites}
    for key in sorted(locked):
        entry = locked[key]
        base, record = _installed(entry, installed)
        _check_listing(entry, record, base)
        listed.setdefault(base, set()).update(path.partition("/")[0] for path in entry.files)
        shared = index.shared.setdefault(entry.name, [])
        for path, expected in entry.files.items():
            location = os.path.join(base, path)
            item = _File(entry, path, expected, location)
            module = _module_name(path)
            if _is_shared_library(path, module):
                shared.append(item)
            elif module is not None:
                index.files[location] = item
                top = module.partition(".")[0]
                if "/" not in path or (path.endswith("/__init__.py") and path.count("/") == 1):
                    index.tops.setdefault(top, entry)
                else:
                    spaces.add(top)
                    _add_namespaces(index.namespaces, entry, module)
                index.folders.setdefault(os.path.dirname(location), entry)
            else:
                stats.up_front_bytes += _check_now(item, location, stats)
                stats.up_front_files += 1
    for name in list(index.namespaces):
        if name in index.tops or any(_module_name(p) == name for p in index.namespaces[name].files):
            del index.namespaces[name]  # a regular package after all: its __init__ is a locked file
    index.roots.update(_check_roots(listed))
    return index._replace(spaces=frozenset(spaces - set(index.tops)))


def _add_namespaces(namespaces: dict[str, LockedLibrary], entry: LockedLibrary, module: str) -> None:
    """The dotted names above a locked module of a namespace library (``nsx`` for ``nsx.sub``);
    the ones a locked ``__init__`` turns into packages are dropped once all files are indexed."""
    parts = module.split(".")
    for depth in range(1, len(parts)):
        namespaces.setdefault(".".join(parts[:depth]), entry)


def _importable(folder: str, name: str) -> bool:
    """Whether a site folder entry is something ``import`` loads: a module (source, bytecode,
    extension), a package or a namespace folder. Start-up hooks (``.pth``, ``sitecustomize``) are
    :mod:`.environment`'s (exit 10); metadata and ``*.libs`` folders are not importable."""
    if name == "__pycache__" or name.endswith((".dist-info", ".egg-info", ".pth")):
        return False
    stem = name.partition(".")[0]
    if stem in ("sitecustomize", "usercustomize") or not stem.isidentifier():
        return False
    if stem == name:
        return os.path.isdir(os.path.join(folder, name))
    return name.endswith(_MODULE_SUFFIXES) and _module_name(name) == stem


def _check_roots(listed: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    """Every importable entry of every site folder must be listed by a locked library or by the
    RECORD of a distribution installed there: one ``listdir`` per folder (and the RECORDs only if
    something the lock does not list is there, e.g. the plugins). An unlisted ``aiodns.py`` is what
    a locked library's optional ``import aiodns`` would run. Returns the listed entries per folder
    (the guard refuses an import of anything else found there later)."""
    found: dict[str, frozenset[str]] = {}
    for root, locked_names in listed.items():
        try:
            present = os.listdir(root)
        except OSError:
            continue
        names = set(locked_names)
        leftover = {n for n in present if n not in names and _importable(root, n)}
        if leftover:
            names |= _recorded_tops(root, present, leftover)
            unlisted = sorted(leftover - names)
            if unlisted:
                raise _unlisted(os.path.join(root, unlisted[0]))
        found[root] = frozenset(names)
    return found


def _recorded_tops(root: str, present: list[str], wanted: set[str]) -> set[str]:
    """First path components of the RECORD rows of the ``.dist-info`` folders in ``root``, read
    until every ``wanted`` entry is found (the ones named like a wanted entry first: usually one
    RECORD per plugin, not every distribution's)."""
    stems = {_normal(n.partition(".")[0]) for n in wanted}
    infos = sorted(
        (n for n in present if n.endswith(".dist-info")),
        key=lambda n: (_normal(n.partition("-")[0]) not in stems, n),
    )
    tops: set[str] = set()
    for info in infos:
        try:
            with open(os.path.join(root, info, "RECORD"), encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError):
            continue  # an unreadable RECORD lists nothing
        tops.update(_record_tops(text))
        if wanted <= tops:
            break
    return tops


def _record_tops(text: str) -> set[str]:
    """First path components of a RECORD's rows (quoted rows through ``csv``, the rest split)."""
    tops = {line.partition(",")[0].partition("/")[0] for line in text.splitlines() if not line.startswith('"')}
    quoted = [line for line in text.splitlines() if line.startswith('"')]
    if quoted:
        tops.update(path.partition("/")[0] for path in _recorded("\n".join(quoted)))
    tops.discard("")
    return tops


def _unlisted(location: str) -> LockMismatchError:
    return LockMismatchError(
        f"site-packages holds {location}, which no locked or installed distribution lists: "
        "an import (a library's optional dependency) could run it",
        fix="remove it (and treat what it could reach as exposed), or install what provides it "
        "with pip and re-lock with `enkrypted plugins lock`",
    )


def _check_now(item: _File, location: str, stats: GuardStats, *, when: str = "") -> int:
    """Hash one locked file now; its size. Drift names the distribution and the file."""
    actual, size = _hash_file(location, stats)
    if actual != item.expected:
        state = "is missing" if actual is None else "changed"
        raise drift(item.library, f"file {item.path} {state}{when}")
    return size


class _SourcelessLoader(importlib.machinery.SourcelessFileLoader):
    """A locked ``.pyc`` outside ``__pycache__``, unmarshalled from the bytes that were hashed."""

    def __init__(self, fullname: str, path: str, data: bytes) -> None:
        super().__init__(fullname, path)
        self._data = data

    def get_data(self, path: str) -> bytes:
        return self._data if path == self.path else super().get_data(path)


class LockedImportGuard(importlib.abc.MetaPathFinder):
    """Checks every module under a locked library's names against the lock before it runs."""

    def __init__(
        self,
        index: _Index,
        cache: Path | None,
        stats: GuardStats,
        *,
        lock_sha256: str = "",
        on_drift: Callable[[LockMismatchError], None] | None = None,
    ) -> None:
        self._index = index
        self._cache = cache
        self.stats = stats
        self.lock_sha256 = lock_sha256
        self._on_drift = on_drift
        self._started: set[str] = set()  # libraries whose shared libraries were checked
        self._folders: dict[str, str] = {}

    def _refuse(self, error: LockMismatchError) -> LockMismatchError:
        if self._on_drift is not None:
            self._on_drift(error)  # the launcher's: log, say it, exit 12
        return error

    def real(self, origin: str) -> str:
        """``realpath`` of a file that is not a symlink (its folder resolved once)."""
        folder, name = os.path.split(origin)
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return os.path.join(real, name)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        top = fullname.partition(".")[0]
        owner = self._index.tops.get(top)
        if owner is None and top not in self._index.spaces:
            if path is None and fullname == top:
                self._check_unowned(fullname)
            return None  # not a locked library's name: the import system goes on as usual
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None:
            return None
        if spec.origin is None or not spec.has_location:
            if owner is not None and fullname == top:  # the locked package itself went missing
                raise self._refuse(drift(owner, f"{top} is no longer a package (found a namespace)"))
            return spec  # a namespace folder runs no code; its modules come through here again
        real = self.real(spec.origin)
        link = os.path.islink(spec.origin)
        item = None if link else self._index.files.get(real)
        if item is None:
            library = (
                owner or self._index.folders.get(os.path.dirname(real)) or self._index.namespaces.get(fullname)
            )  # the last: an __init__.py (or module) dropped where a locked namespace folder was
            if library is None:
                return spec  # another distribution's portion of a shared namespace
            what = "a symlink" if link else "a file the lock does not list"
            raise self._refuse(drift(library, f"importing {fullname} would load {spec.origin}, {what}"))
        self._check_shared(item.library)
        return self._verified(fullname, spec, item)

    def _check_unowned(self, fullname: str) -> None:
        """A top-level module no locked library owns, found in a site folder, must be an entry
        some distribution listed when the guard was installed (one planted since is refused); one
        found nowhere is left to the import system (an optional dependency's ImportError)."""
        spec = importlib.machinery.PathFinder.find_spec(fullname)
        if spec is None:
            return
        if spec.origin is not None and spec.has_location:
            locations = [os.path.dirname(spec.origin) if spec.submodule_search_locations else spec.origin]
        else:
            locations = list(spec.submodule_search_locations or ())
        for location in locations:
            folder, name = os.path.split(self.real(location))
            listed = self._index.roots.get(folder)
            if listed is not None and name not in listed:
                raise self._refuse(_unlisted(location))

    def _check_shared(self, library: LockedLibrary) -> None:
        if library.name in self._started:
            return
        when = f" (checked before the first module of {library.name} ran)"
        for item in self._index.shared.get(library.name, ()):
            try:
                self.stats.shared_bytes += _check_now(item, item.location, self.stats, when=when)
            except LockMismatchError as exc:
                raise self._refuse(exc) from None
            self.stats.shared_files += 1
        self._started.add(library.name)

    def _verified(self, fullname: str, spec: ModuleSpec, item: _File) -> ModuleSpec:
        origin = spec.origin
        assert origin is not None
        when = f" (found when importing {fullname}, before it ran)"
        loader = spec.loader
        if isinstance(loader, importlib.machinery.ExtensionFileLoader):
            try:
                self.stats.imported_bytes += _check_now(item, origin, self.stats, when=when)
            except LockMismatchError as exc:
                raise self._refuse(exc) from None
            self.stats.imported_files += 1
            return spec
        if not isinstance(loader, importlib.machinery.SourceFileLoader | importlib.machinery.SourcelessFileLoader):
            raise self._refuse(drift(item.library, f"{item.path} has an unexpected loader{when}"))
        start = time.perf_counter()
        try:
            with open(origin, "rb") as handle:
                data = handle.read()
        except OSError:
            data = None
        self.stats.hash_seconds += time.perf_counter() - start
        digest = None if data is None else _record_hash(data)
        if digest != item.expected:
            state = "is missing" if data is None else "changed"
            raise self._refuse(drift(item.library, f"file {item.path} {state}{when}"))
        assert data is not None
        self.stats.imported_files += 1
        self.stats.imported_bytes += len(data)
        if isinstance(loader, importlib.machinery.SourceFileLoader):
            spec.loader = VerifiedLoader(fullname, origin, data, self._cache)
        else:
            spec.loader = _SourcelessLoader(fullname, origin, data)
        spec.cached = None
        return spec


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def _check_imported(guard: LockedImportGuard, index: _Index, stats: GuardStats) -> None:
    """Modules imported before the guard (the launcher's shell modules): hashed now. One under a
    locked library's name whose file the lock does not list is refused."""
    for name, module in sorted(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if not isinstance(origin, str):
            continue
        real = guard.real(origin)
        item = index.files.get(real)
        if item is None:
            owner = index.tops.get(name.partition(".")[0])
            if owner is not None:
                raise drift(owner, f"module {name} was loaded from {origin}, which the lock does not list")
            continue
        stats.up_front_bytes += _check_now(item, real, stats, when=f" ({name} was imported before the check)")
        stats.up_front_files += 1


def _lock_digest(lock_bytes: bytes) -> str:
    return hashlib.sha256(lock_bytes).hexdigest()


def guard_imports(
    locked: Mapping[str, LockedLibrary],
    lock_bytes: bytes,
    cache: Path | None,
    *,
    sites: Sequence[str] = (),
    on_drift: Callable[[LockMismatchError], None] | None = None,
) -> LockedImportGuard:
    """The up-front part of a lazy locked start (module doc), then a :class:`LockedImportGuard`
    first on ``sys.meta_path`` (replacing one installed before); raises
    :class:`LockMismatchError` on drift. ``cache``: the content-addressed code cache
    (``HOME/bytecode``); ``sites``: the site-packages folders (each listed up front, with the
    install folders of the locked libraries: every importable entry must be a listed one).
    ``on_drift`` is called with a drift found at import time before it is
    raised (the launcher exits there)."""
    stats = GuardStats()
    index = _index(locked, stats, sites)
    guard = LockedImportGuard(index, cache, stats, lock_sha256=_lock_digest(lock_bytes), on_drift=on_drift)
    _check_imported(guard, index, stats)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, LockedImportGuard)]
    sys.meta_path.insert(0, guard)
    return guard


def guarded_in_this_process(lock_bytes: bytes) -> bool:
    """Whether a guard for exactly these lock bytes is on ``sys.meta_path``."""
    digest = _lock_digest(lock_bytes)
    return any(isinstance(f, LockedImportGuard) and f.lock_sha256 == digest for f in sys.meta_path)
