"""The broker's routing core: PeerJS server semantics as a pure object (sans-I/O).

Events in (``connect``, ``frame``, ``disconnected``, ``tick``, results of storage effects), effects
out (frames to send, sockets to close, storage work, log records).  ``now`` is passed in; there is
no asyncio, socket or storage here, so the same core runs over memory and over Redis (``_store``).

The rules follow npm ``peer`` 1.0.2 (crypto-p2p-anchors.md §3.2-§3.4): ERROR for missing
parameters, a wrong key or the concurrent limit; ID-TAKEN for another token; a same-token
reconnect rebinds without OPEN; ``src`` is always overwritten and only type/src/dst/payload are
forwarded; OFFER/ANSWER/CANDIDATE for an absent id are queued, EXPIRE goes back once per src/dst
pair; only HEARTBEAT keeps a client alive.  Beyond it: frame size, rate and invalid-frame limits per
connection and queue bounds (kept by the store); concurrent sockets per client address (an IPv6
client's /64); and a throttle on failed attempts (ID-TAKEN answers) per id and per address: past
its burst, every wrong token for that id, and every attempt from that address, is refused with ERROR
and closed (1008) until the bucket refills.  The token is compared (in constant time) before the
per-id throttle, so the owner's right token is never refused for others' failures; a wrong guess on
a throttled id empties its address's bucket.  Log records never carry payloads (no SDP).
"""

from __future__ import annotations

__all__ = [
    "BrokerCore",
    "Claim",
    "Close",
    "Drain",
    "Effect",
    "Forward",
    "Log",
    "Refresh",
    "Release",
    "Send",
    "SweepQueues",
]

import enum
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import RemoteInputError
from ._config import BrokerConfig
from ._limits import FailureThrottle, address_key
from ._protocol import (
    QUEUED_TYPES,
    RELAYED_TYPES,
    Frame,
    MessageType,
    encode_frame,
    parse_client_frame,
)
from ._store import ClaimOutcome, ForwardOutcome, QueuedMessage, same_token

# Messages of npm peer's Errors enum, verbatim (clients match on them).
ERR_PARAMETERS = "No id, token, or key supplied to websocket server"
ERR_KEY = "Invalid key provided"
ERR_LIMIT = "Server has reached its concurrent user limit"
ERR_ID_TAKEN = "ID is taken"
# Ours.
ERR_RATE = "Rate limit exceeded"
ERR_INVALID = "Too many invalid messages"
ERR_OVERSIZE = "Message too big"
ERR_BAD_ID = "Invalid id or token"
ERR_UNAVAILABLE = "Server unavailable"
ERR_PER_IP = "Too many connections from this address"
ERR_THROTTLED = "Too many failed attempts"

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TAKEN_OVER = 4001
"""Ours: a reconnect with the same id and token replaced this socket; do not reconnect."""
_HEARTBEAT = frozenset({'{"type":"HEARTBEAT"}', b'{"type":"HEARTBEAT"}'})
"""The PeerJS client's heartbeat, byte for byte: taken without a JSON parse (most frames are)."""


@dataclass(frozen=True, slots=True)
class Send:
    conn: int
    text: str
    src: str | None = None
    """Set for relayed frames: if the write fails the sender gets LEAVE (peer does the same)."""
    dst: str | None = None


@dataclass(frozen=True, slots=True)
class Close:
    conn: int
    code: int = CLOSE_NORMAL


@dataclass(frozen=True, slots=True)
class Claim:
    conn: int
    peer_id: str
    token: str


@dataclass(frozen=True, slots=True)
class Release:
    peer_id: str
    token: str
    clear_queue: bool = False


@dataclass(frozen=True, slots=True)
class Forward:
    message: QueuedMessage


@dataclass(frozen=True, slots=True)
class Drain:
    conn: int
    peer_id: str


@dataclass(frozen=True, slots=True)
class SweepQueues:
    cutoff: float


@dataclass(frozen=True, slots=True)
class Refresh:
    peer_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Log:
    event: str
    fields: tuple[tuple[str, object], ...] = ()


Effect = Send | Close | Claim | Release | Forward | Drain | SweepQueues | Refresh | Log


class _State(enum.Enum):
    CLAIMING = 1
    OPEN = 2
    CLOSED = 3


