"""The group PDU envelope (``docs/protocol.md`` "Group chat", wire format).

Every group PDU is one binary envelope; every field is bounded and the decoder rejects anything
else (a :class:`~enkrypted_p2p.errors.RemoteInputError`) before the body is looked at::

    magic "EG" | version u8 = 1 | kind u8 | hops u8 | epoch u64 | msg_id 16 bytes
    | group_id u8-len (1..64) | origin u8-len (1..64) | target u8-len (0..64)
    | body u32-len (<= WIRE_LIMITS.max_pdu_bytes - header)

All integers are big-endian. ``origin`` is the peer id that made the PDU, ``target`` the peer id
it is addressed to ("" for a PDU sent to each member directly); ``hops`` counts relays (P8-style
bound: :data:`HOP_LIMIT`). The MLS bytes inside ``body`` are authenticated by MLS; the envelope
fields are only authenticated hop by hop, by the 1:1 links that carry them.
"""

from __future__ import annotations

import enum
import json
import struct
from base64 import b64decode, b64encode
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from enkrypted_shell.contracts import WIRE_LIMITS

from ..errors import P2PUsageError, RemoteInputError

__all__ = [
    "HOP_LIMIT",
    "MAGIC",
    "MAX_GROUP_ID",
    "MAX_PEER_ID",
    "GroupPdu",
    "Kind",
    "decode_json",
    "decode_pdu",
    "encode_json",
    "hex_token",
    "pack_list",
    "unpack_list",
]

MAGIC: Final = b"EG"
VERSION: Final = 1
HOP_LIMIT: Final = 2
MAX_GROUP_ID: Final = 64
MAX_PEER_ID: Final = 64
MSG_ID_BYTES: Final = 16
_FIXED: Final = struct.Struct(">2sBBBQ16s")
_HEADER_MAX: Final = _FIXED.size + 3 * (1 + MAX_PEER_ID) + 4
MAX_BODY: Final = WIRE_LIMITS.max_pdu_bytes - _HEADER_MAX


class Kind(enum.IntEnum):
    """What a group PDU carries (``docs/protocol.md`` "Group chat", PDU kinds)."""

    COMMIT = 1
    WELCOME = 2
    APPLICATION = 3
    KEY_PACKAGE_REQUEST = 4
    KEY_PACKAGE_RESPONSE = 5
    HISTORY_REQUEST = 6
    HISTORY_RESPONSE = 7
    RECEIPT = 8
    INTENT = 9
    STATUS = 10


def _check_peer_id(value: str, what: str, *, empty: bool = False) -> bytes:
    raw = value.encode("utf-8", "surrogatepass")
    if (not raw and not empty) or len(raw) > MAX_PEER_ID or not value.isprintable():
        raise P2PUsageError(f"{what} must be 1 to {MAX_PEER_ID} printable bytes, not {value!r}")
    return raw


@dataclass(frozen=True, slots=True)
class GroupPdu:
    """One decoded group PDU (the fields of the envelope)."""

    kind: Kind
    group_id: bytes
    epoch: int
    msg_id: bytes
    origin: str
    body: bytes = b""
    target: str = ""
    hops: int = 0

    def encode(self) -> bytes:
        if not 0 < len(self.group_id) <= MAX_GROUP_ID:
            raise P2PUsageError(f"a group id is 1 to {MAX_GROUP_ID} bytes")
        if len(self.msg_id) != MSG_ID_BYTES or not 0 <= self.epoch < 2**64:
            raise P2PUsageError("a group PDU needs a 16-byte message id and a u64 epoch")
        if not 0 <= self.hops <= HOP_LIMIT or len(self.body) > MAX_BODY:
            raise P2PUsageError("a group PDU's hops or body is out of bounds")
        origin = _check_peer_id(self.origin, "origin")
        target = _check_peer_id(self.target, "target", empty=True)
        head = _FIXED.pack(MAGIC, VERSION, int(self.kind), self.hops, self.epoch, self.msg_id)
        parts = [head, bytes([len(self.group_id)]), self.group_id]
        parts += [bytes([len(origin)]), origin, bytes([len(target)]), target]
        parts += [len(self.body).to_bytes(4, "big"), self.body]
        return b"".join(parts)

    def relayed(self, target: str) -> GroupPdu:
        """This PDU one relay further on, addressed to ``target``."""
        return replace(self, target=target, hops=self.hops + 1)


