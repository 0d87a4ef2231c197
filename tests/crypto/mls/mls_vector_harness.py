"""Runs one RFC 9420 vector file case by case and records a per-file summary.

Every case of an implemented suite runs; a case of another suite is counted as skipped with the
reason from ``enkrypted_crypto.mls._suite.UNSUPPORTED_REASONS`` ("suite 4: X448/Ed448 not
implemented").  The summaries are printed at the end of the run by a small plugin registered
on first use (a ``conftest.py`` here would shadow ``tests/crypto/conftest.py``, which other test
modules import by that name).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from enkrypted_crypto.mls._suite import SUITES, UNSUPPORTED_REASONS
from tests.vectors import mls

SUMMARIES: dict[str, str] = {}


@dataclass
class FileRun:
    name: str
    total: int = 0
    ran: int = 0
    passed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.name}: {self.passed}/{self.ran} passed"
        if self.skipped:
            reasons = "; ".join(
                f"{reason} ({n} cases)" for reason, n in sorted(self.skipped.items())
            )
            text += f", {sum(self.skipped.values())} skipped: {reasons}"
        return text


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def run_file(name: str, check: Callable[[dict[str, Any]], None]) -> FileRun:
    """Run ``check`` on every case; exceptions are recorded as failures with the case index."""
    entries = mls(name)
    run = FileRun(name, total=len(entries))
    for index, entry in enumerate(entries):
        suite_id = entry.get("cipher_suite")
        if suite_id is not None and suite_id not in SUITES:
            run.skipped[UNSUPPORTED_REASONS[suite_id]] += 1
            continue
        run.ran += 1
        try:
            check(entry)
        except Exception as exc:  # recorded, then asserted empty below
            run.failures.append(f"case {index} (suite {suite_id}): {exc!r}")
        else:
            run.passed += 1
    SUMMARIES[name] = run.summary()
    return run


class _SummaryPlugin:
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if SUMMARIES:
            terminalreporter.section("RFC 9420 conformance vectors")
            for name in sorted(SUMMARIES):
                terminalreporter.write_line(SUMMARIES[name])


def _register_summary(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("mls-vector-summary"):
        config.pluginmanager.register(_SummaryPlugin(), "mls-vector-summary")


def assert_file(
    request: pytest.FixtureRequest,
    name: str,
    check: Callable[[dict[str, Any]], None],
    expected_run: int,
) -> None:
    """All runnable cases pass, and exactly ``expected_run`` cases ran (no silent skipping)."""
    _register_summary(request.config)
    run = run_file(name, check)
    print(run.summary())
    assert not run.failures, "\n".join(run.failures[:10])
    assert run.ran == expected_run, f"{name}: expected {expected_run} cases to run, ran {run.ran}"
    assert run.passed + sum(run.skipped.values()) == run.total
