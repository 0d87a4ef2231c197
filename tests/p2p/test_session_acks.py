"""Receipts after delivery, coalesced and piggybacked (docs/protocol.md §7 "Receipts"), in the
sans-I/O core on a fake clock: the message is handed up before any receipt work, its id waits at
most ``ack_delay``, a reply sent before then carries it (``acks``), the rest leave in one standalone
receipt with several ids; standalone single-id receipts are still accepted; hostile ack lists
(oversize, unknown, repeated, malformed) are dropped and counted, never raising."""

from __future__ import annotations

import json

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.session import (
    MessageReceived,
    ReceiptReceived,
    SendPdu,
    SessionCore,
    SessionOutput,
    TypingReceived,
    restore_core,
)
from enkrypted_p2p.session._framing import (
    ACK_AFTER_BYTES,
    ACK_DELAY_S,
    MAX_ACK_DELAY_S,
    MAX_ACKS_PER_PDU,
)
from enkrypted_shell.contracts import AppContext, CryptoService
from enkrypted_shell.testing import FakeClock
from tests.p2p.test_session_core import pump, ready_pair
from tests.p2p.test_session_resume import NONCE


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


def pdus(outputs: list[SessionOutput]) -> list[bytes]:
    return [o.pdu for o in outputs if isinstance(o, SendPdu)]


def receive(core: SessionCore, outputs: list[SessionOutput], now: float) -> list[SessionOutput]:
    """Hand every PDU of ``outputs`` to ``core`` (one direction only, nothing answered)."""
    return [o for pdu in pdus(outputs) for o in core.pdu_received(pdu, now)]


def sealed_inner(sender: SessionCore, inner: dict[str, object]) -> bytes:
    """A whole-message PDU with an arbitrary inner JSON (what a hostile peer can seal)."""
    assert sender.session is not None
    return b"\x01" + sender.session.seal(json.dumps(inner).encode())


def receipts(outputs: list[SessionOutput]) -> list[str]:
    return [o.message_id for o in outputs if isinstance(o, ReceiptReceived)]


def test_ack_delay_is_bounded_by_the_session_limits() -> None:
    assert 0.010 <= ACK_DELAY_S <= 0.020 and MAX_ACK_DELAY_S == 1.0
    assert SessionCore(ack_delay=0.0).ack_delay == 0.0
    for bad in (-0.001, MAX_ACK_DELAY_S + 0.001, float("nan")):
        with pytest.raises(P2PUsageError, match="ack_delay"):
            SessionCore(ack_delay=bad)


def test_a_receipt_leaves_at_most_ack_delay_after_delivery(crypto: CryptoService) -> None:
    clock = FakeClock(10.0)
    a, b = ready_pair(crypto, clock())
    mid, out = a.send_text("hello")
    at_b = receive(b, out, clock())
    assert at_b == [MessageReceived(mid, "hello")]  # handed up, nothing sealed yet
    deadline = b.next_deadline()
    assert b.pending_acks() == (mid,) and deadline == pytest.approx(10.0 + ACK_DELAY_S)
    clock.advance(ACK_DELAY_S / 2)
    assert b.handle_timeout(clock()) == [] and b.pending_acks() == (mid,)
    assert b.handle_timeout(deadline - 1e-6) == []
    flushed = b.handle_timeout(deadline)
    assert len(pdus(flushed)) == 1 and b.pending_acks() == () and b.next_deadline() is None
    assert receipts(receive(a, flushed, clock())) == [mid] and not a.unacknowledged
    assert b.receipt_pdus == 1


