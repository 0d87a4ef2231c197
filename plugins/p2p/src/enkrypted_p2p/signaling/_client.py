"""The PeerJS client's signaling protocol as a pure object (sans-I/O).

Methods take events (socket opened / frame / closed, timers, what the application wants to send)
and ``now``; they return :data:`ClientOutput`: I/O for the driver (:class:`OpenSocket`,
:class:`SendFrame`, :class:`CloseSocket`) and events for the application.  Behaviour follows the
peerjs 1.5.5 client (crypto-p2p-anchors.md §3.5): HEARTBEAT every 5 s after the socket opens,
frames sent before the socket is up are queued (bounded here), a reconnect reuses the id and token,
ANSWER/CANDIDATE are routed per ``src`` + ``connectionId`` and kept until their connection exists.
"""

from __future__ import annotations

__all__ = [
    "ClientCore",
    "ClientOutput",
    "ClientState",
    "CloseSocket",
    "Disconnected",
    "Expired",
    "GaveUp",
    "OpenSocket",
    "Opened",
    "PeerLeft",
    "Refused",
    "SendFrame",
    "Signal",
    "new_token",
    "valid_peer_id",
]

import enum
import re
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from ..errors import P2PNetworkError, P2PUsageError, RemoteInputError
from ._config import ClientConfig
from ._dataconn import OfferInfo, Serialization, new_connection_id, offer_payload, parse_offer
from ._protocol import Frame, MessageType, encode_frame, parse_frame

CLOSE_TAKEN_OVER: Final = 4001  # the broker's close code when our session was taken over
_ID_RE: Final = re.compile(r"^[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*$")  # peerjs util.validateId
_B36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
CLIENT_VERSION: Final = "1.5.5"


def valid_peer_id(peer_id: str) -> bool:
    return bool(_ID_RE.match(peer_id)) and len(peer_id) <= 256


def new_token() -> str:
    """Random base36 like peerjs's, but 130 bits from ``secrets`` (peerjs uses Math.random)."""
    return "".join(secrets.choice(_B36) for _ in range(25))


# ----------------------------------------------------------------------------- outputs
@dataclass(frozen=True, slots=True)
class OpenSocket:
    url: str


@dataclass(frozen=True, slots=True)
class SendFrame:
    text: str


@dataclass(frozen=True, slots=True)
class CloseSocket:
    pass


@dataclass(frozen=True, slots=True)
class Opened:
    peer_id: str
    reclaimed: bool = False
    """A reconnect with our token: the server may have rebound silently (no OPEN)."""


@dataclass(frozen=True, slots=True)
class Signal:
    """OFFER / ANSWER / CANDIDATE from ``peer`` for ``connection_id`` (``offer`` parsed)."""

    kind: str
    peer: str
    connection_id: str
    payload: dict[str, Any]
    offer: OfferInfo | None = None


@dataclass(frozen=True, slots=True)
class Expired:
    peer: str


@dataclass(frozen=True, slots=True)
class PeerLeft:
    peer: str


@dataclass(frozen=True, slots=True)
class Refused:
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    retry_at: float


@dataclass(frozen=True, slots=True)
class GaveUp:
    attempts: int


ClientOutput = (
    OpenSocket | SendFrame | CloseSocket | Opened | Signal | Expired | PeerLeft | Refused
    | Disconnected | GaveUp
)


class ClientState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"  # socket being opened
    REGISTERING = "registering"  # socket open, waiting for OPEN (or the reclaim grace)
    OPEN = "open"
    WAITING = "waiting"  # dropped, reconnect scheduled
    CLOSED = "closed"  # refused, gave up or destroyed: final


