"""The small primitives interface every protocol in this package is written against.

Backends (``enkrypted_crypto.backends.pyca``, ``enkrypted_crypto_nacl``) implement
:class:`Primitives`; protocol code (X3DH, Double Ratchet, layers, cascade) never imports a crypto
library directly.  Capability names are the ones manifests declare (:data:`CAPABILITIES`).  A backend
that lacks a primitive does not declare its capability and raises :class:`UnsupportedPrimitive`.

Randomness is injected (:class:`Random`) so deterministic vectors can be produced with a seeded RNG.

Prepared keys: :meth:`Primitives.aead_key`, :meth:`Primitives.mlkem768_encapsulation_key` and
:meth:`Primitives.mlkem768_decapsulation_key` do the per-key work once (cipher context, FIPS 203
§7.2 modulus check and parsing of a peer key, expansion of a seed) and return an opaque object that
sessions keep for as long as they use the key.  The byte-level calls stay for one-off use.
"""

from __future__ import annotations

__all__ = [
    "CAPABILITIES",
    "AeadAlgorithm",
    "AeadKey",
    "BytesLike",
    "MlKemDecapsulationKey",
    "MlKemEncapsulationKey",
    "Primitives",
    "Random",
]

from typing import Final, Literal, Protocol, TypeAlias

AeadAlgorithm = Literal["aes-256-gcm", "chacha20-poly1305", "xchacha20-poly1305"]

BytesLike: TypeAlias = bytes | bytearray | memoryview
"""Message bodies may be passed as views (e.g. a slice of a received frame) to avoid copies."""

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
        "mls-suite-1",
        "scrypt",
    }
)
"""``mls-suite-1``: RFC 9420 cipher suite 1 for the MLS layer, whose engine
(:mod:`enkrypted_crypto.mls`) uses pyca/cryptography directly (HPKE has no place in this
interface); only the pyca backend declares it."""


class Random(Protocol):
    """Source of random bytes (``os.urandom`` in production, seeded in vector tests)."""

    def __call__(self, n: int) -> bytes: ...


class AeadKey(Protocol):
    """An AEAD key with its cipher context prepared once (:meth:`Primitives.aead_key`).

    ``open`` raises the one opaque :class:`~enkrypted_crypto.errors.DecryptionFailed`.
    """

    @property
    def algorithm(self) -> AeadAlgorithm: ...

    def seal(self, nonce: bytes, plaintext: BytesLike, aad: bytes) -> bytes: ...

    def open(self, nonce: bytes, ciphertext: BytesLike, aad: bytes) -> bytes: ...


class MlKemEncapsulationKey(Protocol):
    """A peer's ML-KEM-768 encapsulation key, checked (size, FIPS 203 §7.2) and parsed once."""

    def public_bytes(self) -> bytes: ...

    def encapsulate(self) -> tuple[bytes, bytes]:
        """Returns (shared_secret32, ciphertext1088)."""
        ...


class MlKemDecapsulationKey(Protocol):
    """Our ML-KEM-768 decapsulation key, expanded from its 64-byte seed once."""

    def public_bytes(self) -> bytes: ...

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """Implicit rejection (FIPS 203 §6.3): a forged ciphertext yields an unrelated secret."""
        ...


class Primitives(Protocol):
    """Byte-in, byte-out primitives.  Keys are raw bytes in their RFC encodings.

    AEAD ``open`` raises the backend's opaque authentication error (a subclass of
    ``enkrypted_crypto.errors.CryptoError``) on any failure.
    """

    name: str
    capabilities: frozenset[str]

    # AEAD ------------------------------------------------------------------------------------
    def aead_seal(
        self, alg: AeadAlgorithm, key: bytes, nonce: bytes, plaintext: BytesLike, aad: bytes
    ) -> bytes: ...

    def aead_open(
        self, alg: AeadAlgorithm, key: bytes, nonce: bytes, ciphertext: BytesLike, aad: bytes
    ) -> bytes: ...

    def aead_key(self, alg: AeadAlgorithm, key: bytes) -> AeadKey:
        """The key with its cipher context prepared, for many messages under one key."""
        ...

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

    def mlkem768_encapsulation_key(self, public: bytes) -> MlKemEncapsulationKey:
        """Check (size, modulus) and parse a peer key once; raises ``MalformedKey``."""
        ...

    def mlkem768_decapsulation_key(self, seed: bytes) -> MlKemDecapsulationKey:
        """Expand our 64-byte seed once; raises ``CryptoUsageError`` for a wrong size."""
        ...

    # Randomness --------------------------------------------------------------------------------
    def random(self, n: int) -> bytes: ...
