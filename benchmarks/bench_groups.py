"""Group chat delivery (``make bench ONLY=groups``): one message to a group of 2, 4 and 8 members,
side by side with the pairwise baseline (the sender sends the same text over its N-1 1:1 chat
sessions), member processes over real aiortc data channels on loopback through our broker.

Setup: 8 processes of ``benchmarks/groups_peer.py`` (each a real ``EndpointChat``, the p2p
plugin's ``GroupChatService``, with the pyca crypto plugin); member 0 creates one group per size
and invites members 1..N-1 (the group of 8 makes the full mesh of 1:1 sessions, which the groups
of 2 and 4 and the pairwise baseline reuse).  Then, round by round, every size and both cases run
once, the order reversed every other round (``common.side_by_side``'s rule), after
``WARMUP`` discarded rounds.  A sample is one ``SIZE``-character text from member 0:

* **delivery** (``delivery_ms_*``): from ``time.monotonic()`` in the sender just before
  ``send_group_text`` (pairwise: before the first ``send_text``) to the last member's delivery
  event (``GroupChatMessage`` / ``ChatMessage`` as it reached that member's event stream);
  CLOCK_MONOTONIC is one clock for every process of the machine;
* **receipts** (``receipts_ms_p50``): to the sender's last receipt (one per member);
* **wire bytes** (``wire_bytes_per_msg``): the growth, over the sample, of the bytes every process
  handed to its data channels (sealed session PDUs: the message, relays if any, receipts and
  acknowledgements), read once every receipt is in and 0.2 s later.

Keys: ``results`` (one row per size: ``members``, ``delivery_ms_p50``, ``delivery_ms_p99``,
``wire_bytes_per_msg``, ``pairwise_delivery_ms_p50``, ``pairwise_delivery_ms_p99``,
``pairwise_wire_bytes_per_msg``, ``receipts_ms_p50``, ``pairwise_receipts_ms_p50``, the ratios,
every sample), ``runs``, ``text_chars``, ``setup_s``.  ``ENKRYPTED_BENCH_RUNS`` (default 15,
minimum 7), ``ENKRYPTED_BENCH_GROUP_SIZES`` (default ``2,4,8``; at most 16).  Every process is
stopped by its PID; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(HERE), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from common import bench_runs, median  # noqa: E402

SRC = [ROOT / d / "src" for d in ("shell", "plugins/p2p", "plugins/cryptography",
                                  "plugins/cryptography_nacl")]
SIZE = 100
"""Characters per message (a chat line)."""
WARMUP = 2
WAIT_S = 120.0
MAX_MEMBERS = 16
SETTLE_S = 0.2


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*SRC, ROOT, HERE])}


class Member:
    """One ``groups_peer.py`` process: requests in, report lines collected by a thread."""

    def __init__(self, url: str, peer_id: str) -> None:
        self.peer_id = peer_id
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "groups_peer.py"), url, peer_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=_env(), cwd=ROOT)
        self.lines: list[dict[str, Any]] = []
        self.used: set[int] = set()
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(json.loads(line))
                self.cond.notify_all()
        with self.cond:
            self.lines.append({"event": "exited"})
            self.cond.notify_all()

    def ask(self, **request: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def expect(self, ok: Callable[[dict[str, Any]], bool], what: str,
               timeout: float = WAIT_S) -> dict[str, Any]:
        """The first report not taken yet that ``ok`` accepts (an ``error`` or the process
        ending raises); bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, line in enumerate(self.lines):
                    if i in self.used:
                        continue
                    if line["event"] in ("error", "exited"):
                        raise RuntimeError(f"{self.peer_id}: {line} while waiting for {what}")
                    if ok(line):
                        self.used.add(i)
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.peer_id}: no {what} within {timeout} s")
                self.cond.wait(left)

    def forget(self) -> None:
        """Drop the reports of a finished sample (memory stays bounded over the rounds)."""
        with self.cond:
            keep = [line for i, line in enumerate(self.lines) if i not in self.used]
            self.lines, self.used = keep, set()

    def sent_bytes(self) -> int:
        self.ask(op="bytes")
        return int(self.expect(lambda e: e["event"] == "bytes", "bytes")["bytes"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask(op="quit")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)


def _form(members: list[Member], sizes: list[int]) -> dict[int, str]:
    """Member 0 creates a group per size and invites the others, one at a time."""
    first, groups = members[0], {}
    for size in sorted(sizes, reverse=True):  # the largest first: it dials the whole mesh
        first.ask(op="create", name=f"bench-{size}")
        group = first.expect(lambda e: e["event"] == "created", "created")["group"]
        for member in members[1:size]:
            first.ask(op="invite", group=group, peer=member.peer_id)
            first.expect(lambda e, g=group, p=member.peer_id: e["event"] == "membership"
                         and e["group"] == g and p in e["members"], f"{member.peer_id} added")
        for member in members[1:size]:  # everyone sees the whole group before timing starts
            member.expect(lambda e, g=group, n=size: e["event"] == "membership" and e["group"] == g
                          and len(e["members"]) == n, f"the group of {size}")
        groups[size] = group
    for member in members[1:max(sizes)]:  # the pairwise baseline's sessions are up (they are)
        first.ask(op="connect", peer=member.peer_id)
        first.expect(lambda e, p=member.peer_id: e["event"] == "connected" and e["peer"] == p,
                     f"session with {member.peer_id}")
    return groups


def _sample(members: list[Member], size: int, group: str | None, tag: str
            ) -> tuple[float, float, int]:
    """One message to ``size - 1`` members (a group message, or pairwise when ``group`` is
    None): delivery seconds, receipts seconds, wire bytes (all processes)."""
    first, others = members[0], members[1:size]
    before = sum(m.sent_bytes() for m in members)
    if group is not None:
        first.ask(op="gsend", group=group, tag=tag, size=SIZE)
    else:
        first.ask(op="psend", peers=[m.peer_id for m in others], tag=tag, size=SIZE)
    sent = first.expect(lambda e: e["event"] == "sent" and e["tag"] == tag, f"sent {tag}")
    kind = "gmsg" if group is not None else "msg"
    delivered = max(m.expect(lambda e: e["event"] == kind and e["tag"] == tag, f"{tag}")["at"]
                    for m in others)
    receipt = "grcpt" if group is not None else "rcpt"
    ids = set(sent["ids"])
    receipts = [first.expect(lambda e, p=m.peer_id: e["event"] == receipt and e["id"] in ids
                             and e["peer"] == p, f"receipt of {tag} from {m.peer_id}")["at"]
                for m in others]
    time.sleep(SETTLE_S)  # the receivers' acknowledgements of the receipts go out too
    after = sum(m.sent_bytes() for m in members)
    for member in members:
        member.forget()
    return delivered - sent["at"], max(receipts) - sent["at"], after - before


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(size: int, group: list[tuple[float, float, int]], pair: list[tuple[float, float, int]]
         ) -> dict[str, Any]:
    def ms(values: list[float], q: float) -> float:
        return round(1000 * _pct(values, q), 2)

    row: dict[str, Any] = {"members": size}
    for prefix, samples in (("", group), ("pairwise_", pair)):
        delivery = [d for d, _, _ in samples]
        row[f"{prefix}delivery_ms_p50"] = ms(delivery, 0.5)
        row[f"{prefix}delivery_ms_p99"] = ms(delivery, 0.99)
        row[f"{prefix}receipts_ms_p50"] = ms([r for _, r, _ in samples], 0.5)
        row[f"{prefix}wire_bytes_per_msg"] = int(median([b for _, _, b in samples]))
        row[f"{prefix}delivery_samples_ms"] = [round(1000 * d, 2) for d in delivery]
        row[f"{prefix}wire_bytes_samples"] = [b for _, _, b in samples]
    row["delivery_ratio"] = round(row["delivery_ms_p50"] / row["pairwise_delivery_ms_p50"], 3)
    row["wire_bytes_ratio"] = round(
        row["wire_bytes_per_msg"] / row["pairwise_wire_bytes_per_msg"], 3)
    return row


def _sizes() -> list[int]:
    raw = os.environ.get("ENKRYPTED_BENCH_GROUP_SIZES", "2,4,8")
    sizes = sorted({int(x) for x in raw.split(",") if x.strip()})
    if not sizes or sizes[0] < 2 or sizes[-1] > MAX_MEMBERS:
        raise ValueError(f"group sizes must be between 2 and {MAX_MEMBERS}: {raw!r}")
    return sizes


def _measure(members: list[Member], groups: dict[int, str], runs: int
             ) -> dict[int, dict[str, list[tuple[float, float, int]]]]:
    cases = [(size, case) for size in sorted(groups) for case in ("group", "pairwise")]
    samples: dict[int, dict[str, list[tuple[float, float, int]]]] = {
        size: {"group": [], "pairwise": []} for size in groups}
    for round_ in range(WARMUP + runs):
        order = cases if round_ % 2 == 0 else cases[::-1]
        for size, case in order:
            tag = f"r{round_}-{size}-{case}"
            got = _sample(members, size, groups[size] if case == "group" else None, tag)
            if round_ >= WARMUP:
                samples[size][case].append(got)
    return samples


def run() -> dict[str, Any]:
    from tests.p2p.servers import start_our_broker, stop

    sizes, runs = _sizes(), bench_runs(15)
    with tempfile.TemporaryDirectory(prefix="enkrypted-bench-groups-") as tmp:
        broker = start_our_broker(Path(tmp))
        url = f"ws://127.0.0.1:{broker.port}/"
        members: list[Member] = []
        try:
            started = time.monotonic()
            for i in range(max(sizes)):
                members.append(Member(url, f"bench-g{i}"))
            for member in members:
                member.expect(lambda e: e["event"] == "ready", "ready")
            groups = _form(members, sizes)
            setup_s = time.monotonic() - started
            samples = _measure(members, groups, runs)
        finally:
            for member in members:
                member.stop()
            stop(broker.proc)  # type: ignore[arg-type]
    return {
        "results": [_row(s, samples[s]["group"], samples[s]["pairwise"]) for s in sizes],
        "runs": runs,
        "warmup_rounds": WARMUP,
        "text_chars": SIZE,
        "setup_s": round(setup_s, 1),
        "transport": "aiortc data channels on 127.0.0.1 through our broker, one process a member",
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
