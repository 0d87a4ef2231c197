"""What the chat keeps between runs, in the ui slot's namespace of the profile store.

:class:`ChatStore` sits on the store contract (:class:`ProfileStore`, ``context.store``, namespace
``slot:ui``) and is the only place the TUI and the ``history`` command read or write it:

- table ``contacts``: peer id -> ``{"name", "pinned", "verified", "fast"}``; ``pinned`` is the
  identity fingerprint first seen (or taken from an invite link), ``verified`` whether the user
  compared the safety number for that fingerprint, ``fast`` the contact's default for the file
  fast path (reduced protection; absent in older records: off);
- stream ``history:<peer id>``: one JSON record per message in or out and per receipt;
- table ``sessions``: peer id -> :meth:`ChatService.export_state` bytes, to resume after a restart;
- stream ``group:<group id>``: one JSON record per group message in or out (with the sender's peer
  id and fingerprint, or the recipients' fingerprints) and per member receipt (p2p 2.2);
- table ``group_keys``: group id -> ``{peer id: fingerprint}``, the member keys first seen (a
  later membership with another key for the same peer id is a changed key).

:class:`MemoryProfileStore` implements the store contract in memory, for tests and screenshots.
Records are our own (sealed by the store), but still decoded defensively: a malformed one is
skipped and counted, never fatal.
"""

from __future__ import annotations

__all__ = ["ChatStore", "Contact", "GroupLine", "Line", "MemoryProfileStore"]

import json
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from enkrypted_shell.contracts import ProfileStore

from .errors import BadInvite
from .invite import check_peer_id

