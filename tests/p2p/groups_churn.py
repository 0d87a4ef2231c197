"""The heavy-churn failover scenario of docs/protocol.md §9.2 ("Failure cases"), and how a run ends.

9 peers, a group of 8, random adds / removes / updates / leaves / messages from random members,
5 % of frames dropped, a member toggled offline or back now and then, failover after 3 s (so
concurrent takeovers split the group). Then everyone is back, nothing is dropped, and the network
settles. Each member that still has the group then ends in one of:

* on the winning branch (the highest term, then the lowest taker, then the latest epoch): the
  same epoch, members and epoch authenticator as its head;
* out (``GroupLeft``), or off the winning branch but shown it (a ``ForkDetected`` or
  ``RejoinStarted`` since it last joined);
* split off: on another branch that is a group of its own — every member it lists is on that
  branch with it, and the winning branch lists none of them (the group split into two sets of
  members that never met again: each side saw the other's removals, nobody is deceived);
* **silently forked**: off the winning branch, never told, and listing a member that is not on
  its branch — what must never happen.

The winning branch's roster is also checked for members that are not on it (left, or stuck on
another branch). ``python -m tests.p2p.groups_churn [runs] [first seed]`` prints the counts.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace

from enkrypted_p2p.groups import (
    ForkDetected,
    GroupConfig,
    GroupCore,
    GroupLeft,
    MembershipChanged,
    RejoinStarted,
)
from tests.p2p.groups_net import CONFIG, Net, random_change

FAST_FAILOVER = replace(CONFIG, failover_after_s=3.0)


@dataclass(frozen=True, slots=True)
class ChurnOutcome:
    seed: int
    on_branch: tuple[str, ...]
    out: tuple[str, ...]
    """No longer members (``GroupLeft``): removed, left, or a re-join given up."""
    shown: tuple[str, ...]
    """Still members of another branch, and told (re-joining, or waiting to)."""
    silent: tuple[str, ...]
    """Off the winning branch, never told, listing a member that is elsewhere."""
    stale: tuple[str, ...]
    """Peers the winning branch still lists that are not on it."""
    forks_shown: tuple[str, ...] = ()
    """Members shown a ``ForkDetected`` at some point of the run."""
    split: tuple[str, ...] = ()
    """On another branch that is a group of its own (it lists only members on it with it)."""
    gave_up: tuple[str, ...] = ()
    """Out because a re-join got no Welcome (not removed, not left): shown, but worth counting."""
    ended: bool = False
    """Every member is out and the last one left on its own (nobody was left to commit it)."""

    @property
    def converged(self) -> bool:
        return bool(self.on_branch) and not self.shown and not self.silent and not self.stale

    @property
    def verdict(self) -> str:
        if self.silent:
            return "silent-fork"
        if not self.on_branch:
            return "ended" if self.ended else "all-out"
        if self.converged:
            return "converged" if not self.split else "split"
        return "fork-shown" if not self.stale else "stale-roster"


def _head(cores: list[GroupCore]) -> GroupCore:
    """The winning branch's head (docs/protocol.md §9.2: later term, lower taker, later epoch)."""
    top = max(c._term for c in cores)
    best = [c for c in cores if c._term == top]
    taker = min(c._taker for c in best)
    return max((c for c in best if c._taker == taker), key=lambda c: c.epoch)


def _told_since_join(net: Net, peer: str) -> bool:
    told = False
    for event in net.events[peer]:
        if isinstance(event, ForkDetected | RejoinStarted | GroupLeft):
            told = True
        elif isinstance(event, MembershipChanged) and not event.committer:
            told = False  # (re)joined by a Welcome: a fresh start on the group's branch
    return told


