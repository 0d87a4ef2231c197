"""``startup``: verified load by the shell vs. the same plugins loaded with plain pluggy.

Real wheels of enkrypted-shell, -p2p, -ui-cli and -crypto are built and installed (not editable) into
a throw-away environment.  Each sample is a fresh process of that environment's Python, timed inside
the process with ``time.perf_counter`` from just before the first import of our code / pluggy to a
loaded set of services, so interpreter start-up (identical on both sides) is excluded:

* **verified** — ``prepare`` (``_pipeline.plan``) then ``load`` (``_pipeline.wiring``); ``load(prepare(options))`` with
  a benchmark home: discover, read manifests, select, hash every installed file against RECORD,
  skew-check, write the hash-chained load log, import and register, wire crypto -> p2p -> ui.
* **pluggy** — ``import pluggy``; ``PluginManager("enkrypted")``, ``add_hookspecs(hookspecs)``,
  ``load_setuptools_entrypoints("enkrypted.plugins")``, ``check_pending()`` and the same three service
  hooks.  Same plugins, same imports, no verification.

Both sides get one unmeasured warm-up process first, so both read warm bytecode: pluggy's from the
``__pycache__`` pip compiled at install, the shell's plugin code from its content-addressed code
cache ``HOME/bytecode`` (ADR 0005; the first run compiles into it).  Samples are interleaved
A/B, B/A, ... and the medians are reported.
"""

from __future__ import annotations

__all__ = ["measure", "run"]

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from common import TIMED_SNIPPET, bench_runs, median, medians_by_key, side_by_side

from tools.workspace import DISTS, ROOT, build_wheels, make_env

CORE = ("enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto")
EXPECTED = {"crypto": "crypto-pyca", "p2p": "p2p-webrtc", "ui": "ui-cli"}
TARGET_RATIO = 1.5
DEFAULT_RUNS = 31

VERIFIED = r'''
import json, sys, time
from pathlib import Path

home = Path(sys.argv[1])
if sys.argv[2:] == ["no-verdict"]:  # a first start after an install: no remembered skew verdict
    (home / "cache" / "skew-verdicts.json").unlink(missing_ok=True)
lock = home / "plugins.lock.toml" if "locked" in sys.argv[2:] else None  # whole-closure check
listen = "listen" in sys.argv[2:]  # then also import what `listen` imports (aiortc)
t0 = time.perf_counter()
if lock is not None:  # what the launcher does before any third-party import (_boot.guard_locked)
    from enkrypted_shell._boot import guard_locked
    guard_locked(home, lock)
t_guard = time.perf_counter()
import enkrypted_shell._pipeline.plan as rt
import enkrypted_shell._pipeline.wiring as wiring
from enkrypted_shell._pipeline.plan import StartOptions, prepare
from enkrypted_shell._pipeline.wiring import load
t_import = time.perf_counter()

# Breakdown: wrap the pipeline's steps (a few calls per load; the wrappers cost microseconds).
from enkrypted_shell._state.loadlog import LoadLog
@@TIMED@@
rt.discover = timed("discover", rt.discover)
rt.verify_distribution = timed("verify", rt.verify_distribution)
if hasattr(rt, "_check_skew"):  # the skew check or its remembered verdict
    rt._check_skew = timed("skew", rt._check_skew)
else:
    rt.check_skew = timed("skew", rt.check_skew)
wiring._register = timed("import_plugins", wiring._register)
for name in ("verify_release", "verify_provenance"):  # the signature step
    if hasattr(rt, name):
        setattr(rt, name, timed("signature", getattr(rt, name)))
        break
LoadLog.append_many = timed("load_log", LoadLog.append_many)
rt._check_libraries = timed("libraries", rt._check_libraries)

t_wrapped = time.perf_counter()
options = StartOptions(home=home, lock_path=lock)
plan = prepare(options)
t_prepared = time.perf_counter()
services = load(plan, options)
t_loaded = time.perf_counter()
if listen:  # the p2p plugin's commands module: the webrtc transport, aiortc and what it imports
    import enkrypted_p2p.chat
t1 = time.perf_counter()

assert services.crypto and services.transport and services.ui
plugins = {slot: p.candidate.name for slot, p in plan.plugins.items()}
files = sum(p.integrity.files_checked for p in plan.plugins.values() if p.integrity)
signed = all(getattr(p, "provenance", None) is not None for p in plan.plugins.values())
wiring = (t1 - t_prepared) - spent.get("import_plugins", 0.0)
from enkrypted_shell._pipeline.lazylock import LockedImportGuard
guard = next((f for f in sys.meta_path if isinstance(f, LockedImportGuard)), None)
breakdown = {
    "libraries_up_front": t_guard - t0,
    "import_shell": t_import - t_guard,
    "discover": spent.get("discover", 0.0),
    "verify": spent.get("verify", 0.0),
    "skew": spent.get("skew", 0.0),
    "load_log": spent.get("load_log", 0.0),
    "signature": spent.get("signature", 0.0),
    "libraries": spent.get("libraries", 0.0),
    "import_plugins": spent.get("import_plugins", 0.0),
    "listen_imports": t1 - t_loaded,
}
breakdown["other"] = (t1 - t0) - (t_wrapped - t_import) - sum(breakdown.values())
if guard is not None:  # part of the times above: hashing by the lock guard, and what it hashed
    breakdown["guard_hashing"] = guard.stats.hash_seconds
    breakdown["guard_files_up_front"] = guard.stats.up_front_files
    breakdown["guard_files_at_import"] = guard.stats.imported_files + guard.stats.shared_files
    breakdown["guard_mb_at_import"] = (guard.stats.imported_bytes + guard.stats.shared_bytes) / 1e6
print(json.dumps({"seconds": (t1 - t0) - (t_wrapped - t_import), "plugins": plugins,
                  "files_hashed": files, "signed": signed, "breakdown": breakdown, "wiring": wiring}))
'''

