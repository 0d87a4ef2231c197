"""A lean PeerJS load client for the relay bench: servers are measured, not the client.

The aiohttp client of ``bench_broker`` spends ~22 µs of its own CPU per relayed message (a task
wake-up per frame, a JSON encode per send and a decode per receipt).  On the 2-core machine it
then takes most of a core, and a figure that needs both cores for the servers (two brokers over
Redis against one ``peer`` process) measures the client instead.  This client does per message
only what a relay test needs:

* each sender has one pre-built, masked ``CANDIDATE`` frame for its receiver (RFC 6455 §5.3: a
  client masks every frame; the key is random per connection) and writes ``k`` copies in one
  ``write`` when ``k`` of its frames have arrived (closed loop, at most ``window`` in flight);
* each receiver walks the frame headers of what it reads (the server does not mask), and checks
  in every text frame that ``"src":"<its sender>"`` is there (both servers write compact JSON);
* latency comes from a FIFO of send times per pair (one sender, one receiver, one path: frames
  of a pair arrive in order), not from a timestamp in the payload.

Every connection is a plain ``asyncio.Protocol``; the upgrade is the RFC 6455 client handshake
with ``Sec-WebSocket-Accept`` checked, then the server's ``OPEN`` frame.
"""

from __future__ import annotations

__all__ = ["measure_window", "relay_summary", "run_relay"]

import asyncio
import base64
import collections
import hashlib
import json
import os
import random
import struct
import time
from typing import Any

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CANDIDATE = {"candidate": "candidate:842163049 1 udp 1677729535 127.0.0.1 54321 typ srflx raddr "
              "0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999", "sdpMid": "0",
              "sdpMLineIndex": 0, "usernameFragment": "abcd"}
_HANDSHAKE_S = 30.0


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                            struct.pack("!BH", 0x80 | 126, n) if n < 65536 else
                            struct.pack("!BQ", 0x80 | 127, n))
    mask = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return head + key + body


class _Conn(asyncio.Protocol):
    """One client socket: handshake, then frames counted (and ``src`` checked) as they arrive."""

    def __init__(self, path: str, host: str, expect_src: bytes | None) -> None:
        self.transport: asyncio.Transport | None = None
        self.key = base64.b64encode(os.urandom(16))
        self.request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key.decode()}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self.buf = b""
        self.upgraded = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.expect = expect_src
        self.on_frames: Any = None  # callable(count) set for receivers
        self.bad = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed before OPEN"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not self._upgrade_accepted(buf[:end]):
                return
            buf = buf[end + 4:]
        self.buf = self._frames(buf)

    def _upgrade_accepted(self, head: bytes) -> bool:
        accept = base64.b64encode(hashlib.sha1(self.key + _GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()[:80]))
            assert self.transport is not None
            self.transport.close()
            return False
        self.upgraded = True
        return True

    def _frames(self, buf: bytes) -> bytes:
        pos, size, count, expect = 0, len(buf), 0, self.expect
        while size - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if size - pos < head + n:
                break
            start, pos = pos + head, pos + head + n
            if opcode != 1:
                continue  # ping, pong, close: not counted (neither server pings a PeerJS client)
            if not self.opened.done():
                frame = json.loads(buf[start:pos])
                if frame.get("type") == "OPEN":
                    self.opened.set_result(None)
                else:
                    self.opened.set_exception(ConnectionError(str(frame)[:80]))
                continue
            if expect is not None and buf.find(expect, start, pos) < 0:
                self.bad += 1
                continue
            count += 1
        if count and self.on_frames is not None:
            self.on_frames(count)
        return buf[pos:] if pos < size else b""


async def _connect(base: str, peer_id: str, expect_src: bytes | None) -> _Conn:
    host_port = base.split("://", 1)[1]
    host, port = host_port.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: _Conn(f"/peerjs?key=peerjs&id={peer_id}&token=t{peer_id}", host_port,
                      expect_src), host, int(port))
    await asyncio.wait_for(conn.opened, _HANDSHAKE_S)
    return conn


