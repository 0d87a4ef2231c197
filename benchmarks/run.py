"""Run the benchmarks and write ``benchmarks/results/NAME.json`` (DESIGN.md §12).

A benchmark is a module ``benchmarks/bench_<NAME>.py`` exposing ``def run() -> dict`` that returns
the flat JSON object of §12 for NAME (its contract keys, ``"runs"``, and any extra keys).  This
runner adds ``"machine"`` and writes the file.  A module without a top-level ``run()`` is run as a
script instead (it must write its own JSON); the runner then adds ``"machine"`` if missing and
reports it as off-contract.

    python benchmarks/run.py               # all of them
    python benchmarks/run.py --only startup
    python benchmarks/run.py --list
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

for _path in (str(HERE), str(ROOT)):  # `import common` and `from tools.workspace import ...`
    if _path not in sys.path:
        sys.path.insert(0, _path)

from common import machine_info  # noqa: E402

CONTRACT: dict[str, tuple[str, ...]] = {
    "startup": ("verified_load_s", "pluggy_load_s", "ratio"),
    "cascade": ("results", "aesgcm_mb_per_s_1m", "aesgcm_msg_1k_per_s"),
    "mls": ("results",),
    "transport": (
        "rtt_p50_ms", "rtt_p99_ms", "raw_rtt_p50_ms", "raw_rtt_p99_ms",
        "throughput_mb_s", "raw_throughput_mb_s",
    ),
    "files": ("fast_mb_s", "standard_mb_s", "raw_mb_s", "size_mb"),
    "broker": (
        "ours_connections", "ours_relay_per_s", "peerjs_connections", "peerjs_relay_per_s",
        "ours_rss_per_client_kb", "peerjs_rss_per_client_kb", "ours_cpu_us_per_msg",
        "peerjs_cpu_us_per_msg", "redis_two_brokers_relay_per_s",
    ),
    "registry": ("verified_install_s", "pip_install_s", "ratio"),
    "groups": ("results",),
}
"""Keys each benchmark must report (DESIGN.md §12), besides ``machine`` and ``runs``."""

RESULT_ITEM_KEYS: dict[str, tuple[str, ...]] = {
    "cascade": ("profile", "backend", "msg_1k_per_s", "mb_per_s_1m"),
    "mls": ("members", "commit_ms", "process_ms", "pairwise_ms"),
    "groups": (
        "members", "delivery_ms_p50", "delivery_ms_p99", "wire_bytes_per_msg",
        "pairwise_delivery_ms_p50",
    ),
}


def available() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def has_run(path: Path) -> bool:
    """A top-level ``def run`` (checked without importing, so a script does not start on import)."""
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "run"
        for node in tree.body
    )


def import_bench(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def problems(name: str, result: dict[str, object], *, via_script: bool) -> list[str]:
    """Ways a result departs from the §12 contract (empty when it follows it)."""
    found = []
    if via_script:
        found.append(f"bench_{name}.py has no top-level run() -> dict; ran it as a script")
    missing = [k for k in CONTRACT.get(name, ()) if k not in result]
    if missing:
        found.append(f"missing keys: {', '.join(missing)}")
    if "runs" not in result:
        found.append('missing "runs"')
    items = result.get("results")
    if name in RESULT_ITEM_KEYS and isinstance(items, list):
        for i, item in enumerate(items):
            lacking = [k for k in RESULT_ITEM_KEYS[name] if not isinstance(item, dict) or k not in item]
            if lacking:
                found.append(f"results[{i}] lacks {', '.join(lacking)}")
                break
    return found


def run_as_script(name: str, path: Path) -> dict[str, object]:
    out = RESULTS / f"{name}.json"
    before = out.stat().st_mtime_ns if out.exists() else None
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT)])
    subprocess.run([sys.executable, str(path)], check=True, cwd=ROOT, env=env)
    if not out.exists() or out.stat().st_mtime_ns == before:
        raise RuntimeError(f"bench_{name}.py ran as a script but did not write {out}")
    data = json.loads(out.read_text("utf-8"))
    if not isinstance(data, dict):
        raise TypeError(f"{out} is not a JSON object")
    return data


def run_one(name: str, path: Path) -> tuple[dict[str, object], list[str]]:
    via_script = not has_run(path)
    start = time.perf_counter()
    if via_script:
        result = run_as_script(name, path)
    else:
        result = import_bench(name, path).run()
        if not isinstance(result, dict):
            raise TypeError(f"bench_{name}.run() returned {type(result).__name__}, not dict")
    elapsed = time.perf_counter() - start
    issues = problems(name, result, via_script=via_script)
    result = dict(result)
    result.setdefault("machine", machine_info())
    result.setdefault("benchmark", name)
    result.setdefault("generated_at", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    result.setdefault("git_commit", _git_commit())
    result.setdefault("bench_wall_s", round(elapsed, 3))
    if issues:
        result["off_contract"] = issues
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    return result, issues


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def _summary(name: str, result: dict[str, object]) -> str:
    keys = [*CONTRACT.get(name, ()), "runs"]
    shown = {k: result[k] for k in keys if k in result and k != "results"}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this benchmark (repeatable, or comma-separated)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    found = available()
    if args.list:
        for name, path in found.items():
            print(f"{name:12} {path.relative_to(ROOT)}{'' if has_run(path) else '  (script, no run())'}")
        return 0
    wanted = [n for item in args.only or [] for n in item.split(",") if n] or list(found)
    unknown = [n for n in wanted if n not in found]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(found) or 'none'}",
              file=sys.stderr)
        return 2

    failed, off = [], []
    for name in wanted:
        print(f"== {name}", flush=True)
        try:
            result, issues = run_one(name, found[name])
        except Exception:  # report it and go on with the others
            traceback.print_exc()
            failed.append(name)
            continue
        print(f"   {_summary(name, result)}")
        print(f"   -> {(RESULTS / f'{name}.json').relative_to(ROOT)}")
        for issue in issues:
            print(f"   OFF-CONTRACT: {issue}", file=sys.stderr)
        if issues:
            off.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    if off:
        print(f"off-contract (DESIGN.md §12): {', '.join(off)}", file=sys.stderr)
    return 1 if failed or off else 0


if __name__ == "__main__":
    sys.exit(main())
