"""ML-KEM-768 layer.  The v0 construction (digest §4.3): round trip, tamper, malformed keys and
sizes, prepared keys.  The b1 session layer (docs/protocol.md §1.3): key schedule re-derived
independently, ordering, replays, bounds, transactions, dropped epoch keys."""

from __future__ import annotations

import json
import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import (
    CryptoUsageError,
    DecryptionFailed,
    MalformedInput,
    MalformedKey,
    UnsupportedPrimitive,
)
from enkrypted_crypto.layers.mlkem import (
    B1_SECRET_INFO,
    EPOCH_MESSAGES,
    HKDF_INFO,
    MlKemKeyMaterial,
    MlKemLayer,
    MlKemParameters,
    MlKemPreparedKeys,
    MlKemSessionKeys,
    MlKemSessionLayer,
    MlKemSessionParameters,
    b1_session_secret,
)
from enkrypted_crypto.primitives import Primitives
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


# ------------------------------------------------------------------------ v0 with prepared keys
def test_prepared_keys_interoperate_with_key_material(
    keys: tuple[MlKemKeyMaterial, MlKemKeyMaterial],
) -> None:
    """A session's prepared keys give the same construction as the one-off key material."""
    alice, bob = keys
    layer = MlKemLayer(PYCA)
    alice_prepared, bob_prepared = (MlKemPreparedKeys.prepare(PYCA, k) for k in keys)
    assert "redacted" in repr(alice_prepared)
    ciphertext, params = layer.encrypt(b"prepared", alice_prepared)
    assert layer.decrypt(ciphertext, params, bob) == b"prepared"
    ciphertext, params = layer.encrypt(b"material", alice)
    assert layer.decrypt(memoryview(ciphertext), params, bob_prepared) == b"material"
    with pytest.raises(DecryptionFailed):
        layer.decrypt(ciphertext, params, alice_prepared)


# ------------------------------------------------------------------------------ binary profile
SHARED, TRANSCRIPT = bytes(range(32)), bytes(range(32, 64))
AAD = b"EnkryptedChat-cascade-v1|test" + (1717000000000).to_bytes(8, "big")


def _session(p: Primitives = PYCA, **bounds: int) -> tuple[MlKemSessionLayer, MlKemSessionLayer]:
    """(initiator, responder) layers of one session."""
    secret = b1_session_secret(p, SHARED, TRANSCRIPT)
    return (
        MlKemSessionLayer(p, MlKemSessionKeys.derive(p, secret, initiator=True), **bounds),
        MlKemSessionLayer(p, MlKemSessionKeys.derive(p, secret, initiator=False), **bounds),
    )


