"""P7.4 resume in the sans-I/O core: a kept session resumes on a new link through the sealed
resume exchange (nonces bound both ways), unacknowledged messages are resent and deduplicated,
the dedup window survives export/restore, a peer that kept nothing refuses and a full handshake
follows visibly, and replayed or wrong-state resume PDUs resume nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.session import (
    MAX_STATE_BYTES,
    IdentityChanged,
    MessageReceived,
    ReceiptReceived,
    ResumeRefused,
    SavedStateError,
    SendPdu,
    SessionCore,
    SessionFailed,
    SessionOutput,
    SessionReady,
    SessionState,
    export_core,
    restore_core,
)
from enkrypted_p2p.session._state import MAGIC, VERSION
from enkrypted_shell.contracts import AppContext, CryptoService
from tests.p2p.test_session_core import pump, ready_pair

S = SessionState
NONCE = bytes(range(16))


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


def pdus(outputs: list[SessionOutput]) -> list[bytes]:
    return [o.pdu for o in outputs if isinstance(o, SendPdu)]


def drop_link(*cores: SessionCore) -> None:
    for core in cores:
        core.link_lost()
        assert core.state is S.DISCONNECTED


def relink_resume(a: SessionCore, b: SessionCore, now: float = 2.0
                  ) -> tuple[list[SessionOutput], list[SessionOutput]]:
    """A new link: a (the dialler) resumes, b accepts; the events of each side."""
    for core in (a, b):
        core.relink()
        core.channel_open()
    return pump(a, b, a.start_resume(NONCE, now), now)


def flush_acks(sender: SessionCore, receiver: SessionCore) -> list[SessionOutput]:
    """The sender's ack timer fires (at most ack_delay after delivery): the receiver's events."""
    deadline = sender.next_deadline()
    assert deadline is not None
    return pump(sender, receiver, sender.handle_timeout(deadline), deadline)[1]


def test_resume_resends_unacknowledged_and_delivers_each_once(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    first, out1 = a.send_text("delivered, receipt lost")
    pump(a, b, [], 1.0)
    b_events = [o for p in pdus(out1) for o in b.pdu_received(p, 1.0)]
    assert b_events[0] == MessageReceived(first, "delivered, receipt lost")  # its receipt is lost
    lost, _ = a.send_text("lost with the link")
    drop_link(a, b)
    at_a, at_b = relink_resume(a, b)
    assert a.state is S.READY and b.state is S.READY
    assert isinstance(at_a[0], SessionReady) and at_a[0].resumed
    assert isinstance(at_b[0], SessionReady) and at_b[0].resumed
    assert [e for e in at_b if isinstance(e, MessageReceived)] == [
        MessageReceived(lost, "lost with the link")]  # the first one deduplicated
    at_a += flush_acks(b, a)  # both acknowledged in one receipt
    assert sorted(e.message_id for e in at_a if isinstance(e, ReceiptReceived)) == sorted(
        [first, lost])
    assert a.unacknowledged == {} and b.dropped["duplicate"] == 1
    assert (a.resumed, b.resumed) == (1, 1)


def test_dedup_window_and_unacknowledged_survive_export_and_restore(
        crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    mid, out = a.send_text("before the restart")
    for pdu in pdus(out):
        b.pdu_received(pdu, 1.0)  # delivered; the receipt never reaches a
    later = a.queue_text("queued while reconnecting")
    assert a.export_state() == export_core(a)
    a2, b2 = (restore_core(c.export_state() or b"", crypto) for c in (a, b))
    assert b2.seen_ids() == (mid,) and list(a2.unacknowledged) == [mid, later]
    at_a, at_b = relink_resume(a2, b2)
    assert [e.text for e in at_b if isinstance(e, MessageReceived)] == [
        "queued while reconnecting"]
    at_a += flush_acks(b2, a2)
    assert {e.message_id for e in at_a if isinstance(e, ReceiptReceived)} == {mid, later}


def test_the_export_is_the_json_it_always_was(crypto: CryptoService) -> None:
    """export_core writes the dedup window without json.dumps (it runs before every PDU in the
    chat service); the bytes are still exactly json.dumps of the documented body."""
    import base64
    import json

    a, b = ready_pair(crypto)
    for text in ("plain", 'quote " backslash \\ é \u2028 \U0001f600', ""):
        for pdu in pdus(a.send_text(text)[1]):
            b.pdu_received(pdu, 1.0)
        a.queue_text(text)
    for core in (a, b, ready_pair(crypto)[0]):  # a: unacknowledged texts; b: a window; fresh
        assert core.session is not None
        body = {"session": base64.b64encode(core.session.export_state()).decode("ascii"),
                "seen": list(core.seen_ids()),
                "unacknowledged": [[m, t] for m, t in core.unacknowledged.items()]}
        if core.inbox:  # messages not yet taken by the application
            body["inbox"] = [[m, t] for m, t in core.inbox.items()]
        files = core.files.export_state() if core.files is not None else core.files_saved
        if files is not None:
            body["files"] = base64.b64encode(files).decode("ascii")
        expected = MAGIC + bytes([VERSION]) + json.dumps(body, separators=(",", ":")).encode()
        assert export_core(core) == expected
    assert len(b.seen_ids()) == 3


def test_a_restored_dedup_window_holds_only_valid_ids() -> None:
    core = SessionCore()
    for bad in (["ok", "not ok"], [""], ["x" * 65], ['a"b']):
        with pytest.raises(P2PUsageError):
            core.remember(bad)
    assert core.seen_ids() == ()


def _refused_then_handshake(crypto: CryptoService, fresh_identity: bool
                            ) -> tuple[list[SessionOutput], list[SessionOutput]]:
    """``b`` lost its session state (kept its identity, or not): a's resume is refused and a
    full handshake follows on the same link."""
    ids = (crypto.new_identity(), crypto.new_identity())
    a, _ = ready_pair(crypto, identities=ids)
    a.queue_text("resent after the new handshake")
    a.link_lost()
    fresh = SessionCore()  # b lost its state
    a.relink()
    a.channel_open()
    fresh.channel_open()
    out = fresh.pdu_received(pdus(a.start_resume(NONCE, 1.0))[0], 1.0)
    assert pdus(out) == [b"\x04"] and isinstance(out[-1], ResumeRefused)
    assert fresh.state is S.DATA_CHANNEL_OPEN
    b_identity = crypto.new_identity() if fresh_identity else ids[1]
    fresh.start_handshake(crypto.handshake(b_identity, initiator=False, now=1.0))
    refused = a.pdu_received(b"\x04", 1.0)
    assert isinstance(refused[0], ResumeRefused) and a.state is S.DATA_CHANNEL_OPEN
    start = a.start_handshake(crypto.handshake(ids[0], initiator=True, now=1.0))
    return pump(a, fresh, start, 1.0)


def test_a_peer_that_kept_nothing_refuses_and_a_full_handshake_follows(
        crypto: CryptoService) -> None:
    at_a, at_b = _refused_then_handshake(crypto, fresh_identity=False)
    assert isinstance(at_a[0], SessionReady) and not at_a[0].resumed
    assert [e.text for e in at_b if isinstance(e, MessageReceived)] == [
        "resent after the new handshake"]


def test_a_full_handshake_with_another_identity_withholds_what_was_queued(
        crypto: CryptoService) -> None:
    """A peer id is routing, not identity: a kept session re-established with a different
    identity key reports the change and sends nothing queued for the old identity."""
    at_a, at_b = _refused_then_handshake(crypto, fresh_identity=True)
    assert isinstance(at_a[0], SessionReady) and not at_a[0].resumed
    changed = [e for e in at_a if isinstance(e, IdentityChanged)]
    assert len(changed) == 1 and len(changed[0].withheld) == 1
    assert changed[0].peer_fingerprint == at_a[0].peer_fingerprint != changed[0].previous_fingerprint
    assert [e for e in at_b if isinstance(e, MessageReceived)] == []


def test_a_handshaking_acceptor_answers_a_resume_with_a_refusal(crypto: CryptoService) -> None:
    b = SessionCore()
    b.channel_open()
    b.start_handshake(crypto.handshake(crypto.new_identity(), initiator=False, now=0.0))
    replies = [pdus(b.pdu_received(b"\x03" + b"x" * 40, 0.0)) for _ in range(6)]
    assert replies[:4] == [[b"\x04"]] * 4 and replies[4:] == [[], []]  # bounded
    assert b.state is S.CRYPTO_HANDSHAKING


def test_a_replayed_resume_never_resumes(crypto: CryptoService) -> None:
    """The acceptor restored from saved state could open an old resume again: it answers, but
    only a confirm echoing its fresh nonce makes it Ready, and the replayer cannot seal one."""
    a, b = ready_pair(crypto)
    saved_b = export_core(b) or b""
    drop_link(a, b)
    a.relink()
    a.channel_open()
    captured = pdus(a.start_resume(NONCE, 1.0))  # the attacker records a's resume
    victim = restore_core(saved_b, crypto)
    victim.relink()
    victim.channel_open()
    answer = victim.pdu_received(captured[0], 1.0)
    assert victim.state is S.RESUMING and len(pdus(answer)) == 1
    assert victim.pdu_received(captured[0], 1.0) == []  # a second replay on the same link
    assert victim.state is S.RESUMING and victim.dropped["bad-resume"] == 1
    # the resume is never completed: it times out cleanly
    assert victim.next_deadline() == pytest.approx(31.0)
    failed = victim.handle_timeout(31.0)
    assert isinstance(failed[0], SessionFailed) and victim.state is S.DISCONNECTED
    # a stale resume-ok replayed to a new resume: its echo names the old nonce
    a2, b2 = ready_pair(crypto)
    drop_link(a2, b2)
    for core in (a2, b2):
        core.relink()
        core.channel_open()
    resume_ok = pdus(b2.pdu_received(pdus(a2.start_resume(NONCE, 2.0))[0], 2.0))[0]
    pump(a2, b2, a2.pdu_received(resume_ok, 2.0), 2.0)
    assert a2.state is S.READY and b2.state is S.READY
    drop_link(a2, b2)
    a2.relink()
    a2.channel_open()
    a2.start_resume(bytes(16), 3.0)
    assert a2.pdu_received(resume_ok, 3.0) == []
    assert a2.state is S.RESUMING and a2.dropped["bad-resume"] == 1


def test_wrong_state_and_malformed_pdus_during_resume_are_dropped(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    drop_link(a, b)
    a.relink()
    a.channel_open()
    a.start_resume(NONCE, 1.0)
    for pdu in [b"", b"\x01junk", b"\x02" + b"\x00" * 20, b'{"type":"offer"}', b"\x03",
                b"\x03" + b"\xff" * 100, b"\x09" * 50]:
        assert a.pdu_received(pdu, 1.0) == []
    assert a.state is S.RESUMING and sum(a.dropped.values()) == 7
    with pytest.raises(Exception, match="Resuming"):
        a.send_text("not yet")


def test_saved_state_is_versioned_and_bounded(crypto: CryptoService, tmp_path: Path) -> None:
    a, _ = ready_pair(crypto)
    good = export_core(a)
    assert good is not None and good.startswith(MAGIC) and good[len(MAGIC)] == VERSION
    assert export_core(SessionCore()) is None
    bad = [b"", b"nonsense", MAGIC + bytes([VERSION + 1]) + good[len(MAGIC) + 1:],
           MAGIC + bytes([VERSION]) + b"{not json", MAGIC + bytes([VERSION]) + b"[]",
           MAGIC + bytes([VERSION]) + b'{"session":"AAAA","seen":[],"unacknowledged":[]}',
           MAGIC + bytes([VERSION]) + b'{"session":"x","seen":["bad id!"],"unacknowledged":[]}',
           MAGIC + b"\x01" + b" " * MAX_STATE_BYTES]
    for data in bad:
        with pytest.raises(SavedStateError):
            restore_core(data, crypto)


def test_closing_a_replaced_session_again_leaves_the_kept_core_alone(
        crypto: CryptoService) -> None:
    """A chat service closes an old ChatSession, then its pump closes it once more while the
    peer's kept core already serves the next link: the second close must not end that link."""
    import asyncio

    from enkrypted_p2p.session import ChatSession
    from enkrypted_shell.testing import memory_link_pair

    async def scenario() -> None:
        a_core, _ = ready_pair(crypto)
        old_link, _ = memory_link_pair("a", "b")
        old = ChatSession(old_link, crypto, crypto.new_identity(), initiator=True, core=a_core)
        await old.close()
        a_core.relink()
        a_core.channel_open()
        a_core.start_resume(NONCE, 1.0)
        await old.close()
        assert a_core.state is S.RESUMING

    asyncio.run(scenario())
