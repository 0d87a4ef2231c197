"""The session core, sans-I/O: the FSM's transition table, the handshake and its 300 s timeout on
a fake clock, messages with receipts and dedup, and hostile PDUs that must be dropped and counted.

The crypto service is the real cascade plugin, created the way the shell creates it (tests may
import any plugin; plugins never import each other)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.session import (
    TRANSITIONS,
    ConnectionFSM,
    FsmEvent,
    IllegalTransition,
    MessageReceived,
    ReceiptReceived,
    SendPdu,
    SessionCore,
    SessionFailed,
    SessionNotReady,
    SessionOutput,
    SessionReady,
    SessionState,
    TypingReceived,
)
from enkrypted_shell.contracts import WIRE_LIMITS, AppContext, CryptoService, LocalMisuse
from enkrypted_shell.testing import FakeClock

S, E = SessionState, FsmEvent


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


# ----------------------------------------------------------------------------------- FSM
def test_happy_path_through_every_state() -> None:
    fsm = ConnectionFSM()
    for event, state in [(E.REGISTERED, S.SIGNALING_REGISTERED), (E.CONNECT, S.WEBRTC_CONNECTING),
                         (E.CHANNEL_OPEN, S.DATA_CHANNEL_OPEN),
                         (E.HANDSHAKE_START, S.CRYPTO_HANDSHAKING),
                         (E.HANDSHAKE_COMPLETE, S.READY), (E.LINK_LOST, S.DISCONNECTED),
                         (E.CONNECT, S.WEBRTC_CONNECTING), (E.CHANNEL_OPEN, S.DATA_CHANNEL_OPEN),
                         (E.RESUME, S.READY), (E.SESSION_CORRUPT, S.CRYPTO_HANDSHAKING)]:
        assert fsm.fire(event) is state
    assert len(fsm.history) == 10


def test_every_pair_outside_the_table_is_illegal_and_names_the_state() -> None:
    illegal = 0
    for state in SessionState:
        for event in FsmEvent:
            fsm = ConnectionFSM(state)
            if (state, event) in TRANSITIONS:
                assert fsm.fire(event) is TRANSITIONS[(state, event)]
                continue
            illegal += 1
            with pytest.raises(IllegalTransition) as info:
                fsm.fire(event)
            assert state.value in str(info.value) and event.value in str(info.value)
            assert isinstance(info.value, LocalMisuse) and fsm.state is state
    assert illegal == len(SessionState) * len(FsmEvent) - len(TRANSITIONS)
    # the spec's guards: no application state without the handshake or a resume
    assert (S.DATA_CHANNEL_OPEN, E.HANDSHAKE_COMPLETE) not in TRANSITIONS
    assert (S.WEBRTC_CONNECTING, E.HANDSHAKE_START) not in TRANSITIONS
    assert (S.DISCONNECTED, E.HANDSHAKE_COMPLETE) not in TRANSITIONS


# ----------------------------------------------------------------------------------- helpers
def pump(a: SessionCore, b: SessionCore, out_a: list[SessionOutput], now: float,
         ) -> tuple[list[SessionOutput], list[SessionOutput]]:
    """Deliver a's PDUs to b and back until quiet; the non-PDU outputs of each side."""
    events_a: list[SessionOutput] = [o for o in out_a if not isinstance(o, SendPdu)]
    events_b: list[SessionOutput] = []
    queue = [(b, o.pdu) for o in out_a if isinstance(o, SendPdu)]
    for _ in range(100):
        if not queue:
            break
        target, pdu = queue.pop(0)
        other = a if target is b else b
        for out in target.pdu_received(pdu, now):
            if isinstance(out, SendPdu):
                queue.append((other, out.pdu))
            else:
                (events_b if target is b else events_a).append(out)
    return events_a, events_b


def ready_pair(crypto: CryptoService, now: float = 0.0,
               identities: tuple[bytes, bytes] | None = None) -> tuple[SessionCore, SessionCore]:
    a, b = SessionCore(), SessionCore()
    a.channel_open()
    b.channel_open()
    id_a, id_b = identities or (crypto.new_identity(), crypto.new_identity())
    b.start_handshake(crypto.handshake(id_b, initiator=False, now=now))
    out = a.start_handshake(crypto.handshake(id_a, initiator=True, now=now))
    events_a, events_b = pump(a, b, out, now)
    assert a.state is S.READY and b.state is S.READY
    assert isinstance(events_a[0], SessionReady) and isinstance(events_b[0], SessionReady)
    assert events_a[0].safety_number == events_b[0].safety_number
    return a, b


def deliver(sender: SessionCore, receiver: SessionCore, outputs: list[SessionOutput],
            now: float = 1.0) -> tuple[list[SessionOutput], list[SessionOutput]]:
    return pump(sender, receiver, outputs, now)


