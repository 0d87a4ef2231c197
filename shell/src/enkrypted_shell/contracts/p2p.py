"""Slot ``p2p``: links between peers (1.0) and endpoints + the chat service (2.0).

1.0 is the in-process shape (``loopback_pair``).  2.0 (a MAJOR) is the transport as an
:class:`Endpoint` — ``open_endpoint`` / ``connect`` / ``incoming`` / ``aclose`` — plus the
:class:`ChatService` the ui slot builds on (connect by peer id, sessions, receipts, resume).
Both stay published: a 1.0 plugin still loads, and a ui detects which one it was given.
"""

from __future__ import annotations

__all__ = [
    "PEER_STATES",
    "ChatEvent",
    "ChatMessage",
    "ChatProblem",
    "ChatReceipt",
    "ChatService",
    "ChatTyping",
    "Endpoint",
    "Link",
    "LinkBroken",
    "LinkClosed",
    "LinkClosedLocally",
    "LinkV2",
    "PeerStateChanged",
    "PeerUnavailable",
    "SessionEstablished",
    "SignalingFailed",
    "TransportService",
    "TransportServiceV2",
]

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

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


# ============================================================================ contract 2.0
# 2.0 (a MAJOR): the transport as an endpoint that reaches peers by id, and the chat service the
# ui slot builds on.  ``loopback_pair`` is gone; 1.0 stays published so 1.0 plugins still load.


class PeerUnavailable(NetworkError):
    """The peer id cannot be reached: unknown to the broker, or no link opened in time."""


class SignalingFailed(NetworkError):
    """The broker refused us or could not be reached (registration, id taken, socket lost)."""


@runtime_checkable
class LinkV2(Link, Protocol):
    """A 2.0 link: a 1.0 :class:`Link` that also states its PDU bound and why it ended."""

    @property
    def max_pdu_bytes(self) -> int:
        """The largest PDU :meth:`send` accepts on this link (the session chunks above it)."""
        ...

    @property
    def close_reason(self) -> str | None:
        """``None`` while open; afterwards one line: who closed it and why."""
        ...


@runtime_checkable
class Endpoint(Protocol):
    """Our presence on the network: registered under :attr:`local_id`, dialling and accepting links.

    Raises :class:`PeerUnavailable` / :class:`SignalingFailed` (network) and
    :class:`LinkClosedLocally` once :meth:`aclose` ran.
    """

    @property
    def local_id(self) -> str:
        """The id peers dial to reach us (routing only; never an identity)."""
        ...

    async def connect(self, peer_id: str, timeout: float | None = None) -> LinkV2:
        """A link to ``peer_id`` (``timeout`` seconds at most; ``None``: the endpoint's default)."""
        ...

    def incoming(self) -> AsyncIterator[LinkV2]:
        """Links peers opened to us, as they open; ends when the endpoint closes."""
        ...

    async def aclose(self) -> None:
        """Leave the broker and close every link; idempotent."""
        ...


# ------------------------------------------------------------------------------- chat events
@dataclass(frozen=True, slots=True)
class PeerStateChanged:
    """The connection to ``peer_id`` changed: ``state`` is one of :data:`PEER_STATES`."""

    peer_id: str
    state: str
    reason: str = ""


