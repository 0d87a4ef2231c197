"""AES-GCM-256 cascade layer: the Profile-v0 construction and the binary-profile variant.

**Profile-v0** (:class:`AesGcmV0Layer`, digest §4.3, ``name "AES-GCM-256"``, version ``2.0.0``)::

    salt = random(16); iv = random(12)
    key = scrypt(UTF-8(password), salt, N=32768, r=8, p=1, dkLen=32)
    aad = UTF-8(JSON.stringify({protocol: "AES-GCM-256-v2.0.0",
                                context: "cascading-cipher-encrypt",
                                timestamp: <ms>, encoding: "binary"}))
    ciphertext = AES-256-GCM(key, iv, aad)                          # ct || 16-byte tag

The timestamp is the one stored in this layer's ``layerMetadata.timestamp``; it is load-bearing
(part of the AAD), so :class:`AesGcmV0Parameters` carries it and ``v0_metadata()`` emits it.

* ``AesGcmV0Layer(p).encrypt(plaintext, AesGcmV0KeyMaterial(password), now_ms=...)
  -> (ciphertext, AesGcmV0Parameters)``
* ``AesGcmV0Layer(p).decrypt(ciphertext, parameters, keys) -> plaintext``
* ``AesGcmV0Parameters.to_v0() -> {iv, salt}``, ``.v0_metadata() -> {algorithm, version,
  timestamp, ...}``, ``AesGcmV0Parameters.from_v0(parameters, metadata)``.

**Binary profile** (:class:`AesGcmSessionLayer`, ``EnkryptedChat-Profile-b1``): no per-message
scrypt.  Once per session each side derives two direction keys from the session secret::

    key[i->r] = HKDF-SHA256(ikm=secret, salt="", info="enkrypted/b1/aes-gcm-256/i->r", L=32)
    key[r->i] = HKDF-SHA256(ikm=secret, salt="", info="enkrypted/b1/aes-gcm-256/r->i", L=32)

so the two peers never seal under the same key (no cross-direction nonce collision, no
reflection).  Each message: random 12-byte nonce, AAD = ``b"EKb1AES" || context`` (``context``
is whatever the cascade binds, e.g. its frame header; empty by default).  Random nonces keep the
layer stateless and safe across restarts; the bound is 2**32 messages per key (NIST SP
800-38D §8.3), far beyond a chat session; a ``rotation-timestamp-broadcast`` starts a new key.

* ``AesGcmSessionLayer(p, AesGcmSessionKeys.derive(p, secret, initiator=True))``
* ``.encrypt(plaintext, aad=b"") -> (ciphertext, AesGcmSessionParameters)``
* ``.decrypt(ciphertext, parameters, aad=b"") -> plaintext``
* ``session_seal(p, key, plaintext, aad)`` / ``session_open(key, ciphertext, parameters, aad)``:
  the same per message under any prepared key; the session's key rotation
  (:mod:`enkrypted_crypto.rotation`) uses them with its current epoch's keys.
* ``AesGcmSessionParameters.to_bytes()`` is the 12-byte nonce; ``from_bytes`` checks its size.
"""

from __future__ import annotations

__all__ = [
    "AAD_PROTOCOL",
    "LAYER_NAME",
    "LAYER_VERSION",
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "AesGcmSessionKeys",
    "AesGcmSessionLayer",
    "AesGcmSessionParameters",
    "AesGcmV0KeyMaterial",
    "AesGcmV0Layer",
    "AesGcmV0Parameters",
    "session_open",
    "session_seal",
    "v0_aad",
]

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from enkrypted_crypto.errors import CryptoUsageError, MalformedInput
from enkrypted_crypto.layers._v0 import from_int_array, to_int_array
from enkrypted_crypto.primitives import AeadKey, BytesLike, Primitives

