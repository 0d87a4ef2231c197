"""PeerJS data-connection conventions (crypto-p2p-anchors.md §3.3, §3.6): signaling payloads per
``connectionId`` and the ``json`` / ``raw`` / ``binary`` serializations with ``__peerData``
chunking, bounded on the receiving side (:class:`~._config.ReassemblyLimits`).
"""

from __future__ import annotations

__all__ = [
    "CHUNKED_MTU",
    "CloseRequested",
    "DataCodec",
    "DataMessage",
    "OfferInfo",
    "Serialization",
    "answer_payload",
    "candidate_payload",
    "new_connection_id",
    "offer_payload",
    "parse_offer",
]

import enum
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import P2PUsageError, RemoteInputError
from ._binarypack import BinaryPackError, pack, unpack
from ._config import ReassemblyLimits

CHUNKED_MTU: Final = 16300
"""peerjs ``chunkedMTU``: binary messages above it are chunked, json ones refused."""
_MAX_CHUNK_DATA: Final = 64 * 1024


class Serialization(enum.StrEnum):
    BINARY = "binary"
    BINARY_UTF8 = "binary-utf8"  # the same BinaryPack class in peerjs 1.5.5
    JSON = "json"
    RAW = "raw"
    DEFAULT = "default"  # = binary

    @classmethod
    def parse(cls, value: object) -> Serialization:
        if not isinstance(value, str) or value not in cls._value2member_map_:
            raise RemoteInputError(f"unknown serialization {value!r}")
        return cls(value)


_B36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_connection_id(kind: str = "data") -> str:
    """``dc_`` (data) or ``mc_`` (media) plus random base36, as peerjs makes them."""
    prefix = {"data": "dc_", "media": "mc_"}.get(kind)
    if prefix is None:
        raise P2PUsageError(f"connection kind must be 'data' or 'media', not {kind!r}")
    return prefix + "".join(secrets.choice(_B36) for _ in range(16))


@dataclass(frozen=True, slots=True)
class OfferInfo:
    """What an OFFER says about the data connection it opens."""

    connection_id: str
    kind: str
    sdp: dict[str, Any]
    label: str
    serialization: Serialization
    reliable: bool
    metadata: Any


def offer_payload(
    sdp: dict[str, Any], connection_id: str, *, label: str | None = None,
    serialization: Serialization = Serialization.BINARY, reliable: bool = False,
    metadata: Any = None,
) -> dict[str, Any]:
    """The OFFER payload of peerjs 1.5.5 for a data connection (``browser`` left out)."""
    if serialization not in Serialization:
        raise P2PUsageError(f"unknown serialization {serialization!r}")
    return {
        "sdp": sdp, "type": "data", "connectionId": connection_id,
        "label": label if label is not None else connection_id,
        "serialization": str(serialization), "reliable": reliable, "metadata": metadata,
    }


def answer_payload(sdp: dict[str, Any], connection_id: str, kind: str = "data") -> dict[str, Any]:
    return {"sdp": sdp, "type": kind, "connectionId": connection_id}


def candidate_payload(candidate: dict[str, Any], connection_id: str, kind: str = "data") -> dict[str, Any]:
    return {"candidate": candidate, "type": kind, "connectionId": connection_id}


def parse_offer(payload: Any) -> OfferInfo:
    """Validate an OFFER payload (accepting the pre-1.5 ``browser`` field and ignoring it)."""
    if not isinstance(payload, dict):
        raise RemoteInputError("OFFER payload is not an object")
    cid, kind, sdp = payload.get("connectionId"), payload.get("type", "data"), payload.get("sdp")
    if not isinstance(cid, str) or not cid or kind not in ("data", "media"):
        raise RemoteInputError("OFFER has no connectionId or an unknown type")
    if not isinstance(sdp, dict) or not isinstance(sdp.get("sdp"), str):
        raise RemoteInputError("OFFER has no session description")
    label = payload.get("label", cid)
    return OfferInfo(
        connection_id=cid, kind=kind, sdp=sdp,
        label=label if isinstance(label, str) else cid,
        serialization=Serialization.parse(payload.get("serialization", "binary"))
        if kind == "data" else Serialization.RAW,
        reliable=bool(payload.get("reliable", False)),
        metadata=payload.get("metadata"),
    )


@dataclass(frozen=True, slots=True)
class DataMessage:
    value: Any


@dataclass(frozen=True, slots=True)
class CloseRequested:
    """The other side sent ``{"__peerData": {"type": "close"}}`` (``close({flush: true})``)."""


@dataclass(slots=True)
class _Partial:
    started: float
    total: int
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