def classify(net: Net, gid: bytes, seed: int = 0) -> ChurnOutcome:
    cores = [c for p in net.peers if (c := net.nodes[p].groups.get(gid))]
    active = [c for c in cores if c.active]
    if not active:  # every member is out: nobody is left to be silently forked
        gone = tuple(c.peer_id for c in cores)
        return ChurnOutcome(seed, (), gone, (), (), (), ended=any(_ended(net, p) for p in gone))
    head = _head(active)
    on, out, shown, silent, split = [], [], [], [], []
    for core in cores:
        if _same_branch(core, head):
            on.append(core.peer_id)
        elif not core.active:
            out.append(core.peer_id)
        elif _told_since_join(net, core.peer_id):
            shown.append(core.peer_id)
        elif _group_of_its_own(net, gid, core, head):
            split.append(core.peer_id)
        else:
            silent.append(core.peer_id)
    stale = [p for fp, p in head.roster.items() if p not in on or net.fingerprints[p] != fp]
    forked = [p for p in net.peers if any(isinstance(e, ForkDetected) for e in net.events[p])]
    outcome = (tuple(on), tuple(out), tuple(shown), tuple(silent), tuple(stale), tuple(forked))
    gave_up = [p for p in out if _gave_up(net, p)]
    return ChurnOutcome(seed, *outcome, split=tuple(split), gave_up=tuple(gave_up))


def _ended(net: Net, peer: str) -> bool:
    """``peer`` left as the last member that could commit (its ``GroupLeft`` names itself)."""
    left = [e for e in net.events[peer] if isinstance(e, GroupLeft)]
    return bool(left) and left[-1].committer == net.fingerprints[peer]


def _gave_up(net: Net, peer: str) -> bool:
    left = [e for e in net.events[peer] if isinstance(e, GroupLeft)]
    return bool(left) and not left[-1].committer


def _same_branch(core: GroupCore, head: GroupCore) -> bool:
    same = core.active and (core.epoch, core.members) == (head.epoch, head.members)
    return same and core.epoch_authenticator == head.epoch_authenticator


def _group_of_its_own(net: Net, gid: bytes, core: GroupCore, head: GroupCore) -> bool:
    """Every member ``core`` lists is on its branch with it, and the winning branch lists none."""
    listed = set(core.roster.values())
    cores = [net.nodes[p].groups.get(gid) for p in listed]
    if any(c is None or not _same_branch(c, core) for c in cores):
        return False
    return not listed & set(head.roster.values())


def churn_run(
    seed: int, config: GroupConfig = FAST_FAILOVER, *, ops: int = 16, settle: float = 60.0
) -> ChurnOutcome:
    rng = random.Random(seed)
    net = Net(9, seed=seed, delay=(0.001, 0.2), ordered=False, config=config)
    gid = net.form_group(net.peers[:8])
    net.drop = 0.05
    for _ in range(ops):
        random_change(net, gid, rng)
        if rng.random() < 0.3:
            peer = rng.choice(net.peers)
            (net.set_offline if peer in net.online else net.set_online)(peer)
        net.run(rng.choice([0.0, 0.5, 2.0, 4.0]))
    net.drop = 0.0
    for peer in net.peers:
        net.set_online(peer)
    net.run(settle)
    return classify(net, gid, seed)


def main(argv: list[str]) -> None:
    runs = int(argv[0]) if argv else 30
    first = int(argv[1]) if len(argv) > 1 else 1000
    counts: Counter[str] = Counter()
    started = time.monotonic()
    for seed in range(first, first + runs):
        outcome = churn_run(seed)
        counts[outcome.verdict] += 1
        counts["runs with a fork shown"] += bool(outcome.forks_shown)
        counts["members on the branch"] += len(outcome.on_branch)
        counts["members out"] += len(outcome.out)
        counts["members split off"] += len(outcome.split)
        counts["members out, re-join given up"] += len(outcome.gave_up)
        if not outcome.converged or outcome.split:
            print(seed, outcome.verdict, outcome, flush=True)
    took = time.monotonic() - started
    print(dict(counts), f"{runs} runs in {took:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