@dataclass(slots=True)
class _Conn:
    conn: int
    remote: str
    addr_key: str  # what the per-address limits count: the address, or its /64 for IPv6
    peer_id: str = ""
    token: str = ""
    src_prefix: str = ""  # '{"src":ID,' - put in front of a frame forwarded as it came
    state: _State = _State.CLAIMING
    tokens: float = 0.0
    refilled: float = 0.0
    invalid: int = 0


@dataclass(slots=True)
class BrokerStats:
    relayed: int = 0
    submitted: int = 0
    queued: int = 0
    queue_full: int = 0
    dropped: int = 0
    invalid: int = 0
    refused: int = 0
    expired: int = 0
    throttled: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def _valid_name(value: str, limit: int) -> bool:
    return 0 < len(value) <= limit and value.isprintable()


class BrokerCore:
    """PeerJS routing and liveness for the sockets of one broker process."""

    def __init__(self, config: BrokerConfig, now: float) -> None:
        self.config = config
        self.stats = BrokerStats()
        self._conns: dict[int, _Conn] = {}
        self._sessions: dict[str, int] = {}  # registered id -> conn (this process)
        self._claiming: dict[str, int] = {}
        self._orphans: dict[int, tuple[str, str]] = {}  # claims whose socket closed meanwhile
        self._alive: OrderedDict[int, float] = OrderedDict()  # conn -> last HEARTBEAT, oldest first
        self._next_alive = now + config.alive_check_interval
        self._next_sweep = now + config.cleanup_out_msgs
        self._next_refresh = now + config.presence_refresh
        self._per_ip: dict[str, int] = {}  # client address -> sockets
        self._id_fails = FailureThrottle(config.id_fail_burst, config.id_fail_rate,
                                         config.max_throttled_keys)
        self._ip_fails = FailureThrottle(config.ip_fail_burst, config.ip_fail_rate,
                                         config.max_throttled_keys)

    # ------------------------------------------------------------------------ introspection
    @property
    def connection_count(self) -> int:
        return len(self._conns)

    def local_ids(self) -> list[str]:
        return list(self._sessions)

    def next_deadline(self) -> float:
        """When :meth:`tick` must run next."""
        return min(self._next_alive, self._next_sweep, self._next_refresh)

    # ------------------------------------------------------------------------ connections
    def connect(self, conn: int, query: Mapping[str, str], now: float, remote: str = "") -> list[Effect]:
        """A WebSocket was accepted on ``{path}peerjs`` with these query parameters."""
        cfg = self.config
        state = _Conn(conn, remote, address_key(remote), tokens=float(cfg.rate_burst),
                      refilled=now)
        self._conns[conn] = state
        refused = self._check_address(state, now)
        if refused is not None:
            return refused
        refusal = self._check_query(query)
        if refusal is not None:
            return self._refuse(state, MessageType.ERROR, refusal)
        state.peer_id, state.token = query["id"], query["token"]
        return self._bind(state, now)

    def _bind(self, state: _Conn, now: float) -> list[Effect]:
        """A well-formed request for ``state.peer_id``: a reconnect, a failed guess, or a claim.

        The token is compared before any per-id throttle: the owner's correct token is never
        refused because others guessed wrong on its id (only failures meet the per-id bucket)."""
        held = self._sessions.get(state.peer_id)
        if held is not None:
            if same_token(self._conns[held].token, state.token):
                return self._reconnect(state, held, now)
            return self._failed_guess(state, now)
        if state.peer_id in self._claiming:
            return self._failed_guess(state, now)
        if len(self._sessions) + len(self._claiming) >= self.config.concurrent_limit:
            return self._refuse(state, MessageType.ERROR, ERR_LIMIT)
        self._claiming[state.peer_id] = state.conn
        return [Claim(state.conn, state.peer_id, state.token)]

    def _check_address(self, state: _Conn, now: float) -> list[Effect] | None:
        """The per-address socket limit and failure throttle (counted until ``disconnected``)."""
        count = self._per_ip[state.addr_key] = self._per_ip.get(state.addr_key, 0) + 1
        if count > self.config.max_conns_per_ip:
            return self._refuse(state, MessageType.ERROR, ERR_PER_IP, CLOSE_POLICY)
        if self._ip_fails.blocked(state.addr_key, now):
            return self._throttled(state, now)
        return None

    def _check_query(self, query: Mapping[str, str]) -> str | None:
        cfg = self.config
        peer_id, token, key = (query.get(k, "") for k in ("id", "token", "key"))
        if not peer_id or not token or not key:
            return ERR_PARAMETERS
        if key != cfg.key:
            return ERR_KEY
        if not _valid_name(peer_id, cfg.max_id_length) or not _valid_name(token, cfg.max_token_length):
            return ERR_BAD_ID
        return None

    def _failed_guess(self, state: _Conn, now: float) -> list[Effect]:
        """A wrong token for a held (or being claimed) id.  Past the id's burst the answer is
        ERROR "Too many failed attempts" and the address's bucket is emptied: while an id is
        throttled, each address (IPv6: each /64) gets one guess per ``1 / ip_fail_rate`` s."""
        if self._id_fails.blocked(state.peer_id, now):
            self.stats.throttled += 1
            self._ip_fails.exhaust(state.addr_key, now)
            return self._refuse(state, MessageType.ERROR, ERR_THROTTLED, CLOSE_POLICY)
        return self._id_taken(state, now)

    def _id_taken(self, state: _Conn, now: float) -> list[Effect]:
        """ID-TAKEN, counted against the id and the address (a wrong token is a failed guess)."""
        self._id_fails.fail(state.peer_id, now)
        self._ip_fails.fail(state.addr_key, now)
        return self._refuse(state, MessageType.ID_TAKEN, ERR_ID_TAKEN)

    def _throttled(self, state: _Conn, now: float) -> list[Effect]:
        """Refused before any check: the address failed too often lately."""
        self.stats.throttled += 1
        self._ip_fails.fail(state.addr_key, now)
        return self._refuse(state, MessageType.ERROR, ERR_THROTTLED, CLOSE_POLICY)

    def _reconnect(self, state: _Conn, held: int, now: float) -> list[Effect]:
        old = self._conns[held]
        # Same token: the reconnect takes the session over.  peer rebinds without OPEN.
        old.state = _State.CLOSED
        self._alive.pop(held, None)
        self._open(state, now)
        return [Close(held, CLOSE_TAKEN_OVER), self._log("client.takeover", state),
                Drain(state.conn, state.peer_id)]

    def claimed(self, conn: int, outcome: ClaimOutcome, now: float) -> list[Effect]:
        """The store answered a :class:`Claim`."""
        state = self._conns.get(conn)
        if state is None:
            # The socket went away while the store worked: give the id back.
            orphan = self._orphans.pop(conn, None)
            if orphan is not None and outcome is not ClaimOutcome.TAKEN:
                return [Release(*orphan)]
            return []
        if state.state is not _State.CLAIMING:
            return []
        self._claiming.pop(state.peer_id, None)
        if outcome is ClaimOutcome.TAKEN:  # the store compared the token: a wrong one
            return self._failed_guess(state, now)
        self._open(state, now)
        # A takeover through the store (the id was held by another process, or by one that died):
        # for this process it is a new registration, so OPEN is sent.
        return [
            Send(conn, encode_frame(Frame(MessageType.OPEN))),
            self._log("client.open", state, outcome=outcome.value),
            Drain(conn, state.peer_id),
        ]

    def claim_failed(self, conn: int) -> list[Effect]:
        """The store could not answer a :class:`Claim` (e.g. Redis down): refuse, fail closed."""
        state = self._conns.get(conn)
        self._orphans.pop(conn, None)
        if state is None or state.state is not _State.CLAIMING:
            return []
        self._claiming.pop(state.peer_id, None)
        return self._refuse(state, MessageType.ERROR, ERR_UNAVAILABLE)

    def _open(self, state: _Conn, now: float) -> None:
        state.state = _State.OPEN
        state.src_prefix = '{"src":' + json.dumps(state.peer_id, ensure_ascii=False) + ","
        self._sessions[state.peer_id] = state.conn
        self._alive[state.conn] = now

    def disconnected(self, conn: int, now: float) -> list[Effect]:
        """The socket closed (either side); forget it, and its id if it still owns it."""
        state = self._conns.pop(conn, None)
        if state is None:
            return []
        left = self._per_ip.get(state.addr_key, 1) - 1
        if left > 0:
            self._per_ip[state.addr_key] = left
        else:
            self._per_ip.pop(state.addr_key, None)
        self._alive.pop(conn, None)
        out: list[Effect] = []
        if self._claiming.get(state.peer_id) == conn:
            del self._claiming[state.peer_id]
            self._orphans[conn] = (state.peer_id, state.token)
        if self._sessions.get(state.peer_id) == conn:
            del self._sessions[state.peer_id]
            out.append(Release(state.peer_id, state.token))
            out.append(self._log("client.closed", state))
        state.state = _State.CLOSED
        return out

    def kick(self, peer_id: str, token: str) -> list[Effect]:
        """Another broker process took ``peer_id`` over with its token: drop our socket."""
        conn = self._sessions.get(peer_id)
        if conn is None or not same_token(self._conns[conn].token, token):
            return []
        state = self._conns[conn]
        del self._sessions[peer_id]
        self._alive.pop(conn, None)
        state.state = _State.CLOSED
        return [Close(conn, CLOSE_TAKEN_OVER), self._log("client.moved", state)]

    def _refuse(self, state: _Conn, kind: MessageType, msg: str, code: int = CLOSE_NORMAL) -> list[Effect]:
        self.stats.refused += 1
        state.state = _State.CLOSED
        self._alive.pop(state.conn, None)
        frame = encode_frame(Frame(kind, payload={"msg": msg}))
        return [Send(state.conn, frame), Close(state.conn, code),
                self._log("client.refused", state, reason=msg)]

    def _log(self, event: str, state: _Conn, **extra: object) -> Log:
        fields: dict[str, object] = {"conn": state.conn, "id": state.peer_id, "remote": state.remote}
        fields.update(extra)
        return Log(event, tuple(fields.items()))

    # ------------------------------------------------------------------------ frames
    def frame(self, conn: int, data: str | bytes, now: float) -> list[Effect]:
        """One WebSocket message from ``conn``."""
        state = self._conns.get(conn)
        if state is None or state.state is not _State.OPEN:
            return []  # closed or still claiming: npm peer has no handler yet either
        refusal = self._admit(state, data, now)
        if refusal is not None:
            return refusal
        if data in _HEARTBEAT:
            self._alive[conn] = now
            self._alive.move_to_end(conn)
            return []
        try:
            message, text = parse_client_frame(data, self.config.max_frame_bytes)
        except RemoteInputError as exc:
            return self._invalid(state, str(exc))
        if message.type == MessageType.HEARTBEAT:
            self._alive[conn] = now
            self._alive.move_to_end(conn)
            return []
        return self._relay(state, message, text)

    def _admit(self, state: _Conn, data: str | bytes, now: float) -> list[Effect] | None:
        """Rate (token bucket) and size limits; the effects that close the socket, or None."""
        cfg = self.config
        state.tokens = min(float(cfg.rate_burst), state.tokens + (now - state.refilled) * cfg.rate_per_s)
        state.refilled = now
        if state.tokens < 1.0:
            return self._close_session(state, ERR_RATE, CLOSE_POLICY)
        state.tokens -= 1.0
        if len(data) > cfg.max_frame_bytes:
            return self._close_session(state, ERR_OVERSIZE, CLOSE_TOO_BIG)
        return None

    def _relay(self, state: _Conn, message: Frame, text: str | None) -> list[Effect]:
        """Forward a client's frame with ``src`` set to its id: as it came with ``src`` put in
        front when :func:`parse_client_frame` allows it (no JSON re-encoding), else re-encoded."""
        kind = message.type
        if kind not in RELAYED_TYPES:
            return self._invalid(state, "unknown type")
        if message.dst is None:
            if kind == MessageType.LEAVE:  # peer: LEAVE without dst unregisters the sender
                return self._close_session(state, "", CLOSE_NORMAL, send_error=False, reason="LEAVE")
            return self._invalid(state, "no dst")
        if not _valid_name(message.dst, self.config.max_id_length):
            return self._invalid(state, "bad dst")
        if text is None:
            text = encode_frame(Frame(kind, state.peer_id, message.dst, message.payload))
        else:
            text = state.src_prefix + text[1:]
        return self.route(QueuedMessage(state.peer_id, message.dst, text, kind in QUEUED_TYPES))

    def route(self, message: QueuedMessage) -> list[Effect]:
        """Send to a local destination, or hand the message to the store."""
        dst_conn = self._sessions.get(message.dst)
        if dst_conn is not None:
            self.stats.relayed += 1
            return [Send(dst_conn, message.text, message.src, message.dst)]
        return [Forward(message)]

    def forwarded(self, message: QueuedMessage, outcome: ForwardOutcome) -> list[Effect]:
        """The store answered a :class:`Forward` (counted only; a full queue drops silently)."""
        if outcome is ForwardOutcome.QUEUED:
            self.stats.queued += 1
        elif outcome is ForwardOutcome.FULL:
            self.stats.queue_full += 1
        elif outcome is ForwardOutcome.DROPPED:
            self.stats.dropped += 1
        elif outcome is ForwardOutcome.SUBMITTED:
            self.stats.submitted += 1
        else:
            self.stats.relayed += 1
        return []

    def deliver(self, message: QueuedMessage) -> list[Effect]:
        """Another process routed ``message`` here; queue it if the id left meanwhile."""
        return self.route(message)

    def queued(self, conn: int, messages: list[QueuedMessage]) -> list[Effect]:
        """The store drained the queue of a newly registered id."""
        return [effect for message in messages for effect in self.route(message)]

    def undeliverable(self, src: str, dst: str) -> list[Effect]:
        """Writing to ``dst`` failed: tell ``src`` it left (as peer does)."""
        text = encode_frame(Frame(MessageType.LEAVE, dst, src))
        return self.route(QueuedMessage(dst, src, text, queueable=False))

    def expired(self, queues: list[list[QueuedMessage]]) -> list[Effect]:
        """Queues older than ``expire_timeout``: one EXPIRE per src/dst pair to the sender."""
        out: list[Effect] = []
        for queue in queues:
            seen: set[tuple[str, str]] = set()
            for message in queue:
                pair = (message.src, message.dst)
                if pair in seen:
                    continue
                seen.add(pair)
                self.stats.expired += 1
                text = encode_frame(Frame(MessageType.EXPIRE, message.dst, message.src))
                out.extend(self.route(QueuedMessage(message.dst, message.src, text, queueable=False)))
        return out

    def _invalid(self, state: _Conn, reason: str) -> list[Effect]:
        self.stats.invalid += 1
        state.invalid += 1
        if state.invalid > self.config.max_invalid_frames:
            return self._close_session(state, ERR_INVALID, CLOSE_POLICY)
        return [self._log("frame.invalid", state, reason=reason)]

    def _close_session(
        self, state: _Conn, msg: str, code: int, send_error: bool = True, clear_queue: bool = False,
        reason: str = "",
    ) -> list[Effect]:
        out: list[Effect] = []
        if send_error:
            out.append(Send(state.conn, encode_frame(Frame(MessageType.ERROR, payload={"msg": msg}))))
        out.append(Close(state.conn, code))
        out.append(self._log("client.closed", state, reason=reason or msg))
        if self._sessions.get(state.peer_id) == state.conn:
            del self._sessions[state.peer_id]
            out.append(Release(state.peer_id, state.token, clear_queue))
        self._alive.pop(state.conn, None)
        state.state = _State.CLOSED
        return out

    # ------------------------------------------------------------------------ timers
    def tick(self, now: float) -> list[Effect]:
        """Run what is due: the liveness sweep, the queue sweep, the presence refresh."""
        out: list[Effect] = []
        cfg = self.config
        if now >= self._next_alive:
            self._next_alive = now + cfg.alive_check_interval
            out.extend(self._sweep_alive(now))
        if now >= self._next_sweep:
            self._next_sweep = now + cfg.cleanup_out_msgs
            out.append(SweepQueues(now - cfg.expire_timeout))
            self._id_fails.prune(now)
            self._ip_fails.prune(now)
        if now >= self._next_refresh:
            self._next_refresh = now + cfg.presence_refresh
            if self._sessions:
                out.append(Refresh(tuple(self._sessions)))
        return out

    def _sweep_alive(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        cutoff = now - self.config.alive_timeout
        while self._alive:
            conn, last = next(iter(self._alive.items()))
            if last > cutoff:
                break
            state = self._conns[conn]
            # peer closes the socket, frees the id and clears its queue.
            out.extend(self._close_session(state, "", CLOSE_NORMAL, send_error=False, clear_queue=True,
                                           reason="alive_timeout"))
        return out
