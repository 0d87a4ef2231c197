"""The plugin lock (pylock.toml-inspired): one pinned distribution per slot.

::

    lock-version = "1.0"
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

``run --locked`` refuses any drift and names it.
"""

from __future__ import annotations

__all__ = ["LOCK_VERSION", "Lock", "LockEntry", "check_locked", "dump_lock", "parse_lock"]

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ..contracts import SLOTS
from ..errors import LockMismatchError, ShellUsageError

LOCK_VERSION = "1.0"


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

    doc = {"lock-version": LOCK_VERSION, "created-by": lock.created_by, "packages": packages}
    return tomli_w.dumps(doc)


def parse_lock(text: str | bytes, *, source: str) -> Lock:
    """Parse a lock (text, or the file's bytes, which must be UTF-8); a malformed lock raises
    :class:`ShellUsageError` naming ``source``."""
    try:
        doc = tomllib.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except UnicodeDecodeError as exc:
        raise ShellUsageError(f"{source}: not a valid lock file (not UTF-8: {exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ShellUsageError(f"{source}: not a valid lock file ({exc})") from exc
    except RecursionError as exc:
        raise ShellUsageError(f"{source}: not a valid lock file (nested too deeply)") from exc
    if doc.get("lock-version") != LOCK_VERSION:
        raise ShellUsageError(
            f"{source}: lock-version {doc.get('lock-version')!r} is not {LOCK_VERSION!r}",
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
    return Lock(entries, created_by)


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
