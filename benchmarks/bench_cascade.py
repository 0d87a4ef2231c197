"""Cascade throughput per wire profile and backend, against a plain AES-256-GCM baseline.

    python benchmarks/bench_cascade.py [--runs N] [--quick]     # writes results/cascade.json
    python benchmarks/run.py --only cascade                     # same, via run() (make bench)

Result (DESIGN.md §12): ``results`` = list of ``{profile, backend, layers, msg_1k_per_s,
mb_per_s_1m, ...}``; ``aesgcm_msg_1k_per_s``, ``aesgcm_mb_per_s_1m`` (one AES-256-GCM encrypt +
decrypt with pyca's ``AESGCM``, fresh output buffers, as an application would call it); ``runs``;
``targets`` (the issue's targets for the default profile, and whether this run met them, judged
on the worse of the two heap states below).
One "message" = seal on one peer + open on the other, single thread.  MB = 10**6 bytes.

Method: every figure is the median of ``runs`` timed runs.  Each case is timed **side by side**
with the baseline: every round times one run of the case and one run of the baseline, the order
alternating (case, baseline / baseline, case), after one unmeasured warm-up round.  Per row,
``aesgcm_*_paired`` are the baseline medians of that row's rounds and ``ratio_1m`` /
``ratio_msg_1k`` the row over them; the top-level ``aesgcm_*`` are the medians over all baseline
runs.  Pairing matters at 1 MiB: on this kind of VM a minor page fault costs microseconds, and
whether glibc hands back fresh pages for each MiB-sized buffer depends on the process's allocation
history (its dynamic mmap/trim thresholds), so a baseline timed at a different moment than the
case can differ by 2-3x.  ``minor_faults_per_msg_1m`` shows it (0 when the heap is warm).  So the
default case is measured twice: first, in a fresh process ("cold" heap: glibc still trims, both
the case and the baseline fault), and again last (``"repeat": true``), after the v0 cases have
freed multi-MB JSON buffers and raised glibc's thresholds ("warm" heap: no faults, AES-bound).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[1]
KIB, MIB = 1024, 1024 * 1024
FULL = ["Signal", "ML-KEM", "AES"]
B1 = "EnkryptedChat-Profile-b1"
V0 = "EnkryptedChat-Profile-v0"
CASES = [  # (profile, backend, layers, 1 KiB messages per run, 1 MiB messages per run)
    (B1, "pyca", FULL, 2000, 20),
    (B1, "pyca", ["Signal", "AES"], 4000, 20),
    (B1, "nacl", ["Signal", "AES"], 4000, 20),
    (V0, "pyca", FULL, 6, 2),
    (V0, "nacl", ["Signal", "AES"], 6, 2),
]
BASELINE_1K, BASELINE_1M = 20000, 20  # AES-GCM operations per baseline run
TARGETS = {"msg_1k_per_s": 5000.0, "ratio_1m": 0.2}
"""The issue's targets for b1 with [Signal, ML-KEM, AES] on pyca."""

Op = Callable[[], None]


def _import_paths() -> None:
    for src in ("shell/src", "plugins/cryptography/src", "plugins/cryptography_nacl/src"):
        path = str(ROOT / src)
        if path not in sys.path:
            sys.path.insert(0, path)


def _pair(backend: str, profile: str, layers: list[str]) -> tuple[Any, Any]:
    _import_paths()
    from enkrypted_crypto.backends.pyca import PycaPrimitives
    from enkrypted_crypto.service import CascadeCryptoService
    from enkrypted_crypto_nacl import NaclPrimitives

    prims = PycaPrimitives() if backend == "pyca" else NaclPrimitives()
    service = CascadeCryptoService(prims)
    a = service.handshake(
        service.new_identity(), initiator=True, now=0.0, profiles=[profile], layers=layers
    )
    b = service.handshake(
        service.new_identity(), initiator=False, now=0.0, profiles=[profile], layers=layers
    )
    for _ in range(3):
        for pdu in a.data_to_send():
            b.receive(pdu, 0.0)
        for pdu in b.data_to_send():
            a.receive(pdu, 0.0)
    return a.session(), b.session()


def _roundtrip(sender: Any, receiver: Any, payload: bytes) -> Op:
    def once() -> None:
        if receiver.open(sender.seal(payload)).plaintext != payload:
            raise AssertionError("round trip mismatch")

    return once


def _aesgcm(payload: bytes) -> Op:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)

    def once() -> None:
        aead.decrypt(nonce, aead.encrypt(nonce, payload, b""), b"")

    return once


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt if resource else 0


def _timed(op: Op, count: int) -> tuple[float, int]:
    """(operations per second, minor page faults) of ``count`` calls."""
    faults = _faults()
    start = time.perf_counter()
    for _ in range(count):
        op()
    elapsed = time.perf_counter() - start
    return count / elapsed, _faults() - faults


