"""Sequencer failover (docs/protocol.md "Group chat", commit ordering): when the sequencer is
unreachable and changes wait, the next member in leaf order removes it and commits under a new
term; after a partition heals, the branch of the later term is the group and every member of the
other branch detects the fork, is shown it, and re-joins by a Welcome."""

from __future__ import annotations

from dataclasses import replace

import pytest

from enkrypted_p2p.groups import (
    ForkDetected,
    GroupCore,
    GroupLeft,
    GroupOutput,
    GroupPdu,
    Kind,
    PduRejected,
    RejoinStarted,
    SendTo,
    decode_pdu,
)
from enkrypted_p2p.groups._wire import decode_json, encode_json, pack_list
from enkrypted_shell.contracts import GroupControlSigner
from tests.p2p.groups_churn import churn_run
from tests.p2p.groups_net import CONFIG, Net, pdu_for, signed_details

FAST = replace(CONFIG, failover_after_s=3.0)
CHURN_SEEDS = list(range(1000, 1016))


def _partition(net: Net, one: list[str], other: list[str]) -> set[frozenset[str]]:
    """Cut every link between ``one`` and ``other``; the links as they were, to heal it."""
    saved = set(net.links)
    for a in one:
        for b in other:
            net.cut(a, b)
    return saved


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


def test_a_member_taking_over_with_the_same_peer_invited_twice_adds_it_once() -> None:
    """Two waiting adds of one peer (invited again while the first add waited for a silent
    sequencer): the member that takes over commits the first, which settles the second (§9.2
    rule 2: once a commit admits a peer, every add of it still waiting is done)."""
    net = Net(5, seed=34, config=FAST)
    gid = net.form_group(net.peers[:4])
    net.set_offline("peer-0")
    core = net.core("peer-1", gid)
    for _ in range(2):
        net.feed("peer-1", core.invite("peer-4", net.now))
        net.run(0.3)
    assert core.pending_intents() == 2
    net.run(10.0)
    net.converged(gid, ["peer-1", "peer-2", "peer-3", "peer-4"])
    assert core.members.count(net.fingerprints["peer-4"]) == 1
    assert core.pending_intents() == 0


def test_a_member_taking_over_carries_out_the_rejoin_request_it_kept() -> None:
    """A re-join request that reached the next member while the sequencer was silent is kept
    for when that member commits (§9.2 rule 5); whether it is done depends on its key package
    being used — not on whether the keeping member is re-joining itself. So it counts as a
    waiting change, the member takes over, and the re-joining member is back in."""
    net = Net(5, seed=35, config=FAST)
    gid = net.form_group(net.peers)
    net.set_offline("peer-0")
    rejoining = net.core("peer-4", gid)
    net.feed("peer-4", rejoining._rejoin("peer-1", "a fork", net.now))
    net.run(12.0)
    assert rejoining.active and not rejoining.rejoining
    net.converged(gid, ["peer-1", "peer-2", "peer-3", "peer-4"])
    assert net.fingerprints["peer-0"] not in net.core("peer-2", gid).members  # taken over


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
    saved = _partition(net, minority, majority)
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


def _statuses(outputs: list[object]) -> list[GroupPdu]:
    return [
        p for o in outputs if isinstance(o, SendTo) and (p := decode_pdu(o.pdu)).kind is Kind.STATUS
    ]


def _forked_behind(net: Net, gid: bytes) -> tuple[GroupCore, int]:
    """peer-4 applies a second, valid commit for epoch E (a cloned sequencer state) while the
    group goes on 4 epochs: peer-4 is at E + 1 on another branch, the group at E + 4."""
    epoch = net.core("peer-0", gid).epoch
    clone = net.service.restore_group(net.core("peer-0", gid)._session.export_state())
    net.set_offline("peer-4")
    for _ in range(4):
        net.feed("peer-0", net.core("peer-0", gid).update(net.now))
        net.run(1.0)
    commit = clone.update().commit
    assert isinstance(clone, GroupControlSigner)
    body = pack_list([commit, signed_details(clone, "peer-0", commit, {"added": {}}), b""])
    rogue = GroupPdu(Kind.COMMIT, gid, epoch, b"\x01" * 16, "peer-0", body, "peer-4", hops=1)
    forked = net.core("peer-4", gid)
    forked.receive("peer-1", rogue.encode(), net.now)
    assert forked.epoch == epoch + 1 == net.core("peer-1", gid).epoch - 3
    return forked, epoch + 1


