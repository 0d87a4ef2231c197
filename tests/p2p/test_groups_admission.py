"""Who may change a group: hostile peers against the group core and the chat service's driver
(docs/protocol.md §9.4 re-join, §9.7 admission). Found by the security review of the group chat."""

from __future__ import annotations

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
