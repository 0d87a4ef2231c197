"""In-memory links that behave like the p2p contract's :class:`~enkrypted_shell.contracts.Link`."""

from __future__ import annotations

__all__ = ["MemoryLink", "memory_link_pair"]

import asyncio

from ..contracts import WIRE_LIMITS, LinkBroken, LinkClosedLocally, LocalMisuse, WireLimits

_CLOSED = object()


class MemoryLink:
    """One end of an ordered, reliable in-memory link. Closing either end ends both: the closing
    side then gets :class:`LinkClosedLocally`, the other :class:`LinkBroken` once its queue drains."""

    def __init__(self, peer_id: str, limits: WireLimits = WIRE_LIMITS) -> None:
        self._peer_id = peer_id
        self._limits = limits
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._other: MemoryLink | None = None
        self._closed_here = False
        self._closed_there = False

    @property
    def peer_id(self) -> str:
        return self._peer_id

    async def send(self, pdu: bytes) -> None:
        if self._closed_here:
            raise LinkClosedLocally(f"link to {self._peer_id} was closed by us")
        if self._closed_there or self._other is None:
            raise LinkBroken(f"link to {self._peer_id} was closed by the peer")
        if len(pdu) > self._limits.max_pdu_bytes:
            raise LocalMisuse(f"PDU of {len(pdu)} bytes exceeds the {self._limits.max_pdu_bytes}-byte cap")
        self._other._inbox.put_nowait(bytes(pdu))

    async def receive(self) -> bytes:
        if self._closed_here:
            raise LinkClosedLocally(f"link to {self._peer_id} was closed by us")
        item = await self._inbox.get()
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)  # every later receive ends too
            if self._closed_here:
                raise LinkClosedLocally(f"link to {self._peer_id} was closed by us")
            raise LinkBroken(f"link to {self._peer_id} was closed by the peer")
        assert isinstance(item, bytes)
        return item

    async def close(self) -> None:
        if self._closed_here:
            return
        self._closed_here = True
        self._inbox.put_nowait(_CLOSED)
        if self._other is not None and not self._other._closed_there:
            self._other._closed_there = True
            self._other._inbox.put_nowait(_CLOSED)


def memory_link_pair(
    first: str = "alice", second: str = "bob", limits: WireLimits = WIRE_LIMITS
) -> tuple[MemoryLink, MemoryLink]:
    """Two connected links: ``first``'s end (whose peer is ``second``) and ``second``'s end."""
    a, b = MemoryLink(second, limits), MemoryLink(first, limits)
    a._other, b._other = b, a
    return a, b