def _hkdf(ikm: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def test_b1_construction_matches_the_documented_key_schedule() -> None:
    """Re-derived with pyca's HKDF and AESGCM directly (docs/protocol.md §1.3)."""
    secret = _hkdf(SHARED, TRANSCRIPT, b"EnkryptedChat-b1/mlkem-session-secret", 32)
    assert B1_SECRET_INFO == b"EnkryptedChat-b1/mlkem-session-secret"
    assert b1_session_secret(PYCA, SHARED, TRANSCRIPT) == secret
    initiator, responder = _session()
    for label, sender, receiver in (("i->r", initiator, responder), ("r->i", responder, initiator)):
        chain = _hkdf(secret, None, b"enkrypted/b1/ml-kem-768/" + label.encode(), 32)
        epoch_keys = []
        for _ in range(3):
            okm = _hkdf(chain, None, b"enkrypted/b1/ml-kem-768/epoch", 64)
            epoch_keys.append(okm[:32])
            chain = okm[32:]
        for counter in range(2 * EPOCH_MESSAGES + 3):
            plaintext = b"message %d" % counter
            sealed, params = sender.encrypt(plaintext, AAD)
            assert params.counter == counter and params.to_bytes() == counter.to_bytes(8, "big")
            nonce = bytes(4) + counter.to_bytes(8, "big")
            key = epoch_keys[counter // EPOCH_MESSAGES]
            assert sealed == AESGCM(key).encrypt(nonce, plaintext, b"EKb1KEM" + AAD)
            opened, commit = receiver.decrypt(sealed, params, AAD)
            assert opened == plaintext
            commit()


def test_b1_directions_are_separate_and_aad_is_bound() -> None:
    initiator, responder = _session()
    sealed, params = initiator.encrypt(b"to responder", AAD)
    with pytest.raises(DecryptionFailed):
        initiator.decrypt(sealed, params, AAD)  # reflected back to its sender
    for bad_aad in (AAD[:-1] + b"\x01", b""):
        with pytest.raises(DecryptionFailed):
            responder.decrypt(sealed, params, bad_aad)
    with pytest.raises(DecryptionFailed):
        responder.decrypt(sealed, MlKemSessionParameters(1), AAD)  # another nonce
    with pytest.raises(DecryptionFailed):
        responder.decrypt(sealed[:-1] + bytes([sealed[-1] ^ 1]), params, AAD)
    opened, commit = responder.decrypt(memoryview(sealed), params, AAD)  # failures changed nothing
    assert opened == b"to responder"
    commit()


def _sealed(sender: MlKemSessionLayer, count: int) -> list[tuple[bytes, MlKemSessionParameters]]:
    return [sender.encrypt(b"m%d" % i, AAD) for i in range(count)]


def _open(receiver: MlKemSessionLayer, message: tuple[bytes, MlKemSessionParameters]) -> bytes:
    opened, commit = receiver.decrypt(message[0], message[1], AAD)
    commit()
    return opened


def test_b1_any_order_once_each_and_replays_refused() -> None:
    sender, receiver = _session()
    messages = _sealed(sender, 3 * EPOCH_MESSAGES)
    order = list(range(len(messages)))
    random.Random(7).shuffle(order)
    for i in order[: len(order) // 2]:
        assert _open(receiver, messages[i]) == b"m%d" % i
    for i in order[: len(order) // 2]:
        with pytest.raises(DecryptionFailed):
            receiver.decrypt(*messages[i], AAD)
    for i in order[len(order) // 2 :]:
        assert _open(receiver, messages[i]) == b"m%d" % i
    for message in messages:
        with pytest.raises(DecryptionFailed):
            receiver.decrypt(*message, AAD)


def test_b1_gap_and_skipped_counters_are_bounded() -> None:
    sender, receiver = _session(max_gap=10, max_skipped=3)
    messages = _sealed(sender, 30)
    assert _open(receiver, messages[0]) == b"m0"
    with pytest.raises(DecryptionFailed):
        receiver.decrypt(*messages[12], AAD)  # 11 ahead of the next expected counter (1)
    assert _open(receiver, messages[11]) == b"m11"  # exactly 10 ahead
    with pytest.raises(DecryptionFailed):
        receiver.decrypt(*messages[7], AAD)  # skipped, but only the newest 3 are remembered
    for i in (8, 9, 10):
        assert _open(receiver, messages[i]) == b"m%d" % i


def test_b1_decrypt_is_transactional() -> None:
    sender, receiver = _session()
    first, second = _sealed(sender, 2)
    opened, commit = receiver.decrypt(*second, AAD)
    opened_again, commit_again = receiver.decrypt(*second, AAD)  # nothing was committed
    assert opened == opened_again == b"m1"
    commit()
    with pytest.raises(CryptoUsageError, match="stale"):
        commit_again()
    assert _open(receiver, first) == b"m0"


def test_b1_sender_never_reuses_a_counter() -> None:
    """A message sealed but never sent (the cascade failed later) still burns its counter."""
    sender, receiver = _session()
    sender.encrypt(b"dropped", AAD)
    sealed, params = sender.encrypt(b"sent", AAD)
    assert params.counter == 1
    assert _open(receiver, (sealed, params)) == b"sent"
    sender._send_counter = 2**64  # white box: exhausted
    with pytest.raises(CryptoUsageError, match="exhausted"):
        sender.encrypt(b"x", AAD)


def test_b1_old_epoch_keys_are_dropped() -> None:
    """Forward secrecy per epoch: keys of epochs no outstanding message needs are forgotten."""
    sender, receiver = _session()
    messages = _sealed(sender, 4 * EPOCH_MESSAGES)
    assert sender._send_epoch == 3  # holds only the current key
    missing = EPOCH_MESSAGES + 5  # one message of epoch 1 is late
    for i, message in enumerate(messages):
        if i != missing:
            _open(receiver, message)
    assert set(receiver._keys) == {1, 3}
    assert _open(receiver, messages[missing]) == b"m%d" % missing
    assert set(receiver._keys) == {3}


def test_b1_parameters_and_keys_are_checked() -> None:
    assert MlKemSessionParameters.from_bytes(bytes(7) + b"\x05").counter == 5
    for size in (0, 7, 9, 12):
        with pytest.raises(MalformedInput):
            MlKemSessionParameters.from_bytes(bytes(size))
    for counter in (-1, 2**64, True):
        with pytest.raises(MalformedInput):
            MlKemSessionParameters(counter)
    secret = b1_session_secret(PYCA, SHARED, TRANSCRIPT)
    keys = MlKemSessionKeys.derive(PYCA, secret, initiator=True)
    other = MlKemSessionKeys.derive(PYCA, secret, initiator=False)
    assert (keys.send_chain, keys.receive_chain) == (other.receive_chain, other.send_chain)
    assert secret.hex() not in repr(keys) and "redacted" in repr(keys)
    with pytest.raises(CryptoUsageError):
        MlKemSessionKeys(keys.send_chain, keys.send_chain)
    with pytest.raises(CryptoUsageError):
        MlKemSessionKeys.derive(PYCA, secret[:16], initiator=True)
    with pytest.raises(CryptoUsageError):
        b1_session_secret(PYCA, SHARED[:31], TRANSCRIPT)


def test_b1_layer_runs_on_nacl_too() -> None:
    """Per message the b1 layer needs HKDF and AES-GCM only, which libsodium has."""
    pyca_sender, _ = _session(PYCA)
    _, nacl_receiver = _session(NaclPrimitives())
    messages = _sealed(pyca_sender, EPOCH_MESSAGES + 2)
    opened = [_open(nacl_receiver, message) for message in messages]
    assert opened == [b"m%d" % i for i in range(len(messages))]
