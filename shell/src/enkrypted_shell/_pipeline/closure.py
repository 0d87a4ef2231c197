"""The libraries under the plugins: pin every distribution the loaded set runs on, hash it each start.

``plugins lock`` walks the ``Requires-Dist`` closure of the shell and of the selected plugins (and
the plugin distributions they use) through what is installed, and records for every third-party
distribution in it its version and the sha256 of **every file it installed** — sources, extension
modules, METADATA — computed from the files themselves, so a library whose RECORD lacks hashes is
pinned too, and an edit that also rewrites RECORD still drifts. ``--locked`` re-hashes all of them
at every start and refuses any change, naming the distribution and the file: a changed, missing or
added module. In-tree ``__pycache__`` bytecode is not pinned: the shell's process never reads it
(the launcher points ``sys.pycache_prefix`` into HOME, ``_boot``), so a planted ``.pyc`` cannot run
and a reinstall that rewrites bytecode is not drift.

Plugin distributions are not listed here: they are pinned by their verified content digests.
"""

from __future__ import annotations

__all__ = [
    "LOADABLE",
    "LockedLibrary",
    "check_libraries",
    "drift",
    "remember_verified",
    "runtime_closure",
    "snapshot",
    "unlisted",
    "verified_in_this_process",
]

import hashlib
import os
from collections.abc import Iterable, Mapping
from importlib import metadata
from types import MappingProxyType
from typing import NamedTuple

from ..errors import IntegrityError, LockMismatchError
from .integrity import parse_record, record_hash
from .skew import installed_version


class LockedLibrary(NamedTuple):
    """One pinned third-party distribution: every installed file and its hash (RECORD form)."""

    name: str
    version: str
    files: Mapping[str, str]  # path relative to the install folder -> urlsafe-b64 sha256

    @property
    def files_digest(self) -> str:
        lines = sorted(f"{path},{value}\n" for path, value in self.files.items())
        return "sha256:" + hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def runtime_closure(
    roots: Iterable[str],
    *,
    exclude: Iterable[str] = (),
    extras: Mapping[str, frozenset[str]] = MappingProxyType({}),
) -> list[metadata.Distribution]:
    """Installed distributions reachable from ``roots`` through ``Requires-Dist`` (markers evaluated
    for this interpreter; an extra's requirements only for the ``extras`` named per distribution,
    e.g. the shell's ``sigstore``), ``roots`` and ``exclude`` themselves left out. Sorted by name."""
    from packaging.requirements import InvalidRequirement, Requirement  # only `plugins lock`

    installed = {_normal(d.metadata["Name"]): d for d in metadata.distributions() if d.metadata["Name"]}
    skip = {_normal(n) for n in (*roots, *exclude)}
    seen: dict[str, metadata.Distribution] = {}
    pending = [installed[_normal(r)] for r in roots if _normal(r) in installed]
    while pending:
        dist = pending.pop()
        for line in dist.requires or ():
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue  # refused by the skew check of whoever declares it
            key = _normal(req.name)
            if key in seen or key in skip or key not in installed:
                continue
            wanted = extras.get(_normal(str(dist.metadata["Name"])), frozenset())
            if req.marker is not None and not _applies(req.marker, wanted):
                continue
            seen[key] = installed[key]
            pending.append(installed[key])
    return [seen[key] for key in sorted(seen)]


def _applies(marker: object, extras: frozenset[str]) -> bool:
    evaluate = marker.evaluate  # type: ignore[attr-defined]
    return any(evaluate({"extra": extra}) for extra in ("", *sorted(extras)))


def snapshot(dist: metadata.Distribution) -> LockedLibrary:
    """Hash every file ``dist`` installed inside its install folder; a file that differs from its
    RECORD hash refuses (do not pin an installation that is already modified)."""
    name, version = str(dist.metadata["Name"]), str(dist.metadata["Version"])
    where = f"{name} {version}"
    base = str(dist.locate_file(""))
    files: dict[str, str] = {}
    for path, recorded in _rows(dist, where, name):
        actual = _hash(os.path.join(base, path), where, name, path)
        if actual is None:
            continue  # recorded but absent (pip records .pyc it may not have written): not loadable
        if recorded and recorded != f"sha256={actual}":
            raise IntegrityError(
                f"{where}: {path} differs from its RECORD hash; the installation was modified",
                plugin=name,
                fix=f"reinstall {name}=={version} before locking",
            )
        files[path] = actual
    for path in unlisted(base, files):  # a module installed outside RECORD is pinned as found
        files[path] = _hash(os.path.join(base, path), where, name, path) or ""
    return LockedLibrary(name, version, MappingProxyType(files))