def _is_close(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    marker = value.get("__peerData")
    return isinstance(marker, dict) and marker.get("type") == "close"


class DataCodec:
    """Encoder and bounded decoder of one data connection's serialization (sans-I/O)."""

    def __init__(self, serialization: Serialization, limits: ReassemblyLimits | None = None) -> None:
        self.serialization = Serialization.BINARY if serialization is Serialization.DEFAULT else serialization
        self.limits = limits or ReassemblyLimits()
        self._counter = 1  # peerjs: __peerData starts at 1, one per chunked message
        self._partials: dict[int, _Partial] = {}
        self._pending_bytes = 0
        self.last_message_bytes = 0
        """Wire bytes of the last complete value :meth:`decode` returned (all its chunks)."""

    @property
    def pending(self) -> int:
        return len(self._partials)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    # ------------------------------------------------------------------- send side
    def encode(self, value: Any) -> list[bytes | str]:
        """The data-channel messages that carry ``value``."""
        if self.serialization is Serialization.RAW:
            if not isinstance(value, bytes | str):
                raise P2PUsageError("raw connections send bytes or str")
            return [value]
        if self.serialization is Serialization.JSON:
            data = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            if len(data) >= CHUNKED_MTU:
                raise P2PUsageError("Message too big for JSON channel")
            return [data]  # a binary frame: the browser decodes it with TextDecoder
        packed = pack(value)
        if len(packed) > self.limits.max_message_bytes:
            raise P2PUsageError(f"message of {len(packed)} bytes exceeds the peer's reassembly "
                                f"limit of {self.limits.max_message_bytes}")
        if len(packed) <= CHUNKED_MTU:
            return [packed]
        total = -(-len(packed) // CHUNKED_MTU)
        frames: list[bytes | str] = [
            pack({"__peerData": self._counter, "n": n, "data": packed[start:start + CHUNKED_MTU],
                  "total": total})
            for n, start in enumerate(range(0, len(packed), CHUNKED_MTU))
        ]
        self._counter += 1
        return frames

    def close_message(self) -> bytes | str:
        """What ``close({flush: true})`` sends (raw connections have no close message)."""
        if self.serialization is Serialization.RAW:
            raise P2PUsageError("raw connections have no in-band close")
        marker = {"__peerData": {"type": "close"}}
        return self.encode(marker)[0]

    # ------------------------------------------------------------------- receive side
    def decode(self, frame: bytes | str, now: float) -> DataMessage | CloseRequested | None:
        """One data-channel message in; a complete value, a close request, or None (a chunk)."""
        self.expire(now)
        if len(frame) > self.limits.max_message_bytes:
            raise RemoteInputError("data message exceeds the size limit")
        self.last_message_bytes = len(frame)
        if self.serialization is Serialization.RAW:
            return DataMessage(frame)
        if self.serialization is Serialization.JSON:
            try:
                value = json.loads(frame)
            except (ValueError, RecursionError) as exc:
                raise RemoteInputError("json data message is not JSON") from exc
            return CloseRequested() if _is_close(value) else DataMessage(value)
        if isinstance(frame, str):
            raise RemoteInputError("binary connections carry binary messages")
        return self._decode_binary(frame, now, nested=False)

    def _decode_binary(self, frame: bytes, now: float, nested: bool) -> DataMessage | CloseRequested | None:
        value = unpack(frame)
        marker = value.get("__peerData") if isinstance(value, dict) else None
        if not marker:  # peerjs tests truthiness too
            return DataMessage(value)
        if _is_close(value):
            return CloseRequested()
        if nested:
            raise BinaryPackError("a reassembled message is itself a chunk")
        return self._chunk(value, now)

    def _chunk(self, value: dict[str, Any], now: float) -> DataMessage | CloseRequested | None:
        limits = self.limits
        key, n, total, data = value.get("__peerData"), value.get("n"), value.get("total"), value.get("data")
        max_chunks = -(-limits.max_message_bytes // CHUNKED_MTU) + 1
        if not (isinstance(key, int) and isinstance(n, int) and isinstance(total, int)
                and isinstance(data, bytes) and 0 <= n < total <= max_chunks
                and len(data) <= _MAX_CHUNK_DATA):
            raise BinaryPackError("malformed __peerData chunk")
        partial = self._partials.get(key)
        if partial is None:
            if len(self._partials) >= limits.max_pending:
                raise RemoteInputError("too many partial messages")
            partial = self._partials[key] = _Partial(now, total)
        if partial.total != total or n in partial.parts:
            raise BinaryPackError("chunk disagrees with its message (total or duplicate index)")
        if (partial.size + len(data) > limits.max_message_bytes
                or self._pending_bytes + len(data) > limits.max_total_bytes):
            self._drop(key)
            raise RemoteInputError("chunked message exceeds the reassembly limits")
        partial.parts[n] = data
        partial.size += len(data)
        self._pending_bytes += len(data)
        if len(partial.parts) < total:
            return None
        self._drop(key)
        self.last_message_bytes = partial.size
        return self._decode_binary(b"".join(partial.parts[i] for i in range(total)), now, nested=True)

    def _drop(self, key: int) -> None:
        partial = self._partials.pop(key, None)
        if partial is not None:
            self._pending_bytes -= partial.size

    def expire(self, now: float) -> int:
        """Drop partial messages older than the timeout; how many were dropped."""
        stale = [k for k, p in self._partials.items() if now - p.started > self.limits.timeout]
        for key in stale:
            self._drop(key)
        return len(stale)
