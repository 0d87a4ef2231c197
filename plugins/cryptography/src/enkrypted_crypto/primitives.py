"""The small primitives interface every protocol in this package is written against.

Backends (``enkrypted_crypto.backends.pyca``, ``enkrypted_crypto_nacl``) implement
:class:`Primitives`; protocol code (X3DH, Double Ratchet, layers, cascade) never imports a crypto
library directly.  Capability names are the ones manifests declare (:data:`CAPABILITIES`).  A backend
that lacks a primitive does not declare its capability and raises :class:`UnsupportedPrimitive`.

Randomness is injected (:class:`Random`) so deterministic vectors can be produced with a seeded RNG.
"""

from __future__ import annotations

__all__ = [
    "CAPABILITIES",
    "AeadAlgorithm",
    "Primitives",
    "Random",
]

from typing import Final, Literal, Protocol

AeadAlgorithm = Literal["aes-256-gcm", "chacha20-poly1305", "xchacha20-poly1305"]

CAPABILITIES: Final = frozenset(
    {
        "aes-256-gcm",
        "chacha20-poly1305",
        "xchacha20-poly1305",
        "x25519",
        "ed25519",
        "hkdf-sha256",
        "hmac-sha256",
        "sha256",
        "sha512",
        "blake2b",
        "ml-kem-768",
        "scrypt",
    }
)


class Random(Protocol):
    """Source of random bytes (``os.urandom`` in production, seeded in vector tests)."""

    def __call__(self, n: int) -> bytes: ...


class Primitives(Protocol):
    """Byte-in, byte-out primitives.  Keys are raw bytes in their RFC encodings.

    AEAD ``open`` raises the backend's opaque authentication error (a subclass of
    ``enkrypted_crypto.errors.CryptoError``) on any failure.
    """

    name: str
    capabilities: frozenset[str]

    # AEAD ------------------------------------------------------------------------------------
    def aead_seal(
        self, alg: AeadAlgorithm, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes
    ) -> bytes: ...

    def aead_open(
        self, alg: AeadAlgorithm, key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes
    ) -> bytes: ...

    # X25519 / Ed25519 (RFC 7748 / RFC 8032) -------------------------------------------------
    def x25519_generate(self) -> tuple[bytes, bytes]:
        """Returns (private32, public32)."""
        ...

    def x25519_public(self, private: bytes) -> bytes: ...

    def x25519(self, private: bytes, public: bytes) -> bytes:
        """Shared secret; rejects an all-zero result (low-order public key)."""
        ...

    def ed25519_generate(self) -> tuple[bytes, bytes]:
        """Returns (seed32, public32)."""
        ...

    def ed25519_public(self, seed: bytes) -> bytes: ...

    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes: ...

    def ed25519_verify(self, public: bytes, message: bytes, signature: bytes) -> bool: ...

    # Hashes, MAC, KDFs ------------------------------------------------------------------------
    def hash(self, alg: Literal["sha256", "sha512", "blake2b"], data: bytes) -> bytes: ...

    def hmac_sha256(self, key: bytes, data: bytes) -> bytes: ...

    def hkdf_sha256(self, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes: ...

    def scrypt(
        self, password: bytes, salt: bytes, n: int, r: int, p: int, length: int
    ) -> bytes: ...

    # ML-KEM-768 (FIPS 203) ---------------------------------------------------------------------
    def mlkem768_generate(self) -> tuple[bytes, bytes]:
        """Returns (seed64, encapsulation_key1184)."""
        ...

    def mlkem768_public(self, seed: bytes) -> bytes: ...

    def mlkem768_encapsulate(self, public: bytes) -> tuple[bytes, bytes]:
        """Returns (shared_secret32, ciphertext1088); rejects a malformed public key."""
        ...

    def mlkem768_decapsulate(self, seed: bytes, ciphertext: bytes) -> bytes: ...

    # Randomness --------------------------------------------------------------------------------
    def random(self, n: int) -> bytes: ...
