"""One chat session with one peer, sans-I/O: PDUs and ``now`` in, outputs out.

It runs the crypto contract 2.0 handshake (whose first PDU negotiates versions, profile and
layers; no overlap ends it with ``protocol-error`` to the peer and :class:`SessionFailed` here),
then application messages sealed by the :class:`SecureSession`.

**Link framing once Ready** (ours; the binary profile's own framing, the JSON ``__mls_chunk__``
carrier of Profile-v0 is not used on this transport):

* ``0x01 || sealed`` - one whole sealed message (sealed length <= ``chunk_bytes``);
* ``0x02 || seq u64 || index u32 || total u32 || data`` - chunk ``index`` of ``total`` of the
  sealed message ``seq`` (data <= ``chunk_bytes``, 8192; total <= 4096 and <= the 16 MiB cap).

**Inside the seal** (UTF-8 JSON, so the broker and any relay see only ciphertext):
``{"type": "message", "messageId": hex, "text": str}``, ``{"type": "receipt", "messageId": hex}``,
``{"type": "typing"}``. Messages are deduplicated by ``messageId`` (a replay or a resend is
acknowledged again but delivered once).

Peer input never raises: a PDU above the 16 MiB cap (checked before parsing), a malformed frame,
a chunk flood past the P8 limits, an undecryptable message, an unknown inner ``type`` or a frame
in the wrong state is dropped, logged and counted in :attr:`SessionCore.dropped`.
"""

from __future__ import annotations

__all__ = [
    "MessageReceived",
    "ReceiptReceived",
    "SendPdu",
    "SessionCore",
    "SessionFailed",
    "SessionNotReady",
    "SessionOutput",
    "SessionReady",
    "TypingReceived",
]

import json
import logging
import secrets
import struct
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Final

from enkrypted_shell.contracts import (
    WIRE_LIMITS,
    CryptoFailure,
    Delivered,
    Handshake,
    HandshakeComplete,
    HandshakeFailed,
    LocalMisuse,
    SecureSession,
    WireLimits,
)

from ..errors import P2PError, P2PUsageError
from ._fsm import ConnectionFSM, FsmEvent, SessionState

_log = logging.getLogger("enkrypted.p2p.session")

WHOLE: Final = 0x01
CHUNK: Final = 0x02
_CHUNK_HEADER: Final = struct.Struct(">BQII")
_MAX_SEEN_IDS: Final = 65536
_MAX_TEXT_BYTES: Final = 1024 * 1024


class SessionNotReady(P2PError, LocalMisuse):
    """Application messages before Ready (or after the session ended); names the state."""

    def __init__(self, state: SessionState) -> None:
        super().__init__(f"cannot send application messages in state {state.value} (only in Ready)")
        self.state = state


# ------------------------------------------------------------------------------------- outputs
@dataclass(frozen=True, slots=True)
class SendPdu:
    pdu: bytes


@dataclass(frozen=True, slots=True)
class SessionReady:
    profile: str
    layers: tuple[str, ...]
    peer_fingerprint: str
    safety_number: str


@dataclass(frozen=True, slots=True)
class SessionFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class MessageReceived:
    message_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReceiptReceived:
    message_id: str


@dataclass(frozen=True, slots=True)
class TypingReceived:
    pass


SessionOutput = (SendPdu | SessionReady | SessionFailed | MessageReceived | ReceiptReceived
                 | TypingReceived)


@dataclass(slots=True)
class _Partial:
    started: float
    total: int
    parts: dict[int, bytes] = field(default_factory=dict)


