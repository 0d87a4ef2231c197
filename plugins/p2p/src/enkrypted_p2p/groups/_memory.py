"""Bounded memories of a group member: seen ids, ciphertext history, buffered future PDUs."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from ._wire import GroupPdu, Kind

__all__ = ["History", "HistoryEntry", "SeenIds"]


class SeenIds:
    """The last ``limit`` message ids (dedup: exactly-once delivery, relay once per target)."""

    def __init__(self, limit: int, ids: list[bytes] | None = None) -> None:
        self._limit = limit
        self._ids: OrderedDict[bytes, None] = OrderedDict((i, None) for i in ids or [])

    def __contains__(self, key: bytes) -> bool:
        return key in self._ids

    def add(self, key: bytes) -> None:
        self._ids[key] = None
        self._ids.move_to_end(key)
        while len(self._ids) > self._limit:
            self._ids.popitem(last=False)

    def export(self) -> list[bytes]:
        return list(self._ids)

    def clear(self) -> None:
        self._ids.clear()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    epoch: int
    kind: Kind
    msg_id: bytes
    pdu: bytes


class History:
    """Ciphertext only: the commits and application PDUs of recent epochs, in arrival order,
    bounded in count and bytes (the oldest go first)."""

    def __init__(self, max_items: int, max_bytes: int) -> None:
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._entries: deque[HistoryEntry] = deque()
        self._bytes = 0
        self._ids: set[bytes] = set()

    def add(self, pdu: GroupPdu) -> None:
        key = pdu.msg_id + pdu.epoch.to_bytes(8, "big")  # a re-sealed message is a new entry
        if key in self._ids:
            return
        wire = pdu.encode()
        self._entries.append(HistoryEntry(pdu.epoch, pdu.kind, pdu.msg_id, wire))
        self._ids.add(key)
        self._bytes += len(wire)
        while self._entries and (
            len(self._entries) > self._max_items or self._bytes > self._max_bytes
        ):
            old = self._entries.popleft()
            self._bytes -= len(old.pdu)
            self._ids.discard(old.msg_id + old.epoch.to_bytes(8, "big"))

    def has_commit_from(self, epoch: int) -> bool:
        return any(e.kind is Kind.COMMIT and e.epoch == epoch for e in self._entries)

    def since(self, epoch: int, budget: int) -> list[bytes]:
        """Entries of ``epoch`` and later, oldest first, within ``budget`` bytes."""
        out: list[bytes] = []
        used = 0
        for entry in self._entries:
            if entry.epoch < epoch:
                continue
            if used + len(entry.pdu) + 4 > budget:
                break
            out.append(entry.pdu)
            used += len(entry.pdu) + 4
        return out

    def export(self) -> list[bytes]:
        return [e.pdu for e in self._entries]
