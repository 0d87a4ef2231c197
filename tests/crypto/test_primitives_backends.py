"""Backend conformance beyond Wycheproof: declared capabilities, cross-backend byte equality,
hashes and scrypt against independent oracles, size checks, injected randomness."""

from __future__ import annotations

import hashlib
import os

import pytest

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import (
    CryptoError,
    CryptoUsageError,
    DecryptionFailed,
    MalformedKey,
    UnsupportedPrimitive,
)
from enkrypted_crypto.primitives import CAPABILITIES, Primitives
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_crypto_nacl import backend as nacl_backend
from enkrypted_shell.contracts import CryptoFailure

h = bytes.fromhex
AEADS = ("aes-256-gcm", "chacha20-poly1305", "xchacha20-poly1305")
NONCE = {"aes-256-gcm": 12, "chacha20-poly1305": 12, "xchacha20-poly1305": 24}


def test_capabilities() -> None:
    assert PycaPrimitives().capabilities == CAPABILITIES
    nacl = NaclPrimitives().capabilities
    assert nacl <= CAPABILITIES
    assert "ml-kem-768" not in nacl
    assert {"chacha20-poly1305", "xchacha20-poly1305", "x25519", "ed25519", "scrypt"} <= nacl


def test_nacl_without_aes_ni_does_not_declare_aes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nacl_backend, "_aes_gcm_available", lambda: False)
    nacl = NaclPrimitives()
    assert "aes-256-gcm" not in nacl.capabilities
    with pytest.raises(UnsupportedPrimitive, match="aes-256-gcm"):
        nacl.aead_seal("aes-256-gcm", bytes(32), bytes(12), b"", b"")


def test_decryption_failed_is_the_shell_failure() -> None:
    assert issubclass(DecryptionFailed, CryptoFailure)
    assert issubclass(DecryptionFailed, CryptoError)
    assert str(DecryptionFailed()) == "decryption failed"


@pytest.mark.parametrize("alg", AEADS)
def test_same_bytes_across_backends(alg: str) -> None:
    pyca, nacl = PycaPrimitives(), NaclPrimitives()
    if alg not in nacl.capabilities:
        pytest.fail(f"this CPU lacks {alg} in libsodium; cross-backend check impossible")
    key, nonce = os.urandom(32), os.urandom(NONCE[alg])
    for size in (0, 1, 63, 64, 65, 1000):
        msg, aad = os.urandom(size), os.urandom(size % 17)
        sealed = pyca.aead_seal(alg, key, nonce, msg, aad)  # type: ignore[arg-type]
        assert nacl.aead_seal(alg, key, nonce, msg, aad) == sealed  # type: ignore[arg-type]
        assert nacl.aead_open(alg, key, nonce, sealed, aad) == msg  # type: ignore[arg-type]


def test_deterministic_primitives_agree() -> None:
    pyca, nacl = PycaPrimitives(), NaclPrimitives()
    for _ in range(5):
        a, b, data = os.urandom(32), os.urandom(32), os.urandom(200)
        assert pyca.x25519_public(a) == nacl.x25519_public(a)
        assert pyca.x25519(a, nacl.x25519_public(b)) == nacl.x25519(a, pyca.x25519_public(b))
        assert pyca.ed25519_public(a) == nacl.ed25519_public(a)
        sig = pyca.ed25519_sign(a, data)
        assert nacl.ed25519_sign(a, data) == sig
        assert nacl.ed25519_verify(nacl.ed25519_public(a), data, sig)
        for alg in ("sha256", "sha512", "blake2b"):
            assert pyca.hash(alg, data) == nacl.hash(alg, data)  # type: ignore[arg-type]
        for key in (b"", a, data):  # keys shorter, equal to and longer than the block
            assert pyca.hmac_sha256(key, data) == nacl.hmac_sha256(key, data)
            assert pyca.hkdf_sha256(data, key, b, 77) == nacl.hkdf_sha256(data, key, b, 77)
        assert pyca.scrypt(a, b, 1024, 8, 1, 32) == nacl.scrypt(a, b, 1024, 8, 1, 32)


