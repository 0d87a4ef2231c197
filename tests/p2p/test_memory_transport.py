"""enkrypted-p2p-memory: the in-process p2p 2.0 transport (switchboard endpoints, bounded pipes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import enkrypted_p2p_memory
import enkrypted_p2p_memory.plugin as memory_plugin
from enkrypted_p2p_memory.endpoint import MAX_PENDING, SWITCHBOARD, Switchboard
from enkrypted_p2p_memory.memory import QUEUE_DEPTH, memory_pair
from enkrypted_shell.contracts import (
    AppContext,
    LinkBroken,
    LinkClosedLocally,
    LocalMisuse,
    PeerUnavailable,
    SignalingFailed,
    TransportServiceV2,
)
from enkrypted_shell.testing import (
    ConformanceError,
    check_endpoint_pair,
    check_transport_service_v2,
)


def run(coro: object, timeout: float = 30) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def test_public_surface_and_shape(tmp_path: Path) -> None:
    assert enkrypted_p2p_memory.__all__ == ["__version__"]
    assert sorted(memory_plugin.__all__) == ["MemoryTransport", "enkrypted_transport_service"]
    service = memory_plugin.enkrypted_transport_service(AppContext(tmp_path), crypto=None)  # type: ignore[arg-type]
    assert isinstance(service, TransportServiceV2)
    assert (service.name, service.capabilities) == ("memory", frozenset({"in-process"}))
    check_transport_service_v2(service)


def test_two_memory_endpoints_pass_the_p2p_2_0_kit() -> None:
    async def scenario() -> None:
        service = memory_plugin.MemoryTransport()
        first = await service.open_endpoint(peer_id="kit-first")
        second = await service.open_endpoint()  # a generated id
        assert second.local_id.startswith("peer-")
        await check_endpoint_pair(first, second, timeout=10)
        assert SWITCHBOARD.lookup("default", "kit-first") is None  # aclose left the switchboard

    run(scenario())


def test_an_id_taken_on_the_network_is_signaling_failed_and_networks_are_apart(tmp_path: Path) -> None:
    async def scenario() -> None:
        service = memory_plugin.MemoryTransport(AppContext(tmp_path, settings={"network": "lab"}))
        alice = await service.open_endpoint(peer_id="alice")
        try:
            with pytest.raises(SignalingFailed, match="ID taken"):
                await service.open_endpoint(peer_id="alice")
            other = await service.open_endpoint({"network": "elsewhere"}, peer_id="alice")
            with pytest.raises(PeerUnavailable):  # a network of its own: bob is not on "lab"
                await other.connect("bob")
            await other.aclose()
        finally:
            await alice.aclose()
        again = await service.open_endpoint(peer_id="alice")  # the id is free after aclose
        await again.aclose()

    run(scenario())


@pytest.mark.parametrize(("settings", "peer_id", "message"), [
    ({"network": ""}, None, "setting network"),
    ({"network": 7}, None, "setting network"),
    ({"netwrok": "x"}, None, "unknown p2p setting"),
    (None, "has space", "peer id"),
    (None, "x" * 65, "peer id"),
])
def test_bad_settings_and_ids_are_one_line_local_misuse(settings: dict[str, object] | None,
                                                        peer_id: str | None, message: str) -> None:
    async def scenario() -> None:
        with pytest.raises(LocalMisuse, match=message) as info:
            await memory_plugin.MemoryTransport().open_endpoint(settings, peer_id=peer_id)
        assert "\n" not in str(info.value)

    run(scenario())


def test_the_switchboard_and_the_accept_queue_are_bounded() -> None:
    async def scenario() -> None:
        board = Switchboard(max_endpoints=2)
        service = memory_plugin.MemoryTransport(switchboard=board)
        a = await service.open_endpoint(peer_id="a")
        b = await service.open_endpoint(peer_id="b")
        with pytest.raises(SignalingFailed, match="holds 2 endpoints"):
            await service.open_endpoint()
        for _ in range(MAX_PENDING):
            await a.connect("b")
        with pytest.raises(PeerUnavailable, match="accepts no more links"):
            await a.connect("b")  # b never accepted: the pending queue is full
        await a.aclose()
        await b.aclose()
        assert len(board) == 0

    run(scenario())


def test_a_fast_sender_waits_for_the_reader_and_close_wakes_it() -> None:
    async def scenario() -> None:
        a, b = memory_pair("alice", "bob")
        for i in range(QUEUE_DEPTH):
            await a.send(b"%d" % i)
        blocked = asyncio.ensure_future(a.send(b"one too many"))
        await asyncio.sleep(0.05)
        assert not blocked.done()  # backpressure: the queue is full
        assert await b.receive() == b"0"
        await asyncio.wait_for(blocked, 5)  # room again
        stuck = asyncio.ensure_future(a.send(b"and another"))
        await asyncio.sleep(0.05)
        await b.close()
        with pytest.raises(LinkBroken):
            await asyncio.wait_for(stuck, 5)
        with pytest.raises(LinkClosedLocally):
            await b.receive()
        assert a.close_reason == "bob closed the link" and b.close_reason == "closed locally"

    run(scenario())


def test_closing_the_endpoint_breaks_its_peers_links() -> None:
    async def scenario() -> None:
        service = memory_plugin.MemoryTransport()
        alice = await service.open_endpoint(peer_id="alice-2")
        bob = await service.open_endpoint(peer_id="bob-2")
        link = await alice.connect("bob-2")
        accepted = await asyncio.wait_for(anext(bob.incoming()), 5)
        await link.send(b"bye")
        await alice.aclose()
        assert await accepted.receive() == b"bye"  # what was sent before is still read
        with pytest.raises(LinkBroken):
            await accepted.receive()
        with pytest.raises(LinkClosedLocally):
            await link.send(b"x")
        await bob.aclose()

    run(scenario())


def test_the_kit_catches_a_transport_that_does_not_refuse_oversize_pdus() -> None:
    async def scenario() -> None:
        service = memory_plugin.MemoryTransport()
        first = await service.open_endpoint(peer_id="lax-first")
        second = await service.open_endpoint(peer_id="lax-second")

        class Lax:  # claims a smaller bound than it enforces
            def __init__(self, endpoint: object) -> None:
                self._endpoint = endpoint

            def __getattr__(self, name: str) -> object:
                return getattr(self._endpoint, name)

            @property
            def local_id(self) -> str:
                return self._endpoint.local_id  # type: ignore[attr-defined, no-any-return]

            async def connect(self, peer_id: str, timeout: float | None = None) -> object:
                link = await self._endpoint.connect(peer_id, timeout)  # type: ignore[attr-defined]
                link._max_pdu_bytes = 1024
                link._other._max_pdu_bytes = 1024
                link.send = _unbounded(link)
                return link

            def incoming(self) -> object:
                return self._endpoint.incoming()  # type: ignore[attr-defined]

            async def aclose(self) -> None:
                await self._endpoint.aclose()  # type: ignore[attr-defined]

        def _unbounded(link: object) -> object:
            async def send(pdu: bytes) -> None:
                link._other._inbox.append(pdu)  # type: ignore[attr-defined]
                link._other._readable.set()  # type: ignore[attr-defined]
            return send

        with pytest.raises(ConformanceError, match="not refused with LocalMisuse"):
            await check_endpoint_pair(Lax(first), second, timeout=5)  # type: ignore[arg-type]

    run(scenario())


def test_open_chat_two_people_talk_end_to_end_through_the_contract(tmp_path: Path) -> None:
    """``open_chat`` (p2p 2.0) from the transport the shell wires: two chat services on one
    network, connect by peer id, a sealed message both ways with receipts, the same safety number."""
    from enkrypted_crypto.plugin import enkrypted_crypto_service
    from enkrypted_shell.contracts import ChatMessage, ChatReceipt, SessionEstablished

    async def scenario() -> None:
        context = AppContext(tmp_path, settings={"network": "open-chat-test"})
        crypto = enkrypted_crypto_service(context)
        transport = memory_plugin.enkrypted_transport_service(context, crypto)
        alice = await transport.open_chat(crypto.new_identity(), peer_id="alice")
        bob = await transport.open_chat(crypto.new_identity(), peer_id="bob")
        try:
            established = await bob.connect("alice", timeout=20)
            sent = await bob.send_text("alice", "hello through open_chat")
            seen: dict[str, list[object]] = {"alice": [], "bob": []}

            async def collect(name: str, chat: object, until: type) -> object:
                async for event in chat.events():  # type: ignore[attr-defined]
                    seen[name].append(event)
                    if isinstance(event, until):
                        return event
                raise AssertionError(f"{name}'s events ended")

            message = await collect("alice", alice, ChatMessage)
            receipt = await collect("bob", bob, ChatReceipt)
            assert isinstance(message, ChatMessage) and message.text == "hello through open_chat"
            assert isinstance(receipt, ChatReceipt) and receipt.message_id == sent
            theirs = next(e for e in seen["alice"] if isinstance(e, SessionEstablished))
            assert theirs.safety_number == established.safety_number
            assert established.peer_fingerprint == alice.fingerprint
        finally:
            await alice.aclose()
            await bob.aclose()

    run(scenario(), 60)
