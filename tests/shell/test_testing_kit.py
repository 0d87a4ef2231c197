"""enkrypted_shell.testing: the kit plugin authors run in their own tests."""

from __future__ import annotations

import asyncio

import pytest

from enkrypted_p2p.plugin import MemoryTransport
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
    check_transport_service,
    memory_link_pair,
)


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


def test_the_in_memory_p2p_plugin_passes_the_transport_kit() -> None:
    check_transport_service(MemoryTransport())


def test_the_transport_kit_catches_a_reordering_link() -> None:
    class Shuffling(MemoryTransport):
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
        check_transport_service(Shuffling())


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
