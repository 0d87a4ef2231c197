"""Primitive backends and the size rules every backend enforces.

:class:`~enkrypted_crypto.backends.pyca.PycaPrimitives` (pyca/cryptography, full capability set)
lives here; the PyNaCl backend is the separate ``enkrypted-crypto-nacl`` distribution.  The checks
below are shared so both backends fail the same way on the same input: a wrong-size *local*
argument is :class:`CryptoUsageError`; a wrong-size *peer* value is :class:`MalformedKey` /
:class:`MalformedInput`; anything that fails authentication is :class:`DecryptionFailed`.
"""

from __future__ import annotations

__all__ = [
    "AEAD_KEY_SIZE",
    "AEAD_NONCE_SIZES",
    "AEAD_TAG_SIZE",
    "HKDF_SHA256_MAX_LENGTH",
    "MLKEM768_CIPHERTEXT_SIZE",
    "MLKEM768_PUBLIC_SIZE",
    "MLKEM768_SEED_SIZE",
    "X25519_SIZE",
    "check_aead",
    "check_aead_key",
    "check_hkdf_length",
    "check_mlkem768_ciphertext",
    "check_mlkem768_public",
    "check_mlkem768_seed",
    "check_size",
    "reject_zero_shared_secret",
    "urandom",
]

import hmac
import os
from typing import Final

from enkrypted_crypto.errors import (
    CryptoUsageError,
    MalformedInput,
    MalformedKey,
    UnsupportedPrimitive,
)

AEAD_KEY_SIZE: Final = 32
AEAD_TAG_SIZE: Final = 16
AEAD_NONCE_SIZES: Final = {
    "aes-256-gcm": 12,
    "chacha20-poly1305": 12,  # RFC 8439
    "xchacha20-poly1305": 24,  # draft-irtf-cfrg-xchacha
}
X25519_SIZE: Final = 32
HKDF_SHA256_MAX_LENGTH: Final = 255 * 32  # RFC 5869 §2.3
MLKEM768_SEED_SIZE: Final = 64  # FIPS 203 seed form (d || z)
MLKEM768_PUBLIC_SIZE: Final = 1184
MLKEM768_CIPHERTEXT_SIZE: Final = 1088
_MLKEM768_T_SIZE: Final = 3 * 384  # k = 3 polynomials of 256 12-bit coefficients, then rho
_MLKEM_Q: Final = 3329


def urandom(n: int) -> bytes:
    """Default :class:`~enkrypted_crypto.primitives.Random`: the OS CSPRNG."""
    return os.urandom(n)


def check_size(what: str, value: bytes, size: int) -> None:
    """Raise :class:`CryptoUsageError` if a locally supplied value has the wrong length."""
    if not isinstance(value, bytes | bytearray | memoryview) or len(value) != size:
        raise CryptoUsageError(f"{what} must be {size} bytes")


def check_aead_key(backend: str, alg: str, key: bytes) -> int:
    """Validate an AEAD key: known algorithm, 32 bytes.  Returns the algorithm's nonce size."""
    nonce_size = AEAD_NONCE_SIZES.get(alg)
    if nonce_size is None:
        raise UnsupportedPrimitive(alg, backend, sorted(AEAD_NONCE_SIZES))
    check_size(f"{alg} key", key, AEAD_KEY_SIZE)
    return nonce_size


def check_aead(backend: str, alg: str, key: bytes, nonce: bytes) -> None:
    """Validate an AEAD call: known algorithm, 32-byte key, algorithm's nonce size."""
    check_size(f"{alg} nonce", nonce, check_aead_key(backend, alg, key))


def check_hkdf_length(length: int) -> None:
    if not 0 < length <= HKDF_SHA256_MAX_LENGTH:
        raise CryptoUsageError(f"HKDF-SHA256 output length must be in 1..{HKDF_SHA256_MAX_LENGTH}")


def reject_zero_shared_secret(shared: bytes) -> bytes:
    """RFC 7748 §6.1: an all-zero X25519 output means a low-order peer key; refuse it."""
    if hmac.compare_digest(shared, bytes(len(shared))):
        raise MalformedKey("X25519 public key is of low order")
    return shared


# FIPS 203 §7.2 modulus check without a per-coefficient Python loop.  ``t`` packs 768 12-bit
# coefficients little-endian, two per 3 bytes (b0, b1, b2): c0 = b0 | (b1 & 0xF) << 8 and
# c1 = b1 >> 4 | b2 << 4.  We spread them into 16-bit lanes of one big integer (strided slices and
# ``translate`` run in C), add 4096 - q = 767 to every lane at once, and look at bit 12 of each
# lane: it is set exactly when the coefficient is >= q.  Lanes hold at most 4095 + 767 < 2**16,
# so no carry crosses into the next lane.
_MLKEM768_COEFFS: Final = 2 * _MLKEM768_T_SIZE // 3
_LOW_NIBBLE: Final = bytes(b & 0x0F for b in range(256))
_HIGH_NIBBLE: Final = bytes(b >> 4 for b in range(256))
_LANES_767: Final = int.from_bytes(
    (4096 - _MLKEM_Q).to_bytes(2, "little") * _MLKEM768_COEFFS, "little"
)
_LANES_BIT12: Final = int.from_bytes((1 << 12).to_bytes(2, "little") * _MLKEM768_COEFFS, "little")


def _mlkem768_t_reduced(t: bytes) -> bool:
    b0, b1, b2 = t[0::3], t[1::3], t[2::3]
    lanes = bytearray(4 * len(b0))  # lane 2i = c0 of triple i, lane 2i+1 = c1 (u16 LE each)
    lanes[0::4] = b0
    lanes[1::4] = b1.translate(_LOW_NIBBLE)
    lanes[2::4] = b1.translate(_HIGH_NIBBLE)
    high = bytearray(len(lanes))
    high[2::4] = b2  # b2 in the low byte of lane 2i+1, shifted by 4 below: c1 = b1 >> 4 | b2 << 4
    coefficients = int.from_bytes(lanes, "little") + (int.from_bytes(high, "little") << 4)
    return not (coefficients + _LANES_767) & _LANES_BIT12


def check_mlkem768_public(public: bytes) -> None:
    """Size and FIPS 203 §7.2 modulus check: every 12-bit coefficient of ``t`` must be < q.

    Runs once per received key (prepared keys keep the result); a few microseconds.
    """
    if len(public) != MLKEM768_PUBLIC_SIZE:
        raise MalformedKey(f"ML-KEM-768 public key must be {MLKEM768_PUBLIC_SIZE} bytes")
    if not _mlkem768_t_reduced(bytes(public[:_MLKEM768_T_SIZE])):
        raise MalformedKey("ML-KEM-768 public key is not reduced modulo q")


def check_mlkem768_ciphertext(ciphertext: bytes) -> None:
    if len(ciphertext) != MLKEM768_CIPHERTEXT_SIZE:
        raise MalformedInput(f"ML-KEM-768 ciphertext must be {MLKEM768_CIPHERTEXT_SIZE} bytes")


def check_mlkem768_seed(seed: bytes) -> None:
    check_size("ML-KEM-768 seed", seed, MLKEM768_SEED_SIZE)
