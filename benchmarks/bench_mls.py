"""MLS commit cost by group size, against a pairwise fan-out baseline (issue 12).

    python benchmarks/bench_mls.py [--runs N] [--sizes 2,8,64]   # writes results/mls.json
    python benchmarks/run.py --only mls                           # same, via run() (make bench)

Result (DESIGN.md §12): ``results`` = list of ``{members, commit_ms, process_ms, pairwise_ms,
...}``; ``runs``; ``growth_8_to_1024`` (commit_ms at 1024 members over commit_ms at 8, the
issue's target is at most 5) and the same ratio for the baseline.

What is timed, per group size ``n`` (medians of ``runs`` rounds, single thread, suite 1):

* ``commit_ms``: member 0 creates an Update commit with a path (``Group.update()``: fresh leaf
  and path keys, HPKE-encrypted path secrets, new tree hash, epoch secrets, signature,
  confirmation and membership tags) and enters the new epoch.
* ``process_ms``: member ``n-1`` (the farthest leaf: the common ancestor is the root) processes
  that commit (membership tag, signature, one HPKE decryption, path derivation and parent-hash
  check, new tree hash, key schedule, confirmation tag).
* ``pairwise_ms``: the baseline without a tree: re-keying every pair from one member, i.e.
  ``n - 1`` times one X25519 agreement, one HKDF-SHA256 and one AES-256-GCM encryption of a
  32-byte key (pyca, through the crypto plugin's primitives), as a pairwise-session design would
  do to share a new key with the group.

Each round times one commit + process and one pairwise fan-out, alternating their order
(``common.side_by_side``), after one warm-up round, with the garbage collector off (as ``timeit``
does).  ``commit_samples_ms`` keeps every sample: on a shared machine a few are far above the
median.

Keeping 1024 members affordable: the group is built once per size and every round then costs one
commit and one process.  Building: member 0 creates the group and adds ``n - 1`` KeyPackages in
one commit; that leaves the tree mostly blank (resolutions are whole subtrees), so a commit would
encrypt to ``n - 1`` leaves.  A real group fills its tree as members commit; we fill exactly the
nodes that matter — member 0's copath — by letting the ``log2(n)`` members at leaves 1, 2, 4, ...,
n/2 each commit one Update (leaf ``2^k``'s direct path covers member 0's copath node at level
``k + 1``).  Only those members, and member ``n - 1``, join from the Welcome and follow the
commits; the other members exist only as leaves.  Building 1024 members takes a few seconds
(``build_s`` in the result).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SIZES = (2, 8, 64, 256, 1024)
TARGET_GROWTH = 5.0
"""Issue 12: commit cost from 8 to 1024 members grows at most this much."""


def _import_paths() -> None:
    for src in ("shell/src", "plugins/cryptography/src", "plugins/cryptography_nacl/src"):
        path = str(ROOT / src)
        if path not in sys.path:
            sys.path.insert(0, path)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))


def build_group(n: int) -> tuple[Any, Any]:
    """``(committer, receiver)``: members 0 and ``n - 1`` of an ``n``-member group whose
    member-0 copath is filled (module docstring)."""
    _import_paths()
    from enkrypted_crypto.mls import Group, key_package_message, new_key_package_bundle, suite

    cs = suite(1)
    bundles = [
        new_key_package_bundle(1, b"member-%d" % i, cs.signature_keypair()[0], 0)
        for i in range(n)
    ]
    creator = Group.create(1, b"bench-group-%d" % n, bundles[0])
    out = creator.add([key_package_message(b) for b in bundles[1:]])
    assert out.welcome is not None
    fillers = [1 << k for k in range(n.bit_length() - 1)]  # 1, 2, 4, ..., n/2
    live = {0: creator}
    for leaf in sorted({*fillers, n - 1}):
        live[leaf] = Group.join(out.welcome, bundles[leaf])
        assert live[leaf].my_leaf == leaf
    for leaf in fillers:
        commit = live[leaf].update().commit
        for other, member in live.items():
            if other != leaf:
                member.process(commit)
    committer, receiver = live[0], live[n - 1]
    assert committer.epoch_authenticator == receiver.epoch_authenticator
    return committer, receiver


def _mls_round(committer: Any, receiver: Any) -> Any:
    def once() -> tuple[float, dict[str, float]]:
        start = time.perf_counter()
        commit = committer.update().commit
        made = time.perf_counter()
        receiver.process(commit)
        done = time.perf_counter()
        if committer.epoch_authenticator != receiver.epoch_authenticator:
            raise AssertionError("members disagree after the commit")
        return made - start, {"process_s": done - made}

    return once


def _pairwise_round(n: int) -> Any:
    """One member re-keys ``n - 1`` pairs: X25519 + HKDF-SHA256 + AES-256-GCM each."""
    _import_paths()
    from enkrypted_crypto.backends.pyca import PycaPrimitives

    p = PycaPrimitives()
    own = p.random(32)
    peers = [p.x25519_public(p.random(32)) for _ in range(n - 1)]

    def once() -> None:
        new_key = p.random(32)
        for peer in peers:
            shared = p.x25519(own, peer)
            key = p.hkdf_sha256(shared, b"", b"bench-pairwise-rekey", 32)
            p.aead_seal("aes-256-gcm", key, p.random(12), new_key, b"")

    return once


def measure(runs: int = 7, sizes: tuple[int, ...] = SIZES, verbose: bool = False) -> dict[str, Any]:
    _import_paths()
    from common import side_by_side

    results = []
    for n in sizes:
        start = time.perf_counter()
        committer, receiver = build_group(n)
        build_s = time.perf_counter() - start
        gc.collect()  # the build's garbage is not the commit's; no collector pauses mid-round
        gc.disable()
        try:
            timings = side_by_side(
                {"mls": _mls_round(committer, receiver), "pairwise": _pairwise_round(n)}, runs
            )
        finally:
            gc.enable()
        mls, pairwise = timings["mls"], timings["pairwise"]
        process = sorted(float(e["process_s"]) for e in mls.extras)  # type: ignore[arg-type]
        row = {
            "members": n,
            "commit_ms": round(mls.median * 1000, 3),
            "process_ms": round(process[len(process) // 2] * 1000, 3),
            "pairwise_ms": round(pairwise.median * 1000, 3),
            "commit_samples_ms": [round(s * 1000, 3) for s in mls.samples],
            "build_s": round(build_s, 2),
            "epoch_after": committer.epoch,
        }
        results.append(row)
        if verbose:
            print(
                f"   {n:5d} members: commit {row['commit_ms']:8.2f} ms, process "
                f"{row['process_ms']:8.2f} ms, pairwise {row['pairwise_ms']:8.2f} ms "
                f"(built in {build_s:.1f} s)",
                flush=True,
            )
    out: dict[str, Any] = {"results": results, "runs": runs, "suite": 1}
    by_size = {r["members"]: r for r in results}
    if 8 in by_size and 1024 in by_size:
        low, high = by_size[8], by_size[1024]
        growth = high["commit_ms"] / low["commit_ms"]
        out["growth_8_to_1024"] = round(growth, 2)
        out["process_growth_8_to_1024"] = round(high["process_ms"] / low["process_ms"], 2)
        out["pairwise_growth_8_to_1024"] = round(high["pairwise_ms"] / low["pairwise_ms"], 2)
        out["target"] = {"growth_8_to_1024_max": TARGET_GROWTH, "met": growth <= TARGET_GROWTH}
    return out


def run() -> dict[str, object]:
    """Entry point of ``benchmarks/run.py`` (runs: ``ENKRYPTED_BENCH_RUNS``, default 7)."""
    raw = os.environ.get("ENKRYPTED_BENCH_RUNS", "").strip()
    return measure(runs=max(int(raw), 7) if raw else 7, verbose=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    out = measure(runs=args.runs, sizes=sizes, verbose=True)
    _import_paths()
    from common import machine_info

    out["machine"] = machine_info()
    path = HERE / "results" / "mls.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k not in ("results", "machine")}, indent=2))


if __name__ == "__main__":
    main()