def test_a_status_from_a_member_epochs_ahead_shows_a_fork_at_an_epoch_both_know() -> None:
    net = Net(5, seed=34)
    gid = net.form_group(net.peers)
    forked, at = _forked_behind(net, gid)
    status = net.core("peer-1", gid)._status_to("peer-4").pdu
    out = forked.receive("peer-1", status, net.now)
    # the window of fork checks in the status covers our epoch: a fork, not a catch-up
    assert [e.epoch for e in out if isinstance(e, ForkDetected)] == [at]
    assert not [o for o in out if isinstance(o, SendTo)]
    # a status without the window (an older peer) is a catch-up: we ask for the history
    old = decode_pdu(status)
    body = decode_json(old.body)
    del body["w"]
    out = forked.receive("peer-1", replace(old, body=encode_json(body)).encode(), net.now)
    assert not [e for e in out if isinstance(e, ForkDetected)]
    asked = [decode_pdu(o.pdu).kind for o in out if isinstance(o, SendTo)]
    assert asked == [Kind.HISTORY_REQUEST]


def test_a_fork_window_longer_than_eight_epochs_is_refused() -> None:
    net = Net(3, seed=35)
    gid = net.form_group(net.peers)
    core = net.core("peer-1", gid)
    status = decode_pdu(net.core("peer-2", gid)._status_to("peer-1").pdu)
    body = decode_json(status.body)
    body["w"] = ["00" * 16] * 8
    before = core.export_state()
    out = core.receive("peer-2", replace(status, body=encode_json(body)).encode(), net.now)
    assert [type(o) for o in out] == [PduRejected]
    assert core.export_state() == before


def test_a_member_out_on_a_losing_branch_is_removed_from_the_group() -> None:
    """After a partition the group (the later term) still lists a member the other side
    removed: that member says it is out and the group removes it; invited back later, a late
    copy of that removal does not remove it again."""
    net = Net(6, seed=36, config=FAST)
    gid = net.form_group(net.peers)
    minority, majority = ["peer-0", "peer-5"], ["peer-1", "peer-2", "peer-3", "peer-4"]
    saved = _partition(net, minority, majority)
    net.feed("peer-0", net.core("peer-0", gid).remove([net.fingerprints["peer-5"]], net.now))
    net.feed("peer-4", net.core("peer-4", gid).update(net.now))
    net.run(10.0)
    assert not net.core("peer-5", gid).active
    assert "peer-5" in net.core("peer-2", gid).roster.values()  # the group's branch lists it
    net.links = saved
    net.refresh_links()
    net.run(20.0)
    group = net.core("peer-1", gid)
    assert "peer-5" not in group.roster.values()
    net.converged(gid, net.peers[:5])
    assert not net.core("peer-5", gid).active
    # invited back: a late removal made before that (its "at" is older) spares it
    late_at = group.epoch - 1
    net.feed("peer-2", net.core("peer-2", gid).invite("peer-5", net.now))
    net.run(5.0)
    net.converged(gid, net.peers)
    sequencer = net.core(group.roster[group.sequencer], gid)
    intent = {"op": "remove", "fps": [net.fingerprints["peer-5"]], "at": late_at, "id": "00" * 16}
    late = GroupPdu(
        Kind.INTENT, gid, 0, b"\x02" * 16, "peer-3", encode_json(intent), sequencer.peer_id
    )
    net.feed(sequencer.peer_id, sequencer.receive("peer-3", late.encode(), net.now))
    net.run(3.0)
    assert "peer-5" in net.core("peer-1", gid).roster.values()
    net.converged(gid, net.peers)


def test_a_member_back_from_a_pause_listens_before_it_takes_over() -> None:
    net = Net(4, seed=37, config=FAST)
    gid = net.form_group(net.peers)
    net.set_offline("peer-3")  # paused: its timers do not run, it hears nothing
    net.feed("peer-3", net.core("peer-3", gid).update(net.now))
    net.run(20.0)
    net.set_online("peer-3")
    net.run(10.0)
    core = net.core("peer-3", gid)
    assert core._term == 0 and core.sequencer == net.fingerprints["peer-0"]
    assert core.pending_intents() == 0  # its update went through the sequencer
    net.converged(gid, net.peers)