PLUGGY = r'''
import json, sys, time
from pathlib import Path

home = Path(sys.argv[1])
t0 = time.perf_counter()
import pluggy
from enkrypted_shell import hookspecs
from enkrypted_shell.contracts import AppContext
t_import = time.perf_counter()
pm = pluggy.PluginManager("enkrypted")
pm.add_hookspecs(hookspecs)
pm.load_setuptools_entrypoints("enkrypted.plugins")
t_loaded = time.perf_counter()
pm.check_pending()
context = AppContext(home, {}, False)
crypto = pm.hook.enkrypted_crypto_service(context=context)
transport = pm.hook.enkrypted_transport_service(context=context, crypto=crypto)
ui = pm.hook.enkrypted_ui_service(context=context, crypto=crypto, transport=transport)
if sys.argv[2:] == ["listen"]:
    import enkrypted_p2p.chat
t1 = time.perf_counter()

assert crypto and transport and ui
names = sorted(name for name, _ in pm.list_name_plugin())
print(json.dumps({"seconds": t1 - t0, "plugins": names,
                  "breakdown": {"import_pluggy": t_import - t0,
                                "load_entrypoints": t_loaded - t_import,
                                "services": t1 - t_loaded}}))
'''


def _clean_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "ENKRYPTED_DEV")
        and not k.startswith("ENKRYPTED_")
    }
    env["ENKRYPTED_HOME"] = str(home)
    return env


class _Driver:
    """One side of the benchmark: a script run in a fresh process of the environment's Python."""

    def __init__(self, python: Path, script: Path, home: Path, *args: str) -> None:
        self.python, self.script, self.home, self.args = python, script, home, args
        self.process_wall: list[float] = []

    def __call__(self) -> tuple[float, Mapping[str, object]]:
        start = time.perf_counter()
        proc = subprocess.run(
            [str(self.python), str(self.script), str(self.home), *self.args],
            capture_output=True, text=True, env=_clean_env(self.home), cwd=self.script.parent,
            timeout=300, check=False,
        )
        self.process_wall.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.script.name} failed ({proc.returncode}):\n{proc.stderr}")
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        return float(data["seconds"]), data


