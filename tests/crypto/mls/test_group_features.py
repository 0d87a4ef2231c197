"""Group features the vectors only exercise on the receiving side: PSKs, GroupContextExtensions,
refused ReInit, unprotect, reordered handshake messages."""

from __future__ import annotations

import dataclasses
import os
import time

import pytest

from enkrypted_crypto.errors import CryptoUsageError, DecryptionFailed, MalformedInput
from enkrypted_crypto.mls import (
    CommitApplied,
    Group,
    GroupConfig,
    KeyPackageBundle,
    ProposalQueued,
    key_package_message,
    new_key_package_bundle,
    suite,
)
from enkrypted_crypto.mls._codec import Writer
from enkrypted_crypto.mls._envelopes import Sender
from enkrypted_crypto.mls._external import encode_external_senders, external_proposal
from enkrypted_crypto.mls._messages import (
    CRED_BASIC,
    EXT_REQUIRED_CAPABILITIES,
    EXTERNAL,
    NEW_MEMBER_PROPOSAL,
    PRIVATE_MESSAGE,
    Add,
    Credential,
    Extension,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    PreSharedKeyID,
    ReInit,
    Remove,
)

SUITE = 3
PSK_ID, PSK = b"shared psk", os.urandom(32)


def _bundle(name: bytes) -> KeyPackageBundle:
    priv, _ = suite(SUITE).signature_keypair()
    return new_key_package_bundle(SUITE, name, priv, int(time.time()))


def _pair(config: GroupConfig) -> tuple[Group, Group]:
    alice = Group.create(SUITE, b"features", _bundle(b"alice"), config)
    bob_bundle = _bundle(b"bob")
    out = alice.add([key_package_message(bob_bundle)])
    assert out.welcome is not None
    return alice, Group.join(out.welcome, bob_bundle, config)


def _same(*groups: Group) -> None:
    for g in groups[1:]:
        assert g.epoch == groups[0].epoch
        assert g.epoch_authenticator == groups[0].epoch_authenticator
        assert g.export_secret(b"t", b"", 16) == groups[0].export_secret(b"t", b"", 16)


def test_external_and_resumption_psks_with_a_joiner() -> None:
    config = GroupConfig(external_psks={PSK_ID: PSK})
    alice, bob = _pair(config)
    nonce = os.urandom(32)
    external = PreSharedKey(PreSharedKeyID(1, psk_id=PSK_ID, psk_nonce=nonce))
    resumption = PreSharedKey(
        PreSharedKeyID(
            2,
            usage=1,
            psk_group_id=alice.group_id,
            psk_epoch=alice.epoch,
            psk_nonce=os.urandom(32),
        )
    )
    bob.process(alice.commit([external, resumption]).commit)
    _same(alice, bob)
    # A joiner receives the external PSK id in its GroupSecrets and must know the PSK.
    carol_bundle = _bundle(b"carol")
    kp = carol_bundle.key_package
    nonce = os.urandom(32)
    out = alice.commit([Add(kp), PreSharedKey(PreSharedKeyID(1, psk_id=PSK_ID, psk_nonce=nonce))])
    bob.process(out.commit)
    assert out.welcome is not None
    with pytest.raises(MalformedInput, match="PSK"):
        Group.join(out.welcome, carol_bundle, GroupConfig())
    carol = Group.join(out.welcome, carol_bundle, config)
    _same(alice, bob, carol)


def test_unknown_psk_refused_state_unchanged() -> None:
    alice, _ = _pair(GroupConfig(external_psks={PSK_ID: PSK}))
    before = alice.snapshot()
    unknown = PreSharedKey(PreSharedKeyID(1, psk_id=b"nobody knows", psk_nonce=os.urandom(32)))
    with pytest.raises(MalformedInput, match="PSK"):
        alice.commit([unknown])
    assert alice.snapshot() == before


def _required(credentials: tuple[int, ...], extensions: tuple[int, ...] = ()) -> Extension:
    w = Writer()
    w.vector(list(extensions), lambda w2, v: w2.u16(v))
    w.vector([], lambda w2, v: w2.u16(v))
    w.vector(list(credentials), lambda w2, v: w2.u16(v))
    return Extension(EXT_REQUIRED_CAPABILITIES, w.getvalue())


def test_group_context_extensions() -> None:
    alice, bob = _pair(GroupConfig())
    gce = GroupContextExtensions((_required((CRED_BASIC,)),))
    bob.process(alice.commit([gce]).commit)
    _same(alice, bob)
    assert bob.group_context.extensions == gce.extensions
    before = alice.snapshot()
    with pytest.raises(MalformedInput, match="required capabilities"):
        alice.commit([GroupContextExtensions((_required((CRED_BASIC,), (0xFF00,)),))])
    assert alice.snapshot() == before


