"""One chat session with one peer, sans-I/O: PDUs and ``now`` in, outputs out.

It runs the crypto contract 2.0 handshake (whose first PDU negotiates versions, profile and
layers; no overlap ends it with ``protocol-error`` to the peer and :class:`SessionFailed` here),
then application messages sealed by the :class:`SecureSession`.

**Link framing, limits and the sealed JSON**: :mod:`._framing`.

**Resume (P7.4)**, the first PDUs on a new link when both sides kept the session (docs/protocol.md
"Resume"): ``0x03 || sealed`` carries ``{"type": "resume", "nonce": N1}`` (dialler),
``{"type": "resume-ok", "echo": N1, "nonce": N2}`` (acceptor) and ``{"type": "resume-confirm",
"echo": N2}`` (dialler); both sides are Ready only once the other echoed their fresh nonce, so a
replayed resume PDU never resumes anything.  ``0x04`` (plain, one byte) is ``resume-refused``: the
acceptor kept nothing it can open the resume with, and a full handshake follows on the same link.
Unacknowledged messages are resent after a resume or a new handshake; the receiver's dedup window
(kept in :meth:`SessionCore.export_state`) delivers each once.

**Receipts after delivery, coalesced** (docs/protocol.md §7): :meth:`SessionCore.pdu_received`
hands a message up and only records its id "to acknowledge", with a timer at ``now + ack_delay``
(:data:`ACK_DELAY_S`) in :meth:`SessionCore.next_deadline`.  Any message or typing PDU sealed
before then carries the pending ids in ``"acks"`` (at most :data:`MAX_ACKS_PER_PDU`); at the
deadline (or once that many wait) the rest leave in ONE standalone receipt.  Pending acks are not
exported: a lost one makes the peer resend after a resume and the dedup acknowledges again.

**Files** (docs/protocol.md "File transfer"): once Ready the core owns a
:class:`~enkrypted_p2p.files.FileTransfers` (built by :attr:`SessionCore.files_factory` when set,
kept across links and restored with the session), hands it every ``0x05`` / ``0x06`` frame, and
gives the driver :meth:`SessionCore.next_file_pdu` to call only when no chat PDU waits and the link
has room.  Its events come out as :class:`FileOutput`.

**Groups** (docs/protocol.md "Group chat"): ``0x07 || sealed`` / ``0x08 || seq || index || total ||
data`` carry one group envelope sealed by the session like a message (chunked the same way, under
the same P8 bounds), only in Ready; :meth:`SessionCore.send_group` seals one, a received one comes
out as :class:`GroupFrameReceived` (the chat service's group node judges it).

Peer input never raises: a PDU above the 16 MiB cap (checked before parsing), a malformed frame,
a chunk flood past the P8 limits, an undecryptable message, an unknown inner ``type`` or a frame
in the wrong state is dropped, logged and counted in :attr:`SessionCore.dropped`.
"""

from __future__ import annotations

__all__ = [
    "FileOutput",
    "FilesFactory",
    "GroupFrameReceived",
    "MessageReceived",
    "ReceiptReceived",
    "IdentityChanged",
    "ResumeRefused",
    "SendPdu",
    "SessionCore",
    "SessionFailed",
    "SessionNotReady",
    "SessionOutput",
    "SessionReady",
    "TypingReceived",
]

import itertools
import json
import logging
import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable

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
from ..files import FAST_FRAME, SEALED_FRAME, FileTransfers
from ._framing import (
    _CHUNK_HEADER,
    _MAX_REFUSALS,
    _MAX_TEXT_BYTES,
    ACK_AFTER_BYTES,
    ACK_DELAY_S,
    CHUNK,
    GROUP_CHUNK,
    GROUP_WHOLE,
    MAX_ACK_DELAY_S,
    MAX_ACKS_PER_PDU,
    MAX_INBOX,
    MAX_INBOX_BYTES,
    MAX_SEEN_IDS,
    MAX_UNACKNOWLEDGED,
    MAX_UNACKNOWLEDGED_BYTES,
    RESUME,
    RESUME_REFUSED,
    RESUME_TIMEOUT_S,
    WHOLE,
    Reassembly,
    SavedTexts,
    _utf8_len,
    _valid_id,
    _valid_nonce,
    saved_size,
    split,
)
from ._fsm import ConnectionFSM, FsmEvent, SessionState
from ._outputs import (
    FileOutput,
    GroupFrameReceived,
    IdentityChanged,
    MessageReceived,
    ReceiptReceived,
    ResumeRefused,
    SendPdu,
    SessionFailed,
    SessionOutput,
    SessionReady,
    TypingReceived,
)

