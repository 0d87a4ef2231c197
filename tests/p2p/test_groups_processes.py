"""Group chat between 8 peer processes over real aiortc data channels, on loopback through one
broker (docs/protocol.md "Group chat"; issue 15's checks):

* every member receives every message exactly once across membership changes (adds, removes);
* concurrent commits asked by different members converge (same epoch and membership everywhere):
  two removals, then an add and a removal with a message sent meanwhile;
* a member killed (SIGKILL) and restarted from its profile catches up;
* a removed member cannot read later messages (asserted on its own output).

Each peer is ``enkrypted listen --id pK`` of its own profile (``tests.p2p.group_peer``); group
operations go through the profile's control endpoint, as ``enkrypted group ...`` sends them — the
CLI itself runs for create / add / send / list, the rest is the same request sent from here (one
process start less each).  Every process is stopped by its PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from enkrypted_p2p.chat._control import control_call
from tests.p2p.chat_peer import FileStore
from tests.p2p.servers import ROOT, SRC, Server, stop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PATHS = [*SRC, ROOT / "plugins" / "cryptography" / "src", ROOT]
N = 8
WAIT = 90.0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in PATHS)}


class Peer:
    """One ``listen`` process of one profile; its JSON lines collected by a reader thread."""

    def __init__(self, home: Path, peer_id: str, url: str) -> None:
        self.home, self.peer_id, self.url = home, peer_id, url
        self.lines: list[dict[str, Any]] = []
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.p2p.group_peer", "--home", str(self.home), "listen",
             "--broker", self.url, "--loopback", "--id", self.peer_id],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(), cwd=ROOT)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(json.loads(line))

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop(self.proc, sig)  # type: ignore[arg-type]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in list(self.lines) if e["event"] == event]

    def texts(self) -> Counter[str]:
        return Counter(e["text"] for e in self.of("group-message"))

    def call(self, **request: Any) -> dict[str, Any]:
        answer = asyncio.run(control_call(FileStore(self.home / "store.json"), request))
        assert answer["event"] != "error", answer
        return answer

    def cli(self, *argv: str) -> list[dict[str, Any]]:
        out = subprocess.run([sys.executable, "-m", "tests.p2p.group_peer", "--home",
                              str(self.home), "group", *argv], capture_output=True, text=True,
                             env=_env(), cwd=ROOT, timeout=120, check=False)
        assert out.returncode == 0, (out.stdout, out.stderr[-2000:])
        return [json.loads(line) for line in out.stdout.splitlines()]

    def view(self, group: str) -> tuple[int, frozenset[str]]:
        info = next((g for g in self.call(op="list")["groups"] if g["group"] == group), None)
        if info is None or info["state"] != "active":
            return -1, frozenset()  # not (yet, or any more) a member
        return info["epoch"], frozenset(m["peer"] for m in info["members"])


def converged(group: str, members: list[Peer], expected: frozenset[str]) -> bool:
    """Every one of ``members`` sees the same epoch and exactly ``expected``."""
    views = {m.view(group) for m in members}
    return len(views) == 1 and next(iter(views))[1] == expected


def until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


@pytest.fixture
def peers(our_broker: Server, tmp_path: Path) -> Iterator[list[Peer]]:
    url = f"ws://127.0.0.1:{our_broker.port}/"
    group = [Peer(tmp_path / f"p{i}", f"p{i}", url) for i in range(N)]
    try:
        for peer in group:
            peer.start()
        until(lambda: all(p.of("listening") for p in group), "every peer listening", 120)
        yield group
    finally:
        for peer in group:
            peer.stop()


def test_eight_processes_group_chat_across_membership_changes_kills_and_races(
        peers: list[Peer]) -> None:
    started = time.monotonic()
    p = peers
    gid = p[0].cli("create", "eight")[0]["group"]
    assert p[0].cli("add", gid, "p1")[0]["event"] == "group-invited"
    for peer in p[2:]:
        p[0].call(op="add", group=gid, peer=peer.peer_id)
    everyone = frozenset(x.peer_id for x in p)
    until(lambda: converged(gid, p, everyone), "all 8 in")
    formed = time.monotonic() - started

    # a message from a member that is not the sequencer reaches the 7 others, once each
    sent = p[3].cli("send", gid, "m1 from p3")[0]
    until(lambda: all(x.texts()["m1 from p3"] == 1 for x in p if x is not p[3]), "m1 everywhere")
    until(lambda: {r["peer"] for r in p[3].of("group-receipt")
                   if r["messageId"] == sent["messageId"]} == everyone - {"p3"}, "m1 receipts")

    # two members ask for removals at once: one commit per epoch, everyone converges
    p[2].call(op="remove", group=gid, peer="p7")
    p[5].call(op="remove", group=gid, peer="p6")
    stay = everyone - {"p6", "p7"}
    until(lambda: converged(gid, p[:6], stay), "removals converged")
    until(lambda: all(x.of("group-left") for x in p[6:]), "p6 and p7 told")

    # a later message: the 6 members read it, the removed ones cannot
    p[1].call(op="send", group=gid, text="m2 after removals")
    until(lambda: all(x.texts()["m2 after removals"] == 1 for x in p[:6] if x is not p[1]),
          "m2 at the members")

    # a member killed hard and restarted from its profile catches up on what it missed
    p[4].stop(signal.SIGKILL)
    p[0].call(op="send", group=gid, text="m3 while p4 was down")
    until(lambda: all(x.texts()["m3 while p4 was down"] == 1 for x in p[1:4] + p[5:6]), "m3")
    p[4].lines.clear()
    p[4].start()
    until(lambda: p[4].texts()["m3 while p4 was down"] == 1, "p4 caught up after restart")

    # a removed member is added back: it reads what comes after, never what it missed
    p[2].call(op="add", group=gid, peer="p7")
    back = stay | {"p7"}
    until(lambda: converged(gid, p[:6] + p[7:], back), "p7 back")
    p[6].cli("list")  # the removed member's own view: the group, left
    p[7].call(op="send", group=gid, text="m4 from p7")
    until(lambda: all(x.texts()["m4 from p7"] == 1 for x in p if x.peer_id in back - {"p7"}),
          "m4 everywhere")

    for peer in p[6:]:
        got = peer.texts()
        assert "m2 after removals" not in got and "m3 while p4 was down" not in got
    assert "m4 from p7" not in p[6].texts()
    listed = p[6].cli("list")
    assert [g["state"] for g in listed if g["group"] == gid] == ["left"]

    # an add and a removal asked at once by two other members, a message sent meanwhile:
    # one commit per epoch, everyone converges, the message reaches each member that stays
    p[1].call(op="add", group=gid, peer="p6")
    p[3].call(op="remove", group=gid, peer="p5")
    p[2].call(op="send", group=gid, text="m5 during a race")
    final = back - {"p5"} | {"p6"}
    stayed = [x for x in p if x.peer_id in final]
    until(lambda: converged(gid, stayed, final), "the add and the removal converged")
    until(lambda: bool(p[5].of("group-left")), "p5 told")
    until(lambda: all(x.texts()["m5 during a race"] == 1 for x in stayed
                      if x.peer_id not in {"p2", "p6"}), "m5 at every member that stayed")
    p[6].call(op="send", group=gid, text="m6 from p6")
    until(lambda: all(x.texts()["m6 from p6"] == 1 for x in stayed if x is not p[6]),
          "m6 everywhere")
    assert "m6 from p6" not in p[5].texts()

    time.sleep(1.0)  # late duplicates would show up now
    for peer in p:
        assert all(n == 1 for n in peer.texts().values()), (peer.peer_id, peer.texts())
    print(f"8 members formed in {formed:.1f} s; whole scenario {time.monotonic() - started:.1f} s")