Direction = Literal["in", "out", "note"]
CONTACTS: Final = "contacts"
SESSIONS: Final = "sessions"
GROUP_KEYS: Final = "group_keys"
MAX_GROUP_MEMBERS: Final = 256
PAGE: Final = 10_000
MAX_PAGES: Final = 20
"""A history stream is scanned for its tail at most 200,000 records deep."""
MAX_CONTACTS: Final = 1000
MAX_SESSION_BYTES: Final = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Contact:
    peer_id: str
    name: str = ""
    pinned: str = ""
    verified: bool = False
    fast: bool = False
    """Send files to this contact on the fast path (reduced protection) by default."""


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a conversation: a message in or out (``delivered``: its receipt came), or a
    note from the ui itself (never stored)."""

    direction: Direction
    text: str
    at: float
    message_id: str = ""
    delivered: bool = False


@dataclass(slots=True)
class GroupLine:
    """One line of a group conversation: a member's message (``sender``: its peer id, ``sender_fp``
    its fingerprint), ours (``recipients``: the members' fingerprints when it was sent;
    ``received``: those whose receipt came), or a note of the ui (never stored)."""

    direction: Direction
    text: str
    at: float
    message_id: str = ""
    sender: str = ""
    sender_fp: str = ""
    recipients: tuple[str, ...] = ()
    received: set[str] = field(default_factory=set)


def _stream(peer_id: str) -> bytes:
    return b"history:" + peer_id.encode()


def _group_stream(group_id: str) -> bytes:
    return b"group:" + group_id.encode()


class ChatStore:
    """Contacts, history and saved sessions over one :class:`ProfileStore` namespace."""

    def __init__(self, store: ProfileStore) -> None:
        self.store = store
        self.skipped = 0
        """Malformed records skipped while reading (should stay 0)."""

    # contacts ---------------------------------------------------------------------------------
    def contacts(self) -> list[Contact]:
        out = []
        for key, value in self.store.items(CONTACTS)[:MAX_CONTACTS]:
            try:
                doc = json.loads(value)
                out.append(
                    Contact(
                        check_peer_id(key.decode()),
                        str(doc["name"]),
                        str(doc["pinned"]),
                        doc["verified"] is True,
                        doc.get("fast") is True,
                    )
                )
            except (ValueError, KeyError, TypeError, BadInvite):
                self.skipped += 1
        return out

    def save_contact(self, contact: Contact) -> None:
        doc = {
            "name": contact.name,
            "pinned": contact.pinned,
            "verified": contact.verified,
            "fast": contact.fast,
        }
        self.store.put(CONTACTS, contact.peer_id.encode(), json.dumps(doc).encode())

    # history ----------------------------------------------------------------------------------
    def append(self, peer_id: str, line: Line) -> int:
        """Store a message line; its sequence number in the peer's stream."""
        doc = {"k": line.direction, "id": line.message_id, "t": line.text, "at": line.at}
        return self.store.append(_stream(peer_id), json.dumps(doc).encode())

    def append_receipt(self, peer_id: str, message_id: str) -> int:
        return self.store.append(
            _stream(peer_id), json.dumps({"k": "receipt", "id": message_id}).encode()
        )

    def history(self, peer_id: str, limit: int = 200) -> list[Line]:
        """The last ``limit`` messages with ``peer_id``, oldest first, receipts folded in."""
        tail: deque[Line] = deque(maxlen=max(1, limit))
        delivered: set[str] = set()
        after = 0
        for _ in range(MAX_PAGES):
            page = self.store.read(_stream(peer_id), after=after, limit=PAGE)
            for seq, value in page:
                after = seq
                self._fold(value, tail, delivered)
            if len(page) < PAGE:
                break
        return [replace(x, delivered=True) if x.message_id in delivered else x for x in tail]

    def _fold(self, value: bytes, tail: deque[Line], delivered: set[str]) -> None:
        try:
            doc = json.loads(value)
            kind, message_id = doc["k"], str(doc["id"])
            if kind == "receipt":
                delivered.add(message_id)
            elif kind in ("in", "out"):
                tail.append(Line(kind, str(doc["t"]), float(doc["at"]), message_id, kind == "in"))
            else:
                raise ValueError(kind)
        except (ValueError, KeyError, TypeError):
            self.skipped += 1

    # groups (p2p 2.2) ------------------------------------------------------------------------
    def append_group(self, group_id: str, line: GroupLine) -> int:
        """Store a group message line; its sequence number in the group's stream."""
        doc = {"k": line.direction, "id": line.message_id, "t": line.text, "at": line.at,
               "from": line.sender, "fp": line.sender_fp, "to": list(line.recipients)}
        return self.store.append(_group_stream(group_id), json.dumps(doc).encode())

    def append_group_receipt(self, group_id: str, message_id: str, fingerprint: str) -> int:
        doc = {"k": "receipt", "id": message_id, "fp": fingerprint}
        return self.store.append(_group_stream(group_id), json.dumps(doc).encode())

    def group_history(self, group_id: str, limit: int = 200) -> list[GroupLine]:
        """The last ``limit`` messages of the group, oldest first, receipts folded in."""
        tail: deque[GroupLine] = deque(maxlen=max(1, limit))
        receipts: dict[str, set[str]] = {}
        after = 0
        for _ in range(MAX_PAGES):
            page = self.store.read(_group_stream(group_id), after=after, limit=PAGE)
            for seq, value in page:
                after = seq
                self._fold_group(value, tail, receipts)
            if len(page) < PAGE:
                break
        for line in tail:
            line.received = receipts.get(line.message_id, set()) & set(line.recipients)
        return list(tail)

    def _fold_group(self, value: bytes, tail: deque[GroupLine],
                    receipts: dict[str, set[str]]) -> None:
        try:
            doc = json.loads(value)
            kind, message_id = doc["k"], str(doc["id"])
            if kind == "receipt":
                if len(receipts) < PAGE:
                    receipts.setdefault(message_id, set()).add(str(doc["fp"]))
            elif kind in ("in", "out"):
                to = tuple(str(x) for x in doc["to"][:MAX_GROUP_MEMBERS])
                tail.append(GroupLine(kind, str(doc["t"]), float(doc["at"]), message_id,
                                      str(doc["from"]), str(doc["fp"]), to))
            else:
                raise ValueError(kind)
        except (ValueError, KeyError, TypeError):
            self.skipped += 1

    def group_keys(self, group_id: str) -> dict[str, str]:
        """The member keys first seen in the group: peer id -> fingerprint."""
        raw = self.store.get(GROUP_KEYS, group_id.encode())
        try:
            doc = json.loads(raw) if raw is not None else {}
            return {str(k): str(v) for k, v in list(doc.items())[:MAX_GROUP_MEMBERS]}
        except (ValueError, AttributeError):
            self.skipped += 1
            return {}

    def save_group_keys(self, group_id: str, keys: dict[str, str]) -> None:
        self.store.put(GROUP_KEYS, group_id.encode(), json.dumps(keys).encode())

    # sessions ---------------------------------------------------------------------------------
    def saved_sessions(self) -> dict[str, bytes]:
        return {
            key.decode(): value
            for key, value in self.store.items(SESSIONS)[:MAX_CONTACTS]
            if len(value) <= MAX_SESSION_BYTES
        }

    def save_session(self, peer_id: str, state: bytes | None) -> None:
        if state is None:
            self.store.delete(SESSIONS, peer_id.encode())
        elif len(state) <= MAX_SESSION_BYTES:
            self.store.put(SESSIONS, peer_id.encode(), state)


class MemoryProfileStore:
    """The store contract in memory (no encryption, no durability): for tests and screenshots."""

    def __init__(self, namespace: str = "slot:ui") -> None:
        self._namespace = namespace
        self.tables: dict[str, dict[bytes, bytes]] = {}
        self.streams: dict[bytes, list[bytes]] = {}

    @property
    def namespace(self) -> str:
        return self._namespace

    def get(self, table: str, key: bytes) -> bytes | None:
        return self.tables.get(table, {}).get(key)

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.tables.setdefault(table, {})[bytes(key)] = bytes(value)

    def delete(self, table: str, key: bytes) -> bool:
        return self.tables.get(table, {}).pop(key, None) is not None

    def items(self, table: str) -> list[tuple[bytes, bytes]]:
        return sorted(self.tables.get(table, {}).items())

    def append(self, stream: bytes, value: bytes) -> int:
        entries = self.streams.setdefault(bytes(stream), [])
        entries.append(bytes(value))
        return len(entries)

    def read(
        self, stream: bytes, *, after: int = 0, limit: int | None = None
    ) -> list[tuple[int, bytes]]:
        entries = self.streams.get(stream, [])
        count = min(limit if limit is not None else 10_000, 10_000)
        return [(i + 1, v) for i, v in enumerate(entries)][after : after + count]
