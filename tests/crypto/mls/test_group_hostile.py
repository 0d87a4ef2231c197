"""Hostile input to a Group: every rejection leaves the member's state exactly as it was."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable

import pytest

from enkrypted_crypto.errors import CryptoError, DecryptionFailed, MalformedInput
from enkrypted_crypto.mls import (
    ApplicationMessage,
    Group,
    GroupConfig,
    KeyPackageBundle,
    key_package_message,
    new_key_package_bundle,
    suite,
)
from enkrypted_crypto.mls._codec import encode_varint
from enkrypted_crypto.mls._envelopes import MLSMessage, PublicMessage, Sender
from enkrypted_crypto.mls._framing import AuthenticatedContent, sign_content, to_public
from enkrypted_crypto.mls._messages import (
    COMMIT,
    MEMBER,
    PUBLIC_MESSAGE,
    SRC_UPDATE,
    Commit,
    Update,
    from_bytes,
    to_bytes,
)

SUITE = 1


def _bundle(name: bytes) -> KeyPackageBundle:
    priv, _ = suite(SUITE).signature_keypair()
    return new_key_package_bundle(SUITE, name, priv, int(time.time()))


def _trio(config: GroupConfig | None = None) -> tuple[Group, Group, Group]:
    alice = Group.create(SUITE, b"hostile", _bundle(b"alice"), config)
    bob_b, carol_b = _bundle(b"bob"), _bundle(b"carol")
    out = alice.add([key_package_message(bob_b), key_package_message(carol_b)])
    assert out.welcome is not None
    return alice, Group.join(out.welcome, bob_b, config), Group.join(out.welcome, carol_b, config)


def _rejected(
    group: Group, data: bytes, errors: type[Exception] | tuple[type[Exception], ...]
) -> None:
    before = group.snapshot()
    with pytest.raises(errors):
        group.process(data)
    assert group.snapshot() == before


def _flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def test_replayed_and_stale_commits_rejected() -> None:
    alice, bob, _ = _trio()
    out = alice.update()
    bob.process(out.commit)
    _rejected(bob, out.commit, MalformedInput)  # replay: wrong epoch now


def test_bad_membership_tag_rejected() -> None:
    alice, bob, _ = _trio()
    commit = alice.update().commit
    _rejected(bob, _flip(commit, len(commit) - 3), DecryptionFailed)


def _forged_commit(
    group: Group,
    sender: int,
    signer: bytes,
    tweak: Callable[[AuthenticatedContent], AuthenticatedContent],
) -> bytes:
    """A member-signed PublicMessage commit with a valid membership tag (an insider's forgery)."""
    ep = group._epoch
    content = group._framed(COMMIT, Commit((), None), b"")
    content = dataclasses.replace(content, sender=Sender(MEMBER, sender))
    sig = sign_content(ep.cs, PUBLIC_MESSAGE, content, signer, ep.context_bytes)
    ac = tweak(AuthenticatedContent(PUBLIC_MESSAGE, content, sig, os.urandom(ep.cs.n_h)))
    return to_bytes(
        MLSMessage(
            PUBLIC_MESSAGE, to_public(ep.cs, ac, ep.secrets.membership_key, ep.context_bytes)
        )
    )


def test_bad_signature_rejected() -> None:
    alice, bob, _ = _trio()
    wrong_key, _ = suite(SUITE).signature_keypair()
    forged = _forged_commit(alice, alice.my_leaf, wrong_key, lambda ac: ac)
    _rejected(bob, forged, DecryptionFailed)


def test_commit_without_required_path_rejected() -> None:
    alice, bob, _ = _trio()
    forged = _forged_commit(alice, alice.my_leaf, alice._sig, lambda ac: ac)
    _rejected(bob, forged, MalformedInput)  # an empty commit needs an UpdatePath (§12.4)


def test_bad_confirmation_tag_rejected() -> None:
    alice, bob, _ = _trio()
    msg = from_bytes(alice.update().commit, MLSMessage.decode)
    assert isinstance(msg.body, PublicMessage)
    ep = bob._epoch  # still the epoch the commit was made in
    ac = AuthenticatedContent(PUBLIC_MESSAGE, msg.body.content, msg.body.signature, bytes(32))
    body = to_public(ep.cs, ac, ep.secrets.membership_key, ep.context_bytes)
    _rejected(bob, to_bytes(MLSMessage(PUBLIC_MESSAGE, body)), DecryptionFailed)


def test_commit_from_removed_member_rejected() -> None:
    alice, bob, carol = _trio()
    carol_leaf, carol_sig = carol.my_leaf, carol._sig
    out = alice.remove([carol_leaf])
    bob.process(out.commit)
    # Carol's leaf is blank now: a commit claiming to come from it fails authentication.
    forged = _forged_commit(bob, carol_leaf, carol_sig, lambda ac: ac)
    _rejected(bob, forged, DecryptionFailed)
    carol.process(out.commit)
    assert not carol.active
    with pytest.raises(CryptoError):
        carol.process(alice.protect(b"secret"))


def test_tampered_private_message_rejected() -> None:
    alice, bob, _ = _trio()
    message = alice.protect(b"hello")
    for index in (20, len(message) - 1):
        _rejected(bob, _flip(message, index), (DecryptionFailed, MalformedInput))
    event = bob.process(message)
    assert isinstance(event, ApplicationMessage) and event.data == b"hello"
    _rejected(bob, message, DecryptionFailed)  # each key is used once: a replay fails


def test_welcome_for_another_key_package_rejected() -> None:
    alice = Group.create(SUITE, b"g", _bundle(b"alice"))
    bob = _bundle(b"bob")
    out = alice.add([key_package_message(bob)])
    assert out.welcome is not None
    with pytest.raises(MalformedInput, match="not for this KeyPackage"):
        Group.join(out.welcome, _bundle(b"mallory"))


def test_tree_failing_validation_rejected() -> None:
    config = GroupConfig(ratchet_tree_extension=False)
    alice = Group.create(SUITE, b"g", _bundle(b"alice"), config)
    bob, carol = _bundle(b"bob"), _bundle(b"carol")
    alice.add([key_package_message(bob)])
    out = alice.add([key_package_message(carol)])
    assert out.welcome is not None
    with pytest.raises(MalformedInput, match="no ratchet tree"):
        Group.join(out.welcome, carol, config)
    good = alice.tree.encode()
    Group.join(out.welcome, carol, config, ratchet_tree=good)  # sanity: the right tree works
    other = Group.create(SUITE, b"g", _bundle(b"eve")).tree.encode()
    with pytest.raises(MalformedInput):
        Group.join(out.welcome, carol, config, ratchet_tree=other)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01",
        b"\x00\x01\x00\x07",
        b"\x00\x02\x00\x01",
        b"\x00\x01\x00\x01" + encode_varint((1 << 30) - 1),
        os.urandom(64),
    ],
    ids=["empty", "truncated", "unknown-wire-format", "bad-version", "huge-length", "random"],
)
def test_malformed_bytes_rejected(data: bytes) -> None:
    _, bob, _ = _trio()
    _rejected(bob, data, MalformedInput)


def test_message_for_other_group_rejected() -> None:
    alice, bob, _ = _trio()
    msg = from_bytes(alice.update().commit, MLSMessage.decode)
    assert isinstance(msg.body, PublicMessage)
    content = dataclasses.replace(msg.body.content, group_id=b"other")
    body = dataclasses.replace(msg.body, content=content)
    _rejected(bob, to_bytes(MLSMessage(PUBLIC_MESSAGE, body)), MalformedInput)


def test_update_reusing_the_encryption_key_rejected() -> None:
    alice, bob, _ = _trio()
    leaf = bob.tree.leaf(bob.my_leaf)
    assert leaf is not None
    stale = bob._leaf_like(leaf, leaf.encryption_key, SRC_UPDATE, b"")
    _rejected(alice, bob.propose(Update(stale)), MalformedInput)
