"""The transport tuning (webrtc/_tuning.py, docs/webrtc.md "Tuning"): applied per connection by
default, every knob visible on the connection, and ``STOCK`` leaves aiortc exactly as it ships.
No timing assertions: what is checked is that the knobs are in place and data still flows."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.webrtc import (
    DEFAULT_TUNING,
    STOCK,
    DataChannelLink,
    Tuning,
    WebRTCEndpoint,
    WebRTCSettings,
    applied_tuning,
)
from enkrypted_p2p.webrtc._tuning import _wrap_send_sack, _wrap_transmit
from tests.p2p.servers import Server, start_our_broker, stop


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_our_broker(tmp_path_factory.mktemp("broker"))
    yield server
    stop(server.proc)


def _sctp(link: DataChannelLink) -> Any:
    return link._channel.transport


def _default_rcvbuf() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


async def _pair(server: Server, tuning: Tuning) -> tuple[WebRTCEndpoint, WebRTCEndpoint,
                                                         DataChannelLink, DataChannelLink]:
    url = f"ws://127.0.0.1:{server.port}/"
    alice = await WebRTCEndpoint.open(WebRTCSettings.loopback(url, tuning=tuning))
    bob = await WebRTCEndpoint.open(WebRTCSettings.loopback(url, tuning=tuning))
    accepted = bob.incoming().__anext__()
    ab = await alice.connect(bob.local_id, timeout=15)
    ba = await asyncio.wait_for(accepted, 15)
    return alice, bob, ab, ba


async def _bulk(ab: DataChannelLink, ba: DataChannelLink, count: int) -> None:
    block = bytes(range(256)) * 256  # 64 KiB
    for i in range(count):
        await ab.send(bytes([i % 256]) + block)
    for i in range(count):
        assert await ba.receive() == bytes([i % 256]) + block


def test_default_settings_tune_every_connection_and_bulk_data_still_arrives(
        broker: Server) -> None:
    assert WebRTCSettings().tuning == DEFAULT_TUNING and DEFAULT_TUNING.enabled

    async def scenario() -> None:
        alice, bob, ab, ba = await _pair(broker, DEFAULT_TUNING)
        try:
            for link in (ab, ba):
                applied = applied_tuning(link._channel)
                assert applied is not None and applied.tuning == DEFAULT_TUNING
                assert applied.sockets >= 1
                # the kernel may cap the request at net.core.rmem_max, never below its default
                assert all(size > _default_rcvbuf() for size in applied.rcvbuf_bytes)
                sctp = _sctp(link)
                assert {"_transmit", "_update_rto", "_send_sack"} <= set(vars(sctp))
                sctp._srtt = None  # as if this were the first measurement (RFC 4960 §6.3.1 C1)
                sctp._update_rto(0.001)  # a 1 ms round trip: RTO floor 50 ms, not 1 s
                assert sctp._rto == pytest.approx(DEFAULT_TUNING.sctp_rto_min_s)
            await _bulk(ab, ba, 64)
            await _bulk(ba, ab, 16)
        finally:
            await alice.aclose()
            await bob.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_stock_leaves_aiortc_as_it_ships(broker: Server) -> None:
    async def scenario() -> None:
        alice, bob, ab, ba = await _pair(broker, STOCK)
        try:
            for link in (ab, ba):
                assert applied_tuning(link._channel) is None
                sctp = _sctp(link)
                assert not {"_transmit", "_update_rto", "_send_sack"} & set(vars(sctp))
                sctp._srtt = None
                sctp._update_rto(0.001)
                assert sctp._rto == 1  # aiortc's SCTP_RTO_MIN
            await _bulk(ab, ba, 16)
        finally:
            await alice.aclose()
            await bob.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 90))


def test_burst_runs_aiortc_transmit_until_the_window_is_full_never_in_fast_recovery() -> None:
    calls: list[int] = []
    sctp = SimpleNamespace(_flight_size=0, _cwnd=10_000, _fast_recovery_exit=None,
                           _outbound_queue=[1])

    async def original() -> None:  # aiortc: up to 4 chunks of 1000 bytes, capped by cwnd
        calls.append(sctp._flight_size)
        sctp._flight_size = min(sctp._flight_size + 4000, sctp._cwnd)

    sctp._transmit = original
    _wrap_transmit(sctp, 4)
    asyncio.run(sctp._transmit())
    assert calls == [0, 4000, 8000]  # third round reached cwnd: stop
    calls.clear()
    sctp._flight_size, sctp._fast_recovery_exit = 0, 123
    asyncio.run(sctp._transmit())
    assert calls == [0]  # fast recovery keeps aiortc's own burst


def test_sack_every_second_packet_at_once_on_gaps_and_the_odd_one_within_the_delay() -> None:
    """RFC 4960 §6.2: at least every second packet, at once for out-of-order/duplicate data,
    and never later than the delay (here 10 ms; the RFC's bound is 200 ms)."""

    class FakeSctp:
        class State:
            ESTABLISHED = "established"

        def __init__(self) -> None:
            self._sack_needed = False
            self._sack_misordered: set[int] = set()
            self._sack_duplicates: list[int] = []
            self._association_state = "established"
            self.sent = 0

        async def _send_sack(self) -> None:
            self.sent += 1
            self._sack_needed = False

    async def scenario() -> None:
        sctp: Any = FakeSctp()
        _wrap_send_sack(sctp, 2, 0.01)
        sctp._sack_needed = True
        await sctp._send_sack()
        assert sctp.sent == 0  # the first packet's SACK is deferred...
        await sctp._send_sack()
        assert sctp.sent == 1  # ...and goes out with the second
        sctp._sack_needed = True
        await sctp._send_sack()
        assert sctp.sent == 1
        for _ in range(100):  # bounded: the deferred SACK goes out by the timer
            await asyncio.sleep(0.01)
            if sctp.sent == 2:
                break
        assert sctp.sent == 2
        sctp._sack_needed = True
        await sctp._send_sack()  # 4th packet: even, sent
        assert sctp.sent == 3
        sctp._sack_needed = True
        sctp._sack_misordered.add(7)
        await sctp._send_sack()  # 5th (odd) but a gap: at once
        assert sctp.sent == 4

    asyncio.run(asyncio.wait_for(scenario(), 10))


@pytest.mark.parametrize("bad", [{"sctp_burst_chunks": 6}, {"sctp_burst_chunks": 128},
                                 {"sctp_rto_min_s": 0.0}, {"sctp_rto_min_s": 5.0},
                                 {"udp_buffer_bytes": 0}, {"sctp_sack_every": 0},
                                 {"sctp_sack_every": 8}, {"sctp_sack_delay_s": 0.5}])
def test_out_of_range_knobs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(P2PUsageError):
        Tuning(**bad)


def test_transport_tuning_false_in_the_settings_table_turns_it_off() -> None:
    assert WebRTCSettings.from_mapping({"transport_tuning": False}).tuning == STOCK
    assert WebRTCSettings.from_mapping({}).tuning == DEFAULT_TUNING