def test_unprotect_refuses_handshake_messages() -> None:
    alice, bob = _pair(GroupConfig())
    commit = alice.update().commit
    before = bob.snapshot()
    with pytest.raises(MalformedInput, match="not an application message"):
        bob.unprotect(commit)
    assert bob.snapshot() == before
    bob.process(commit)
    assert bob.unprotect(alice.protect(b"hi")).data == b"hi"


def test_commit_before_its_proposal_rejected_then_accepted_in_order() -> None:
    alice, bob = _pair(GroupConfig())
    proposal = bob.propose_update()
    alice.process(proposal)
    commit = alice.commit().commit
    bob_before = bob.snapshot()
    # Bob sees the commit; it references his own cached proposal, so it applies.
    bob.process(commit)
    assert bob.snapshot() != bob_before
    _same(alice, bob)
    # A third member who missed the proposal cannot apply the commit: unknown reference.
    dave_bundle = _bundle(b"dave")
    out = alice.add([key_package_message(dave_bundle)])
    bob.process(out.commit)
    assert out.welcome is not None
    dave = Group.join(out.welcome, dave_bundle)
    proposal = bob.propose_update()
    alice.process(proposal)
    commit = alice.commit().commit
    before = dave.snapshot()
    with pytest.raises(MalformedInput, match="unknown proposal"):
        dave.process(commit)
    assert dave.snapshot() == before
    dave.process(proposal)
    dave.process(commit)
    bob.process(commit)
    _same(alice, bob, dave)


def test_external_commit_join_and_resync() -> None:
    alice, bob = _pair(GroupConfig())
    carol_bundle = _bundle(b"carol")
    carol, commit = Group.join_external(alice.group_info(), carol_bundle)
    for member in (alice, bob):
        event = member.process(commit)
        assert event.epoch == carol.epoch  # type: ignore[union-attr]
    _same(alice, bob, carol)
    assert bob.unprotect(carol.protect(b"hi from carol")).data == b"hi from carol"
    # Resync: carol rejoins from a fresh GroupInfo, removing her old leaf in the same commit.
    again, commit = Group.join_external(
        bob.group_info(), _bundle(b"carol"), resync_leaf=carol.my_leaf
    )
    alice.process(commit)
    bob.process(commit)
    _same(alice, bob, again)
    assert len(alice.members()) == 3


def test_external_commit_tampered_or_misused_rejected() -> None:
    alice, bob = _pair(GroupConfig())
    info = alice.group_info()
    _, commit = Group.join_external(info, _bundle(b"carol"))
    before = bob.snapshot()
    tampered = bytearray(commit)
    tampered[-40] ^= 1
    with pytest.raises((MalformedInput, DecryptionFailed)):
        bob.process(bytes(tampered))
    assert bob.snapshot() == before
    with pytest.raises(MalformedInput, match="ExternalInit"):
        alice.commit([ExternalInit(b"\x00" * 32)])
    # A GroupInfo without external_pub cannot be used to join.
    assert alice.epoch == bob.epoch


def test_credentials_checked_by_the_validator() -> None:
    from enkrypted_crypto.mls import identity_key_validator

    alice_b, bob_b, mallory_b = _bundle(b"alice"), _bundle(b"bob"), _bundle(b"bob")
    known = {
        b"alice": alice_b.key_package.leaf_node.signature_key,
        b"bob": bob_b.key_package.leaf_node.signature_key,
    }
    config = GroupConfig(validate_credential=identity_key_validator(known))
    alice = Group.create(SUITE, b"validated", alice_b, config)
    before = alice.snapshot()
    # "bob" with another signature key is refused, and nothing changes.
    with pytest.raises(MalformedInput, match="credential rejected"):
        alice.add([key_package_message(mallory_b)])
    assert alice.snapshot() == before
    out = alice.add([key_package_message(bob_b)])
    assert out.welcome is not None
    bob = Group.join(out.welcome, bob_b, config)
    _same(alice, bob)
    # A joiner whose validator does not know alice refuses the tree.
    strict = GroupConfig(validate_credential=identity_key_validator({b"bob": known[b"bob"]}))
    carol_b = _bundle(b"carol")
    known[b"carol"] = carol_b.key_package.leaf_node.signature_key  # alice learns carol's key
    out = alice.commit([Add(carol_b.key_package)])
    with pytest.raises(MalformedInput, match="credential rejected"):
        Group.join(out.welcome or b"", carol_b, strict)