def test_a_member_that_reaches_few_of_the_members_it_would_keep_does_not_take_over() -> None:
    """peer-2 has a change waiting and reaches only peer-5 ({peer-2, peer-5} are cut off from
    the rest): a takeover would keep peer-2..5, of which it hears 2 of 4 — no takeover."""
    net = Net(6, seed=38, config=FAST)
    gid = net.form_group(net.peers)
    saved = set(net.links)
    for a in ["peer-2", "peer-5"]:
        for b in ["peer-0", "peer-1", "peer-3", "peer-4"]:
            net.cut(a, b)
    net.feed("peer-2", net.core("peer-2", gid).update(net.now))
    net.run(30.0)
    assert net.core("peer-2", gid)._term == 0
    assert len(net.core("peer-2", gid).members) == 6
    net.links = saved
    net.refresh_links()
    net.run(10.0)
    net.converged(gid, net.peers)
    assert not any(
        isinstance(e, GroupLeft | ForkDetected) for p in net.peers for e in net.events[p]
    )


def test_a_member_that_said_it_was_out_and_is_invited_again_is_not_taken_over_from() -> None:
    """peer-0 (the sequencer) leaves and peer-1 heard its "out" status (§9.5: never alive
    again — as that membership). Invited again, peer-0 takes the lowest free leaf, the
    sequencer's: its new membership is heard from now on, so peer-1's waiting change goes to
    it — no takeover, no new term."""
    net = Net(4, seed=40)
    gid = net.form_group(net.peers)
    net.feed("peer-0", net.core("peer-0", gid).leave(net.now))
    net.run(3.0)
    assert any(isinstance(e, GroupLeft) for e in net.events["peer-0"])
    net.cut("peer-0", "peer-1")  # peer-1 hears peer-0 only through relays from now on
    net.core("peer-1", gid)._gone.add("peer-0")  # what an "out" status from peer-0 left behind
    net.feed("peer-2", net.core("peer-2", gid).invite("peer-0", net.now))  # peer-1 commits it
    net.run(1.0)
    assert net.core("peer-1", gid).sequencer == net.fingerprints["peer-0"]
    net.feed("peer-1", net.core("peer-1", gid).update(net.now))
    net.run(5.0)
    net.converged(gid, net.peers)
    assert [net.core(p, gid)._term for p in net.peers] == [0, 0, 0, 0]
    assert net.core("peer-1", gid).pending_intents() == 0


def test_a_sequencer_that_leaves_hands_off_past_members_that_are_out() -> None:
    """docs/protocol.md §9.2 rule 4: the sequencer that leaves asks the next member in leaf order
    to commit its removal. A member that told it it is out (§9.5) never would: the hand-off
    skips it, and the successor removes both in one commit - the group does not wait for the
    failover (300 s by default)."""
    net = Net(5, seed=42)
    gid = net.form_group(net.peers)
    first = net.core("peer-0", gid)
    order = [first.roster[fp] for fp in first.members]
    owner, out, successor = order[0], order[1], order[2]
    net.set_offline(out)
    net.core(owner, gid)._gone.add(out)  # what an "out" status from it left behind
    net.feed(owner, net.core(owner, gid).leave(net.now))
    net.run(10.0)
    rest = order[2:]
    net.converged(gid, rest)
    core = net.core(successor, gid)
    assert core.sequencer == net.fingerprints[successor]
    assert net.fingerprints[owner] not in core.members
    assert net.fingerprints[out] not in core.members
    assert any(isinstance(e, GroupLeft) for e in net.events[owner])


def test_the_last_member_that_leaves_ends_the_group_for_itself() -> None:
    """A member cannot remove itself (RFC 9420 §12.1.3); with no other member that could commit
    it - alone in the group, or every other member told it it is out (§9.5) - its leave ends its
    membership at once: `GroupLeft` naming itself, nothing more to resend."""
    net = Net(3, seed=44)
    alone = net.nodes["peer-0"].create_group("alone")
    assert alone.leave(net.now) == [GroupLeft(alone.group_id, 0, alone.own_fingerprint)]
    assert not alone.active and alone.pending_intents() == 0
    gid = net.form_group(net.peers)
    core = net.core("peer-0", gid)
    assert core.sequencer == core.own_fingerprint
    for peer in ("peer-1", "peer-2"):
        net.set_offline(peer)
        core._gone.add(peer)  # what their "out" statuses left behind
    out = core.leave(net.now)
    assert GroupLeft(gid, core.epoch, core.own_fingerprint) in out
    assert not core.active and core.pending_intents() == 0