class _Pair:
    """A sender and its receiver: ``window`` frames in flight, refilled in one write."""

    def __init__(self, sender: _Conn, receiver: _Conn, frame: bytes, window: int,
                 stats: dict[str, Any], latencies: list[float]) -> None:
        self.sender, self.frame, self.window = sender, frame, window
        self.sent: collections.deque[float] = collections.deque()
        self.stats, self.latencies = stats, latencies
        receiver.on_frames = self.arrived

    def start(self) -> None:
        self._send(self.window)

    def _send(self, k: int) -> None:
        transport = self.sender.transport
        if transport is None or self.sender.closed or self.stats["stopped"]:
            return
        now = time.monotonic()
        self.sent.extend([now] * k)
        transport.write(self.frame * k)

    def arrived(self, k: int) -> None:
        now, sent = time.monotonic(), self.sent
        if self.stats["in_window"]:
            self.stats["count"] += k
            append = self.latencies.append
            for _ in range(min(k, len(sent))):
                append(now - sent.popleft())
        else:
            for _ in range(min(k, len(sent))):
                sent.popleft()
        self._send(k)


async def _beat(conns: list[_Conn], stop: asyncio.Event) -> None:
    """``HEARTBEAT`` from every client every 5 s (random phase), as a PeerJS client does."""
    beat = _masked_text_frame('{"type":"HEARTBEAT"}')
    offsets = sorted((random.uniform(0, 5), i) for i in range(len(conns)))
    while not stop.is_set():
        start = time.monotonic()
        for offset, i in offsets:
            delay = start + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop.is_set():
                return
            transport = conns[i].transport
            if transport is not None and not conns[i].closed:
                transport.write(beat)
        await asyncio.sleep(max(0.0, start + 5 - time.monotonic()))


async def run_relay(send_bases: list[str], recv_bases: list[str], pairs: int, window: int,
                    warmup: float, measure: float) -> dict[str, Any]:
    """Pair ``i`` sends through ``send_bases[i % n]`` to a receiver on ``recv_bases[i % n]``."""
    tag = os.getpid()
    stats: dict[str, Any] = {"in_window": False, "count": 0, "stopped": False}
    latencies: list[float] = []
    senders = [await _connect(send_bases[i % len(send_bases)], f"s{i}-{tag}", None)
               for i in range(pairs)]
    receivers = [await _connect(recv_bases[i % len(recv_bases)], f"r{i}-{tag}",
                                f'"src":"s{i}-{tag}"'.encode()) for i in range(pairs)]
    stop = asyncio.Event()
    beat = asyncio.create_task(_beat(senders + receivers, stop))
    flows = []
    for i in range(pairs):
        text = json.dumps({"type": "CANDIDATE", "dst": f"r{i}-{tag}",
                           "payload": {"candidate": _CANDIDATE, "type": "data",
                                       "connectionId": "dc_bench", "seq": i}},
                          separators=(",", ":"))
        flows.append(_Pair(senders[i], receivers[i], _masked_text_frame(text), window, stats,
                           latencies))
    for flow in flows:
        flow.start()
    cpu = await measure_window(stats, warmup, measure)
    closed_early = sum(1 for conn in senders + receivers if conn.closed)
    stats["stopped"] = True
    stop.set()
    beat.cancel()
    for conn in senders + receivers:
        if conn.transport is not None:
            conn.transport.close()
    await asyncio.sleep(0.2)
    return {**relay_summary(stats["count"], measure, latencies, sum(c.bad for c in receivers), cpu),
            "closed_early": closed_early}


async def measure_window(state: dict[str, Any], warmup: float, measure: float) -> float:
    """Warm up, then count for ``measure`` s (``state["in_window"]`` set meanwhile); the
    orchestrator reads the servers' CPU at the two lines printed.  Returns this process's CPU s."""
    await asyncio.sleep(warmup)
    print("WINDOW_START", flush=True)
    state["in_window"] = True
    cpu = time.process_time()
    await asyncio.sleep(measure)
    state["in_window"] = False
    cpu = time.process_time() - cpu
    print("WINDOW_END", flush=True)
    return cpu


def relay_summary(count: int, measure: float, latencies: list[float], misaddressed: int,
                  cpu: float) -> dict[str, Any]:
    """The figures one relay window gives: rate, latency p50/p99, the client's own CPU."""
    latencies.sort()

    def pick(q: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)

    return {"received": count, "per_s": round(count / measure, 1), "p50_ms": pick(0.50),
            "p99_ms": pick(0.99), "misaddressed": misaddressed,
            "client_cpu_pct": round(100 * cpu / measure, 1),
            "client_cpu_us_per_msg": round(cpu * 1e6 / max(1, count), 2)}
