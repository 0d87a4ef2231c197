"""``broker``: our PeerJS-compatible broker against npm ``peer`` 1.0.2, same load clients, same run.

Method of ``shared/spec/peerjs-server-capacity.md`` (scaled down in time; every count and duration
is bounded and can be raised through the environment variables below):

* **connections** - one load process opens N WebSocket clients (200 handshakes in flight, ``OPEN``
  awaited), holds them ``HOLD`` s with ``HEARTBEAT`` every 5 s (random offset), then counts those
  still open.  Levels: 5,000, 10,000 and as many as the open-files limit allows (the soft limit is
  raised to the hard one in this process, its load clients and servers; the level is that limit
  minus a margin for the processes' other files); the first refusal reasons are reported.  Server
  RSS (``/proc/PID/status`` VmRSS) before the ramp and at the end of the hold gives RSS per client;
  both servers run with the concurrent limit above the level (ours also with the per-IP limit
  raised: every load client is 127.0.0.1).
* **relay** - 200 sender/receiver pairs, ``CANDIDATE`` frames of ~330 bytes, at most 8 in flight
  per sender, 2 s warm-up then a ``WINDOW`` s measurement; msg/s = received in the window / window;
  server CPU (utime+stime) over the window / messages = µs per relayed message.  Paced at 10 msg/s
  per sender (~2,000 msg/s) it gives p50/p99 latency.  ``src`` of every frame is checked.
* **redis** - two of our broker processes over one ``redis-server`` (all on loopback); pair ``i``
  sends through broker ``i % 2`` to a receiver on the other one: every message crosses Redis, and
  each broker sends half and delivers half.  The CPU of A, B and Redis is reported per relayed
  message, and the rate they would reach with a core each (the 2-core machine also runs the load
  client, so the measured total understates it).

The saturating load client is ``benchmarks/broker_load.py`` (one process, plain asyncio
protocols, pre-built masked frames, 6-12 µs of its own CPU per message in the last bench against
~22 µs for an aiohttp client), so that the relay figures are server-bound as the spec's method
asks; the paced latency runs keep the aiohttp client (``ENKRYPTED_BENCH_BROKER_CLIENT=aiohttp``
uses it for the saturating runs too).  The same client runs against both servers.  Our broker
runs with its per-connection rate limit raised (``--rate``/``--burst``) because the saturating
senders exceed the default 100 msg/s on purpose.  Servers are started and
stopped by PID; nothing leaves 127.0.0.1.

Environment: ENKRYPTED_BENCH_BROKER_CONNS (levels, "5000,10000,max"), _HOLD (10), _WINDOW (8),
_RUNS (3).
"""

from __future__ import annotations

__all__ = ["run"]

import argparse
import asyncio
import json
import os
import random
import resource
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

from benchmarks.broker_load import measure_window, relay_summary, run_relay  # noqa: E402
from tools.loopback import free_port, wait_port  # noqa: E402 - after the path above

FD_MARGIN = 1000
"""Files a process needs besides the client sockets (libraries, pipes, listening sockets)."""
CLIENT = os.environ.get("ENKRYPTED_BENCH_BROKER_CLIENT", "lean")
"""Saturation load client: ``lean`` (benchmarks/broker_load.py) or ``aiohttp`` (the paced runs)."""


def _raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one (inherited by the processes we start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _levels(fd_limit: int) -> list[int]:
    raw = os.environ.get("ENKRYPTED_BENCH_BROKER_CONNS", "").strip() or "5000,10000,max"
    top = max(1000, fd_limit - FD_MARGIN)
    wanted = [top if part.strip() == "max" else int(part) for part in raw.split(",") if part.strip()]
    return sorted({min(level, top) for level in wanted})


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
               "--concurrent_limit", "100000"]
        env = dict(os.environ)
    else:
        cmd = [sys.executable, "-m", "enkrypted_p2p.signaling", "--port", str(port),
               "--concurrent-limit", "100000", "--max-conns-per-ip", "100000",
               "--rate", "1000000", "--burst", "1000000", "--log-level", "WARNING"]
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


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
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


RAMP_S = 180.0


