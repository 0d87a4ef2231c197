"""Fault tests of the chat service over real aiortc data channels through our broker on loopback:
the data channel killed mid-conversation (its RTCPeerConnection closed), the broker process
killed and restarted by PID, and one peer process SIGKILLed and restarted with its saved state.
Each time: nothing lost, nothing duplicated, counts asserted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.chat import EndpointChat, ReconnectPolicy
from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings
from enkrypted_shell.contracts import (
    AppContext,
    ChatEvent,
    ChatMessage,
    ChatReceipt,
    CryptoService,
    SessionEstablished,
)
from tests.p2p.servers import SRC, Server, stop, wait_port
from tests.p2p.test_chat_processes import read_event, start
from tools.loopback import free_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

POLICY = ReconnectPolicy(base_s=0.2, max_delay_s=2.0, max_attempts=40, window_s=120.0)


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


def broker_on(port: int, tmp: Path) -> Server:
    """Our broker on ``port`` (the same port again after a restart)."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in SRC)}
    log = tmp / f"broker-{port}-{len(list(tmp.glob('broker-*')))}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "enkrypted_p2p.signaling", "--port",
                                 str(port), "--key", "peerjs", "--path", "/"],
                                stdout=subprocess.DEVNULL, stderr=err, env=environ)
    try:
        wait_port(port, proc)
    except BaseException:
        stop(proc)  # type: ignore[arg-type]
        raise
    return Server(proc, port, "peerjs", "/", log)  # type: ignore[arg-type]


class Side:
    def __init__(self, chat: EndpointChat, endpoint: WebRTCEndpoint) -> None:
        self.chat, self.endpoint = chat, endpoint
        self.events: list[ChatEvent] = []
        self.task = asyncio.ensure_future(self._collect())

    async def _collect(self) -> None:
        async for event in self.chat.events():
            self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def side(url: str, crypto: CryptoService, peer_id: str | None = None) -> Side:
    endpoint = await WebRTCEndpoint.open(WebRTCSettings.loopback(url, connect_timeout=15.0),
                                         peer_id)
    chat = await EndpointChat.open(endpoint, crypto, crypto.new_identity(),
                                   context=AppContext(Path("/nonexistent")), reconnect=POLICY)
    return Side(chat, endpoint)


