"""ML-KEM-768 layer (digest §4.3): construction, round trip, tamper, malformed keys and sizes."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import (
    CryptoUsageError,
    DecryptionFailed,
    MalformedInput,
    MalformedKey,
    UnsupportedPrimitive,
)
from enkrypted_crypto.layers.mlkem import (
    HKDF_INFO,
    MlKemKeyMaterial,
    MlKemLayer,
    MlKemParameters,
)
from enkrypted_crypto_nacl import NaclPrimitives
from tests.vectors import cctv_lines

PYCA = PycaPrimitives()


@pytest.fixture(scope="module")
def keys() -> tuple[MlKemKeyMaterial, MlKemKeyMaterial]:
    """(alice, bob): each holds its own seed and the other's public key."""
    a_seed, a_pub = PYCA.mlkem768_generate()
    b_seed, b_pub = PYCA.mlkem768_generate()
    return MlKemKeyMaterial(peer_public=b_pub, own_seed=a_seed), MlKemKeyMaterial(a_pub, b_seed)


def test_construction_matches_spec(keys: tuple[MlKemKeyMaterial, MlKemKeyMaterial]) -> None:
    alice, bob = keys
    assert HKDF_INFO == b"ML-KEM-768-AES-GCM-Cascading-Cipher"
    ciphertext, params = MlKemLayer(PYCA).encrypt(b"post-quantum hello", alice)
    assert (len(params.iv), len(params.salt), len(params.encapsulated)) == (12, 16, 1088)
    # Re-derive independently: decaps, first 32 bytes, HKDF(salt, info), AES-256-GCM, no AAD.
    shared = PYCA.mlkem768_decapsulate(bob.own_seed, params.encapsulated)[:32]
    key = PYCA.hkdf_sha256(shared, params.salt, HKDF_INFO, 32)
    assert AESGCM(key).decrypt(params.iv, ciphertext, None) == b"post-quantum hello"


@pytest.mark.parametrize("size", [0, 1, 5000])
def test_roundtrip_via_v0_and_binary(
    keys: tuple[MlKemKeyMaterial, MlKemKeyMaterial], size: int
) -> None:
    alice, bob = keys
    layer = MlKemLayer(PYCA)
    plaintext = PYCA.random(size)
    ciphertext, params = layer.encrypt(plaintext, alice)
    assert len(ciphertext) == size + 16
    via_json = MlKemParameters.from_v0(json.loads(json.dumps(params.to_v0())))
    assert via_json == params == MlKemParameters.from_bytes(params.to_bytes())
    assert set(params.to_v0()) == {"iv", "salt", "encapsulated"}
    assert layer.decrypt(ciphertext, via_json, bob) == plaintext


def _flip(data: bytes, i: int = 0) -> bytes:
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]


def test_tamper_is_opaque(keys: tuple[MlKemKeyMaterial, MlKemKeyMaterial]) -> None:
    alice, bob = keys
    layer = MlKemLayer(PYCA)
    ciphertext, p = layer.encrypt(b"secret", alice)
    forged = [
        (_flip(ciphertext), p, bob),
        (ciphertext, MlKemParameters(_flip(p.iv), p.salt, p.encapsulated), bob),
        (ciphertext, MlKemParameters(p.iv, _flip(p.salt), p.encapsulated), bob),
        (ciphertext, MlKemParameters(p.iv, p.salt, _flip(p.encapsulated, 500)), bob),
        (ciphertext, p, alice),  # wrong private key
        (ciphertext[:10], p, bob),
    ]
    for ct, params, key in forged:
        with pytest.raises(DecryptionFailed):
            layer.decrypt(ct, params, key)


def test_malformed_keys_rejected(keys: tuple[MlKemKeyMaterial, MlKemKeyMaterial]) -> None:
    alice, _ = keys
    for bad in (alice.peer_public[:-1], alice.peer_public + b"\0", b""):
        with pytest.raises(MalformedKey):
            MlKemKeyMaterial(peer_public=bad, own_seed=alice.own_seed)
    with pytest.raises(CryptoUsageError):
        MlKemKeyMaterial(peer_public=alice.peer_public, own_seed=alice.own_seed[:32])
    for invalid in cctv_lines("ML-KEM-modulus", "ML-KEM-768.txt.gz")[::13]:
        with pytest.raises(MalformedKey):
            MlKemKeyMaterial(peer_public=invalid, own_seed=alice.own_seed)


def test_malformed_parameters_rejected() -> None:
    good = {"iv": [0] * 12, "salt": [0] * 16, "encapsulated": [0] * 1088}
    assert MlKemParameters.from_v0(good).iv == bytes(12)
    broken: list[dict[str, object]] = [
        {**good, "iv": [0] * 11},
        {**good, "salt": [0] * 17},
        {**good, "encapsulated": [0] * 1087},
        {**good, "iv": [256] + [0] * 11},
        {**good, "iv": [-1] + [0] * 11},
        {**good, "iv": [True] + [0] * 11},
        {**good, "iv": "AAAAAAAAAAAA"},
        {"iv": [0] * 12, "salt": [0] * 16},
    ]
    for obj in broken:
        with pytest.raises(MalformedInput):
            MlKemParameters.from_v0(obj)
    for size in (0, 1115, 1117):
        with pytest.raises(MalformedInput):
            MlKemParameters.from_bytes(bytes(size))


def test_nacl_backend_cannot_serve_the_layer(
    keys: tuple[MlKemKeyMaterial, MlKemKeyMaterial],
) -> None:
    with pytest.raises(UnsupportedPrimitive, match="ml-kem-768"):
        MlKemLayer(NaclPrimitives()).encrypt(b"x", keys[0])
