"""The soak's accounting: every peer's event log (``soak_peer``) read back into what was sent,
delivered and acknowledged per direction, and the verdicts the test asserts on.

Rules (docs/operations.md "Soak run"):

* a message is **confirmed** once ``send_text`` returned its id (it is persisted by then: kept
  until acknowledged); a message whose ``intent`` was logged but not its return (the sender was
  killed in between) *may* exist;
* every confirmed message is delivered **exactly once**, and nothing is delivered that was neither
  confirmed nor intended (``phantom``); deliveries per direction come in sequence order;
* every confirmed message is acknowledged: a receipt in the sender's log, or, when the sender was
  SIGKILLed after sending it, at least gone from the sender's final unacknowledged list (the core
  took the receipt and persisted that; the process died before it logged the event).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any


def read_events(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / "events.jsonl"
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:  # a line cut by SIGKILL mid-write (never seen: one write per line)
            events.append({"e": "torn"})
    return events


def unacknowledged(state_dir: Path, partner: str) -> list[str]:
    """Message ids the peer's last persisted session still waits receipts for."""
    path = state_dir / "sessions.json"
    if not path.is_file():
        return []
    record = json.loads(path.read_text()).get("sessions", {}).get(partner.encode().hex())
    if record is None:
        return []
    body = json.loads(bytes.fromhex(record)[7:])
    return [mid for mid, _ in body["unacknowledged"]]


@dataclass
class Direction:
    """One way of one pair: ``sender`` -> ``receiver``."""

    sender: str
    receiver: str
    confirmed: dict[str, int] = field(default_factory=dict)  # id -> seq
    sent_at: dict[str, float] = field(default_factory=dict)
    intended: set[int] = field(default_factory=set)  # seqs that may exist
    delivered: list[tuple[str, int, float]] = field(default_factory=list)  # id, seq, time
    receipts: set[str] = field(default_factory=set)
    refused: int = 0
    again: int = 0  # handed up again after a restart, already in the receiver's history
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    out_of_order: list[tuple[int, int]] = field(default_factory=list)
    missing_receipts: list[str] = field(default_factory=list)
    receipts_excused: int = 0
    latencies: list[float] = field(default_factory=list)


def _seq_of(text: str) -> int:
    return int(text.split("#", 1)[1].split(" ", 1)[0])


def direction(sender: str, s_events: list[dict[str, Any]], receiver: str,
              r_events: list[dict[str, Any]], *, s_kills: list[float],
              s_final_unacked: list[str]) -> Direction:
    """Account one direction from the two logs; ``s_kills``: when the sender was SIGKILLed."""
    d = Direction(sender, receiver)
    for e in s_events:
        if e["e"] == "intent":
            d.intended.add(e["seq"])
        elif e["e"] == "sent":
            d.confirmed[e["id"]] = e["seq"]
            d.sent_at[e["id"]] = e["t"]
        elif e["e"] == "refused":
            d.intended.discard(e["seq"])
            d.refused += 1
        elif e["e"] == "receipt":
            d.receipts.add(e["id"])
    prefix = f"{sender}>{receiver}#"
    for e in r_events:
        if e["e"] == "msg" and e["text"].startswith(prefix):
            d.delivered.append((e["id"], _seq_of(e["text"]), e["t"]))
        elif e["e"] == "again" and e["id"] in d.confirmed:
            d.again += 1
    counts = Counter(mid for mid, _, _ in d.delivered)
    d.duplicated = sorted(mid for mid, n in counts.items() if n > 1)
    d.lost = sorted(mid for mid in d.confirmed if mid not in counts)
    confirmed_seqs = set(d.confirmed.values())
    d.phantom = sorted(mid for mid, seq, _ in d.delivered
                       if mid not in d.confirmed and seq not in d.intended - confirmed_seqs)
    seqs = [seq for _, seq, _ in d.delivered]
    d.out_of_order = [(a, b) for a, b in pairwise(seqs) if b <= a]
    still = set(s_final_unacked)
    for mid in d.confirmed:
        if mid in d.receipts:
            continue
        if mid not in still and any(k > d.sent_at[mid] for k in s_kills):
            d.receipts_excused += 1
        else:
            d.missing_receipts.append(mid)
    d.latencies = [t - d.sent_at[mid] for mid, _, t in d.delivered if mid in d.sent_at]
    return d


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def summary(directions: list[Direction]) -> dict[str, Any]:
    latencies = [x for d in directions for x in d.latencies]
    return {
        "messages_sent": sum(len(d.confirmed) for d in directions),
        "handed_up_again": sum(d.again for d in directions),
        "messages_delivered": sum(len(d.delivered) for d in directions),
        "sends_refused": sum(d.refused for d in directions),
        "lost": sum(len(d.lost) for d in directions),
        "duplicated": sum(len(d.duplicated) for d in directions),
        "phantom": sum(len(d.phantom) for d in directions),
        "out_of_order": sum(len(d.out_of_order) for d in directions),
        "missing_receipts": sum(len(d.missing_receipts) for d in directions),
        "receipts_lost_with_a_killed_sender": sum(d.receipts_excused for d in directions),
        "latency_p50_s": round(percentile(latencies, 0.50), 3),
        "latency_p99_s": round(percentile(latencies, 0.99), 3),
        "latency_max_s": round(max(latencies, default=math.nan), 3),
    }


def failures(directions: list[Direction]) -> list[str]:
    """One line per broken rule (empty: the run passed)."""
    out = []
    for d in directions:
        name = f"{d.sender}->{d.receiver}"
        for what in ("lost", "duplicated", "phantom", "out_of_order", "missing_receipts"):
            items = getattr(d, what)
            if items:
                out.append(f"{name}: {len(items)} {what}: {items[:5]}")
        if not d.confirmed:
            out.append(f"{name}: nothing was sent")
    return out
