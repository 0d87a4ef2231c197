"""Who may change a group: hostile peers against the group core and the chat service's driver
(docs/protocol.md §9.4 re-join, §9.7 admission). Found by the security review of the group chat."""

from __future__ import annotations

import asyncio

from enkrypted_p2p.chat._groups import GroupDesk
from enkrypted_p2p.groups import GroupPdu, Kind, MembershipChanged, PduRejected
from enkrypted_p2p.groups._base import new_id
from enkrypted_p2p.groups._wire import b64, encode_json
from tests.p2p.groups_net import Net


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
