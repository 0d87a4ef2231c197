"""AES-GCM-256 layer: Profile-v0 (per-message scrypt, JSON AAD) and the binary-profile variant."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import CryptoUsageError, DecryptionFailed, MalformedInput
from enkrypted_crypto.layers.aesgcm import (
    AesGcmSessionKeys,
    AesGcmSessionLayer,
    AesGcmSessionParameters,
    AesGcmV0KeyMaterial,
    AesGcmV0Layer,
    AesGcmV0Parameters,
    v0_aad,
)
from enkrypted_crypto.primitives import Primitives
from enkrypted_crypto_nacl import NaclPrimitives

TS = 1717000000000
PASSWORD = AesGcmV0KeyMaterial("peer-derived secret \u00e9\u4e2d")
BACKENDS: dict[str, Callable[..., Primitives]] = {"pyca": PycaPrimitives, "nacl": NaclPrimitives}


def _seeded(name: str) -> Primitives:
    state = [0]

    def rng(n: int) -> bytes:
        state[0] += 1
        return hashlib.shake_256(state[0].to_bytes(8, "big")).digest(n)

    return BACKENDS[name](random=rng)


# ------------------------------------------------------------------------------------ Profile-v0
def test_v0_aad_is_exactly_the_js_json() -> None:
    # JSON.stringify({protocol, context, timestamp, encoding}) in insertion order, no spaces.
    assert v0_aad(TS) == (
        b'{"protocol":"AES-GCM-256-v2.0.0","context":"cascading-cipher-encrypt",'
        b'"timestamp":1717000000000,"encoding":"binary"}'
    )
    assert v0_aad(0).endswith(b'"timestamp":0,"encoding":"binary"}')
    for bad in (-1, 2**53, 1.5, True, "1717000000000"):
        with pytest.raises(MalformedInput):
            v0_aad(bad)  # type: ignore[arg-type]


def test_v0_construction_matches_spec() -> None:
    ciphertext, params = AesGcmV0Layer(PycaPrimitives()).encrypt(b"Hi", PASSWORD, now_ms=TS)
    key = hashlib.scrypt(
        PASSWORD.password.encode(), salt=params.salt, n=32768, r=8, p=1, dklen=32, maxmem=2**26
    )
    assert AESGCM(key).decrypt(params.iv, ciphertext, v0_aad(TS)) == b"Hi"
    assert params.v0_metadata()["timestamp"] == TS
    assert set(params.to_v0()) == {"iv", "salt"}


def test_v0_same_bytes_across_backends_and_roundtrip() -> None:
    outputs = {}
    for name in BACKENDS:
        outputs[name] = AesGcmV0Layer(_seeded(name)).encrypt(b"cascade", PASSWORD, now_ms=TS)
    assert outputs["pyca"] == outputs["nacl"]
    ciphertext, params = outputs["pyca"]
    wire: list[dict[str, object]] = json.loads(json.dumps([params.to_v0(), params.v0_metadata()]))
    parsed = AesGcmV0Parameters.from_v0(wire[0], wire[1])
    assert parsed == params
    assert AesGcmV0Layer(NaclPrimitives()).decrypt(ciphertext, parsed, PASSWORD) == b"cascade"


def test_v0_timestamp_is_load_bearing_and_tamper_fails() -> None:
    layer = AesGcmV0Layer(PycaPrimitives())
    ciphertext, p = layer.encrypt(b"msg", PASSWORD, now_ms=TS)
    forged = [
        (ciphertext, AesGcmV0Parameters(p.iv, p.salt, TS + 1), PASSWORD),
        (ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]), p, PASSWORD),
        (ciphertext, AesGcmV0Parameters(p.iv, bytes(16), TS), PASSWORD),
        (ciphertext, p, AesGcmV0KeyMaterial("other password")),
    ]
    for ct, params, keys in forged:
        with pytest.raises(DecryptionFailed):
            layer.decrypt(ct, params, keys)


def test_v0_malformed_inputs() -> None:
    good: dict[str, object] = {"iv": [1] * 12, "salt": [2] * 16}
    cases: list[tuple[dict[str, object], dict[str, object]]] = [
        ({**good, "iv": [1] * 16}, {"timestamp": TS}),
        ({"iv": [1] * 12}, {"timestamp": TS}),
        (good, {}),
        (good, {"timestamp": float(TS)}),
        (good, {"timestamp": str(TS)}),
    ]
    for params, meta in cases:
        with pytest.raises(MalformedInput):
            AesGcmV0Parameters.from_v0(params, meta)
    with pytest.raises(CryptoUsageError):
        AesGcmV0KeyMaterial("")


# -------------------------------------------------------------------------------- binary profile
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_session_roundtrip_both_directions(backend: str) -> None:
    prims = BACKENDS[backend]()
    secret = prims.random(32)
    alice = AesGcmSessionLayer(prims, AesGcmSessionKeys.derive(prims, secret, initiator=True))
    bob = AesGcmSessionLayer(prims, AesGcmSessionKeys.derive(prims, secret, initiator=False))
    for sender, receiver in ((alice, bob), (bob, alice)):
        ciphertext, params = sender.encrypt(b"hello", aad=b"hdr")
        assert len(ciphertext) == 5 + 16 and len(params.to_bytes()) == 12
        wire_params = AesGcmSessionParameters.from_bytes(params.to_bytes())
        assert receiver.decrypt(ciphertext, wire_params, aad=b"hdr") == b"hello"
        with pytest.raises(DecryptionFailed):  # reflected back to its sender
            sender.decrypt(ciphertext, params, aad=b"hdr")
        with pytest.raises(DecryptionFailed):  # different bound context
            receiver.decrypt(ciphertext, params, aad=b"HDR")


def test_session_construction_and_cross_backend_bytes() -> None:
    secret = bytes(range(32))
    outputs = []
    for name in BACKENDS:
        prims = _seeded(name)
        keys = AesGcmSessionKeys.derive(prims, secret, initiator=True)
        outputs.append(AesGcmSessionLayer(prims, keys).encrypt(b"payload", aad=b"ctx"))
    assert outputs[0] == outputs[1]
    ciphertext, params = outputs[0]
    info = b"enkrypted/b1/aes-gcm-256/i->r"
    key = HKDF(hashes.SHA256(), 32, None, info).derive(secret)
    assert AESGCM(key).decrypt(params.nonce, ciphertext, b"EKb1AESctx") == b"payload"


def test_session_misuse_and_malformed() -> None:
    prims = PycaPrimitives()
    with pytest.raises(CryptoUsageError):
        AesGcmSessionKeys.derive(prims, bytes(16), initiator=True)
    with pytest.raises(CryptoUsageError):
        AesGcmSessionKeys(send_key=bytes(32), receive_key=bytes(32))
    keys = AesGcmSessionKeys.derive(prims, bytes(32), initiator=True)
    assert keys.send_key.hex() not in repr(keys)
    for size in (0, 11, 13, 24):
        with pytest.raises(MalformedInput):
            AesGcmSessionParameters.from_bytes(bytes(size))