async def until(check: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def kill_data_channel(endpoint: WebRTCEndpoint) -> None:
    for link in list(endpoint.links):
        await link.peer_connection.close()  # the SCTP association and DTLS go with it


def run(scenario: Callable[[], Awaitable[None]], timeout: float = 240) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def test_a_killed_data_channel_resumes_with_nothing_lost_or_duplicated(
        tmp_path: Path, crypto: CryptoService) -> None:
    server = broker_on(free_port(), tmp_path)
    url = f"ws://127.0.0.1:{server.port}/"

    async def scenario() -> None:
        alice, bob = await side(url, crypto), await side(url, crypto)
        try:
            await alice.chat.connect(bob.chat.local_id, 30)
            sent: list[str] = []
            for round_ in range(2):
                sent += [await alice.chat.send_text(bob.chat.local_id, f"r{round_}-{i}")
                         for i in range(5)]
                killed = time.monotonic()
                await kill_data_channel(alice.endpoint)  # mid-conversation
                await until(lambda n=round_ + 2: len(alice.of(SessionEstablished)) == n, 90)
                print(f"data channel killed -> resumed in {time.monotonic() - killed:.2f} s")
            sent += [await alice.chat.send_text(bob.chat.local_id, "after") for _ in range(1)]
            await until(lambda: len(alice.of(ChatReceipt)) == len(sent), 60)
            await asyncio.sleep(0.5)
            assert sorted(m.message_id for m in bob.of(ChatMessage)) == sorted(sent)
            assert len(alice.of(ChatReceipt)) == len(sent) == 11
            assert [e.resumed for e in alice.of(SessionEstablished)] == [False, True, True]
        finally:
            await alice.chat.aclose()
            await bob.chat.aclose()

    try:
        run(scenario)
    finally:
        stop(server.proc)  # type: ignore[arg-type]


def test_the_broker_restarts_and_the_chat_goes_on(tmp_path: Path, crypto: CryptoService) -> None:
    """The broker is killed by PID: the data channel carries on without it; it comes back on
    the same port, the signaling sockets reconnect with their ids, and a data channel killed
    afterwards is redialled through the new broker and resumed."""
    port = free_port()
    server = broker_on(port, tmp_path)
    url = f"ws://127.0.0.1:{port}/"

    async def scenario() -> None:
        nonlocal server
        alice, bob = await side(url, crypto), await side(url, crypto)
        try:
            await alice.chat.connect(bob.chat.local_id, 30)
            sent = [await alice.chat.send_text(bob.chat.local_id, "before")]
            stop(server.proc, signal.SIGKILL)  # type: ignore[arg-type]
            sent.append(await alice.chat.send_text(bob.chat.local_id, "broker down"))
            await until(lambda: len(alice.of(ChatReceipt)) == 2, 30)
            server = broker_on(port, tmp_path)
            await asyncio.sleep(3.0)  # the signaling clients' reconnect delays
            await kill_data_channel(alice.endpoint)
            await until(lambda: len(alice.of(SessionEstablished)) == 2, 90)
            sent.append(await alice.chat.send_text(bob.chat.local_id, "after the restart"))
            await until(lambda: len(alice.of(ChatReceipt)) == 3, 30)
            assert [m.message_id for m in bob.of(ChatMessage)] == sent
            assert alice.of(SessionEstablished)[-1].resumed
        finally:
            await alice.chat.aclose()
            await bob.chat.aclose()

    try:
        run(scenario)
    finally:
        stop(server.proc)  # type: ignore[arg-type]


def test_a_peer_process_killed_and_restarted_with_its_saved_state(
        tmp_path: Path, crypto: CryptoService) -> None:
    server = broker_on(free_port(), tmp_path)
    url = f"ws://127.0.0.1:{server.port}/"
    state = tmp_path / "bob-state"
    state.mkdir()
    args = ("stateful", "--broker", url, "--id", "bob-peer", "--state-dir", str(state))
    procs: list[subprocess.Popen[str]] = []

    async def scenario() -> None:
        bob = start(*args, "--count", "100")
        procs.append(bob)
        assert (await asyncio.to_thread(read_event, bob, 60))["event"] == "listening"
        alice = await side(url, crypto, "alice-peer")
        try:
            await alice.chat.connect("bob-peer", 30)
            before = [await alice.chat.send_text("bob-peer", f"n{i}") for i in range(5)]
            await until(lambda: len(alice.of(ChatReceipt)) == 5, 30)
            os.kill(bob.pid, signal.SIGKILL)
            await asyncio.to_thread(bob.wait, 10)
            during = [await alice.chat.send_text("bob-peer", f"d{i}") for i in range(3)]
            bob2 = start(*args, "--count", "3", "--dial", "alice-peer")
            procs.append(bob2)
            lines = [await asyncio.to_thread(read_event, bob2, 90) for _ in range(2)]
            assert lines[0]["event"] == "listening"
            assert lines[1] == {"event": "ready", "peer": "alice-peer", "resumed": True}
            got = []
            while len(got) < 3:
                event = await asyncio.to_thread(read_event, bob2, 60)
                if event["event"] == "message":
                    got.append(event)
            assert [e["messageId"] for e in got] == during  # once each, none of before
            await until(lambda: len(alice.of(ChatReceipt)) == 8, 30)
            assert sorted(r.message_id for r in alice.of(ChatReceipt)) == sorted(before + during)
            assert await asyncio.to_thread(bob2.wait, 30) == 0
        finally:
            await alice.chat.aclose()

    try:
        run(scenario)
        assert procs[0].stdout is not None
        first_run = [json.loads(x) for x in procs[0].stdout.read().splitlines()]
        assert [e["text"] for e in first_run if e["event"] == "message"] == [
            f"n{i}" for i in range(5)]
    finally:
        for proc in procs:
            stop(proc)  # type: ignore[arg-type]
        stop(server.proc)  # type: ignore[arg-type]
