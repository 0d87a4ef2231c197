"""PyNaCl (libsodium) implementation of :class:`~enkrypted_crypto.primitives.Primitives`.

Declares exactly what libsodium provides through PyNaCl 1.6: ChaCha20-Poly1305 (IETF),
XChaCha20-Poly1305, X25519, Ed25519, SHA-256/512, BLAKE2b-512, scrypt, and AES-256-GCM only on
CPUs where libsodium enables it (AES-NI/ARMv8 crypto; libsodium has no portable fallback).

No ML-KEM: ``mlkem768_*`` (the prepared-key factories included) raise
:class:`UnsupportedPrimitive` pointing at the pyca backend of ``enkrypted-crypto``.  PyNaCl does
not bind libsodium's ``crypto_auth_hmacsha256`` or ``crypto_kdf_hkdf_sha256``, so HMAC-SHA256
(RFC 2104) and HKDF-SHA256 (RFC 5869) are composed here over libsodium's SHA-256 (see
``docs/adr/0003-nacl-hmac-hkdf-over-sha256.md``); both are checked against Wycheproof and against
the pyca backend byte for byte.

PyNaCl's AEAD functions take ``bytes`` only, so ``memoryview`` inputs are copied here; a prepared
AEAD key (:meth:`NaclPrimitives.aead_key`) checks its key once and keeps it.
"""

from __future__ import annotations

__all__ = ["NaclPrimitives"]

from typing import Final, Literal

import nacl.bindings as sodium
import nacl.exceptions
from nacl._sodium import lib as _libsodium  # only for the AES-GCM CPU probe PyNaCl lacks

from enkrypted_crypto.backends import (
    AEAD_TAG_SIZE,
    X25519_SIZE,
    check_aead,
    check_aead_key,
    check_hkdf_length,
    check_size,
    reject_zero_shared_secret,
    urandom,
)
from enkrypted_crypto.errors import (
    CryptoUsageError,
    DecryptionFailed,
    MalformedKey,
    UnsupportedPrimitive,
)
from enkrypted_crypto.primitives import (
    AeadAlgorithm,
    AeadKey,
    BytesLike,
    MlKemDecapsulationKey,
    MlKemEncapsulationKey,
    Random,
)

_PYCA: Final = ("enkrypted-crypto (enkrypted_crypto.backends.pyca.PycaPrimitives)",)
_SHA256_BLOCK: Final = 64


def _aes_gcm_available() -> bool:
    return bool(_libsodium.crypto_aead_aes256gcm_is_available())


def _capabilities() -> frozenset[str]:
    caps = {
        "chacha20-poly1305",
        "xchacha20-poly1305",
        "x25519",
        "ed25519",
        "hkdf-sha256",
        "hmac-sha256",
        "sha256",
        "sha512",
        "blake2b",
    }
    if _aes_gcm_available():
        caps.add("aes-256-gcm")
    if sodium.has_crypto_pwhash_scryptsalsa208sha256:
        caps.add("scrypt")
    return frozenset(caps)


_AEAD: Final = {
    "aes-256-gcm": (sodium.crypto_aead_aes256gcm_encrypt, sodium.crypto_aead_aes256gcm_decrypt),
    "chacha20-poly1305": (
        sodium.crypto_aead_chacha20poly1305_ietf_encrypt,
        sodium.crypto_aead_chacha20poly1305_ietf_decrypt,
    ),
    "xchacha20-poly1305": (
        sodium.crypto_aead_xchacha20poly1305_ietf_encrypt,
        sodium.crypto_aead_xchacha20poly1305_ietf_decrypt,
    ),
}


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    """RFC 2104 over libsodium SHA-256."""
    if len(key) > _SHA256_BLOCK:
        key = sodium.crypto_hash_sha256(key)
    block = int.from_bytes(key.ljust(_SHA256_BLOCK, b"\0"), "big")
    ipad = (block ^ int.from_bytes(b"\x36" * _SHA256_BLOCK, "big")).to_bytes(_SHA256_BLOCK, "big")
    opad = (block ^ int.from_bytes(b"\x5c" * _SHA256_BLOCK, "big")).to_bytes(_SHA256_BLOCK, "big")
    inner: bytes = sodium.crypto_hash_sha256(ipad + data)
    outer: bytes = sodium.crypto_hash_sha256(opad + inner)
    return outer


