"""The two wire profiles of a sealed cascade (``docs/protocol.md`` §Profiles).

* ``EnkryptedChat-Profile-v0`` — the spec's JSON ``encryptedMessage`` (digest §6, P5.3): byte
  strings as arrays of integers, ``layers`` metadata, ``layerParameters``, sizes, timestamp.
  Golden vectors V1-V3 and V7 (digest §11) pin it.
* ``EnkryptedChat-Profile-b1`` — our compact binary frame, the default between our peers: same
  layers, no JSON, no per-message scrypt or encapsulation; encoding copies the ciphertext once
  (into the frame), decoding not at all (the outer layer reads a view of the frame)::

      0      version      0xB1
      1      layer count  n (1..4)
      2..9   timestamp    u64 big-endian, ms on the sender's clock
      then n times, innermost layer first:
             layer id     u8  (MLS 1, Signal 2, ML-KEM 3, AES 4)
             params len   u16 big-endian
             params       layer-specific bytes
      rest   final ciphertext

Control PDUs (``rotation-timestamp-broadcast``, :mod:`enkrypted_crypto.rotation`) travel next to
sealed messages: in Profile-v0 the JSON object ``{"type":"rotation-timestamp-broadcast",
"timestamp":T,"mac":[32 bytes]}``; in Profile-b1 a 43-byte frame whose layer count is 0 (a data
frame has 1..4)::

      0      version      0xB1
      1      layer count  0 (control frame)
      2      kind         0x01 rotation-timestamp-broadcast
      3..10  timestamp    u64 big-endian, ms (1..2**53-1)
      11..42 mac          HMAC-SHA256, 32 bytes

Every decoder bounds its input (:class:`~enkrypted_crypto.limits.Limits`) before parsing and
raises :class:`~enkrypted_crypto.errors.MalformedInput`; the session turns that into the one
opaque ``DecryptionFailed``.
"""

from __future__ import annotations

__all__ = [
    "B1_CONTROL_ROTATION",
    "B1_VERSION",
    "PROFILES",
    "PROFILE_B1",
    "PROFILE_V0",
    "B1Codec",
    "ProfileCodec",
    "V0Codec",
    "chunk_count",
    "codec_for",
    "split_chunks",
]

import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from .cascade import CascadeLayer, LayerRecord, SealedCascade
from .errors import CryptoUsageError, MalformedInput
from .jsonbounds import check_json_bounds
from .limits import DEFAULT_LIMITS, Limits
from .primitives import BytesLike
from .rotation import ROTATION_TYPE, RotationAnnouncement
from .session_layers import LAYER_IDS, PROFILE_B1, PROFILE_V0

PROFILES: Final = (PROFILE_B1, PROFILE_V0)
"""All profiles this package speaks, most preferred first."""

B1_VERSION: Final = 0xB1
B1_CONTROL_ROTATION: Final = 0x01
_B1_HEAD: Final = struct.Struct(">BBQ")
_B1_LAYER: Final = struct.Struct(">BH")
_B1_CONTROL: Final = struct.Struct(">BBBQ32s")
_ROTATION_KEYS: Final = frozenset({"type", "timestamp", "mac"})
_JS_SAFE: Final = 2**53 - 1
_ENVELOPE_KEYS: Final = frozenset({"encrypted", "cascaded", "chunked", "cascadedPayload"})
_PAYLOAD_KEYS: Final = frozenset(
    {
        "finalCiphertext",
        "layers",
        "layerParameters",
        "totalProcessingTime",
        "originalSize",
        "finalSize",
        "timestamp",
    }
)


class ProfileCodec(Protocol):
    """Turns a :class:`SealedCascade` into wire bytes and back for one session's layers."""

    @property
    def name(self) -> str: ...

    def encode(self, sealed: SealedCascade, layers: Sequence[CascadeLayer]) -> bytes: ...

    def decode(self, data: bytes, layers: Sequence[CascadeLayer]) -> SealedCascade: ...

    def is_control(self, data: bytes) -> bool:
        """Whether ``data`` is framed as a control PDU (says nothing about its validity)."""
        ...

    def encode_rotation(self, announcement: RotationAnnouncement) -> bytes: ...

    def decode_rotation(self, data: bytes) -> RotationAnnouncement: ...