def check_libraries(locked: Mapping[str, LockedLibrary]) -> int:
    """Re-hash every file of every locked library; raise :class:`LockMismatchError` naming the
    distribution and the file on any drift. Returns the number of files hashed."""
    count = 0
    for key in sorted(locked):
        entry = locked[key]
        try:
            dist = metadata.distribution(entry.name)
        except metadata.PackageNotFoundError:
            raise drift(entry, "is no longer installed") from None
        version = installed_version(entry.name)
        if version != entry.version:
            raise drift(entry, f"is now version {version}")
        count += _check_files(dist, entry)
    return count


_verified_lock: str | None = None  # sha256 of the lock bytes whose libraries this process checked


def remember_verified(lock_bytes: bytes) -> None:
    """The launcher checked every library of this lock before importing any of them."""
    global _verified_lock  # noqa: PLW0603 - one check per process, before imports
    _verified_lock = hashlib.sha256(lock_bytes).hexdigest()


def verified_in_this_process(lock_bytes: bytes) -> bool:
    return _verified_lock is not None and _verified_lock == hashlib.sha256(lock_bytes).hexdigest()


def _check_files(dist: metadata.Distribution, entry: LockedLibrary) -> int:
    where = f"{entry.name} {entry.version}"
    base = str(dist.locate_file(""))
    for path, expected in entry.files.items():
        actual = _hash(os.path.join(base, path), where, entry.name, path)
        if actual != expected:
            raise drift(entry, f"file {path} {'is missing' if actual is None else 'changed'}")
    rows = {path for path, _ in _rows(dist, where, entry.name)}
    added = sorted(
        (rows - set(entry.files)) - {p for p in rows if not os.path.exists(os.path.join(base, p))}
    ) + unlisted(base, entry.files)
    if added:
        raise drift(entry, f"has a file the lock does not list: {added[0]}")
    return len(entry.files)


def _rows(dist: metadata.Distribution, where: str, name: str) -> list[tuple[str, str]]:
    """RECORD rows inside the install folder (scripts elsewhere, ``../``, are not imported), the
    RECORD itself left out (it is what an attacker rewrites; the lock holds the hashes)."""
    rows = parse_record(dist.read_text("RECORD"), where=where, name=name)
    return [
        (path, value)
        for path, value in rows
        if not path.startswith(("../", "/"))
        and not path.endswith(".dist-info/RECORD")
        and "__pycache__" not in path.split("/")
    ]


LOADABLE = (".py", ".pyc", ".so", ".pyd", ".pth")


def unlisted(base: str, known: Mapping[str, str]) -> list[str]:
    """Loadable files (sources, extension modules, .pth) in the distribution's own folders that
    ``known`` does not list: Python could import them. Only folders holding its files are listed,
    so a namespace folder shared with another distribution, or site-packages itself, is not."""
    folders = {os.path.dirname(p) for p in known} - {""}
    extra: list[str] = []
    for folder in sorted(folders):
        try:
            names = os.listdir(os.path.join(base, folder))
        except OSError:
            continue
        extra.extend(
            f"{folder}/{n}" for n in sorted(names) if n.endswith(LOADABLE) and f"{folder}/{n}" not in known
        )
    return extra


def _hash(location: str, where: str, name: str, path: str) -> str | None:
    try:
        with open(location, "rb") as handle:
            return record_hash(handle.read())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IntegrityError(f"{where}: cannot read {path}: {exc.strerror}", plugin=name) from exc


def drift(entry: LockedLibrary, what: str) -> LockMismatchError:
    return LockMismatchError(
        f"library {entry.name} {entry.version} drifted from the lock: {what}",
        fix=f"reinstall {entry.name}=={entry.version} (pip install --force-reinstall), "
        "or re-lock with `enkrypted plugins lock` if the change is wanted",
    )
