"""Scale-out: two broker processes share one id space through a real ``redis-server`` started on a
loopback port; a client on A reaches a client on B; a killed broker loses only its own sockets (its
presence expires, its peers come back elsewhere with their token)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from enkrypted_p2p.errors import BrokerRefused
from enkrypted_p2p.signaling import ClientConfig, Expired, Refused, Signal, SignalingClient
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