def _side_by_side(
    case: Op, n_case: int, base: Op, n_base: int, runs: int
) -> tuple[list[float], list[float], float]:
    """Rates of ``runs`` rounds (case and baseline alternating order) and faults per case op."""
    rates: dict[str, list[float]] = {"case": [], "base": []}
    faults = 0
    plan = [("case", case, n_case), ("base", base, n_base)]
    for round_ in range(runs + 1):  # round 0 is the warm-up
        for name, op, count in plan if round_ % 2 else plan[::-1]:
            rate, op_faults = _timed(op, count)
            if round_:
                rates[name].append(rate)
                faults += op_faults if name == "case" else 0
    return rates["case"], rates["base"], faults / (runs * n_case)


def measure(runs: int = 7, scale: int = 1, *, verbose: bool = False) -> dict[str, object]:
    """Run every case; the result object of DESIGN.md §12 (without ``machine``)."""
    if runs < 1 or scale < 1:
        raise ValueError("runs and scale must be positive")
    small, big = os.urandom(KIB), os.urandom(MIB)
    base_small, base_big = _aesgcm(small), _aesgcm(big)
    n_base_small, n_base_big = max(2, BASELINE_1K // scale), max(2, BASELINE_1M // scale)
    results: list[dict[str, object]] = []
    all_small: list[float] = []
    all_big: list[float] = []
    for index, (profile, backend, layers, n_small, n_big) in enumerate([*CASES, CASES[0]]):
        sender, receiver = _pair(backend, profile, layers)
        msg, msg_base, _ = _side_by_side(
            _roundtrip(sender, receiver, small), max(2, n_small // scale),
            base_small, n_base_small, runs,
        )  # fmt: skip
        mib, mib_base, faults = _side_by_side(
            _roundtrip(sender, receiver, big), max(1, n_big // scale), base_big, n_base_big, runs
        )
        all_small += msg_base
        all_big += mib_base
        row: dict[str, object] = {
            "profile": profile,
            "backend": backend,
            "layers": layers,
            "msg_1k_per_s": round(statistics.median(msg), 1),
            "mb_per_s_1m": round(statistics.median(mib) * MIB / 1e6, 2),
            "aesgcm_msg_1k_per_s_paired": round(statistics.median(msg_base), 1),
            "aesgcm_mb_per_s_1m_paired": round(statistics.median(mib_base) * MIB / 1e6, 2),
            "ratio_msg_1k": round(statistics.median(msg) / statistics.median(msg_base), 4),
            "ratio_1m": round(statistics.median(mib) / statistics.median(mib_base), 4),
            "minor_faults_per_msg_1m": round(faults, 1),
            "repeat": index == len(CASES),
        }
        if verbose:
            print(json.dumps(row), flush=True)
        results.append(row)
    first, last = results[0], results[-1]  # the default case, fresh process and warm heap
    msg_1k = min(float(first["msg_1k_per_s"]), float(last["msg_1k_per_s"]))  # type: ignore[arg-type]
    ratio_1m = min(float(first["ratio_1m"]), float(last["ratio_1m"]))  # type: ignore[arg-type]
    targets = {
        "case": {"profile": B1, "backend": "pyca", "layers": FULL},
        "msg_1k_per_s": TARGETS["msg_1k_per_s"],
        "ratio_1m": TARGETS["ratio_1m"],
        "measured_msg_1k_per_s": [first["msg_1k_per_s"], last["msg_1k_per_s"]],
        "measured_ratio_1m": [first["ratio_1m"], last["ratio_1m"]],
        "measured_note": "[fresh process (cold heap), repeated last (warm heap)]",
        "met": msg_1k >= TARGETS["msg_1k_per_s"] and ratio_1m >= TARGETS["ratio_1m"],
    }
    return {
        "results": results,
        "aesgcm_msg_1k_per_s": round(statistics.median(all_small), 1),
        "aesgcm_mb_per_s_1m": round(statistics.median(all_big) * MIB / 1e6, 2),
        "targets": targets,
        "runs": runs,
        "method": (
            "median of runs; each case timed side by side with the AES-GCM baseline "
            "(alternating order, 1 warm-up round); one message = seal + open, one thread; "
            "MB = 1e6 bytes"
        ),
    }


def run() -> dict[str, object]:
    """Entry point of ``benchmarks/run.py`` (runs: ``ENKRYPTED_BENCH_RUNS``, default 7)."""
    raw = os.environ.get("ENKRYPTED_BENCH_RUNS", "").strip()
    return measure(runs=int(raw) if raw else 7, verbose=True)


def _machine() -> dict[str, object]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("cryptography", "pynacl"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="10x fewer messages per run")
    args = parser.parse_args()
    out = measure(runs=args.runs, scale=10 if args.quick else 1, verbose=True)
    out["machine"] = _machine()
    path = ROOT / "benchmarks" / "results" / "cascade.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "results"}, indent=2))


if __name__ == "__main__":
    main()