def test_a_reply_before_the_deadline_carries_the_ack(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    mid, out = a.send_text("ping")
    receive(b, out, 1.0)
    reply, out = b.send_text("pong")
    assert len(pdus(out)) == 1 and b.pending_acks() == () and b.next_deadline() is None
    at_a = receive(a, out, 1.001)
    assert at_a == [MessageReceived(reply, "pong"), ReceiptReceived(mid)]  # the message first
    assert not a.unacknowledged and b.receipt_pdus == 0
    # the reply is acknowledged by a's next message in turn: a round trip is two PDUs
    _, out = a.send_text("ping 2")
    assert receipts(receive(b, out, 1.002)) == [reply] and a.receipt_pdus == 0


def test_typing_carries_pending_acks_too(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    mid, out = a.send_text("are you there")
    receive(b, out, 1.0)
    assert receive(a, b.send_typing(), 1.0) == [TypingReceived(), ReceiptReceived(mid)]


def test_many_messages_need_few_receipt_pdus(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    sent = [a.send_text(f"m{i}") for i in range(150)]
    at_b: list[SessionOutput] = []
    for _, out in sent:
        at_b += receive(b, out, 1.0)
    # every MAX_ACKS_PER_PDU-th delivery flushes one receipt right after its message event
    flushes = [i for i, o in enumerate(at_b) if isinstance(o, SendPdu)]
    assert len(flushes) == 150 // MAX_ACKS_PER_PDU
    assert all(isinstance(at_b[i - 1], MessageReceived) for i in flushes)
    at_b += b.handle_timeout(b.next_deadline() or 0.0)
    assert b.receipt_pdus == len(pdus(at_b)) == 3 and b.delivered == 150
    assert receipts(receive(a, at_b, 1.1)) == [mid for mid, _ in sent] and not a.unacknowledged


def test_a_resent_message_is_acknowledged_again(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    mid, out = a.send_text("once")
    receive(b, out, 1.0)
    receive(a, b.handle_timeout(2.0), 2.0)  # acknowledged: a forgot it ...
    a.unacknowledged[mid] = "once"  # ... but, say, restored an older state and resends
    assert receive(b, a.resend_unacknowledged(), 3.0) == [] and b.dropped["duplicate"] == 1
    assert b.pending_acks() == (mid,)
    assert receipts(receive(a, b.handle_timeout(4.0), 4.0)) == [mid]


def test_a_standalone_single_id_receipt_is_still_accepted(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    mid, _ = a.send_text("lost on the way")
    old = sealed_inner(b, {"type": "receipt", "messageId": mid})  # the pre-coalescing form
    assert a.pdu_received(old, 1.0) == [ReceiptReceived(mid)] and not a.unacknowledged


def test_hostile_ack_lists_are_dropped_and_counted(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    ids = [a.send_text(f"m{i}")[0] for i in range(3)]
    too_many = [ids[0]] * (MAX_ACKS_PER_PDU + 1)
    hostile: list[dict[str, object]] = [
        {"type": "receipt", "messageIds": too_many},  # oversize: the whole list is dropped
        {"type": "receipt", "messageIds": "abc"},  # not a list
        {"type": "receipt", "messageIds": []},  # empty
        {"type": "receipt"},  # no ids at all
        {"type": "receipt", "messageIds": [{"x": 1}, "not-alnum!", "f" * 65]},  # bad entries
        {"type": "receipt", "messageIds": ["0" * 32]},  # an id we never sent
        {"type": "typing", "acks": 7},
    ]
    for inner in hostile:
        assert [o for o in a.pdu_received(sealed_inner(b, inner), 1.0)
                if not isinstance(o, TypingReceived)] == []
    assert a.dropped["oversize-acks"] == 1 and a.dropped["malformed-acks"] == 1 + 1 + 3 + 1
    assert a.dropped["malformed-inner"] == 1 and a.dropped["unknown-receipt"] == 1
    assert set(a.unacknowledged) == set(ids)  # nothing acknowledged by any of them
    # repeats in one list: acknowledged once, the repeat counted
    got = a.pdu_received(sealed_inner(b, {"type": "receipt", "messageIds": [ids[0], ids[0]]}), 1.0)
    assert got == [ReceiptReceived(ids[0])] and a.dropped["unknown-receipt"] == 2
    # a message with a bad ack list is still delivered (and acknowledged); its acks are dropped
    bad = sealed_inner(b, {"type": "message", "messageId": "abc1", "text": "hi", "acks": too_many})
    assert a.pdu_received(bad, 1.0) == [MessageReceived("abc1", "hi")]
    assert a.dropped["oversize-acks"] == 2 and a.pending_acks() == ("abc1",)


def test_pending_acks_wait_out_a_lost_link_and_are_not_exported(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    mid, out = a.send_text("delivered just before the link died")
    receive(b, out, 1.0)
    for core in (a, b):
        core.link_lost()
    assert b.pending_acks() == (mid,) and b.next_deadline() is None  # nothing sealed offline
    assert b.handle_timeout(5.0) == []
    # not persisted: a restored b has none, and a's resend after the resume is acknowledged
    b2 = restore_core(b.export_state() or b"", crypto)
    assert b2.pending_acks() == () and b2.seen_ids() == (mid,)
    for core in (a, b2):
        core.relink()
        core.channel_open()
    _, at_b = pump(a, b2, a.start_resume(NONCE, 6.0), 6.0)
    assert not any(isinstance(e, MessageReceived) for e in at_b) and b2.pending_acks() == (mid,)
    deadline = b2.next_deadline()
    assert deadline == pytest.approx(6.0 + ACK_DELAY_S)
    assert receipts(pump(b2, a, b2.handle_timeout(deadline), deadline)[1]) == [mid]
    # the kept (unrestored) core flushes what waited as soon as it is Ready again
    c, d = ready_pair(crypto)
    mid, out = c.send_text("x")
    receive(d, out, 1.0)
    for core in (c, d):
        core.link_lost()
        core.relink()
        core.channel_open()
    at_c, _ = pump(c, d, c.start_resume(NONCE, 7.0), 7.0)
    assert receipts(at_c) == [mid] and not c.unacknowledged
    assert d.pending_acks() == (mid,)  # c's resend crossed that receipt: acknowledged again


def test_bulk_messages_are_acknowledged_by_bytes_without_waiting(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    body = "b" * (64 * 1024)
    flushed_after = []
    for i in range(8):
        _, out = a.send_text(body)
        if pdus(receive(b, out, 1.0)):
            flushed_after.append(i)
    # 64 KiB messages: one receipt per ACK_AFTER_BYTES (256 KiB), not per message, no timer
    assert flushed_after == [3, 7] and b.pending_acks() == () and b.receipt_pdus == 2
    assert ACK_AFTER_BYTES == 256 * 1024


def test_an_overdue_ack_leaves_with_the_next_pdu_even_if_the_timer_is_starved(
        crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    first, out = a.send_text("one")
    receive(b, out, 1.0)
    second, out = a.send_text("two")
    at_b = receive(b, out, 1.0 + ACK_DELAY_S)  # the reader ran again before the timer did
    assert isinstance(at_b[0], MessageReceived) and len(pdus(at_b)) == 1
    assert receipts(receive(a, at_b, 1.1)) == [first, second] and b.pending_acks() == ()
