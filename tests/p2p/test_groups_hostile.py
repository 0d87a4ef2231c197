"""Hostile group PDUs (docs/protocol.md "Group chat", wire format and P8 limits): malformed,
oversize, of another group, of a stale epoch, replayed, forged or mutated frames are dropped with
a one-line reason and leave the member's state exactly as it was."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enkrypted_p2p.errors import P2PUsageError, RemoteInputError
from enkrypted_p2p.groups import (
    GroupCore,
    GroupMessageDelivered,
    GroupPdu,
    Kind,
    MembershipChanged,
    PduRejected,
    SendTo,
    decode_pdu,
)
from enkrypted_p2p.groups._base import removal_key
from enkrypted_p2p.groups._signatures import control_content
from enkrypted_p2p.groups._wire import MAX_BODY, decode_json, encode_json, pack_list, unpack_list
from enkrypted_shell.contracts import WIRE_LIMITS, GroupControlSigner
from tests.p2p.groups_net import Net, pdu_for, signed_details

GID = b"g" * 32


def _pdu(**changes: object) -> GroupPdu:
    base = GroupPdu(Kind.APPLICATION, GID, 3, b"\x07" * 16, "peer-1", b"body", "peer-2", 1)
    return replace(base, **changes)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ the envelope
def test_envelope_round_trips_every_kind() -> None:
    for kind in Kind:
        pdu = _pdu(kind=kind)
        assert decode_pdu(pdu.encode()) == pdu


def test_every_truncation_and_extension_of_a_pdu_is_refused() -> None:
    wire = _pdu().encode()
    for cut in range(len(wire)):
        with pytest.raises(RemoteInputError):
            decode_pdu(wire[:cut])
    with pytest.raises(RemoteInputError):
        decode_pdu(wire + b"\x00")


@pytest.mark.parametrize(
    ("offset", "value", "reason"),
    [
        (0, b"X", "not a group PDU"),
        (2, b"\x02", "not a group PDU"),
        (3, b"\x63", "unknown group PDU kind"),
        (4, b"\x03", "relayed 3 times"),
        (29, b"\x00", "group id length 0"),
        (29, b"\x41", "group id length 65"),
    ],
)
def test_bad_envelope_fields_are_refused_with_a_reason(
    offset: int, value: bytes, reason: str
) -> None:
    wire = bytearray(_pdu().encode())
    wire[offset : offset + 1] = value
    with pytest.raises(RemoteInputError, match=reason):
        decode_pdu(bytes(wire))


def test_a_pdu_over_the_p8_cap_is_refused_before_parsing() -> None:
    with pytest.raises(RemoteInputError, match="PDU cap"):
        decode_pdu(b"EG" + b"\x00" * WIRE_LIMITS.max_pdu_bytes)
    with pytest.raises(P2PUsageError):
        _pdu(body=b"\x00" * (MAX_BODY + 1)).encode()


def test_non_utf8_or_unprintable_peer_ids_are_refused() -> None:
    wire = _pdu(origin="peer-1").encode().replace(b"peer-1", b"peer\xff1")
    with pytest.raises(RemoteInputError, match="UTF-8"):
        decode_pdu(wire)
    wire = _pdu(origin="peer-1").encode().replace(b"peer-1", b"peer\n1")
    with pytest.raises(RemoteInputError, match="printable"):
        decode_pdu(wire)


# ------------------------------------------------------------------------------ a member's core
@pytest.fixture(scope="module")
def world() -> tuple[Net, bytes, list[bytes]]:
    """An 8-member group; frames peer-3 received (commits, messages) kept for replays."""
    net = Net(8, seed=21)
    gid = net.form_group(net.peers)
    captured: list[bytes] = []
    for sender in ("peer-1", "peer-5"):
        _, out = net.core(sender, gid).send_text(f"from {sender}", net.now)
        captured += [o.pdu for o in out if isinstance(o, SendTo) and o.peer_id == "peer-3"]
        net.feed(sender, out)
    net.run(2.0)
    return net, gid, captured


def _unchanged(core: GroupCore, peer: str, data: bytes, now: float) -> list[object]:
    before = core.export_state()
    out = core.receive(peer, data, now)
    assert core.export_state() == before
    assert not any(isinstance(o, GroupMessageDelivered | MembershipChanged) for o in out)
    return list(out)


def test_hostile_pdus_leave_the_member_state_unchanged(
    world: tuple[Net, bytes, list[bytes]],
) -> None:
    net, gid, captured = world
    core = net.core("peer-3", gid)
    epoch = core.epoch
    valid = decode_pdu(captured[0])
    hostile = {
        "garbage": os.urandom(200),
        "empty": b"",
        "oversize": b"EG\x01" + bytes(WIRE_LIMITS.max_pdu_bytes),
        "other group": replace(valid, group_id=b"x" * 32).encode(),
        "replayed message": captured[0],
        "replayed message, new id": replace(valid, msg_id=b"\x99" * 16).encode(),
        "forged direct origin": replace(valid, origin="peer-6", hops=0).encode(),
        "stale commit": replace(
            valid, kind=Kind.COMMIT, epoch=epoch - 1, body=pack_list([b"junk", b"{}", b""])
        ).encode(),
        "current-epoch junk commit": replace(
            valid, kind=Kind.COMMIT, epoch=epoch, body=pack_list([b"junk", b"{}", b""])
        ).encode(),
        "commit without parts": replace(
            valid, kind=Kind.COMMIT, epoch=epoch, body=b"\x00"
        ).encode(),
        "junk message": replace(valid, body=b"\x00" * 64, msg_id=b"\x55" * 16).encode(),
        "future junk message": replace(valid, epoch=epoch + 5, msg_id=b"\x56" * 16).encode(),
        "key package request": replace(valid, kind=Kind.KEY_PACKAGE_REQUEST).encode(),
        "unasked key package": replace(valid, kind=Kind.KEY_PACKAGE_RESPONSE, hops=0).encode(),
        "unasked welcome": replace(
            valid, kind=Kind.WELCOME, body=pack_list([b"w", b"{}"])
        ).encode(),
        "huge receipt": replace(
            valid,
            kind=Kind.RECEIPT,
            body=encode_json({"ids": ["00" * 16] * 65, "e": epoch, "f": ""}),
        ).encode(),
        "receipt not json": replace(valid, kind=Kind.RECEIPT, body=b"\xff{").encode(),
        "receipt id not hex": replace(
            valid, kind=Kind.RECEIPT, body=encode_json({"ids": ["zz" * 16], "e": epoch, "f": ""})
        ).encode(),
        "intent not json": replace(valid, kind=Kind.INTENT, body=b"[1,2]").encode(),
        "intent of no kind": replace(valid, kind=Kind.INTENT, body=b'{"op":"explode"}').encode(),
        "relayed status": replace(valid, kind=Kind.STATUS, body=b"{}").encode(),
        "history of junk": replace(
            valid, kind=Kind.HISTORY_RESPONSE, body=b"\x01" + pack_list([b"x"])
        ).encode(),
        "history bad flag": replace(valid, kind=Kind.HISTORY_RESPONSE, body=b"\x07").encode(),
        "relay past the hop limit": replace(valid, target="peer-6", hops=2).encode(),
    }
    for name, data in hostile.items():
        out = _unchanged(core, "peer-1", data, net.now)
        rejected = [o for o in out if isinstance(o, PduRejected)]
        assert rejected or name in ("replayed message", "future junk message"), name
        assert all(r.reason and "\n" not in r.reason for r in rejected), name
    assert core.epoch == epoch


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_frames_never_deliver_or_change_state(
    world: tuple[Net, bytes, list[bytes]], data: st.DataObject
) -> None:
    net, gid, captured = world
    core = net.core("peer-3", gid)
    frame = bytearray(data.draw(st.sampled_from(captured)))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(frame) - 1))
        frame[at] ^= data.draw(st.integers(1, 255))
    _unchanged(core, "peer-1", bytes(frame), net.now)


def test_restore_refuses_damaged_state(world: tuple[Net, bytes, list[bytes]]) -> None:
    net, gid, _ = world
    core = net.core("peer-2", gid)
    for bad in (b"", b"{}", b"[]", core.export_state().replace(b'"session":"', b'"session":"AA')):
        with pytest.raises(P2PUsageError, match="damaged group core state"):
            GroupCore.restore(net.service, net.nodes["peer-2"].identity, bad)


# ------------------------------------------------------------------------------ commit details
def _removal_asked_and_lost(net: Net, gid: bytes) -> tuple[GroupPdu, dict[str, object]]:
    """peer-2 asks to remove peer-3 (the request is lost) and is cut from peer-0 (the sequencer)
    and peer-1 while peer-0 commits an update: the commit peer-2 has not seen, and its request."""
    asker, sequencer = net.core("peer-2", gid), net.core("peer-0", gid)
    asked = asker.remove([net.fingerprints["peer-3"]], net.now)
    net.feed("peer-2", [o for o in asked if not isinstance(o, SendTo)])  # the request is lost
    request = next(iter(asker._intents.values()))[0]
    net.cut("peer-0", "peer-2")
    net.cut("peer-1", "peer-2")
    net.feed("peer-1", net.core("peer-1", gid).update(net.now))
    while sequencer.epoch == asker.epoch:
        net.run(0.01)
    commit = next(decode_pdu(e.pdu) for e in sequencer._history._entries if e.kind is Kind.COMMIT
                  and decode_pdu(e.pdu).epoch == asker.epoch)
    return commit, request


def _heal_and_see_the_removal_through(net: Net, gid: bytes) -> None:
    net.links.update({frozenset(("peer-0", "peer-2")), frozenset(("peer-1", "peer-2"))})
    net.refresh_links()
    net.run(10.0)
    assert net.fingerprints["peer-3"] not in net.core("peer-0", gid).members


@pytest.mark.parametrize("alteration", ["done added", "signature stripped", "of another commit"])
def test_a_commit_whose_details_a_relay_altered_is_refused_and_changes_nothing(
    alteration: str,
) -> None:
    """docs/protocol.md §9.2 rule 3: the committer signs a commit's details and names the commit
    in them. A member relaying a commit to the member that asked for its removal adds `done`
    (that request carried out) so the asker drops it and the relay stays in the group; or strips
    the signature; or swaps in the details of another commit. The commit is refused, the asker's
    state is unchanged, its request goes on and the removal is carried out."""
    net = Net(4, seed=45)
    gid = net.form_group(net.peers)
    asker = net.core("peer-2", gid)
    commit, request = _removal_asked_and_lost(net, gid)
    mls, raw, welcome = unpack_list(commit.body, 3)
    details = decode_json(raw)
    if alteration == "done added":
        details["done"] = removal_key("peer-2", request).hex()
    elif alteration == "signature stripped":
        details.pop("s")
    else:
        details["h"] = "00" * 32
    relayed = replace(commit, body=pack_list([mls, encode_json(details), welcome]),
                      target="peer-2", hops=1)
    epoch = asker.epoch
    out = net.nodes["peer-2"].receive("peer-3", relayed.encode(), net.now)
    assert any(isinstance(o, PduRejected) and "did not sign" in o.reason for o in out), out
    assert asker.epoch == epoch and asker.pending_intents() == 1  # still asking
    _heal_and_see_the_removal_through(net, gid)


def test_a_commit_relayed_as_it_was_signed_is_believed_done_included() -> None:
    """The signed details are the committer's word whoever carries them: a relayed copy (or a
    history answer) of the commit that carried out a removal tells that member it is done."""
    net = Net(4, seed=46)
    gid = net.form_group(net.peers)
    asker, sequencer, away = (net.core(p, gid) for p in ("peer-2", "peer-0", "peer-1"))
    net.set_offline("peer-1")
    net.feed("peer-2", asker.remove([net.fingerprints["peer-3"]], net.now))
    net.run(2.0)
    assert net.fingerprints["peer-3"] not in sequencer.members
    commit = next(decode_pdu(e.pdu) for e in sequencer._history._entries if e.kind is Kind.COMMIT
                  and decode_pdu(e.pdu).epoch == away.epoch)
    done = bytes.fromhex(str(decode_json(unpack_list(commit.body, 3)[1])["done"]))
    relayed = replace(commit, target="peer-1", hops=1)
    net.nodes["peer-1"].receive("peer-2", relayed.encode(), net.now)
    assert away.epoch == sequencer.epoch
    assert done in away._done_removals


def test_details_another_member_signed_for_a_commit_get_it_refused_and_change_nothing() -> None:
    """A member that signs its own details for another member's commit (naming itself as the
    origin) passes the signature check; but MLS names the real committer, which the member
    finds on a copy of its session before it applies anything: refused, nothing changes, and the
    real committer's copy (or a history answer) is still taken when it comes."""
    net = Net(4, seed=47)
    gid = net.form_group(net.peers)
    asker = net.core("peer-2", gid)
    commit, request = _removal_asked_and_lost(net, gid)
    mls, _, welcome = unpack_list(commit.body, 3)
    insider = net.core("peer-3", gid)._session
    assert isinstance(insider, GroupControlSigner)
    forged = {"added": {}, "term": 0, "taker": "", "done": removal_key("peer-2", request).hex()}
    body = pack_list([mls, signed_details(insider, "peer-3", mls, forged), welcome])
    relayed = replace(commit, origin="peer-3", body=body, target="peer-2", hops=0)
    epoch = asker.epoch
    out = net.nodes["peer-2"].receive("peer-3", relayed.encode(), net.now)
    assert any(isinstance(o, PduRejected) and "did not sign" in o.reason for o in out), out
    assert asker.epoch == epoch and asker.pending_intents() == 1  # nothing changed
    _heal_and_see_the_removal_through(net, gid)


