"""Prints the per-file RFC 9420 vector summaries at the end of the run."""

from __future__ import annotations

import pytest
from mls_vector_harness import SUMMARIES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARIES:
        terminalreporter.section("RFC 9420 conformance vectors")
        for name in sorted(SUMMARIES):
            terminalreporter.write_line(SUMMARIES[name])