PEER_STATES: Final = ("connecting", "handshaking", "ready", "reconnecting", "disconnected")
"""``connecting`` (dialling / accepting), ``handshaking`` (crypto), ``ready`` (messages flow),
``reconnecting`` (link lost, retrying with backoff; unacknowledged messages wait),
``disconnected`` (ended; ``reason`` says why)."""


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """The crypto session with ``peer_id`` is up (``resumed``: kept state, no new handshake)."""

    peer_id: str
    profile: str
    layers: tuple[str, ...]
    peer_fingerprint: str
    safety_number: str
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A text from ``peer_id``, delivered once (deduplicated by ``message_id``)."""

    peer_id: str
    message_id: str
    text: str
    received_at: float
    """Wall-clock seconds (``time.time()``) when it was delivered here."""


@dataclass(frozen=True, slots=True)
class ChatReceipt:
    """``peer_id`` confirmed it received our message ``message_id``."""

    peer_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ChatTyping:
    """``peer_id`` is typing (optional; a ui may ignore it)."""

    peer_id: str


@dataclass(frozen=True, slots=True)
class ChatProblem:
    """Something went wrong that the user should see, for ``peer_id`` (``""``: the service).

    ``kind`` is ``local`` / ``remote`` / ``network`` (the contract error split); never fatal."""

    peer_id: str
    kind: str
    message: str


ChatEvent = PeerStateChanged | SessionEstablished | ChatMessage | ChatReceipt | ChatTyping | ChatProblem


@runtime_checkable
class ChatService(Protocol):
    """End-to-end encrypted 1:1 chat over an :class:`Endpoint` and the crypto service: what the
    ui slot builds on.  One object per running profile; every peer's session runs behind it.

    Peer input never raises here: it becomes a :class:`ChatProblem` or is dropped and counted.
    """

    @property
    def local_id(self) -> str:
        """Our peer id at the broker."""
        ...

    @property
    def fingerprint(self) -> str:
        """Our identity fingerprint (what a peer compares)."""
        ...

    async def connect(self, peer_id: str, timeout: float | None = None) -> SessionEstablished:
        """Dial ``peer_id`` and run the handshake (or resume kept state); returns once ready.
        Raises :class:`PeerUnavailable`, :class:`SignalingFailed` or a :class:`RemoteInputError`
        (the handshake failed: no common profile, a bad PDU, the 300 s timeout)."""
        ...

    async def send_text(self, peer_id: str, text: str) -> str:
        """Seal and send ``text`` to a connected peer; its ``message_id`` (a
        :class:`ChatReceipt` follows). While ``reconnecting`` it is queued and resent."""
        ...

    async def send_typing(self, peer_id: str) -> None:
        """Tell a ready peer we are typing (best effort)."""
        ...

    def events(self) -> AsyncIterator[ChatEvent]:
        """Every event of every peer, in order; ends after :meth:`aclose`."""
        ...

    def peers(self) -> Mapping[str, str]:
        """Peer id -> current state (one of :data:`PEER_STATES`)."""
        ...

    async def disconnect(self, peer_id: str) -> None:
        """End the session with ``peer_id`` (its state is kept for a later resume); idempotent."""
        ...

    def export_state(self, peer_id: str) -> bytes | None:
        """The session with ``peer_id`` as bytes to persist encrypted (``None``: no session);
        give it back to ``open_chat(..., saved=...)`` to resume after a restart."""
        ...

    async def aclose(self) -> None:
        """Disconnect everyone, leave the broker; idempotent."""
        ...


@runtime_checkable
class TransportServiceV2(Protocol):
    """What a p2p 2.0 plugin provides."""

    @property
    def name(self) -> str:
        """Transport name, e.g. ``webrtc`` or ``memory``."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """Transport features really provided (same names as the manifest)."""
        ...

    async def open_endpoint(
        self, settings: Mapping[str, object] | None = None, *, peer_id: str | None = None
    ) -> Endpoint:
        """Register and return an endpoint.  ``settings`` overrides the plugin's
        ``[plugins.p2p]`` table key by key (``broker_url``, ``ice_servers``, ``relay_only``,
        ``host_addresses``, ``remote_networks``, ``connect_timeout``; see docs/hooks.md);
        ``peer_id`` asks for that id (else the broker assigns one)."""
        ...

    async def open_chat(
        self,
        identity: bytes,
        settings: Mapping[str, object] | None = None,
        *,
        peer_id: str | None = None,
        saved: Mapping[str, bytes] | None = None,
    ) -> ChatService:
        """A chat service for ``identity`` (the crypto contract's ``new_identity()`` bytes) on a
        fresh endpoint.  ``saved`` maps peer ids to :meth:`ChatService.export_state` bytes kept
        from an earlier run, so those sessions resume without a new handshake."""
        ...
