"""X3DH adapted for P2P (digest §4.4): three DH terms, signed prekey, associated data."""

from __future__ import annotations

import pytest
from conftest import seeded

from enkrypted_crypto.errors import MalformedKey
from enkrypted_crypto.primitives import Primitives
from enkrypted_crypto.x3dh import (
    IdentityKeyPair,
    PrekeyBundle,
    PublicIdentity,
    SignedPrekey,
    initiate,
    respond,
)


def _agree(prims: Primitives, context: bytes = b"ctx") -> tuple[object, object]:
    alice, bob = IdentityKeyPair.generate(prims), IdentityKeyPair.generate(prims)
    spk = SignedPrekey.generate(prims, bob)
    bundle = PrekeyBundle(bob.public, spk.public, spk.signature)
    ek = prims.random(32)
    a = initiate(prims, alice, ek, bundle, context=context)
    b = respond(prims, bob, spk, alice.public, prims.x25519_public(ek), context=context)
    return a, b


def test_both_sides_derive_the_same_secret_and_ad(prims: Primitives) -> None:
    a, b = _agree(prims)
    assert a == b
    assert len(a.shared_secret) == 32 and len(a.confirmation_key) == 32  # type: ignore[attr-defined]
    assert len(a.associated_data) == 128  # type: ignore[attr-defined]


def test_context_changes_the_keys(pyca: Primitives) -> None:
    alice, bob = IdentityKeyPair.generate(pyca), IdentityKeyPair.generate(pyca)
    spk = SignedPrekey.generate(pyca, bob)
    bundle = PrekeyBundle(bob.public, spk.public, spk.signature)
    ek = pyca.random(32)
    one = initiate(pyca, alice, ek, bundle, context=b"one")
    two = initiate(pyca, alice, ek, bundle, context=b"two")
    assert one.shared_secret != two.shared_secret


def test_forged_prekey_signature_is_refused(pyca: Primitives) -> None:
    alice, bob, mallory = (IdentityKeyPair.generate(pyca) for _ in range(3))
    spk = SignedPrekey.generate(pyca, mallory)
    bundle = PrekeyBundle(bob.public, spk.public, spk.signature)
    with pytest.raises(MalformedKey):
        initiate(pyca, alice, pyca.random(32), bundle)


def test_identity_with_foreign_dh_key_is_refused(pyca: Primitives) -> None:
    bob, mallory = IdentityKeyPair.generate(pyca), IdentityKeyPair.generate(pyca)
    spliced = PublicIdentity(
        bob.public.signing_public, mallory.public.dh_public, bob.public.binding_signature
    )
    with pytest.raises(MalformedKey):
        spliced.verify(pyca)


def test_low_order_ephemeral_is_refused(pyca: Primitives) -> None:
    alice, bob = IdentityKeyPair.generate(pyca), IdentityKeyPair.generate(pyca)
    spk = SignedPrekey.generate(pyca, bob)
    with pytest.raises(MalformedKey):
        respond(pyca, bob, spk, alice.public, bytes(32))


def test_identity_round_trips_and_fingerprint_is_stable(prims: Primitives) -> None:
    ident = IdentityKeyPair.generate(prims)
    again = IdentityKeyPair.from_bytes(prims, ident.to_bytes())
    assert again == ident
    assert len(ident.public.fingerprint(prims)) == 64


def test_same_seed_same_bytes_across_backends() -> None:
    results = []
    for backend in ("pyca", "nacl"):
        prims = seeded(backend, b"x3dh-vector")
        results.append(_agree(prims))
    assert results[0] == results[1]
