"""File transfer throughput, two processes over aiortc on loopback through our broker
(``make bench ONLY=files``): the same bytes as raw data-channel PDUs (no session, no file
protocol), as a standard-path file (every chunk sealed by the session) and as a fast-path file
(one AES-256-GCM layer), interleaved run by run, medians reported, with the peak RSS (``VmHWM``)
of both processes.

Keys: ``fast_mb_s``, ``standard_mb_s``, ``raw_mb_s``, ``size_mb``, ``runs``, the ratios to raw,
``rss_kb`` (per mode, the median peak of the sender and of the receiver) and ``machine`` (added by
the runner).  ``ENKRYPTED_BENCH_FILES_MB`` sets the size (default 32), ``ENKRYPTED_BENCH_RUNS``
the runs (default and minimum 3).  Timing is taken in this process from the sender's ``offered``
/ ``connected`` line to its ``file-sent`` / ``done`` line, so both sides' connection set-up is
outside it.  The transfer processes are the test peer ``tests/p2p/filechat_peer.py`` (a
file-backed profile store stand-in) and, for raw, this file's ``--raw-*`` workers.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(HERE), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from common import bench_runs, median  # noqa: E402

SRC = [ROOT / d / "src" for d in ("shell", "plugins/p2p", "plugins/cryptography",
                                  "plugins/cryptography_nacl")]
MB = 1024 * 1024
PDU = 64 * 1024


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*SRC, ROOT, HERE])}


def _vmhwm_kb() -> int:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1])


def _say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- raw workers
async def _raw_receiver(url: str, size: int) -> None:
    from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings

    endpoint = await WebRTCEndpoint.open(WebRTCSettings.loopback(url), "bench-raw-rx")
    _say(event="listening")
    async for link in endpoint.incoming():
        got = 0
        while got < size:
            got += len(await link.receive())
        await link.send(b"k")
        _say(event="received", bytes=got, vmhwm_kb=_vmhwm_kb())
        await asyncio.sleep(0.5)
        break
    await endpoint.aclose()


async def _raw_sender(url: str, path: str) -> None:
    from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings

    endpoint = await WebRTCEndpoint.open(WebRTCSettings.loopback(url))
    link = await endpoint.connect("bench-raw-rx", 60)
    _say(event="connected")
    with open(path, "rb") as f:
        while block := f.read(PDU):
            await link.send(block)
    await link.receive()
    _say(event="done", vmhwm_kb=_vmhwm_kb())
    await endpoint.aclose()


# ----------------------------------------------------------------------------- the parent
def _start(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=_env(), cwd=ROOT)


def _until(proc: subprocess.Popen[str], events: tuple[str, ...], timeout: float
           ) -> tuple[dict[str, Any], float]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"no {events} within {timeout} s")
        line = proc.stdout.readline()
        if not line:
            raise EOFError(f"worker ended ({proc.wait()}) before {events}")
        event: dict[str, Any] = json.loads(line)
        if event["event"] in events:
            return event, time.monotonic()


def _stop(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _raw_run(url: str, path: Path, size: int) -> tuple[float, int, int]:
    rx = _start(__file__, "--raw-rx", url, str(size))
    tx: subprocess.Popen[str] | None = None
    try:
        _until(rx, ("listening",), 60)
        tx = _start(__file__, "--raw-tx", url, str(path))
        _, started = _until(tx, ("connected",), 60)
        done, finished = _until(tx, ("done",), 1800)
        received, _ = _until(rx, ("received",), 60)
        return size / MB / (finished - started), done["vmhwm_kb"], received["vmhwm_kb"]
    finally:
        _stop(*(p for p in (tx, rx) if p is not None))


def _file_run(url: str, path: Path, fast: bool, tmp: Path, n: int) -> tuple[float, int, int]:
    peer = ["-m", "tests.p2p.filechat_peer", "peer", "--broker", url]
    rx = _start(*peer, "--id", f"bench-rx-{n}", "--state-dir", str(tmp / f"rx{n}"), "--accept",
                "--exit-after", "1")
    tx: subprocess.Popen[str] | None = None
    try:
        _until(rx, ("listening",), 60)
        tx = _start(*peer, "--id", f"bench-tx-{n}", "--state-dir", str(tmp / f"tx{n}"),
                    "--dial", f"bench-rx-{n}", "--send-fast" if fast else "--send", str(path),
                    "--exit-after", "1")
        _, started = _until(tx, ("offered",), 120)
        sent, finished = _until(tx, ("file-sent", "file-failed"), 1800)
        if sent["event"] != "file-sent":
            raise RuntimeError(f"the transfer failed: {sent}")
        received, _ = _until(rx, ("file-received",), 60)
        return (path.stat().st_size / MB / (finished - started), sent["vmhwm_kb"],
                received["vmhwm_kb"])
    finally:
        _stop(*(p for p in (tx, rx) if p is not None))


def run() -> dict[str, Any]:
    from tests.p2p.servers import start_our_broker, stop

    size_mb = int(os.environ.get("ENKRYPTED_BENCH_FILES_MB", "32"))
    runs = bench_runs(3, minimum=3)
    with tempfile.TemporaryDirectory(prefix="enkrypted-bench-files-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "payload.bin"
        with path.open("wb") as f:
            for _ in range(size_mb):
                f.write(os.urandom(MB))
        broker = start_our_broker(tmp)
        url = f"ws://127.0.0.1:{broker.port}/"
        rates: dict[str, list[float]] = {"raw": [], "standard": [], "fast": []}
        rss: dict[str, list[tuple[int, int]]] = {"raw": [], "standard": [], "fast": []}
        try:
            for n in range(runs):  # interleaved: every run measures the three modes in turn
                for mode in ("raw", "standard", "fast"):
                    if mode == "raw":
                        rate, tx_kb, rx_kb = _raw_run(url, path, size_mb * MB)
                    else:
                        rate, tx_kb, rx_kb = _file_run(url, path, mode == "fast", tmp,
                                                       n * 2 + (mode == "fast"))
                    rates[mode].append(rate)
                    rss[mode].append((tx_kb, rx_kb))
        finally:
            stop(broker.proc)
    result: dict[str, Any] = {f"{m}_mb_s": round(median(r), 2) for m, r in rates.items()}
    result.update({
        "size_mb": size_mb,
        "runs": runs,
        "samples_mb_s": {m: [round(x, 2) for x in r] for m, r in rates.items()},
        "fast_to_raw": round(result["fast_mb_s"] / result["raw_mb_s"], 3),
        "standard_to_raw": round(result["standard_mb_s"] / result["raw_mb_s"], 3),
        "rss_kb": {m: {"sender": int(median([a for a, _ in v])),
                       "receiver": int(median([b for _, b in v]))} for m, v in rss.items()},
    })
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--raw-rx"]:
        asyncio.run(asyncio.wait_for(_raw_receiver(sys.argv[2], int(sys.argv[3])), 1800))
    elif sys.argv[1:2] == ["--raw-tx"]:
        asyncio.run(asyncio.wait_for(_raw_sender(sys.argv[2], sys.argv[3]), 1800))
    else:
        print(json.dumps(run(), indent=1))
