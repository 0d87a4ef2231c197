"""``broker``: our PeerJS-compatible broker against npm ``peer`` 1.0.2, same load clients, same run.

Method of ``shared/spec/peerjs-server-capacity.md`` (scaled down in time; every count and duration
is bounded and can be raised through the environment variables below):

* **connections** - one load process opens N WebSocket clients (200 handshakes in flight, ``OPEN``
  awaited), holds them ``HOLD`` s with ``HEARTBEAT`` every 5 s (random offset), then counts those
  still open.  Server RSS (``/proc/PID/status`` VmRSS) before and after the ramp gives RSS per
  client; both servers run with the concurrent limit raised to 20,000.
* **relay** - 200 sender/receiver pairs, ``CANDIDATE`` frames of ~330 bytes, at most 8 in flight
  per sender, 2 s warm-up then a ``WINDOW`` s measurement; msg/s = received in the window / window;
  server CPU (utime+stime) over the window / messages = µs per relayed message.  Paced at 10 msg/s
  per sender (~2,000 msg/s) it gives p50/p99 latency.  ``src`` of every frame is checked.
* **redis** - two of our broker processes over one ``redis-server`` (all on loopback), senders on
  A and receivers on B: every message crosses Redis.

The load client is Python + aiohttp (the spec used ``websockets``, not installed here), the same
for both servers.  Our broker runs with its per-connection rate limit raised (``--rate``/``--burst``)
because the saturating senders exceed the default 100 msg/s on purpose.  Servers are started and
stopped by PID; nothing leaves 127.0.0.1.

Environment: ENKRYPTED_BENCH_BROKER_CONNS (5000), _HOLD (10), _WINDOW (8), _RUNS (3).
"""

from __future__ import annotations

__all__ = ["run"]

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER_CLI = ROOT / "tools" / "node" / "node_modules" / "peer" / "dist" / "bin" / "peerjs.js"
SRC = [ROOT / "shell" / "src", ROOT / "plugins" / "p2p" / "src"]
if str(ROOT) not in sys.path:  # also when run as the load-client subprocess
    sys.path.insert(0, str(ROOT))

from tools.loopback import free_port, wait_port  # noqa: E402 - after the path above


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(f"ENKRYPTED_BENCH_BROKER_{name}", "").strip()
    return int(raw) if raw else default


# ============================================================================ servers
_free_port = free_port


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    wait_port(port, proc, timeout)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(3)


def _start(kind: str, tmp: Path, redis_port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    log = (tmp / f"{kind}-{port}.log").open("wb")
    if kind == "peerjs":
        node = shutil.which("node")
        if node is None or not PEER_CLI.is_file():
            raise RuntimeError("node or tools/node/node_modules missing: run make test")
        cmd = [node, str(PEER_CLI), "--host", "127.0.0.1", "--port", str(port),
               "--concurrent_limit", "20000"]
        env = dict(os.environ)
    else:
        cmd = [sys.executable, "-m", "enkrypted_p2p.signaling", "--port", str(port),
               "--concurrent-limit", "20000", "--rate", "1000000", "--burst", "1000000",
               "--log-level", "WARNING"]
        if redis_port is not None:
            cmd += ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, SRC))}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    _wait_port(port, proc)
    return proc, port


def _redis(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server missing: run make test")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port, proc)
    return proc, port


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ============================================================================ load client
async def _ws(session: Any, base: str, peer_id: str) -> Any:
    ws = await session.ws_connect(f"{base}/peerjs?key=peerjs&id={peer_id}&token=t{peer_id}",
                                  autoping=True, compress=0, max_msg_size=0)
    first = await ws.receive(timeout=30)
    if first.type.name != "TEXT" or json.loads(first.data).get("type") != "OPEN":
        await ws.close()
        raise ConnectionError(str(first.data)[:80])
    return ws


async def _heartbeat(ws: Any, stop: asyncio.Event) -> None:
    await asyncio.sleep(random.uniform(0, 5))
    while not stop.is_set() and not ws.closed:
        await ws.send_str('{"type":"HEARTBEAT"}')
        await asyncio.sleep(5)


async def _load_conns(base: str, n: int, hold: float) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        gate = asyncio.Semaphore(200)

        async def one(i: int) -> Any:
            async with gate:
                try:
                    return await _ws(session, base, f"c{i}-{os.getpid()}")
                except Exception:
                    return None

        start = time.monotonic()
        async with asyncio.timeout(180):
            sockets = [ws for ws in await asyncio.gather(*(one(i) for i in range(n))) if ws]
        ramp = time.monotonic() - start
        print("RAMPED", flush=True)
        stop = asyncio.Event()
        beats = [asyncio.create_task(_heartbeat(ws, stop)) for ws in sockets]
        await asyncio.sleep(hold)
        stop.set()
        alive = sum(1 for ws in sockets if not ws.closed)
        for task in beats:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"opened": len(sockets), "alive": alive, "ramp_s": round(ramp, 3)}


