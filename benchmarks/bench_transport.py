"""``transport``: message RTT and bulk throughput over real aiortc data channels, two processes,
through the full stack vs the raw link, on loopback and through a coturn relay (benchmarks/README.md).

Cases (each a fresh connection per run, both ends configured alike):

* ``raw_stock`` - the raw link (``DataChannelLink``, bytes echoed as they are), aiortc as it ships
  (``Tuning(enabled=False)``): the contract's ``raw_*`` baseline;
* ``raw_tuned`` - the raw link with the knobs of ``webrtc/_tuning.py`` (the product default);
* ``full`` - the full stack as shipped: crypto handshake, then ``ChatSession`` messages (binary
  profile ``EnkryptedChat-Profile-b1``, cascade MLS -> Signal -> ML-KEM -> AES, JSON inner payload,
  8192-byte chunks, receipts), tuned transport;
* ``full_stock`` - the same full stack over stock aiortc (the knobs' effect on the full stack).

**RTT**: ``ENKRYPTED_BENCH_TRANSPORT_RTT`` (500) ping-pongs of 200 bytes after 50 warm-up ones; raw:
the child echoes the PDU; full: the child echoes the text as a new message (seal, send, open, seal,
send, open; receipts travel both ways and are not waited for). **Throughput**:
``ENKRYPTED_BENCH_TRANSPORT_MB`` (16) MB in 64 KiB messages, timed from the first send to the
child's "done"; MB/s = 10^6 bytes/s of payload.

Every case runs once per round; rounds (``ENKRYPTED_BENCH_RUNS``, default 5, minimum 3) are
interleaved (order reversed every other round) after one discarded warm-up round; the figures are
medians over rounds of each run's p50/p99/MB/s. The broker (ours), coturn and the child are started
by this module and stopped by PID; ICE is pinned to 127.0.0.1; no STUN server; every wait is
bounded. ``ENKRYPTED_BENCH_TRANSPORT_PROFILE=1`` adds cProfile's top functions of the full-stack
runs in the parent and the child (``profile_*_top``).
"""

from __future__ import annotations

__all__ = ["run"]

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in ("shell/src", "plugins/p2p/src", "plugins/cryptography/src", ".", "benchmarks"):
    if str(ROOT / _p) not in sys.path:
        sys.path.insert(0, str(ROOT / _p))

RTT_N = int(os.environ.get("ENKRYPTED_BENCH_TRANSPORT_RTT", "500"))
MB = int(os.environ.get("ENKRYPTED_BENCH_TRANSPORT_MB", "16"))
PROFILE = os.environ.get("ENKRYPTED_BENCH_TRANSPORT_PROFILE") == "1"
CHUNK = 64 * 1024
WARMUP_PINGS = 50
CASES = ("raw_stock", "raw_tuned", "full", "full_stock", "paired")
NETWORKS = ("loopback", "coturn")
RUN_TIMEOUT_S = 300.0
CHILD_LIFETIME_S = 3600.0
MAX_PDUS_PER_LINK = 10_000_000
TARGET_RTT_P99_RATIO = 3.0
PAIRED_GAP_S = 0.006
TARGET_THROUGHPUT_RATIO = 0.8


def _crypto() -> Any:
    from enkrypted_crypto.plugin import enkrypted_crypto_service
    from enkrypted_shell.contracts import AppContext

    return enkrypted_crypto_service(AppContext(Path(tempfile.mkdtemp(prefix="bench-"))))


def _settings(url: str, turn_port: int | None, *, relay: bool, tuned: bool) -> Any:
    from enkrypted_p2p.webrtc import DEFAULT_TUNING, STOCK, IceServer, WebRTCSettings

    extra: dict[str, object] = {"tuning": DEFAULT_TUNING if tuned else STOCK,
                                "connect_timeout": 30.0}
    if relay:
        extra["ice_servers"] = (IceServer(f"turn:127.0.0.1:{turn_port}?transport=udp", "u", "p"),)
        extra["relay_only"] = True
    return WebRTCSettings.loopback(url, **extra)


