"""EndpointChat (the contract ChatService) over an in-memory switchboard of contract Endpoints:
connect by peer id, events, receipts, glare, a killed link resumed with nothing lost or duplicated,
queueing while reconnecting, a restart with saved state (saved= and the profile store), a full
handshake when state was lost, the handshake timeout on a fake clock, hostile first PDUs and the
bounds.  The crypto service is the real cascade plugin."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.chat import EndpointChat, ReconnectPolicy
from enkrypted_p2p.chat._service import SESSIONS_TABLE
from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.session import MAX_STATE_BYTES
from enkrypted_p2p.session._core import ACK_DELAY_S, MAX_UNACKNOWLEDGED
from enkrypted_shell.contracts import (
    AppContext,
    ChatEvent,
    ChatMessage,
    ChatProblem,
    ChatReceipt,
    ChatService,
    ChatTyping,
    CryptoService,
    Endpoint,
    PeerStateChanged,
    PeerUnavailable,
    ProfileStore,
    RemoteInputError,
    SessionEstablished,
    supports,
)
from enkrypted_shell.testing import FakeClock
from tests.p2p.chat_switchboard import Switchboard, SwitchEndpoint

FAST = ReconnectPolicy(base_s=0.01, max_delay_s=0.05, max_attempts=30, window_s=10.0)


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


class DictStore:
    """The store contract 1.0 backed by a dict (what AppContext.store hands a slot)."""

    namespace = "slot:p2p"

    def __init__(self) -> None:
        self.tables: dict[str, dict[bytes, bytes]] = {}
        self.puts = 0

    def get(self, table: str, key: bytes) -> bytes | None:
        return self.tables.get(table, {}).get(key)

    def put(self, table: str, key: bytes, value: bytes) -> None:
        assert len(value) <= 4 * 1024 * 1024  # the store's bound
        self.tables.setdefault(table, {})[key] = value
        self.puts += 1

    def delete(self, table: str, key: bytes) -> bool:
        return self.tables.get(table, {}).pop(key, None) is not None

    def items(self, table: str) -> list[tuple[bytes, bytes]]:
        return sorted(self.tables.get(table, {}).items())

    def append(self, stream: bytes, value: bytes) -> int:
        raise NotImplementedError

    def read(self, stream: bytes, *, after: int = 0, limit: int | None = None
             ) -> list[tuple[int, bytes]]:
        raise NotImplementedError


class Peer:
    """One chat service and everything it emitted."""

    def __init__(self, chat: EndpointChat) -> None:
        self.chat = chat
        self.events: list[ChatEvent] = []
        self._task = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        async for event in self.chat.events():
            self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def texts(self) -> list[str]:
        return [m.text for m in self.of(ChatMessage)]

    def states(self, peer_id: str) -> list[str]:
        return [e.state for e in self.of(PeerStateChanged) if e.peer_id == peer_id]

    async def close(self) -> None:
        await self.chat.aclose()
        await asyncio.wait_for(self._task, 5)


async def open_peer(board: Switchboard, peer_id: str, crypto: CryptoService,
                    identity: bytes | None = None, **kw: Any) -> Peer:
    context = kw.pop("context", None) or AppContext(Path("/nonexistent"))
    chat = await EndpointChat.open(board.open(peer_id), crypto,
                                   identity or crypto.new_identity(), context=context,
                                   reconnect=kw.pop("reconnect", FAST), **kw)
    return Peer(chat)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


# ----------------------------------------------------------------------------------- basics
def test_connect_send_receipts_and_events(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        alice, bob = await open_peer(board, "alice", crypto), await open_peer(board, "bob", crypto)
        assert isinstance(alice.chat, ChatService) and supports(alice.chat, ChatService)
        assert isinstance(board.endpoints["alice"], Endpoint)
        established = await alice.chat.connect("bob")
        assert not established.resumed and established.peer_fingerprint == bob.chat.fingerprint
        ids = [await alice.chat.send_text("bob", f"m{i}") for i in range(3)]
        await alice.chat.send_typing("bob")
        await until(lambda: len(alice.of(ChatReceipt)) == 3 and bob.of(ChatTyping) != [])
        assert bob.texts() == ["m0", "m1", "m2"]
        assert [m.message_id for m in bob.of(ChatMessage)] == ids
        assert [r.message_id for r in alice.of(ChatReceipt)] == ids
        assert alice.states("bob") == ["connecting", "handshaking", "ready"]
        assert bob.states("alice") == ["connecting", "handshaking", "ready"]
        bob_side = bob.of(SessionEstablished)[0]
        assert bob_side.safety_number == established.safety_number
        assert bob_side.peer_fingerprint == alice.chat.fingerprint
        assert dict(alice.chat.peers()) == {"bob": "ready"}
        assert await alice.chat.connect("bob") == established  # already ready: the same
        await alice.chat.disconnect("bob")
        await until(lambda: bob.chat.peers().get("alice") == "reconnecting")
        assert alice.chat.peers()["bob"] == "disconnected"
        assert alice.chat.export_state("bob") is not None  # kept for a later resume
        assert alice.chat.export_state("nobody") is None
        await alice.close()
        await bob.close()

    run(scenario)


def test_receipts_come_within_ack_delay_coalesced_or_on_a_reply(crypto: CryptoService) -> None:
    """docs/protocol.md §7: on a fake clock no receipt leaves before ``ack_delay``; then ten
    deliveries are acknowledged by ONE receipt PDU; a reply carries the ack (no receipt PDU)."""
    async def scenario() -> None:
        board = Switchboard()
        clock = FakeClock(1000.0)
        context = AppContext(Path("/nonexistent"), clock=clock)
        alice = await open_peer(board, "alice", crypto, context=context)
        bob = await open_peer(board, "bob", crypto, context=context)
        await alice.chat.connect("bob")
        await until(lambda: bob.of(SessionEstablished) != [])
        bob_link = next(link for link in board.links if link.peer_id == "alice")
        await asyncio.sleep(0.05)
        before = len(bob_link.sent)
        ids = [await alice.chat.send_text("bob", f"m{i}") for i in range(10)]
        await until(lambda: len(bob.of(ChatMessage)) == 10)
        await asyncio.sleep(0.05)  # real time passes, the session clock does not
        assert alice.of(ChatReceipt) == [] and len(bob_link.sent) == before
        clock.advance(ACK_DELAY_S)
        bob.chat.wake()
        await until(lambda: len(alice.of(ChatReceipt)) == 10)
        assert [r.message_id for r in alice.of(ChatReceipt)] == ids
        assert len(bob_link.sent) == before + 1  # ten messages, one receipt PDU
        ping = await alice.chat.send_text("bob", "ping")
        await until(lambda: "ping" in bob.texts())
        sent = len(bob_link.sent)
        await bob.chat.send_text("alice", "pong")
        await until(lambda: len(alice.of(ChatReceipt)) == 11 and "pong" in alice.texts())
        assert alice.of(ChatReceipt)[-1].message_id == ping
        assert len(bob_link.sent) == sent + 1  # the reply carried the receipt
        await alice.close()
        await bob.close()

    run(scenario)


def test_a_bulk_sender_waits_for_receipts_when_the_window_is_full(crypto: CryptoService) -> None:
    """In Ready, send_text past the unacknowledged window (2 MiB) waits for the peer's receipts
    instead of failing; every message is delivered once and acknowledged."""
    async def scenario() -> None:
        board = Switchboard()
        alice, bob = await open_peer(board, "alice", crypto), await open_peer(board, "bob", crypto)
        await alice.chat.connect("bob")
        body = "b" * (64 * 1024)
        ids = [await alice.chat.send_text("bob", f"{i:03d}{body}") for i in range(48)]  # 3 MiB
        await until(lambda: len(alice.of(ChatReceipt)) == 48)
        assert [r.message_id for r in alice.of(ChatReceipt)] == ids
        assert [t[:3] for t in bob.texts()] == [f"{i:03d}" for i in range(48)]
        await alice.close()
        await bob.close()

    run(scenario)


def test_connect_to_an_absent_peer_raises_peer_unavailable(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        alice = await open_peer(board, "alice", crypto)
        with pytest.raises(PeerUnavailable):
            await alice.chat.connect("nobody")
        assert alice.chat.peers()["nobody"] == "disconnected"
        with pytest.raises(P2PUsageError, match="connect first"):
            await alice.chat.send_text("nobody", "hi")
        await alice.close()

    run(scenario)


def test_both_sides_dialling_at_once_end_with_one_session(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        alice, bob = await open_peer(board, "alice", crypto), await open_peer(board, "bob", crypto)
        a, b = await asyncio.gather(alice.chat.connect("bob"), bob.chat.connect("alice"))
        assert a.safety_number == b.safety_number
        await asyncio.sleep(0.1)
        live = [link for link in board.links if link.close_reason is None]
        assert len(live) == 2  # one link, both of its ends; the loser's closed
        await alice.chat.send_text("bob", "after the glare")
        await bob.chat.send_text("alice", "both ways")
        await until(lambda: bob.texts() == ["after the glare"] and alice.texts() == ["both ways"])
        await alice.close()
        await bob.close()

    run(scenario)


# ----------------------------------------------------------------------------------- P7.4
def test_a_killed_link_resumes_with_nothing_lost_or_duplicated(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        alice, bob = await open_peer(board, "alice", crypto), await open_peer(board, "bob", crypto)
        await alice.chat.connect("bob")
        sent = []
        for round_ in range(3):
            for i in range(5):
                sent.append(await alice.chat.send_text("bob", f"r{round_}-{i}"))
            assert board.kill_all() == 2  # mid-conversation: some PDUs were still in flight
            await until(lambda n=round_ + 2: len(alice.of(SessionEstablished)) == n
                        and len(bob.of(SessionEstablished)) == n)
        await until(lambda: len(bob.of(ChatMessage)) >= 15 and len(alice.of(ChatReceipt)) >= 15)
        await asyncio.sleep(0.1)
        assert sorted(m.message_id for m in bob.of(ChatMessage)) == sorted(sent)  # each once
        assert len(alice.of(ChatReceipt)) == 15
        resumed = [e for e in alice.of(SessionEstablished) if e.resumed]
        assert len(resumed) == 3 and len(alice.of(SessionEstablished)) == 4
        assert "reconnecting" in alice.states("bob") and "reconnecting" in bob.states("alice")
        await alice.close()
        await bob.close()

    run(scenario)


def test_send_while_reconnecting_is_queued_and_resent(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        alice, bob = await open_peer(board, "alice", crypto), await open_peer(board, "bob", crypto)
        await alice.chat.connect("bob")
        board.refuse = True
        board.kill_all()
        await until(lambda: alice.chat.peers()["bob"] == "reconnecting")
        queued = [await alice.chat.send_text("bob", f"q{i}") for i in range(3)]
        await asyncio.sleep(0.1)
        board.refuse = False
        await until(lambda: len(alice.of(ChatReceipt)) == 3)
        assert [m.message_id for m in bob.of(ChatMessage)] == queued
        with pytest.raises(P2PUsageError, match="wait for"):  # the queue is bounded
            board.refuse = True
            board.kill_all()
            await until(lambda: alice.chat.peers()["bob"] == "reconnecting")
            for i in range(MAX_UNACKNOWLEDGED + 1):
                await alice.chat.send_text("bob", f"flood {i}")
        await alice.close()
        await bob.close()

    run(scenario)


def test_reconnecting_gives_up_after_bounded_attempts(crypto: CryptoService) -> None:
    """The dialler tries ``max_attempts`` times then says why; the side that did not dial waits
    ``window_s`` for it, then gives up too."""
    async def scenario() -> None:
        board = Switchboard()
        policy = ReconnectPolicy(base_s=0.01, max_delay_s=0.02, max_attempts=4, window_s=10)
        alice = await open_peer(board, "alice", crypto, reconnect=policy)
        bob = await open_peer(board, "bob", crypto, reconnect=ReconnectPolicy(window_s=0.3))
        await alice.chat.connect("bob")
        board.refuse = True
        dials = board.dials
        board.kill_all()
        await until(lambda: alice.states("bob")[-1:] == ["disconnected"])
        assert board.dials - dials == 4
        problem = alice.of(ChatProblem)[-1]
        assert problem.kind == "network" and "gave up reconnecting" in problem.message
        await until(lambda: bob.states("alice")[-1:] == ["disconnected"], 5)
        assert "did not come back" in bob.of(PeerStateChanged)[-1].reason
        await alice.close()
        await bob.close()

    run(scenario)


def test_backoff_is_exponential_capped_jittered_and_bounded() -> None:
    policy = ReconnectPolicy(base_s=0.5, factor=2, max_delay_s=10, jitter=0.2, max_attempts=8)
    delays = list(policy.delays(random.Random(7)))
    assert len(delays) == 8
    for n, delay in enumerate(delays):
        nominal = min(10.0, 0.5 * 2 ** n)
        assert nominal * 0.8 <= delay <= nominal * 1.2
    assert delays[-1] <= 12.0 and len(set(delays)) == 8


def test_a_restarted_peer_resumes_from_saved_state(crypto: CryptoService) -> None:
    """bob's process dies (its links break, nothing said) and restarts with the same identity,
    peer id and its saved sessions: alice's redial resumes without a new handshake, and what she
    sent while bob was down arrives once."""
    async def scenario() -> None:
        board = Switchboard()
        bob_identity = crypto.new_identity()
        alice = await open_peer(board, "alice", crypto)
        bob = await open_peer(board, "bob", crypto, bob_identity)
        first = await alice.chat.connect("bob")
        before = [await alice.chat.send_text("bob", f"before {i}") for i in range(3)]
        await until(lambda: len(alice.of(ChatReceipt)) == 3)
        saved = {"alice": bob.chat.export_state("alice") or b""}
        board.refuse = True  # bob is down
        board.kill_all()
        await bob.close()
        during = [await alice.chat.send_text("bob", f"during {i}") for i in range(2)]
        bob2 = await open_peer(board, "bob", crypto, bob_identity, saved=saved)
        board.refuse = False
        await until(lambda: len(alice.of(ChatReceipt)) == 5)
        resumed = [e for e in alice.of(SessionEstablished) if e.resumed]
        assert resumed and resumed[-1].safety_number == first.safety_number
        assert bob2.of(SessionEstablished)[-1].resumed
        assert [m.message_id for m in bob.of(ChatMessage)] == before
        assert [m.message_id for m in bob2.of(ChatMessage)] == during  # nothing twice
        await alice.close()
        await bob2.close()

    run(scenario)


def test_a_peer_that_lost_its_state_gets_a_full_handshake_visibly(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        bob_identity = crypto.new_identity()
        alice = await open_peer(board, "alice", crypto)
        bob = await open_peer(board, "bob", crypto, bob_identity)
        await alice.chat.connect("bob")
        board.refuse = True
        board.kill_all()
        await bob.close()
        pending = await alice.chat.send_text("bob", "sent while bob was gone")
        bob2 = await open_peer(board, "bob", crypto, bob_identity)  # no saved state, same key
        board.refuse = False
        await until(lambda: len(alice.of(ChatReceipt)) == 1)
        latest = alice.of(SessionEstablished)[-1]
        assert not latest.resumed and latest.peer_fingerprint == bob2.chat.fingerprint
        assert [m.message_id for m in bob2.of(ChatMessage)] == [pending]
        await alice.close()
        await bob2.close()

    run(scenario)


def test_sessions_persist_in_the_profile_store_and_load_at_open(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        store = DictStore()
        assert supports(store, ProfileStore)
        context = AppContext(Path("/nonexistent"), store=store)  # type: ignore[arg-type]
        bob_identity = crypto.new_identity()
        alice = await open_peer(board, "alice", crypto)
        bob = await open_peer(board, "bob", crypto, bob_identity, context=context)
        await alice.chat.connect("bob")
        await alice.chat.send_text("bob", "one")
        await until(lambda: len(alice.of(ChatReceipt)) == 1)
        saved = store.get(SESSIONS_TABLE, b"alice")
        assert saved is not None and saved == bob.chat.export_state("alice")
        assert store.puts >= 2 and len(saved) < MAX_STATE_BYTES
        board.refuse = True
        board.kill_all()
        await bob.close()
        later = await alice.chat.send_text("bob", "two")
        bob2 = await open_peer(board, "bob", crypto, bob_identity, context=context)
        assert dict(bob2.chat.peers()) == {"alice": "disconnected"}  # loaded from the store
        board.refuse = False
        await until(lambda: len(alice.of(ChatReceipt)) == 2)
        assert bob2.of(SessionEstablished)[-1].resumed
        assert [m.message_id for m in bob2.of(ChatMessage)] == [later]
        await alice.close()
        await bob2.close()

    run(scenario)


def test_damaged_saved_state_is_a_problem_not_a_crash(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        alice = await open_peer(board, "alice", crypto, saved={"bob": b"EKSESS\x01{broken"})
        await until(lambda: bool(alice.of(ChatProblem)))
        problem = alice.of(ChatProblem)[0]
        assert problem.kind == "local" and problem.peer_id == "bob"
        assert alice.chat.export_state("bob") is None
        await alice.close()

    run(scenario)


# ----------------------------------------------------------------------------------- hostile
def test_a_peer_that_stops_mid_handshake_times_out_cleanly(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        clock = FakeClock(1000.0)
        context = AppContext(Path("/nonexistent"), clock=clock)
        alice = await open_peer(board, "alice", crypto, context=context)
        silent = board.open("silent")  # accepts the link, never answers
        connecting = asyncio.ensure_future(alice.chat.connect("silent"))
        await until(lambda: alice.chat.peers().get("silent") == "handshaking")
        clock.advance(301.0)  # past the 300 s handshake timeout (P8.6)
        alice.chat.wake()
        with pytest.raises(RemoteInputError, match="timed out|timeout"):
            await asyncio.wait_for(connecting, 10)
        assert alice.chat.peers()["silent"] == "disconnected"
        assert alice.of(ChatProblem)[-1].kind == "remote"
        await silent.aclose()
        await alice.close()

    run(scenario)


def test_hostile_first_pdus_deliver_nothing_and_the_service_survives(
        crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        alice, bob = await open_peer(board, "alice", crypto), await open_peer(board, "bob", crypto)
        mallory: SwitchEndpoint = board.open("mallory")
        hostile = [b"", b"\x01junk", b"\x02" + b"\x00" * 20, b"\x03" + b"\xff" * 64, b"\x04",
                   b'{"type":"offer"}', b"\x09" * 1000, b"\x01" + b"\xff" * 70_000,
                   b"x" * (16 * 1024 * 1024 + 1)]
        for pdu in hostile:
            link = await mallory.connect("alice")
            await link.send(pdu)
            for _ in range(3):  # and a few more after it
                await link.send(b"\x01" + bytes(40))
            await asyncio.sleep(0.02)
            await link.close()
        await alice.chat.connect("bob")
        await bob.chat.send_text("alice", "still fine")
        await until(lambda: alice.texts() == ["still fine"])
        assert [m.peer_id for m in alice.of(ChatMessage)] == ["bob"]
        assert alice.chat.peers()["bob"] == "ready"
        await alice.close()
        await bob.close()

    run(scenario)


def test_replays_chunk_floods_and_wrong_state_pdus_on_a_live_session_deliver_nothing(
        crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        alice, bob = await open_peer(board, "alice", crypto), await open_peer(board, "bob", crypto)
        await alice.chat.connect("bob")
        await alice.chat.send_text("bob", "once")
        await until(lambda: len(alice.of(ChatReceipt)) == 1)
        to_bob = next(link for link in board.links if link.peer_id == "bob")
        assert to_bob.other is not None
        inbox = to_bob.other._inbox  # what bob's session reads
        for pdu in to_bob.sent:  # replay the whole conversation, handshake and all
            inbox.put_nowait(pdu)
        for seq in range(200):  # a chunk flood: many partial messages (P8.4)
            inbox.put_nowait(b"\x02" + seq.to_bytes(8, "big") + (0).to_bytes(4, "big")
                             + (3).to_bytes(4, "big") + b"x" * 100)
        for pdu in [b"\x03" + b"r" * 50, b"\x04", b'{"type":"hello"}', b"\x01" + b"\x00" * 99]:
            inbox.put_nowait(pdu)
        await alice.chat.send_text("bob", "still once")
        await until(lambda: len(alice.of(ChatReceipt)) == 2)
        assert bob.texts() == ["once", "still once"]
        assert bob.chat.peers()["alice"] == "ready"
        await alice.close()
        await bob.close()

    run(scenario)


def test_the_side_that_did_not_dial_may_redial_itself(crypto: CryptoService) -> None:
    """bob accepted alice's link; it breaks and alice's next redial is far off: bob's own
    connect stops waiting for her and resumes the kept session on its link."""
    async def scenario() -> None:
        board = Switchboard()
        slow = ReconnectPolicy(base_s=30.0, max_delay_s=30.0, window_s=60.0)
        alice = await open_peer(board, "alice", crypto, reconnect=slow)
        bob = await open_peer(board, "bob", crypto)
        await alice.chat.connect("bob")
        board.kill_all()
        await until(lambda: bob.chat.peers()["alice"] == "reconnecting")
        established = await asyncio.wait_for(bob.chat.connect("alice"), 10)
        assert established.resumed
        await until(lambda: alice.chat.peers()["bob"] == "ready")
        await bob.chat.send_text("alice", "bob dialled")
        await until(lambda: alice.texts() == ["bob dialled"])
        await alice.close()
        await bob.close()

    run(scenario)


def test_the_peer_count_is_bounded(crypto: CryptoService, monkeypatch: pytest.MonkeyPatch
                                   ) -> None:
    import enkrypted_p2p.chat._service as service

    monkeypatch.setattr(service, "MAX_PEERS", 2)

    async def scenario() -> None:
        board = Switchboard()
        hub = await open_peer(board, "hub", crypto)
        others = [await open_peer(board, f"p{i}", crypto) for i in range(3)]
        await others[0].chat.connect("hub")
        await others[1].chat.connect("hub")
        with pytest.raises(Exception, match="no session|closed"):
            await asyncio.wait_for(others[2].chat.connect("hub"), 10)
        assert len(hub.chat.peers()) == 2 and hub.chat.refused_links == 1
        with pytest.raises(P2PUsageError, match="at most 2 peers"):
            await hub.chat.connect("p2")
        for peer in [hub, *others]:
            await peer.close()

    run(scenario)


def test_strangers_whose_handshake_failed_are_forgotten_and_half_open_links_bounded(
        crypto: CryptoService, monkeypatch: pytest.MonkeyPatch) -> None:
    import enkrypted_p2p.chat._service as service

    monkeypatch.setattr(service, "MAX_INCOMING_SETUPS", 3)

    async def scenario() -> None:
        board = Switchboard()
        alice = await open_peer(board, "alice", crypto)
        links = []
        for i in range(5):  # half-open: a junk first PDU, then silence (the handshake waits)
            link = await board.open(f"m{i}").connect("alice")
            await link.send(b"\x01junk")
            links.append(link)
        await until(lambda: alice.chat.refused_links == 2)
        assert sorted(alice.chat.peers()) == ["m0", "m1", "m2"]
        for link in links:
            await link.close()
        await until(lambda: not alice.chat.peers())  # failed strangers leave no trace
        await alice.close()

    run(scenario)


def test_command_output_is_json_lines_or_plain_lines(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from enkrypted_p2p.chat import _commands

    _commands._print_event(ChatMessage("bob", "ab12", "hi ✓", 0.0))
    _commands._print_event(PeerStateChanged("bob", "handshaking"))  # set-up states: not printed
    _commands._PLAIN[0] = True
    try:
        _commands._print_event(ChatMessage("bob", "ab12", "hi ✓", 0.0))
        _commands._print_event(ChatProblem("bob", "remote", "bad"))
    finally:
        _commands._PLAIN[0] = False
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[0]) == {"event": "message", "peer": "bob", "messageId": "ab12",
                                    "text": "hi ✓"}
    assert lines[1:] == ["bob> hi ✓", "[problem] peer=bob kind=remote message=bad"]


def test_both_sides_redialling_at_once_resume_one_session(crypto: CryptoService) -> None:
    async def scenario() -> None:
        board = Switchboard()
        alice, bob = await open_peer(board, "alice", crypto), await open_peer(board, "bob", crypto)
        await asyncio.gather(alice.chat.connect("bob"), bob.chat.connect("alice"))  # both dial
        for round_ in range(3):
            ids = [await alice.chat.send_text("bob", f"a{round_}"),
                   await bob.chat.send_text("alice", f"b{round_}")]
            board.kill_all()  # both redial, each with a resume
            await until(lambda n=round_ + 1: len(alice.of(ChatReceipt)) == n
                        and len(bob.of(ChatReceipt)) == n
                        and alice.chat.peers()["bob"] == bob.chat.peers()["alice"] == "ready")
            assert ids[0] in [m.message_id for m in bob.of(ChatMessage)]
        await asyncio.sleep(0.1)
        assert bob.texts() == ["a0", "a1", "a2"] and alice.texts() == ["b0", "b1", "b2"]
        assert all(e.resumed for e in alice.of(SessionEstablished)[1:])
        assert len([link for link in board.links if link.close_reason is None]) == 2
        await alice.close()
        await bob.close()

    run(scenario)


def test_a_message_the_app_had_not_taken_when_the_process_died_is_handed_up_again_once(
        crypto: CryptoService) -> None:
    """Found by the soak (tests/soak): bob's process received "one", acknowledged it and died
    before its application took the event; the dedup window then dropped alice's resend, so the
    message was lost though alice had its receipt.  Now the message stays with the session until
    the application asks for the next event, and the restarted process hands it up again."""
    async def scenario() -> None:
        board = Switchboard()
        store = DictStore()
        context = AppContext(Path("/nonexistent"), store=store)  # type: ignore[arg-type]
        bob_identity = crypto.new_identity()
        alice = await open_peer(board, "alice", crypto)
        bob = await EndpointChat.open(board.open("bob"), crypto, bob_identity, context=context,
                                      reconnect=FAST)
        await alice.chat.connect("bob")
        sent = await alice.chat.send_text("bob", "one")
        events = bob.events().__aiter__()
        while not isinstance(event := await asyncio.wait_for(events.__anext__(), 10),
                             ChatMessage):
            pass
        assert event.message_id == sent  # handed up; the application never asks for more
        await until(lambda: len(alice.of(ChatReceipt)) == 1)  # and acknowledged to alice
        board.refuse = True
        board.kill_all()  # bob's process dies
        await bob.aclose()
        bob2 = Peer(await EndpointChat.open(board.open("bob"), crypto, bob_identity,
                                            context=context, reconnect=FAST))
        board.refuse = False
        await until(lambda: bob2.of(ChatMessage) != [])
        later = await alice.chat.send_text("bob", "two")
        await until(lambda: len(alice.of(ChatReceipt)) == 2)
        assert [(m.message_id, m.text) for m in bob2.of(ChatMessage)] == [(sent, "one"),
                                                                           (later, "two")]
        await bob2.close()  # bob2's application took both: a third run hands up nothing
        bob3 = Peer(await EndpointChat.open(board.open("bob"), crypto, bob_identity,
                                            context=context, reconnect=FAST))
        await asyncio.sleep(0.2)
        assert bob3.of(ChatMessage) == []
        await bob3.close()
        await alice.close()

    run(scenario)


def test_a_message_sent_between_the_sessions_ready_and_the_services_ready_goes_out_at_once(
        crypto: CryptoService) -> None:
    """Found by the soak: send_text in that window queued the message in the core, whose resend
    had already run, so it left only at the next reconnection (late and out of order)."""
    async def scenario() -> None:
        board = Switchboard()
        alice, bob = await open_peer(board, "alice", crypto), await open_peer(board, "bob", crypto)
        original = alice.chat._set_state
        early: list[str] = []

        async def set_state(peer: Any, state: str, reason: str = "") -> None:
            if state == "ready" and not early:  # the session is Ready, the service not yet
                early.append(await alice.chat.send_text("bob", "early"))
            await original(peer, state, reason)

        alice.chat._set_state = set_state  # type: ignore[method-assign]
        await alice.chat.connect("bob")
        later = await alice.chat.send_text("bob", "later")
        await until(lambda: len(bob.of(ChatMessage)) == 2)
        assert [m.message_id for m in bob.of(ChatMessage)] == [*early, later]
        await alice.close()
        await bob.close()

    run(scenario)