_CANDIDATE = {"candidate": "candidate:842163049 1 udp 1677729535 127.0.0.1 54321 typ srflx raddr "
              "0.0.0.0 rport 0 generation 0 ufrag abcd network-cost 999", "sdpMid": "0",
              "sdpMLineIndex": 0, "usernameFragment": "abcd"}


async def _load_relay(send_base: str, recv_base: str, pairs: int, window: int, warmup: float,
                      measure: float, pace: float) -> dict[str, Any]:
    import aiohttp

    tag = os.getpid()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        senders = [await _ws(session, send_base, f"s{i}-{tag}") for i in range(pairs)]
        receivers = [await _ws(session, recv_base, f"r{i}-{tag}") for i in range(pairs)]
        stop = asyncio.Event()
        beats = [asyncio.create_task(_heartbeat(ws, stop)) for ws in senders + receivers]
        state = {"in_window": False, "count": 0, "bad": 0}
        latencies: list[float] = []
        slots = [asyncio.Semaphore(window) for _ in range(pairs)]

        async def sender(i: int) -> None:
            ws, seq = senders[i], 0
            while not stop.is_set():
                await slots[i].acquire()
                seq += 1
                payload = {"candidate": _CANDIDATE, "type": "data", "connectionId": "dc_bench",
                           "ts": time.monotonic(), "seq": seq}
                await ws.send_str(json.dumps({"type": "CANDIDATE", "dst": f"r{i}-{tag}",
                                              "payload": payload}))
                if pace:
                    await asyncio.sleep(1 / pace)

        async def receiver(i: int) -> None:
            async for msg in receivers[i]:
                frame = json.loads(msg.data)
                if frame.get("src") != f"s{i}-{tag}":
                    state["bad"] += 1
                    continue
                slots[i].release()
                if state["in_window"]:
                    state["count"] += 1
                    latencies.append(time.monotonic() - frame["payload"]["ts"])

        tasks = [asyncio.create_task(sender(i)) for i in range(pairs)]
        tasks += [asyncio.create_task(receiver(i)) for i in range(pairs)]
        await asyncio.sleep(warmup)
        print("WINDOW_START", flush=True)
        state["in_window"] = True
        await asyncio.sleep(measure)
        state["in_window"] = False
        print("WINDOW_END", flush=True)
        stop.set()
        for task in tasks + beats:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in senders + receivers), return_exceptions=True)
    latencies.sort()
    pick = (lambda q: round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3)
            ) if latencies else (lambda q: None)
    return {"received": state["count"], "per_s": round(state["count"] / measure, 1),
            "p50_ms": pick(0.50), "p99_ms": pick(0.99), "misaddressed": state["bad"]}


def _load_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["conns", "relay"])
    parser.add_argument("--base", required=True)
    parser.add_argument("--recv-base")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=10)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--measure", type=float, default=8)
    parser.add_argument("--pace", type=float, default=0)
    args = parser.parse_args(argv)
    if args.mode == "conns":
        result = asyncio.run(_load_conns(args.base, args.n, args.hold))
    else:
        result = asyncio.run(_load_relay(args.base, args.recv_base or args.base, args.pairs,
                                         args.window, 2.0, args.measure, args.pace))
    print("RESULT " + json.dumps(result), flush=True)


