"""Hostile clients against our broker process: it stays up, its memory stays bounded (RSS read
from /proc before and after) and legitimate peers keep working through every attack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from enkrypted_p2p.errors import BrokerRefused
from enkrypted_p2p.signaling import ClientConfig, Signal, SignalingClient
from tests.p2p.servers import Server, rss_kb, start_our_broker, stop

RSS_GROWTH_LIMIT_KB = 40 * 1024


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    extra = getattr(request, "param", ())
    server = start_our_broker(tmp_path, extra=tuple(extra))
    yield server
    assert server.proc.poll() is None, "the broker died"
    stop(server.proc)


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def raw(session: aiohttp.ClientSession, port: int, peer_id: str, token: str = "t",
              key: str = "peerjs", forwarded_for: str | None = None,
              ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    ws = await session.ws_connect(
        f"ws://127.0.0.1:{port}/peerjs?key={key}&id={peer_id}&token={token}", max_msg_size=0,
        headers=headers)
    first = await ws.receive(timeout=5)
    return ws, json.loads(first.data) if first.type is aiohttp.WSMsgType.TEXT else {}


async def closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> list[Any]:
    """Frames received until the broker closes the socket (bounded)."""
    got = []
    async with asyncio.timeout(timeout):
        async for msg in ws:
            got.append(json.loads(msg.data) if msg.type is aiohttp.WSMsgType.TEXT else msg.type)
    return got


async def legit_works(port: int, **kw: Any) -> None:
    cfg = ClientConfig(port=port, **kw)
    async with SignalingClient(cfg, f"a{secrets.token_hex(4)}") as a, \
            SignalingClient(cfg, f"b{secrets.token_hex(4)}") as b:
        cid = await a.offer(b.peer_id, {"type": "offer", "sdp": "v=0"})
        got = await b.wait_for(Signal, timeout=5)
        assert (got.peer, got.connection_id) == (a.peer_id, cid)


def test_malformed_json_and_unknown_types(broker: Server) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, \
                SignalingClient(ClientConfig(port=broker.port), "victim") as victim:
            ws, first = await raw(s, broker.port, "mallory")
            assert first == {"type": "OPEN"}
            for bad in ["{", "null", "[]", '"x"', '{"type": 1}', "\x00\xff", '{"type":"OPEN"}',
                        '{"type":"ID-TAKEN","dst":"victim"}', '{"type":"EVIL","dst":"victim"}',
                        '{"type":"OFFER"}', '{"type":"OFFER","dst":"vic\\ntim"}']:
                await ws.send_str(bad)
            await ws.send_bytes(b"\x80\x81garbage")
            await legit_works(broker.port)
            with pytest.raises(TimeoutError):
                await victim.wait_for(Signal, timeout=0.5)  # nothing forged reached the victim
            for _ in range(20):
                try:
                    await ws.send_str("{nope")
                except (ConnectionError, aiohttp.ClientError):
                    break  # the broker cuts an abusive socket right after its ERROR and close frame
            assert (await closed(ws))[0] == {"type": "ERROR", "payload": {"msg": "Too many invalid messages"}}
            await legit_works(broker.port)

    run(scenario())


def test_oversize_frame_closes_only_that_socket(broker: Server) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            before = rss_kb(broker.pid)
            ws, _ = await raw(s, broker.port, "big")
            # the broker may cut the socket while the 2 MB frame is still being written
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await ws.send_str(json.dumps({"type": "OFFER", "dst": "x", "payload": "A" * 2_000_000}))
            await closed(ws)
            # 1009 (message too big) when the close frame arrives before the reset; 1006 (abnormal)
            # or None when the reset wins the race. Either way only this socket is gone:
            assert ws.closed and ws.close_code in (1009, 1006, None)
            await legit_works(broker.port)
            print(f"oversize frame: broker RSS grew {rss_kb(broker.pid) - before} KiB")
            assert rss_kb(broker.pid) - before < RSS_GROWTH_LIMIT_KB

    run(scenario())


def test_message_flood_is_cut_off_by_the_rate_limit(broker: Server) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s, \
                SignalingClient(ClientConfig(port=broker.port), "target") as target:
            ws, _ = await raw(s, broker.port, "flooder")
            sent = 0
            with pytest.raises((ConnectionResetError, aiohttp.ClientError, RuntimeError)):
                for sent in range(20_000):  # bounded; the broker cuts it off after the burst
                    await ws.send_str('{"type":"CANDIDATE","dst":"target","payload":{}}')
                    if sent % 100 == 0:
                        await asyncio.sleep(0)
                    if ws.closed:
                        raise ConnectionResetError
            await closed(ws)
            assert sent < 20_000 - 1 and ws.closed
            received = 0
            with pytest.raises(TimeoutError):
                while True:
                    await target.wait_for(Signal, timeout=0.5)
                    received += 1
            assert received <= 250  # the burst (200) plus what the refill allowed
            await legit_works(broker.port)

    run(scenario())
    events = [json.loads(line) for line in broker.log.read_text().splitlines() if line.startswith("{")]
    assert {"event": "client.closed", "id": "flooder", "reason": "Rate limit exceeded"}.items() <= \
        next(e for e in events if e.get("id") == "flooder" and e["event"] == "client.closed").items()


@pytest.mark.parametrize("broker", [("--concurrent-limit", "150", "--max-conns-per-ip", "1000")],
                         indirect=True)
def test_connection_flood_hits_the_limit_and_legit_peers_keep_working(broker: Server) -> None:
    async def scenario() -> None:
        cfg = ClientConfig(port=broker.port)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s, \
                SignalingClient(cfg, "early") as early:
            before = rss_kb(broker.pid)

            async def one(i: int) -> tuple[Any, dict[str, Any]]:
                return await raw(s, broker.port, f"flood{i}", token=secrets.token_hex(8))

            results = []
            for start in range(0, 400, 50):  # 400 sockets, 50 handshakes in flight
                results += await asyncio.gather(*(one(i) for i in range(start, start + 50)))
            kinds = [first.get("type") for _, first in results]
            assert kinds.count("OPEN") == 149 and kinds.count("ERROR") == 251
            grown = rss_kb(broker.pid) - before
            with pytest.raises(BrokerRefused, match="concurrent user limit"):
                async with SignalingClient(cfg, "late-friend"):
                    pass
            await early.offer("early", {"type": "offer", "sdp": ""})  # early still works
            assert (await early.wait_for(Signal)).peer == "early"
            for ws, _ in results:
                await ws.close()
            await asyncio.sleep(0.5)
            await legit_works(broker.port)
            print(f"connection flood: broker RSS grew {grown} KiB for 400 sockets")
            assert grown < RSS_GROWTH_LIMIT_KB, grown

    run(scenario())


@pytest.mark.parametrize("broker", [("--id-fail-burst", "5", "--ip-fail-burst", "1000")],
                         indirect=True)
def test_token_guessing_is_throttled_per_id_and_the_owner_keeps_working(broker: Server) -> None:
    """The guesser (127.0.0.2) is throttled per id; meanwhile the owner (127.0.0.1) reconnects
    with its own token at once and takes its session over: the right token is never throttled."""
    async def scenario() -> None:
        cfg = ClientConfig(port=broker.port)
        attacker = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=attacker) as s, \
                SignalingClient(cfg, "victim") as victim:
            answers = []
            for _ in range(50):  # bounded; each socket is answered and closed
                ws, first = await raw(s, broker.port, "victim", token=secrets.token_hex(4))
                answers.append(first)
                await closed(ws)
            assert answers[:5] == [{"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}] * 5
            assert answers[5:] == [{"type": "ERROR", "payload": {"msg": "Too many failed attempts"}}] * 45
            async with SignalingClient(cfg, "victim", token=victim.token) as owner, \
                    SignalingClient(cfg, "friend") as friend:
                await friend.offer("victim", {"type": "offer", "sdp": "v=0"})
                assert (await owner.wait_for(Signal)).peer == "friend"
                ws, first = await raw(s, broker.port, "victim", token=secrets.token_hex(4))
                assert first == {"type": "ERROR", "payload": {"msg": "Too many failed attempts"}}
                await closed(ws)

    run(scenario())


@pytest.mark.parametrize("broker", [("--max-conns-per-ip", "5", "--trusted-proxy", "127.0.0.1")],
                         indirect=True)
def test_per_address_limit_counts_loopback_and_forwarded_clients_behind_a_trusted_proxy(
    broker: Server,
) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            mine = [await raw(s, broker.port, f"lo{i}") for i in range(5)]
            assert [first for _, first in mine] == [{"type": "OPEN"}] * 5
            ws, first = await raw(s, broker.port, "lo5")
            assert first == {"type": "ERROR", "payload": {"msg": "Too many connections from this address"}}
            await closed(ws)
            # Behind the proxy (127.0.0.1 is trusted here): each forwarded client has its own count.
            far = [await raw(s, broker.port, f"far{i}", forwarded_for=f"198.51.100.{i % 2}")
                   for i in range(6)]
            assert [first for _, first in far] == [{"type": "OPEN"}] * 6
            await mine[0][0].close()
            await asyncio.sleep(0.2)
            back, first = await raw(s, broker.port, "lo6")
            assert first == {"type": "OPEN"}  # a closed socket frees its place
            for sock, _ in [*mine, *far, (back, {})]:
                await sock.close()

    run(scenario())


@pytest.mark.parametrize("broker", [("--alive-timeout", "1.5")], indirect=True)
def test_client_that_never_heartbeats_is_dropped(broker: Server) -> None:
    async def scenario() -> None:
        cfg = ClientConfig(port=broker.port, ping_interval=0.5)
        async with aiohttp.ClientSession() as s, SignalingClient(cfg, "steady") as steady:
            ws, _ = await raw(s, broker.port, "silent", token="one")
            await closed(ws, timeout=4.0)  # 1.5 s alive timeout, swept every 0.3 s
            ws2, first = await raw(s, broker.port, "silent", token="two")
            assert first == {"type": "OPEN"}  # the id was freed
            await ws2.close()
            await asyncio.sleep(2.0)
            await steady.offer("steady", {"type": "offer", "sdp": ""})  # still registered
            assert (await steady.wait_for(Signal)).peer == "steady"
            await legit_works(broker.port, ping_interval=0.5)

    run(scenario())


@pytest.mark.parametrize("broker", [("--rate", "100000", "--burst", "100000",
                                     "--expire-timeout", "30")], indirect=True)
def test_queue_exhaustion_for_one_destination(broker: Server) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            before = rss_kb(broker.pid)
            ws, _ = await raw(s, broker.port, "hoarder")
            blob = "q" * 2000
            for _ in range(2000):  # 4 MB aimed at one absent id
                await ws.send_str(json.dumps({"type": "OFFER", "dst": "sleeper", "payload": blob}))
            await ws.send_str('{"type":"HEARTBEAT"}')
            await asyncio.sleep(0.5)
            grown = rss_kb(broker.pid) - before
            sleeper, first = await raw(s, broker.port, "sleeper")
            got = 1
            with pytest.raises(TimeoutError):
                while True:
                    await sleeper.receive(timeout=1.0)
                    got += 1
            assert first == {"type": "OPEN"} and got <= 128  # 256 KiB per destination
            await legit_works(broker.port)
            print(f"queue exhaustion: broker RSS grew {grown} KiB for 4 MB sent; {got} frames kept")
            assert grown < RSS_GROWTH_LIMIT_KB, grown
            await ws.close()
            await sleeper.close()

    run(scenario())


def test_a_client_cut_off_for_abuse_still_reads_why(broker: Server) -> None:
    """A policy close ends the broker's side of TCP after the ERROR and close frames and drops
    what the client still sends: the client reads both frames even when it reads only after
    sending much more (closing with unread bytes would reset the connection and could destroy
    the frames before the client reads them)."""
    proto = ClientProtocol(parse_uri(f"ws://127.0.0.1:{broker.port}/peerjs?key=peerjs&id=cutoff&token=t"))
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as sock:
        proto.send_request(proto.connect())
        sock.sendall(b"".join(proto.data_to_send()))
        events: list[Any] = []
        while not any(isinstance(e, Frame) for e in events):  # the handshake answer, then OPEN
            proto.receive_data(sock.recv(65536))
            events += proto.events_received()
        for _ in range(200):  # far past the invalid-frame limit, in a few large writes
            proto.send_text(b"{nope")
        burst = b"".join(proto.data_to_send())
        with contextlib.suppress(OSError):
            for _ in range(20):
                sock.sendall(burst)
        time.sleep(0.5)  # the broker has cut us off by now; only then do we read
        data = b""
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):  # a reset here would raise ConnectionResetError
                data += chunk
        proto.receive_data(data)
        frames = [e for e in proto.events_received() if isinstance(e, Frame)]
    texts = [json.loads(f.data) for f in frames if f.opcode is Opcode.TEXT]
    assert texts[-1] == {"type": "ERROR", "payload": {"msg": "Too many invalid messages"}}
    closes = [Close.parse(f.data) for f in frames if f.opcode is Opcode.CLOSE]
    assert [c.code for c in closes] == [1008]
    asyncio.run(legit_works(broker.port))
