"""Commit ordering without a server (docs/protocol.md "Group chat", the sequencer rule): random
races of adds, removes, updates, leaves and messages from different members, over a simulated
network that delays, reorders and drops frames (the cores retransmit), always converge — every
remaining member at the same epoch, membership and epoch authenticator; everyone removed knows
it and cannot read what is sent afterwards."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.groups import ForkDetected, GroupCore
from tests.p2p.groups_net import Net, random_change


def _check_converged(net: Net, gid: bytes) -> GroupCore:
    cores = [c for p in net.peers if (c := net.nodes[p].groups.get(gid))]
    active = [c for c in cores if c.active]
    reference = max(active, key=lambda c: (c._term, c.epoch))  # the winning branch
    for core in active:
        assert core.own_fingerprint in reference.members, f"{core.peer_id} thinks it is a member"
    net.converged(gid, [c.peer_id for c in active])
    member_peers = set(reference.roster.values())
    assert {c.peer_id for c in active} == member_peers
    return reference


def _race(seed: int, *, drop: float, ordered: bool, ops: int) -> None:
    rng = random.Random(seed)
    net = Net(10, seed=seed, delay=(0.001, 0.2), ordered=ordered)
    gid = net.form_group(net.peers[:7])
    net.drop = drop
    for _ in range(ops):
        random_change(net, gid, rng)
        net.run(rng.choice([0.0, 0.0, 0.05, 0.3]))
    net.drop = 0.0
    net.run(25.0)
    reference = _check_converged(net, gid)
    forks = [e for p in net.peers for e in net.events[p] if isinstance(e, ForkDetected)]
    assert forks == []  # one committer per epoch: no fork ever happens in a race
    # a message after the race reaches every member once and nobody else
    sender = reference.peer_id
    msg_id, out = reference.send_text("after the race", net.now)
    net.feed(sender, out)
    net.run(3.0)
    for peer in net.peers:
        got = [m for m in net.delivered(peer) if m.msg_id == msg_id]
        expected = 1 if peer in reference.roster.values() and peer != sender else 0
        assert len(got) == expected, peer


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_concurrent_membership_changes_converge_on_one_epoch(seed: int) -> None:
    _race(seed, drop=0.0, ordered=True, ops=10)


@pytest.mark.parametrize("seed", [4, 5])
def test_races_converge_with_reordering_and_dropped_frames(seed: int) -> None:
    _race(seed, drop=0.1, ordered=False, ops=10)


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32), drop=st.sampled_from([0.0, 0.05, 0.2]))
def test_random_races_always_converge(seed: int, drop: float) -> None:
    _race(seed, drop=drop, ordered=drop == 0.0, ops=8)


@pytest.mark.parametrize("seed", [7, 8])
def test_messages_sent_during_a_race_reach_each_member_that_stays_exactly_once(seed: int) -> None:
    """Every message reaches, once, each member of its audience that is still the same member
    at the end — not one that left or was removed (even by a commit that never reached it) and
    was invited again: that is a new member, with a new core. A sender invited again keeps what
    it had not got receipted (sealed again at its new epoch for its audience still here)."""
    rng = random.Random(seed)
    net = Net(9, seed=seed, delay=(0.001, 0.2), ordered=False)
    gid = net.form_group(net.peers[:8])
    net.drop = 0.1
    sent: list[tuple[bytes, str, dict[str, GroupCore]]] = []
    for _ in range(24):
        random_change(net, gid, rng)
        cores = [c for p in net.peers if (c := net.nodes[p].groups.get(gid)) and c.active]
        sender = rng.choice(cores)
        try:
            msg_id, out = sender.send_text("during", net.now)
        except P2PUsageError:  # re-joining: the application is told to send again later
            continue
        audience = {p: net.core(p, gid) for p in sender.roster.values() if p != sender.peer_id
                    and gid in net.nodes[p].groups}
        sent.append((msg_id, sender.peer_id, audience))
        net.feed(sender.peer_id, out)
        net.run(rng.choice([0.0, 0.05, 0.2]))
    net.drop = 0.0
    net.run(25.0)
    reference = _check_converged(net, gid)
    members = set(reference.roster.values())
    for peer in net.peers:
        ids = [m.msg_id for m in net.delivered(peer)]
        assert len(ids) == len(set(ids)), peer
        for msg_id, sender_peer, audience in sent:
            same_member = peer in audience and net.nodes[peer].groups.get(gid) is audience[peer]
            if sender_peer in members and peer in members and same_member:
                assert msg_id in ids, (peer, sender_peer)


@pytest.mark.parametrize("seed", [300, 301, 302])
def test_races_with_members_going_offline_and_back_converge(seed: int) -> None:
    """Churn: members (the sequencer too) go offline and come back during the race; changes
    wait for the sequencer (no takeover within the default failover time) and everything
    converges once all are back — catch-up from history, or a re-join by a Welcome."""
    rng = random.Random(seed)
    net = Net(9, seed=seed, delay=(0.001, 0.2), ordered=False)
    gid = net.form_group(net.peers[:8])
    net.drop = 0.05
    for _ in range(16):
        random_change(net, gid, rng)
        if rng.random() < 0.3:
            peer = rng.choice(net.peers)
            (net.set_offline if peer in net.online else net.set_online)(peer)
        net.run(rng.choice([0.0, 0.5, 2.0, 4.0]))
    net.drop = 0.0
    for peer in net.peers:
        net.set_online(peer)
    net.run(40.0)
    _check_converged(net, gid)