# ----------------------------------------------------------------------------------- messaging
def test_messages_receipts_and_dedup(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    mid, out = a.send_text("hello bob")
    assert a.unacknowledged == {mid: "hello bob"}
    at_a, at_b = deliver(a, b, out)
    assert at_b == [MessageReceived(mid, "hello bob")] and at_a == []  # the ack waits
    _, at_a = deliver(b, a, b.handle_timeout(b.next_deadline() or 0.0))
    assert at_a == [ReceiptReceived(mid)] and not a.unacknowledged
    # a resend of the same id (what resume does) is acknowledged again, delivered once
    a.unacknowledged[mid] = "hello bob"
    at_a, at_b = deliver(a, b, a.resend_unacknowledged())
    assert at_b == [] and b.dropped["duplicate"] == 1 and b.pending_acks() == (mid,)
    _, at_a = deliver(b, a, b.handle_timeout(b.next_deadline() or 0.0))
    assert at_a == [ReceiptReceived(mid)]
    _, at_a = deliver(b, a, b.send_typing())
    assert at_a == [TypingReceived()]
    assert b.delivered == 1


def test_large_message_is_chunked_at_8192_and_reassembled(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    text = "x" * 100_000
    mid, out = a.send_text(text)
    pdus = [o.pdu for o in out if isinstance(o, SendPdu)]
    assert len(pdus) > 12 and all(len(p) <= 8192 + 17 for p in pdus) and pdus[0][0] == 0x02
    _, at_b = deliver(a, b, out)
    assert at_b == [MessageReceived(mid, text)]


def test_send_before_ready_is_refused_with_the_state(crypto: CryptoService) -> None:
    core = SessionCore()
    with pytest.raises(SessionNotReady, match="WebRTCConnecting"):
        core.send_text("too early")
    core.channel_open()
    core.start_handshake(crypto.handshake(crypto.new_identity(), initiator=True, now=0.0))
    with pytest.raises(SessionNotReady, match="CryptoHandshaking"):
        core.send_text("still too early")


# ----------------------------------------------------------------------------------- timeouts
def test_handshake_times_out_at_300_s_on_the_fake_clock(crypto: CryptoService) -> None:
    clock = FakeClock(1000.0)
    core = SessionCore()
    core.channel_open()
    out = core.start_handshake(crypto.handshake(crypto.new_identity(), initiator=True, now=clock()))
    assert any(isinstance(o, SendPdu) for o in out)  # the offer; the peer never answers
    deadline = core.next_deadline()
    assert deadline == pytest.approx(clock() + WIRE_LIMITS.handshake_timeout_s)
    clock.advance(299.0)
    assert core.handle_timeout(clock()) == [] and core.state is S.CRYPTO_HANDSHAKING
    clock.advance(1.0)
    events = core.handle_timeout(clock())
    assert [type(e) for e in events if not isinstance(e, SendPdu)] == [SessionFailed]
    assert core.state is S.DISCONNECTED and core.next_deadline() is None


def test_partial_message_expires_after_120_s(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    _, out = a.send_text("y" * 50_000)
    pdus = [o.pdu for o in out if isinstance(o, SendPdu)]
    for pdu in pdus[:-1]:
        assert b.pdu_received(pdu, 10.0) == []
    assert b.next_deadline() == pytest.approx(130.0)
    assert b.handle_timeout(130.0) == [] and b.dropped["reassembly-timeout"] == 1
    assert b.pdu_received(pdus[-1], 131.0) == []  # the last chunk alone is never delivered
    assert b.delivered == 0


# ----------------------------------------------------------------------------------- hostile
def chunk(seq: int, index: int, total: int, data: bytes = b"z" * 100) -> bytes:
    return struct.pack(">BQII", 2, seq, index, total) + data


def test_hostile_pdus_are_dropped_counted_and_the_session_survives(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    hostile = [
        b"",  # empty
        b"\x07garbage",  # unknown frame kind
        b"\x01" + b"not a sealed message",  # undecryptable
        b'{"type":"signal-key-exchange-request"}',  # a handshake PDU after Ready: wrong state
        b"\x02short",  # truncated chunk header
        chunk(1, 5, 3),  # index past total
        chunk(1, 0, 1),  # a one-chunk "chunked" message
        chunk(1, 0, 4097),  # more than 4096 chunks
        chunk(1, 0, 3, b"z" * 8193),  # chunk above 8192 bytes
        b"\x01" + b"\x00" * 64,
    ]
    for pdu in hostile:
        assert b.pdu_received(pdu, 1.0) == []
    assert b.pdu_received(b"\x01" + b"A" * (WIRE_LIMITS.max_pdu_bytes + 1), 1.0) == []
    assert b.dropped["oversize"] == 1
    assert sum(b.dropped.values()) == len(hostile) + 1 and b.delivered == 0
    # a chunk flood: at most 64 reassemblies are kept, the rest dropped
    for seq in range(200):
        b.pdu_received(chunk(1000 + seq, 0, 2), 2.0)
    assert b.dropped["too-many-reassemblies"] == 200 - 64
    # a duplicate chunk index poisons only its own message (and frees its slot)
    assert b.pdu_received(chunk(1000, 0, 2), 2.0) == [] and b.dropped["inconsistent-chunk"] == 1
    assert b.pdu_received(chunk(5000, 0, 3), 2.0) == [] and b.dropped["too-many-reassemblies"] == 136
    # the real conversation goes on
    mid, out = a.send_text("still here")
    _, at_b = deliver(a, b, out)
    assert MessageReceived(mid, "still here") in at_b


def test_replayed_sealed_message_is_not_delivered_twice(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    mid, out = a.send_text("once")
    pdu = next(o.pdu for o in out if isinstance(o, SendPdu))
    first = b.pdu_received(pdu, 1.0)
    assert MessageReceived(mid, "once") in first
    assert not any(isinstance(o, MessageReceived) for o in b.pdu_received(pdu, 1.0))
    assert b.delivered == 1 and (b.dropped["undecryptable"] + b.dropped["duplicate"]) == 1


def test_application_frames_during_the_handshake_are_dropped(crypto: CryptoService) -> None:
    core = SessionCore()
    with_core = core.pdu_received(b"\x01abc", 0.0)
    assert with_core == [] and core.dropped["wrong-state"] == 1  # not even open yet
    core.channel_open()
    core.start_handshake(crypto.handshake(crypto.new_identity(), initiator=False, now=0.0))
    assert core.pdu_received(b"\x01abc", 0.0) == [] and core.dropped["wrong-state"] == 2
    assert core.pdu_received(chunk(1, 0, 2), 0.0) == [] and core.dropped["wrong-state"] == 3
    assert core.state is S.CRYPTO_HANDSHAKING


def test_malformed_handshake_pdu_fails_the_handshake_cleanly(crypto: CryptoService) -> None:
    core = SessionCore()
    core.channel_open()
    core.start_handshake(crypto.handshake(crypto.new_identity(), initiator=False, now=0.0))
    out = core.pdu_received(json.dumps({"type": "nonsense"}).encode(), 0.0)
    failed = [o for o in out if isinstance(o, SessionFailed)]
    assert failed and core.state is S.DISCONNECTED
    # the peer is told (protocol-error), generic
    assert any(isinstance(o, SendPdu) and b"protocol-error" in o.pdu for o in out)


def test_no_common_profile_is_a_clear_local_error(crypto: CryptoService, tmp_path: Path) -> None:
    profiles = crypto.profiles
    if len(profiles) < 2:
        pytest.skip("one profile only: nothing to disagree about")
    a, b = SessionCore(), SessionCore()
    a.channel_open()
    b.channel_open()
    b.start_handshake(crypto.handshake(crypto.new_identity(), initiator=False, now=0.0,
                                       profiles=[profiles[1]]))
    out = a.start_handshake(crypto.handshake(crypto.new_identity(), initiator=True, now=0.0,
                                             profiles=[profiles[0]]))
    events_a, events_b = pump(a, b, out, 0.0)
    assert any(isinstance(e, SessionFailed) for e in events_a + events_b)
    assert a.state is S.DISCONNECTED or b.state is S.DISCONNECTED


# ----------------------------------------------------------------------------------- group frames
def test_group_frames_are_sealed_chunked_and_opened_only_in_ready(crypto: CryptoService) -> None:
    """0x07 / 0x08 (docs/protocol.md §9.7): a group envelope sealed like a message, chunked above
    8192 bytes; before Ready dropped (``wrong-state``), a chunk of the other kind breaks its
    reassembly (``inconsistent-chunk``), a forged sealed frame is ``undecryptable``."""
    from enkrypted_p2p.session import GroupFrameReceived

    early = SessionCore()
    with pytest.raises(SessionNotReady):
        early.send_group(b"EG..")
    early.channel_open()
    early.start_handshake(crypto.handshake(crypto.new_identity(), initiator=False, now=0.0))
    assert early.pdu_received(b"\x07abc", 0.0) == [] and early.dropped["wrong-state"] == 1
    a, b = ready_pair(crypto)
    small = a.send_group(b"a group envelope")
    assert [o.pdu[0] for o in small if isinstance(o, SendPdu)] == [0x07]
    assert deliver(a, b, small)[1] == [GroupFrameReceived(b"a group envelope")]
    big = b"g" * 50_000
    out = a.send_group(big)
    pdus = [o.pdu for o in out if isinstance(o, SendPdu)]
    assert len(pdus) > 6 and {p[0] for p in pdus} == {0x08}
    assert deliver(a, b, out)[1] == [GroupFrameReceived(big)]
    first = next(o.pdu for o in a.send_group(big) if isinstance(o, SendPdu))
    _, seq, _, total = struct.unpack(">BQII", first[:17])
    assert b.pdu_received(first, 2.0) == []
    assert b.pdu_received(struct.pack(">BQII", 0x02, seq, 1, total) + b"z", 2.0) == []
    assert b.dropped["inconsistent-chunk"] == 1  # a message chunk in a group reassembly
    assert b.pdu_received(b"\x07" + b"\x00" * 64, 2.0) == [] and b.dropped["undecryptable"] == 1
