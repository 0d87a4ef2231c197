"""PeerJS signaling frames (crypto-p2p-anchors.md §3.2-§3.3): types, parsing, encoding.

A frame is one JSON object ``{"type", "src"?, "dst"?, "payload"?}``.  The npm ``peer`` server
forwards only those four keys; so do we.  Parsing is bounded (size first, then JSON) and raises
:class:`~enkrypted_p2p.errors.RemoteInputError` for anything that is not such an object.
"""

from __future__ import annotations

__all__ = [
    "CLIENT_TYPES",
    "QUEUED_TYPES",
    "RELAYED_TYPES",
    "Frame",
    "MessageType",
    "encode_frame",
    "parse_frame",
]

import enum
import json
from dataclasses import dataclass
from typing import Any, Final

from ..errors import RemoteInputError


class MessageType(enum.StrEnum):
    OPEN = "OPEN"
    LEAVE = "LEAVE"
    CANDIDATE = "CANDIDATE"
    OFFER = "OFFER"
    ANSWER = "ANSWER"
    EXPIRE = "EXPIRE"
    HEARTBEAT = "HEARTBEAT"
    ID_TAKEN = "ID-TAKEN"
    INVALID_KEY = "INVALID-KEY"
    ERROR = "ERROR"


RELAYED_TYPES: Final = frozenset(
    {MessageType.OFFER, MessageType.ANSWER, MessageType.CANDIDATE, MessageType.LEAVE,
     MessageType.EXPIRE}
)
"""Types the broker forwards peer to peer (the npm server registers EXPIRE as relayable too)."""

QUEUED_TYPES: Final = frozenset({MessageType.OFFER, MessageType.ANSWER, MessageType.CANDIDATE})
"""Types queued for a destination that is not connected (§3.4: LEAVE and EXPIRE are not)."""

CLIENT_TYPES: Final = RELAYED_TYPES | {MessageType.HEARTBEAT}
"""Types a client may send; anything else from a client is dropped as unknown."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One signaling message.  ``payload`` is any JSON value (``None`` when absent)."""

    type: str
    src: str | None = None
    dst: str | None = None
    payload: Any = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.src is not None:
            out["src"] = self.src
        if self.dst is not None:
            out["dst"] = self.dst
        if self.payload is not None:
            out["payload"] = self.payload
        return out


_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_DECODE: Final = json.JSONDecoder().decode


def encode_frame(frame: Frame) -> str:
    """Compact JSON text, the form npm ``peer`` sends (``JSON.stringify``)."""
    return _ENCODE(frame.as_dict())


def _optional_str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RemoteInputError(f"frame field {key!r} is not a string")
    return value


def parse_frame(data: str | bytes, max_bytes: int) -> Frame:
    """One frame from text or binary WebSocket data, at most ``max_bytes`` long."""
    if len(data) > max_bytes:  # str length <= UTF-8 length, so this is a lower bound
        raise RemoteInputError(f"frame of {len(data)} bytes exceeds {max_bytes}")
    try:
        obj = _DECODE(data if isinstance(data, str) else data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RemoteInputError("frame is not JSON") from exc
    if not isinstance(obj, dict):
        raise RemoteInputError("frame is not a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise RemoteInputError("frame has no string 'type'")
    return Frame(kind, _optional_str(obj, "src"), _optional_str(obj, "dst"), obj.get("payload"))
