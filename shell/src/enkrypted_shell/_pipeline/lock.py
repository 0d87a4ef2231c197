"""The lock (pylock.toml-inspired): one pinned plugin per slot, and every library they run on.

::

    lock-version = "2.0"
    created-by = "enkrypted-shell 0.1.0"

    [[packages]]
    slot = "crypto"
    plugin = "crypto-pyca"
    name = "enkrypted-crypto"
    version = "0.1.0"
    content-digest = "sha256:…"    # RECORD-derived (enkrypted_shell._pipeline.integrity.content_digest)
    wheel-sha256 = "…"             # optional: set when installed from a registry
    index = "http://…/simple/"     # optional
    signer = "…"                   # optional: provenance signer identity

    [[libraries]]                  # the shell and every third-party distribution the plugins
    name = "cryptography"          # and the shell import (``closure.runtime_closure``)
    version = "50.0.2"
    files-digest = "sha256:…"      # over the table below
    wheel-sha256 = "…"             # optional: when the installer recorded it (direct_url.json)
    [libraries.files]              # every installed file, hashed at lock time (RECORD form)
    "cryptography/__init__.py" = "…"

``run --locked`` / ``plugins verify --locked`` refuse any drift and name it (``closure``).
"""

from __future__ import annotations

__all__ = ["LOCK_VERSION", "Lock", "LockEntry", "check_locked", "dump_lock", "parse_lock"]

import contextlib
import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType

from .._state.files import read_home_file, write_atomic
from ..contracts import SLOTS
from ..errors import HomeError, LockMismatchError, ShellUsageError
from ..limits import LIMITS
from .closure import LockedLibrary

LOCK_VERSION = "2.0"


@dataclass(frozen=True, slots=True)
class LockEntry:
    """One pinned plugin."""

    slot: str
    plugin: str
    name: str
    version: str
    content_digest: str
    wheel_sha256: str | None = None
    index: str | None = None
    signer: str | None = None
    # Other plugin distributions whose code this plugin imports (e.g. a second crypto backend on
    # the first one's protocol code), as "name==version sha256:<content digest>".
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lock:
    """The pinned set, by slot."""

    entries: Mapping[str, LockEntry]
    created_by: str = ""
    libraries: Mapping[str, LockedLibrary] = field(default_factory=lambda: MappingProxyType({}))

    def dists(self) -> dict[str, str]:
        return {slot: e.name for slot, e in self.entries.items()}


def _toml_key(field_name: str) -> str:
    return field_name.replace("_", "-")


def dump_lock(lock: Lock) -> str:
    packages = []
    for slot in SLOTS:
        entry = lock.entries.get(slot)
        if entry is None:
            continue
        row = {_toml_key(f.name): getattr(entry, f.name) for f in fields(LockEntry)}
        row["dependencies"] = list(entry.dependencies)
        packages.append({k: v for k, v in row.items() if v is not None and v != []})
    import tomli_w  # only `plugins lock` writes; keep it out of start-up

    libraries = [
        {
            "name": lib.name,
            "version": lib.version,
            "files-digest": lib.files_digest,
            "files": dict(sorted(lib.files.items())),
        }
        for _, lib in sorted(lock.libraries.items())
    ]
    doc = {
        "lock-version": LOCK_VERSION,
        "created-by": lock.created_by,
        "packages": packages,
        "libraries": libraries,
    }
    return tomli_w.dumps(doc)


_PARSED: dict[str, Lock] = {}  # sha256 of lock bytes -> the lock, parsed once per process