@pytest.mark.parametrize(
    "alteration", ["term raised", "peer id swapped", "signature stripped", "another member's"])
def test_a_welcome_whose_info_a_relay_altered_is_refused_and_the_real_one_still_joins(
    alteration: str,
) -> None:
    """docs/protocol.md §9.2 rule 3: the committer signs the Welcome info (roster, term, ...)
    and names the Welcome in it. A relay that raises the term (the new member would refuse the
    real branch's invitations), maps a member's fingerprint to another peer id, or strips the
    signature gets the Welcome refused; the key package stays, and the real copy joins."""
    net = Net(4, seed=48)
    gid = net.form_group(net.peers[:3])
    inviter = net.core("peer-0", gid)
    answer = net.key_package_answer(gid, "peer-0", "peer-3")
    out = inviter.receive("peer-3", answer, net.now)
    welcome = pdu_for(out, Kind.WELCOME, "peer-3")
    mls, raw = unpack_list(welcome.body, 2)
    info = decode_json(raw)
    if alteration == "term raised":
        info["t"] = 99
    elif alteration == "peer id swapped":
        roster = info["roster"]
        assert isinstance(roster, dict)
        info["roster"] = {fp: ("peer-1" if p == "peer-2" else p) for fp, p in roster.items()}
    elif alteration == "signature stripped":
        info.pop("s")
    forged = replace(welcome, body=pack_list([mls, encode_json(info)]), hops=1)
    if alteration == "another member's":  # peer-1 saw the Welcome in the commit: it signs it
        info.pop("s")
        info["t"] = 99
        signer = net.core("peer-1", gid)._session
        assert isinstance(signer, GroupControlSigner)
        content = control_content("welcome", "peer-1", "", info)
        assert content is not None
        info["s"] = signer.sign_control(content).hex()
        forged = replace(welcome, origin="peer-1", hops=0,
                         body=pack_list([mls, encode_json(info)]))
    refused = net.nodes["peer-3"].receive("peer-1", forged.encode(), net.now)
    assert any(isinstance(o, PduRejected) and "did not sign" in o.reason for o in refused)
    assert gid not in net.nodes["peer-3"].groups
    net.nodes["peer-3"].receive("peer-0", welcome.encode(), net.now)
    joined = net.core("peer-3", gid)
    assert joined.roster == inviter.roster and joined._term == inviter._term


