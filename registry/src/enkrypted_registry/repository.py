"""A registry directory: configuration, keys, TUF metadata (python-tuf Metadata API) and releases.

On-disk layout (``DIR``)::

    registry.json              configuration: keys_dir, expiry per role
    releases.json              published files and their yank state (the index is generated from it)
    keys/<role>.pem            Ed25519 private keys, 0600 - operator secrets, never served (a
                               keys dir inside public/, or containing it, is refused)
    public/                    the web root, the only thing a server exposes
      tuf/N.root.json, root.json, targets.json, snapshot.json, timestamp.json,
          ui.json, p2p.json, crypto.json           (TUF metadata, consistent_snapshot = false)
      simple/…                                     (PEP 503 / 691 index, see index.py)
      plugins/<slot>/<wheel>[.metadata|.provenance]  (TUF target paths = these paths)

TUF roles: root, targets, snapshot, timestamp, and one delegated targets role per slot that is
trusted only for ``plugins/<slot>/*`` (terminating), so only that slot's key can publish it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_EXPIRY_DAYS", "ROLES", "TOP_ROLES", "Repository", "check_keys_outside_public"]

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# tuf.api.metadata re-exports its documented classes without __all__.
from tuf.api.metadata import (  # type: ignore[attr-defined]
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from .errors import RegistryUsageError
from .keys import RoleKey, generate_key, load_key
from .wheel import SLOTS

TOP_ROLES = ("root", "targets", "snapshot", "timestamp")
ROLES = TOP_ROLES + SLOTS
DEFAULT_EXPIRY_DAYS = {
    "root": 365,
    "targets": 365,
    "snapshot": 30,
    "timestamp": 7,
    "ui": 365,
    "p2p": 365,
    "crypto": 365,
}
_FORMAT = 1


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def check_keys_outside_public(keys_dir: Path, public: Path) -> None:
    """Refuse a keys directory that is the web root, lies below it, or contains it.

    Private keys must never be servable: ``serve`` (and any static host) exposes all of
    ``public/``.  Both paths are compared resolved (symlinks followed), so a keys dir reached
    through a symlink into ``public/`` is refused too."""
    keys, web = keys_dir.resolve(), public.resolve()
    if keys == web or web in keys.parents:
        raise RegistryUsageError(
            f"keys dir {keys_dir} is inside the served web root {public}; private keys would be "
            "downloadable - move them outside public/ and set keys_dir in registry.json"
        )
    if keys in web.parents:
        raise RegistryUsageError(
            f"keys dir {keys_dir} contains the served web root {public}; keep the private keys "
            "in a directory of their own outside public/ and set keys_dir in registry.json"
        )


class Repository:
    """One registry directory. Every method that changes metadata re-signs the chain up to timestamp."""

    def __init__(self, root: Path, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.root = root
        self.now = now
        config_path = root / "registry.json"
        try:
            self.config: dict[str, Any] = json.loads(config_path.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise RegistryUsageError(
                f"{root} is not a registry (no registry.json); run init"
            ) from exc
        if self.config.get("format") != _FORMAT:
            raise RegistryUsageError(
                f"{config_path}: unsupported format {self.config.get('format')}"
            )
        keys_dir = Path(self.config["keys_dir"])
        self.keys_dir = keys_dir if keys_dir.is_absolute() else root / keys_dir
        check_keys_outside_public(self.keys_dir, self.public)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive writer lock (``DIR/.lock``): one publish/revoke/rotate/refresh at a time."""
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- paths -------------------------------------------------------------------------------

    @property
    def public(self) -> Path:
        return self.root / "public"

    @property
    def tuf_dir(self) -> Path:
        return self.public / "tuf"

    def key_path(self, role: str) -> Path:
        return self.keys_dir / f"{role}.pem"

    def key(self, role: str) -> RoleKey:
        return load_key(self.key_path(role))

    # -- creation ----------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        root: Path,
        *,
        keys_dir: Path | None = None,
        expiry_days: dict[str, int] | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> Repository:
        """Create a new registry with fresh keys and version-1 metadata for every role."""
        if (root / "registry.json").exists():
            raise RegistryUsageError(f"{root} already holds a registry")
        days = dict(DEFAULT_EXPIRY_DAYS)
        for role, value in (expiry_days or {}).items():
            if role not in ROLES or value <= 0:
                raise RegistryUsageError(f"bad expiry {role}={value}: roles are {', '.join(ROLES)}")
            days[role] = value
        keys_path = keys_dir.resolve() if keys_dir else Path("keys")
        check_keys_outside_public(root / keys_path, root / "public")  # before anything is written
        root.mkdir(parents=True, exist_ok=True)
        config = {"format": _FORMAT, "keys_dir": str(keys_path), "expiry_days": days}
        _write_atomic(root / "registry.json", json.dumps(config, indent=2).encode() + b"\n")
        _write_atomic(root / "releases.json", b'{"format": 1, "projects": {}}\n')
        repo = cls(root, now=now)
        keys = {role: generate_key(repo.key_path(role)) for role in ROLES}
        repo._write_initial_metadata(keys)
        return repo

    def _write_initial_metadata(self, keys: dict[str, RoleKey]) -> None:
        root = Root(expires=self._expiry("root"), consistent_snapshot=False)
        for role in TOP_ROLES:
            root.add_key(keys[role].public, role)
        targets = Targets(expires=self._expiry("targets"))
        targets.delegations = Delegations(
            keys={keys[slot].keyid: keys[slot].public for slot in SLOTS},
            roles={
                slot: DelegatedRole(
                    name=slot,
                    keyids=[keys[slot].keyid],
                    threshold=1,
                    terminating=True,
                    paths=[f"plugins/{slot}/*"],
                )
                for slot in SLOTS
            },
        )
        self._write(Metadata(root), [keys["root"]])
        self._write(Metadata(targets), [keys["targets"]])
        for slot in SLOTS:
            self._write(Metadata(Targets(expires=self._expiry(slot))), [keys[slot]], name=slot)
        snapshot = Snapshot(expires=self._expiry("snapshot"))
        snapshot.meta = {f"{r}.json": MetaFile(version=1) for r in ("targets", *SLOTS)}
        self._write(Metadata(snapshot), [keys["snapshot"]])
        self._write_timestamp(keys["timestamp"])

    # -- metadata I/O -----------------------------------------------------------------------

    def load(self, name: str) -> Metadata[Any]:
        path = self.tuf_dir / f"{name}.json"
        try:
            return Metadata.from_bytes(path.read_bytes())
        except FileNotFoundError as exc:
            raise RegistryUsageError(f"missing TUF metadata {path}") from exc

    def _expiry(self, role: str) -> datetime:
        days = int(self.config["expiry_days"][role])
        return (self.now() + timedelta(days=days)).replace(microsecond=0)

    def _write(
        self, md: Metadata[Any], keys: Iterable[RoleKey], *, name: str | None = None
    ) -> bytes:
        md.signatures.clear()
        for key in keys:
            md.sign(key.signer, append=True)
        data = md.to_bytes(JSONSerializer(compact=False))
        role = name or md.signed.type
        if role == "root":
            # ngclient fetches roots as N.root.json; root.json is a convenience copy.
            _write_atomic(self.tuf_dir / f"{md.signed.version}.root.json", data)
        _write_atomic(self.tuf_dir / f"{role}.json", data)
        return data

    def _bump(self, md: Metadata[Any], role: str) -> None:
        md.signed.version += 1
        md.signed.expires = self._expiry(role)

    def _write_timestamp(self, key: RoleKey | None = None) -> None:
        snapshot_bytes = (self.tuf_dir / "snapshot.json").read_bytes()
        snapshot_version = Metadata.from_bytes(snapshot_bytes).signed.version
        path = self.tuf_dir / "timestamp.json"
        if path.exists():
            md = self.load("timestamp")
            self._bump(md, "timestamp")
        else:
            md = Metadata(Timestamp(expires=self._expiry("timestamp")))
        md.signed.snapshot_meta = MetaFile(
            version=snapshot_version,
            length=len(snapshot_bytes),
            hashes={"sha256": hashlib.sha256(snapshot_bytes).hexdigest()},
        )
        self._write(md, [key or self.key("timestamp")])

    def commit(self, changed: dict[str, Metadata[Any]]) -> None:
        """Record new versions of targets roles in snapshot, then re-sign snapshot and timestamp."""
        snapshot = self.load("snapshot")
        for name, md in changed.items():
            snapshot.signed.meta[f"{name}.json"] = MetaFile(version=md.signed.version)
        self._bump(snapshot, "snapshot")
        self._write(snapshot, [self.key("snapshot")])
        self._write_timestamp()

    # -- targets of a slot ---------------------------------------------------------------------

    def slot_of_key(self, keyid: str) -> str | None:
        """The slot whose delegated role lists ``keyid``, if any."""
        delegations = self.load("targets").signed.delegations
        assert delegations is not None and delegations.roles is not None
        for name, role in delegations.roles.items():
            if keyid in role.keyids:
                return str(name)
        return None

    def update_slot_targets(
        self, slot: str, key: RoleKey, add: dict[str, bytes], remove: Iterable[str] = ()
    ) -> Metadata[Any]:
        """Add (path → bytes) and remove target paths in a slot's role, sign it with ``key``."""
        md = self.load(slot)
        for path in remove:
            md.signed.targets.pop(path, None)
        for path, data in add.items():
            md.signed.targets[path] = TargetFile.from_data(path, data, ["sha256"])
        self._bump(md, slot)
        self._write(md, [key], name=slot)
        return md

    # -- expiry and rotation -----------------------------------------------------------------

    def refresh(self, role: str) -> None:
        """Re-sign ``timestamp`` (or ``snapshot`` then timestamp) with a fresh expiry."""
        if role == "snapshot":
            self.commit({})
        elif role == "timestamp":
            self._write_timestamp()
        else:
            raise RegistryUsageError(
                "refresh applies to snapshot or timestamp; use rotate for keys"
            )

    def _retire_key(self, role: str) -> RoleKey:
        old = self.key(role)
        retired = self.keys_dir / "retired" / f"{role}-{old.keyid[:16]}.pem"
        retired.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.move(str(self.key_path(role)), retired)
        return old

    def rotate(self, role: str) -> RoleKey:
        """Replace ``role``'s key; the old private key moves to ``keys/retired/``."""
        if role not in ROLES:
            raise RegistryUsageError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        old_root = self.key("root")
        old = self._retire_key(role)
        new = generate_key(self.key_path(role))
        if role in SLOTS:
            targets = self.load("targets")
            targets.signed.revoke_key(old.keyid, role)
            targets.signed.add_key(new.public, role)
            self._bump(targets, "targets")
            self._write(targets, [self.key("targets")])
            slot_md = self.load(role)
            self._bump(slot_md, role)
            self._write(slot_md, [new], name=role)
            self.commit({"targets": targets, role: slot_md})
            return new
        root = self.load("root")
        root.signed.revoke_key(old.keyid, role)
        root.signed.add_key(new.public, role)
        self._bump(root, "root")
        # A new root must be signed by the threshold of the old root keys and of the new ones
        # (TUF spec 5.3.4 / 5.3.5): when rotating root, both old and new sign.
        self._write(root, [old_root, new] if role == "root" else [old_root])
        if role == "targets":
            targets = self.load("targets")
            self._bump(targets, "targets")
            self._write(targets, [new])
            self.commit({"targets": targets})
        elif role == "snapshot":
            self.commit({})
        elif role == "timestamp":
            self._write_timestamp()
        return new

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Roles with version, expiry, key ids, threshold (and delegated paths / target counts)."""
        root = self.load("root").signed
        roles: dict[str, Any] = {}
        for name in TOP_ROLES:
            signed = self.load(name).signed
            roles[name] = {
                "version": signed.version,
                "expires": signed.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "keyids": list(root.roles[name].keyids),
                "threshold": root.roles[name].threshold,
            }
        delegations = self.load("targets").signed.delegations
        assert delegations is not None and delegations.roles is not None
        for name, role in delegations.roles.items():
            signed = self.load(name).signed
            roles[name] = {
                "version": signed.version,
                "expires": signed.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "keyids": list(role.keyids),
                "threshold": role.threshold,
                "paths": list(role.paths or []),
                "targets": len(signed.targets),
            }
        now = self.now()
        for info in roles.values():
            expires = datetime.strptime(info["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            info["expired"] = expires <= now
        releases = json.loads((self.root / "releases.json").read_text("utf-8"))["projects"]
        projects = {
            name: {
                "slot": project["slot"],
                "files": {
                    f: {"version": e["version"], "yanked": e["yanked"], "publisher": e["publisher"]}
                    for f, e in sorted(project["files"].items())
                },
            }
            for name, project in sorted(releases.items())
        }
        return {
            "root": str(self.root),
            "keys_dir": str(self.keys_dir),
            "roles": roles,
            "projects": projects,
        }
