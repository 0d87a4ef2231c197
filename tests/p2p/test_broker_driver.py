"""The broker's driver (``_server.py`` + ``_socket.py``, websockets' sans-I/O protocol under an
asyncio.Protocol), in process on loopback: frames forwarded as they came with only ``src`` put in
front, forged ``src`` never forwarded, HTTP routes, timeouts, fragments, order behind a slow store,
and what an idle socket costs."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from enkrypted_p2p.signaling import BrokerConfig, BrokerServer, MemoryStore, _socket
from enkrypted_p2p.signaling._server import queue_limits
from enkrypted_p2p.signaling._store import ClaimOutcome

CONFIG = BrokerConfig(max_conns_per_ip=10_000, concurrent_limit=10_000)


def run(coro: Awaitable[Any], timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


@asynccontextmanager
async def broker(store: MemoryStore | None = None) -> AsyncIterator[BrokerServer]:
    server = BrokerServer(CONFIG, store)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


async def open_ws(session: aiohttp.ClientSession, port: int, peer_id: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"ws://127.0.0.1:{port}/peerjs?key=peerjs&id={peer_id}&token=t")
    first = await ws.receive(timeout=10)
    assert json.loads(first.data) == {"type": "OPEN"}
    return ws


async def texts(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[str]:
    return [(await ws.receive(timeout=10)).data for _ in range(count)]


def test_a_plain_frame_is_forwarded_byte_for_byte_with_src_put_in_front() -> None:
    async def scenario() -> None:
        async with broker() as server, aiohttp.ClientSession() as s:
            a, b = await open_ws(s, server.port, "a"), await open_ws(s, server.port, "b")
            sent = '{"type":"OFFER","dst":"b","payload":{"sdp":"v=0  x","n":1.50,"u":"\\u00e9"}}'
            await a.send_str(sent)
            assert await texts(b, 1) == ['{"src":"a",' + sent[1:]]  # 1.50 and \\u00e9 kept: no re-encoding

    run(scenario())


@pytest.mark.parametrize("sent", [
    '{"type":"OFFER","dst":"b","src":"mallory","payload":1}',
    '{"type":"OFFER","dst":"b","\\u0073rc":"mallory","payload":1}',
    '{"src":"mallory","type":"OFFER","dst":"b","src":"mallory"}',
    '{"type":"OFFER","dst":"b","payload":1,"extra":"mallory"}',
    ' {"type":"OFFER","dst":"b","payload":1}',
])
def test_a_forged_src_or_other_key_is_never_forwarded(sent: str) -> None:
    async def scenario() -> None:
        async with broker() as server, aiohttp.ClientSession() as s:
            a, b = await open_ws(s, server.port, "a"), await open_ws(s, server.port, "b")
            await a.send_str(sent)
            (got,) = await texts(b, 1)
            pairs = json.loads(got, object_pairs_hook=list)
            assert [value for key, value in pairs if key == "src"] == ["a"]  # exactly one src
            assert {key for key, _ in pairs} <= {"type", "src", "dst", "payload"}
            assert "mallory" not in got

    run(scenario())


def test_nan_and_infinity_are_invalid_frames_not_forwarded() -> None:
    async def scenario() -> None:
        async with broker() as server, aiohttp.ClientSession() as s:
            a, b = await open_ws(s, server.port, "a"), await open_ws(s, server.port, "b")
            for constant in ("NaN", "Infinity", "-Infinity"):
                await a.send_str('{"type":"OFFER","dst":"b","payload":' + constant + '}')
            await a.send_str('{"type":"OFFER","dst":"b","payload":"ok"}')
            assert json.loads((await texts(b, 1))[0])["payload"] == "ok"
            assert server.core.stats.invalid == 3

    run(scenario())


def _http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_http_routes_answer_with_cors_and_close_the_connection() -> None:
    async def scenario() -> None:
        async with broker() as server:
            def get(path: str, version: str = "1.1") -> bytes:
                return _http(server.port, f"GET {path} HTTP/{version}\r\nHost: x\r\n"
                                          "Origin: https://app.example\r\n\r\n".encode())
            answers = await asyncio.gather(*(asyncio.to_thread(get, path) for path in
                                              ("/", "/peerjs/id", "/peerjs/peers", "/nope", "/peerjs")))
            info, new_id, peers, missing, plain_ws = answers
            assert info.startswith(b"HTTP/1.1 200") and b'"name": "PeerJS Server"' in info
            assert new_id.startswith(b"HTTP/1.1 200") and len(new_id.split(b"\r\n\r\n")[1]) == 36
            assert b"access-control-allow-origin: https://app.example" in new_id.lower()
            assert peers.startswith(b"HTTP/1.1 401") and missing.startswith(b"HTTP/1.1 404")
            assert plain_ws.startswith(b"HTTP/1.1 426")  # not an upgrade
            # nginx's default upstream protocol
            assert (await asyncio.to_thread(get, "/peerjs/id", "1.0")).startswith(b"HTTP/1.1 200")

    run(scenario())


def test_a_connection_that_never_sends_its_request_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_socket, "HANDSHAKE_TIMEOUT", 0.3)

    async def scenario() -> None:
        async with broker() as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the broker
            writer.close()

    run(scenario())


def test_a_fragmented_message_is_reassembled() -> None:
    async def scenario() -> None:
        async with broker() as server, aiohttp.ClientSession() as s:
            b = await open_ws(s, server.port, "b")
            async with connect(f"ws://127.0.0.1:{server.port}/peerjs?key=peerjs&id=a&token=t") as a:
                assert json.loads(await a.recv()) == {"type": "OPEN"}
                await a.send(['{"type":"OFFER",', '"dst":"b",', '"payload":"x"}'])  # 3 frames
                assert json.loads((await texts(b, 1))[0]) == {"src": "a", "type": "OFFER",
                                                               "dst": "b", "payload": "x"}

    run(scenario())


class SlowClaims(MemoryStore):
    """A store whose claims take a while (as Redis's may)."""

    async def claim(self, peer_id: str, token: str, now: float) -> ClaimOutcome:
        await asyncio.sleep(0.3)
        return await super().claim(peer_id, token, now)


def test_frames_sent_while_the_claim_waits_are_relayed_after_it_in_order() -> None:
    async def scenario() -> None:
        async with broker(SlowClaims(queue_limits(CONFIG))) as server, aiohttp.ClientSession() as s:
            b = await open_ws(s, server.port, "b")
            async with connect(f"ws://127.0.0.1:{server.port}/peerjs?key=peerjs&id=a&token=t") as a:
                for seq in range(20):  # sent before OPEN: they wait behind the claim
                    await a.send(json.dumps({"type": "CANDIDATE", "dst": "b", "payload": seq}))
                assert json.loads(await a.recv()) == {"type": "OPEN"}
                got = [json.loads(text)["payload"] for text in await texts(b, 20)]
                assert got == list(range(20))

    run(scenario())


CLIENTS = textwrap.dedent("""
    import asyncio, sys, aiohttp
    async def main(port, n):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            sockets = []
            for i in range(n):
                ws = await s.ws_connect(f"ws://127.0.0.1:{port}/peerjs?key=peerjs&id=m{i}&token=t")
                await ws.receive(timeout=10)
                sockets.append(ws)
            print("READY", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
""")


def test_an_idle_websocket_costs_a_few_kilobytes_of_python_objects() -> None:
    """Measured with tracemalloc in the broker's process (the clients are another process): the
    transport, the library's protocol object, our socket object and the core's state.  With
    aiohttp's server this was ~15.7 KB (a task, a request, parser and queues per socket)."""
    count = 300

    async def scenario() -> float:
        async with broker() as server:
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
            clients = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLIENTS, str(server.port), str(count),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            try:
                assert clients.stdout is not None and clients.stdin is not None
                assert (await asyncio.wait_for(clients.stdout.readline(), 60)).strip() == b"READY"
                assert server.core.connection_count == count
                after = tracemalloc.take_snapshot()
                clients.stdin.close()
                await asyncio.wait_for(clients.wait(), 30)
            finally:
                if clients.returncode is None:
                    clients.kill()
                    await clients.wait()
                tracemalloc.stop()
            return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / count

    per_socket = run(scenario())
    print(f"python objects per idle websocket: {per_socket:.0f} bytes")
    assert per_socket < 8 * 1024