def _as_bytes(data: BytesLike) -> bytes:
    return data if type(data) is bytes else bytes(data)


class _PreparedAead:
    """:class:`~enkrypted_crypto.primitives.AeadKey`: key and algorithm checked once."""

    __slots__ = ("_key", "_prims", "algorithm")

    def __init__(self, prims: NaclPrimitives, algorithm: AeadAlgorithm, key: bytes) -> None:
        self._prims = prims
        self.algorithm: AeadAlgorithm = algorithm
        self._key = bytes(key)

    def __repr__(self) -> str:
        return f"<prepared {self.algorithm} key>"

    def seal(self, nonce: bytes, plaintext: BytesLike, aad: bytes) -> bytes:
        return self._prims.aead_seal(self.algorithm, self._key, nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: BytesLike, aad: bytes) -> bytes:
        return self._prims.aead_open(self.algorithm, self._key, nonce, ciphertext, aad)


class NaclPrimitives:
    """:class:`~enkrypted_crypto.primitives.Primitives` over libsodium (PyNaCl)."""

    name: str = "pynacl"

    def __init__(self, random: Random | None = None) -> None:
        self._random: Random = random if random is not None else urandom
        self.capabilities: frozenset[str] = _capabilities()

    def _require(self, capability: str, alternatives: tuple[str, ...] = ()) -> None:
        if capability not in self.capabilities:
            raise UnsupportedPrimitive(capability, self.name, alternatives)

    # AEAD -------------------------------------------------------------------------------------
    def aead_seal(
        self, alg: AeadAlgorithm, key: bytes, nonce: bytes, plaintext: BytesLike, aad: bytes
    ) -> bytes:
        check_aead(self.name, alg, key, nonce)
        self._require(alg, _PYCA)
        seal, _ = _AEAD[alg]
        out: bytes = seal(_as_bytes(plaintext), _as_bytes(aad), _as_bytes(nonce), _as_bytes(key))
        return out

    def aead_open(
        self, alg: AeadAlgorithm, key: bytes, nonce: bytes, ciphertext: BytesLike, aad: bytes
    ) -> bytes:
        check_aead(self.name, alg, key, nonce)
        self._require(alg, _PYCA)
        if len(ciphertext) < AEAD_TAG_SIZE:
            raise DecryptionFailed()
        _, open_ = _AEAD[alg]
        try:
            out: bytes = open_(
                _as_bytes(ciphertext), _as_bytes(aad), _as_bytes(nonce), _as_bytes(key)
            )
        except nacl.exceptions.CryptoError:
            raise DecryptionFailed() from None
        return out

    def aead_key(self, alg: AeadAlgorithm, key: bytes) -> AeadKey:
        check_aead_key(self.name, alg, key)
        self._require(alg, _PYCA)
        return _PreparedAead(self, alg, key)

    # X25519 -----------------------------------------------------------------------------------
    def x25519_generate(self) -> tuple[bytes, bytes]:
        private = self._random(X25519_SIZE)
        return private, self.x25519_public(private)

    def x25519_public(self, private: bytes) -> bytes:
        check_size("X25519 private key", private, X25519_SIZE)
        out: bytes = sodium.crypto_scalarmult_base(private)
        return out

    def x25519(self, private: bytes, public: bytes) -> bytes:
        check_size("X25519 private key", private, X25519_SIZE)
        if len(public) != X25519_SIZE:
            raise MalformedKey("X25519 public key must be 32 bytes")
        try:  # libsodium itself fails on the all-zero output
            shared: bytes = sodium.crypto_scalarmult(private, public)
        except nacl.exceptions.CryptoError:
            raise MalformedKey("X25519 public key is of low order") from None
        return reject_zero_shared_secret(shared)

    # Ed25519 ----------------------------------------------------------------------------------
    def ed25519_generate(self) -> tuple[bytes, bytes]:
        seed = self._random(32)
        return seed, self.ed25519_public(seed)

    def ed25519_public(self, seed: bytes) -> bytes:
        check_size("Ed25519 seed", seed, 32)
        public: bytes = sodium.crypto_sign_seed_keypair(seed)[0]
        return public

    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes:
        check_size("Ed25519 seed", seed, 32)
        _, secret = sodium.crypto_sign_seed_keypair(seed)
        signed: bytes = sodium.crypto_sign(message, secret)
        return signed[: sodium.crypto_sign_BYTES]

    def ed25519_verify(self, public: bytes, message: bytes, signature: bytes) -> bool:
        if len(public) != 32 or len(signature) != 64:
            return False
        try:
            sodium.crypto_sign_open(signature + message, public)
        except nacl.exceptions.CryptoError:
            return False
        return True

    # Hashes, MAC, KDFs --------------------------------------------------------------------------
    def hash(self, alg: Literal["sha256", "sha512", "blake2b"], data: bytes) -> bytes:
        if alg == "sha256":
            out: bytes = sodium.crypto_hash_sha256(data)
        elif alg == "sha512":
            out = sodium.crypto_hash_sha512(data)
        elif alg == "blake2b":
            out = sodium.crypto_generichash_blake2b_salt_personal(data, digest_size=64)
        else:
            raise UnsupportedPrimitive(alg, self.name, ("sha256", "sha512", "blake2b"))
        return out

    def hmac_sha256(self, key: bytes, data: bytes) -> bytes:
        return _hmac_sha256(key, data)

    def hkdf_sha256(self, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
        """RFC 5869 extract-then-expand; an empty salt acts as HashLen zero bytes (§2.2)."""
        check_hkdf_length(length)
        prk = _hmac_sha256(salt or bytes(32), ikm)
        blocks: list[bytes] = []
        previous = b""
        for counter in range(1, -(-length // 32) + 1):
            previous = _hmac_sha256(prk, previous + info + bytes((counter,)))
            blocks.append(previous)
        return b"".join(blocks)[:length]

    def scrypt(self, password: bytes, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
        self._require("scrypt", _PYCA)
        if n < 2 or n & (n - 1) or r < 1 or p < 1 or length < 1:
            raise CryptoUsageError("invalid scrypt parameters")
        maxmem = 128 * r * (n + p + 2) + (1 << 16)  # what escrypt allocates, plus slack
        try:
            out: bytes = sodium.crypto_pwhash_scryptsalsa208sha256_ll(
                password, salt, n, r, p, dklen=length, maxmem=maxmem
            )
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise CryptoUsageError(f"invalid scrypt parameters: {exc}") from exc
        return out

    # ML-KEM-768: not in libsodium --------------------------------------------------------------
    def _no_mlkem(self) -> UnsupportedPrimitive:
        return UnsupportedPrimitive("ml-kem-768", self.name, _PYCA)

    def mlkem768_generate(self) -> tuple[bytes, bytes]:
        raise self._no_mlkem()

    def mlkem768_public(self, seed: bytes) -> bytes:
        raise self._no_mlkem()

    def mlkem768_encapsulate(self, public: bytes) -> tuple[bytes, bytes]:
        raise self._no_mlkem()

    def mlkem768_decapsulate(self, seed: bytes, ciphertext: bytes) -> bytes:
        raise self._no_mlkem()

    def mlkem768_encapsulation_key(self, public: bytes) -> MlKemEncapsulationKey:
        raise self._no_mlkem()

    def mlkem768_decapsulation_key(self, seed: bytes) -> MlKemDecapsulationKey:
        raise self._no_mlkem()

    # Randomness ---------------------------------------------------------------------------------
    def random(self, n: int) -> bytes:
        if n < 0:
            raise CryptoUsageError("random length must be non-negative")
        return self._random(n)