def test_a_hand_off_that_skips_a_member_the_sequencer_could_not_skip_is_ignored() -> None:
    """The successor checks that the members a hand-off skips are exactly those ahead of it."""
    net = Net(4, seed=43)
    gid = net.form_group(net.peers)
    first = net.core("peer-0", gid)
    order = [first.roster[fp] for fp in first.members]
    owner, last = order[0], order[3]
    core = net.core(last, gid)
    epoch = core.epoch
    forged = {"op": "handoff", "at": epoch, "id": "00" * 16, "skip": [core.members[1]]}
    assert core._take_handoff(owner, forged) == []
    assert core.epoch == epoch


def test_a_late_out_status_of_a_former_membership_does_not_remove_the_member_invited_again() -> None:
    """peer-3 leaves; its "out" status (§9.5) is delayed past its new invitation. A status of
    an epoch before its current leaf came in speaks of the former membership: ignored."""
    net = Net(4, seed=41)
    gid = net.form_group(net.peers)
    net.feed("peer-3", net.core("peer-3", gid).leave(net.now))
    net.run(3.0)
    assert not net.core("peer-3", gid).active
    late = net.core("peer-3", gid)._status_to("peer-1", out=True)
    net.feed("peer-1", net.core("peer-1", gid).invite("peer-3", net.now))
    net.run(3.0)
    assert net.core("peer-3", gid).active
    net.feed("peer-1", net.nodes["peer-1"].receive("peer-3", late.pdu, net.now))
    net.run(5.0)
    net.converged(gid, net.peers)
    assert net.fingerprints["peer-3"] in net.core("peer-0", gid).members
    assert net.core("peer-1", gid).pending_intents() == 0


@pytest.mark.parametrize("seed", CHURN_SEEDS)
def test_under_heavy_churn_with_fast_failover_no_member_stays_silently_on_a_losing_branch(
    seed: int,
) -> None:
    """docs/protocol.md §9.2: 9 peers, random changes and messages, 5 % drops, members
    toggling offline, failover after 3 s. Every member ends on the group's branch, or out, or
    shown the fork, or on a branch that is a group of its own (a split that never healed: it lists
    only members on it); the group lists no member that is not on its branch. Every member ends
    out only if the last one left on its own."""
    outcome = churn_run(seed)
    assert outcome.silent == (), outcome
    assert outcome.stale == (), outcome
    assert outcome.on_branch or outcome.ended, outcome


def test_a_rejoin_that_gets_no_welcome_ends_in_group_left_with_messages_still_unreceipted() -> None:
    net = Net(4, seed=39)
    gid = net.form_group(net.peers)
    net.set_offline("peer-1")  # so our message waits for its receipt
    _, out = net.core("peer-3", gid).send_text("waiting for peer-1", net.now)
    net.feed("peer-3", out)
    net.run(1.0)
    core = net.core("peer-3", gid)
    # a commit (the message now needs sealing again), then removed while it re-joins (as after
    # a fork it lost): the sequencer refuses the re-join of a member it removed, no Welcome
    net.feed("peer-0", net.core("peer-0", gid).update(net.now))
    net.feed("peer-0", net.core("peer-0", gid).remove([core.own_fingerprint], net.now))
    net.feed("peer-3", core._rejoin("peer-0", "a fork", net.now))
    net.run(40.0)
    assert not core.active
    assert any(isinstance(e, GroupLeft) for e in net.events["peer-3"])


def test_a_member_of_the_winning_branch_refuses_an_invitation_from_the_losing_one() -> None:
    """docs/protocol.md §9.2: the branch of the later term is the group. A member of it that a
    member of the other branch invites (a peer it never listed) must not swap its membership for
    the losing branch's: it refuses that Welcome and stays where the group is."""
    net = Net(7, seed=43, config=FAST)
    gid = net.form_group(net.peers[:6])
    minority, majority = ["peer-0", "peer-5"], ["peer-1", "peer-2", "peer-3", "peer-4"]
    saved = _partition(net, minority, majority)
    net.feed("peer-4", net.core("peer-4", gid).update(net.now))
    net.run(10.0)
    assert net.core("peer-2", gid).sequencer == net.fingerprints["peer-1"]  # term 1
    net.feed("peer-1", net.core("peer-1", gid).invite("peer-6", net.now))
    net.run(3.0)
    joined = net.core("peer-6", gid)
    net.feed("peer-0", net.core("peer-0", gid).invite("peer-6", net.now))
    net.run(3.0)
    assert net.core("peer-6", gid) is joined and joined.active
    assert any(
        isinstance(e, PduRejected) and "branch that loses" in e.reason for e in net.events["peer-6"]
    )
    net.converged(gid, [*majority, "peer-6"])
    net.links = saved
    net.refresh_links()
    net.run(20.0)
    assert net.core("peer-6", gid) is joined
    net.converged(gid, [*majority, "peer-6"])


