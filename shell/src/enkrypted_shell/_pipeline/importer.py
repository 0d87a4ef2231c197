"""Import verified plugin code from exactly the bytes that were hashed (ADR 0005).

:func:`.integrity.verify_distribution` reads every file of a selected plugin distribution and keeps
the bytes of its ``.py`` files.  :class:`VerifiedImporter` (first on ``sys.meta_path`` once the
shell loads plugins) answers for every module under the top-level names those distributions own:

* the module must be found inside the verified folders of its distribution — a same-named copy
  earlier on ``sys.path`` is refused, for plugins and for the plugin distributions they use;
* its source must be one of the verified ``.py`` files, and it is compiled from the verified bytes,
  never read again from disk, so a file swapped after verification (or added later, or a lazy
  import much later) cannot run;
* compiled code is cached content-addressed (key: the source's sha256, its path and the
  interpreter's bytecode magic) under ``HOME/bytecode``; in-tree ``__pycache__`` files, which pip
  records without hashes, are never read.

Extension modules and sourceless ``.pyc`` files inside a plugin distribution cannot be imported
from verified bytes and are refused; so is a module file that is a symlink.  A folder without
``__init__.py`` is a namespace package limited to the verified folders.  The import names of plugin
distributions that were discovered but not verified this start are refused outright.
"""

from __future__ import annotations

__all__ = ["VerifiedImporter", "VerifiedLoader", "install"]

import contextlib
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import marshal
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any, NamedTuple

from .._state.files import read_home_file, write_atomic
from ..errors import HomeError
from .integrity import IntegrityReport, inside

_MAGIC = importlib.util.MAGIC_NUMBER


class VerifiedLoader(importlib.machinery.SourceFileLoader):
    """A source loader whose source is the verified bytes, with a content-addressed code cache."""

    def __init__(self, fullname: str, path: str, source: bytes, cache: Path | None) -> None:
        super().__init__(fullname, path)
        self._source = source
        self._cache = cache

    def get_source(self, fullname: str) -> str:
        return importlib.util.decode_source(self._source)

    def get_code(self, fullname: str) -> CodeType:
        key = hashlib.sha256(
            b"enkrypted-code-v1\0"
            + _MAGIC
            + str(sys.flags.optimize).encode()
            + b"\0"
            + os.fsencode(self.path)
            + b"\0"
            + hashlib.sha256(self._source).digest()
        ).hexdigest()
        cached = self._read_cache(key)
        if cached is not None:
            return cached
        code = compile(self._source, self.path, "exec", dont_inherit=True)
        self._write_cache(key, code)
        return code

    def _entry(self, key: str) -> Path | None:
        return None if self._cache is None else self._cache / key[:2] / f"{key}.code"

    def _read_cache(self, key: str) -> CodeType | None:
        entry = self._entry(key)
        if entry is None:
            return None
        try:
            data = read_home_file(entry)  # never blocks on a FIFO
        except HomeError:
            return None
        if data is None or not data.startswith(_MAGIC):
            return None
        digest, payload = data[len(_MAGIC) : len(_MAGIC) + 32], data[len(_MAGIC) + 32 :]
        if hashlib.sha256(payload).digest() != digest:  # cut off by a crash (or older format)
            return None
        try:
            code = marshal.loads(payload)  # noqa: S302 - our own cache in HOME
        except (EOFError, ValueError, TypeError):
            return None
        return code if isinstance(code, CodeType) else None

    def _write_cache(self, key: str, code: CodeType) -> None:
        """Best effort (a read-only home still loads); written atomically.  Not fsynced (about
        4 ms per entry, 0.4-0.8 s for a cold start of the current set): the entry carries the
        sha256 of its payload, so one cut off by a crash is recompiled, never loaded.  A checksum,
        not an authenticator: docs/trust-model.md, "The profile home is trusted"."""
        entry = self._entry(key)
        if entry is None:
            return
        payload = marshal.dumps(code)
        with contextlib.suppress(HomeError):
            write_atomic(entry, _MAGIC + hashlib.sha256(payload).digest() + payload, durable=False)


class _Owner(NamedTuple):
    label: str  # "distribution version"
    roots: tuple[str, ...]  # its real package folders
    sources: Mapping[str, bytes]  # real path -> verified bytes, of this distribution only