def test_new_member_proposes_its_own_add() -> None:
    alice, bob = _pair(GroupConfig())
    carol_b = _bundle(b"carol")
    proposal = Group.propose_join(alice.group_info(), carol_b)
    queued = alice.process(proposal)
    assert isinstance(queued, ProposalQueued) and queued.sender.sender_type == NEW_MEMBER_PROPOSAL
    bob.process(proposal)
    out = alice.commit()
    bob.process(out.commit)
    assert out.welcome is not None
    carol = Group.join(out.welcome, carol_b)
    _same(alice, bob, carol)
    # Someone else's KeyPackage cannot be proposed under a new member's name.
    mallory_b, dave_b = _bundle(b"mallory"), _bundle(b"dave")
    forged = Group.propose_join(
        alice.group_info(), dataclasses.replace(mallory_b, key_package=dave_b.key_package)
    )
    before = alice.snapshot()
    with pytest.raises(DecryptionFailed):
        alice.process(forged)
    assert alice.snapshot() == before


def test_external_sender_proposes_a_removal() -> None:
    alice, bob = _pair(GroupConfig())
    server_priv, server_pub = suite(SUITE).signature_keypair()
    senders = encode_external_senders([(server_pub, Credential(CRED_BASIC, identity=b"server"))])
    bob.process(alice.commit([GroupContextExtensions((senders,))]).commit)
    proposal = external_proposal(alice.group_context, 0, Remove(bob.my_leaf), server_priv)
    for member in (alice, bob):
        queued = member.process(proposal)
        assert isinstance(queued, ProposalQueued) and queued.sender == Sender(EXTERNAL, 0)
    out = alice.commit()
    assert bob.process(out.commit).removed_self  # type: ignore[union-attr]
    # An unknown external sender index, or an external Update, is refused.
    before = alice.snapshot()
    with pytest.raises(MalformedInput, match="unknown external sender"):
        alice.process(external_proposal(alice.group_context, 5, Remove(0), server_priv))
    assert alice.snapshot() == before
    wrong_key, _ = suite(SUITE).signature_keypair()
    with pytest.raises(DecryptionFailed):
        alice.process(external_proposal(alice.group_context, 0, Remove(0), wrong_key))
    assert alice.snapshot() == before


def test_reinit_moves_the_group_to_a_new_suite() -> None:
    alice, bob = _pair(GroupConfig())
    old_secret = alice.export_secret(b"t", b"", 16)
    out = alice.commit([ReInit(b"reborn", 1, 1, ())])
    event = bob.process(out.commit)
    assert isinstance(event, CommitApplied) and event.reinit
    for suspended in (alice, bob):
        with pytest.raises(CryptoUsageError, match="re-initialised"):
            suspended.protect(b"old group")
    # Alice starts the new group (suite 1) with bob's fresh suite-1 KeyPackage.
    alice_new_b = new_key_package_bundle(1, b"alice", suite(1).signature_keypair()[0], 0)
    bob_new_b = new_key_package_bundle(1, b"bob", suite(1).signature_keypair()[0], 0)
    alice_new, created = alice.reinit_new_group(alice_new_b, [key_package_message(bob_new_b)])
    assert created.welcome is not None
    with pytest.raises(MalformedInput, match="resuming"):
        Group.join(created.welcome, bob_new_b)
    bob_new = Group.join(created.welcome, bob_new_b, resuming=bob)
    _same(alice_new, bob_new)
    assert alice_new.group_id == b"reborn" and alice_new.cipher_suite.suite_id == 1
    assert alice_new.export_secret(b"t", b"", 16) != old_secret
    assert bob_new.unprotect(alice_new.protect(b"new group")).data == b"new group"


def test_reinit_must_stand_alone_and_new_group_must_match() -> None:
    alice, bob = _pair(GroupConfig())
    before = alice.snapshot()
    with pytest.raises(MalformedInput, match="only proposal"):
        alice.commit([ReInit(b"x", 1, 1, ()), Remove(bob.my_leaf)])
    assert alice.snapshot() == before
    # A branch Welcome is not accepted as a re-initialisation of the same group.
    bob.process(alice.commit([ReInit(b"reborn", 1, SUITE, ())]).commit)
    carol_b = _bundle(b"carol")
    bob_b = _bundle(b"bob")
    new, created = alice.reinit_new_group(_bundle(b"alice"), [key_package_message(bob_b)])
    assert created.welcome is not None
    with pytest.raises(MalformedInput):
        Group.join(created.welcome, carol_b, resuming=bob)  # not for carol's KeyPackage
    assert (
        Group.join(created.welcome, bob_b, resuming=bob).epoch_authenticator
        == new.epoch_authenticator
    )


