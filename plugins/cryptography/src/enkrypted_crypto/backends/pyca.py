"""pyca/cryptography backend: the full :data:`~enkrypted_crypto.primitives.CAPABILITIES` set.

XChaCha20-Poly1305 is not in pyca's AEAD module, so it is built per draft-irtf-cfrg-xchacha §2.3:
HChaCha20 subkey from the first 16 nonce bytes, then ChaCha20-Poly1305 with ``0x00000000 ||
nonce[16:24]``.  HChaCha20 is read off one ChaCha20 block: the block is ``rounds(state) + state``,
and the words HChaCha20 returns (0..3, 12..15) sit where ``state`` is the public constants and
nonce, so subtracting them recovers the rounds output.  Checked against Wycheproof.

Randomness for key generation is drawn from the injected ``random``; ML-KEM encapsulation uses
the library's internal RNG (pyca does not let the FIPS 203 message ``m`` be supplied).

Prepared keys (:meth:`PycaPrimitives.aead_key`, ``mlkem768_*_key``) hold the pyca key objects:
an ``AESGCM``/``ChaCha20Poly1305`` instance (its OpenSSL context is reused), a parsed
``MLKEM768PublicKey`` (our modulus check and pyca's import check ran once), an expanded
``MLKEM768PrivateKey``.  AEAD inputs may be ``memoryview`` slices; pyca reads them in place.

X25519 keeps the one private key object it used last: OpenSSL computes the public key (a scalar
multiplication, as dear as the exchange) whenever a private key is loaded from bytes, and the
Double Ratchet uses each of its keys three times in a row (public key, exchange, and the next
step's exchange), so the step costs one load instead of three.  It holds no key the caller does
not hold too (the ratchet state keeps the same bytes until its next step replaces them).
"""

from __future__ import annotations

__all__ = ["PycaPrimitives"]