def chunk_count(size: int, limits: Limits = DEFAULT_LIMITS) -> int:
    """Chunks of ``finalCiphertext`` for ``size`` bytes (P5.5; vector V7: 9000 -> 2)."""
    return max(1, math.ceil(size / limits.wire.chunk_bytes))


def split_chunks(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[bytes]:
    """Split into ``WireLimits.chunk_bytes`` pieces; refuses more than
    ``WireLimits.max_chunks_per_message`` (P8.2, P8.3)."""
    step = limits.wire.chunk_bytes
    if chunk_count(len(data), limits) > limits.wire.max_chunks_per_message:
        raise CryptoUsageError("message needs more chunks than P8.3 allows")
    return [data[i : i + step] for i in range(0, max(len(data), 1), step)]


# ------------------------------------------------------------------------------------ Profile-v0
class V0Codec:
    """``encryptedMessage`` JSON (digest §6) in UTF-8, compact separators."""

    name: Final = PROFILE_V0

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits

    def encrypted_message(
        self, sealed: SealedCascade, layers: Sequence[CascadeLayer]
    ) -> dict[str, object]:
        """The ``encryptedMessage`` object (V3 shape), key order as the JS manager builds it."""
        metas, params = [], []
        for layer, record in zip(layers, sealed.records, strict=True):
            meta: dict[str, object] = {
                "algorithm": layer.algorithm,
                "version": layer.version,
                "timestamp": record.timestamp_ms,
                "inputSize": record.input_size,
                "outputSize": record.output_size,
                "processingTime": 0,  # timing is a side channel; the spec calls it informative
            }
            extra = layer.metadata_to_v0(record.parameters)
            if extra:
                meta["metadata"] = extra
            metas.append(meta)
            params.append(layer.params_to_v0(record.parameters))
        payload = {
            "finalCiphertext": list(sealed.final_ciphertext),
            "layers": metas,
            "layerParameters": params,
            "totalProcessingTime": 0,
            "originalSize": sealed.original_size,
            "finalSize": len(sealed.final_ciphertext),
            "timestamp": sealed.timestamp_ms,
        }
        return {"encrypted": True, "cascaded": True, "cascadedPayload": payload}

    def encode(self, sealed: SealedCascade, layers: Sequence[CascadeLayer]) -> bytes:
        body = self.encrypted_message(sealed, layers)
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    def decode(self, data: bytes, layers: Sequence[CascadeLayer]) -> SealedCascade:
        limits = self._limits
        if len(data) > limits.max_pdu_bytes:  # P8.1: reject before parsing
            raise MalformedInput("PDU larger than 16 MiB")
        data = bytes(data)
        check_json_bounds(  # P8.4: no huge numbers of objects or deep nesting before json.loads
            data,
            max_depth=limits.max_json_depth,
            max_containers=limits.max_json_containers,
            max_strings=limits.max_json_strings,
        )
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):
            raise MalformedInput("encryptedMessage is not JSON") from None
        payload = _v0_payload(message)
        records = self._records(payload, layers, limits.max_layer_params)
        ciphertext = _byte_array(payload.get("finalCiphertext"), "finalCiphertext")
        original, final = payload.get("originalSize"), payload.get("finalSize")
        if final != len(ciphertext) or not _is_size(original):
            raise MalformedInput("cascadedPayload sizes are inconsistent")
        timestamp = payload.get("timestamp", 0)
        if not _is_size(timestamp):
            raise MalformedInput("cascadedPayload timestamp must be an integer")
        return SealedCascade(ciphertext, records, original, timestamp)  # type: ignore[arg-type]

    def is_control(self, data: bytes) -> bool:
        if len(data) > self._limits.max_control_pdu_bytes:
            return False
        try:
            check_json_bounds(bytes(data), max_depth=self._limits.max_json_depth)
            obj = json.loads(bytes(data))
        except (MalformedInput, ValueError, RecursionError):
            return False
        return isinstance(obj, dict) and obj.get("type") == ROTATION_TYPE

    def encode_rotation(self, announcement: RotationAnnouncement) -> bytes:
        body = {
            "type": ROTATION_TYPE,
            "timestamp": announcement.timestamp_ms,
            "mac": list(announcement.mac),
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def decode_rotation(self, data: bytes) -> RotationAnnouncement:
        if len(data) > self._limits.max_control_pdu_bytes:
            raise MalformedInput("control PDU too large")
        check_json_bounds(bytes(data), max_depth=self._limits.max_json_depth)
        try:
            obj = json.loads(bytes(data))
        except (ValueError, RecursionError):
            raise MalformedInput("control PDU is not JSON") from None
        if not isinstance(obj, dict) or set(obj) != _ROTATION_KEYS:
            raise MalformedInput("rotation PDU must have exactly type, timestamp and mac")
        mac = obj["mac"]
        if obj["type"] != ROTATION_TYPE or not isinstance(mac, list):
            raise MalformedInput("not a rotation-timestamp-broadcast PDU")
        if not all(type(b) is int for b in mac):  # no true/false standing in for 1/0
            raise MalformedInput("mac must hold integers 0..255")
        return RotationAnnouncement(obj["timestamp"], _byte_array(mac, "mac"))

    def _records(
        self, payload: Mapping[str, object], layers: Sequence[CascadeLayer], max_params: int
    ) -> tuple[LayerRecord, ...]:
        metas, params = payload.get("layers"), payload.get("layerParameters")
        if not (isinstance(metas, list) and isinstance(params, list)):
            raise MalformedInput("cascadedPayload needs layers and layerParameters arrays")
        if not len(metas) == len(params) == len(layers):  # digest §4.2: counts must match
            raise MalformedInput("layer count does not match the session")
        return tuple(
            _v0_record(layer, m, p, max_params)
            for layer, m, p in zip(layers, metas, params, strict=True)
        )


def _v0_payload(message: object) -> Mapping[str, object]:
    """P5.3: known keys only, required ones present (fail closed on anything else)."""
    if not isinstance(message, dict) or message.get("encrypted") is not True:
        raise MalformedInput("not an encryptedMessage")
    if (
        message.get("cascaded") is not True
        or message.get("chunked")
        or set(message) - _ENVELOPE_KEYS
    ):
        raise MalformedInput("only complete cascaded messages are decoded here")
    payload = message.get("cascadedPayload")
    if not isinstance(payload, dict) or set(payload) - _PAYLOAD_KEYS:
        raise MalformedInput("cascadedPayload missing or with unknown fields")
    # P5.3 says MUST, but golden vector V3 omits it; it is informative, so only type-checked.
    if type(payload.get("totalProcessingTime", 0)) not in (int, float):
        raise MalformedInput("cascadedPayload.totalProcessingTime must be a number")
    return payload


def _v0_record(layer: CascadeLayer, meta: object, params: object, max_params: int) -> LayerRecord:
    if not (isinstance(meta, dict) and isinstance(params, dict)):
        raise MalformedInput("layer metadata and parameters must be objects")
    extra = meta.get("metadata", {})
    if len(params) > max_params or (isinstance(extra, dict) and len(extra) > max_params):
        raise MalformedInput("too many layer parameters")
    if meta.get("algorithm") != layer.algorithm or meta.get("version") != layer.version:
        raise MalformedInput("layer algorithm/version does not match the session's layer")
    timestamp, in_size, out_size = (meta.get(k) for k in ("timestamp", "inputSize", "outputSize"))
    if not (_is_size(timestamp) and _is_size(in_size) and _is_size(out_size)):
        raise MalformedInput("layer metadata fields must be non-negative integers")
    parsed = layer.params_from_v0(params, meta)
    return LayerRecord(layer.name, parsed, timestamp, in_size, out_size)  # type: ignore[arg-type]


def _is_size(value: object) -> bool:
    return type(value) is int and 0 <= value <= _JS_SAFE


def _byte_array(value: object, field: str) -> bytes:
    if not isinstance(value, list):
        raise MalformedInput(f"{field} must be an array of bytes")
    try:
        return bytes(value)  # ValueError outside 0..255, TypeError for non-integers
    except (TypeError, ValueError):
        raise MalformedInput(f"{field} must hold integers 0..255") from None


# ------------------------------------------------------------------------------------ Profile-b1
class B1Codec:
    """Binary frame (module docstring); decoding slices a memoryview and copies no ciphertext."""

    name: Final = PROFILE_B1

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits

    def encode(self, sealed: SealedCascade, layers: Sequence[CascadeLayer]) -> bytes:
        parts: list[BytesLike] = [_B1_HEAD.pack(B1_VERSION, len(layers), sealed.timestamp_ms)]
        for layer, record in zip(layers, sealed.records, strict=True):
            params = layer.params_to_bytes(record.parameters)
            parts += [_B1_LAYER.pack(LAYER_IDS[layer.name], len(params)), params]
        parts.append(sealed.final_ciphertext)
        return b"".join(parts)

    def decode(self, data: bytes, layers: Sequence[CascadeLayer]) -> SealedCascade:
        if len(data) > self._limits.max_pdu_bytes:
            raise MalformedInput("PDU larger than 16 MiB")
        view = memoryview(data)
        try:
            version, count, timestamp = _B1_HEAD.unpack_from(view, 0)
        except struct.error:
            raise MalformedInput("binary frame too short") from None
        if version != B1_VERSION or count != len(layers):
            raise MalformedInput("unknown frame version or wrong layer count")
        offset = _B1_HEAD.size
        records = []
        for layer in layers:
            params, offset = _b1_layer(view, offset, layer)
            records.append(LayerRecord(layer.name, params, timestamp, None, None))
        return SealedCascade(view[offset:], tuple(records), None, timestamp)

    def is_control(self, data: bytes) -> bool:
        return len(data) >= 2 and data[0] == B1_VERSION and data[1] == 0

    def encode_rotation(self, announcement: RotationAnnouncement) -> bytes:
        return _B1_CONTROL.pack(
            B1_VERSION, 0, B1_CONTROL_ROTATION, announcement.timestamp_ms, announcement.mac
        )

    def decode_rotation(self, data: bytes) -> RotationAnnouncement:
        if len(data) != _B1_CONTROL.size:
            raise MalformedInput("rotation frame must be 43 bytes")
        version, count, kind, timestamp, mac = _B1_CONTROL.unpack(data)
        if (version, count, kind) != (B1_VERSION, 0, B1_CONTROL_ROTATION):
            raise MalformedInput("not a rotation control frame")
        return RotationAnnouncement(timestamp, mac)


def _b1_layer(view: memoryview, offset: int, layer: CascadeLayer) -> tuple[object, int]:
    try:
        layer_id, size = _B1_LAYER.unpack_from(view, offset)
    except struct.error:
        raise MalformedInput("binary frame truncated in the layer table") from None
    offset += _B1_LAYER.size
    if layer_id != LAYER_IDS[layer.name] or offset + size > len(view):
        raise MalformedInput("binary frame layer table does not match the session")
    return layer.params_from_bytes(bytes(view[offset : offset + size])), offset + size


def codec_for(profile: str, limits: Limits = DEFAULT_LIMITS) -> ProfileCodec:
    """The codec of a negotiated profile."""
    if profile == PROFILE_V0:
        return V0Codec(limits)
    if profile == PROFILE_B1:
        return B1Codec(limits)
    raise CryptoUsageError(f"unknown wire profile {profile!r}; known: {list(PROFILES)}")