def test_branch_keeps_some_members() -> None:
    alice, bob = _pair(GroupConfig())
    carol_b = _bundle(b"carol")
    out = alice.add([key_package_message(carol_b)])
    bob.process(out.commit)
    assert out.welcome is not None
    Group.join(out.welcome, carol_b)
    bob_b = _bundle(b"bob")
    side, created = alice.branch(b"side room", _bundle(b"alice"), [key_package_message(bob_b)])
    assert created.welcome is not None
    bob_side = Group.join(created.welcome, bob_b, resuming=bob)
    _same(side, bob_side)
    assert [i for i, _ in side.members()] == [0, 1]
    # The old group goes on.
    bob.process(alice.update().commit)
    _same(alice, bob)


def test_late_application_messages_of_recent_epochs() -> None:
    alice, bob = _pair(GroupConfig())
    late = [alice.protect(b"sent in epoch %d" % alice.epoch)]
    bob.process(alice.update().commit)
    late.append(alice.protect(b"sent in epoch %d" % alice.epoch))
    bob.process(alice.update().commit)
    late.append(alice.protect(b"sent in epoch %d" % alice.epoch))
    bob.process(alice.update().commit)  # epoch 4 now; epochs 2 and 3 are kept
    with pytest.raises(MalformedInput, match="another group or epoch"):
        bob.process(late[0])  # epoch 1: too old
    for message in late[1:]:
        event = bob.unprotect(message)
        assert event.data == b"sent in epoch %d" % event.epoch
    before = bob.snapshot()
    with pytest.raises(DecryptionFailed):
        bob.process(late[2])  # its key was used and deleted
    assert bob.snapshot() == before
    # Handshake messages of past epochs are never accepted.
    stale = alice.propose_update()
    bob.process(alice.commit().commit)
    with pytest.raises(MalformedInput):
        bob.process(stale)


def test_invalid_proposals_refused_and_conflicts_left_out_of_commits() -> None:
    alice, bob = _pair(GroupConfig())
    carol_b = _bundle(b"carol")
    out = alice.add([key_package_message(carol_b)])
    bob.process(out.commit)
    assert out.welcome is not None
    carol = Group.join(out.welcome, carol_b)
    # Bob proposes removing a leaf that does not exist: refused on receipt, nothing cached.
    bogus = bob.propose(Remove(7))
    before = alice.snapshot()
    with pytest.raises(MalformedInput, match="blank leaf"):
        alice.process(bogus)
    assert alice.snapshot() == before
    # Conflicting proposals for carol's leaf (a Remove, her Update, a second Remove): the
    # committer keeps the first and leaves the others out (§12.2).
    first, second = bob.propose(Remove(carol.my_leaf)), carol.propose_update()
    third = bob.propose(Remove(carol.my_leaf))
    for proposal in (first, second, third):
        alice.process(proposal)
    bob.process(second)
    commit = alice.commit()
    bob.process(commit.commit)
    _same(alice, bob)
    assert [i for i, _ in alice.members()] == [0, 1]


def test_group_context_extension_unsupported_by_a_member_refused() -> None:
    alice, _ = _pair(GroupConfig())
    before = alice.snapshot()
    with pytest.raises(MalformedInput, match="required capabilities"):
        alice.commit([GroupContextExtensions((Extension(0xFF01, b"custom"),))])
    assert alice.snapshot() == before


def test_staged_commits_race_through_a_delivery_service() -> None:
    alice, bob = _pair(GroupConfig(handshake_wire_format=PRIVATE_MESSAGE))
    # Both commit at once; the delivery service orders bob's first and drops alice's.
    alice_out = alice.commit(apply=False)
    bob_out = bob.commit(apply=False)
    assert alice.epoch == bob.epoch == 1
    bob.process(bob_out.commit)  # the echo of his own commit merges it
    alice.process(bob_out.commit)  # another member's commit: alice's staged one lapses
    _same(alice, bob)
    with pytest.raises(MalformedInput):
        bob.process(alice_out.commit)  # stale: the delivery service never delivers it
    with pytest.raises(CryptoUsageError, match="no staged commit"):
        alice.merge_pending()
    # Explicit merge and discard.
    out = alice.commit(apply=False)
    alice.discard_pending()
    assert alice.epoch == 2
    out = alice.commit(apply=False)
    assert alice.merge_pending().epoch == 3
    bob.process(out.commit)
    _same(alice, bob)
