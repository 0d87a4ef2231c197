"""ML-KEM-768 cascade layer, Profile-v0 construction (digest §4.3, ``name "ML-KEM-768"``).

Per message::

    shared, encapsulated = ML-KEM-768.Encaps(peer_public)          # 1184 B key -> 1088 B
    key = HKDF-SHA256(ikm=shared[:32], salt=random(16),
                      info="ML-KEM-768-AES-GCM-Cascading-Cipher", L=32)
    ciphertext = AES-256-GCM(key, iv=random(12), aad=b"")           # ct || 16-byte tag

Shapes, for the cascade manager:

* key material: :class:`MlKemKeyMaterial` (``peer_public`` 1184 B to encrypt to, ``own_seed``
  64 B seed-form private key to decrypt with); the same object serves both directions.
* ``MlKemLayer(primitives).encrypt(plaintext, keys) -> (ciphertext, MlKemParameters)``
* ``MlKemLayer(primitives).decrypt(ciphertext, parameters, keys) -> plaintext``
* :class:`MlKemParameters` ``to_v0()`` / ``from_v0()`` give the v0 JSON ``{iv, salt,
  encapsulated}`` integer arrays; ``to_bytes()`` / ``from_bytes()`` the fixed-size binary form
  ``iv || salt || encapsulated`` (1116 B).

Errors: malformed peer key -> :class:`MalformedKey`; wrong-size parameters / encapsulation ->
:class:`MalformedInput`; authentication failure -> :class:`DecryptionFailed`.  A forged
encapsulation decapsulates (implicit rejection) to an unrelated key, so it surfaces as
:class:`DecryptionFailed` from AES-GCM, never as a distinct error.
"""

from __future__ import annotations

__all__ = [
    "HKDF_INFO",
    "LAYER_NAME",
    "LAYER_VERSION",
    "MlKemKeyMaterial",
    "MlKemLayer",
    "MlKemParameters",
]

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from enkrypted_crypto.backends import (
    MLKEM768_CIPHERTEXT_SIZE,
    check_mlkem768_ciphertext,
    check_mlkem768_public,
    check_mlkem768_seed,
)
from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.layers._v0 import from_int_array, to_int_array
from enkrypted_crypto.primitives import Primitives

LAYER_NAME: Final = "ML-KEM-768"
LAYER_VERSION: Final = "1.0.0"
HKDF_INFO: Final = b"ML-KEM-768-AES-GCM-Cascading-Cipher"
IV_SIZE: Final = 12
SALT_SIZE: Final = 16
_SHARED_PREFIX: Final = 32  # "first 32 bytes of the shared secret" (ML-KEM's is exactly 32)
_BINARY_SIZE: Final = IV_SIZE + SALT_SIZE + MLKEM768_CIPHERTEXT_SIZE


@dataclass(frozen=True, slots=True)
class MlKemKeyMaterial:
    """Keys of one session for this layer; checked on construction."""

    peer_public: bytes
    own_seed: bytes

    def __post_init__(self) -> None:
        check_mlkem768_public(self.peer_public)
        check_mlkem768_seed(self.own_seed)


@dataclass(frozen=True, slots=True)
class MlKemParameters:
    """Per-message layer parameters (``layerParameters[i]`` in v0)."""

    iv: bytes
    salt: bytes
    encapsulated: bytes

    def __post_init__(self) -> None:
        if len(self.iv) != IV_SIZE or len(self.salt) != SALT_SIZE:
            raise MalformedInput("ML-KEM layer iv must be 12 bytes and salt 16 bytes")
        check_mlkem768_ciphertext(self.encapsulated)

    def to_v0(self) -> dict[str, list[int]]:
        return {
            "iv": to_int_array(self.iv),
            "salt": to_int_array(self.salt),
            "encapsulated": to_int_array(self.encapsulated),
        }

    @classmethod
    def from_v0(cls, obj: Mapping[str, object]) -> MlKemParameters:
        return cls(
            iv=from_int_array(obj, "iv", IV_SIZE),
            salt=from_int_array(obj, "salt", SALT_SIZE),
            encapsulated=from_int_array(obj, "encapsulated", MLKEM768_CIPHERTEXT_SIZE),
        )

    def to_bytes(self) -> bytes:
        return self.iv + self.salt + self.encapsulated

    @classmethod
    def from_bytes(cls, data: bytes) -> MlKemParameters:
        if len(data) != _BINARY_SIZE:
            raise MalformedInput(f"ML-KEM layer parameters must be {_BINARY_SIZE} bytes")
        return cls(data[:IV_SIZE], data[IV_SIZE:28], data[28:])


class MlKemLayer:
    """Stateless ML-KEM-768 + HKDF-SHA256 + AES-256-GCM layer over a :class:`Primitives`."""

    name: Final = LAYER_NAME
    version: Final = LAYER_VERSION

    def __init__(self, primitives: Primitives) -> None:
        self._p = primitives

    def _key(self, shared: bytes, salt: bytes) -> bytes:
        return self._p.hkdf_sha256(shared[:_SHARED_PREFIX], salt, HKDF_INFO, 32)

    def encrypt(self, plaintext: bytes, keys: MlKemKeyMaterial) -> tuple[bytes, MlKemParameters]:
        shared, encapsulated = self._p.mlkem768_encapsulate(keys.peer_public)
        params = MlKemParameters(
            iv=self._p.random(IV_SIZE), salt=self._p.random(SALT_SIZE), encapsulated=encapsulated
        )
        key = self._key(shared, params.salt)
        return self._p.aead_seal("aes-256-gcm", key, params.iv, plaintext, b""), params

    def decrypt(
        self, ciphertext: bytes, parameters: MlKemParameters, keys: MlKemKeyMaterial
    ) -> bytes:
        shared = self._p.mlkem768_decapsulate(keys.own_seed, parameters.encapsulated)
        key = self._key(shared, parameters.salt)
        return self._p.aead_open("aes-256-gcm", key, parameters.iv, ciphertext, b"")