async def _load_conns(base: str, n: int, hold: float) -> dict[str, Any]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        gate = asyncio.Semaphore(200)
        failures: dict[str, int] = {}

        async def one(i: int) -> Any:
            async with gate:
                try:
                    return await _ws(session, base, f"c{i}-{os.getpid()}")
                except Exception as exc:
                    reason = f"{type(exc).__name__}: {exc}"[:120]
                    failures[reason] = failures.get(reason, 0) + 1
                    return None

        start = time.monotonic()
        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        done, pending = await asyncio.wait(tasks, timeout=RAMP_S)
        for task in pending:
            task.cancel()
        if pending:
            failures[f"ramp over {RAMP_S:.0f} s"] = len(pending)
        sockets = [ws for task in done if (ws := task.result()) is not None]
        ramp = time.monotonic() - start
        print("RAMPED", flush=True)
        stop = asyncio.Event()
        beats = [asyncio.create_task(_heartbeat(ws, stop)) for ws in sockets]
        await asyncio.sleep(hold)
        alive = sum(1 for ws in sockets if not ws.closed)
        print("HELD", flush=True)
        await asyncio.sleep(1.0)  # the orchestrator reads the server's RSS now
        stop.set()
        for task in beats:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    top = sorted(failures.items(), key=lambda kv: -kv[1])[:3]
    return {"opened": len(sockets), "alive": alive, "ramp_s": round(ramp, 3),
            "failures": dict(top), "client_fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


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
        cpu = await measure_window(state, warmup, measure)
        stop.set()
        for task in tasks + beats:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in senders + receivers), return_exceptions=True)
    return relay_summary(state["count"], measure, latencies, state["bad"], cpu)


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
    parser.add_argument("--client", choices=["lean", "aiohttp"], default="lean")
    args = parser.parse_args(argv)
    _raise_fd_limit()
    if args.mode == "conns":
        result = asyncio.run(_load_conns(args.base, args.n, args.hold))
    elif args.client == "lean" and not args.pace:
        result = asyncio.run(run_relay(args.base.split(","), (args.recv_base or args.base).split(","),
                                       args.pairs, args.window, 2.0, args.measure))
    else:
        result = asyncio.run(_load_relay(args.base.split(",")[0],
                                         (args.recv_base or args.base).split(",")[0], args.pairs,
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

        def held() -> None:
            seen.update(rss=_rss_kb(server.pid), hwm=_hwm_kb(server.pid),
                        hold_cpu=_cpu_s(server.pid) - seen.get("cpu", 0),
                        hold_s=time.monotonic() - seen.get("t", time.monotonic()))

        result = _drive(["conns", "--base", f"ws://127.0.0.1:{port}", "--n", str(n), "--hold",
                         str(hold)],
                        {"RAMPED": lambda: seen.update(cpu=_cpu_s(server.pid), t=time.monotonic()),
                         "HELD": held})
    finally:
        _stop(server)
    opened = max(1, result.get("opened", 0))
    end_rss = int(seen.get("rss", 0))
    return {**result, "target": n, "rss_idle_kb": idle, "rss_end_kb": end_rss,
            "rss_peak_kb": int(seen.get("hwm", 0)),
            "rss_per_client_kb": round((end_rss - idle) / opened, 2),
            "hold_cpu_pct": round(100 * seen.get("hold_cpu", 0) / max(seen.get("hold_s", 0), 1e-9), 1)}


def _relay(kinds: tuple[str, ...], tmp: Path, measure: float, pace: float = 0) -> dict[str, Any]:
    redis_proc = None
    servers: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        if len(kinds) == 2:
            redis_proc, redis_port = _redis(tmp)
            servers = [_start("ours", tmp, redis_port) for _ in kinds]
        else:
            servers = [_start(kinds[0], tmp)]
        names = ["broker_a", "broker_b"] if len(servers) == 2 else ["server"]
        pids = dict(zip(names, (s.pid for s, _ in servers), strict=True))
        if redis_proc is not None:
            pids["redis"] = redis_proc.pid
        cpu: dict[str, dict[str, float]] = {}
        bases = [f"ws://127.0.0.1:{port}" for _, port in servers]
        # Pair i sends through bases[i % n] to a receiver on the other broker: with two brokers
        # every message crosses Redis, and each broker sends half and receives half of them.
        args = ["relay", "--base", ",".join(bases), "--recv-base", ",".join(bases[1:] + bases[:1]),
                "--measure", str(measure), "--pace", str(pace), "--client", CLIENT]

        def mark(at: str) -> None:
            cpu[at] = {name: _cpu_s(pid) for name, pid in pids.items()}
            cpu[at]["machine"] = _machine_busy_s()

        result = _drive(args, {"WINDOW_START": lambda: mark("start"),
                               "WINDOW_END": lambda: mark("end")})
    finally:
        for server, _ in servers:
            _stop(server)
        if redis_proc is not None:
            _stop(redis_proc)
    received = max(1, result.get("received", 0))
    used = {name: cpu.get("end", {}).get(name, 0.0) - cpu.get("start", {}).get(name, 0.0)
            for name in [*pids, "machine"]}
    servers_s = sum(v for k, v in used.items() if k != "machine")
    out = {**result, "server_cpu_pct": round(100 * servers_s / measure, 1),
           "server_cpu_us_per_msg": round(servers_s * 1e6 / received, 2),
           "machine_busy_pct": round(100 * used["machine"] / measure, 1)}
    if len(servers) == 2:
        per = {name: round(used[name] * 1e6 / received, 2) for name in pids}
        out["cpu_us_per_msg_by_process"] = per
        # One core per broker (senders spread over both, so each does half the sends and half
        # the receives) and Redis on a third: the slower of the two bounds the total.
        brokers = per["broker_a"] + per["broker_b"]
        out["projected_per_s_one_core_each"] = round(min(
            2e6 / brokers if brokers else 0.0, 1e6 / per["redis"] if per["redis"] else 0.0))
    return out


def _machine_busy_s() -> float:
    """CPU-seconds the whole machine was busy since boot (``/proc/stat``, all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _median(values: list[Any]) -> Any:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def run() -> dict[str, object]:
    fd_limit = _raise_fd_limit()
    levels, hold = _levels(fd_limit), _env_int("HOLD", 10)
    measure, runs = _env_int("WINDOW", 8), _env_int("RUNS", 3)
    out: dict[str, object] = {"runs": runs, "connection_levels": levels, "hold_s": hold,
                              "window_s": measure, "fd_limit": fd_limit,
                              "load_client": (f"python {CLIENT} (saturation), aiohttp (paced), "
                                              "1 process"),
                              "loadavg_start": [round(v, 2) for v in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for kind in ("peerjs", "ours"):
            detail = [_connections(kind, tmp, n, hold) for n in levels]
            top = max(detail, key=lambda d: (d["alive"], d["target"]))
            out[f"{kind}_connections"] = top["alive"]
            out[f"{kind}_rss_per_client_kb"] = top["rss_per_client_kb"]
            out[f"{kind}_connections_detail"] = detail
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
        two = [_relay(("ours", "ours"), tmp, measure) for _ in range(runs)]
        out["redis_two_brokers_relay_per_s"] = _median([s["per_s"] for s in two])
        out["redis_two_brokers_projected_per_s"] = _median(
            [s["projected_per_s_one_core_each"] for s in two])
        out["redis_two_brokers_detail"] = two
        two_paced = _relay(("ours", "ours"), tmp, measure, pace=10)
        out["redis_p50_ms_2k"], out["redis_p99_ms_2k"] = two_paced["p50_ms"], two_paced["p99_ms"]
    out["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]  # other work on the machine
    peer_rate = float(out["peerjs_relay_per_s"] or 1)  # type: ignore[arg-type]
    peer_us = float(out["peerjs_cpu_us_per_msg"] or 1)  # type: ignore[arg-type]
    out["ratio_relay"] = round(float(out["ours_relay_per_s"] or 0) / peer_rate, 3)  # type: ignore[arg-type]
    out["ratio_cpu_per_msg"] = round(float(out["ours_cpu_us_per_msg"] or 0) / peer_us, 3)  # type: ignore[arg-type]
    out["ratio_redis_two_vs_peerjs"] = round(
        float(out["redis_two_brokers_relay_per_s"] or 0) / peer_rate, 3)  # type: ignore[arg-type]
    out["peerjs_per_core_per_s"] = round(1e6 / peer_us)
    out["ratio_redis_projected_vs_peerjs_per_core"] = round(
        float(out["redis_two_brokers_projected_per_s"] or 0) / (1e6 / peer_us), 3)  # type: ignore[arg-type]
    out["ratio_rss_per_client"] = round(
        float(out["ours_rss_per_client_kb"]) / max(float(out["peerjs_rss_per_client_kb"]), 1e-9), 3)  # type: ignore[arg-type]
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        _load_main(sys.argv[2:])
    else:
        print(json.dumps(run(), indent=2))
