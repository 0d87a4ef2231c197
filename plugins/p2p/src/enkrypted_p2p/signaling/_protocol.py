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
    "parse_client_frame",
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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's json accepts NaN/Infinity; JSON does not


_ENCODE: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_DECODE: Final = json.JSONDecoder(parse_constant=_no_constant).decode
_PLAIN_KEYS: Final = frozenset({"type", "dst", "payload"})


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


def _decode(data: str | bytes, max_bytes: int) -> tuple[dict[str, Any], str]:
    if len(data) > max_bytes:  # str length <= UTF-8 length, so this is a lower bound
        raise RemoteInputError(f"frame of {len(data)} bytes exceeds {max_bytes}")
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
        obj = _DECODE(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise RemoteInputError("frame is not JSON") from exc
    if not isinstance(obj, dict):
        raise RemoteInputError("frame is not a JSON object")
    return obj, text


def _frame(obj: dict[str, Any]) -> Frame:
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise RemoteInputError("frame has no string 'type'")
    return Frame(kind, _optional_str(obj, "src"), _optional_str(obj, "dst"), obj.get("payload"))


def parse_frame(data: str | bytes, max_bytes: int) -> Frame:
    """One frame from text or binary WebSocket data, at most ``max_bytes`` long."""
    return _frame(_decode(data, max_bytes)[0])


def parse_client_frame(data: str | bytes, max_bytes: int) -> tuple[Frame, str | None]:
    """:func:`parse_frame`, and the frame's text when the broker may forward it as it came with
    only ``{"src":ID,`` put in front of it: a text that starts with ``{`` and whose object has no
    key but ``type``, ``dst`` and ``payload`` (as decoded, so an escaped ``"\\u0073rc"`` counts
    as ``src``).  No ``src`` key anywhere at its top level means the one the broker puts in is the
    only one a reader sees; otherwise (a ``src``, other keys, leading white space) ``None``: the
    broker re-encodes the four keys, as npm ``peer`` does."""
    obj, text = _decode(data, max_bytes)
    frame = _frame(obj)
    plain = text[:1] == "{" and obj.keys() <= _PLAIN_KEYS
    return frame, text if plain else None
