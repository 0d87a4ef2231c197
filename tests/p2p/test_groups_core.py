"""Group chat core (docs/protocol.md "Group chat"): 8+ members in-process over a simulated network
with the pyca crypto plugin's group service — formation, exactly-once delivery with per-member
receipts, membership changes, relay, catch-up, re-join, forks shown, persistence."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.groups import (
    ForkDetected,
    GroupCore,
    GroupLeft,
    GroupNode,
    GroupRenamed,
    MembershipChanged,
    PduRejected,
    ReceiptFromMember,
    RejoinStarted,
    SendTo,
    decode_pdu,
)
from enkrypted_p2p.groups._wire import GroupPdu, Kind, encode_json, pack_list
from enkrypted_shell.contracts import GroupControlSigner, GroupInputRejected, LocalMisuse
from tests.p2p.groups_net import CONFIG, Net, signed_details


def _send(net: Net, peer: str, gid: bytes, text: str) -> bytes:
    msg_id, out = net.core(peer, gid).send_text(text, net.now)
    net.feed(peer, out)
    return msg_id


def _texts(net: Net, peer: str) -> list[str]:
    return [m.text for m in net.delivered(peer)]


def test_eight_members_form_a_group_and_every_message_reaches_every_member_once() -> None:
    net = Net(8, seed=1)
    gid = net.form_group(net.peers, name="team")
    net.converged(gid, net.peers)
    assert len(net.core("peer-5", gid).members) == 8
    assert net.core("peer-7", gid).name == "team"
    ids = [_send(net, p, gid, f"hi from {p}") for p in net.peers]
    net.run(3.0)
    for peer in net.peers:
        got = net.delivered(peer)
        assert sorted(m.text for m in got) == sorted(f"hi from {p}" for p in net.peers if p != peer)
        assert len({m.msg_id for m in got}) == len(got) == 7
        for m in got:
            assert m.sender == net.fingerprints[m.sender_peer]
    receipts = [e for e in net.events["peer-2"] if isinstance(e, ReceiptFromMember)]
    mine = {(r.msg_id, r.member) for r in receipts if r.msg_id == ids[2]}
    assert len(mine) == 7  # one receipt per other member, no duplicates


def test_removed_member_cannot_read_later_messages_and_added_member_sees_only_new_ones() -> None:
    net = Net(9, seed=2)
    gid = net.form_group(net.peers[:8])
    _send(net, "peer-1", gid, "before")
    net.run(1.0)
    net.feed("peer-4", net.core("peer-4", gid).remove([net.fingerprints["peer-6"]], net.now))
    net.feed("peer-3", net.core("peer-3", gid).invite("peer-8", net.now))
    net.run(3.0)
    current = [p for p in net.peers if p != "peer-6"]
    net.converged(gid, current)
    assert net.fingerprints["peer-6"] not in net.core("peer-0", gid).members
    assert any(isinstance(e, GroupLeft) for e in net.events["peer-6"])
    _send(net, "peer-2", gid, "after")
    net.run(2.0)
    assert "after" not in _texts(net, "peer-6")
    assert _texts(net, "peer-8") == ["after"]
    for peer in current:
        if peer not in ("peer-2", "peer-8"):
            assert _texts(net, peer).count("after") == 1


def test_a_removed_member_cannot_decrypt_later_ciphertext_even_with_its_old_state() -> None:
    net = Net(4, seed=3)
    gid = net.form_group(net.peers)
    removed = net.core("peer-3", gid)
    kept = removed._session.export_state()  # what a removed member could hoard
    net.feed("peer-1", net.core("peer-1", gid).remove([net.fingerprints["peer-3"]], net.now))
    net.run(2.0)
    assert not removed.active
    _, out = net.core("peer-0", gid).send_text("secret", net.now)
    frame = next(o.pdu for o in out if getattr(o, "peer_id", "") == "peer-1")
    ciphertext = decode_pdu(frame).body
    for session in (removed._session, net.service.restore_group(kept)):
        events = session.receive(ciphertext)
        assert [type(e) for e in events] == [GroupInputRejected]
    before = removed.export_state()
    result = removed.receive("peer-0", frame.replace(b"peer-1", b"peer-3"), net.now)
    assert result and all(isinstance(e, PduRejected) for e in result)
    assert removed.export_state() == before


def test_rename_converges_on_the_last_writer_and_leave_is_committed_by_the_sequencer() -> None:
    net = Net(8, seed=4)
    gid = net.form_group(net.peers)
    net.feed("peer-2", net.core("peer-2", gid).rename("alpha", net.now))
    net.feed("peer-5", net.core("peer-5", gid).rename("beta", net.now))
    net.run(2.0)
    names = {net.core(p, gid).name for p in net.peers}
    assert len(names) == 1
    assert any(isinstance(e, GroupRenamed) for e in net.events["peer-7"])
    net.feed("peer-3", net.core("peer-3", gid).leave(net.now))
    net.run(3.0)
    assert not net.core("peer-3", gid).active
    rest = [p for p in net.peers if p != "peer-3"]
    net.converged(gid, rest)
    assert len(net.core("peer-0", gid).members) == 7


def test_the_sequencer_leaving_hands_off_to_the_next_member() -> None:
    net = Net(8, seed=5)
    gid = net.form_group(net.peers)
    assert net.core("peer-4", gid).sequencer == net.fingerprints["peer-0"]
    net.feed("peer-0", net.core("peer-0", gid).leave(net.now))
    net.run(3.0)
    rest = net.peers[1:]
    net.converged(gid, rest)
    assert net.core("peer-4", gid).sequencer == net.fingerprints["peer-1"]
    assert not net.core("peer-0", gid).active
    net.feed("peer-6", net.core("peer-6", gid).update(net.now))
    net.run(3.0)
    net.converged(gid, rest)
    assert net.core("peer-6", gid).epoch == 9  # 7 adds, the hand-off removal, the update


def test_messages_are_relayed_as_ciphertext_when_links_are_missing() -> None:
    net = Net(8, seed=6)
    gid = net.form_group(net.peers)
    # peer-7 keeps a link to peer-6 only: everything to and from it is relayed (hop limit 2)
    for peer in net.peers[:6]:
        net.cut("peer-7", peer)
    net.run(1.5)  # link adverts go out with the next status
    _send(net, "peer-0", gid, "to all")
    _send(net, "peer-7", gid, "from the edge")
    net.run(3.0)
    assert _texts(net, "peer-7") == ["to all"]
    for peer in net.peers[:7]:
        assert _texts(net, peer).count("from the edge") == 1
    net.feed("peer-2", net.core("peer-2", gid).update(net.now))
    net.run(3.0)
    net.converged(gid, net.peers)


def test_an_offline_member_catches_up_on_missed_commits_and_messages() -> None:
    net = Net(8, seed=7)
    gid = net.form_group(net.peers)
    net.set_offline("peer-5")
    _send(net, "peer-1", gid, "while away 1")
    net.run(1.0)
    net.feed("peer-2", net.core("peer-2", gid).update(net.now))
    net.run(1.0)
    net.feed("peer-3", net.core("peer-3", gid).remove([net.fingerprints["peer-4"]], net.now))
    net.run(1.0)
    _send(net, "peer-6", gid, "while away 2")
    net.run(1.0)
    net.set_online("peer-5")
    net.run(5.0)
    rest = [p for p in net.peers if p != "peer-4"]
    net.converged(gid, rest)
    assert sorted(_texts(net, "peer-5")) == ["while away 1", "while away 2"]


def test_a_member_whose_missed_history_is_gone_rejoins_by_a_new_welcome() -> None:
    net = Net(6, seed=8, config=CONFIG.__class__(retry_s=0.5, heartbeat_s=1.0, history_max_items=4))
    gid = net.form_group(net.peers)
    net.set_offline("peer-4")
    for i in range(6):
        net.feed("peer-1", net.core("peer-1", gid).update(net.now))
        _send(net, "peer-2", gid, f"lost {i}")
        net.run(1.0)
    net.set_online("peer-4")
    net.run(8.0)
    assert any(isinstance(e, RejoinStarted) for e in net.events["peer-4"])
    net.converged(gid, net.peers)
    _send(net, "peer-3", gid, "welcome back")
    net.run(2.0)
    assert "welcome back" in _texts(net, "peer-4")


def test_a_fork_is_detected_shown_and_healed_by_a_rejoin() -> None:
    net = Net(5, seed=9)
    gid = net.form_group(net.peers)
    epoch = net.core("peer-0", gid).epoch
    # a second, valid commit for the same epoch, signed by the sequencer's leaf (a cloned
    # state), reaches only peer-4 while it is away from the real one: two branches
    clone = net.service.restore_group(net.core("peer-0", gid)._session.export_state())
    net.set_offline("peer-4")
    net.feed("peer-0", net.core("peer-0", gid).update(net.now))
    net.run(1.0)
    commit = clone.update().commit
    assert isinstance(clone, GroupControlSigner)
    rogue = GroupPdu(
        Kind.COMMIT,
        gid,
        epoch,
        b"\x01" * 16,
        "peer-0",
        pack_list([commit, signed_details(clone, "peer-0", commit, {"added": {}}), b""]),
        "peer-4",
        hops=1,
    )
    forked = net.core("peer-4", gid)
    net.feed("peer-4", forked.receive("peer-1", rogue.encode(), net.now))
    assert forked.epoch == epoch + 1
    assert forked.epoch_authenticator != net.core("peer-0", gid).epoch_authenticator
    net.set_online("peer-4")
    net.run(6.0)
    forks = [e for e in net.events["peer-4"] if isinstance(e, ForkDetected)]
    assert forks and forks[0].epoch == epoch + 1
    assert any(isinstance(e, RejoinStarted) for e in net.events["peer-4"])
    net.converged(gid, net.peers)
    assert len(net.core("peer-0", gid).members) == 5
    _send(net, "peer-2", gid, "healed")
    net.run(2.0)
    assert _texts(net, "peer-4") == ["healed"]


def test_state_is_persisted_and_resumed_after_a_restart() -> None:
    net = Net(8, seed=10)
    gid = net.form_group(net.peers)
    _, out = net.core("peer-1", gid).send_text("one", net.now)
    replay = next(o.pdu for o in out if getattr(o, "peer_id", "") == "peer-3")
    net.feed("peer-1", out)
    net.run(1.0)
    node = net.nodes["peer-3"]
    saved = net.core("peer-3", gid).export_state()
    node.groups.clear()
    restored = GroupCore.restore(net.service, node.identity, saved, CONFIG, net.now)
    node.adopt(restored)
    net.refresh_links()
    assert restored.epoch == 7 and restored.members == net.core("peer-0", gid).members
    # a replay of "one" after the restart is not delivered again; new messages are
    net.feed("peer-3", restored.receive("peer-1", replay, net.now))
    _send(net, "peer-1", gid, "two")
    net.run(2.0)
    assert _texts(net, "peer-3") == ["one", "two"]
    with pytest.raises(P2PUsageError):
        GroupCore.restore(net.service, node.identity, saved[:-5], CONFIG)


def test_unreceipted_messages_survive_the_senders_restart_and_reach_the_member_later() -> None:
    # found by the soak (docs/operations.md §11): a member unreachable when a message was sent,
    # and the sender restarted before it came back, never got it
    net = Net(3, seed=13)
    gid = net.form_group(net.peers)
    net.set_offline("peer-2")
    _send(net, "peer-1", gid, "while you were away")
    net.run(1.0)
    node = net.nodes["peer-1"]
    saved = net.core("peer-1", gid).export_state()
    node.groups.clear()
    node.adopt(GroupCore.restore(net.service, node.identity, saved, CONFIG, net.now))
    net.refresh_links()
    net.set_online("peer-2")
    net.run(2 * CONFIG.retry_s + 1.0)
    assert _texts(net, "peer-2") == ["while you were away"]
    assert _texts(net, "peer-0") == ["while you were away"]


def test_a_member_away_longer_than_every_retry_gets_the_message_when_it_is_back() -> None:
    """§9.3: after MAX_TRIES x retry_s the sender parks the message (kept, saved) instead of
    dropping it; when a member it waits for is back (its link comes up) it goes again."""
    net = Net(3, seed=15)
    gid = net.form_group(net.peers)
    net.cut("peer-2", "peer-0")
    net.cut("peer-2", "peer-1")  # peer-2 runs on, unreachable
    msg_id = _send(net, "peer-1", gid, "a long absence")
    net.run(40 * CONFIG.retry_s)
    assert _texts(net, "peer-0") == ["a long absence"] and _texts(net, "peer-2") == []
    sender = net.core("peer-1", gid)
    assert msg_id in sender._outbox  # parked: kept
    saved = GroupCore.restore(net.service, net.nodes["peer-1"].identity, sender.export_state())
    assert msg_id in saved._outbox  # and saved
    net.links |= {frozenset(("peer-2", p)) for p in ("peer-0", "peer-1")}
    net.refresh_links()
    net.run(3 * CONFIG.retry_s)
    assert _texts(net, "peer-2") == ["a long absence"]
    assert msg_id not in sender._outbox  # receipted by everyone: gone


def test_a_parked_message_goes_when_the_member_it_waits_for_is_removed() -> None:
    net = Net(3, seed=16)
    gid = net.form_group(net.peers)
    net.cut("peer-2", "peer-0")
    net.cut("peer-2", "peer-1")
    msg_id = _send(net, "peer-1", gid, "never for peer-2")
    net.run(40 * CONFIG.retry_s)
    assert msg_id in net.core("peer-1", gid)._outbox
    net.feed("peer-0", net.core("peer-0", gid).remove([net.fingerprints["peer-2"]], net.now))
    net.run(3 * CONFIG.retry_s)
    assert msg_id not in net.core("peer-1", gid)._outbox


def test_a_member_removed_without_knowing_and_invited_again_keeps_what_it_sent() -> None:
    """The commit that removed peer-2 never reached it and the group moved on; invited again,
    its new membership seals again what nobody had receipted (same id) for the members still
    here: delivered once each, receipted, not lost."""
    net = Net(3, seed=14)
    gid = net.form_group(net.peers)
    old = net.core("peer-2", gid)
    net.cut("peer-2", "peer-0")
    net.cut("peer-2", "peer-1")
    msg_id = _send(net, "peer-2", gid, "sent while cut off")
    net.feed("peer-0", net.core("peer-0", gid).remove([net.fingerprints["peer-2"]], net.now))
    net.run(1.0)
    for _ in range(3):  # past the epochs whose keys members keep (RFC 9420 §14): only a seal
        net.feed("peer-1", net.core("peer-1", gid).update(net.now))  # at the new epoch reads
        net.run(1.0)
    assert net.fingerprints["peer-2"] not in net.core("peer-1", gid).members
    assert old.active and not any(isinstance(e, GroupLeft) for e in net.events["peer-2"])
    net.links |= {frozenset(("peer-2", "peer-0")), frozenset(("peer-2", "peer-1"))}
    net.refresh_links()
    net.feed("peer-0", net.core("peer-0", gid).invite("peer-2", net.now))
    net.run(4.0)
    assert net.core("peer-2", gid) is not old  # a new member, with a new core
    net.converged(gid, net.peers)
    for peer in ("peer-0", "peer-1"):
        assert [m.msg_id for m in net.delivered(peer)] == [msg_id]
    receipts = {e.peer_id for e in net.events["peer-2"]
                if isinstance(e, ReceiptFromMember) and e.msg_id == msg_id}
    assert receipts == {"peer-0", "peer-1"}


def test_membership_events_name_who_changed() -> None:
    net = Net(3, seed=11)
    net.form_group(net.peers)
    changes = [e for e in net.events["peer-1"] if isinstance(e, MembershipChanged)]
    assert changes[-1].added == (net.fingerprints["peer-2"],)
    assert changes[-1].committer == net.fingerprints["peer-0"]


def test_a_message_crosses_two_relays_when_no_neighbour_reaches_the_target() -> None:
    net = Net(8, seed=12)
    gid = net.form_group(net.peers)
    for peer in net.peers[:6]:
        net.cut("peer-7", peer)  # peer-7 keeps peer-6 only
    net.cut("peer-0", "peer-6")  # and peer-0 has no link to peer-6
    net.run(1.5)
    _send(net, "peer-0", gid, "two hops")
    net.run(2.0)
    assert _texts(net, "peer-7") == ["two hops"]
    receipts = [e for e in net.events["peer-0"] if isinstance(e, ReceiptFromMember)]
    assert net.fingerprints["peer-7"] in {r.member for r in receipts}


def test_a_relaying_member_cannot_forge_or_alter_another_members_receipt() -> None:
    """A receipt relayed for another member counts only with that member's control signature
    (crypto 2.2, docs/protocol.md §9.3): the link authenticates the relay, not the member it
    relays for, so the relay can neither make one up nor change what it says."""
    net = Net(8, seed=6)
    gid = net.form_group(net.peers)
    for peer in net.peers[:6]:
        net.cut("peer-7", peer)  # peer-7 keeps peer-6 only: its receipts to peer-0 are relayed
    net.run(1.5)
    node = net.nodes["peer-0"]
    withheld: list[bytes] = []

    def keep_relayed_receipts(peer_id: str, data: bytes, now: float) -> list[object]:
        pdu = decode_pdu(data)
        if pdu.kind is Kind.RECEIPT and pdu.origin == "peer-7":
            withheld.append(data)
            return []
        return GroupNode.receive(node, peer_id, data, now)

    node.receive = keep_relayed_receipts  # type: ignore[method-assign,assignment]
    _send(net, "peer-0", gid, "to all")
    net.run(1.0)
    del node.receive  # type: ignore[method-assign]
    assert withheld
    genuine = decode_pdu(withheld[0])
    body = json.loads(genuine.body)
    assert genuine.hops >= 1 and "s" in body

    def with_body(**changes: object) -> bytes:
        return replace(genuine, body=encode_json({**body, **changes})).encode()

    unsigned = {k: v for k, v in body.items() if k != "s"}
    flipped = bytes.fromhex(body["s"])
    forged = {
        "unsigned": replace(genuine, body=encode_json(unsigned)).encode(),
        "signature altered": with_body(s=(bytes([flipped[0] ^ 1]) + flipped[1:]).hex()),
        "signature not hex": with_body(s="zz" * 64),
        "signature oversize": with_body(s="00" * 4096),
        "epoch altered": with_body(e=body["e"] + 1),
        "fork check altered": with_body(f="00" * 16),
        "another message's id": with_body(ids=["11" * 16]),
        "relabelled as another member's": replace(genuine, origin="peer-5").encode(),
        "fork window nested deep": with_body(w=[json.loads("[" * 900 + "]" * 900)]),
        "fork check not a string": with_body(f={"x": 1}),
    }
    core = net.core("peer-0", gid)
    for name, data in forged.items():
        out = core.receive("peer-6", data, net.now)
        assert any(isinstance(o, PduRejected) for o in out), name
        assert not any(isinstance(o, ReceiptFromMember) for o in out), name
    out = core.receive("peer-6", withheld[0], net.now)
    assert [o.member for o in out if isinstance(o, ReceiptFromMember)] == [net.fingerprints["peer-7"]]


def test_a_relaying_member_cannot_ask_a_change_in_another_members_name() -> None:
    """A request (INTENT) relayed for another member counts only with that member's control
    signature over its body (docs/protocol.md §9.3); a genuine relayed one is committed."""
    net = Net(8, seed=15)
    gid = net.form_group(net.peers)
    for peer in net.peers[:6]:
        net.cut("peer-7", peer)  # peer-7 reaches the sequencer (peer-0) through peer-6 only
    net.run(1.5)
    sequencer = net.core("peer-0", gid)
    victim = net.fingerprints["peer-3"]
    genuine = decode_pdu(next(
        o.pdu for o in net.core("peer-7", gid).remove([victim], net.now) if isinstance(o, SendTo)))
    assert genuine.kind is Kind.INTENT and "s" in json.loads(genuine.body)
    body = json.loads(genuine.body)
    relayed = replace(genuine, hops=1, target="peer-0")
    unsigned = {k: v for k, v in body.items() if k != "s"}
    forged = {
        "unsigned": replace(relayed, body=encode_json(unsigned)).encode(),
        "another member removed": replace(
            relayed, body=encode_json({**body, "fps": [net.fingerprints["peer-4"]]})).encode(),
        "relabelled as another member's": replace(relayed, origin="peer-5").encode(),
        "signature not hex": replace(relayed, body=encode_json({**body, "s": "zz"})).encode(),
    }
    for name, data in forged.items():
        out = sequencer.receive("peer-6", data, net.now)
        assert any(isinstance(o, PduRejected) for o in out), name
        assert victim in sequencer.members, name
    out = sequencer.receive("peer-6", relayed.encode(), net.now)
    net.feed("peer-0", out)
    net.run(3.0)
    assert victim not in sequencer.members


def test_a_member_whose_session_cannot_sign_any_more_still_answers_unsigned() -> None:
    """Removed by a commit in the same batch of frames, a member's session refuses to sign: the
    receipt goes unsigned (counted only over a direct link) instead of raising in the core."""
    net = Net(3, seed=14)
    gid = net.form_group(net.peers)
    receiver = net.core("peer-2", gid)

    def removed(content: bytes) -> bytes:
        raise LocalMisuse("we were removed from this group")

    receiver._session.sign_control = removed  # type: ignore[attr-defined]
    _, out = net.core("peer-0", gid).send_text("hi", net.now)
    frame = next(o.pdu for o in out if isinstance(o, SendTo) and o.peer_id == "peer-2")
    answer = receiver.receive("peer-0", frame, net.now)
    sent = [o.pdu for o in answer if isinstance(o, SendTo)]
    receipts = [decode_pdu(pdu) for pdu in sent]
    assert [p.kind for p in receipts] == [Kind.RECEIPT]
    assert "s" not in json.loads(receipts[0].body)
    got = net.core("peer-0", gid).receive("peer-2", sent[0], net.now)
    assert any(isinstance(o, ReceiptFromMember) for o in got)  # direct: the link vouches for it


def test_a_node_declines_invitations_its_policy_refuses_and_unasked_welcomes() -> None:
    net = Net(3, seed=13)
    declined = GroupNode(
        net.service, net.service.new_identity(), "peer-2", accept_invite=lambda p, g: False
    )
    net.nodes["peer-2"] = declined
    net.refresh_links()
    core = net.nodes["peer-0"].create_group("g")
    core.set_links(["peer-1", "peer-2"], net.now)
    net.feed("peer-0", core.invite("peer-2", net.now))
    net.run(1.0)
    assert core.group_id not in declined.groups
    assert any(isinstance(e, PduRejected) and "declined" in e.reason for e in net.events["peer-2"])
    welcome = GroupPdu(
        Kind.WELCOME, b"w" * 32, 1, b"\x02" * 16, "peer-0", pack_list([b"x", b"{}"]), "peer-1"
    )
    out = net.nodes["peer-1"].receive("peer-0", welcome.encode(), net.now)
    assert [type(o) for o in out] == [PduRejected]


def test_the_public_surface_is_pinned() -> None:
    import enkrypted_p2p.groups as groups

    assert sorted(groups.__all__) == sorted(
        [
            "HOP_LIMIT",
            "ForkDetected",
            "GroupConfig",
            "GroupCore",
            "GroupEvent",
            "GroupLeft",
            "GroupMessageDelivered",
            "GroupNode",
            "GroupOutput",
            "GroupPdu",
            "GroupRenamed",
            "Kind",
            "MembershipChanged",
            "PduRejected",
            "ReceiptFromMember",
            "RejoinStarted",
            "SendTo",
            "decode_pdu",
            "fork_check",
        ]
    )