def _endpoint_keys(turn_port: int | None) -> list[tuple[str, bool, bool]]:
    """(key, relay, tuned) of every endpoint each side opens."""
    networks = [False] + ([True] if turn_port is not None else [])
    return [(f"{'relay' if r else 'direct'}-{'tuned' if t else 'stock'}", r, t)
            for r in networks for t in (False, True)]


def _top(profile: cProfile.Profile, n: int = 15) -> list[str]:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(n)
    return [line.rstrip() for line in out.getvalue().splitlines() if line.strip()][-n - 1:]


# ---------------------------------------------------------------------------------------- child
async def _child(url: str, turn_port: int | None) -> None:
    from enkrypted_p2p.webrtc import WebRTCEndpoint
    from enkrypted_shell.contracts import LinkClosed

    crypto = _crypto()
    profile = cProfile.Profile()
    endpoints = {key: await WebRTCEndpoint.open(_settings(url, turn_port, relay=r, tuned=t))
                 for key, r, t in _endpoint_keys(turn_port)}
    print(json.dumps({key: e.local_id for key, e in endpoints.items()}), flush=True)
    tasks: set[asyncio.Task[None]] = set()

    async def guarded(link: Any) -> None:
        with contextlib.suppress(LinkClosed):
            await _serve(link, crypto, profile)

    async def accept(endpoint: Any) -> None:
        async for link in endpoint.incoming():
            task = asyncio.ensure_future(guarded(link))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    await asyncio.gather(*(accept(e) for e in endpoints.values()))


async def _serve(link: Any, crypto: Any, profile: cProfile.Profile) -> None:
    mode = await link.receive()
    if mode == b"stats":
        await link.send(json.dumps(_top(profile) if PROFILE else []).encode())
        return
    if mode == b"raw":
        total = 0
        for _ in range(MAX_PDUS_PER_LINK):
            pdu = await link.receive()
            if pdu.startswith(b"bulk"):
                total += len(pdu)
                if total >= int(pdu[4:20]):
                    await link.send(b"done")
            else:
                await link.send(pdu)
        return
    await _serve_session(link, crypto, profile)


async def _serve_session(link: Any, crypto: Any, profile: cProfile.Profile) -> None:
    from enkrypted_p2p.session import ChatSession, MessageReceived

    session = ChatSession(link, crypto, crypto.new_identity(), initiator=False)
    await session.start(60)
    if PROFILE:
        profile.enable()
    try:
        got = 0
        async for event in session.events():
            if isinstance(event, MessageReceived):
                if event.text.startswith("bulk"):
                    got += len(event.text)
                    if got >= int(event.text[4:20]):
                        await session.send_text("done")
                else:
                    await session.send_text(event.text)
    finally:
        if PROFILE:
            profile.disable()
        await session.close()


# --------------------------------------------------------------------------------------- parent
def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _rtt(samples: list[float]) -> dict[str, float]:
    return {"rtt_p50_ms": statistics.median(samples) * 1000, "rtt_p99_ms": _pct(samples, 0.99) * 1000}


async def _ping(send: Callable[[], Any], receive: Callable[[], Any], pings: int) -> list[float]:
    samples = []
    for i in range(WARMUP_PINGS + pings):
        start = time.perf_counter()
        await send()
        await receive()
        if i >= WARMUP_PINGS:
            samples.append(time.perf_counter() - start)
    return samples


