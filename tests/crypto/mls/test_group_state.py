"""Saving and restoring a member: the restored group behaves exactly like the original."""

from __future__ import annotations

import time

import pytest

from enkrypted_crypto.errors import CryptoError, MalformedInput
from enkrypted_crypto.mls import (
    Group,
    GroupConfig,
    KeyPackageBundle,
    key_package_message,
    new_key_package_bundle,
    suite,
)
from enkrypted_crypto.mls._messages import PRIVATE_MESSAGE


def _bundle(suite_id: int, name: bytes) -> KeyPackageBundle:
    priv, _ = suite(suite_id).signature_keypair()
    return new_key_package_bundle(suite_id, name, priv, int(time.time()))


@pytest.mark.parametrize("suite_id", [1, 3, 7])
def test_restored_member_continues_the_group(suite_id: int) -> None:
    config = GroupConfig(handshake_wire_format=PRIVATE_MESSAGE)
    alice = Group.create(suite_id, b"saved", _bundle(suite_id, b"alice"), config)
    bob_b, carol_b = _bundle(suite_id, b"bob"), _bundle(suite_id, b"carol")
    out = alice.add([key_package_message(bob_b), key_package_message(carol_b)])
    assert out.welcome is not None
    bob = Group.join(out.welcome, bob_b, config)
    carol = Group.join(out.welcome, carol_b, config)
    # State with a cached proposal, a pending update key, a used ratchet and a past epoch.
    bob.process(alice.protect(b"before save"))
    late = alice.protect(b"late")
    proposal = bob.propose_update()
    alice.process(proposal)
    carol.process(proposal)
    commit = alice.commit().commit
    bob.process(commit)
    carol.process(commit)
    carol_update = carol.propose_update()
    bob_update = bob.propose_update()  # bob now holds a pending leaf key
    for member, update in ((alice, carol_update), (bob, carol_update), (alice, bob_update)):
        member.process(update)
    carol.process(bob_update)
    saved = bob.export_state()
    restored = Group.restore_state(saved, config)
    assert restored.export_state() == saved
    # Both copies accept the same next messages and end in the same state.
    assert restored.unprotect(late).data == bob.unprotect(late).data == b"late"
    message = alice.protect(b"after save")
    assert restored.unprotect(message).data == b"after save"
    # Alice commits both updates; the restored bob needs his saved pending leaf key for it.
    commit = alice.commit().commit
    restored.process(commit)
    carol.process(commit)
    update = restored.update().commit
    for member in (alice, carol):
        member.process(update)
    assert restored.epoch_authenticator == alice.epoch_authenticator == carol.epoch_authenticator
    assert restored.export_secret(b"x", b"", 32) == alice.export_secret(b"x", b"", 32)


def test_corrupted_state_refused() -> None:
    alice = Group.create(1, b"saved", _bundle(1, b"alice"))
    saved = alice.export_state()
    for bad in (saved[:-1], saved + b"\x00", b"\x00\x02" + saved[2:]):
        with pytest.raises(CryptoError):
            Group.restore_state(bad)
    with pytest.raises(MalformedInput, match="version"):
        Group.restore_state(b"\x00\x09" + saved[2:])