def test_a_removal_carried_out_on_a_branch_that_lost_is_carried_out_again_on_the_group() -> None:
    """docs/protocol.md §9.2: the removals a member knows were carried out are of its branch.
    A sequencer that committed a removal on a branch that then lost, and re-joined the group
    (taking leaf 0 again: the sequencer), must still carry out the asker's retries there."""
    net = Net(6, seed=46, config=FAST)
    gid = net.form_group(net.peers)
    asked = net.core("peer-2", gid).remove([net.fingerprints["peer-4"]], net.now)
    for item in asked:  # peer-0 commits it; its frames are lost (cut off right after)
        if isinstance(item, SendTo) and item.peer_id == "peer-0":
            net.nodes["peer-0"].receive("peer-2", item.pdu, net.now)
    assert net.fingerprints["peer-4"] not in net.core("peer-0", gid).members
    net.set_offline("peer-0")
    net.set_offline("peer-2")
    net.feed("peer-3", net.core("peer-3", gid).update(net.now))
    net.run(10.0)
    assert net.core("peer-1", gid)._term == 1  # peer-1 took over; peer-4 still a member there
    net.set_online("peer-0")
    net.run(10.0)
    assert net.core("peer-1", gid).sequencer == net.fingerprints["peer-0"]  # re-joined, leaf 0
    net.set_online("peer-2")
    net.run(40.0)
    assert net.fingerprints["peer-4"] not in net.core("peer-1", gid).members
    assert net.core("peer-2", gid).pending_intents() == 0


def test_a_member_removed_and_invited_again_at_once_is_not_removed_by_the_first_request() -> None:
    """docs/protocol.md §9.2: a removal request is carried out once (every member learns its
    key from the commit); the sequencer's own request still pending when the member is invited
    back, and a late copy of another member's, remove nobody."""
    net = Net(4, seed=42)
    gid = net.form_group(net.peers)
    sequencer = net.core("peer-0", gid)
    net.feed("peer-0", sequencer.remove([net.fingerprints["peer-3"]], net.now))
    net.run(0.2)
    assert "peer-3" not in sequencer.roster.values()
    net.feed("peer-0", sequencer.invite("peer-3", net.now))
    net.run(5.0)
    assert sequencer.roster.get(net.fingerprints["peer-3"]) == "peer-3"
    net.converged(gid, net.peers)
    # another member's removal: a copy that arrives after the member was invited back is over
    asked = net.core("peer-1", gid).remove([net.fingerprints["peer-2"]], net.now)
    copies = [o.pdu for o in asked if isinstance(o, SendTo)]
    net.feed("peer-1", asked)
    net.run(0.5)
    assert "peer-2" not in sequencer.roster.values()
    net.feed("peer-0", sequencer.invite("peer-2", net.now))
    net.run(3.0)
    for data in copies:
        net.feed("peer-0", net.nodes["peer-0"].receive("peer-1", data, net.now))
    net.run(3.0)
    assert sequencer.roster.get(net.fingerprints["peer-2"]) == "peer-2"
    net.converged(gid, net.peers)