def parse_lock(text: str | bytes, *, source: str, cache: Path | None = None) -> Lock:
    """Parse a lock (text, or the file's bytes, which must be UTF-8); a malformed lock raises
    :class:`ShellUsageError` naming ``source``.

    The same bytes are parsed once per process (the launcher and the pipeline both read the lock).
    ``cache`` (``HOME/cache/locks``) keeps the TOML document as JSON under the sha256 of the lock
    bytes: ``tomllib`` takes tens of milliseconds on a 1,300-file lock, ``json`` a few. Every
    check below runs on the document either way; the cache is trusted as HOME is."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8")
    key = hashlib.sha256(raw).hexdigest()
    known = _PARSED.get(key)
    if known is not None:
        return known
    doc = _cached_document(cache, key)
    if doc is None:
        doc = _toml(text, source)
        _store_document(cache, key, doc)
    lock = _lock(doc, source)
    _PARSED[key] = lock
    return lock


def _cached_document(cache: Path | None, key: str) -> dict[str, object] | None:
    if cache is None:
        return None
    try:
        data = read_home_file(cache / f"{key}.json")
        doc = json.loads(data) if data is not None else None
    except (HomeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _store_document(cache: Path | None, key: str, doc: dict[str, object]) -> None:
    if cache is None:
        return
    with contextlib.suppress(HomeError, TypeError, ValueError):  # best effort; a datetime: no cache
        write_atomic(cache / f"{key}.json", json.dumps(doc).encode("utf-8"), durable=False)


def _toml(text: str | bytes, source: str) -> dict[str, object]:
    try:
        return tomllib.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError as exc:
        raise ShellUsageError(f"{source}: not a valid lock file (not UTF-8: {exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ShellUsageError(f"{source}: not a valid lock file ({exc})") from exc
    except RecursionError as exc:
        raise ShellUsageError(f"{source}: not a valid lock file (nested too deeply)") from exc


def _lock(doc: dict[str, object], source: str) -> Lock:
    if doc.get("lock-version") != LOCK_VERSION:
        raise ShellUsageError(
            f"{source}: lock-version {doc.get('lock-version')!r} is not {LOCK_VERSION!r} "
            "(a 1.0 lock does not pin the libraries the plugins run on)",
            fix="re-create it with `enkrypted plugins lock`",
        )
    packages = doc.get("packages", [])
    if not isinstance(packages, list):
        raise ShellUsageError(f"{source}: packages must be an array of [[packages]] tables")
    created_by = doc.get("created-by", "")
    if not isinstance(created_by, str):
        raise ShellUsageError(f"{source}: created-by must be a string")
    entries: dict[str, LockEntry] = {}
    for row in packages:
        entry = _entry(row, source)
        if entry.slot in entries:
            raise ShellUsageError(f"{source}: slot {entry.slot!r} is pinned twice")
        entries[entry.slot] = entry
    return Lock(entries, created_by, _libraries(doc.get("libraries", []), source))


def _libraries(rows: object, source: str) -> Mapping[str, LockedLibrary]:
    if not isinstance(rows, list):
        raise ShellUsageError(f"{source}: libraries must be an array of [[libraries]] tables")
    found: dict[str, LockedLibrary] = {}
    for row in rows:
        if not isinstance(row, dict):
            raise ShellUsageError(f"{source}: [[libraries]] rows must be tables")
        name, version, digest, files = (row.get(k) for k in ("name", "version", "files-digest", "files"))
        if not all(isinstance(v, str) for v in (name, version, digest)) or not isinstance(files, dict):
            raise ShellUsageError(f"{source}: a [[libraries]] row needs name, version, files-digest, files")
        if len(files) > LIMITS.provenance_files or not all(
            isinstance(p, str) and isinstance(h, str) for p, h in files.items()
        ):
            raise ShellUsageError(f"{source}: library {name!r} has a bad or oversized files table")
        assert isinstance(name, str) and isinstance(version, str)
        library = LockedLibrary(name, version, MappingProxyType(dict(files)))
        if library.files_digest != digest:
            raise ShellUsageError(f"{source}: library {name!r}: files-digest does not match its files")
        if name in found:
            raise ShellUsageError(f"{source}: library {name!r} is pinned twice")
        found[name] = library
    return MappingProxyType(found)


def _entry(row: object, source: str) -> LockEntry:
    if not isinstance(row, dict):
        raise ShellUsageError(f"{source}: [[packages]] rows must be tables")
    values: dict[str, object] = {}
    deps = row.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ShellUsageError(f"{source}: package field 'dependencies' must be a list of strings")
    for f in fields(LockEntry):
        if f.name == "dependencies":
            values[f.name] = tuple(deps)
            continue
        value = row.get(_toml_key(f.name))
        required = f.default is not None
        if (value is None and required) or (value is not None and not isinstance(value, str)):
            raise ShellUsageError(f"{source}: package field {_toml_key(f.name)!r} missing or bad")
        values[f.name] = value
    entry = LockEntry(**values)  # type: ignore[arg-type]
    if entry.slot not in SLOTS:
        raise ShellUsageError(f"{source}: unknown slot {entry.slot!r}")
    return entry


def check_locked(
    entry: LockEntry,
    *,
    plugin: str,
    name: str,
    version: str,
    digest: str,
    wheel_sha256: str | None = None,
    index: str | None = None,
    signer: str | None = None,
    dependencies: tuple[str, ...] = (),
) -> None:
    """Compare what was selected and verified with the lock; raise on any drift.

    Wheel digest, index and signer are compared whenever the lock pins them (a lock made from a
    registry install): a plugin that lost its provenance, or came from elsewhere, drifts.
    """
    drift = []
    if plugin != entry.plugin:
        drift.append(f"plugin {plugin!r} (locked {entry.plugin!r})")
    if version != entry.version:
        drift.append(f"version {version} (locked {entry.version})")
    if digest != entry.content_digest:
        drift.append(f"content digest {digest} (locked {entry.content_digest})")
    for label, have, pinned in (
        ("wheel sha256", wheel_sha256, entry.wheel_sha256),
        ("index", index, entry.index),
        ("signer", signer, entry.signer),
    ):
        if pinned is not None and have != pinned:
            drift.append(f"{label} {have or 'none (unsigned)'} (locked {pinned})")
    if tuple(sorted(dependencies)) != tuple(sorted(entry.dependencies)):
        drift.append(
            f"plugin dependencies {list(dependencies)} (locked {list(entry.dependencies)})"
        )
    if drift:
        raise LockMismatchError(
            f"{entry.slot}: {name} drifted from the lock: " + "; ".join(drift),
            plugin=plugin,
            fix=f"install {entry.name}=={entry.version} again, or re-lock if the change is wanted",
        )
