"""A tiny in-test switchboard implementing the p2p contract 2.0 ``Endpoint`` / ``LinkV2`` in
memory, with the faults the chat-service tests need: kill a link (PDUs in flight are lost), refuse
dials for a while, unregister a peer (a killed process) and register it again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from enkrypted_shell.contracts import LinkBroken, LinkClosedLocally, PeerUnavailable

_CLOSED = object()


class SwitchLink:
    max_pdu_bytes = 16 * 1024 * 1024

    def __init__(self, peer_id: str) -> None:
        self._peer_id = peer_id
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self.other: SwitchLink | None = None
        self._reason: str | None = None
        self.sent: list[bytes] = []

    @property
    def peer_id(self) -> str:
        return self._peer_id

    @property
    def close_reason(self) -> str | None:
        return self._reason

    async def send(self, pdu: bytes) -> None:
        if self._reason is not None:
            raise (LinkClosedLocally if self._reason == "closed locally" else LinkBroken)(
                self._reason)
        assert self.other is not None
        self.sent.append(pdu)
        if self.other._reason is None:
            self.other._inbox.put_nowait(bytes(pdu))

    async def receive(self) -> bytes:
        if self._reason == "closed locally":
            raise LinkClosedLocally(self._reason)
        item = await self._inbox.get()
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)
            raise (LinkClosedLocally if self._reason == "closed locally" else LinkBroken)(
                self._reason or "broken")
        assert isinstance(item, bytes)
        return item

    def _end(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
            while not self._inbox.empty():  # PDUs not yet read are lost with the link
                self._inbox.get_nowait()
            self._inbox.put_nowait(_CLOSED)

    async def close(self) -> None:
        self._end("closed locally")
        if self.other is not None:
            self.other._end("the peer closed the link")

    def kill(self) -> None:
        """The connection breaks under both ends (what closing the RTCPeerConnection does)."""
        self._end("the connection failed")
        if self.other is not None:
            self.other._end("the connection failed")


class Switchboard:
    def __init__(self) -> None:
        self.endpoints: dict[str, SwitchEndpoint] = {}
        self.links: list[SwitchLink] = []
        self.refuse = False
        self.dials = 0

    def open(self, peer_id: str) -> SwitchEndpoint:
        endpoint = SwitchEndpoint(self, peer_id)
        self.endpoints[peer_id] = endpoint
        return endpoint

    def kill_all(self) -> int:
        live = [link for link in self.links if link.close_reason is None]
        for link in live:
            link.kill()
        return len(live)


class SwitchEndpoint:
    def __init__(self, board: Switchboard, peer_id: str) -> None:
        self.board, self._id = board, peer_id
        self._incoming: asyncio.Queue[SwitchLink | None] = asyncio.Queue()
        self.closed = False

    @property
    def local_id(self) -> str:
        return self._id

    async def connect(self, peer_id: str, timeout: float | None = None) -> SwitchLink:
        if self.closed:
            raise LinkClosedLocally("endpoint closed")
        self.board.dials += 1
        await asyncio.sleep(0.01)
        target = self.board.endpoints.get(peer_id)
        if self.board.refuse or target is None or target.closed:
            raise PeerUnavailable(f"no peer {peer_id!r}")
        ours, theirs = SwitchLink(peer_id), SwitchLink(self._id)
        ours.other, theirs.other = theirs, ours
        self.board.links += [ours, theirs]
        target._incoming.put_nowait(theirs)
        return ours

    async def incoming(self) -> AsyncIterator[SwitchLink]:
        while True:
            link = await self._incoming.get()
            if link is None:
                return
            yield link

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self._incoming.put_nowait(None)
            if self.board.endpoints.get(self._id) is self:
                del self.board.endpoints[self._id]
