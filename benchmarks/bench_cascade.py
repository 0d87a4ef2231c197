"""Cascade throughput per wire profile and backend, against a plain AES-256-GCM baseline.

    python benchmarks/bench_cascade.py [--runs N] [--quick]

Writes ``benchmarks/results/cascade.json`` (DESIGN.md §12): ``results`` = list of ``{profile,
backend, layers, msg_1k_per_s, mb_per_s_1m}``; ``aesgcm_msg_1k_per_s``, ``aesgcm_mb_per_s_1m``
(one AES-256-GCM encrypt + decrypt, pyca, measured in the same run); ``machine``; ``runs``.
One "message" = seal on one peer + open on the other, single thread.  MB = 10**6 bytes.
Each figure is the median of ``runs`` timed runs.
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

ROOT = Path(__file__).resolve().parents[1]
for src in ("shell/src", "plugins/cryptography/src", "plugins/cryptography_nacl/src"):
    sys.path.insert(0, str(ROOT / src))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

from enkrypted_crypto.backends.pyca import PycaPrimitives  # noqa: E402
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0  # noqa: E402
from enkrypted_crypto.service import CascadeCryptoService  # noqa: E402
from enkrypted_crypto_nacl import NaclPrimitives  # noqa: E402

KIB, MIB = 1024, 1024 * 1024
FULL = ["Signal", "ML-KEM", "AES"]
CASES = [  # (profile, backend, layers, 1 KiB messages per run, 1 MiB messages per run)
    (PROFILE_B1, "pyca", FULL, 2000, 20),
    (PROFILE_B1, "pyca", ["Signal", "AES"], 4000, 20),
    (PROFILE_B1, "nacl", ["Signal", "AES"], 4000, 20),
    (PROFILE_V0, "pyca", FULL, 6, 2),
    (PROFILE_V0, "nacl", ["Signal", "AES"], 6, 2),
]


def _pair(backend: str, profile: str, layers: list[str]):  # type: ignore[no-untyped-def]
    prims = PycaPrimitives() if backend == "pyca" else NaclPrimitives()
    service = CascadeCryptoService(prims)
    a = service.handshake(service.new_identity(), initiator=True, profiles=[profile], layers=layers)
    b = service.handshake(
        service.new_identity(), initiator=False, profiles=[profile], layers=layers
    )
    for _ in range(3):
        for pdu in a.data_to_send():
            b.receive(pdu)
        for pdu in b.data_to_send():
            a.receive(pdu)
    return a.session(), b.session()


def _rate(fn: Callable[[], None], count: int, runs: int) -> float:
    """Median operations per second over ``runs`` runs of ``count`` operations."""
    fn()  # warm-up
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(count):
            fn()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def _roundtrip(sender, receiver, payload: bytes) -> Callable[[], None]:  # type: ignore[no-untyped-def]
    def once() -> None:
        if receiver.open(sender.seal(payload)) != payload:
            raise AssertionError("round trip mismatch")

    return once


def _aesgcm(payload: bytes) -> Callable[[], None]:
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)

    def once() -> None:
        aead.decrypt(nonce, aead.encrypt(nonce, payload, b""), b"")

    return once


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10x fewer messages per run")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    small, big = os.urandom(KIB), os.urandom(MIB)
    results = []
    for profile, backend, layers, n_small, n_big in CASES:
        sender, receiver = _pair(backend, profile, layers)
        msg = _rate(_roundtrip(sender, receiver, small), max(2, n_small // scale), args.runs)
        mib = _rate(_roundtrip(sender, receiver, big), max(1, n_big // scale), args.runs)
        row = {
            "profile": profile,
            "backend": backend,
            "layers": layers,
            "msg_1k_per_s": round(msg, 1),
            "mb_per_s_1m": round(mib * MIB / 1e6, 2),
        }
        print(json.dumps(row))
        results.append(row)
    aes_msg = _rate(_aesgcm(small), 20000 // scale, args.runs)
    aes_mib = _rate(_aesgcm(big), 200 // scale, args.runs)
    out = {
        "results": results,
        "aesgcm_msg_1k_per_s": round(aes_msg, 1),
        "aesgcm_mb_per_s_1m": round(aes_mib * MIB / 1e6, 2),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cryptography": _version("cryptography"),
            "pynacl": _version("pynacl"),
        },
        "runs": args.runs,
        "method": "median of runs; one message = seal + open, one thread; MB = 1e6 bytes",
    }
    path = ROOT / "benchmarks" / "results" / "cascade.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "results"}, indent=2))


if __name__ == "__main__":
    main()
