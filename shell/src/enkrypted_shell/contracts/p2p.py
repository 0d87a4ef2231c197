"""Slot ``p2p``, contract 1.0: links between peers.

1.0 is the in-process shape (``loopback_pair``) the demo uses; the WebRTC endpoint
(``open_endpoint``/``connect``/``incoming``) arrives as the next MAJOR with the real-peers work.
"""

from __future__ import annotations

__all__ = ["Link", "LinkBroken", "LinkClosed", "LinkClosedLocally", "TransportService"]

from typing import Protocol, runtime_checkable

from ._common import ContractError, LocalMisuse, NetworkError


class LinkClosed(ContractError):
    """The link is closed; nothing more can be sent or received. Catch this for "either side"."""


class LinkClosedLocally(LinkClosed, LocalMisuse):
    """We closed the link (or the endpoint) and then used it."""


class LinkBroken(LinkClosed, NetworkError):
    """The peer closed the link or the connection to it broke."""


@runtime_checkable
class Link(Protocol):
    """An ordered, reliable, message-oriented link to one peer (a data channel or equivalent)."""

    @property
    def peer_id(self) -> str:
        """The routing handle of the remote end (not its cryptographic identity)."""
        ...

    async def send(self, pdu: bytes) -> None:
        """Send one PDU; raises :class:`LinkClosed` once closed."""
        ...

    async def receive(self) -> bytes:
        """Wait for the next PDU; raises :class:`LinkClosed` when the link ends."""
        ...

    async def close(self) -> None:
        """Close the link; idempotent."""
        ...


@runtime_checkable
class TransportService(Protocol):
    """What a p2p plugin provides."""

    @property
    def name(self) -> str:
        """Transport name, e.g. ``memory`` or ``webrtc``."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """Transport features really provided (same names as the manifest)."""
        ...

    async def loopback_pair(self, first: str, second: str) -> tuple[Link, Link]:
        """Two connected in-process links, for local demos and tests."""
        ...
