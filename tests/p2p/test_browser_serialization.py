"""peerjs serializations on our data channels, between two of our endpoints (the browser itself is
in test_browser.py): the side that offers picks ``binary`` or ``json``, the answering side speaks
what the OFFER named; values of every kind go both ways, a binary value larger than one chunk is
chunked and reassembled; hostile frames (not BinaryPack, broken chunks, a text frame on json) are
dropped and counted, never raised; peerjs's in-band close ends the link."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.signaling import CHUNKED_MTU, DataCodec, Serialization, pack
from enkrypted_p2p.webrtc import DataChannelLink, PeerJSLink, WebRTCEndpoint, WebRTCSettings
from enkrypted_p2p.webrtc._serialization import EarlyFrames, open_link
from enkrypted_shell.contracts import LinkBroken
from tests.p2p.servers import Server, start_our_broker, stop

pytestmark = pytest.mark.slow

COMMON: list[Any] = ["héllo", 0, -7, 2**40, 3.25, None, True, [1, [2, [3, "x"]]],
                     {"nested": {"list": [1.5, "s", None], "empty": {}}}]
BINARY_ONLY: list[Any] = [b"\x00\x01\xff", {"blob": bytes(range(256)) * 200},  # 51 KB: 4 chunks
                          "z" * 40_000]
JSON_BIG = "j" * (CHUNKED_MTU - 100)  # json is never chunked: just under the limit


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_our_broker(tmp_path_factory.mktemp("broker"))
    yield server
    stop(server.proc)


async def pair(server: Server, serialization: Serialization) -> tuple[
        WebRTCEndpoint, WebRTCEndpoint, DataChannelLink, DataChannelLink]:
    settings = WebRTCSettings.loopback(f"ws://127.0.0.1:{server.port}/")
    alice = await WebRTCEndpoint.open(settings)
    bob = await WebRTCEndpoint.open(settings)
    accepted = bob.incoming().__anext__()
    ab = await alice.connect(bob.local_id, serialization=serialization)
    ba = await asyncio.wait_for(accepted, 15)
    return alice, bob, ab, ba


@pytest.mark.parametrize("serialization", [Serialization.BINARY, Serialization.JSON])
def test_values_go_both_ways_in_the_offered_serialization(broker: Server,
                                                          serialization: Serialization) -> None:
    values = COMMON + (BINARY_ONLY if serialization is Serialization.BINARY else [JSON_BIG])

    async def scenario() -> None:
        alice, bob, ab, ba = await pair(broker, serialization)
        try:
            assert isinstance(ab, PeerJSLink) and isinstance(ba, PeerJSLink)
            assert ab.serialization == ba.serialization == serialization  # the OFFER named it
            for value in values:
                await ab.send_value(value)
            assert [await ba.receive_value() for _ in values] == values
            for value in reversed(values):
                await ba.send_value(value)
            assert [await ab.receive_value() for _ in values] == values[::-1]
            assert ab.dropped_messages == ba.dropped_messages == 0 and ba.pending_chunks == 0
        finally:
            await alice.aclose()
            await bob.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_binary_link_carries_pdus_and_drops_hostile_frames(broker: Server) -> None:
    async def scenario() -> None:
        alice, bob, ab, ba = await pair(broker, Serialization.BINARY)
        try:
            assert isinstance(ab, PeerJSLink) and isinstance(ba, PeerJSLink)
            channel = ab._channel  # the raw data channel: frames a hostile peer could write
            hostile: list[bytes | str] = [b"\xc4garbage", pack({"__peerData": 5, "n": 3, "data": b"x", "total": 2}),
                                          pack({"__peerData": 6, "n": 0, "data": "not bytes",
                                                "total": 2}),
                                          "a text frame", b""]
            for frame in hostile:
                channel.send(frame)
            # 200,000 empty arrays (one byte each) in __peerData chunks: reassembled, then refused
            # by the decoded-value budget (MAX_OBJECTS) before anything is built; one drop.
            amplifier = b"\xdd" + (200_000).to_bytes(4, "big") + b"\x90" * 200_000
            pieces = [amplifier[i:i + CHUNKED_MTU] for i in range(0, len(amplifier), CHUNKED_MTU)]
            for n, piece in enumerate(pieces):
                channel.send(pack({"__peerData": 7, "n": n, "data": piece, "total": len(pieces)}))
            hostile.append(b"(the amplifier)")
            await ab.send_value("not a PDU")  # a value, but not bytes: receive() skips it
            pdu = bytes(range(256)) * 300  # 76,800 bytes: chunked
            await ab.send(pdu)
            assert await asyncio.wait_for(ba.receive(), 10) == pdu
            assert ba.dropped_messages == len(hostile) and ba.dropped_values == 1
            with pytest.raises(P2PUsageError):
                await ab.send_value({1: "JavaScript keys are strings"})
            channel.send(DataCodec(Serialization.BINARY).close_message())  # close({flush: true})
            with pytest.raises(LinkBroken, match="peerjs close"):
                await asyncio.wait_for(ba.receive(), 10)
        finally:
            await alice.aclose()
            await bob.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_json_link_refuses_bytes_and_oversize_and_drops_non_json(broker: Server) -> None:
    async def scenario() -> None:
        alice, bob, ab, ba = await pair(broker, Serialization.JSON)
        try:
            assert isinstance(ab, PeerJSLink) and isinstance(ba, PeerJSLink)
            with pytest.raises(P2PUsageError, match="JSON values"):
                await ab.send(b"pdu")
            with pytest.raises(P2PUsageError, match="too big"):
                await ab.send_value("x" * CHUNKED_MTU)
            ab._channel.send(b"\xff\xfe not json")
            await ab.send_value({"ok": [1, 2]})
            assert await asyncio.wait_for(ba.receive_value(), 10) == {"ok": [1, 2]}
            assert ba.dropped_messages == 1
        finally:
            await alice.aclose()
            await bob.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_raw_stays_the_default_between_our_peers(broker: Server) -> None:
    async def scenario() -> None:
        alice, bob, ab, ba = await pair(broker, Serialization.RAW)
        try:
            assert type(ab) is DataChannelLink and type(ba) is DataChannelLink
            await ab.send(b"\x00raw")
            assert await asyncio.wait_for(ba.receive(), 10) == b"\x00raw"
        finally:
            await alice.aclose()
            await bob.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 60))



@pytest.mark.parametrize("serialization", [Serialization.RAW, Serialization.BINARY])
def test_frames_before_the_link_exists_are_held_in_order_and_bounded(
        serialization: Serialization) -> None:
    """A browser sends on ``open`` at once; our answering side makes its link a task switch after
    the channel opened (seen with the browser: its first json message was lost).  Frames in that
    gap are held, replayed first and in order; more than the bound breaks the link instead."""
    codec = DataCodec(serialization)

    def frame(text: str) -> bytes:
        out = codec.encode(text.encode())[0]  # a PDU: bytes on raw and binary
        assert isinstance(out, bytes)
        return out

    async def scenario() -> None:
        settings = WebRTCSettings.loopback("ws://127.0.0.1:9/")
        pc = RTCPeerConnection()
        try:
            channel = pc.createDataChannel("dc_early")
            early = EarlyFrames(channel, limit=1000)
            channel.emit("message", frame("first"))
            channel.emit("message", frame("second"))
            link = open_link("browser-1", "dc_early", pc, channel, settings, serialization,
                             early=early)
            channel.emit("message", frame("after"))
            got = [await link.receive() for _ in range(3)]
            assert got == [b"first", b"second", b"after"]
            flooded = pc.createDataChannel("dc_flood")
            early = EarlyFrames(flooded, limit=1000)
            for _ in range(20):
                flooded.emit("message", frame("x" * 100))
            late = open_link("browser-1", "dc_flood", pc, flooded, settings, serialization,
                             early=early)
            with pytest.raises(LinkBroken, match="before the link opened"):
                while True:
                    await late.receive()
        finally:
            await pc.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))


@pytest.mark.parametrize("serialization", [Serialization.BINARY, Serialization.JSON])
def test_random_and_hostile_frames_are_dropped_never_raised_and_stay_bounded(
        serialization: Serialization) -> None:
    """2,000 frames a hostile browser could send - random bytes, truncated values, chunk maps with
    random fields, deep nesting - go into the link's message handler: none raises, the partial
    reassemblies stay within ``max_pending``, and a good value afterwards still arrives."""
    rng = random.Random(20261206)
    good = DataCodec(serialization)

    def chunk_map() -> bytes:
        fields: dict[str, Any] = {"__peerData": rng.choice([rng.randint(-5, 10**6), "x", [1], 1.5]),
                                  "n": rng.choice([rng.randint(-2, 5), None, "0"]),
                                  "data": rng.choice([rng.randbytes(rng.randint(0, 300)), "s", 3]),
                                  "total": rng.choice([rng.randint(0, 2000), -1, 2**40])}
        return pack(fields)

    def frame() -> bytes | str:
        kind = rng.randrange(6)
        if kind == 0:
            return rng.randbytes(rng.randint(0, 64))
        if kind == 1:
            whole = good.encode({"k": [1, 2.5, "v" * rng.randint(0, 40)]})[0]
            return whole[: rng.randint(0, len(whole))]
        if kind == 2:
            return chunk_map()
        if kind == 3:
            return b"\x91" * rng.randint(1, 5000) + b"\x01" if rng.random() < 0.5 \
                else b"[" * rng.randint(1, 5000)
        if kind == 4:
            return "".join(chr(rng.randint(32, 0x2FF)) for _ in range(rng.randint(0, 30)))
        return b'{"__peerData": ' + str(rng.randint(0, 9)).encode() + b"}"

    async def scenario() -> None:
        settings = WebRTCSettings.loopback("ws://127.0.0.1:9/")
        pc = RTCPeerConnection()
        try:
            channel = pc.createDataChannel("dc_fuzz")
            link = open_link("browser-1", "dc_fuzz", pc, channel, settings, serialization)
            assert isinstance(link, PeerJSLink)
            for _ in range(2000):
                channel.emit("message", frame())
                assert link.pending_chunks <= 64 and not link.closed
            assert link.dropped_messages > 500
            channel.emit("message", good.encode({"still": "working"})[0])
            delivered = 0  # random frames that happen to be valid values come first
            while await asyncio.wait_for(link.receive_value(), 5) != {"still": "working"}:
                delivered += 1
                assert delivered <= 2000
            assert link.dropped_messages + delivered <= 2000
        finally:
            await pc.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