def test_hashes_against_hashlib(prims: Primitives) -> None:
    data = os.urandom(300)
    assert prims.hash("sha256", b"abc") == h(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert prims.hash("sha256", data) == hashlib.sha256(data).digest()
    assert prims.hash("sha512", data) == hashlib.sha512(data).digest()
    assert prims.hash("blake2b", data) == hashlib.blake2b(data).digest()
    with pytest.raises(UnsupportedPrimitive):
        prims.hash("md5", data)  # type: ignore[arg-type]


def test_scrypt_rfc7914(prims: Primitives) -> None:
    # RFC 7914 §12, second vector
    out = prims.scrypt(b"password", b"NaCl", 1024, 8, 16, 64)
    assert out == h(
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff1"
        "09279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
    )
    assert prims.scrypt(b"pw", b"salt", 32768, 8, 1, 32) == hashlib.scrypt(
        b"pw", salt=b"salt", n=32768, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024
    )
    with pytest.raises(CryptoUsageError):
        prims.scrypt(b"pw", b"salt", 1000, 8, 1, 32)  # N not a power of two


@pytest.mark.parametrize("alg", AEADS)
def test_aead_misuse_and_tamper(prims: Primitives, alg: str) -> None:
    if alg not in prims.capabilities:
        pytest.fail(f"{prims.name} lacks {alg} on this CPU")
    key, nonce = os.urandom(32), os.urandom(NONCE[alg])
    sealed = prims.aead_seal(alg, key, nonce, b"hello", b"ad")  # type: ignore[arg-type]
    for bad in (sealed[:-1] + bytes([sealed[-1] ^ 1]), sealed[:15], b"", sealed + b"\0"):
        with pytest.raises(DecryptionFailed):
            prims.aead_open(alg, key, nonce, bad, b"ad")  # type: ignore[arg-type]
    with pytest.raises(DecryptionFailed):
        prims.aead_open(alg, key, nonce, sealed, b"AD")  # type: ignore[arg-type]
    with pytest.raises(CryptoUsageError):
        prims.aead_seal(alg, key[:16], nonce, b"", b"")  # type: ignore[arg-type]
    with pytest.raises(CryptoUsageError):
        prims.aead_seal(alg, key, nonce + b"\0", b"", b"")  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", AEADS)
def test_prepared_aead_key_matches_one_shot_calls(prims: Primitives, alg: str) -> None:
    """``aead_key`` gives the same bytes as ``aead_seal``/``aead_open``, on both backends, and
    accepts views (a slice of a received frame) as well as bytes."""
    if alg not in prims.capabilities:
        pytest.fail(f"{prims.name} lacks {alg} on this CPU")
    key = os.urandom(32)
    prepared = prims.aead_key(alg, key)  # type: ignore[arg-type]
    other = (NaclPrimitives() if prims.name == "pyca" else PycaPrimitives()).aead_key(alg, key)  # type: ignore[arg-type]
    assert prepared.algorithm == alg and key.hex() not in repr(prepared)
    for size in (0, 1, 16, 1000):
        nonce, msg, aad = os.urandom(NONCE[alg]), os.urandom(size), os.urandom(size % 7)
        sealed = prims.aead_seal(alg, key, nonce, msg, aad)
        assert prepared.seal(nonce, msg, aad) == sealed == other.seal(nonce, msg, aad)
        framed = b"head" + sealed
        for view in (memoryview(framed)[4:], bytearray(sealed), sealed):
            assert prepared.open(nonce, view, aad) == msg
        assert prepared.seal(nonce, memoryview(b"x" + msg)[1:], aad) == sealed
        assert prims.aead_open(alg, key, nonce, memoryview(framed)[4:], aad) == msg


@pytest.mark.parametrize("alg", AEADS)
def test_prepared_aead_key_misuse_and_tamper(prims: Primitives, alg: str) -> None:
    if alg not in prims.capabilities:
        pytest.fail(f"{prims.name} lacks {alg} on this CPU")
    prepared = prims.aead_key(alg, os.urandom(32))  # type: ignore[arg-type]
    nonce = os.urandom(NONCE[alg])
    sealed = prepared.seal(nonce, b"hello", b"ad")
    for bad in (sealed[:-1] + bytes([sealed[-1] ^ 1]), sealed[:15], b"", sealed + b"\0"):
        with pytest.raises(DecryptionFailed):
            prepared.open(nonce, bad, b"ad")
    with pytest.raises(DecryptionFailed):
        prepared.open(nonce, sealed, b"AD")
    for wrong in (nonce + b"\0", nonce[:-1], b""):
        with pytest.raises(CryptoUsageError):
            prepared.seal(wrong, b"", b"")
        with pytest.raises(CryptoUsageError):
            prepared.open(wrong, sealed, b"ad")
    with pytest.raises(CryptoUsageError):
        prims.aead_key(alg, bytes(16))  # type: ignore[arg-type]


def test_unknown_aead_is_unsupported(prims: Primitives) -> None:
    with pytest.raises(UnsupportedPrimitive, match="aes-128-gcm"):
        prims.aead_seal("aes-128-gcm", bytes(32), bytes(12), b"", b"")  # type: ignore[arg-type]
    with pytest.raises(UnsupportedPrimitive, match="aes-128-gcm"):
        prims.aead_key("aes-128-gcm", bytes(32))  # type: ignore[arg-type]


def test_randomness_is_injected() -> None:
    for cls in (PycaPrimitives, NaclPrimitives):
        prims = cls(random=lambda n: b"\x07" * n)
        assert prims.random(5) == b"\x07" * 5
        assert prims.x25519_generate()[0] == b"\x07" * 32
        assert prims.ed25519_generate()[0] == b"\x07" * 32
        with pytest.raises(CryptoUsageError):
            prims.random(-1)


def test_x25519_reused_key_object_gives_the_same_results() -> None:
    """The pyca backend keeps the last private key object it loaded (the ratchet's three uses
    of one key load it once): interleaved keys, repeats and copies give what a fresh load gives."""
    pyca, reference = PycaPrimitives(), NaclPrimitives()
    keys = [os.urandom(32) for _ in range(3)]
    peer = reference.x25519_public(os.urandom(32))
    for private in [keys[0], keys[0], keys[1], keys[0], bytearray(keys[2]), keys[2], keys[1]]:
        assert pyca.x25519_public(private) == reference.x25519_public(bytes(private))
        assert pyca.x25519(private, peer) == reference.x25519(bytes(private), peer)


def test_x25519_checks_sizes_with_a_key_object_kept() -> None:
    pyca = PycaPrimitives()
    private = os.urandom(32)
    pyca.x25519_public(private)
    with pytest.raises(CryptoUsageError):
        pyca.x25519(private[:31], pyca.x25519_public(private))
    with pytest.raises(MalformedKey):
        pyca.x25519(private, b"\x09" * 31)