class VerifiedImporter(importlib.abc.MetaPathFinder):
    """Serves every module under the verified distributions' top-level names (see module doc);
    refuses the names of plugin distributions that were discovered but not verified this start."""

    def __init__(
        self,
        reports: Iterable[IntegrityReport],
        cache: Path | None,
        *,
        blocked: Mapping[str, str] | None = None,
    ) -> None:
        self._owners: dict[str, _Owner] = {}
        for report in reports:
            owner = _Owner(f"{report.distribution} {report.version}", report.roots, report.sources)
            for top in report.top_level:
                self._owners.setdefault(top, owner)
        self._blocked = {k: v for k, v in (blocked or {}).items() if k not in self._owners}
        self._cache = cache
        self._folders: dict[str, str] = {}

    @property
    def top_level(self) -> frozenset[str]:
        return frozenset(self._owners)

    def _real(self, origin: str) -> str:
        """``realpath`` of a file that is not a symlink: its folder's realpath (cached) + name."""
        folder, name = os.path.split(origin)
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return os.path.join(real, name)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        top = fullname.partition(".")[0]
        owner = self._owners.get(top)
        if owner is None:
            label = self._blocked.get(top)
            if label is not None:
                raise ImportError(
                    f"{fullname} belongs to {label}, a plugin distribution that was not verified "
                    "in this start; it is not imported",
                    name=fullname,
                )
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None:
            return None  # not found: the usual ModuleNotFoundError
        if spec.origin is None or not spec.has_location:
            return self._namespace(fullname, spec, owner)
        if os.path.islink(spec.origin):
            raise ImportError(f"{spec.origin} is a symlink; it is not imported", name=fullname)
        real = self._real(spec.origin)
        source = owner.sources.get(real)
        if source is None:
            if not inside(real, owner.roots):
                raise ImportError(
                    f"importing {fullname} would load {spec.origin}, not the verified "
                    f"{owner.label}; remove the shadowing copy from sys.path (PYTHONPATH, current "
                    "directory)",
                    name=fullname,
                )
            raise ImportError(
                f"{spec.origin} was not verified as part of {owner.label} (added after "
                "verification, or not a Python source file); it is not imported",
                name=fullname,
            )
        spec.loader = VerifiedLoader(fullname, spec.origin, source, self._cache)
        spec.cached = None
        return spec

    @staticmethod
    def _namespace(fullname: str, spec: ModuleSpec, owner: _Owner) -> ModuleSpec:
        """A folder without ``__init__.py``: a namespace package whose portions are limited to the
        verified folders (its submodules come through this finder again)."""
        portions = [
            real
            for real in (os.path.realpath(p) for p in spec.submodule_search_locations or ())
            if inside(real, owner.roots)
        ]
        if not portions:
            raise ImportError(
                f"importing {fullname} would load a namespace package outside the verified "
                f"{owner.label}",
                name=fullname,
            )
        namespace = ModuleSpec(fullname, None, is_package=True)
        namespace.submodule_search_locations = _namespace_path(
            type(spec.submodule_search_locations), fullname, portions, owner.roots
        )
        return namespace


def _namespace_path(kind: type, name: str, portions: list[str], roots: tuple[str, ...]) -> Any:
    """``portions`` as ``kind``, the import system's own namespace path type (``importlib.resources`` and
    ``pkgutil`` accept nothing else), recomputed through a finder that keeps only folders inside
    ``roots`` whenever the parent path changes.  Falls back to a plain list if that type cannot be
    built (its constructor is internal to CPython)."""

    def verified_portions(fullname: str, parent_path: Any) -> ModuleSpec | None:
        spec = importlib.machinery.PathFinder.find_spec(fullname, parent_path)
        if spec is None or spec.loader is not None:
            return spec
        spec.submodule_search_locations = [
            real
            for real in (os.path.realpath(p) for p in spec.submodule_search_locations or ())
            if inside(real, roots)
        ]
        return spec

    if kind is list:
        return portions
    try:
        return kind(name, portions, verified_portions)
    except TypeError:
        return portions


def install(
    reports: Iterable[IntegrityReport],
    cache: Path | None,
    *,
    blocked: Mapping[str, str] | None = None,
) -> VerifiedImporter:
    """Put a :class:`VerifiedImporter` for ``reports`` first on ``sys.meta_path`` (replacing one
    an earlier load in this process installed); ``blocked`` maps import names of unverified plugin
    distributions to their label."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, VerifiedImporter)]
    finder = VerifiedImporter(reports, cache, blocked=blocked)
    sys.meta_path.insert(0, finder)
    return finder