async def _raw_run(link: Any, pings: int, total: int) -> dict[str, float]:
    await link.send(b"raw")
    ping = b"p" * 200
    out = _rtt(await _ping(lambda: link.send(ping), link.receive, pings))
    header = b"bulk" + b"%016d" % total
    block = header + b"b" * (CHUNK - len(header))
    start = time.perf_counter()
    for _ in range(-(-total // CHUNK)):
        await link.send(block)
    if await link.receive() != b"done":
        raise RuntimeError("the child did not confirm the bulk transfer")
    out["throughput_mb_s"] = total / (time.perf_counter() - start) / 1e6
    return out


async def _full_run(link: Any, crypto: Any, pings: int, total: int,
                    profile: cProfile.Profile | None) -> dict[str, Any]:
    from enkrypted_p2p.session import ChatSession, MessageReceived

    await link.send(b"session")
    session = ChatSession(link, crypto, crypto.new_identity(), initiator=True)
    info = await session.start(60)
    events = session.events()

    async def next_message() -> str:
        async for event in events:
            if isinstance(event, MessageReceived):
                return str(event.text)
        raise RuntimeError("the session ended")

    if profile is not None:
        profile.enable()
    try:
        text = "p" * 200
        out: dict[str, Any] = _rtt(await _ping(lambda: session.send_text(text), next_message, pings))
        head = f"bulk{total:016d}"
        body = head + "b" * (CHUNK - len(head))
        start = time.perf_counter()
        for _ in range(-(-total // CHUNK)):
            await session.send_text(body)
        if await next_message() != "done":
            raise RuntimeError("the child did not confirm the bulk transfer")
        out["throughput_mb_s"] = total / (time.perf_counter() - start) / 1e6
    finally:
        if profile is not None:
            profile.disable()
    out["dropped"] = dict(session.core.dropped)
    out["profile"], out["layers"] = info.profile, list(info.layers)
    await session.close()
    return out


async def _paired_run(endpoints: dict[str, Any], peers: dict[str, str], crypto: Any,
                      network: str, pings: int) -> dict[str, Any]:
    """RTT only, raw stock and full (tuned) on two links open at once, one ping of each in turn
    (order swapped every ping): both sides see the machine's load at the same moments.  Each
    ping starts after :data:`PAIRED_GAP_S` of quiet, so the other link's trailing work (its
    SACKs, at most 5 ms late when tuned) is not charged to the ping that follows."""
    from enkrypted_p2p.session import ChatSession, MessageReceived

    prefix = "relay" if network == "coturn" else "direct"
    raw = await endpoints[f"{prefix}-stock"].connect(peers[f"{prefix}-stock"], timeout=30)
    link = await endpoints[f"{prefix}-tuned"].connect(peers[f"{prefix}-tuned"], timeout=30)
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            await raw.send(b"raw")
            await link.send(b"session")
            session = ChatSession(link, crypto, crypto.new_identity(), initiator=True)
            await session.start(60)
            events = session.events()

            async def full_ping() -> None:
                await session.send_text("p" * 200)
                async for event in events:
                    if isinstance(event, MessageReceived):
                        return
                raise RuntimeError("the session ended")

            async def raw_ping() -> None:
                await raw.send(b"p" * 200)
                await raw.receive()

            samples: dict[str, list[float]] = {"raw": [], "full": []}
            for i in range(WARMUP_PINGS + pings):
                order = (("raw", raw_ping), ("full", full_ping))
                for name, ping in order if i % 2 == 0 else order[::-1]:
                    await asyncio.sleep(PAIRED_GAP_S)
                    start = time.perf_counter()
                    await ping()
                    if i >= WARMUP_PINGS:
                        samples[name].append(time.perf_counter() - start)
            await session.close()
    finally:
        await raw.close()
        await link.close()
    return {f"{name}_{k}": v for name, got in samples.items() for k, v in _rtt(got).items()}


async def _one(endpoints: dict[str, Any], peers: dict[str, str], crypto: Any, case: str,
               network: str, pings: int, total: int,
               profile: cProfile.Profile | None) -> dict[str, Any]:
    if case == "paired":
        return await _paired_run(endpoints, peers, crypto, network, pings)
    key = f"{'relay' if network == 'coturn' else 'direct'}-{'stock' if 'stock' in case else 'tuned'}"
    link = await endpoints[key].connect(peers[key], timeout=30)
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            if case.startswith("raw"):
                return await _raw_run(link, pings, total)
            return await _full_run(link, crypto, pings, total, profile)
    finally:
        await link.close()


async def _measure(url: str, turn_port: int | None, peers: dict[str, str],
                   rounds: int) -> dict[str, Any]:
    from enkrypted_p2p.webrtc import WebRTCEndpoint

    crypto = _crypto()
    profile = cProfile.Profile() if PROFILE else None
    endpoints = {key: await WebRTCEndpoint.open(_settings(url, turn_port, relay=r, tuned=t))
                 for key, r, t in _endpoint_keys(turn_port)}
    networks = [n for n in NETWORKS if n == "loopback" or turn_port is not None]
    order = [(n, c) for n in networks for c in CASES]
    runs: dict[str, list[dict[str, Any]]] = {f"{c}@{n}": [] for n, c in order}
    try:
        for n, c in order:  # warm-up round, discarded
            await _one(endpoints, peers, crypto, c, n, 20, 2 * CHUNK * 16, None)
        for i in range(rounds):
            for n, c in order if i % 2 == 0 else order[::-1]:
                result = await _one(endpoints, peers, crypto, c, n, RTT_N, MB * 1_000_000,
                                    profile if c == "full" and n == "loopback" else None)
                runs[f"{c}@{n}"].append(result)
        child_top: list[str] = []
        if PROFILE:
            key = "direct-tuned"
            link = await endpoints[key].connect(peers[key], timeout=30)
            await link.send(b"stats")
            child_top = json.loads(await asyncio.wait_for(link.receive(), 30))
            await link.close()
    finally:
        for endpoint in endpoints.values():
            await endpoint.aclose()
    return {"runs_by_case": runs, "profile_parent_top": _top(profile) if profile else None,
            "profile_child_top": child_top or None}


# ---------------------------------------------------------------------------------------- coturn
@contextlib.contextmanager
def _coturn(tmp: Path) -> Iterator[int | None]:
    """coturn on 127.0.0.1, long-term credentials u:p, relay on loopback; None if not installed."""
    from tests.p2p.servers import stop
    from tools.loopback import free_port, wait_port

    binary = shutil.which("turnserver")
    if binary is None:
        yield None
        return
    port = free_port()
    log = tmp / "turn.log"
    proc = subprocess.Popen([binary, "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
                             f"--listening-port={port}", "--lt-cred-mech", "--user=u:p",
                             "--realm=test", "--no-tls", "--no-dtls", "--allow-loopback-peers",
                             "--no-cli", f"--log-file={log}", "--simple-log",
                             f"--pidfile={tmp / 'turn.pid'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)  # type: ignore[arg-type]  # TCP and UDP listeners open together
        time.sleep(0.2)
        yield port
    finally:
        stop(proc)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- summary
def _ready_cores() -> tuple[Any, Any]:
    """Two Ready session cores after a real handshake, each with its own crypto service (as the
    two processes have: the pyca backend's X25519 key reuse is per service)."""
    from enkrypted_p2p.session._core import SendPdu, SessionCore

    a, b = SessionCore(), SessionCore()
    queues = []
    for core, initiator in ((a, True), (b, False)):
        crypto = _crypto()
        core.channel_open()
        handshake = crypto.handshake(crypto.new_identity(), initiator=initiator, now=0.0)
        queues.append([o.pdu for o in core.start_handshake(handshake) if isinstance(o, SendPdu)])
    qa, qb = queues
    for _ in range(20):
        if not qa and not qb:
            break
        na = [o.pdu for p in qb for o in a.pdu_received(p, 0.0) if isinstance(o, SendPdu)]
        qb = [o.pdu for p in qa for o in b.pdu_received(p, 0.0) if isinstance(o, SendPdu)]
        qa = na
    return a, b


def _timed_layers(cores: tuple[Any, ...], spent: dict[str, float]) -> None:
    """Wrap every cascade layer's seal/open (and the wire codec) of ``cores`` with CPU timers."""
    def timed(fn: Callable[..., Any], key: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            start = time.process_time()
            try:
                return fn(*args)
            finally:
                spent[key] = spent.get(key, 0.0) + time.process_time() - start
        return call

    for core in cores:
        session = core.session
        for layer in session._manager.layers:  # a benchmark looks inside
            for op in ("seal", "open"):
                setattr(layer, op, timed(getattr(layer, op), f"{layer.name}.{op}"))
        for op in ("encode", "decode"):
            setattr(session._codec, op, timed(getattr(session._codec, op), f"codec.{op}"))


def _ping_pong_cost(n: int = 400) -> dict[str, Any]:
    """What one RTT of the benchmark costs in CPU without a transport: a seals, b opens, b seals
    its echo, a opens (the sending direction changes every message, as in the ping-pong: each
    open is a Double Ratchet DH step), acks piggybacked. Then the same with per-layer timers."""
    a, b = _ready_cores()

    def rounds(count: int) -> float:
        start = time.process_time()
        for _ in range(count):
            for x, y in ((a, b), (b, a)):
                for out in x.send_text("p" * 200)[1]:
                    y.pdu_received(out.pdu, 0.0)
        return time.process_time() - start

    rounds(50)
    cpu = rounds(n)
    spent: dict[str, float] = {}
    _timed_layers((a, b), spent)
    timed_total = rounds(n)
    per_message = {k: round(v / (2 * n) * 1e6, 1) for k, v in sorted(spent.items())}
    per_message["session_and_cascade_rest"] = round(
        (timed_total - sum(spent.values())) / (2 * n) * 1e6, 1)
    return {"ping_pong_200b_cpu_ms": round(cpu / n * 1000, 3),
            "per_message_cpu_us": per_message}


def _cascade_cost() -> dict[str, Any]:
    """Seal + open of one message in one process (the session's crypto, no transport)."""
    from enkrypted_p2p.session._core import SendPdu

    a, b = _ready_cores()
    out: dict[str, Any] = {}
    for name, text, n in (("200b", "p" * 200, 200), ("64k", "b" * CHUNK, 30)):
        start = time.perf_counter()
        pdus = 0
        for _ in range(n):
            _, sent = a.send_text(text)
            pdus = len(sent)
            for pdu in sent:
                for reply in b.pdu_received(pdu.pdu, 0.0):  # type: ignore[union-attr]
                    if isinstance(reply, SendPdu):  # the receipt
                        a.pdu_received(reply.pdu, 0.0)
        out[f"message_and_receipt_{name}_ms"] = (time.perf_counter() - start) / n * 1000
        out[f"pdus_per_message_{name}"] = pdus
    return out | _ping_pong_cost()


def _summarise_paired(items: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    """Medians over rounds of the paired case, its ratio, and the ratio of each round."""
    out: dict[str, Any] = {}
    for side in ("raw", "full"):
        for metric in ("rtt_p50_ms", "rtt_p99_ms"):
            key = f"paired_{side}_{metric}{suffix}"
            out[key] = round(statistics.median(r[f"{side}_{metric}"] for r in items), 3)
            out.setdefault("samples_paired", {})[key] = [
                round(r[f"{side}_{metric}"], 3) for r in items]
    out[f"rtt_p99_ratio_paired{suffix}"] = round(
        out[f"paired_full_rtt_p99_ms{suffix}"] / out[f"paired_raw_rtt_p99_ms{suffix}"], 3)
    out[f"rtt_p99_ratio_paired_by_round{suffix}"] = [
        round(r["full_rtt_p99_ms"] / r["raw_rtt_p99_ms"], 3) for r in items]
    return out


def _summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    names = {"raw_stock": "raw_", "raw_tuned": "raw_tuned_", "full": "", "full_stock": "full_stock_"}
    for label, items in runs.items():
        case, network = label.split("@")
        suffix = "" if network == "loopback" else "_coturn"
        if case == "paired":
            paired = _summarise_paired(items, suffix)
            out.setdefault("samples_paired", {}).update(paired.pop("samples_paired"))
            out.update(paired)
            continue
        for metric in ("rtt_p50_ms", "rtt_p99_ms", "throughput_mb_s"):
            values = [r[metric] for r in items]
            out[f"{names[case]}{metric}{suffix}"] = round(statistics.median(values), 3)
            out.setdefault("samples", {})[f"{names[case]}{metric}{suffix}"] = [
                round(v, 3) for v in values]
    for suffix in ("", "_coturn"):
        if f"raw_rtt_p99_ms{suffix}" not in out:
            continue
        for base, tag in (("raw_", ""), ("raw_tuned_", "_vs_tuned")):
            out[f"rtt_p99_ratio{tag}{suffix}"] = round(
                out[f"rtt_p99_ms{suffix}"] / out[f"{base}rtt_p99_ms{suffix}"], 3)
            out[f"throughput_ratio{tag}{suffix}"] = round(
                out[f"throughput_mb_s{suffix}"] / out[f"{base}throughput_mb_s{suffix}"], 3)
        out[f"tuning_throughput_gain{suffix}"] = round(
            out[f"raw_tuned_throughput_mb_s{suffix}"] / out[f"raw_throughput_mb_s{suffix}"], 3)
    out["rtt_ratio"], out["throughput_ratio_target_met"] = out["rtt_p99_ratio"], (
        out["throughput_ratio"] >= TARGET_THROUGHPUT_RATIO)
    out["rtt_ratio_target_met"] = out["rtt_p99_ratio"] <= TARGET_RTT_P99_RATIO
    return out


def run() -> dict[str, Any]:
    from common import bench_runs  # type: ignore[import-not-found]  # benchmarks/ on sys.path

    from tests.p2p.servers import start_our_broker, stop

    rounds = bench_runs(5, minimum=3)
    tmp = Path(tempfile.mkdtemp(prefix="bench-transport-"))
    cascade = _cascade_cost()
    broker = start_our_broker(tmp)
    url = f"ws://127.0.0.1:{broker.port}/"
    try:
        with _coturn(tmp) as turn_port:
            child = subprocess.Popen([sys.executable, __file__, "--child", url,
                                      "--turn", str(turn_port or 0)], stdout=subprocess.PIPE,
                                     text=True)
            try:
                assert child.stdout is not None
                peers = json.loads(child.stdout.readline())
                measured = asyncio.run(asyncio.wait_for(
                    _measure(url, turn_port, peers, rounds), CHILD_LIFETIME_S))
            finally:
                stop(child)  # type: ignore[arg-type]
    finally:
        stop(broker.proc)
    result = _summarise(measured["runs_by_case"])
    full = measured["runs_by_case"]["full@loopback"][0]
    from enkrypted_p2p.webrtc import DEFAULT_TUNING

    result.update(
        runs=rounds, rtt_pings_per_run=RTT_N, bulk_mb=MB, message_bytes=CHUNK,
        order="interleaved: every case once per round, order reversed every other round, "
              "one warm-up round discarded; medians over rounds",
        coturn=turn_port is not None, profile=full["profile"], layers=full["layers"],
        session_dropped=[r["dropped"] for r in measured["runs_by_case"]["full@loopback"]],
        tuning={"sctp_burst_chunks": DEFAULT_TUNING.sctp_burst_chunks,
                "sctp_rto_min_s": DEFAULT_TUNING.sctp_rto_min_s,
                "udp_buffer_bytes": DEFAULT_TUNING.udp_buffer_bytes,
                "sctp_sack_every": DEFAULT_TUNING.sctp_sack_every,
                "sctp_sack_delay_s": DEFAULT_TUNING.sctp_sack_delay_s,
                "raw_and_full_stock": "aiortc 1.16 as it ships"},
        targets={"rtt_p99_ratio_max": TARGET_RTT_P99_RATIO,
                 "throughput_ratio_min": TARGET_THROUGHPUT_RATIO},
        cascade_in_process=cascade,
        profile_parent_top=measured["profile_parent_top"],
        profile_child_top=measured["profile_child_top"],
    )
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--turn", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        asyncio.run(asyncio.wait_for(_child(args.child, args.turn or None), CHILD_LIFETIME_S))
    else:
        print(json.dumps(run(), indent=2))
