"""``transport``: message RTT and bulk throughput over real aiortc data channels, two processes on
loopback, through the full stack (session: crypto handshake, sealed messages, chunking, receipts)
vs the raw link (the same data channel, bytes echoed as they are).

* **RTT** - ``ENKRYPTED_BENCH_TRANSPORT_RTT`` (500) ping-pongs of 200 bytes after 50 warm-up
  ones; p50/p99 in ms. Raw: the child echoes each PDU. Full: the child's session echoes each
  message's text as a new message (so one RTT = seal, send, open, seal, send, open; the receipts
  both ways travel too and are not waited for).
* **Throughput** - ``ENKRYPTED_BENCH_TRANSPORT_MB`` (16) MB in 64 KiB messages; the child replies
  once it has them all; MB/s = 10^6 bytes / s of payload. Full: 64 KiB texts through the session
  (sealed, chunked at 8192 bytes, reassembled, opened, receipts).

The broker (ours) and the child are started and stopped by PID; ICE is pinned to 127.0.0.1; no
STUN server. Stock aiortc settings (no tuning knobs applied: docs/webrtc.md).
"""

from __future__ import annotations

__all__ = ["run"]

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in ("shell/src", "plugins/p2p/src", "plugins/cryptography/src", "."):
    if str(ROOT / _p) not in sys.path:
        sys.path.insert(0, str(ROOT / _p))

RTT_N = int(os.environ.get("ENKRYPTED_BENCH_TRANSPORT_RTT", "500"))
MB = int(os.environ.get("ENKRYPTED_BENCH_TRANSPORT_MB", "16"))
CHUNK = 64 * 1024


def _crypto() -> Any:
    from enkrypted_crypto.plugin import enkrypted_crypto_service
    from enkrypted_shell.contracts import AppContext

    return enkrypted_crypto_service(AppContext(Path(tempfile.mkdtemp(prefix="bench-"))))


async def _child(url: str) -> None:
    from enkrypted_p2p.session import ChatSession, MessageReceived
    from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings
    from enkrypted_shell.contracts import LinkClosed

    crypto = _crypto()
    endpoint = await WebRTCEndpoint.open(WebRTCSettings.loopback(url))
    print(endpoint.local_id, flush=True)
    async def serve(link: Any) -> None:
        mode = await link.receive()
        if mode == b"raw":
            total = 0
            while True:
                pdu = await link.receive()
                if pdu.startswith(b"bulk"):
                    total += len(pdu)
                    if total >= int(pdu[4:20]):
                        await link.send(b"done")
                else:
                    await link.send(pdu)
        session = ChatSession(link, crypto, crypto.new_identity(), initiator=False)
        await session.start(60)
        got = 0
        async for event in session.events():
            if isinstance(event, MessageReceived):
                if event.text.startswith("bulk"):
                    got += len(event.text)
                    if got >= int(event.text[4:20]):
                        await session.send_text("done")
                else:
                    await session.send_text(event.text)

    async def guarded(link: Any) -> None:
        with contextlib.suppress(LinkClosed):
            await serve(link)

    tasks = set()
    async for link in endpoint.incoming():
        task = asyncio.ensure_future(guarded(link))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(url: str, peer: str) -> dict[str, Any]:
    from enkrypted_p2p.session import ChatSession, MessageReceived
    from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings

    crypto = _crypto()
    endpoint = await WebRTCEndpoint.open(WebRTCSettings.loopback(url))
    total = MB * 1_000_000
    out: dict[str, Any] = {}
    try:
        raw = await endpoint.connect(peer)
        await raw.send(b"raw")
        ping = b"p" * 200
        samples = []
        for i in range(50 + RTT_N):
            start = time.perf_counter()
            await raw.send(ping)
            await raw.receive()
            if i >= 50:
                samples.append(time.perf_counter() - start)
        out["raw_rtt_p50_ms"] = statistics.median(samples) * 1000
        out["raw_rtt_p99_ms"] = _pct(samples, 0.99) * 1000
        header = b"bulk" + b"%016d" % total
        block = header + b"b" * (CHUNK - len(header))
        start = time.perf_counter()
        for _ in range(-(-total // CHUNK)):
            await raw.send(block)
        assert await raw.receive() == b"done"
        out["raw_throughput_mb_s"] = total / (time.perf_counter() - start) / 1e6
        await raw.close()

        link = await endpoint.connect(peer)
        await link.send(b"session")
        session = ChatSession(link, crypto, crypto.new_identity(), initiator=True)
        await session.start(60)
        events = session.events()

        async def next_message() -> str:
            async for event in events:
                if isinstance(event, MessageReceived):
                    return event.text
            raise RuntimeError("session ended")

        text = "p" * 200
        samples = []
        for i in range(50 + RTT_N):
            start = time.perf_counter()
            await session.send_text(text)
            await next_message()
            if i >= 50:
                samples.append(time.perf_counter() - start)
        out["rtt_p50_ms"] = statistics.median(samples) * 1000
        out["rtt_p99_ms"] = _pct(samples, 0.99) * 1000
        head = f"bulk{total:016d}"
        body = head + "b" * (CHUNK - len(head))
        start = time.perf_counter()
        for _ in range(-(-total // CHUNK)):
            await session.send_text(body)
        assert await next_message() == "done"
        out["throughput_mb_s"] = total / (time.perf_counter() - start) / 1e6
        out["session_dropped"] = dict(session.core.dropped)
        await session.close()
    finally:
        await endpoint.aclose()
    return out


def run() -> dict[str, Any]:
    from tests.p2p.servers import start_our_broker, stop

    tmp = Path(tempfile.mkdtemp(prefix="bench-transport-"))
    broker = start_our_broker(tmp)
    url = f"ws://127.0.0.1:{broker.port}/"
    child = subprocess.Popen([sys.executable, __file__, "--child", url], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        peer = child.stdout.readline().strip()
        result = asyncio.run(asyncio.wait_for(_measure(url, peer), 600))
    finally:
        stop(child)  # type: ignore[arg-type]
        stop(broker.proc)
    result.update(runs=RTT_N, bulk_mb=MB, message_bytes=CHUNK, tuning="stock aiortc 1.16",
                  rtt_ratio=result["rtt_p99_ms"] / result["raw_rtt_p99_ms"],
                  throughput_ratio=result["throughput_mb_s"] / result["raw_throughput_mb_s"])
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.child))
    else:
        print(json.dumps(run(), indent=2))
