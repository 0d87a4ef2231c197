"""A peer id is routing, not identity: when someone else answers for a kept peer id (the id was
taken over at the broker while its owner was away), the full handshake that follows shows a
different identity key — nothing queued for the old identity is sent to the new one, the change
is reported, and the new key is what the ui shows (never a silent switch)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_shell.contracts import AppContext, ChatProblem, SessionEstablished
from tests.p2p.chat_switchboard import Switchboard
from tests.p2p.test_chat_service import open_peer, until


def run(coro: object, timeout: float = 60) -> None:
    asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def test_queued_messages_never_go_to_whoever_takes_the_id_over_after_a_loss(tmp_path: Path) -> None:
    async def scenario() -> None:
        crypto = enkrypted_crypto_service(AppContext(tmp_path))
        board = Switchboard()
        alice = await open_peer(board, "alice", crypto)
        bob = await open_peer(board, "bob", crypto)
        mallory = None
        try:
            await bob.chat.connect("alice")
            await until(lambda: alice.chat.peers().get("bob") == "ready")
            await board.endpoints["bob"].aclose()  # Bob's process is gone
            board.kill_all()
            await until(lambda: alice.chat.peers().get("bob") == "reconnecting")
            await alice.chat.send_text("bob", "meant for bob only")  # queued, unacknowledged
            mallory = await open_peer(board, "bob", crypto)  # the freed id, another identity
            await mallory.chat.connect("alice")
            await until(lambda: any(isinstance(p, ChatProblem) and "different identity key"
                                    in p.message for p in alice.of(ChatProblem)))
            await asyncio.sleep(0.3)  # give a wrong resend every chance to arrive
            assert mallory.texts() == []
            keys = [e.peer_fingerprint for e in alice.of(SessionEstablished)]
            assert keys == [bob.chat.fingerprint, mallory.chat.fingerprint]
        finally:
            for peer in (alice, bob, mallory):
                if peer is not None:
                    await peer.close()

    run(scenario())


def test_a_redial_answered_by_another_identity_sends_nothing_queued(tmp_path: Path) -> None:
    async def scenario() -> None:
        crypto = enkrypted_crypto_service(AppContext(tmp_path))
        board = Switchboard()
        alice = await open_peer(board, "alice", crypto)
        bob = await open_peer(board, "bob", crypto)
        mallory = None
        try:
            await alice.chat.connect("bob")  # Alice dials, so Alice redials after the loss
            await board.endpoints["bob"].aclose()
            board.kill_all()
            await until(lambda: alice.chat.peers().get("bob") == "reconnecting")
            await alice.chat.send_text("bob", "still meant for bob")
            mallory = await open_peer(board, "bob", crypto)  # refuses the resume: full handshake
            await until(lambda: any("different identity key" in p.message
                                    for p in alice.of(ChatProblem)), 20)
            await asyncio.sleep(0.3)
            assert mallory.texts() == []
        finally:
            for peer in (alice, bob, mallory):
                if peer is not None:
                    await peer.close()

    run(scenario())
