"""In-process links: two ends of an ordered, reliable, bounded message pipe (contract p2p 1.0).

This is the transport the demo and the tests use today; the WebRTC data-channel transport and the
PeerJS-compatible broker arrive in their own issue and will sit beside it.
"""

from __future__ import annotations

__all__ = ["MAX_PDU_BYTES", "MemoryLink", "memory_pair"]

import asyncio
from typing import Final

from enkrypted_shell.contracts import WIRE_LIMITS, LinkClosed

from .errors import P2PUsageError

MAX_PDU_BYTES: Final = WIRE_LIMITS.max_pdu_bytes  # P8.1, defined once by the shell's contract
_QUEUE_DEPTH: Final = 1024
_CLOSED: Final = object()


class MemoryLink:
    """One end of an in-memory link."""

    def __init__(self, peer_id: str, inbox: asyncio.Queue[object], outbox: asyncio.Queue[object]):
        self._peer_id = peer_id
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False

    @property
    def peer_id(self) -> str:
        return self._peer_id

    async def send(self, pdu: bytes) -> None:
        if self._closed:
            raise LinkClosed(f"link to {self._peer_id} is closed")
        if len(pdu) > MAX_PDU_BYTES:
            raise P2PUsageError(f"PDU of {len(pdu)} bytes exceeds the {MAX_PDU_BYTES}-byte cap")
        await self._outbox.put(bytes(pdu))

    async def receive(self) -> bytes:
        if self._closed:
            raise LinkClosed(f"link to {self._peer_id} is closed")
        item = await self._inbox.get()
        if item is _CLOSED:
            self._closed = True
            raise LinkClosed(f"{self._peer_id} closed the link")
        assert isinstance(item, bytes)
        return item

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._outbox.put(_CLOSED)


def memory_pair(first: str, second: str) -> tuple[MemoryLink, MemoryLink]:
    """``(link held by first, talking to second; link held by second, talking to first)``."""
    a_to_b: asyncio.Queue[object] = asyncio.Queue(_QUEUE_DEPTH)
    b_to_a: asyncio.Queue[object] = asyncio.Queue(_QUEUE_DEPTH)
    return MemoryLink(second, b_to_a, a_to_b), MemoryLink(first, a_to_b, b_to_a)