_log = logging.getLogger("enkrypted.p2p.session")



class SessionNotReady(P2PError, LocalMisuse):
    """Application messages before Ready (or after the session ended); names the state."""

    def __init__(self, state: SessionState) -> None:
        super().__init__(f"cannot send application messages in state {state.value} (only in Ready)")
        self.state = state


FilesFactory = Callable[[Callable[[bytes], bytes], Callable[[bytes], "bytes | None"], "bytes | None"],
                        FileTransfers]
"""``(seal, open_, saved_state)`` -> the file core (``saved_state``: a restored session's)."""


class SessionCore:
    """Drive with :meth:`channel_open`, :meth:`start_handshake`, :meth:`pdu_received`,
    :meth:`send_text`, :meth:`handle_timeout` at :meth:`next_deadline`, :meth:`link_lost`."""

    def __init__(self, limits: WireLimits = WIRE_LIMITS, *, connecting: bool = True,
                 ack_delay: float = ACK_DELAY_S) -> None:
        if not 0.0 <= ack_delay <= MAX_ACK_DELAY_S:
            raise P2PUsageError(f"ack_delay is 0-{MAX_ACK_DELAY_S:g} s, not {ack_delay!r}")
        self.limits = limits
        self.ack_delay = ack_delay
        self._to_ack: dict[str, None] = {}
        """Ids delivered (or delivered again) and not yet acknowledged, oldest first."""
        self._ack_due: float | None = None
        self._ack_bytes = 0  # sealed bytes of the messages pending acknowledgement
        self.receipt_pdus = 0
        """Standalone receipt PDUs sealed (the rest rode on messages)."""
        self.fsm = ConnectionFSM()
        if connecting:  # the endpoint registered and the link is being set up
            self.fsm.fire(FsmEvent.REGISTERED)
            self.fsm.fire(FsmEvent.CONNECT)
        self.handshake: Handshake | None = None
        self.session: SecureSession | None = None
        self.dropped: Counter[str] = Counter()
        self.delivered = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.inbox = SavedTexts()
        """messageId -> text, handed up and not yet :meth:`taken` by the application: exported
        with the session, so a process that dies before the application saw a message it
        already acknowledged hands it up again after the restart (the dedup window drops the
        peer's resend)."""
        self._reassembly = Reassembly(limits)
        self._next_seq = 0
        self.unacknowledged = SavedTexts()
        """messageId -> text, sent and not yet acknowledged by a receipt (for resend on resume)."""
        self.resumed = 0
        self._nonce = b""  # our fresh resume nonce on this link
        self._dialler = False  # we sent the resume on this link
        self._resume_started = 0.0
        self._refusals = 0
        self.files: FileTransfers | None = None
        self.files_saved: bytes | None = None
        """The file core's exported state from a restored session, until the core is built."""
        self.files_factory: FilesFactory | None = None
        self._now = 0.0

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
        """P7.4 without the exchange (both sides known to be in step, e.g. in-process tests)."""
        self.fsm.fire(FsmEvent.RESUME)
        self.session = session
        return [self._ready(session, resumed=True)]

    def relink(self) -> None:
        """A new link is being set up for the kept session (after Disconnected)."""
        if self.fsm.can(FsmEvent.CONNECT):
            self.fsm.fire(FsmEvent.CONNECT)
        self.handshake = None
        self._reassembly.clear()
        self._refusals = 0

    def export_state(self) -> bytes | None:
        """This session as versioned bytes (:func:`~._state.export_core`); ``None`` before any
        handshake completed.  Secret: store it encrypted."""
        from ._state import export_core  # here: _state builds on this module

        return export_core(self)

    def seen_ids(self) -> tuple[str, ...]:
        """The dedup window, oldest first (what :func:`export_core` keeps)."""
        return tuple(self._seen)

    def remember(self, message_ids: list[str]) -> None:
        """Restore a dedup window (oldest first), bounded to the newest ``MAX_SEEN_IDS``.  Like
        every id the window holds, each is 1-64 ASCII letters or digits (what the export relies
        on to write them without escaping)."""
        if not all(map(_valid_id, message_ids)):
            raise P2PUsageError("a message id is 1-64 ASCII letters or digits")
        for message_id in message_ids[-MAX_SEEN_IDS:]:
            self._seen[message_id] = None

    @property
    def can_resume(self) -> bool:
        return self.session is not None

    def start_resume(self, nonce: bytes, now: float) -> list[SessionOutput]:
        """Dialler, first PDU on a new link: the sealed ``resume`` with our fresh ``nonce``."""
        if self.session is None:
            raise SessionNotReady(self.state)
        self.fsm.fire(FsmEvent.RESUME_START)
        self._nonce, self._dialler, self._resume_started = nonce, True, now
        return self._seal_resume({"type": "resume", "nonce": nonce.hex()})

    def _seal_resume(self, inner: dict[str, str]) -> list[SessionOutput]:
        assert self.session is not None
        sealed = self.session.seal(json.dumps(inner, separators=(",", ":")).encode("utf-8"))
        return [SendPdu(bytes([RESUME]) + sealed)]

    def link_lost(self) -> list[SessionOutput]:
        if self.fsm.can(FsmEvent.LINK_LOST):
            self.fsm.fire(FsmEvent.LINK_LOST)
        elif self.fsm.can(FsmEvent.CONNECT_FAILED):
            self.fsm.fire(FsmEvent.CONNECT_FAILED)
        self._reassembly.clear()
        if self.files is not None:
            self.files.link_lost()
        return []

    def close(self) -> None:
        if self.fsm.can(FsmEvent.CLOSE):
            self.fsm.fire(FsmEvent.CLOSE)
        self._reassembly.clear()
        if self.files is not None:
            self.files.link_lost()

    def _ready(self, session: SecureSession, *, resumed: bool = False) -> SessionReady:
        self._files_up()
        return SessionReady(session.profile, tuple(session.layers), session.peer_fingerprint,
                            session.safety_number, resumed)

    # ------------------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        reassembly = self._reassembly.next_deadline()
        times = [] if reassembly is None else [reassembly]
        if self.state is SessionState.CRYPTO_HANDSHAKING and self.handshake is not None:
            deadline = self.handshake.next_deadline()
            if deadline is not None:
                times.append(deadline)
        if self.state is SessionState.RESUMING:
            times.append(self._resume_started + RESUME_TIMEOUT_S)
        if self.state is SessionState.READY:
            if self._ack_due is not None:
                times.append(self._ack_due)
            if self.files is not None:
                deadline = self.files.next_deadline()
                if deadline is not None:
                    times.append(deadline)
        return min(times) if times else None

    def handle_timeout(self, now: float) -> list[SessionOutput]:
        self._now = now
        out: list[SessionOutput] = []
        if self.state is SessionState.READY and self._ack_due is not None and now >= self._ack_due:
            out = self._flush_acks()
        return out + self._other_timeouts(now)

    def _other_timeouts(self, now: float) -> list[SessionOutput]:
        if self.state is SessionState.READY and self.files is not None:
            deadline = self.files.next_deadline()
            if deadline is not None and now >= deadline:
                self.files.handle_timeout(now)
        for _ in range(self._reassembly.expire(now)):
            self._drop("reassembly-timeout")
        if self.state is SessionState.CRYPTO_HANDSHAKING and self.handshake is not None:
            deadline = self.handshake.next_deadline()
            if deadline is not None and now >= deadline:
                return self._handshake_events(self.handshake.handle_timeout(now))
        if self.state is SessionState.RESUMING and now >= self._resume_started + RESUME_TIMEOUT_S:
            self.fsm.fire(FsmEvent.HANDSHAKE_FAILED)
            return [SessionFailed(f"the resume was not completed within {RESUME_TIMEOUT_S:g} s")]
        return []

    # ------------------------------------------------------------------------- receiving
    def pdu_received(self, pdu: bytes, now: float) -> list[SessionOutput]:  # noqa: PLR0911
        if len(pdu) > self.limits.max_pdu_bytes:  # P8.1: before any parsing
            return self._drop("oversize")
        self._now = now
        state = self.state
        kind = pdu[0] if pdu else None
        if state is SessionState.CRYPTO_HANDSHAKING:
            assert self.handshake is not None
            if kind == RESUME and self._refusals < _MAX_REFUSALS:  # we kept nothing: say so
                self._refusals += 1
                return [SendPdu(bytes([RESUME_REFUSED]))]
            if kind in (WHOLE, CHUNK, RESUME, RESUME_REFUSED, SEALED_FRAME, FAST_FRAME,
                        GROUP_WHOLE, GROUP_CHUNK):
                return self._drop("wrong-state")
            return self._handshake_events(self.handshake.receive(pdu, now))
        if state is SessionState.DATA_CHANNEL_OPEN and kind == RESUME:
            return self._accept_resume(pdu[1:], now)
        if state is SessionState.RESUMING:
            return self._resume_step(pdu, now)
        if state is not SessionState.READY:
            return self._drop("wrong-state")
        out = self._ready_pdu(pdu, kind, now)
        if self._ack_due is not None and now >= self._ack_due:  # even if the timer is starved
            out += self._flush_acks()
        return out

    def _ready_pdu(self, pdu: bytes, kind: int | None, now: float) -> list[SessionOutput]:
        if kind == WHOLE:
            return self._sealed(pdu[1:])
        if kind in (CHUNK, GROUP_CHUNK):
            return self._chunk(pdu, now)
        if kind == GROUP_WHOLE:
            return self._group_sealed(pdu[1:])
        if kind in (SEALED_FRAME, FAST_FRAME):
            return self._file_frame(pdu, now)
        return self._drop("wrong-state" if pdu[:1] == b"{" else "malformed")

    # ------------------------------------------------------------------------- files
    def _files_up(self) -> None:
        """Ready (first time, after a resume or a new handshake): the file core, built once and
        told the link is back (it re-offers, re-requests and repeats its DONEs)."""
        if self.files is None:
            saved, self.files_saved = self.files_saved, None
            if self.files_factory is not None:
                self.files = self.files_factory(self._file_seal, self._file_open, saved)
            else:
                self.files = FileTransfers(self._file_seal, self._file_open)
        if not self.files.link_up:
            self.files.link_restored(self._now)

    def _file_seal(self, plaintext: bytes) -> bytes:
        assert self.session is not None
        return self.session.seal(plaintext)

    def _file_open(self, sealed: bytes) -> bytes | None:
        if self.session is None:
            return None
        try:
            result = self.session.open(sealed)
        except CryptoFailure:
            return None
        return result.plaintext if isinstance(result, Delivered) else None

    def _file_frame(self, pdu: bytes, now: float) -> list[SessionOutput]:
        if self.files is None:
            return self._drop("no-file-core")
        try:
            events = self.files.pdu_received(pdu, now)
        except (OSError, P2PError) as exc:  # our disk or sink, never the chat session's end
            _log.warning("a file frame could not be handled: %s", exc)
            return self._drop("file-error")
        return [FileOutput(e) for e in events]

    def file_events(self) -> list[SessionOutput]:
        """Events the file core queued on a local command (cancel, a failed read)."""
        return [] if self.files is None else [FileOutput(e) for e in self.files.take_events()]

    def next_file_pdu(self, budget: int) -> bytes | None:
        """One file frame of at most ``budget`` bytes for the link, only in Ready. The driver
        calls it only when no chat PDU waits and the link has room (the fairness rule)."""
        if self.state is not SessionState.READY or self.files is None:
            return None
        return self.files.next_pdu(budget)

    def has_file_pdu(self) -> bool:
        return (self.state is SessionState.READY and self.files is not None
                and self.files.has_pending())

    # ------------------------------------------------------------------------- resume (P7.4)
    def _open_resume(self, sealed: bytes) -> dict[str, object] | None:
        assert self.session is not None
        try:
            result = self.session.open(sealed)
            inner = json.loads(result.plaintext) if isinstance(result, Delivered) else None
        except (CryptoFailure, ValueError, RecursionError):
            return None
        return inner if isinstance(inner, dict) else None

    def _accept_resume(self, sealed: bytes, now: float) -> list[SessionOutput]:
        """Acceptor, first PDU of a new link: answer ``resume-ok`` or refuse (plain)."""
        inner = self._open_resume(sealed) if self.session is not None else None
        nonce = inner.get("nonce") if inner is not None else None
        if inner is None or inner.get("type") != "resume" or not _valid_nonce(nonce):
            self.dropped["resume-refused"] += 1
            return [SendPdu(bytes([RESUME_REFUSED])),
                    ResumeRefused("no kept session opens the peer's resume")]
        assert isinstance(nonce, str)
        self.fsm.fire(FsmEvent.RESUME_START)
        self._nonce, self._dialler, self._resume_started = secrets.token_bytes(16), False, now
        return self._seal_resume({"type": "resume-ok", "echo": nonce, "nonce": self._nonce.hex()})

    def _resume_step(self, pdu: bytes, now: float) -> list[SessionOutput]:
        kind = pdu[0] if pdu else None
        if kind == RESUME_REFUSED and self._dialler:
            self.fsm.fire(FsmEvent.RESUME_REFUSED)
            return [ResumeRefused("the peer kept no session to resume")]
        if kind != RESUME:
            return self._drop("wrong-state")
        inner = self._open_resume(pdu[1:])
        if inner is None or inner.get("echo") != self._nonce.hex():
            return self._drop("bad-resume")  # e.g. a replayed resume-ok: its echo is stale
        if self._dialler and inner.get("type") == "resume-ok" and _valid_nonce(inner.get("nonce")):
            confirm = self._seal_resume({"type": "resume-confirm", "echo": str(inner["nonce"])})
            return [*confirm, *self._resumed()]
        if not self._dialler and inner.get("type") == "resume-confirm":
            return self._resumed()
        return self._drop("bad-resume")

    def _resumed(self) -> list[SessionOutput]:
        assert self.session is not None
        self.fsm.fire(FsmEvent.RESUME)
        self.resumed += 1
        return [self._ready(self.session, resumed=True), *self.resend_unacknowledged()]

    def _handshake_events(self, events: list[HandshakeComplete | HandshakeFailed]
                          ) -> list[SessionOutput]:
        assert self.handshake is not None
        out: list[SessionOutput] = [SendPdu(p) for p in self.handshake.data_to_send()]
        for event in events:
            if isinstance(event, HandshakeComplete):
                self.fsm.fire(FsmEvent.HANDSHAKE_COMPLETE)
                previous = None if self.session is None else self.session.peer_fingerprint
                self.session = event.session
                if previous is not None and previous != event.session.peer_fingerprint:
                    out += self._identity_changed(previous, event.session)
                    continue
                out.append(self._ready(event.session))
                out += self.resend_unacknowledged()
            elif isinstance(event, HandshakeFailed):
                self.fsm.fire(FsmEvent.HANDSHAKE_FAILED)
                _log.info("handshake failed: %s", event.reason)
                out.append(SessionFailed(event.reason))
        return out

    def _identity_changed(self, previous: str, session: SecureSession) -> list[SessionOutput]:
        """The peer id now answers with another identity key (a new install, or someone who took
        the id over): never hand it what was meant for the old one."""
        withheld = tuple(self.unacknowledged)
        self.unacknowledged.clear()
        self._to_ack.clear()  # acknowledgements owed to the old identity are not the new one's
        self._ack_due, self._ack_bytes = None, 0
        self.files, self.files_saved = None, None  # transfers of the old identity end here
        _log.warning("the peer's identity key changed (%s... -> %s...): %d queued message(s) "
                     "withheld", previous[:16], session.peer_fingerprint[:16], len(withheld))
        return [self._ready(session),
                IdentityChanged(previous, session.peer_fingerprint, withheld)]

    def _chunk(self, pdu: bytes, now: float) -> list[SessionOutput]:
        result = self._reassembly.add(pdu, now)
        if isinstance(result, str):
            return self._drop(result)
        if result is None:
            return []
        sealed, group = result
        return self._group_sealed(sealed) if group else self._sealed(sealed)

    def _group_sealed(self, sealed: bytes) -> list[SessionOutput]:
        assert self.session is not None
        try:
            result = self.session.open(sealed)
        except CryptoFailure:
            return self._drop("undecryptable")
        if not isinstance(result, Delivered):
            return []  # a control PDU (key rotation) was applied
        return [GroupFrameReceived(result.plaintext)]

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
            return [TypingReceived(), *self._acked(inner.get("acks"))]
        if kind == "receipt":
            return self._receipt(inner)
        if not _valid_id(message_id):
            return self._drop("malformed-inner")
        assert isinstance(message_id, str)
        if kind != "message" or not isinstance(inner.get("text"), str):
            return self._drop("unknown-type")
        return self._message(message_id, inner, len(sealed))

    def _message(self, message_id: str, inner: dict[str, object], size: int
                 ) -> list[SessionOutput]:
        """Deliver once (dedup), then the ack work: the peer's acks, ours pending with a timer."""
        out: list[SessionOutput] = []
        if message_id in self._seen:
            self.dropped["duplicate"] += 1  # the sender may not have had our ack: ack again
        else:
            self._seen[message_id] = None
            if len(self._seen) > MAX_SEEN_IDS:
                self._seen.popitem(last=False)
            self.delivered += 1
            self._keep_for_app(message_id, str(inner["text"]))
            out.append(MessageReceived(message_id, str(inner["text"])))  # before any ack work
        out += self._acked(inner.get("acks"))
        self._to_ack[message_id] = None
        self._ack_bytes += size
        if self._ack_due is None:
            self._ack_due = self._now + self.ack_delay
        if len(self._to_ack) >= MAX_ACKS_PER_PDU or self._ack_bytes >= ACK_AFTER_BYTES:
            out += self._flush_acks()
        return out

    def _keep_for_app(self, message_id: str, text: str) -> None:
        self.inbox[message_id] = text
        while self.inbox and (len(self.inbox) > MAX_INBOX or self.inbox.saved_bytes > MAX_INBOX_BYTES):
            self.inbox.pop_oldest()

    def taken(self, message_id: str) -> bool:
        """The application took the message (no hand-up again after a restart); ``False`` if it
        was not waiting."""
        return self.inbox.pop(message_id, None) is not None

    def _receipt(self, inner: dict[str, object]) -> list[SessionOutput]:
        """A standalone receipt: ``messageIds`` (several) or the single ``messageId``."""
        ids = inner.get("messageIds")
        if ids is None and "messageId" in inner:
            ids = [inner["messageId"]]
        if ids is None:
            return self._drop("malformed-inner")
        return self._acked(ids)

    def _acked(self, ids: object) -> list[SessionOutput]:
        """One :class:`ReceiptReceived` per id we wait a receipt for; the rest dropped, counted."""
        if ids is None:
            return []
        if not isinstance(ids, list) or not ids:
            return self._drop("malformed-acks")
        if len(ids) > MAX_ACKS_PER_PDU:
            return self._drop("oversize-acks")
        out: list[SessionOutput] = []
        for message_id in ids:
            if not _valid_id(message_id):
                self._drop("malformed-acks")
            elif self.unacknowledged.pop(message_id, None) is None:
                self._drop("unknown-receipt")  # unknown, already acknowledged or repeated
            else:
                out.append(ReceiptReceived(message_id))
        return out

    def _drop(self, why: str) -> list[SessionOutput]:
        self.dropped[why] += 1
        _log.info("dropped a PDU from the peer: %s (state %s)", why, self.state.value)
        return []

    # ------------------------------------------------------------------------- sending
    def send_text(self, text: str, message_id: str | None = None) -> tuple[str, list[SessionOutput]]:
        """Seal one message; its id and the link PDUs. Only in Ready (else SessionNotReady)."""
        if self.state is not SessionState.READY:
            raise SessionNotReady(self.state)
        message_id = self._keep(text, message_id)
        return message_id, self._seal({"type": "message", "messageId": message_id, "text": text},
                                      acks=True)

    def has_room(self, text: str) -> bool:
        """Whether :meth:`send_text` of ``text`` fits the unacknowledged window now."""
        return len(self.unacknowledged) < MAX_UNACKNOWLEDGED \
            and self._pending_bytes() + saved_size(text) <= MAX_UNACKNOWLEDGED_BYTES

    def _pending_bytes(self) -> int:
        return self.unacknowledged.saved_bytes

    def queue_text(self, text: str, message_id: str | None = None) -> str:
        """Keep a message for the next Ready (reconnecting); it is sent by the resend."""
        return self._keep(text, message_id)

    def _keep(self, text: str, message_id: str | None) -> str:
        size, saved = _utf8_len(text), saved_size(text)
        if size > _MAX_TEXT_BYTES or saved > MAX_UNACKNOWLEDGED_BYTES:
            raise P2PUsageError(f"a message is at most {_MAX_TEXT_BYTES} bytes of text (and "
                                f"{MAX_UNACKNOWLEDGED_BYTES} as saved: a control character "
                                "counts six)")
        pending = self._pending_bytes()
        if len(self.unacknowledged) >= MAX_UNACKNOWLEDGED \
                or pending + saved > MAX_UNACKNOWLEDGED_BYTES:
            raise P2PUsageError(f"{len(self.unacknowledged)} messages ({pending} bytes) wait for "
                                "a receipt already: wait for the peer before sending more")
        message_id = message_id or secrets.token_hex(16)
        if not _valid_id(message_id):
            raise P2PUsageError("a message id is 1-64 ASCII letters or digits")
        self.unacknowledged.put(message_id, text, saved)
        return message_id

    def send_group(self, pdu: bytes) -> list[SessionOutput]:
        """Seal one group envelope for the link (0x07, or 0x08 chunks). Only in Ready."""
        if self.state is not SessionState.READY:
            raise SessionNotReady(self.state)
        assert self.session is not None
        sealed = self.session.seal(pdu)
        if len(sealed) > self.limits.max_pdu_bytes - _CHUNK_HEADER.size:
            raise P2PUsageError(f"a group frame is at most {self.limits.max_pdu_bytes} bytes sealed")
        return self._frame(sealed, GROUP_WHOLE, GROUP_CHUNK)

    def send_typing(self) -> list[SessionOutput]:
        if self.state is not SessionState.READY:
            raise SessionNotReady(self.state)
        return self._seal({"type": "typing"}, acks=True)

    def resend_unacknowledged(self) -> list[SessionOutput]:
        """After a resume: every message without a receipt again (the peer dedups by id)."""
        out: list[SessionOutput] = []
        for message_id, text in list(self.unacknowledged.items()):
            out += self._seal({"type": "message", "messageId": message_id, "text": text},
                              acks=True)
        return out + self._flush_acks()

    def pending_acks(self) -> tuple[str, ...]:
        """Ids delivered and not yet acknowledged to the peer, oldest first (not exported)."""
        return tuple(self._to_ack)

    def _take_acks(self) -> list[str]:
        """Up to :data:`MAX_ACKS_PER_PDU` pending ids, oldest first, no longer pending."""
        taken = list(itertools.islice(self._to_ack, MAX_ACKS_PER_PDU))
        for message_id in taken:
            del self._to_ack[message_id]
        if not self._to_ack:
            self._ack_due, self._ack_bytes = None, 0
        return taken

    def _flush_acks(self) -> list[SessionOutput]:
        """Every pending id in standalone receipts (one PDU per :data:`MAX_ACKS_PER_PDU`)."""
        out: list[SessionOutput] = []
        while self._to_ack and self.state is SessionState.READY:
            self.receipt_pdus += 1
            out += self._seal({"type": "receipt", "messageIds": self._take_acks()})
        return out

    def _seal(self, inner: dict[str, object], *, acks: bool = False) -> list[SessionOutput]:
        assert self.session is not None
        if acks and self._to_ack:
            inner["acks"] = self._take_acks()
        sealed = self.session.seal(json.dumps(inner, separators=(",", ":")).encode("utf-8"))
        return self._frame(sealed, WHOLE, CHUNK)

    def _frame(self, sealed: bytes, whole: int, chunk: int) -> list[SessionOutput]:
        frames = split(sealed, whole, chunk, self._next_seq, self.limits.chunk_bytes)
        if len(frames) > 1:  # a chunked frame used its sequence number
            self._next_seq += 1
        return [SendPdu(frame) for frame in frames]