def test_a_rejoin_request_overtaken_by_an_invitation_still_ends_with_the_peer_in_the_group() -> None:
    """docs/protocol.md §9.4: a re-join request still on its way when the peer is invited again
    is carried out (the sequencer cannot tell it is late): it replaces the new leaf with one for
    the request's key package. The peer's node kept that key when the invitation replaced the
    re-joining membership, so it takes that Welcome too and ends in the group — not listed with
    a key package nobody holds."""
    net = Net(4, seed=41, config=replace(CONFIG, retry_s=5.0))
    gid = net.form_group(net.peers)
    old = net.core("peer-3", gid)
    started = old._rejoin("peer-0", "a fork", net.now)
    late = [o.pdu for o in started if isinstance(o, SendTo)]  # delayed on the link
    net.feed("peer-3", [o for o in started if not isinstance(o, SendTo)])
    assert late
    # meanwhile the group removes peer-3 and invites it again: a new membership
    net.feed("peer-0", net.core("peer-0", gid).remove([old.own_fingerprint], net.now))
    net.run(1.0)
    net.feed("peer-0", net.core("peer-0", gid).invite("peer-3", net.now))
    net.run(2.0)
    invited = net.core("peer-3", gid)
    assert invited is not old and invited.active
    for data in late:  # the old request arrives at last
        net.feed("peer-0", net.nodes["peer-0"].receive("peer-3", data, net.now))
    net.run(10.0)
    net.converged(gid, net.peers)
    assert net.core("peer-3", gid).active
    assert net.core("peer-0", gid).roster[net.fingerprints["peer-3"]] == "peer-3"


def test_a_late_welcome_our_membership_has_overtaken_is_refused() -> None:
    """docs/protocol.md §9.2: the invitation of a peer that was re-joining, and then its
    re-join, both carried out (the re-join replaces the invited leaf). The re-join's Welcome
    arrives first; the invitation's, late, is to an epoch the peer is already past on the same
    branch — its leaf is gone (one identity, one leaf) — and is refused: taking it would swap
    the membership for a removed one."""
    net = Net(4, seed=42, config=replace(CONFIG, retry_s=5.0))
    gid = net.form_group(net.peers)
    core, sequencer = net.core("peer-3", gid), net.core("peer-0", gid)
    started = core._rejoin("peer-0", "a fork", net.now)
    request = [o.pdu for o in started if isinstance(o, SendTo)]
    net.feed("peer-3", [o for o in started if not isinstance(o, SendTo)])
    net.feed("peer-0", sequencer.remove([core.own_fingerprint], net.now))
    net.run(1.0)
    for peer in ("peer-0", "peer-1", "peer-2"):  # peer-3 hears nothing of what follows
        net.cut(peer, "peer-3")
    answer = net.key_package_answer(gid, "peer-0", "peer-3")
    invited = sequencer.receive("peer-3", answer, net.now)
    invitation = pdu_for(invited, Kind.WELCOME, "peer-3").encode()
    net.feed("peer-0", invited)
    rejoined: list[GroupOutput] = []
    for data in request:  # the re-join request arrives after the invitation
        rejoined += net.nodes["peer-0"].receive("peer-3", data, net.now)
    net.feed("peer-0", rejoined)
    net.run(1.0)
    net.feed("peer-3", net.nodes["peer-3"].receive("peer-0", pdu_for(rejoined, Kind.WELCOME, "peer-3").encode(),
                                                   net.now))
    assert net.core("peer-3", gid) is core and core.active and core.epoch == sequencer.epoch
    raised = replace(decode_pdu(invitation), epoch=core.epoch + 5).encode()  # no one signs it
    for copy in (invitation, raised):
        late = net.nodes["peer-3"].receive("peer-0", copy, net.now)
        assert any(isinstance(o, PduRejected) and "older than it" in o.reason for o in late)
    assert net.core("peer-3", gid) is core and core.active
    net.links.update(frozenset((p, "peer-3")) for p in ("peer-0", "peer-1", "peer-2"))
    net.refresh_links()
    net.run(5.0)
    net.converged(gid, net.peers)
    assert sequencer.roster[core.own_fingerprint] == "peer-3"


def test_a_peer_added_while_away_gets_its_welcome_when_back_though_the_sequencer_is_gone() -> None:
    """docs/protocol.md §9.2 rule 3: every member keeps the Welcome a commit carried; a member
    linked to the new peer resends it, the others park it, and a Welcome is parked, not dropped,
    after its tries. The peer answered the invitation and went away before the Welcome came;
    the sequencer is gone for good by the time it is back: a member that kept the Welcome sends
    it when the link comes up, and the peer joins."""
    net = Net(4, seed=43)
    gid = net.form_group(net.peers[:3])
    sequencer = net.core("peer-0", gid)
    answer = net.key_package_answer(gid, "peer-0", "peer-3")
    net.set_offline("peer-3")
    net.feed("peer-0", sequencer.receive("peer-3", answer, net.now))
    net.run(1.0)
    net.set_offline("peer-0")
    net.run(30.0)  # longer than every try of every Welcome resend
    assert gid not in net.nodes["peer-3"].groups
    net.set_online("peer-3")
    net.run(5.0)
    net.converged(gid, ["peer-1", "peer-2", "peer-3"])
    assert net.core("peer-3", gid).active


