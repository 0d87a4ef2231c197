"""Our client <-> our client through the real npm ``peer`` 1.0.2 and through our broker, both
started as processes on loopback: registration, OFFER/ANSWER/CANDIDATE relayed, EXPIRE, ID-TAKEN,
reconnect with the token (messages queued meanwhile are received), key and path not the default."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from enkrypted_p2p.errors import BrokerRefused
from enkrypted_p2p.signaling import (
    ClientConfig,
    Expired,
    MessageType,
    Opened,
    Serialization,
    Signal,
    SignalingClient,
)
from tests.p2p.servers import Server, start_npm_peer, start_our_broker, stop

SDP_OFFER = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"}
SDP_ANSWER = {"type": "answer", "sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\n"}
CANDIDATE = {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
             "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}


@pytest.fixture(params=["npm-peer", "ours"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """Each kind with a 1 s expire_timeout so EXPIRE comes quickly (the default is unit-tested)."""
    if request.param == "npm-peer":
        srv = start_npm_peer(tmp_path, extra=("--expire_timeout", "1000", "--allow_discovery"))
    else:
        srv = start_our_broker(tmp_path, extra=("--expire-timeout", "1", "--allow-discovery"))
    yield srv
    stop(srv.proc)


@pytest.fixture(params=["npm-peer", "ours"])
def custom_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """Key ``enk-test`` and path ``/signal/`` instead of the defaults."""
    start = start_npm_peer if request.param == "npm-peer" else start_our_broker
    srv = start(tmp_path, key="enk-test", path="/signal/")
    yield srv
    stop(srv.proc)


def config(server: Server, **kw: object) -> ClientConfig:
    return ClientConfig(port=server.port, key=server.key, path=server.path, **kw)  # type: ignore[arg-type]


def run(coro: object, timeout: float = 30.0) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


async def _exchange(cfg: ClientConfig) -> None:
    async with SignalingClient(cfg) as alice, SignalingClient(cfg, "bob-1") as bob:
        assert alice.peer_id != "bob-1" and len(alice.peer_id) == 36  # a UUID from GET /id
        cid = await alice.offer("bob-1", SDP_OFFER, serialization=Serialization.JSON,
                                reliable=True, metadata={"hello": [1, 2]}, label="chat")
        offer = await bob.wait_for(Signal)
        assert (offer.kind, offer.peer, offer.connection_id) == ("OFFER", alice.peer_id, cid)
        assert offer.offer is not None and offer.offer.serialization is Serialization.JSON
        assert offer.offer.reliable and offer.offer.label == "chat"
        assert offer.offer.metadata == {"hello": [1, 2]} and offer.offer.sdp == SDP_OFFER
        await bob.answer(alice.peer_id, cid, SDP_ANSWER)
        answer = await alice.wait_for(Signal)
        assert (answer.kind, answer.peer, answer.payload["sdp"]) == ("ANSWER", "bob-1", SDP_ANSWER)
        await alice.candidate("bob-1", cid, CANDIDATE)
        cand = await bob.wait_for(Signal)
        assert (cand.kind, cand.connection_id, cand.payload["candidate"]) == ("CANDIDATE", cid, CANDIDATE)


def test_register_and_relay_offer_answer_candidate(server: Server) -> None:
    run(_exchange(config(server)))


def test_non_default_key_and_path(custom_server: Server) -> None:
    run(_exchange(config(custom_server)))
    base = f"http://127.0.0.1:{custom_server.port}/signal/"
    with urllib.request.urlopen(base + "enk-test/id", timeout=5) as response:
        assert len(response.read().decode()) == 36
    with urllib.request.urlopen(base, timeout=5) as response:
        assert json.loads(response.read())["name"] == "PeerJS Server"

    async def wrong_key() -> None:
        cfg = ClientConfig(port=custom_server.port, key="peerjs", path="/signal/")
        with pytest.raises(BrokerRefused) as info:
            async with SignalingClient(cfg, "eve"):
                pass
        assert (info.value.kind, info.value.message) == ("ERROR", "Invalid key provided")

    run(wrong_key())


def test_expire_for_an_absent_peer(server: Server) -> None:
    async def scenario() -> None:
        async with SignalingClient(config(server), "alice") as alice:
            await alice.offer("nobody-home", SDP_OFFER)
            await alice.candidate("nobody-home", "dc_x", CANDIDATE)
            expired = await alice.wait_for(Expired, timeout=5)
            assert expired.peer == "nobody-home"
            with pytest.raises(TimeoutError):  # once per src/dst pair
                await alice.wait_for(Expired, timeout=2)

    run(scenario())


def test_id_taken_for_another_token(server: Server) -> None:
    async def scenario() -> None:
        async with SignalingClient(config(server), "carol") as carol:
            with pytest.raises(BrokerRefused) as info:
                async with SignalingClient(config(server), "carol"):
                    pass
            assert (info.value.kind, info.value.message) == ("ID-TAKEN", "ID is taken")
            async with SignalingClient(config(server), "dave") as dave:  # carol is unharmed
                await dave.offer("carol", SDP_OFFER)
                assert (await carol.wait_for(Signal)).peer == "dave"

    run(scenario())


def test_reconnect_with_token_receives_messages_queued_meanwhile(server: Server) -> None:
    async def scenario() -> None:
        slow = config(server, reconnect_delays=(1.5,))
        async with SignalingClient(config(server), "alice") as alice, \
                SignalingClient(slow, "bob") as bob:
            token = bob.token
            await bob.drop()
            await asyncio.sleep(0.5)  # the server has seen the close; bob is back at 1.5 s
            cid = await alice.offer("bob", SDP_OFFER)
            await alice.candidate("bob", cid, CANDIDATE)
            opened = await bob.wait_for(Opened, timeout=10)
            assert opened.peer_id == "bob" and bob.token == token
            got = [await bob.wait_for(Signal, timeout=5) for _ in range(2)]
            assert [(s.kind, s.peer, s.connection_id) for s in got] == [
                ("OFFER", "alice", cid), ("CANDIDATE", "alice", cid)]

    run(scenario())


def test_same_token_takes_the_session_over(server: Server) -> None:
    async def scenario() -> None:
        first = SignalingClient(config(server), "erin")
        await first.open()
        try:
            async with SignalingClient(config(server), "erin", first.token) as second, \
                    SignalingClient(config(server), "frank") as frank:
                await frank.send(MessageType.OFFER, "erin",
                                 {"sdp": SDP_OFFER, "type": "data", "connectionId": "dc_t1",
                                  "serialization": "raw"})
                assert (await second.wait_for(Signal)).peer == "frank"
        finally:
            await first.close()

    run(scenario())


def test_http_routes(server: Server) -> None:
    async def scenario() -> None:
        async with SignalingClient(config(server), "gina"):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/peerjs/peers",
                                        timeout=5) as response:
                assert "gina" in json.loads(response.read())

    run(scenario())