class _Reader:
    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.at = offset

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise RemoteInputError("group PDU truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def short(self, low: int, high: int, what: str) -> bytes:
        n = self.take(1)[0]
        if not low <= n <= high:
            raise RemoteInputError(f"group PDU {what} length {n} is not in {low}..{high}")
        return self.take(n)


def _peer_id(raw: bytes, what: str) -> str:
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteInputError(f"group PDU {what} is not UTF-8") from None
    if not value.isprintable():
        raise RemoteInputError(f"group PDU {what} is not printable")
    return value


def decode_pdu(data: bytes) -> GroupPdu:
    """Parse one envelope; :class:`RemoteInputError` for anything out of bounds or malformed."""
    if len(data) > WIRE_LIMITS.max_pdu_bytes:
        raise RemoteInputError("group PDU larger than the PDU cap (P8.1)")
    if len(data) < _FIXED.size:
        raise RemoteInputError("group PDU truncated")
    magic, version, kind, hops, epoch, msg_id = _FIXED.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise RemoteInputError("not a group PDU of version 1")
    if kind not in Kind._value2member_map_:
        raise RemoteInputError(f"unknown group PDU kind {kind}")
    if hops > HOP_LIMIT:
        raise RemoteInputError(f"group PDU relayed {hops} times (limit {HOP_LIMIT})")
    reader = _Reader(data, _FIXED.size)
    group_id = reader.short(1, MAX_GROUP_ID, "group id")
    origin = _peer_id(reader.short(1, MAX_PEER_ID, "origin"), "origin")
    target = _peer_id(reader.short(0, MAX_PEER_ID, "target"), "target")
    size = int.from_bytes(reader.take(4), "big")
    if size != len(data) - reader.at:
        raise RemoteInputError("group PDU body length does not match the PDU")
    body = reader.take(size)
    return GroupPdu(Kind(kind), group_id, epoch, msg_id, origin, body, target, hops)


def pack_list(items: list[bytes]) -> bytes:
    """u16 count, then u32-length-prefixed items."""
    return len(items).to_bytes(2, "big") + b"".join(len(i).to_bytes(4, "big") + i for i in items)


def unpack_list(data: bytes, max_items: int) -> list[bytes]:
    reader = _Reader(data, 0)
    count = int.from_bytes(reader.take(2), "big")
    if count > max_items:
        raise RemoteInputError(f"{count} items where at most {max_items} are allowed")
    items = [reader.take(int.from_bytes(reader.take(4), "big")) for _ in range(count)]
    if reader.at != len(data):
        raise RemoteInputError("trailing bytes after a list")
    return items


MAX_JSON: Final = 256 * 1024


def encode_json(value: Mapping[str, object]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def decode_json(data: bytes) -> dict[str, object]:
    """A JSON object of at most :data:`MAX_JSON` bytes (P8: the fast metadata cap)."""
    if len(data) > MAX_JSON:
        raise RemoteInputError("group control object larger than 256 KiB")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise RemoteInputError("group control object is not JSON") from None
    if not isinstance(value, dict):
        raise RemoteInputError("group control object is not a JSON object")
    return value


def b64(data: bytes) -> str:
    return b64encode(data).decode()


def unb64(value: object, limit: int) -> bytes:
    if not isinstance(value, str) or len(value) > (limit * 4) // 3 + 4:
        raise RemoteInputError("expected a bounded base64 string")
    try:
        return b64decode(value, validate=True)
    except ValueError:
        raise RemoteInputError("bad base64") from None


def hex_token(value: object, size: int) -> bytes | None:
    """``size`` bytes from a peer's hex string; ``None`` for anything else (never raises)."""
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None