class SessionCore:
    """Drive with :meth:`channel_open`, :meth:`start_handshake`, :meth:`pdu_received`,
    :meth:`send_text`, :meth:`handle_timeout` at :meth:`next_deadline`, :meth:`link_lost`."""

    def __init__(self, limits: WireLimits = WIRE_LIMITS, *, connecting: bool = True) -> None:
        self.limits = limits
        self.fsm = ConnectionFSM()
        if connecting:  # the endpoint registered and the link is being set up
            self.fsm.fire(FsmEvent.REGISTERED)
            self.fsm.fire(FsmEvent.CONNECT)
        self.handshake: Handshake | None = None
        self.session: SecureSession | None = None
        self.dropped: Counter[str] = Counter()
        self.delivered = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._partials: dict[int, _Partial] = {}
        self._next_seq = 0
        self.unacknowledged: OrderedDict[str, str] = OrderedDict()
        """messageId -> text, sent and not yet acknowledged by a receipt (for resend on resume)."""

    @property
    def state(self) -> SessionState:
        return self.fsm.state

    # ------------------------------------------------------------------------- lifecycle
    def channel_open(self) -> None:
        self.fsm.fire(FsmEvent.CHANNEL_OPEN)

    def start_handshake(self, handshake: Handshake) -> list[SessionOutput]:
        self.fsm.fire(FsmEvent.HANDSHAKE_START)
        self.handshake = handshake
        return [SendPdu(p) for p in handshake.data_to_send()]

    def resume(self, session: SecureSession) -> list[SessionOutput]:
        """P7.4: the data channel is back and both sides kept their crypto state."""
        self.fsm.fire(FsmEvent.RESUME)
        self.session = session
        return [self._ready(session)]

    def link_lost(self) -> list[SessionOutput]:
        if self.fsm.can(FsmEvent.LINK_LOST):
            self.fsm.fire(FsmEvent.LINK_LOST)
        elif self.fsm.can(FsmEvent.CONNECT_FAILED):
            self.fsm.fire(FsmEvent.CONNECT_FAILED)
        self._partials.clear()
        return []

    def close(self) -> None:
        if self.fsm.can(FsmEvent.CLOSE):
            self.fsm.fire(FsmEvent.CLOSE)
        self._partials.clear()

    def _ready(self, session: SecureSession) -> SessionReady:
        return SessionReady(session.profile, tuple(session.layers), session.peer_fingerprint,
                            session.safety_number)

    # ------------------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        times = [p.started + self.limits.reassembly_timeout_s for p in self._partials.values()]
        if self.state is SessionState.CRYPTO_HANDSHAKING and self.handshake is not None:
            deadline = self.handshake.next_deadline()
            if deadline is not None:
                times.append(deadline)
        return min(times) if times else None

    def handle_timeout(self, now: float) -> list[SessionOutput]:
        stale = [k for k, p in self._partials.items()
                 if now >= p.started + self.limits.reassembly_timeout_s]
        for key in stale:
            del self._partials[key]
            self._drop("reassembly-timeout")
        if self.state is SessionState.CRYPTO_HANDSHAKING and self.handshake is not None:
            deadline = self.handshake.next_deadline()
            if deadline is not None and now >= deadline:
                return self._handshake_events(self.handshake.handle_timeout(now))
        return []

    # ------------------------------------------------------------------------- receiving
    def pdu_received(self, pdu: bytes, now: float) -> list[SessionOutput]:  # noqa: PLR0911
        if len(pdu) > self.limits.max_pdu_bytes:  # P8.1: before any parsing
            return self._drop("oversize")
        state = self.state
        if state is SessionState.CRYPTO_HANDSHAKING:
            assert self.handshake is not None
            if pdu[:1] in (bytes([WHOLE]), bytes([CHUNK])):
                return self._drop("wrong-state")
            return self._handshake_events(self.handshake.receive(pdu, now))
        if state is not SessionState.READY:
            return self._drop("wrong-state")
        kind = pdu[0] if pdu else None
        if kind == WHOLE:
            return self._sealed(pdu[1:])
        if kind == CHUNK:
            return self._chunk(pdu, now)
        return self._drop("wrong-state" if pdu[:1] == b"{" else "malformed")

    def _handshake_events(self, events: list[HandshakeComplete | HandshakeFailed]
                          ) -> list[SessionOutput]:
        assert self.handshake is not None
        out: list[SessionOutput] = [SendPdu(p) for p in self.handshake.data_to_send()]
        for event in events:
            if isinstance(event, HandshakeComplete):
                self.fsm.fire(FsmEvent.HANDSHAKE_COMPLETE)
                self.session = event.session
                out.append(self._ready(event.session))
            elif isinstance(event, HandshakeFailed):
                self.fsm.fire(FsmEvent.HANDSHAKE_FAILED)
                _log.info("handshake failed: %s", event.reason)
                out.append(SessionFailed(event.reason))
        return out

    def _chunk(self, pdu: bytes, now: float) -> list[SessionOutput]:
        limits = self.limits
        if len(pdu) < _CHUNK_HEADER.size:
            return self._drop("malformed")
        _, seq, index, total = _CHUNK_HEADER.unpack_from(pdu)
        data = pdu[_CHUNK_HEADER.size:]
        max_total = min(limits.max_chunks_per_message, -(-limits.max_pdu_bytes // limits.chunk_bytes))
        if not (1 < total <= max_total and index < total and 0 < len(data) <= limits.chunk_bytes):
            return self._drop("malformed-chunk")
        partial = self._partials.get(seq)
        if partial is None:
            if len(self._partials) >= limits.max_reassemblies_per_peer:
                return self._drop("too-many-reassemblies")
            partial = self._partials[seq] = _Partial(now, total)
        if partial.total != total or index in partial.parts:
            del self._partials[seq]
            return self._drop("inconsistent-chunk")
        partial.parts[index] = data
        if len(partial.parts) < total:
            return []
        del self._partials[seq]
        return self._sealed(b"".join(partial.parts[i] for i in range(total)))

    def _sealed(self, sealed: bytes) -> list[SessionOutput]:  # noqa: PLR0911
        assert self.session is not None
        try:
            result = self.session.open(sealed)
        except CryptoFailure:
            return self._drop("undecryptable")
        if not isinstance(result, Delivered):
            return []  # a control PDU (key rotation) was applied
        try:
            inner = json.loads(result.plaintext)
        except (ValueError, RecursionError):
            return self._drop("malformed-inner")
        if not isinstance(inner, dict):
            return self._drop("malformed-inner")
        kind, message_id = inner.get("type"), inner.get("messageId")
        if kind == "typing":
            return [TypingReceived()]
        if not _valid_id(message_id):
            return self._drop("malformed-inner")
        assert isinstance(message_id, str)
        if kind == "receipt":
            if self.unacknowledged.pop(message_id, None) is None:
                return self._drop("unknown-receipt")
            return [ReceiptReceived(message_id)]
        if kind != "message" or not isinstance(inner.get("text"), str):
            return self._drop("unknown-type")
        receipt = self._seal({"type": "receipt", "messageId": message_id})
        if message_id in self._seen:
            self.dropped["duplicate"] += 1
            return receipt  # the sender may not have had our receipt: acknowledge again
        self._seen[message_id] = None
        if len(self._seen) > _MAX_SEEN_IDS:
            self._seen.popitem(last=False)
        self.delivered += 1
        return [MessageReceived(message_id, inner["text"]), *receipt]

    def _drop(self, why: str) -> list[SessionOutput]:
        self.dropped[why] += 1
        _log.info("dropped a PDU from the peer: %s (state %s)", why, self.state.value)
        return []

    # ------------------------------------------------------------------------- sending
    def send_text(self, text: str, message_id: str | None = None) -> tuple[str, list[SessionOutput]]:
        """Seal one message; its id and the link PDUs. Only in Ready (else SessionNotReady)."""
        if self.state is not SessionState.READY:
            raise SessionNotReady(self.state)
        if len(text.encode("utf-8")) > _MAX_TEXT_BYTES:
            raise P2PUsageError(f"a message is at most {_MAX_TEXT_BYTES} bytes of text")
        message_id = message_id or secrets.token_hex(16)
        self.unacknowledged[message_id] = text
        return message_id, self._seal({"type": "message", "messageId": message_id, "text": text})

    def send_typing(self) -> list[SessionOutput]:
        if self.state is not SessionState.READY:
            raise SessionNotReady(self.state)
        return self._seal({"type": "typing"})

    def resend_unacknowledged(self) -> list[SessionOutput]:
        """After a resume: every message without a receipt again (the peer dedups by id)."""
        out: list[SessionOutput] = []
        for message_id, text in list(self.unacknowledged.items()):
            out += self._seal({"type": "message", "messageId": message_id, "text": text})
        return out

    def _seal(self, inner: dict[str, str]) -> list[SessionOutput]:
        assert self.session is not None
        sealed = self.session.seal(json.dumps(inner, separators=(",", ":")).encode("utf-8"))
        size = self.limits.chunk_bytes
        if len(sealed) <= size:
            return [SendPdu(bytes([WHOLE]) + sealed)]
        total = -(-len(sealed) // size)
        seq, self._next_seq = self._next_seq, self._next_seq + 1
        return [SendPdu(_CHUNK_HEADER.pack(CHUNK, seq, i, total) + sealed[off:off + size])
                for i, off in enumerate(range(0, len(sealed), size))]


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and value.isascii() and value.isalnum()
