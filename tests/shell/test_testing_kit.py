"""enkrypted_shell.testing: the kit plugin authors run in their own tests."""

from __future__ import annotations

import asyncio

import pytest

from enkrypted_p2p_memory.plugin import MemoryTransport
from enkrypted_shell.contracts import (
    WIRE_LIMITS,
    LinkBroken,
    LinkClosed,
    LinkClosedLocally,
    LocalMisuse,
)
from enkrypted_shell.testing import (
    ConformanceError,
    FakeClock,
    check_crypto_service,
    check_endpoint_pair,
    check_transport_service,
    check_transport_service_v2,
    memory_link_pair,
)


class LoopbackTransport:
    """A p2p 1.0 service (``loopback_pair``) built from the kit's memory links."""

    name = "loopback"
    capabilities = frozenset({"loopback"})

    async def loopback_pair(self, first: str, second: str):  # type: ignore[no-untyped-def]
        return memory_link_pair(first, second)


def test_fake_clock_moves_only_forward_when_told() -> None:
    clock = FakeClock(10.0)
    assert clock() == 10.0 and clock.advance(2.5) == 12.5 and clock() == 12.5
    with pytest.raises(LocalMisuse):
        clock.advance(-1)


def test_memory_links_are_ordered_and_say_who_closed() -> None:
    async def run() -> None:
        alice, bob = memory_link_pair("alice", "bob")
        assert (alice.peer_id, bob.peer_id) == ("bob", "alice")
        for i in range(3):
            await alice.send(b"%d" % i)
        assert [await bob.receive() for _ in range(3)] == [b"0", b"1", b"2"]
        await alice.send(b"last")
        await alice.close()
        assert await bob.receive() == b"last"  # queued data drains before the close
        with pytest.raises(LinkBroken):
            await bob.receive()
        with pytest.raises(LinkBroken):
            await bob.send(b"x")
        with pytest.raises(LinkClosedLocally):
            await alice.send(b"x")

    asyncio.run(run())


def test_memory_links_enforce_the_pdu_cap() -> None:
    async def run() -> None:
        alice, _ = memory_link_pair()
        with pytest.raises(LocalMisuse, match="cap"):
            await alice.send(bytes(WIRE_LIMITS.max_pdu_bytes + 1))

    asyncio.run(run())


def test_a_1_0_transport_passes_the_1_0_transport_kit() -> None:
    check_transport_service(LoopbackTransport(), version="1.0")


def test_the_transport_kit_catches_a_reordering_link() -> None:
    class Shuffling(LoopbackTransport):
        async def loopback_pair(self, first, second):
            a, b = await super().loopback_pair(first, second)
            original = b.receive
            buffer: list[bytes] = []

            async def receive() -> bytes:
                if not buffer:
                    buffer.extend([await original(), await original()])
                    buffer.reverse()
                return buffer.pop(0)

            b.receive = receive  # type: ignore[method-assign]
            return a, b

    with pytest.raises(ConformanceError, match="reordered"):
        check_transport_service(Shuffling(), version="1.0")


def test_the_2_0_kit_passes_the_memory_plugin_and_refuses_a_1_0_service() -> None:
    check_transport_service_v2(MemoryTransport())
    with pytest.raises(ConformanceError) as info:
        check_transport_service_v2(LoopbackTransport())
    assert "missing coroutine 'open_endpoint'" in str(info.value)
    assert "missing coroutine 'open_chat'" in str(info.value)


def _reordering(endpoint):  # type: ignore[no-untyped-def]
    """``endpoint`` whose accepted links hand PDUs over pairwise swapped."""
    class Reordering:
        local_id = endpoint.local_id
        connect = endpoint.connect
        aclose = endpoint.aclose

        async def incoming(self):  # type: ignore[no-untyped-def]
            async for link in endpoint.incoming():
                original, buffer = link.receive, []

                async def receive(original=original, buffer=buffer):  # type: ignore[no-untyped-def]
                    if not buffer:
                        buffer.extend([await original(), await original()])
                        buffer.reverse()
                    return buffer.pop(0)

                link.receive = receive
                yield link

    return Reordering()


def test_the_endpoint_kit_catches_a_reordering_link() -> None:
    async def run() -> None:
        first = await MemoryTransport().open_endpoint(peer_id="kit-a")
        second = await MemoryTransport().open_endpoint(peer_id="kit-b")
        with pytest.raises(ConformanceError, match="reordered"):
            await check_endpoint_pair(first, _reordering(second), timeout=5)

    asyncio.run(asyncio.wait_for(run(), 30))


def test_the_endpoint_kit_catches_a_peer_close_that_is_not_link_broken() -> None:
    async def run() -> None:
        first = await MemoryTransport().open_endpoint(peer_id="kit-c")
        second = await MemoryTransport().open_endpoint(peer_id="kit-d")
        real_connect = first.connect

        async def connect(peer_id, timeout=None):  # type: ignore[no-untyped-def]
            link = await real_connect(peer_id, timeout)
            real_close = link.close

            async def close():  # type: ignore[no-untyped-def]
                await real_close()
                link._other._broken = None  # the peer never learns it
                link._other._closed_here = False
                link._other._inbox.append(b"ghost")
                link._other._readable.set()

            link.close = close
            return link

        first.connect = connect  # type: ignore[method-assign]
        with pytest.raises(ConformanceError, match="did not raise LinkBroken"):
            await check_endpoint_pair(first, second, timeout=5)

    asyncio.run(asyncio.wait_for(run(), 30))


def test_the_crypto_kit_refuses_a_service_without_the_2_0_members() -> None:
    class OneDotOh:
        backend = "toy"
        capabilities = frozenset()
        profiles = ("toy",)

        def new_identity(self) -> bytes:
            return b"k"

        def handshake(self, identity, *, initiator, profiles=None, layers=None):
            raise AssertionError("not reached")

    with pytest.raises(ConformanceError) as info:
        check_crypto_service(OneDotOh)
    message = str(info.value)
    assert "missing method 'fingerprint'" in message and "missing method 'restore'" in message
    assert "'handshake' cannot be called as the contract calls it" in message


def test_link_errors_split_by_fault() -> None:
    from enkrypted_shell.contracts import ContractError, NetworkError

    assert issubclass(LinkClosedLocally, LinkClosed) and issubclass(LinkClosedLocally, LocalMisuse)
    assert issubclass(LinkBroken, LinkClosed) and issubclass(LinkBroken, NetworkError)
    assert issubclass(LinkClosed, ContractError)
