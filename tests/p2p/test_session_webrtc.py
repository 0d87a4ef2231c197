"""The session driver over real aiortc links (one process): handshake, messages and receipts,
hostile PDUs sent raw on the data channel, and a data channel killed mid-conversation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.session import ChatSession, MessageReceived, ReceiptReceived, SessionState
from enkrypted_p2p.webrtc import WebRTCEndpoint
from enkrypted_shell.contracts import AppContext, CryptoService, LinkBroken
from tests.p2p.servers import Server, start_our_broker, stop
from tests.p2p.test_webrtc_link import pair

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_our_broker(tmp_path_factory.mktemp("broker"))
    yield server
    stop(server.proc)


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


async def sessions(broker: Server, crypto: CryptoService) -> tuple[
        WebRTCEndpoint, WebRTCEndpoint, ChatSession, ChatSession]:
    alice, bob, ab, ba = await pair(broker)
    s_ab = ChatSession(ab, crypto, crypto.new_identity(), initiator=True)
    s_ba = ChatSession(ba, crypto, crypto.new_identity(), initiator=False)
    info_a, info_b = await asyncio.gather(s_ab.start(30), s_ba.start(30))
    assert info_a.safety_number == info_b.safety_number
    return alice, bob, s_ab, s_ba


async def next_of(session: ChatSession, kind: type, timeout: float = 10) -> object:
    async with asyncio.timeout(timeout):
        async for event in session.events():
            if isinstance(event, kind):
                return event
    raise AssertionError(f"events ended before a {kind.__name__}")


def test_hostile_pdus_over_a_real_channel_deliver_nothing_bad(
        broker: Server, crypto: CryptoService) -> None:
    async def scenario() -> None:
        alice, bob, s_ab, s_ba = await sessions(broker, crypto)
        try:
            hostile = [b"", b"\x01junk", b"\x02" + b"\x00" * 20, b'{"type":"offer"}',
                       b"\x09" * 1000, b"\x01" + b"\xff" * 70_000]
            for pdu in hostile:
                await s_ab.link.send(pdu)
            for seq in range(100):  # chunk flood: 100 first-chunks of 3-chunk messages
                await s_ab.link.send(b"\x02" + seq.to_bytes(8, "big") + (0).to_bytes(4, "big")
                                     + (3).to_bytes(4, "big") + b"c" * 8192)
            message_id = await s_ab.send_text("the real one")
            got = await next_of(s_ba, MessageReceived)
            assert got == MessageReceived(message_id, "the real one")
            assert await next_of(s_ab, ReceiptReceived) == ReceiptReceived(message_id)
            dropped = s_ba.core.dropped
            assert dropped["too-many-reassemblies"] == 100 - 64
            assert sum(dropped.values()) == len(hostile) + 36 and s_ba.core.delivered == 1
            assert s_ba.state is SessionState.READY
        finally:
            await alice.aclose()
            await bob.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_data_channel_killed_mid_conversation(broker: Server, crypto: CryptoService,
                                              tmp_path: Path) -> None:
    async def scenario() -> None:
        alice, bob, s_ab, s_ba = await sessions(broker, crypto)
        try:
            for i in range(20):
                await s_ab.send_text(f"m{i}")
            texts = []
            for _ in range(20):
                event = await next_of(s_ba, MessageReceived)
                assert isinstance(event, MessageReceived)
                texts.append(event.text)
            assert texts == [f"m{i}" for i in range(20)]
            await s_ba.link.kill_transport()  # type: ignore[attr-defined]
            broken = await next_of(s_ab, LinkBroken, timeout=45)
            assert isinstance(broken, LinkBroken)
            assert s_ab.state is SessionState.DISCONNECTED
            with pytest.raises(Exception, match="Disconnected"):
                await s_ab.send_text("after the break")
            assert s_ba.core.delivered == 20 and not s_ba.core.dropped
        finally:
            await alice.aclose()
            await bob.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 120))
