"""Handshake PDUs (digest §5 P3.2 step names; field sets are ours, P4.13 being a [GAP]).

Every PDU is a UTF-8 JSON object with a string ``type`` and byte strings as integer arrays
(digest §6, P1.0).  Parsing is strict and bounded; anything off raises :class:`MalformedInput`.
``docs/protocol.md`` §Handshake lists the fields byte by byte.
"""

from __future__ import annotations

__all__ = [
    "HANDSHAKE_VERSION",
    "KeyExchangeRequest",
    "KeyExchangeResponse",
    "MLS_PAYLOAD_FIELDS",
    "MlKemEncapsulation",
    "MlKemKeyExchange",
    "MlsKeyPackageRequest",
    "MlsPayload",
    "MlsWelcomeAck",
    "Offer",
    "ProtocolError",
    "SessionComplete",
    "canonical",
    "parse_pdu",
]

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .errors import MalformedInput
from .jsonbounds import check_json_bounds
from .limits import DEFAULT_LIMITS, Limits
from .x3dh import PublicIdentity

HANDSHAKE_VERSION: Final = "1"
_MAX_LIST: Final = 32
_MAX_STR: Final = 128
_MAX_MESSAGE: Final = 512
MLKEM_PUBLIC_SIZE: Final = 1184
MLKEM_CIPHERTEXT_SIZE: Final = 1088


def canonical(obj: Mapping[str, object]) -> bytes:
    """The bytes the transcript hashes: sorted keys, compact, ASCII (our own JSON form)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _bytes(obj: Mapping[str, object], name: str, size: int) -> bytes:
    value = obj.get(name)
    if not isinstance(value, list) or len(value) != size:
        raise MalformedInput(f"{name!r} must be an array of {size} bytes")
    try:
        return bytes(value)
    except (TypeError, ValueError):
        raise MalformedInput(f"{name!r} must hold integers 0..255") from None


def _var_bytes(obj: Mapping[str, object], name: str, max_size: int) -> bytes:
    value = obj.get(name)
    if not isinstance(value, list) or len(value) > max_size:
        raise MalformedInput(f"{name!r} must be an array of at most {max_size} bytes")
    return _bytes(obj, name, len(value))


def _str(obj: Mapping[str, object], name: str, max_len: int = _MAX_STR) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or len(value) > max_len:
        raise MalformedInput(f"{name!r} must be a string of at most {max_len} characters")
    return value


def _str_list(obj: Mapping[str, object], name: str) -> tuple[str, ...]:
    value = obj.get(name)
    if not isinstance(value, list) or len(value) > _MAX_LIST:
        raise MalformedInput(f"{name!r} must be a list of at most {_MAX_LIST} strings")
    if not all(isinstance(v, str) and len(v) <= _MAX_STR for v in value):
        raise MalformedInput(f"{name!r} must hold short strings")
    return tuple(value)


def _identity_fields(identity: PublicIdentity) -> dict[str, object]:
    return {
        "identityKey": list(identity.signing_public),
        "identityDhKey": list(identity.dh_public),
        "identitySignature": list(identity.binding_signature),
    }


def _identity(obj: Mapping[str, object]) -> PublicIdentity:
    return PublicIdentity(
        _bytes(obj, "identityKey", 32),
        _bytes(obj, "identityDhKey", 32),
        _bytes(obj, "identitySignature", 64),
    )


@dataclass(frozen=True, slots=True)
class Offer:
    """What a peer says about itself (DESIGN.md §4, peer <-> peer skew)."""

    versions: tuple[str, ...]
    backend: str
    capabilities: tuple[str, ...]
    profiles: tuple[str, ...]
    layers: tuple[str, ...]
    supported_layers: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "versions": list(self.versions),
            "backend": self.backend,
            "capabilities": list(self.capabilities),
            "profiles": list(self.profiles),
            "layers": list(self.layers),
            "supportedLayers": list(self.supported_layers),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> Offer:
        return cls(
            _str_list(obj, "versions"),
            _str(obj, "backend"),
            _str_list(obj, "capabilities"),
            _str_list(obj, "profiles"),
            _str_list(obj, "layers"),
            _str_list(obj, "supportedLayers"),
        )


@dataclass(frozen=True, slots=True)
class KeyExchangeRequest:
    """``signal-key-exchange-request``: the first PDU — offer, identity, X3DH ephemeral."""

    TYPE = "signal-key-exchange-request"
    offer: Offer
    identity: PublicIdentity
    ephemeral: bytes

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"type": self.TYPE, **self.offer.to_json()}
        body.update(_identity_fields(self.identity))
        body["ephemeralKey"] = list(self.ephemeral)
        return body

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> KeyExchangeRequest:
        return cls(Offer.from_json(obj), _identity(obj), _bytes(obj, "ephemeralKey", 32))


@dataclass(frozen=True, slots=True)
class KeyExchangeResponse:
    """``signal-key-exchange-response``: the choice, the responder's bundle, its confirmation."""

    TYPE = "signal-key-exchange-response"
    version: str
    profile: str
    layers: tuple[str, ...]
    offer: Offer
    identity: PublicIdentity
    signed_prekey: bytes
    signed_prekey_signature: bytes
    confirmation: bytes = b""

    def body(self) -> dict[str, object]:
        """Everything but ``confirmation`` (what the confirmation MAC covers)."""
        body: dict[str, object] = {"type": self.TYPE, "version": self.version}
        body.update({"profile": self.profile, "layers": list(self.layers)})
        body.update({"offer": self.offer.to_json(), **_identity_fields(self.identity)})
        body["signedPrekey"] = list(self.signed_prekey)
        body["signedPrekeySignature"] = list(self.signed_prekey_signature)
        return body

    def to_json(self) -> dict[str, object]:
        return {**self.body(), "confirmation": list(self.confirmation)}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> KeyExchangeResponse:
        offer = obj.get("offer")
        if not isinstance(offer, dict):
            raise MalformedInput("'offer' must be an object")
        return cls(
            _str(obj, "version"),
            _str(obj, "profile"),
            _str_list(obj, "layers"),
            Offer.from_json(offer),
            _identity(obj),
            _bytes(obj, "signedPrekey", 32),
            _bytes(obj, "signedPrekeySignature", 64),
            _bytes(obj, "confirmation", 32),
        )


