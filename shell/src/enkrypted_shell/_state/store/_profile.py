"""Profiles in HOME and the typed records the shell keeps in each one.

``HOME/profiles/NAME/store.sqlite`` (with SQLite's ``-wal`` / ``-shm`` beside it).  The shell's own
records live in namespace ``profile``; each plugin slot gets ``slot:<slot>`` through
:class:`SlotStore` and nothing else (docs/adr/0010-profile-store.md).
"""

from __future__ import annotations

__all__ = [
    "PROFILE_NS",
    "delete_profile",
    "Contact",
    "HistoryEntry",
    "PluginProfile",
    "Profile",
    "ReceivedFile",
    "SlotStore",
    "profile_dir",
    "profile_names",
    "store_path",
]

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from ...errors import ShellUsageError, StoreCorruptError
from ._vault import Vault, check_name

if TYPE_CHECKING:
    from ...contracts import CryptoService

PROFILE_NS: Final = "profile"
_PROFILE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
Verification = Literal["unverified", "verified", "changed"]


def profile_dir(home: Path, name: str) -> Path:
    if not _PROFILE.fullmatch(name):
        raise ShellUsageError(f"bad profile name {name!r} (want [a-z0-9][a-z0-9_-]{{0,31}})")
    return home / "profiles" / name


def store_path(home: Path, name: str) -> Path:
    return profile_dir(home, name) / "store.sqlite"


def profile_names(home: Path) -> list[str]:
    root = home / "profiles"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "store.sqlite").is_file())


def delete_profile(home: Path, name: str) -> None:
    folder = profile_dir(home, name)
    if not (folder / "store.sqlite").is_file():
        raise ShellUsageError(f"no profile {name!r} in {home}", fix="see: enkrypted profile list")
    # rename first (atomic), then remove: a crash never leaves a half-deleted store under the name
    doomed = folder.with_name(f".deleted-{name}")
    shutil.rmtree(doomed, ignore_errors=True)
    folder.rename(doomed)
    shutil.rmtree(doomed)


def _json(raw: bytes) -> dict[str, object]:
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise StoreCorruptError("a record in the profile store is malformed") from exc
    if not isinstance(doc, dict):
        raise StoreCorruptError("a record in the profile store is malformed")
    return doc


@dataclass(frozen=True, slots=True)
class Contact:
    name: str
    peer_id: str
    fingerprint: str
    verification: Verification = "unverified"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    seq: int
    direction: Literal["in", "out"]
    time: float
    text: str
    receipt: Literal["pending", "sent", "delivered", "read", "received"]


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    file_id: str
    peer_id: str
    name: str
    size: int
    sha256: str
    path: str
    time: float


