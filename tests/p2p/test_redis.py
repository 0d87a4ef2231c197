"""Scale-out: two broker processes share one id space through a real ``redis-server`` started on a
loopback port; a client on A reaches a client on B; a killed broker loses only its own sockets (its
presence expires, its peers come back elsewhere with their token); frames cross in batches, in
order, straight to the broker a presence cache names, and that cache is invalidated on takeover."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from enkrypted_p2p.errors import BrokerRefused
from enkrypted_p2p.signaling import ClientConfig, Expired, Refused, Signal, SignalingClient
from enkrypted_p2p.signaling._redis import LANES, RedisStore
from enkrypted_p2p.signaling._store import ClaimOutcome, QueuedMessage, QueueLimits
from tests.p2p.servers import Server, start_our_broker, stop

SDP = {"type": "offer", "sdp": "v=0"}


@pytest.fixture
def brokers(redis_server: int, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    extra = ("--redis", f"redis://127.0.0.1:{redis_server}/0", "--presence-ttl", "2",
             "--expire-timeout", "1", "--allow-discovery")
    a = start_our_broker(tmp_path, extra=extra)
    b = start_our_broker(tmp_path, extra=extra)
    yield a, b
    stop(a.proc)
    stop(b.proc)


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def cfg(server: Server, **kw: Any) -> ClientConfig:
    return ClientConfig(port=server.port, **kw)


def peers(server: Server) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/peerjs/peers", timeout=5) as r:
        return list(json.loads(r.read()))


def test_client_on_a_reaches_client_on_b(brokers: tuple[Server, Server]) -> None:
    a, b = brokers

    async def scenario() -> None:
        async with SignalingClient(cfg(a), "alice") as alice, \
                SignalingClient(cfg(b), "bob") as bob:
            cid = await alice.offer("bob", SDP)
            offer = await bob.wait_for(Signal)
            assert (offer.kind, offer.peer, offer.connection_id) == ("OFFER", "alice", cid)
            await bob.answer("alice", cid, {"type": "answer", "sdp": "v=0"})
            assert (await alice.wait_for(Signal)).kind == "ANSWER"
            with pytest.raises(BrokerRefused, match="ID-TAKEN"):  # one id space
                async with SignalingClient(cfg(b), "alice"):
                    pass
            # Queued in Redis by A, collected on B when carol registers there.
            await alice.offer("carol", SDP, connection_id="dc_q")
            await asyncio.sleep(0.3)
            async with SignalingClient(cfg(b), "carol") as carol:
                got = await carol.wait_for(Signal)
                assert (got.peer, got.connection_id) == ("alice", "dc_q")
            await bob.offer("nobody", SDP)
            assert (await bob.wait_for(Expired, timeout=5)).peer == "nobody"
            assert {"alice", "bob"} <= set(peers(a)) and set(peers(a)) == set(peers(b))

    run(scenario())


def test_killed_broker_presence_expires_and_peers_return_with_their_token(
    brokers: tuple[Server, Server], redis_server: int
) -> None:
    a, b = brokers
    store = redis.Redis(port=redis_server, decode_responses=True)

    async def scenario() -> None:
        alice = SignalingClient(cfg(a, max_reconnects=0), "alice")
        await alice.open()
        token = alice.token
        async with SignalingClient(cfg(b), "bob") as bob:
            assert store.exists("enkrypted:broker:p:alice")
            a.proc.send_signal(signal.SIGKILL)  # no goodbye: its presence must expire
            a.proc.wait(5)
            await asyncio.sleep(0.2)
            with pytest.raises(BrokerRefused, match="ID-TAKEN"):  # still held, another token
                async with SignalingClient(cfg(b), "alice"):
                    pass
            deadline = time.monotonic() + 6
            while store.exists("enkrypted:broker:p:alice") and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert not store.exists("enkrypted:broker:p:alice")  # expired after presence-ttl
            assert "alice" not in peers(b) and "bob" in peers(b)  # B refreshed bob meanwhile
            async with SignalingClient(cfg(b), "alice", token) as back:  # the same token, on B
                await bob.offer("alice", SDP)
                assert (await back.wait_for(Signal)).peer == "bob"
        await alice.close()

    run(scenario())


def test_token_takeover_across_brokers_before_expiry(brokers: tuple[Server, Server]) -> None:
    a, b = brokers

    async def scenario() -> None:
        first = SignalingClient(cfg(a), "dora")
        await first.open()
        try:
            async with SignalingClient(cfg(b), "dora", first.token) as moved, \
                    SignalingClient(cfg(a), "eve") as eve:
                refused = await first.wait_for(Refused, timeout=5)
                assert refused.kind == "TAKEN-OVER"  # A closed its socket when B took over
                await eve.offer("dora", SDP)
                assert (await moved.wait_for(Signal)).peer == "eve"
        finally:
            await first.close()

    run(scenario())


def test_queue_bounds_hold_across_brokers(redis_server: int, tmp_path: Path) -> None:
    extra = ("--redis", f"redis://127.0.0.1:{redis_server}/0", "--expire-timeout", "30",
             "--rate", "100000", "--burst", "100000")
    a = start_our_broker(tmp_path, extra=extra)
    b = start_our_broker(tmp_path, extra=extra)
    store = redis.Redis(port=redis_server, decode_responses=True)

    async def scenario() -> None:
        async with SignalingClient(cfg(a), "hoarder") as hoarder:
            blob = "q" * 2000
            for i in range(600):  # 1.2 MB aimed at one absent id
                await hoarder.send("OFFER", "sleeper", {"connectionId": f"dc_{i}", "type": "data",
                                                        "sdp": {"type": "offer", "sdp": blob}})  # type: ignore[arg-type]
            await asyncio.sleep(1.0)
            queued = int(store.hget("enkrypted:broker:qm:sleeper", "bytes") or 0)
            assert 0 < queued <= 256 * 1024 and store.llen("enkrypted:broker:q:sleeper") <= 256
            async with SignalingClient(cfg(b, max_pending_signals=1000), "sleeper") as sleeper:
                got = 0
                with pytest.raises(TimeoutError):
                    while True:
                        await sleeper.wait_for(Signal, timeout=1.0)
                        got += 1
                assert 100 <= got <= 128  # 256 KiB of ~2 KB frames
            assert int(store.get("enkrypted:broker:qtotal") or 0) == 0  # drained, accounted

    try:
        run(scenario())
    finally:
        stop(a.proc)
        stop(b.proc)


# ---------------------------------------------------------------------------- relay without a
# round trip per frame: the forwards of one loop tick leave in one pipeline, straight to the broker
# the presence cache names; the cache is invalidated on release and takeover.
LIMITS = QueueLimits(max_msgs_per_dst=256, max_bytes_per_dst=256 * 1024,
                     max_bytes_total=1024 * 1024, max_queues=100)


class Node:
    """One RedisStore in this process, its inbox and kicks recorded (a broker without sockets)."""

    def __init__(self, port: int, name: str, cache_ttl: float = 30.0) -> None:
        self.store = RedisStore(f"redis://127.0.0.1:{port}/0", LIMITS, node=name,
                                presence_ttl=60.0, cache_ttl=cache_ttl)
        self.inbox: list[QueuedMessage] = []
        self.kicks: list[tuple[str, str]] = []

    async def start(self) -> Node:
        async def inbox(messages: list[QueuedMessage]) -> None:
            self.inbox.extend(messages)

        async def kick(peer_id: str, token: str) -> None:
            self.kicks.append((peer_id, token))

        await self.store.start(inbox, kick)
        return self

    async def send(self, src: str, dst: str, text: str) -> None:
        await self.store.forward(QueuedMessage(src, dst, text), time.time())


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def test_presence_cache_is_invalidated_on_takeover_and_release(redis_server: int) -> None:
    async def scenario() -> None:
        a, b, c = [await Node(redis_server, name).start() for name in ("A", "B", "C")]
        try:
            assert await b.store.claim("dora", "tok", time.time()) is ClaimOutcome.NEW
            await a.send("eve", "dora", "1")
            await until(lambda: len(b.inbox) == 1)
            assert a.store.cache.get("dora", time.monotonic()) == "B"  # learned from the script
            await a.send("eve", "dora", "2")  # a cache hit: published straight to B
            await until(lambda: len(b.inbox) == 2)
            assert (a.store.scripted, a.store.published) == (1, 1)
            # C takes dora over with her token: B is kicked, every cache forgets dora (the cache
            # ttl is 30 s here, so only the announcement can have done it).
            assert await c.store.claim("dora", "tok", time.time()) is ClaimOutcome.TAKEOVER
            await until(lambda: a.store.cache.get("dora", time.monotonic()) is None)
            assert b.kicks == [("dora", "tok")]
            await a.send("eve", "dora", "3")
            await until(lambda: len(c.inbox) == 1)
            assert [m.text for m in b.inbox] == ["1", "2"] and c.inbox[0].text == "3"
            assert a.store.cache.get("dora", time.monotonic()) == "C"
            await c.store.release("dora", "tok", clear_queue=False)
            await until(lambda: a.store.cache.get("dora", time.monotonic()) is None)
        finally:
            for node in (a, b, c):
                await node.store.close()

    run(scenario())


def test_frames_for_a_dead_brokers_id_are_queued_until_it_comes_back(redis_server: int) -> None:
    store = redis.Redis(port=redis_server, decode_responses=True)

    async def scenario() -> None:
        a, d = [await Node(redis_server, name).start() for name in ("A", "D")]
        b = await Node(redis_server, "B").start()
        try:
            await d.store.claim("zed", "ztok", time.time())
            await a.send("amy", "zed", '{"n":1}')
            await until(lambda: len(d.inbox) == 1)
            assert a.store.cache.get("zed", time.monotonic()) == "D"
            await d.store.close()  # D dies: no release, its presence stays until it expires
            await a.send("amy", "zed", '{"n":2}')  # the cache says D: published, nobody heard it
            await a.send("amy", "zed", '{"n":3}')
            await until(lambda: store.llen("enkrypted:broker:q:zed") == 2)
            assert a.store.cache.get("zed", time.monotonic()) is None  # D forgotten
            store.delete("enkrypted:broker:p:zed")  # what presence_ttl does (tested with brokers)
            assert await b.store.claim("zed", "ztok", time.time()) is ClaimOutcome.NEW
            assert [m.text for m in await b.store.drain("zed")] == ['{"n":2}', '{"n":3}']
        finally:
            await a.store.close()
            await b.store.close()

    run(scenario())


def test_frames_for_many_ids_keep_their_order_per_id_while_lanes_flush_side_by_side(
        redis_server: int) -> None:
    """A destination id always falls in one lane; the lanes flush concurrently, each one pipeline
    at a time, so every id still gets its frames in the order they were submitted."""
    ids = [f"r{i}" for i in range(16)]

    async def scenario() -> None:
        a, b = [await Node(redis_server, name).start() for name in ("A", "B")]
        try:
            for peer_id in ids:
                assert await b.store.claim(peer_id, "tok", time.time()) is ClaimOutcome.NEW
            for seq in range(100):  # one loop tick: 1,600 frames for 16 ids, interleaved
                for peer_id in ids:
                    a.store.submit(QueuedMessage("s", peer_id, str(seq)), time.monotonic())
            await until(lambda: len(b.inbox) == 100 * len(ids), timeout=20)
            for peer_id in ids:
                assert [int(m.text) for m in b.inbox if m.dst == peer_id] == list(range(100))
            assert len({hash(peer_id) % LANES for peer_id in ids}) > 1  # several lanes were used
            assert a.store.flushes >= len({hash(peer_id) % LANES for peer_id in ids})
        finally:
            await a.store.close()
            await b.store.close()

    run(scenario())


@pytest.mark.e2e
def test_order_per_pair_holds_under_batching_across_brokers(redis_server: int, tmp_path: Path) -> None:
    extra = ("--redis", f"redis://127.0.0.1:{redis_server}/0", "--rate", "100000",
             "--burst", "100000")
    a = start_our_broker(tmp_path, extra=extra)
    b = start_our_broker(tmp_path, extra=extra)
    pairs = 8

    async def scenario() -> None:
        base_a, base_b = f"ws://127.0.0.1:{a.port}/peerjs?key=peerjs", f"ws://127.0.0.1:{b.port}/peerjs?key=peerjs"
        async with aiohttp.ClientSession() as s:
            senders = [await s.ws_connect(f"{base_a}&id=s{i}&token=t") for i in range(pairs)]
            receivers = [await s.ws_connect(f"{base_b}&id=r{i}&token=t") for i in range(pairs)]
            for ws in senders + receivers:
                assert json.loads((await ws.receive(timeout=5)).data) == {"type": "OPEN"}
            count = 800
            for seq in range(count):  # the pairs interleaved: many frames per tick, several lanes
                for i, ws in enumerate(senders):
                    await ws.send_str(json.dumps({"type": "CANDIDATE", "dst": f"r{i}",
                                                  "payload": {"seq": seq}}))

            async def collect(i: int) -> list[int]:
                got: list[int] = []
                while len(got) < count:
                    frame = json.loads((await receivers[i].receive(timeout=10)).data)
                    assert frame["src"] == f"s{i}"
                    got.append(frame["payload"]["seq"])
                return got

            for got in await asyncio.gather(*(collect(i) for i in range(pairs))):
                assert got == list(range(count))  # every frame, in order per (src, dst)
            for ws in senders + receivers:
                await ws.close()

    try:
        run(scenario(), timeout=120)
    finally:
        stop(a.proc)
        stop(b.proc)