@dataclass(frozen=True, slots=True)
class MlKemKeyExchange:
    """``mlkem-key-exchange`` (responder) / ``mlkem-key-exchange-response`` (initiator)."""

    type: str
    public_key: bytes

    def to_json(self) -> dict[str, object]:
        return {"type": self.type, "publicKey": list(self.public_key)}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> MlKemKeyExchange:
        return cls(_str(obj, "type"), _bytes(obj, "publicKey", MLKEM_PUBLIC_SIZE))


@dataclass(frozen=True, slots=True)
class MlKemEncapsulation:
    """``mlkem-key-exchange-response`` in Profile-b1: the initiator's one ML-KEM-768
    encapsulation to the responder's key (instead of a key of its own, as in Profile-v0)."""

    TYPE = "mlkem-key-exchange-response"
    encapsulated: bytes

    def to_json(self) -> dict[str, object]:
        return {"type": self.TYPE, "encapsulated": list(self.encapsulated)}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> MlKemEncapsulation:
        return cls(_bytes(obj, "encapsulated", MLKEM_CIPHERTEXT_SIZE))


@dataclass(frozen=True, slots=True)
class MlsKeyPackageRequest:
    """``mls-key-package-request`` (responder, when MLS is negotiated): asks the initiator for a
    KeyPackage of this cipher suite."""

    TYPE = "mls-key-package-request"
    cipher_suite: int

    def to_json(self) -> dict[str, object]:
        return {"type": self.TYPE, "cipherSuite": self.cipher_suite}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> MlsKeyPackageRequest:
        suite = obj.get("cipherSuite")
        if type(suite) is not int or not 0 < suite < 2**16:
            raise MalformedInput("'cipherSuite' must be an integer 1..65535")
        return cls(suite)


MLS_PAYLOAD_FIELDS: Final = {
    "mls-key-package": ("keyPackage", 2048),
    "mls-commit": ("commit", 4096),
    "mls-welcome": ("welcome", 8192),
}
"""PDU type -> (field, size bound): each carries one MLSMessage (RFC 9420 §6) as bytes; a
two-member group's are about 340, 550 and 860 bytes."""


@dataclass(frozen=True, slots=True)
class MlsPayload:
    """``mls-key-package`` (initiator), ``mls-commit`` and ``mls-welcome`` (responder)."""

    type: str
    message: bytes

    def to_json(self) -> dict[str, object]:
        field, _ = MLS_PAYLOAD_FIELDS[self.type]
        return {"type": self.type, field: list(self.message)}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> MlsPayload:
        kind = _str(obj, "type")
        if kind not in MLS_PAYLOAD_FIELDS:
            raise MalformedInput(f"{kind!r} is not an MLS payload PDU")
        field, size = MLS_PAYLOAD_FIELDS[kind]
        return cls(kind, _var_bytes(obj, field, size))


@dataclass(frozen=True, slots=True)
class MlsWelcomeAck:
    """``mls-welcome-ack`` (initiator): proof it joined epoch 1 of the session's group — the
    MLS-Exporter value of the transcript (``docs/protocol.md`` §2.3)."""

    TYPE = "mls-welcome-ack"
    confirmation: bytes

    def to_json(self) -> dict[str, object]:
        return {"type": self.TYPE, "confirmation": list(self.confirmation)}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> MlsWelcomeAck:
        return cls(_bytes(obj, "confirmation", 32))


@dataclass(frozen=True, slots=True)
class SessionComplete:
    """``signal-session-complete``: the initiator's confirmation as a first ratchet message."""

    TYPE = "signal-session-complete"
    ratchet_message: bytes

    def to_json(self) -> dict[str, object]:
        return {"type": self.TYPE, "ratchetMessage": list(self.ratchet_message)}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> SessionComplete:
        return cls(_var_bytes(obj, "ratchetMessage", 256))


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """``protocol-error`` (digest §6; fields are a [GAP], ours: ``code`` and ``message``)."""

    TYPE = "protocol-error"
    code: str
    message: str

    def to_json(self) -> dict[str, object]:
        return {"type": self.TYPE, "code": self.code, "message": self.message[:_MAX_MESSAGE]}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> ProtocolError:
        return cls(_str(obj, "code"), _str(obj, "message", _MAX_MESSAGE))


def parse_pdu(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, object]:
    """Bound, parse and type-check one handshake PDU's JSON object."""
    if len(data) > limits.max_handshake_pdu_bytes:
        raise MalformedInput("handshake PDU too large")
    data = bytes(data)
    check_json_bounds(data, max_depth=limits.max_json_depth)  # before json.loads (§4: depth bound)
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise MalformedInput("handshake PDU is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise MalformedInput("handshake PDU must be a JSON object with a string 'type'")
    return obj