LAYER_NAME: Final = "AES-GCM-256"
LAYER_VERSION: Final = "2.0.0"
AAD_PROTOCOL: Final = "AES-GCM-256-v2.0.0"
SCRYPT_N: Final = 32768
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
KEY_SIZE: Final = 32
IV_SIZE: Final = 12
SALT_SIZE: Final = 16
_JS_MAX_SAFE_INTEGER: Final = 2**53 - 1
_B1_AAD_PREFIX: Final = b"EKb1AES"
_B1_INFO: Final = {True: b"enkrypted/b1/aes-gcm-256/i->r", False: b"enkrypted/b1/aes-gcm-256/r->i"}


# ----------------------------------------------------------------------------------- Profile-v0
def v0_aad(timestamp_ms: int) -> bytes:
    """Exactly the bytes of the JS ``JSON.stringify`` (compact, insertion order) in UTF-8."""
    if type(timestamp_ms) is not int or not 0 <= timestamp_ms <= _JS_MAX_SAFE_INTEGER:
        raise MalformedInput("AES layer timestamp must be an integer in the JS safe range")
    body = {
        "protocol": AAD_PROTOCOL,
        "context": "cascading-cipher-encrypt",
        "timestamp": timestamp_ms,
        "encoding": "binary",
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class AesGcmV0KeyMaterial:
    """``keys["AES-GCM-256"] = {password: string}`` in v0; scrypt runs over its UTF-8 bytes."""

    password: str

    def __post_init__(self) -> None:
        if not isinstance(self.password, str) or not self.password:
            raise CryptoUsageError("AES layer password must be a non-empty string")


@dataclass(frozen=True, slots=True)
class AesGcmV0Parameters:
    """``layerParameters[i] = {iv, salt}`` plus the load-bearing ``layerMetadata.timestamp``."""

    iv: bytes
    salt: bytes
    timestamp_ms: int

    def __post_init__(self) -> None:
        if len(self.iv) != IV_SIZE or len(self.salt) != SALT_SIZE:
            raise MalformedInput("AES layer iv must be 12 bytes and salt 16 bytes")
        v0_aad(self.timestamp_ms)  # range check

    def to_v0(self) -> dict[str, list[int]]:
        return {"iv": to_int_array(self.iv), "salt": to_int_array(self.salt)}

    def v0_metadata(self) -> dict[str, object]:
        return {
            "algorithm": LAYER_NAME,
            "version": LAYER_VERSION,
            "timestamp": self.timestamp_ms,
            "keyDerivation": "Scrypt",
            "scryptParams": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "dkLen": KEY_SIZE},
        }

    @classmethod
    def from_v0(
        cls, parameters: Mapping[str, object], metadata: Mapping[str, object]
    ) -> AesGcmV0Parameters:
        timestamp = metadata.get("timestamp")
        if type(timestamp) is not int:
            raise MalformedInput("AES layer metadata timestamp must be an integer")
        return cls(
            iv=from_int_array(parameters, "iv", IV_SIZE),
            salt=from_int_array(parameters, "salt", SALT_SIZE),
            timestamp_ms=timestamp,
        )


class AesGcmV0Layer:
    """Profile-v0 AES layer: per-message scrypt from a password (deliberately slow, ~0.1 s)."""

    name: Final = LAYER_NAME
    version: Final = LAYER_VERSION

    def __init__(self, primitives: Primitives) -> None:
        self._p = primitives

    def _key(self, keys: AesGcmV0KeyMaterial, salt: bytes) -> bytes:
        password = keys.password.encode()
        return self._p.scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_SIZE)

    def encrypt(
        self, plaintext: BytesLike, keys: AesGcmV0KeyMaterial, *, now_ms: int
    ) -> tuple[bytes, AesGcmV0Parameters]:
        params = AesGcmV0Parameters(
            iv=self._p.random(IV_SIZE), salt=self._p.random(SALT_SIZE), timestamp_ms=now_ms
        )
        key = self._key(keys, params.salt)
        aad = v0_aad(now_ms)
        return self._p.aead_seal("aes-256-gcm", key, params.iv, plaintext, aad), params

    def decrypt(
        self, ciphertext: BytesLike, parameters: AesGcmV0Parameters, keys: AesGcmV0KeyMaterial
    ) -> bytes:
        key = self._key(keys, parameters.salt)
        aad = v0_aad(parameters.timestamp_ms)
        return self._p.aead_open("aes-256-gcm", key, parameters.iv, ciphertext, aad)


