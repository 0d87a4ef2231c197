"""Who may change a group: hostile peers against the group core and the chat service's driver
(docs/protocol.md §9.4 re-join, §9.7 admission). Found by the security review of the group chat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.chat import _groups, _service
from enkrypted_p2p.chat._groups import GroupDesk
from enkrypted_p2p.groups import (
    GroupMessageDelivered,
    GroupPdu,
    Kind,
    MembershipChanged,
    PduRejected,
    SendTo,
)
from enkrypted_p2p.groups._base import new_id
from enkrypted_p2p.groups._wire import b64, encode_json
from enkrypted_p2p_memory.endpoint import Switchboard
from enkrypted_shell.contracts import AppContext
from tests.p2p.groups_net import Net
from tests.p2p.test_groupchat_service import Member, run


def _rejoin_intent(origin: str, target: str, key_package: bytes, group_id: bytes, *,
                   hops: int) -> bytes:
    intent = {"op": "rejoin", "kp": b64(key_package), "id": new_id().hex()}
    return GroupPdu(Kind.INTENT, group_id, 0, new_id(), origin, encode_json(intent), target,
                    hops).encode()


def test_a_rejoin_re_adds_only_the_identity_that_was_the_member() -> None:
    """A re-join replaces a member's leaf by a new key package *of the same identity*: a
    stranger (or a removed member) naming a member's peer id as the origin of a relayed rejoin
    intent must not evict that member and enter the group with its own key."""
    net = Net(4, seed=3)
    members = net.peers[:3]
    gid = net.form_group(members)
    sequencer = net.core("peer-0", gid)
    before = sequencer.members
    mallory = net.nodes["peer-3"]
    key_package = net.service.new_key_package(mallory.identity)
    forged = _rejoin_intent("peer-2", "peer-0", key_package.public, gid, hops=1)
    out = net.nodes["peer-0"].receive("peer-1", forged, net.now)  # as if a member relayed it
    assert not [o for o in out if isinstance(o, MembershipChanged)]
    assert [o for o in out if isinstance(o, PduRejected)]
    assert sequencer.members == before
    assert net.fingerprints["peer-3"] not in sequencer.members
    assert sequencer.roster[net.fingerprints["peer-2"]] == "peer-2"


# ------------------------------------------------------------------------------ the driver
class _Dials:
    def __init__(self) -> None:
        self.now = 100.0
        self.dialled: list[str] = []

    def clock(self) -> float:
        return self.now


def _desk(net: Net, peer: str, dials: _Dials) -> GroupDesk:
    async def emit(event: object) -> None:
        pass

    async def send(peer_id: str, pdu: bytes) -> bool:
        return True

    desk = GroupDesk(net.service, net.nodes[peer].identity, peer, store=None, emit=emit,
                     send=send, dial=dials.dialled.append, clock=dials.clock)
    desk.node = net.nodes[peer]
    return desk


def test_a_non_member_speaks_only_for_itself_directly_to_us() -> None:
    """Outsiders (a former member, an invitee, a re-joiner) may send a few kinds, but only their
    own PDUs addressed to us: never one that names another origin (relayed) or that we are to
    relay on to a member."""
    net = Net(4, seed=5)
    gid = net.form_group(net.peers[:3])
    dials = _Dials()
    desk = _desk(net, "peer-0", dials)
    stranger_fp = net.fingerprints["peer-3"]
    kp = net.service.new_key_package(net.nodes["peer-3"].identity).public
    forged_origin = _rejoin_intent("peer-2", "peer-0", kp, gid, hops=1)
    relay_request = GroupPdu(Kind.HISTORY_RESPONSE, gid, 0, new_id(), "peer-3", b"\x00",
                             "peer-1").encode()
    own_rejoin = _rejoin_intent("peer-3", "peer-0", kp, gid, hops=0)

    async def scenario() -> None:
        await desk.frame_received("peer-3", forged_origin, stranger_fp)
        await desk.frame_received("peer-3", relay_request, stranger_fp)
        assert desk.dropped["outsider-relay"] == 2
        assert desk._jobs.empty()
        await desk.frame_received("peer-3", own_rejoin, stranger_fp)  # its own: the core judges
        assert desk._jobs.qsize() == 1

    asyncio.run(scenario())


def test_a_stranger_cannot_make_us_join_groups_past_the_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone may invite us, but the groups we hold (and persist, heartbeat and dial for) are
    bounded: past MAX_GROUPS an invitation (its key-package request or Welcome) is dropped."""
    monkeypatch.setattr(_groups, "MAX_GROUPS", 1)
    net = Net(2, seed=6)
    net.form_group(["peer-0"])
    desk = _desk(net, "peer-1", _Dials())
    net.nodes["peer-1"].create_group("mine")
    ask = GroupPdu(Kind.KEY_PACKAGE_REQUEST, b"g" * 32, 0, new_id(), "peer-0", b"",
                   "peer-1").encode()

    async def scenario() -> None:
        await desk.frame_received("peer-0", ask, net.fingerprints["peer-0"])
        assert desk.dropped["too-many-groups"] == 1
        assert desk._jobs.empty()

    asyncio.run(scenario())