def test_a_welcome_swapped_in_a_relayed_commit_is_not_kept_for_the_new_member() -> None:
    """The committer's signed details name the Welcome its commit carries (`w`); a relay that
    swaps in another cannot make the members keep and resend that one to the new member."""
    net = Net(4, seed=49)
    gid = net.form_group(net.peers[:3])
    sequencer, member = net.core("peer-0", gid), net.core("peer-2", gid)
    answer = net.key_package_answer(gid, "peer-0", "peer-3")
    out = sequencer.receive("peer-3", answer, net.now)
    commit = pdu_for(out, Kind.COMMIT, "peer-2")
    mls, details, welcome = unpack_list(commit.body, 3)
    bogus = replace(decode_pdu(welcome), body=pack_list([b"not a welcome", b"{}"])).encode()
    swapped = replace(commit, body=pack_list([mls, details, bogus]), target="peer-2", hops=1)
    net.nodes["peer-2"].receive("peer-1", swapped.encode(), net.now)
    assert member.epoch == sequencer.epoch  # the commit itself is the committer's: applied
    assert "welcome:peer-3" not in member._resend


def test_a_malformed_welcome_to_a_re_joining_member_is_refused_without_a_crash() -> None:
    """A Welcome body that is not (welcome, info) reaches a member waiting for its re-join's
    Welcome: one-line refusal, the member still waits (the real Welcome may still come)."""
    net = Net(3, seed=50)
    gid = net.form_group(net.peers)
    core = net.core("peer-2", gid)
    net.feed("peer-2", core._rejoin("peer-0", "a fork", net.now))
    bad = GroupPdu(Kind.WELCOME, gid, core.epoch + 1, b"\x03" * 16, "peer-0",
                   pack_list([b"only one part"]), "peer-2")
    out = net.nodes["peer-2"].receive("peer-0", bad.encode(), net.now)
    assert any(isinstance(o, PduRejected) and "(welcome, info)" in o.reason for o in out), out
    assert core.rejoining