import hmac
import struct
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as pyca_hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.mlkem import (
    MLKEM768PrivateKey,
    MLKEM768PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from enkrypted_crypto.backends import (
    AEAD_NONCE_SIZES,
    AEAD_TAG_SIZE,
    X25519_SIZE,
    check_aead,
    check_aead_key,
    check_hkdf_length,
    check_mlkem768_ciphertext,
    check_mlkem768_public,
    check_mlkem768_seed,
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
    CAPABILITIES,
    AeadAlgorithm,
    AeadKey,
    BytesLike,
    MlKemDecapsulationKey,
    MlKemEncapsulationKey,
    Random,
)

_HASHES: Final[dict[str, hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256(),
    "sha512": hashes.SHA512(),
    "blake2b": hashes.BLAKE2b(64),  # BLAKE2b-512, same as libsodium generichash(64)
}
_CHACHA_CONSTANTS: Final = struct.unpack("<4I", b"expand 32-byte k")


def _hchacha20(key: bytes, nonce16: bytes) -> bytes:
    block = Cipher(algorithms.ChaCha20(key, nonce16), mode=None).encryptor().update(bytes(64))
    words = struct.unpack("<16I", block)
    public = _CHACHA_CONSTANTS + struct.unpack("<4I", nonce16)
    positions = (0, 1, 2, 3, 12, 13, 14, 15)
    out = [(words[i] - p) & 0xFFFFFFFF for i, p in zip(positions, public, strict=True)]
    return struct.pack("<8I", *out)


class _PreparedAead:
    """:class:`~enkrypted_crypto.primitives.AeadKey` over one pyca AEAD object."""

    __slots__ = ("_cipher", "_nonce_size", "algorithm")

    def __init__(self, algorithm: AeadAlgorithm, cipher: AESGCM | ChaCha20Poly1305) -> None:
        self.algorithm: AeadAlgorithm = algorithm
        self._cipher = cipher
        self._nonce_size = AEAD_NONCE_SIZES[algorithm]

    def __repr__(self) -> str:
        return f"<prepared {self.algorithm} key>"

    def _check(self, nonce: bytes) -> None:
        if len(nonce) != self._nonce_size:
            raise CryptoUsageError(f"{self.algorithm} nonce must be {self._nonce_size} bytes")

    def seal(self, nonce: bytes, plaintext: BytesLike, aad: bytes) -> bytes:
        self._check(nonce)
        return self._cipher.encrypt(nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: BytesLike, aad: bytes) -> bytes:
        self._check(nonce)
        if len(ciphertext) < AEAD_TAG_SIZE:
            raise DecryptionFailed()
        try:
            return self._cipher.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionFailed() from None


class _PreparedXChaCha:
    """XChaCha20-Poly1305 derives a subkey per nonce, so only the key check is done once."""

    __slots__ = ("_key", "_prims")
    algorithm: Final[AeadAlgorithm] = "xchacha20-poly1305"

    def __init__(self, prims: PycaPrimitives, key: bytes) -> None:
        self._prims = prims
        self._key = bytes(key)

    def __repr__(self) -> str:
        return "<prepared xchacha20-poly1305 key>"

    def seal(self, nonce: bytes, plaintext: BytesLike, aad: bytes) -> bytes:
        return self._prims.aead_seal(self.algorithm, self._key, nonce, plaintext, aad)

    def open(self, nonce: bytes, ciphertext: BytesLike, aad: bytes) -> bytes:
        return self._prims.aead_open(self.algorithm, self._key, nonce, ciphertext, aad)


class _EncapsulationKey:
    """A peer's ML-KEM-768 key after our modulus check and pyca's import (done once)."""

    __slots__ = ("_key", "_public")

    def __init__(self, public: bytes) -> None:
        check_mlkem768_public(public)
        try:  # pyca runs the FIPS 203 §7.2 modulus check on import as well
            self._key = MLKEM768PublicKey.from_public_bytes(bytes(public))
        except ValueError:
            raise MalformedKey("ML-KEM-768 public key is malformed") from None
        self._public = bytes(public)

    def public_bytes(self) -> bytes:
        return self._public

    def encapsulate(self) -> tuple[bytes, bytes]:
        return self._key.encapsulate()


class _DecapsulationKey:
    """Our ML-KEM-768 key expanded from its seed once (``repr`` shows nothing secret)."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        check_mlkem768_seed(seed)
        self._key = MLKEM768PrivateKey.from_seed_bytes(bytes(seed))

    def __repr__(self) -> str:
        return "<ML-KEM-768 decapsulation key>"

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    def decapsulate(self, ciphertext: bytes) -> bytes:
        check_mlkem768_ciphertext(ciphertext)
        # Implicit rejection (FIPS 203 §6.3): a forged ciphertext yields an unrelated secret.
        return self._key.decapsulate(bytes(ciphertext))


class PycaPrimitives:
    """:class:`~enkrypted_crypto.primitives.Primitives` over pyca/cryptography (OpenSSL)."""

    name: str = "pyca"
    capabilities: frozenset[str] = CAPABILITIES

    def __init__(self, random: Random | None = None) -> None:
        self._random: Random = random if random is not None else urandom
        self._x25519_last: tuple[bytes, X25519PrivateKey] | None = None

    # AEAD -------------------------------------------------------------------------------------
    def _aead(
        self, alg: AeadAlgorithm, key: bytes, nonce: bytes
    ) -> tuple[AESGCM | ChaCha20Poly1305, bytes]:
        check_aead(self.name, alg, key, nonce)
        if alg == "aes-256-gcm":
            return AESGCM(key), nonce
        if alg == "chacha20-poly1305":
            return ChaCha20Poly1305(key), nonce
        subkey = _hchacha20(key, nonce[:16])
        return ChaCha20Poly1305(subkey), bytes(4) + nonce[16:]

    def aead_seal(
        self, alg: AeadAlgorithm, key: bytes, nonce: bytes, plaintext: BytesLike, aad: bytes
    ) -> bytes:
        cipher, inner_nonce = self._aead(alg, key, nonce)
        return cipher.encrypt(inner_nonce, plaintext, aad)

    def aead_open(
        self, alg: AeadAlgorithm, key: bytes, nonce: bytes, ciphertext: BytesLike, aad: bytes
    ) -> bytes:
        cipher, inner_nonce = self._aead(alg, key, nonce)
        if len(ciphertext) < AEAD_TAG_SIZE:
            raise DecryptionFailed()
        try:
            return cipher.decrypt(inner_nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionFailed() from None

    def aead_key(self, alg: AeadAlgorithm, key: bytes) -> AeadKey:
        check_aead_key(self.name, alg, key)
        if alg == "aes-256-gcm":
            return _PreparedAead(alg, AESGCM(bytes(key)))
        if alg == "chacha20-poly1305":
            return _PreparedAead(alg, ChaCha20Poly1305(bytes(key)))
        return _PreparedXChaCha(self, key)

    # X25519 -----------------------------------------------------------------------------------
    def x25519_generate(self) -> tuple[bytes, bytes]:
        private = self._random(X25519_SIZE)
        return private, self.x25519_public(private)

    def _x25519_private(self, private: bytes) -> X25519PrivateKey:
        """The key object of ``private``: the one used last when it is the same key (see the
        module docstring), else loaded from the bytes and kept in its place."""
        check_size("X25519 private key", private, X25519_SIZE)
        last = self._x25519_last
        if last is not None and hmac.compare_digest(last[0], private):
            return last[1]
        key = X25519PrivateKey.from_private_bytes(private)
        self._x25519_last = (bytes(private), key)
        return key

    def x25519_public(self, private: bytes) -> bytes:
        return self._x25519_private(private).public_key().public_bytes_raw()

    def x25519(self, private: bytes, public: bytes) -> bytes:
        key = self._x25519_private(private)
        if len(public) != X25519_SIZE:
            raise MalformedKey("X25519 public key must be 32 bytes")
        peer = X25519PublicKey.from_public_bytes(public)
        try:
            shared = key.exchange(peer)
        except ValueError:  # OpenSSL refuses the all-zero output itself
            raise MalformedKey("X25519 public key is of low order") from None
        return reject_zero_shared_secret(shared)

    # Ed25519 ----------------------------------------------------------------------------------
    def ed25519_generate(self) -> tuple[bytes, bytes]:
        seed = self._random(32)
        return seed, self.ed25519_public(seed)

    def ed25519_public(self, seed: bytes) -> bytes:
        check_size("Ed25519 seed", seed, 32)
        return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()

    def ed25519_sign(self, seed: bytes, message: bytes) -> bytes:
        check_size("Ed25519 seed", seed, 32)
        return Ed25519PrivateKey.from_private_bytes(seed).sign(message)

    def ed25519_verify(self, public: bytes, message: bytes, signature: bytes) -> bool:
        if len(public) != 32 or len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    # Hashes, MAC, KDFs --------------------------------------------------------------------------
    def hash(self, alg: Literal["sha256", "sha512", "blake2b"], data: bytes) -> bytes:
        algorithm = _HASHES.get(alg)
        if algorithm is None:
            raise UnsupportedPrimitive(alg, self.name, sorted(_HASHES))
        digest = hashes.Hash(algorithm)
        digest.update(data)
        return digest.finalize()

    def hmac_sha256(self, key: bytes, data: bytes) -> bytes:
        mac = pyca_hmac.HMAC(key, hashes.SHA256())
        mac.update(data)
        return mac.finalize()

    def hkdf_sha256(self, ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
        check_hkdf_length(length)
        # An empty salt is RFC 5869's "not provided" (HashLen zeros give the same HMAC key).
        return HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)

    def scrypt(self, password: bytes, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
        try:
            return Scrypt(salt=salt, length=length, n=n, r=r, p=p).derive(password)
        except (ValueError, TypeError) as exc:
            raise CryptoUsageError(f"invalid scrypt parameters: {exc}") from exc

    # ML-KEM-768 (FIPS 203) ----------------------------------------------------------------------
    def mlkem768_generate(self) -> tuple[bytes, bytes]:
        seed = self._random(64)
        return seed, self.mlkem768_public(seed)

    def mlkem768_public(self, seed: bytes) -> bytes:
        check_mlkem768_seed(seed)
        return MLKEM768PrivateKey.from_seed_bytes(seed).public_key().public_bytes_raw()

    def mlkem768_encapsulate(self, public: bytes) -> tuple[bytes, bytes]:
        return _EncapsulationKey(public).encapsulate()

    def mlkem768_decapsulate(self, seed: bytes, ciphertext: bytes) -> bytes:
        check_mlkem768_seed(seed)
        check_mlkem768_ciphertext(ciphertext)
        return _DecapsulationKey(seed).decapsulate(ciphertext)

    def mlkem768_encapsulation_key(self, public: bytes) -> MlKemEncapsulationKey:
        return _EncapsulationKey(public)

    def mlkem768_decapsulation_key(self, seed: bytes) -> MlKemDecapsulationKey:
        return _DecapsulationKey(seed)

    # Randomness ---------------------------------------------------------------------------------
    def random(self, n: int) -> bytes:
        if n < 0:
            raise CryptoUsageError("random length must be non-negative")
        return self._random(n)
