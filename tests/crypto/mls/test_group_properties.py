"""Property test: random add / remove / update / propose+commit sequences across simulated members.

After every commit all members agree on the epoch, the epoch authenticator and MLS-Exporter
output; a removed member holds no private key of the new tree and cannot read the next epoch.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enkrypted_crypto.errors import CryptoError
from enkrypted_crypto.mls import (
    ApplicationMessage,
    CommitApplied,
    Group,
    GroupConfig,
    key_package_message,
    new_key_package_bundle,
    suite,
)
from enkrypted_crypto.mls._messages import PRIVATE_MESSAGE, PUBLIC_MESSAGE
from enkrypted_crypto.mls._suite import SUITES
from enkrypted_crypto.mls._tree import RatchetTree
from enkrypted_crypto.mls._treekem import prune_keys

Op = tuple[str, int, int]
OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "update", "propose_update", "message"]),
        st.integers(0, 1000),
        st.integers(0, 1000),
    ),
    min_size=1,
    max_size=8,
)


def _new_member(suite_id: int, name: bytes) -> tuple[bytes, object]:
    priv, _ = suite(suite_id).signature_keypair()
    bundle = new_key_package_bundle(suite_id, name, priv, int(time.time()))
    return key_package_message(bundle), bundle


def _check_agreement(members: dict[int, Group]) -> None:
    groups = list(members.values())
    first = groups[0]
    for g in groups:  # the memoised tree hash of an edited tree is the hash of its nodes
        assert g.tree.tree_hash() == RatchetTree(g.cipher_suite, g.tree.nodes).tree_hash()
    for g in groups[1:]:
        assert g.epoch == first.epoch
        assert g.epoch_authenticator == first.epoch_authenticator
        assert g.export_secret(b"prop", b"ctx", 32) == first.export_secret(b"prop", b"ctx", 32)


def _broadcast(members: dict[int, Group], sender: int, message: bytes) -> None:
    for leaf, g in members.items():
        if leaf != sender:
            g.process(message)


class Simulation:
    def __init__(self, suite_id: int, wire_format: int) -> None:
        self.suite_id = suite_id
        self.config = GroupConfig(handshake_wire_format=wire_format)
        self.counter = 0
        self.removed = 0
        _, bundle = _new_member(suite_id, b"m0")
        self.members: dict[int, Group] = {
            0: Group.create(suite_id, b"prop-group", bundle, self.config)
        }  # type: ignore[arg-type]

    def pick(self, n: int) -> int:
        leaves = sorted(self.members)
        return leaves[n % len(leaves)]

    def add(self, who: int) -> None:
        self.counter += 1
        kp, bundle = _new_member(self.suite_id, b"m%d" % self.counter)
        out = self.members[who].add([kp])
        _broadcast(self.members, who, out.commit)
        assert out.welcome is not None
        joined = Group.join(out.welcome, bundle, self.config)  # type: ignore[arg-type]
        self.members[joined.my_leaf] = joined

    def remove(self, who: int, target: int) -> None:
        if target == who:
            return
        committer = self.members[who]
        out = committer.remove([target])
        victim = self.members.pop(target)
        event = victim.process(out.commit)
        assert isinstance(event, CommitApplied) and event.removed_self
        _broadcast(self.members, who, out.commit)
        # TreeKEM: none of the removed member's private keys opens a node of the new tree.
        assert prune_keys(committer.tree, victim._epoch.keys) == {}
        assert victim.epoch_authenticator != committer.epoch_authenticator
        with pytest.raises(CryptoError):
            victim.process(committer.protect(b"after removal"))
        self.removed += 1

    def update(self, who: int) -> None:
        out = self.members[who].update()
        _broadcast(self.members, who, out.commit)

    def propose_update(self, who: int, committer: int) -> None:
        proposal = self.members[who].propose_update()
        _broadcast(self.members, who, proposal)
        out = self.members[committer].commit()
        _broadcast(self.members, committer, out.commit)

    def message(self, who: int) -> None:
        data = self.members[who].protect(b"hello %d" % who)
        for leaf, g in self.members.items():
            if leaf != who:
                event = g.process(data)
                assert isinstance(event, ApplicationMessage) and event.sender == who


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS, suite_id=st.sampled_from(sorted(SUITES)), public=st.booleans())
def test_random_group_operations_keep_members_in_agreement(
    ops: list[Op], suite_id: int, public: bool
) -> None:
    sim = Simulation(suite_id, PUBLIC_MESSAGE if public else PRIVATE_MESSAGE)
    sim.add(0)
    for kind, a, b in ops:
        who = sim.pick(a)
        if kind == "add" and len(sim.members) < 8:
            sim.add(who)
        elif kind == "remove" and len(sim.members) > 1:
            sim.remove(who, sim.pick(b))
        elif kind == "update":
            sim.update(who)
        elif kind == "propose_update" and len(sim.members) > 1:
            committer = sim.pick(b)
            if committer != who:
                sim.propose_update(who, committer)
        elif kind == "message":
            sim.message(who)
        _check_agreement(sim.members)
