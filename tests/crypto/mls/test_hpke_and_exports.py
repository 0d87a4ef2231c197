"""Our HPKE base mode (RFC 9180) against pyca's one-shot ``hpke.Suite``; the package's exports."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

import enkrypted_crypto.mls as mls_pkg
from enkrypted_crypto.errors import DecryptionFailed, UnsupportedPrimitive
from enkrypted_crypto.mls._suite import SUITES, HpkeCiphertext, suite

_PYCA = {
    1: (hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
    2: (hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
    3: (hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
    5: (hpke.KEM.P521, hpke.KDF.HKDF_SHA512, hpke.AEAD.AES_256_GCM),
    7: (hpke.KEM.P384, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM),
}
_CURVES = {2: ec.SECP256R1(), 5: ec.SECP521R1(), 7: ec.SECP384R1()}


@pytest.mark.parametrize("suite_id", sorted(_PYCA))
def test_hpke_matches_pyca_both_ways(suite_id: int) -> None:
    cs = suite(suite_id)
    pyca_suite = hpke.Suite(*_PYCA[suite_id])
    priv, pub = cs.kem_keypair()
    if suite_id in _CURVES:
        pyca_priv = ec.derive_private_key(int.from_bytes(priv, "big"), _CURVES[suite_id])
        pyca_pub = ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[suite_id], pub)
        n_enc = len(pub)
    else:
        pyca_priv = X25519PrivateKey.from_private_bytes(priv)  # type: ignore[assignment]
        pyca_pub = X25519PublicKey.from_public_bytes(pub)  # type: ignore[assignment]
        n_enc = 32
    assert (
        pyca_pub.public_bytes(
            serialization.Encoding.X962 if suite_id in _CURVES else serialization.Encoding.Raw,
            serialization.PublicFormat.UncompressedPoint
            if suite_id in _CURVES
            else serialization.PublicFormat.Raw,
        )
        == pub
    )
    info, message = os.urandom(20), os.urandom(33)
    ours = cs.hpke_seal(pub, info, b"", message)
    assert pyca_suite.decrypt(ours.kem_output + ours.ciphertext, pyca_priv, info=info) == message
    theirs = pyca_suite.encrypt(message, pyca_pub, info=info)
    ct = HpkeCiphertext(theirs[:n_enc], theirs[n_enc:])
    assert cs.hpke_open(priv, info, b"", ct) == message
    with pytest.raises(DecryptionFailed):
        cs.hpke_open(priv, info + b"!", b"", ct)


@pytest.mark.parametrize("suite_id", sorted(SUITES))
def test_hpke_export_sender_and_receiver_agree(suite_id: int) -> None:
    cs = suite(suite_id)
    priv, pub = cs.kem_keypair()
    enc, secret = cs.hpke_export_sender(pub, b"", b"MLS 1.0 external init secret", cs.n_h)
    assert (
        cs.hpke_export_receiver(priv, enc, b"", b"MLS 1.0 external init secret", cs.n_h) == secret
    )


def test_x448_suites_round_trip() -> None:
    """pyca's hpke has no X448 KEM to compare with; suites 4 and 6 are checked by the vectors."""
    for suite_id in (4, 6):
        cs = suite(suite_id)
        priv, pub = cs.kem_keypair()
        ct = cs.hpke_seal(pub, b"info", b"", b"message")
        assert cs.hpke_open(priv, b"info", b"", ct) == b"message"


@pytest.mark.parametrize("suite_id", [0, 8, 0x0A0A])
def test_unimplemented_suites_named(suite_id: int) -> None:
    with pytest.raises(UnsupportedPrimitive, match=f"suite {suite_id}"):
        suite(suite_id)


def test_mls_exports_pinned() -> None:
    assert sorted(mls_pkg.__all__) == sorted(
        [
            "SUITES",
            "ApplicationMessage",
            "CommitApplied",
            "CommitOutput",
            "Credential",
            "CredentialValidator",
            "Group",
            "GroupConfig",
            "KeyPackageBundle",
            "ProposalQueued",
            "identity_key_validator",
            "key_package_message",
            "new_key_package_bundle",
            "suite",
        ]
    )
    for name in mls_pkg.__all__:
        assert hasattr(mls_pkg, name)


@pytest.mark.parametrize("suite_id", sorted(SUITES))
def test_kem_public_key_sizes(suite_id: int) -> None:
    cs = suite(suite_id)
    assert len(cs.kem_keypair()[1]) == cs.kem.n_pk


@pytest.mark.parametrize("suite_id", sorted(SUITES))
def test_a_signing_key_loaded_once_signs_as_the_bytes_do(suite_id: int) -> None:
    """A group loads its signature key once (``signing_key``); signatures made with the loaded
    key verify like those made from the bytes (EdDSA: the very same bytes)."""
    cs = suite(suite_id)
    priv, pub = cs.signature_keypair()
    loaded = cs.signing_key(priv)
    for content in (b"", b"x" * 300):
        by_key = cs.sign_with_label(loaded, b"FramedContentTBS", content)
        assert cs.verify_with_label(pub, b"FramedContentTBS", content, by_key)
        if cs.signature in ("ed25519", "ed448"):
            assert by_key == cs.sign_with_label(priv, b"FramedContentTBS", content)


@pytest.mark.parametrize("suite_id", sorted(SUITES))
def test_expand_with_label_is_rfc9420_kdflabel(suite_id: int) -> None:
    """``expand_with_label`` (one-shot HMAC, label built without a Writer) against pyca's
    HKDF-Expand over KDFLabel written field by field (RFC 9420 §8)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    from enkrypted_crypto.mls._codec import Writer

    cs = suite(suite_id)
    algorithm = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}[
        cs.hash_name
    ]()
    secret = os.urandom(cs.n_h)
    for label, context, length in ((b"key", b"", cs.n_k), (b"tree", b"left", cs.n_h),
                                   (b"x" * 70, os.urandom(300), 3 * cs.n_h + 5)):
        w = Writer()
        w.u16(length)
        w.opaque(b"MLS 1.0 " + label)
        w.opaque(context)
        expected = HKDFExpand(algorithm, length, w.getvalue()).derive(secret)
        assert cs.expand_with_label(secret, label, context, length) == expected
