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
from enkrypted_p2p.groups import ForkDetected, GroupCore, GroupLeft
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
    rng = random.Random(seed)
    net = Net(9, seed=seed, delay=(0.001, 0.2), ordered=False)
    gid = net.form_group(net.peers[:8])
    net.drop = 0.1
    sent: list[tuple[bytes, str, set[str]]] = []
    for _ in range(24):
        random_change(net, gid, rng)
        cores = [c for p in net.peers if (c := net.nodes[p].groups.get(gid)) and c.active]
        sender = rng.choice(cores)
        try:
            msg_id, out = sender.send_text("during", net.now)
        except P2PUsageError:  # re-joining: the application is told to send again later
            continue
        sent.append((msg_id, sender.peer_id, set(sender.roster.values())))
        net.feed(sender.peer_id, out)
        net.run(rng.choice([0.0, 0.05, 0.2]))
    net.drop = 0.0
    net.run(25.0)
    reference = _check_converged(net, gid)
    # members that stayed the whole time (one that left and was invited again is a new member)
    final = {
        p
        for p in reference.roster.values()
        if not any(isinstance(e, GroupLeft) for e in net.events[p])
    }
    for peer in net.peers:
        ids = [m.msg_id for m in net.delivered(peer)]
        assert len(ids) == len(set(ids)), peer
        for msg_id, sender_peer, audience in sent:
            # a member removed soon after it sent cannot re-seal: members 2+ epochs on have
            # no keys for its message (RFC 9420 §14, docs/protocol.md "Group chat")
            stays = sender_peer in final
            if stays and peer in final and peer in audience and peer != sender_peer:
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