class ClientCore:
    """One PeerJS client registration (id + token) and its signaling conversations."""

    def __init__(self, config: ClientConfig, peer_id: str, token: str | None = None) -> None:
        if not valid_peer_id(peer_id):
            raise P2PUsageError(f"invalid peer id {peer_id!r}")
        self.config = config
        self.peer_id = peer_id
        self.token = token or new_token()
        self.state = ClientState.IDLE
        self.invalid_frames = 0
        # A caller that brings its token resumes a registration: the server may rebind silently.
        self._registered_once = token is not None
        self._attempts = 0
        self._next_ping: float | None = None
        self._retry_at: float | None = None
        self._grace_until: float | None = None
        self._outbox: deque[str] = deque()
        self._connections: set[tuple[str, str]] = set()  # (peer, connectionId)
        self._pending: dict[tuple[str, str], list[Signal]] = {}
        self._pending_count = 0

    # -------------------------------------------------------------------- urls
    def socket_url(self) -> str:
        cfg = self.config
        scheme = "wss" if cfg.secure else "ws"
        query = urlencode({"key": cfg.key, "id": self.peer_id, "token": self.token,
                           "version": CLIENT_VERSION})
        return f"{scheme}://{_host(cfg.host)}:{cfg.port}{cfg.base_path}peerjs?{query}"

    @staticmethod
    def id_url(config: ClientConfig) -> str:
        """Where a client without a chosen id asks the broker for one."""
        scheme = "https" if config.secure else "http"
        return f"{scheme}://{_host(config.host)}:{config.port}{config.base_path}{config.key}/id"

    # -------------------------------------------------------------------- socket events
    def connect(self, now: float) -> list[ClientOutput]:
        if self.state is not ClientState.IDLE:
            raise P2PUsageError(f"connect() in state {self.state.value}")
        self.state = ClientState.CONNECTING
        return [OpenSocket(self.socket_url())]

    def socket_opened(self, now: float) -> list[ClientOutput]:
        if self.state is not ClientState.CONNECTING:
            return []
        self.state = ClientState.REGISTERING
        self._next_ping = now + self.config.ping_interval
        if self._registered_once:
            self._grace_until = now + self.config.reclaim_grace
        out: list[ClientOutput] = [SendFrame(text) for text in self._outbox]
        self._outbox.clear()
        return out

    def socket_closed(self, now: float, code: int | None = None) -> list[ClientOutput]:
        if self.state in (ClientState.CLOSED, ClientState.IDLE, ClientState.WAITING):
            return []
        self._next_ping = self._grace_until = None
        if code == CLOSE_TAKEN_OVER:  # our token registered elsewhere: fighting back would loop
            self.state = ClientState.CLOSED
            return [Refused("TAKEN-OVER", "another connection took this id over with our token")]
        if self._attempts >= self.config.max_reconnects:
            self.state = ClientState.CLOSED
            return [GaveUp(self._attempts)]
        delays = self.config.reconnect_delays
        self._retry_at = now + delays[min(self._attempts, len(delays) - 1)]
        self._attempts += 1
        self.state = ClientState.WAITING
        return [Disconnected(self._retry_at)]

    def frame_received(self, data: str | bytes, now: float) -> list[ClientOutput]:
        if self.state not in (ClientState.REGISTERING, ClientState.OPEN):
            return []
        try:
            frame = parse_frame(data, self.config.max_frame_bytes)
        except RemoteInputError:
            self.invalid_frames += 1
            return []
        kind = frame.type
        if kind == MessageType.OPEN:
            return self._opened(reclaimed=False)
        if kind in (MessageType.ID_TAKEN, MessageType.ERROR, MessageType.INVALID_KEY):
            msg = frame.payload.get("msg", "") if isinstance(frame.payload, dict) else ""
            self.state = ClientState.CLOSED
            return [Refused(kind, str(msg)), CloseSocket()]
        out: list[ClientOutput] = []
        if self.state is ClientState.REGISTERING and self._registered_once:
            out += self._opened(reclaimed=True)  # a relayed frame proves a silent rebind
        if frame.src is None:
            self.invalid_frames += 1
            return out
        return out + self._peer_frame(frame)

    def _opened(self, reclaimed: bool) -> list[ClientOutput]:
        if self.state is not ClientState.REGISTERING:
            return []
        self.state = ClientState.OPEN
        self._grace_until = None
        self._attempts = 0
        self._registered_once = True
        return [Opened(self.peer_id, reclaimed)]

    def _peer_frame(self, frame: Frame) -> list[ClientOutput]:
        src, kind = frame.src or "", frame.type
        if kind == MessageType.LEAVE:
            self._forget_peer(src)
            return [PeerLeft(src)]
        if kind == MessageType.EXPIRE:
            return [Expired(src)]
        if kind not in (MessageType.OFFER, MessageType.ANSWER, MessageType.CANDIDATE):
            self.invalid_frames += 1
            return []
        return self._routed(kind, src, frame.payload)

    def _routed(self, kind: str, src: str, payload: Any) -> list[ClientOutput]:
        cid = payload.get("connectionId") if isinstance(payload, dict) else None
        info = None
        try:
            if not isinstance(payload, dict) or not isinstance(cid, str):
                raise RemoteInputError("no connectionId")
            if kind == MessageType.OFFER:
                info = parse_offer(payload)
        except RemoteInputError:
            self.invalid_frames += 1
            return []
        signal = Signal(kind, src, cid, payload, info)
        if info is not None:
            self._connections.add((src, cid))  # an OFFER for a known id replaces it
            return [signal, *self._replay(src, cid)]
        if (src, cid) in self._connections:
            return [signal]
        self._hold(signal)
        return []

    def _hold(self, signal: Signal) -> None:
        if self._pending_count >= self.config.max_pending_signals:
            return  # dropped: bounded, and the peer will time out as with a lost message
        self._pending.setdefault((signal.peer, signal.connection_id), []).append(signal)
        self._pending_count += 1

    def _replay(self, peer: str, cid: str) -> list[ClientOutput]:
        held = self._pending.pop((peer, cid), [])
        self._pending_count -= len(held)
        return list(held)

    def _forget_peer(self, peer: str) -> None:
        self._connections = {key for key in self._connections if key[0] != peer}
        for key in [k for k in self._pending if k[0] == peer]:
            self._pending_count -= len(self._pending.pop(key))

    # -------------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        times = [t for t in (self._next_ping, self._retry_at, self._grace_until) if t is not None]
        return min(times) if times else None

    def tick(self, now: float) -> list[ClientOutput]:
        out: list[ClientOutput] = []
        if self._retry_at is not None and now >= self._retry_at and self.state is ClientState.WAITING:
            self._retry_at = None
            self.state = ClientState.CONNECTING
            out.append(OpenSocket(self.socket_url()))
        if self._grace_until is not None and now >= self._grace_until:
            out += self._opened(reclaimed=True)
        if self._next_ping is not None and now >= self._next_ping:
            self._next_ping = now + self.config.ping_interval
            out.append(SendFrame(encode_frame(Frame(MessageType.HEARTBEAT))))
        return out

    # -------------------------------------------------------------------- application
    def send(self, kind: MessageType, dst: str, payload: Any) -> list[ClientOutput]:
        if self.state is ClientState.CLOSED:
            raise P2PNetworkError("the signaling client is closed")
        if not dst:
            raise P2PUsageError("dst must be a peer id")
        text = encode_frame(Frame(kind, dst=dst, payload=payload))
        if self.state in (ClientState.REGISTERING, ClientState.OPEN):
            return [SendFrame(text)]
        if len(self._outbox) >= self.config.max_outbox:
            raise P2PNetworkError("signaling outbox full while disconnected")
        self._outbox.append(text)
        return []

    def offer(
        self, dst: str, sdp: dict[str, Any], *, connection_id: str | None = None,
        label: str | None = None, serialization: Serialization = Serialization.BINARY,
        reliable: bool = False, metadata: Any = None,
    ) -> tuple[str, list[ClientOutput]]:
        """Open a data connection to ``dst``: its connectionId and the OFFER to send."""
        cid = connection_id or new_connection_id("data")
        payload = offer_payload(sdp, cid, label=label, serialization=serialization,
                                reliable=reliable, metadata=metadata)
        out = self.send(MessageType.OFFER, dst, payload)
        self._connections.add((dst, cid))
        return cid, out + self._replay(dst, cid)

    def close_connection(self, peer: str, connection_id: str) -> None:
        self._connections.discard((peer, connection_id))
        self._pending_count -= len(self._pending.pop((peer, connection_id), []))

    def destroy(self) -> list[ClientOutput]:
        was = self.state
        self.state = ClientState.CLOSED
        self._next_ping = self._retry_at = self._grace_until = None
        return [CloseSocket()] if was in (ClientState.CONNECTING, ClientState.REGISTERING,
                                          ClientState.OPEN) else []


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