# ------------------------------------------------------------------------------ binary profile
@dataclass(frozen=True, slots=True, repr=False)
class AesGcmSessionKeys:
    """The two direction keys of one session (``repr`` hides them)."""

    send_key: bytes
    receive_key: bytes

    def __post_init__(self) -> None:
        if len(self.send_key) != KEY_SIZE or len(self.receive_key) != KEY_SIZE:
            raise CryptoUsageError("AES session keys must be 32 bytes")
        if self.send_key == self.receive_key:
            raise CryptoUsageError("AES session send and receive keys must differ")

    def __repr__(self) -> str:
        return "AesGcmSessionKeys(<redacted>)"

    @classmethod
    def derive(cls, p: Primitives, session_secret: bytes, *, initiator: bool) -> AesGcmSessionKeys:
        if len(session_secret) < KEY_SIZE:
            raise CryptoUsageError("AES session secret must be at least 32 bytes")
        mine = p.hkdf_sha256(session_secret, b"", _B1_INFO[initiator], KEY_SIZE)
        theirs = p.hkdf_sha256(session_secret, b"", _B1_INFO[not initiator], KEY_SIZE)
        return cls(send_key=mine, receive_key=theirs)


@dataclass(frozen=True, slots=True)
class AesGcmSessionParameters:
    nonce: bytes

    def __post_init__(self) -> None:
        if len(self.nonce) != IV_SIZE:
            raise MalformedInput("AES layer nonce must be 12 bytes")

    def to_bytes(self) -> bytes:
        return self.nonce

    @classmethod
    def from_bytes(cls, data: bytes) -> AesGcmSessionParameters:
        return cls(bytes(data))


class AesGcmSessionLayer:
    """Binary-profile AES layer: one HKDF per session (keys prepared once), random nonce and
    compact AAD per message."""

    name: Final = LAYER_NAME
    version: Final = "b1"

    def __init__(self, primitives: Primitives, keys: AesGcmSessionKeys) -> None:
        self._p = primitives
        self._send = primitives.aead_key("aes-256-gcm", keys.send_key)
        self._receive = primitives.aead_key("aes-256-gcm", keys.receive_key)

    def encrypt(
        self, plaintext: BytesLike, aad: bytes = b""
    ) -> tuple[bytes, AesGcmSessionParameters]:
        return session_seal(self._p, self._send, plaintext, aad)

    def decrypt(
        self, ciphertext: BytesLike, parameters: AesGcmSessionParameters, aad: bytes = b""
    ) -> bytes:
        return session_open(self._receive, ciphertext, parameters, aad)


def session_seal(
    p: Primitives, key: AeadKey, plaintext: BytesLike, aad: bytes = b""
) -> tuple[bytes, AesGcmSessionParameters]:
    """One binary-profile AES message under a prepared key (random nonce, ``"EKb1AES"`` AAD)."""
    params = AesGcmSessionParameters(p.random(IV_SIZE))
    return key.seal(params.nonce, plaintext, _B1_AAD_PREFIX + aad), params


def session_open(
    key: AeadKey, ciphertext: BytesLike, parameters: AesGcmSessionParameters, aad: bytes = b""
) -> bytes:
    """Open what :func:`session_seal` sealed; raises ``DecryptionFailed``."""
    return key.open(parameters.nonce, ciphertext, _B1_AAD_PREFIX + aad)
