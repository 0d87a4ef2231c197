"""Sequencer failover (docs/protocol.md "Group chat", commit ordering): when the sequencer is
unreachable and changes wait, the next member in leaf order removes it and commits under a new
term; after a partition heals, the branch of the later term is the group and every member of the
other branch detects the fork, is shown it, and re-joins by a Welcome."""

from __future__ import annotations

from dataclasses import replace

from enkrypted_p2p.groups import ForkDetected, GroupLeft, RejoinStarted
from tests.p2p.groups_net import CONFIG, Net

FAST = replace(CONFIG, failover_after_s=3.0)


def test_an_unreachable_sequencer_is_replaced_and_waiting_changes_go_through() -> None:
    net = Net(6, seed=31, config=FAST)
    gid = net.form_group(net.peers)
    net.set_offline("peer-0")
    net.feed("peer-3", net.core("peer-3", gid).remove([net.fingerprints["peer-5"]], net.now))
    net.run(10.0)
    rest = ["peer-1", "peer-2", "peer-3", "peer-4"]
    net.converged(gid, rest)
    core = net.core("peer-2", gid)
    assert core.sequencer == net.fingerprints["peer-1"]
    assert net.fingerprints["peer-0"] not in core.members
    assert net.fingerprints["peer-5"] not in core.members
    # the old sequencer comes back: it fetches the commit that removed it and is told
    net.set_online("peer-0")
    net.run(5.0)
    assert any(isinstance(e, GroupLeft) for e in net.events["peer-0"])


def test_a_silent_sequencer_without_waiting_changes_is_left_alone() -> None:
    net = Net(4, seed=32, config=FAST)
    gid = net.form_group(net.peers)
    net.set_offline("peer-0")
    net.run(12.0)
    assert net.core("peer-1", gid).sequencer == net.fingerprints["peer-0"]
    net.set_online("peer-0")
    net.run(3.0)
    net.converged(gid, net.peers)


def test_after_a_partition_the_later_term_wins_and_the_others_rejoin() -> None:
    net = Net(6, seed=33, config=FAST)
    gid = net.form_group(net.peers)
    minority, majority = ["peer-0", "peer-5"], ["peer-1", "peer-2", "peer-3", "peer-4"]
    saved = set(net.links)
    for a in minority:
        for b in majority:
            net.cut(a, b)
    # both sides change the group: the old sequencer commits an update on its side, the
    # majority's waiting change makes peer-1 take over (term 1)
    net.feed("peer-5", net.core("peer-5", gid).update(net.now))
    net.feed("peer-4", net.core("peer-4", gid).update(net.now))
    net.run(10.0)
    assert net.core("peer-2", gid).sequencer == net.fingerprints["peer-1"]
    assert net.core("peer-5", gid).sequencer == net.fingerprints["peer-0"]
    net.links = saved
    net.refresh_links()
    net.run(15.0)
    # never silent on the losing branch: each of its members is shown that it re-joins (after
    # a ForkDetected, or because the history it would need is not on the group's branch)
    for peer in minority:
        shown = [e for e in net.events[peer] if isinstance(e, ForkDetected | RejoinStarted)]
        assert any(isinstance(e, RejoinStarted) for e in shown), peer
    net.converged(gid, net.peers)
    assert len({net.core(p, gid).sequencer for p in net.peers}) == 1
    _, out = net.core("peer-0", gid).send_text("together again", net.now)
    net.feed("peer-0", out)
    net.run(2.0)
    for peer in net.peers[1:]:
        assert [m.text for m in net.delivered(peer)] == ["together again"], peer
