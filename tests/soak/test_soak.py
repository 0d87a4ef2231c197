"""Soak: pairs of peer processes chat over real WebRTC through our broker for a bounded time while a
seeded chaos driver drops links, SIGKILLs and restarts peers (they come back from their persisted
sessions) and restarts the broker; then nothing may be lost, duplicated, reordered or left
unacknowledged, and no process may grow its RSS past the bound (docs/operations.md "Soak run").

The CI variant's chaos phase is 45 s per run; ``ENKRYPTED_SOAK_SECONDS`` makes it longer
(``make soak``), ``ENKRYPTED_SOAK_SEED`` replays a schedule, ``ENKRYPTED_SOAK_REPORT`` names a
file the JSON report is written to as well.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.soak.chaos import SoakSettings, soak

pytestmark = [pytest.mark.e2e, pytest.mark.soak, pytest.mark.timeout(3 * 3600)]


def publish(name: str, report: dict[str, Any]) -> None:
    print(f"\nsoak report ({name}):\n{json.dumps(report, indent=1)}")
    target = os.environ.get("ENKRYPTED_SOAK_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps({"variant": name, **report}) + "\n")


def check(report: dict[str, Any]) -> None:
    assert report["failures"] == [], report["failures"]
    assert report["messages_sent"] > 0 and report["reconnections"] > 0
    grown = [row for row in report["rss"]["processes"] if row["growth_kb"] > row["bound_kb"]]
    assert grown == [], grown


def test_pairs_lose_and_duplicate_nothing_through_drops_kills_and_broker_restarts(
        tmp_path: Path) -> None:
    settings = SoakSettings.from_env()
    with soak(tmp_path, settings) as run:
        report = run.run()
    publish("memory broker", report)
    check(report)


def test_pairs_across_two_brokers_sharing_redis_survive_a_broker_restart(
        tmp_path: Path, redis_server: int) -> None:
    settings = SoakSettings.from_env(pairs=2)
    extra = ("--redis", f"redis://127.0.0.1:{redis_server}/0", "--presence-ttl", "3")
    with soak(tmp_path, settings, broker_extra=extra, brokers=2) as run:
        report = run.run()
    publish("two brokers over redis", report)
    check(report)
