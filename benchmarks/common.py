"""Helpers shared by the benchmarks: machine description, medians, interleaved A/B timing.

Every benchmark reports medians over several runs and measures its baseline in the same run
(DESIGN.md §12), so a ratio holds even on a noisy machine.  :func:`side_by_side` is the tool for
that: it alternates the order of the two cases every round, so slow drift (thermal, another
process, page cache) hits both sides alike.
"""

from __future__ import annotations

__all__ = [
    "LIBRARIES",
    "TIMED_SNIPPET",
    "Timing",
    "bench_runs",
    "machine_info",
    "median",
    "medians_by_key",
    "median_time",
    "side_by_side",
]

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

LIBRARIES = ("cryptography", "pynacl", "pluggy", "aiortc")
"""Third-party libraries whose versions go into ``"machine"`` (those that are installed)."""


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text("utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_info(libraries: Sequence[str] = LIBRARIES) -> dict[str, object]:
    """CPU model, cores, Python and the versions of the installed ``libraries``."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    versions: dict[str, str] = {}
    for name in libraries:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "cores_usable": usable,
        "arch": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "libraries": versions,
    }


def bench_runs(default: int, minimum: int = 7) -> int:
    """Runs per case: ``default``, or ``ENKRYPTED_BENCH_RUNS`` if set (never below ``minimum``)."""
    raw = os.environ.get("ENKRYPTED_BENCH_RUNS", "").strip()
    wanted = int(raw) if raw else default
    return max(wanted, minimum)


def median(samples: Sequence[float]) -> float:
    if not samples:
        raise ValueError("no samples")
    return float(statistics.median(samples))


def medians_by_key(extras: Sequence[Mapping[str, object]], key: str) -> dict[str, float]:
    """Per name, the median over samples of ``extra[key][name]`` (e.g. a breakdown of steps)."""
    parts: dict[str, list[float]] = {}
    for extra in extras:
        for name, value in dict(extra[key]).items():  # type: ignore[call-overload]
            parts.setdefault(name, []).append(float(value))
    return {name: round(median(values), 6) for name, values in parts.items()}


@dataclass(frozen=True, slots=True)
class Timing:
    """Samples (seconds, or whatever the case returned) of one case and their median."""

    samples: tuple[float, ...]
    extras: tuple[Mapping[str, object], ...] = ()

    @property
    def median(self) -> float:
        return median(self.samples)

    @property
    def runs(self) -> int:
        return len(self.samples)


Case = Callable[[], "float | tuple[float, Mapping[str, object]] | None"]
"""A timed case.  It may measure itself and return seconds (optionally with extra data, e.g. a
breakdown), or return ``None`` to be timed from outside with ``time.perf_counter``."""


def _one(case: Case) -> tuple[float, Mapping[str, object]]:
    start = time.perf_counter()
    result = case()
    elapsed = time.perf_counter() - start
    if result is None:
        return elapsed, {}
    if isinstance(result, tuple):
        return float(result[0]), result[1]
    return float(result), {}


def median_time(case: Case, runs: int, *, warmup: int = 1) -> Timing:
    """Run ``case`` ``warmup`` times unmeasured, then ``runs`` times; see :data:`Case`."""
    for _ in range(warmup):
        _one(case)
    measured = [_one(case) for _ in range(runs)]
    return Timing(tuple(s for s, _ in measured), tuple(e for _, e in measured))


def side_by_side(
    cases: Mapping[str, Case], runs: int, *, warmup: int = 1
) -> dict[str, Timing]:
    """Time several cases interleaved: each round runs every case once, and the order is
    reversed every other round (A B, B A, A B, ...), so drift during the benchmark is shared.

    ``warmup`` rounds (same alternation) run first and are discarded.
    """
    names = list(cases)
    samples: dict[str, list[tuple[float, Mapping[str, object]]]] = {n: [] for n in names}
    for round_ in range(warmup + runs):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            measured = _one(cases[name])
            if round_ >= warmup:
                samples[name].append(measured)
    return {
        n: Timing(tuple(s for s, _ in samples[n]), tuple(e for _, e in samples[n]))
        for n in names
    }


# Source text injected into the benchmark driver scripts (they run in other interpreters):
# wraps a function so calls accumulate their time under a key in ``spent``.
TIMED_SNIPPET = """spent = {}
def timed(key, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - start
    return wrapper
"""