def test_a_re_joining_member_keeps_to_the_branch_it_set_out_to_re_join() -> None:
    """docs/protocol.md §9.2 rule 5: a member re-joins the branch that beat its own — the one
    the member it re-joins through reported. It refuses a Welcome of a branch that loses to
    that one (an invitation from a branch left behind), and when that member reports a losing
    branch itself (it took such a Welcome), another member of the branch carries the request."""
    net = Net(5, seed=44)
    gid = net.form_group(net.peers)
    core = net.core("peer-4", gid)
    goal = (2, "f" * 64)
    core._peer_terms.update({"peer-1": goal, "peer-2": goal})
    net.feed("peer-4", core._rejoin("peer-1", "a fork", net.now))
    assert core.rejoining and core._rejoin_target() == "peer-1"
    assert core.outranks(1, "0" * 64, 99)  # a branch that loses to the goal: refused
    assert not core.outranks(*goal, 99) and not core.outranks(3, "0" * 64, 99)
    core._peer_terms["peer-1"] = (0, "")  # peer-1 went over to a branch that loses
    assert core._rejoin_target() == "peer-2"


def test_a_state_saved_before_the_fork_window_restores_and_the_new_one_keeps_leaf_epochs() -> None:
    net = Net(3, seed=40)
    gid = net.form_group(net.peers)
    core = net.core("peer-1", gid)
    saved = decode_json(core.export_state())
    assert saved["added"] == {net.fingerprints["peer-1"]: 1, net.fingerprints["peer-2"]: 2}
    del saved["added"]  # what a core saved before this key existed holds
    node = net.nodes["peer-1"]
    restored = GroupCore.restore(net.service, node.identity, encode_json(saved), CONFIG, net.now)
    assert (restored.epoch, restored.members) == (core.epoch, core.members)
    node.groups.clear()
    node.adopt(restored)
    net.refresh_links()
    net.feed("peer-0", net.core("peer-0", gid).update(net.now))
    net.run(2.0)
    net.converged(gid, net.peers)


def test_a_member_that_re_joins_still_gets_what_it_had_not_receipted() -> None:
    """docs/protocol.md §9.3: a re-join is two commits, the removal of the old leaf and the add
    of the new one. A sender whose retransmission runs between the two must keep the messages
    the re-joining member owes a receipt for (the removal says so: `rj`), and seal them again
    for its new leaf — it is the same member, not a new one."""
    net = Net(4, seed=47)
    gid = net.form_group(net.peers)
    sender, away = net.core("peer-1", gid), net.core("peer-3", gid)
    net.set_offline("peer-3")
    msg_id, out = sender.send_text("while you were away", net.now)
    net.feed("peer-1", out)
    net.run(1.0)
    started = away._rejoin("peer-0", "history gone", net.now)  # frames lost: offline
    intent = next(o.pdu for o in started if isinstance(o, SendTo))
    commits = net.nodes["peer-0"].receive("peer-3", intent, net.now)
    to_sender = [o.pdu for o in commits if isinstance(o, SendTo) and o.peer_id == "peer-1"]
    net.feed("peer-0", [o for o in commits if not (isinstance(o, SendTo) and o.peer_id == "peer-1")])
    removal, add = (decode_pdu(p) for p in to_sender[:2])
    assert (removal.kind, add.kind) == (Kind.COMMIT, Kind.COMMIT)
    net.feed("peer-1", net.nodes["peer-1"].receive("peer-0", to_sender[0], net.now))
    later = net.now + 5.0
    net.feed("peer-1", net.nodes["peer-1"].handle_timeout(later))  # between the two
    assert msg_id in sender._outbox
    deadline = net.nodes["peer-1"].next_deadline()
    assert deadline is not None and deadline > later  # waiting, not a timer due at once again
    net.feed("peer-1", net.nodes["peer-1"].receive("peer-0", to_sender[1], net.now))
    net.set_online("peer-3")
    net.run(10.0)
    net.converged(gid, net.peers)
    assert net.core("peer-3", gid) is away and away.active
    assert [m.msg_id for m in net.delivered("peer-3")].count(msg_id) == 1