def test_group_dials_are_bounded_whatever_the_rosters_name() -> None:
    """The peers a group core wants reached come from rosters other members wrote: at most
    DIALS_PER_WINDOW dials per REDIAL_S window, however many peers or commits there are (a
    hostile roster cannot turn us into a dial amplifier; the mesh dials share the budget)."""
    net = Net(1, seed=7)
    dials = _Dials()
    desk = _desk(net, "peer-0", dials)

    async def scenario() -> None:
        for n in range(_groups.QUEUED_PEERS):
            await desk._send_to(f"victim-{n:03}", b"frame")
        assert len(dials.dialled) == _groups.DIALS_PER_WINDOW
        assert desk.dropped["dial-budget"] == _groups.QUEUED_PEERS - _groups.DIALS_PER_WINDOW
        dials.now += _groups.REDIAL_S
        await desk._send_to("victim-020", b"frame")  # a retransmission dials it now
        assert len(dials.dialled) == _groups.DIALS_PER_WINDOW + 1

    asyncio.run(scenario())


def test_failed_group_dials_leave_no_peer_behind(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """A group dial to a peer id nobody answers (a roster can name any) must not keep a peer
    entry: else rosters fill the chat service's MAX_PEERS and every new 1:1 peer is refused."""
    monkeypatch.setattr(_service, "MAX_PEERS", 4)
    crypto = enkrypted_crypto_service(AppContext(tmp_path / "crypto"))

    async def scenario() -> None:
        board = Switchboard()
        alice = await Member(board, "alice", crypto, tmp_path / "alice").start()
        bob = await Member(board, "bob", crypto, tmp_path / "bob").start()
        assert alice.chat is not None and bob.chat is not None
        for n in range(8):  # what the desk's dial callback spawns, one after the other
            await alice.chat._group_dial(f"ghost-{n}")
        assert not [p for p in alice.chat.peers() if p.startswith("ghost-")]
        await bob.chat.connect("alice", 20)
        await bob.stop()
        await alice.stop()

    run(scenario)


def test_a_member_text_with_a_lone_surrogate_never_raises() -> None:
    """A member's sealed JSON may carry ``\\ud800``: delivered as is, never an exception."""
    net = Net(2, seed=8)
    gid = net.form_group(net.peers)
    sender = net.core("peer-0", gid)
    msg_id = new_id()
    _, out = sender._broadcast_application(
        msg_id, encode_json({"t": "msg", "id": msg_id.hex(), "text": "a\ud800"}))
    frames = [o.pdu for o in out if isinstance(o, SendTo)]
    got = [e for f in frames for e in net.core("peer-1", gid).receive("peer-0", f, net.now)]
    assert [e.text for e in got if isinstance(e, GroupMessageDelivered)] == ["a\ud800"]
