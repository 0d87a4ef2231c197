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


# ---------------------------------------------------------------------------------- the group
@dataclass
class GroupLedger:
    """Every group message against every member it was for (docs/protocol.md §9.3: delivered once
    to each member of its audience, receipted to its sender; no order is promised, none checked)."""

    sent: int = 0
    refused: int = 0
    deliveries_expected: int = 0
    delivered: int = 0
    again: int = 0
    lost: list[str] = field(default_factory=list)  # "id->member"
    duplicated: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    missing_receipts: list[str] = field(default_factory=list)
    receipts_excused: int = 0
    latencies: list[float] = field(default_factory=list)


def group(logs: dict[str, list[dict[str, Any]]], kills: dict[str, list[float]]) -> GroupLedger:
    """``logs``: every peer's events by name; ``kills``: when each was SIGKILLed."""
    g = GroupLedger()
    sent: dict[str, tuple[str, int, float, list[str]]] = {}  # id -> sender, seq, t, audience
    maybe: set[tuple[str, int]] = set()  # (sender, seq) intended but never confirmed
    receipts: set[tuple[str, str]] = set()
    for name, events in logs.items():
        intents = {e["seq"] for e in events if e["e"] == "gintent"}
        confirmed = {e["seq"] for e in events if e["e"] in ("gsent", "grefused")}
        maybe |= {(name, seq) for seq in intents - confirmed}
        for e in events:
            if e["e"] == "gsent":
                sent[e["id"]] = (name, e["seq"], e["t"], e["members"])
            elif e["e"] == "grefused":
                g.refused += 1
            elif e["e"] == "greceipt":
                receipts.add((e["id"], e["member"]))
    g.sent = len(sent)
    got: Counter[tuple[str, str]] = Counter()
    for name, events in logs.items():
        for e in events:
            if e["e"] == "gagain":
                g.again += 1
            if e["e"] != "gmsg":
                continue
            got[(e["id"], name)] += 1
            g.delivered += 1
            if e["id"] in sent:
                g.latencies.append(e["t"] - sent[e["id"]][2])
            elif (e["sender"], _seq_of(e["text"].replace("@g#", "#"))) not in maybe:
                g.phantom.append(f"{e['id']}->{name}")
    for mid, (sender, _, t, audience) in sent.items():
        for member in audience:
            g.deliveries_expected += 1
            key = f"{mid}->{member}"
            if got[(mid, member)] == 0:
                g.lost.append(key)
            elif got[(mid, member)] > 1:
                g.duplicated.append(key)
            if (mid, member) in receipts:
                continue
            if any(k > t for k in kills.get(sender, [])):
                g.receipts_excused += 1  # the sender died after sending: its event may be gone
            else:
                g.missing_receipts.append(key)
    return g


def group_summary(g: GroupLedger) -> dict[str, Any]:
    return {
        "group_messages_sent": g.sent, "group_sends_refused": g.refused,
        "group_deliveries_expected": g.deliveries_expected, "group_delivered": g.delivered,
        "group_handed_up_again": g.again, "group_lost": len(g.lost),
        "group_duplicated": len(g.duplicated), "group_phantom": len(g.phantom),
        "group_missing_receipts": len(g.missing_receipts),
        "group_receipts_lost_with_a_killed_sender": g.receipts_excused,
        "group_latency_p50_s": round(percentile(g.latencies, 0.50), 3),
        "group_latency_p99_s": round(percentile(g.latencies, 0.99), 3),
    }


def group_failures(g: GroupLedger, expected: bool) -> list[str]:
    out = [f"group: {len(getattr(g, what))} {what}: {getattr(g, what)[:5]}"
           for what in ("lost", "duplicated", "phantom", "missing_receipts")
           if getattr(g, what)]
    if expected and not g.sent:
        out.append("group: nothing was sent")
    return out


# ---------------------------------------------------------------------------------- files
@dataclass
class FileLedger:
    offered: int = 0
    completed: int = 0
    bytes: int = 0
    resumed_after_restart: int = 0
    """Transfers during which the sender or the receiver process was restarted (killed or not)."""
    across_link_drops: int = 0
    """Transfers during which a link of that pair was dropped (the chaos's ``drop``)."""
    seconds: list[float] = field(default_factory=list)
    """From the offer to the receiver's verified file."""
    failures: list[str] = field(default_factory=list)


def _starts(events: list[dict[str, Any]]) -> list[float]:
    return [e["t"] for e in events if e["e"] == "start" and "t" in e][1:]  # restarts only


def files(sender: str, s_events: list[dict[str, Any]], receiver: str,
          r_events: list[dict[str, Any]], drops: list[float]) -> FileLedger:
    """Each file ``sender`` offered completes at ``receiver`` with the offered sha256 (its
    exported bytes too) and at ``sender``; none fails; nothing arrives that was not meant."""
    f = FileLedger()
    offers = {e["tid"]: e for e in s_events if e["e"] == "foffer"}
    meant = {e["sha256"] for e in s_events if e["e"] == "fintent"}
    f.offered = len(offers)
    received = {e["tid"]: e for e in r_events if e["e"] == "fdone" and not e["outgoing"]}
    sent_done = {e["tid"] for e in s_events if e["e"] == "fdone" and e["outgoing"]}
    restarts = _starts(s_events) + _starts(r_events)
    name = f"{sender}->{receiver}"
    for e in s_events + r_events:
        if e["e"] == "ffailed":
            f.failures.append(f"{name}: file {e['tid']} failed: {e['reason']}")
    for tid, offer in offers.items():
        got = received.get(tid)
        if got is None:
            f.failures.append(f"{name}: file {offer['n']} ({tid}) never completed")
            continue
        if not got["sha256"] == got["exported_sha256"] == offer["sha256"]:
            f.failures.append(f"{name}: file {offer['n']} ({tid}) has a wrong hash")
            continue
        f.completed += 1
        f.bytes += offer["size"]
        if tid not in sent_done:
            f.failures.append(f"{name}: file {offer['n']} ({tid}) never completed at the sender")
        window = (offer["t"], got["t"])
        f.seconds.append(got["t"] - offer["t"])
        f.resumed_after_restart += any(window[0] < t < window[1] for t in restarts)
        f.across_link_drops += any(window[0] < t < window[1] for t in drops)
    for tid, got in received.items():
        if tid not in offers and got["sha256"] not in meant:
            f.failures.append(f"{name}: a file nobody offered arrived ({tid})")
    return f


def file_summary(ledgers: list[FileLedger]) -> dict[str, Any]:
    return {
        "files_offered": sum(f.offered for f in ledgers),
        "files_completed_verified": sum(f.completed for f in ledgers),
        "file_bytes_verified": sum(f.bytes for f in ledgers),
        "transfers_resumed_after_restart": sum(f.resumed_after_restart for f in ledgers),
        "transfers_across_link_drops": sum(f.across_link_drops for f in ledgers),
        "file_seconds_p50": round(percentile([x for f in ledgers for x in f.seconds], 0.5), 2),
        "file_seconds_max": round(max((x for f in ledgers for x in f.seconds), default=math.nan),
                                  2),
    }