def _provision_provenance(wheels: Sequence[Path], home: Path) -> bool:
    """Put HOME in the state `enkrypted plugins install` leaves it in, so the signature step is
    measured too: one Ed25519 publisher key trusted for every slot in ``HOME/trust.toml``, and per
    plugin wheel the registry's signed provenance (DSSE / in-toto, PEP 740-shaped, made by
    ``enkrypted_registry.attestation.provenance_document`` exactly as `publish` makes it) stored in
    ``HOME/provenance/``.  Returns False when this shell has no provenance store (nothing to do)."""
    for src in (ROOT / "shell" / "src", ROOT / "registry" / "src"):
        if str(src) not in sys.path:
            sys.path.insert(0, str(src))
    try:
        from enkrypted_shell._state.provenance_store import ProvenanceStore, StoredProvenance
    except ImportError:
        return False
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from enkrypted_registry.attestation import provenance_document
    from enkrypted_registry.wheel import inspect_wheel
    from enkrypted_shell._trust.policy import ed25519_keyid

    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes_raw()
    keyid = ed25519_keyid(raw)
    home.mkdir(parents=True, exist_ok=True)
    policy = "version = 1\n" + "".join(
        f'\n[slots.{slot}]\nkeys = ["{raw.hex()}"]\n' for slot in EXPECTED
    )
    (home / "trust.toml").write_text(policy, "utf-8")
    store = ProvenanceStore(home)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for wheel in wheels:
        if wheel.name.startswith("enkrypted_shell-"):
            continue
        info = inspect_wheel(wheel)
        store.put(StoredProvenance(
            distribution=info.name,
            version=info.version,
            slot=info.slot,
            wheel_filename=info.filename,
            wheel_sha256=info.sha256,
            index="file:///benchmark/simple/",
            tuf_role=info.slot,
            target_path=f"plugins/{info.slot}/{info.filename}",
            installed_at=now,
            provenance=json.loads(provenance_document(info, key, keyid)),
        ))
    return True


def _lock(enkrypted: Path, home: Path) -> int:
    """`enkrypted plugins lock` in the benchmark environment; returns the library files pinned."""
    env = _clean_env(home)
    env["ENKRYPTED_ALLOW_UNSIGNED"] = "0"
    proc = subprocess.run([str(enkrypted), "plugins", "lock"], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"plugins lock failed:\n{proc.stderr}")
    import tomllib

    doc = tomllib.loads((home / "plugins.lock.toml").read_text("utf-8"))
    return sum(len(lib["files"]) for lib in doc["libraries"])


def _profile(python: Path, script: Path, home: Path, top: int = 15) -> list[dict[str, object]]:
    """cProfile of one (warm) verified load in a fresh process: the top functions by own time."""
    stats = script.parent / "verified.prof"
    subprocess.run(
        [str(python), "-m", "cProfile", "-o", str(stats), str(script), str(home)],
        check=True, capture_output=True, env=_clean_env(home), cwd=script.parent, timeout=300,
    )
    code = (
        "import json, pstats, sys\n"
        "s = pstats.Stats(sys.argv[1]).stats\n"
        "rows = sorted(s.items(), key=lambda kv: kv[1][2], reverse=True)[:int(sys.argv[2])]\n"
        "print(json.dumps([{'function': f'{fn[0]}:{fn[1]}({fn[2]})', 'calls': v[1],\n"
        "                   'tottime_s': round(v[2], 6), 'cumtime_s': round(v[3], 6)}\n"
        "                  for fn, v in rows]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(stats), str(top)],
        check=True, capture_output=True, text=True,
    )
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


