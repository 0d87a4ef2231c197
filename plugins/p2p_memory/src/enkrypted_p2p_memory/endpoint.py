"""Endpoints on the process-wide switchboard: the broker of the memory transport.

An endpoint registers under ``(network, peer_id)``; ``connect`` hands the dialled endpoint the
other end of a fresh :func:`~.memory.memory_pair`, which its ``incoming()`` yields.  Every count
is bounded: endpoints per process, links per endpoint, links waiting to be accepted.
"""

from __future__ import annotations

__all__ = ["MAX_ENDPOINTS", "MAX_LINKS", "MAX_PENDING", "MemoryEndpoint", "Switchboard",
           "check_id"]

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from typing import Final

from enkrypted_shell.contracts import LinkClosedLocally

from .errors import MemoryUsageError, NoSuchPeer, Refused
from .memory import MAX_PDU_BYTES, MemoryLink, memory_pair

MAX_ENDPOINTS: Final = 1024
"""Endpoints one process may hold at once (all networks together)."""
MAX_LINKS: Final = 256
"""Open links per endpoint (dialled and accepted together)."""
MAX_PENDING: Final = 64
"""Links opened to an endpoint that its ``incoming()`` has not yielded yet."""
_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_id(value: object, what: str) -> str:
    """A peer id or network name: 1-64 of ``A-Z a-z 0-9 _ . -``, not starting with a symbol."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise MemoryUsageError(f"{what} must be 1-64 letters, digits, '_', '.' or '-', "
                               f"not {value!r}")
    return value


class Switchboard:
    """Who is registered where; one per process (:data:`SWITCHBOARD`)."""

    def __init__(self, max_endpoints: int = MAX_ENDPOINTS) -> None:
        self._max = max_endpoints
        self._endpoints: dict[tuple[str, str], MemoryEndpoint] = {}

    def register(self, network: str, peer_id: str | None) -> MemoryEndpoint:
        if len(self._endpoints) >= self._max:
            raise Refused(f"the switchboard holds {self._max} endpoints already")
        if peer_id is None:
            peer_id = "peer-" + secrets.token_hex(8)
            while (network, peer_id) in self._endpoints:
                peer_id = "peer-" + secrets.token_hex(8)
        elif (network, check_id(peer_id, "peer id")) in self._endpoints:
            raise Refused(f"ID taken: {peer_id!r} is registered on network {network!r}")
        endpoint = MemoryEndpoint(self, network, peer_id)
        self._endpoints[(network, peer_id)] = endpoint
        return endpoint

    def lookup(self, network: str, peer_id: str) -> MemoryEndpoint | None:
        return self._endpoints.get((network, peer_id))

    def unregister(self, endpoint: MemoryEndpoint) -> None:
        key = (endpoint.network, endpoint.local_id)
        if self._endpoints.get(key) is endpoint:
            del self._endpoints[key]

    def __len__(self) -> int:
        return len(self._endpoints)


class MemoryEndpoint:
    """A p2p 2.0 :class:`~enkrypted_shell.contracts.Endpoint` in this process."""

    def __init__(self, board: Switchboard, network: str, local_id: str,
                 max_pdu_bytes: int = MAX_PDU_BYTES) -> None:
        self._board = board
        self.network = network
        self._local_id = local_id
        self._max_pdu_bytes = max_pdu_bytes
        self._links: set[MemoryLink] = set()
        self._incoming: asyncio.Queue[MemoryLink | None] = asyncio.Queue(MAX_PENDING + 1)
        self._closed = False

    @property
    def local_id(self) -> str:
        return self._local_id

    @property
    def links(self) -> frozenset[MemoryLink]:
        return frozenset(self._links)

    async def connect(self, peer_id: str, timeout: float | None = None) -> MemoryLink:
        """A link to ``peer_id`` on our network; :class:`NoSuchPeer` (the contract's
        ``PeerUnavailable``) if nobody holds that id or it accepts no more links.  Immediate, so
        ``timeout`` is only checked."""
        if self._closed:
            raise LinkClosedLocally(f"endpoint {self._local_id!r} is closed")
        if timeout is not None and not timeout > 0:
            raise MemoryUsageError(f"timeout must be positive seconds, not {timeout!r}")
        check_id(peer_id, "peer id")
        peer = self._board.lookup(self.network, peer_id)
        if peer is None or peer._closed:
            raise NoSuchPeer(f"no peer {peer_id!r} on network {self.network!r}")
        if len(self._links) >= MAX_LINKS:
            raise MemoryUsageError(f"endpoint {self._local_id!r} has {MAX_LINKS} links open")
        if len(peer._links) >= MAX_LINKS or peer._incoming.qsize() >= MAX_PENDING:
            raise NoSuchPeer(f"peer {peer_id!r} accepts no more links")
        ours, theirs = memory_pair(self._local_id, peer_id, self._max_pdu_bytes)
        self._adopt(ours)
        peer._adopt(theirs)
        peer._incoming.put_nowait(theirs)
        return ours

    def _adopt(self, link: MemoryLink) -> None:
        self._links.add(link)
        link.on_close = self._links.discard

    async def incoming(self) -> AsyncIterator[MemoryLink]:
        """Links peers opened to us, in order; ends when the endpoint closes."""
        while True:
            link = await self._incoming.get()
            if link is None:
                self._incoming.put_nowait(None)  # every other reader ends too
                return
            yield link

    async def aclose(self) -> None:
        """Leave the switchboard, close every link (peers see ``LinkBroken``); idempotent."""
        if self._closed:
            return
        self._closed = True
        self._board.unregister(self)
        for link in list(self._links):
            await link.close()
        while not self._incoming.empty():
            self._incoming.get_nowait()  # closed just above: they were ours too
        self._incoming.put_nowait(None)

    async def __aenter__(self) -> MemoryEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


SWITCHBOARD: Final = Switchboard()
"""The process-wide switchboard every :class:`~.plugin.MemoryTransport` registers on."""