class Profile:
    """The shell's typed view of one unlocked profile store."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    # identity ------------------------------------------------------------------------------
    def identity(self) -> tuple[str, bytes] | None:
        raw = self.vault.get("identity", PROFILE_NS, b"self")
        if raw is None:
            return None
        doc = _json(raw)
        return str(doc["backend"]), bytes.fromhex(str(doc["identity"]))

    def set_identity(self, backend: str, identity: bytes) -> None:
        doc = {"backend": backend, "identity": identity.hex()}
        self.vault.put("identity", PROFILE_NS, b"self", json.dumps(doc).encode())

    def identity_for(self, backend: str, new_identity: Callable[[], bytes]) -> bytes:
        """The profile's identity, made with ``new_identity()`` and stored on first use (one
        transaction); a usage error if it was made by another crypto backend."""
        with self.vault.transaction():
            held = self.identity()
            if held is None:
                held = (backend, new_identity())
                self.set_identity(*held)
        if held[0] != backend:
            raise ShellUsageError(
                f"the profile's identity was made by the {held[0]} backend, not {backend}",
                fix=f"select it: enkrypted --crypto ... (the plugin whose backend is {held[0]})",
            )
        return held[1]

    # contacts ------------------------------------------------------------------------------
    def contacts(self) -> list[Contact]:
        out = [Contact(**_json(v)) for _, v in self.vault.items("contacts", PROFILE_NS)]  # type: ignore[arg-type]
        return sorted(out, key=lambda c: (c.name, c.peer_id))

    def contact(self, ref: str) -> Contact:
        """By peer id, else by name."""
        raw = self.vault.get("contacts", PROFILE_NS, ref.encode())
        if raw is not None:
            return Contact(**_json(raw))  # type: ignore[arg-type]
        named = [c for c in self.contacts() if c.name == ref]
        if len(named) != 1:
            raise ShellUsageError(
                f"no contact {ref!r}" if not named else f"{len(named)} contacts are named {ref!r}",
                fix="use the peer id (enkrypted contacts list)",
            )
        return named[0]

    def save_contact(self, contact: Contact) -> None:
        self.vault.put(
            "contacts", PROFILE_NS, contact.peer_id.encode(), json.dumps(asdict(contact)).encode()
        )

    def remove_contact(self, contact: Contact) -> None:
        """The contact, its session state and its history: one transaction."""
        key = contact.peer_id.encode()
        with self.vault.transaction():
            self.vault.delete("contacts", PROFILE_NS, key)
            self.vault.delete("sessions", PROFILE_NS, key)
            self.vault.drop_log(PROFILE_NS, b"history:" + key)

    # sessions (opaque CryptoService export_state bytes) -------------------------------------
    def session(self, peer_id: str) -> bytes | None:
        return self.vault.get("sessions", PROFILE_NS, peer_id.encode())

    def save_session(self, peer_id: str, state: bytes) -> None:
        self.vault.put("sessions", PROFILE_NS, peer_id.encode(), state)

    # history -------------------------------------------------------------------------------
    def add_message(self, peer_id: str, direction: Literal["in", "out"], time: float, text: str,
                    receipt: str, *, session_state: bytes | None = None) -> int:
        """Append a message; with ``session_state``, the session that produced it is saved in the
        same transaction (issue 13: state committed before the message is released)."""
        doc = {"direction": direction, "time": time, "text": text, "receipt": receipt}
        with self.vault.transaction():
            if session_state is not None:
                self.save_session(peer_id, session_state)
            return self.vault.append(
                PROFILE_NS, b"history:" + peer_id.encode(), json.dumps(doc).encode()
            )

    def set_receipt(self, peer_id: str, seq: int, receipt: str) -> None:
        with self.vault.transaction():
            entry = self.vault.read_log(PROFILE_NS, b"history:" + peer_id.encode(),
                                        after=seq - 1, limit=1)
            if not entry or entry[0][0] != seq:
                raise ShellUsageError(f"no message {seq} with {peer_id}")
            doc = _json(entry[0][1]) | {"receipt": receipt}
            self.vault.replace_entry(PROFILE_NS, b"history:" + peer_id.encode(), seq,
                                     json.dumps(doc).encode())

    def history(self, peer_id: str, *, after: int = 0, limit: int | None = None) -> list[HistoryEntry]:
        rows = self.vault.read_log(PROFILE_NS, b"history:" + peer_id.encode(), after=after, limit=limit)
        return [HistoryEntry(seq, **_json(raw)) for seq, raw in rows]  # type: ignore[arg-type]

    # received files' index -----------------------------------------------------------------
    def add_file(self, entry: ReceivedFile) -> None:
        self.vault.put("files", PROFILE_NS, entry.file_id.encode(), json.dumps(asdict(entry)).encode())

    def files(self) -> list[ReceivedFile]:
        return [ReceivedFile(**_json(v)) for _, v in self.vault.items("files", PROFILE_NS)]  # type: ignore[arg-type]


class SlotStore:
    """What a plugin of one slot sees of the profile store: its own namespace, nothing else
    (the ``ProfileStore`` contract, ``enkrypted_shell.contracts.store``)."""

    __slots__ = ("_namespace", "_vault")

    def __init__(self, vault: Vault, slot: str) -> None:
        self._vault = vault
        self._namespace = check_name("namespace", f"slot:{slot}")

    @property
    def namespace(self) -> str:
        """Read-only: the namespace is fixed when the shell builds the context."""
        return self._namespace

    def __repr__(self) -> str:
        return f"<SlotStore {self._namespace}>"

    def get(self, table: str, key: bytes) -> bytes | None:
        return self._vault.get(table, self._namespace, key)

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self._vault.put(table, self._namespace, key, value)

    def delete(self, table: str, key: bytes) -> bool:
        return self._vault.delete(table, self._namespace, key)

    def items(self, table: str) -> list[tuple[bytes, bytes]]:
        return self._vault.items(table, self._namespace)

    def append(self, stream: bytes, value: bytes) -> int:
        return self._vault.append(self._namespace, stream, value)

    def read(self, stream: bytes, *, after: int = 0, limit: int | None = None) -> list[tuple[int, bytes]]:
        return self._vault.read_log(self._namespace, stream, after=after, limit=limit)


class PluginProfile:
    """What the wiring hands plugins of an unlocked profile: each slot's :class:`SlotStore` and
    the identity made by the loaded crypto service (docs/adr/0010-profile-store.md, item 2)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def store(self, slot: str) -> SlotStore:
        return SlotStore(self.profile.vault, slot)

    def identity(self, crypto: CryptoService) -> bytes:
        return self.profile.identity_for(crypto.backend, crypto.new_identity)