def measure(wheels: Sequence[Path], workdir: Path, runs: int, *, profile: bool | None = None) -> dict[str, object]:
    """The benchmark over already built ``wheels``; ``profile=None`` profiles only over target."""
    env = make_env(workdir / "env")
    env.install(*wheels)
    scripts = workdir / "drivers"
    scripts.mkdir()
    (scripts / "verified_load.py").write_text(VERIFIED.replace("@@TIMED@@", TIMED_SNIPPET), "utf-8")
    (scripts / "pluggy_load.py").write_text(PLUGGY, "utf-8")
    verified = _Driver(env.python, scripts / "verified_load.py", workdir / "home-verified")
    plain = _Driver(env.python, scripts / "pluggy_load.py", workdir / "home-pluggy")
    plain.home.mkdir()
    _provision_provenance(wheels, verified.home)

    cold = _Driver(env.python, scripts / "verified_load.py", workdir / "home-no-verdict", "no-verdict")
    _provision_provenance(wheels, cold.home)
    locked = _Driver(env.python, scripts / "verified_load.py", workdir / "home-locked", "locked")
    _provision_provenance(wheels, locked.home)
    lock_files = _lock(env.bin / "enkrypted", locked.home)
    # The `listen` path: the same starts, then the p2p plugin's commands module (aiortc and all it
    # imports, PyAV's bundled libraries included); locked vs. plain pluggy doing the same imports.
    locked_listen = _Driver(env.python, scripts / "verified_load.py", locked.home, "locked", "listen")
    plain_listen = _Driver(env.python, scripts / "pluggy_load.py", plain.home, "listen")

    timings = side_by_side(
        {"verified": verified, "pluggy": plain, "verified_no_verdict": cold, "verified_locked": locked},
        runs,
        warmup=1,
    )
    listen_runs = max(3, runs // 3)
    listening = side_by_side({"locked_listen": locked_listen, "pluggy_listen": plain_listen}, listen_runs, warmup=1)
    ll, pl = listening["locked_listen"], listening["pluggy_listen"]
    v, p, c = timings["verified"], timings["pluggy"], timings["verified_no_verdict"]
    lk = timings["verified_locked"]
    signed = all(extra.get("signed") for extra in v.extras)
    for extra in v.extras:
        if extra["plugins"] != EXPECTED:
            raise RuntimeError(f"verified side loaded {extra['plugins']}, expected {EXPECTED}")
    for extra in p.extras:
        if extra["plugins"] != sorted(EXPECTED.values()):
            raise RuntimeError(f"pluggy side loaded {extra['plugins']}, expected the same plugins")

    ratio = v.median / p.median
    result: dict[str, object] = {
        "verified_load_s": round(v.median, 6),
        "pluggy_load_s": round(p.median, 6),
        "ratio": round(ratio, 3),
        "runs": runs,
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
        "warmup_runs": 1,
        "method": "fresh process per sample, timed in-process (interpreter start-up excluded); "
        "interleaved A/B, B/A; medians; one warm-up process per side (warm bytecode caches); "
        "verified = a repeat start (remembered skew verdict), verified_no_verdict = the first start "
        "after an install",
        "plugins": EXPECTED,
        "files_hashed": v.extras[0]["files_hashed"],
        "provenance_verified": signed,
        "overhead_s": round(v.median - p.median, 6),
        # The first start after an install or upgrade: no remembered skew verdict, so packaging's
        # PEP 440/508 parsers are imported and the full skew check runs (docs: skew.SkewVerdicts).
        "verified_no_verdict_s": round(c.median, 6),
        "ratio_no_verdict": round(c.median / p.median, 3),
        "paired_ratio_median": round(median([a / b for a, b in zip(v.samples, p.samples, strict=True)]), 3),
        # --locked: the plugins against the lock, and every file of every library they and the
        # shell run on re-hashed (lock 2.0, docs/trust-model.md).
        "verified_locked_s": round(lk.median, 6),
        "ratio_locked": round(lk.median / p.median, 3),
        "target_ratio_locked": 2.0,
        "locked_library_files": lock_files,
        "locked_breakdown_s": medians_by_key(lk.extras, "breakdown"),
        # --locked start that then imports what `listen` imports (aiortc, PyAV and its libraries).
        "locked_listen_s": round(ll.median, 6),
        "pluggy_listen_s": round(pl.median, 6),
        "ratio_locked_listen": round(ll.median / pl.median, 3),
        "listen_runs": listen_runs,
        "locked_listen_breakdown_s": medians_by_key(ll.extras, "breakdown"),
        "verified_breakdown_s": medians_by_key(v.extras, "breakdown"),
        "pluggy_breakdown_s": medians_by_key(p.extras, "breakdown"),
        "verified_samples_s": [round(s, 6) for s in v.samples],
        "pluggy_samples_s": [round(s, 6) for s in p.samples],
        "verified_process_wall_s": round(median(verified.process_wall[1:]), 6),
        "pluggy_process_wall_s": round(median(plain.process_wall[1:]), 6),
    }
    if profile or (profile is None and ratio > TARGET_RATIO):
        result["verified_profile_top"] = _profile(env.python, scripts / "verified_load.py", verified.home)
    return result


def run() -> dict[str, object]:
    missing = [
        str(path.relative_to(ROOT))
        for path in (DISTS["enkrypted-crypto"] / "src" / "enkrypted_crypto" / "plugin.py",)
        if not path.exists()
    ]
    if missing:
        raise RuntimeError(f"cannot build a loadable enkrypted-crypto: {', '.join(missing)} is missing")
    with tempfile.TemporaryDirectory(prefix="enkrypted-bench-startup-") as tmp:
        work = Path(tmp)
        wheels = build_wheels([DISTS[name] for name in CORE], work / "wheels")
        return measure(wheels, work, bench_runs(DEFAULT_RUNS))