# ============================================================================ orchestration
def _drive(args: list[str], marks: dict[str, Any], timeout: float = 400) -> dict[str, Any]:
    """Run one load process; ``marks`` maps a line it prints to a callback run at that moment."""
    proc = subprocess.Popen([sys.executable, __file__, "--load", *args], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    result: dict[str, Any] = {}
    try:
        for raw_line in proc.stdout:
            line = raw_line.strip()
            if line in marks:
                marks[line]()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
            if time.monotonic() > deadline:
                raise TimeoutError("load client over time")
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    return result


def _connections(kind: str, tmp: Path, n: int, hold: float) -> dict[str, Any]:
    server, port = _start(kind, tmp)
    try:
        time.sleep(0.5)
        idle = _rss_kb(server.pid)
        seen: dict[str, float] = {}
        result = _drive(["conns", "--base", f"ws://127.0.0.1:{port}", "--n", str(n), "--hold",
                         str(hold)],
                        {"RAMPED": lambda: seen.update(rss=_rss_kb(server.pid), cpu=_cpu_s(server.pid),
                                                       t=time.monotonic())})
        end_rss, cpu = _rss_kb(server.pid), _cpu_s(server.pid) - seen.get("cpu", 0)
        held = time.monotonic() - seen.get("t", time.monotonic())
    finally:
        _stop(server)
    opened = max(1, result.get("opened", 0))
    return {**result, "rss_idle_kb": idle, "rss_end_kb": end_rss,
            "rss_per_client_kb": round((end_rss - idle) / opened, 2),
            "hold_cpu_pct": round(100 * cpu / max(held, 1e-9), 1)}


def _relay(kinds: tuple[str, ...], tmp: Path, measure: float, pace: float = 0) -> dict[str, Any]:
    redis_proc = None
    servers: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        if len(kinds) == 2:
            redis_proc, redis_port = _redis(tmp)
            servers = [_start("ours", tmp, redis_port) for _ in kinds]
        else:
            servers = [_start(kinds[0], tmp)]
        pids = [s.pid for s, _ in servers]
        pids += [redis_proc.pid] if redis_proc else []
        cpu: dict[str, float] = {}
        args = ["relay", "--base", f"ws://127.0.0.1:{servers[0][1]}",
                "--recv-base", f"ws://127.0.0.1:{servers[-1][1]}", "--measure", str(measure),
                "--pace", str(pace)]
        result = _drive(args, {
            "WINDOW_START": lambda: cpu.update(start=sum(map(_cpu_s, pids))),
            "WINDOW_END": lambda: cpu.update(end=sum(map(_cpu_s, pids))),
        })
    finally:
        for server, _ in servers:
            _stop(server)
        if redis_proc is not None:
            _stop(redis_proc)
    used = cpu.get("end", 0) - cpu.get("start", 0)
    received = max(1, result.get("received", 0))
    return {**result, "server_cpu_pct": round(100 * used / measure, 1),
            "server_cpu_us_per_msg": round(used * 1e6 / received, 2)}


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def run() -> dict[str, object]:
    n, hold = _env_int("CONNS", 5000), _env_int("HOLD", 10)
    measure, runs = _env_int("WINDOW", 8), _env_int("RUNS", 3)
    out: dict[str, object] = {"runs": runs, "connections_target": n, "hold_s": hold,
                              "window_s": measure, "load_client": "python aiohttp, 1 process"}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for kind in ("peerjs", "ours"):
            conns = _connections(kind, tmp, n, hold)
            out[f"{kind}_connections"] = conns["alive"]
            out[f"{kind}_rss_per_client_kb"] = conns["rss_per_client_kb"]
            out[f"{kind}_connections_detail"] = conns
        relay: dict[str, list[dict[str, Any]]] = {"peerjs": [], "ours": []}
        for i in range(runs):  # interleaved, order flipped every run
            for kind in (("peerjs", "ours") if i % 2 == 0 else ("ours", "peerjs")):
                relay[kind].append(_relay((kind,), tmp, measure))
        for kind, samples in relay.items():
            out[f"{kind}_relay_per_s"] = _median([s["per_s"] for s in samples])
            out[f"{kind}_cpu_us_per_msg"] = _median([s["server_cpu_us_per_msg"] for s in samples])
            out[f"{kind}_relay_samples"] = samples
            paced = _relay((kind,), tmp, measure, pace=10)
            out[f"{kind}_paced_2k"] = paced
            out[f"{kind}_p50_ms_2k"], out[f"{kind}_p99_ms_2k"] = paced["p50_ms"], paced["p99_ms"]
        two = _relay(("ours", "ours"), tmp, measure)
        out["redis_two_brokers_relay_per_s"] = two["per_s"]
        out["redis_two_brokers_detail"] = two
    out["ratio_relay"] = round(float(out["ours_relay_per_s"] or 0) / float(out["peerjs_relay_per_s"] or 1), 3)  # type: ignore[arg-type]
    out["ratio_cpu_per_msg"] = round(float(out["ours_cpu_us_per_msg"] or 0) / float(out["peerjs_cpu_us_per_msg"] or 1), 3)  # type: ignore[arg-type]
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        _load_main(sys.argv[2:])
    else:
        print(json.dumps(run(), indent=2))
