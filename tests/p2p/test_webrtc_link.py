"""Real aiortc data channels between two endpoints (one process here; two processes in
test_chat_processes.py), signaled through our broker started by the test on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from enkrypted_p2p.errors import P2PNetworkError, PeerUnavailable, SignalingError
from enkrypted_p2p.webrtc import DataChannelLink, WebRTCEndpoint, WebRTCSettings
from enkrypted_shell.contracts import Link, LinkBroken, LinkClosed, LinkClosedLocally, NetworkError
from tests.p2p.servers import Server, start_our_broker, stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_our_broker(tmp_path_factory.mktemp("broker"))
    yield server
    stop(server.proc)


def settings(server: Server, **overrides: object) -> WebRTCSettings:
    return WebRTCSettings.loopback(f"ws://127.0.0.1:{server.port}/", connect_timeout=15.0,
                                   **overrides)


async def pair(server: Server) -> tuple[WebRTCEndpoint, WebRTCEndpoint, DataChannelLink,
                                        DataChannelLink]:
    alice = await WebRTCEndpoint.open(settings(server))
    bob = await WebRTCEndpoint.open(settings(server))
    accepted = bob.incoming().__anext__()
    link_ab = await alice.connect(bob.local_id)
    link_ba = await asyncio.wait_for(accepted, 15)
    return alice, bob, link_ab, link_ba


def run(coro: object, timeout: float = 60) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def test_connect_send_both_ways_and_close_reasons(broker: Server) -> None:
    async def scenario() -> None:
        alice, bob, ab, ba = await pair(broker)
        try:
            assert isinstance(ab, Link) and ab.peer_id == bob.local_id
            assert ba.peer_id == alice.local_id and ab.max_pdu_bytes == 256 * 1024
            for i in range(50):
                await ab.send(b"ping %d" % i)
            assert [await ba.receive() for _ in range(50)] == [b"ping %d" % i for i in range(50)]
            big = bytes(range(256)) * 1000
            await ba.send(big)
            assert await ab.receive() == big
            assert alice.dropped_candidates == 0 and bob.dropped_candidates == 0
            await ab.close()
            with pytest.raises(LinkClosedLocally):
                await ab.send(b"x")
            with pytest.raises(LinkBroken):  # bob learns the peer closed it
                await asyncio.wait_for(ba.receive(), 10)
            assert ab.close_reason == "closed locally" and ba.close_reason
        finally:
            await alice.aclose()
            await bob.aclose()

    run(scenario())


def test_unknown_peer_is_unavailable(broker: Server) -> None:
    async def scenario() -> None:
        alice = await WebRTCEndpoint.open(settings(broker))
        try:
            started = time.monotonic()
            with pytest.raises(PeerUnavailable) as info:
                await alice.connect("nobody-here", timeout=12)
            assert isinstance(info.value, NetworkError) and isinstance(info.value, P2PNetworkError)
            assert time.monotonic() - started < 11  # EXPIRE (5 s), not the timeout
        finally:
            await alice.aclose()

    run(scenario())


def test_broker_down_is_a_signaling_error(tmp_path: Path) -> None:
    from tests.p2p.servers import free_port

    async def scenario() -> None:
        cfg = WebRTCSettings.loopback(f"ws://127.0.0.1:{free_port()}/")
        with pytest.raises(SignalingError):
            await WebRTCEndpoint.open(cfg, peer_id="alice", timeout=2)

    run(scenario())


def test_killed_data_channel_breaks_the_link(broker: Server) -> None:
    async def scenario() -> None:
        alice, bob, ab, ba = await pair(broker)
        try:
            await ab.send(b"before")
            assert await ba.receive() == b"before"
            await ba.kill_transport()  # bob's side dies mid-conversation
            with pytest.raises(LinkBroken):
                for _ in range(200):
                    await ab.send(b"x" * 1000)
                    await asyncio.sleep(0.05)
                await asyncio.wait_for(ab.receive(), 40)
            with pytest.raises(LinkClosed):
                await ab.receive()
        finally:
            await alice.aclose()
            await bob.aclose()

    run(scenario(), 90)


def test_backpressure_bounds_the_send_buffer(broker: Server) -> None:
    async def scenario() -> None:
        alice = await WebRTCEndpoint.open(settings(broker, high_water=256 * 1024,
                                                   low_water=64 * 1024))
        bob = await WebRTCEndpoint.open(settings(broker))
        try:
            accepted = bob.incoming().__anext__()
            ab = await alice.connect(bob.local_id)
            ba = await asyncio.wait_for(accepted, 15)
            chunk = b"b" * 65536
            peak = 0

            async def reader() -> int:
                got = 0
                while got < 4 * 1024 * 1024:
                    got += len(await ba.receive())
                return got

            task = asyncio.ensure_future(reader())
            for _ in range(64):  # 4 MiB
                await ab.send(chunk)
                peak = max(peak, ab.buffered_amount)
            assert await asyncio.wait_for(task, 60) == 4 * 1024 * 1024
            assert peak <= 256 * 1024 + 65536
        finally:
            await alice.aclose()
            await bob.aclose()

    run(scenario(), 90)


def test_remote_candidates_outside_the_allowed_networks_are_dropped(broker: Server) -> None:
    async def scenario() -> None:
        # both accept candidates from 10.0.0.0/8 only: every signaled loopback candidate is
        # dropped on both sides, nobody sends a check, connect fails as "unavailable".
        # (A peer-reflexive candidate - learned from a check the peer sent us - is not filtered:
        # answering an address that already reached us sends nothing to a new destination.)
        only_10 = settings(broker, remote_networks=("10.0.0.0/8",))
        alice = await WebRTCEndpoint.open(only_10)
        bob = await WebRTCEndpoint.open(only_10)
        try:
            with pytest.raises(PeerUnavailable):
                await alice.connect(bob.local_id, timeout=6)
            assert alice.dropped_candidates >= 1 and bob.dropped_candidates >= 1
        finally:
            await alice.aclose()
            await bob.aclose()

    run(scenario())


def test_selected_pair_is_loopback_host(broker: Server) -> None:
    async def scenario() -> None:
        alice, bob, ab, _ba = await pair(broker)
        try:
            ice = ab.peer_connection.sctp.transport.transport  # type: ignore[union-attr]
            nominated = ice._connection._nominated  # aioice: component -> CandidatePair
            local, remote = next(iter(nominated.values())).local_candidate, \
                next(iter(nominated.values())).remote_candidate
            assert local.host == "127.0.0.1" and remote.host == "127.0.0.1"
            assert local.type == "host"
        finally:
            await alice.aclose()
            await bob.aclose()

    run(scenario())


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    """coturn on 127.0.0.1 with long-term credentials u:p (aiortc-measurements.md §4)."""
    import shutil
    import subprocess

    from tests.p2p.servers import free_port

    binary = shutil.which("turnserver")
    if binary is None:
        pytest.fail("coturn is missing: run make test (tools/setup/system-packages.sh)")
    port = free_port()
    log = tmp_path / "turn.log"
    proc = subprocess.Popen([binary, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
                             f"--listening-port={port}", "--lt-cred-mech", "--user=u:p",
                             "--realm=test", "--no-tls", "--no-dtls", "--allow-loopback-peers",
                             "--no-cli", f"--log-file={log}", "--simple-log",
                             f"--pidfile={tmp_path / 'turn.pid'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "listener opened on" not in (
                log.read_text(errors="replace") if log.exists() else ""):
            if proc.poll() is not None:
                raise RuntimeError(f"turnserver exited {proc.returncode}")
            time.sleep(0.05)
        time.sleep(0.2)
        yield port
    finally:
        stop(proc)  # type: ignore[arg-type]


def test_relay_only_through_coturn(broker: Server, coturn: int) -> None:
    from enkrypted_p2p.webrtc import IceServer

    turn = (IceServer(f"turn:127.0.0.1:{coturn}?transport=udp", "u", "p"),)

    async def scenario() -> None:
        alice = await WebRTCEndpoint.open(settings(broker, ice_servers=turn, relay_only=True))
        bob = await WebRTCEndpoint.open(settings(broker, ice_servers=turn, relay_only=True))
        try:
            accepted = bob.incoming().__anext__()
            ab = await alice.connect(bob.local_id, timeout=20)
            ba = await asyncio.wait_for(accepted, 20)
            for link in (ab, ba):
                ice = link.peer_connection.sctp.transport.transport  # type: ignore[union-attr]
                chosen = next(iter(ice._connection._nominated.values()))
                assert chosen.local_candidate.type == "relay"
                assert chosen.remote_candidate.type == "relay"
                assert {c.type for c in ice.iceGatherer.getLocalCandidates()} == {"relay"}
            await ab.send(b"via the relay")
            assert await asyncio.wait_for(ba.receive(), 10) == b"via the relay"
        finally:
            await alice.aclose()
            await bob.aclose()

    run(scenario(), 60)
