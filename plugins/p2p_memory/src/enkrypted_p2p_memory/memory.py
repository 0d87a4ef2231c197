"""In-process links: the two ends of an ordered, reliable, bounded message pipe (a p2p 2.0
:class:`~enkrypted_shell.contracts.LinkV2`).

Each direction holds at most :data:`QUEUE_DEPTH` PDUs and :data:`QUEUE_BYTES` bytes; ``send``
waits for room (backpressure), so a fast sender never grows memory without bound.  Errors say
who ended the link: :class:`LinkClosedLocally` after our own :meth:`MemoryLink.close`,
:class:`LinkBroken` once the other end closed (after the PDUs it sent before are read).
"""

from __future__ import annotations

__all__ = ["MAX_PDU_BYTES", "QUEUE_BYTES", "QUEUE_DEPTH", "MemoryLink", "memory_pair"]

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final

from enkrypted_shell.contracts import WIRE_LIMITS, LinkBroken, LinkClosedLocally

from .errors import MemoryUsageError

MAX_PDU_BYTES: Final = WIRE_LIMITS.max_pdu_bytes  # P8.1, defined once by the shell's contract
QUEUE_DEPTH: Final = 1024
"""PDUs one direction holds before ``send`` waits."""
QUEUE_BYTES: Final = 2 * MAX_PDU_BYTES
"""Bytes one direction holds before ``send`` waits (one PDU of any legal size always fits)."""


class MemoryLink:
    """One end of an in-memory link; :func:`memory_pair` makes both."""

    def __init__(self, peer_id: str, max_pdu_bytes: int = MAX_PDU_BYTES) -> None:
        self._peer_id = peer_id
        self._max_pdu_bytes = max_pdu_bytes
        self._other: MemoryLink | None = None
        self._inbox: deque[bytes] = deque()
        self._queued = 0
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed_here = False
        self._broken: str | None = None
        self.on_close: Callable[[MemoryLink], None] | None = None

    @property
    def peer_id(self) -> str:
        return self._peer_id

    @property
    def max_pdu_bytes(self) -> int:
        return self._max_pdu_bytes

    @property
    def close_reason(self) -> str | None:
        """``None`` while open; afterwards who ended it."""
        if self._closed_here:
            return "closed locally"
        return self._broken

    def _check_open(self) -> None:
        if self._closed_here:
            raise LinkClosedLocally(f"the link to {self._peer_id} was closed by us")
        if self._broken is not None:
            raise LinkBroken(f"the link to {self._peer_id} ended: {self._broken}")

    async def send(self, pdu: bytes) -> None:
        self._check_open()
        if len(pdu) > self._max_pdu_bytes:
            raise MemoryUsageError(
                f"PDU of {len(pdu)} bytes exceeds the link's {self._max_pdu_bytes}-byte cap")
        other = self._other
        assert other is not None, "a MemoryLink is made by memory_pair"
        while other._inbox and (len(other._inbox) >= QUEUE_DEPTH
                                or other._queued + len(pdu) > QUEUE_BYTES):
            other._room.clear()
            await other._room.wait()
            self._check_open()  # either end may have closed while we waited
        other._inbox.append(bytes(pdu))
        other._queued += len(pdu)
        other._readable.set()

    async def receive(self) -> bytes:
        while not self._inbox:
            self._check_open()
            self._readable.clear()
            await self._readable.wait()
        if self._closed_here:
            raise LinkClosedLocally(f"the link to {self._peer_id} was closed by us")
        pdu = self._inbox.popleft()
        self._queued -= len(pdu)
        self._room.set()
        return pdu

    async def close(self) -> None:
        """Close both ends: the other end reads what was already sent, then :class:`LinkBroken`."""
        if self._closed_here:
            return
        self._closed_here = True
        self._inbox.clear()  # nobody reads it any more
        self._queued = 0
        for event in (self._readable, self._room):
            event.set()
        other = self._other
        if other is not None and other._broken is None and not other._closed_here:
            other._broken = f"{other._peer_id} closed the link"
            other._readable.set()
            other._room.set()
        if self.on_close is not None:
            callback, self.on_close = self.on_close, None
            callback(self)


def memory_pair(first: str, second: str,
                max_pdu_bytes: int = MAX_PDU_BYTES) -> tuple[MemoryLink, MemoryLink]:
    """``(first's end, talking to second; second's end, talking to first)``."""
    a, b = MemoryLink(second, max_pdu_bytes), MemoryLink(first, max_pdu_bytes)
    a._other, b._other = b, a
    return a, b
