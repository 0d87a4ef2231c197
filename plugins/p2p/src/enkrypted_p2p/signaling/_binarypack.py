"""PeerJS's BinaryPack (``peerjs-js-binarypack`` 2.1.0): a MessagePack look-alike with its own
type bytes (crypto-p2p-anchors.md §3.6; docs/adr/0009-peerjs-signaling-and-binarypack-hand-rolled.md).

The encoder writes exactly the bytes the JavaScript packer writes for the same value (pinned by
``tests/p2p/test_binarypack.py`` against node).  JavaScript has one number type, so an integral
float packs as an integer, as it does there.  The decoder is strict where the JavaScript one is
lenient: truncated input, unknown type bytes, trailing bytes, invalid UTF-8, container counts larger
than the input could hold and nesting deeper than :data:`MAX_DEPTH` raise
:class:`~enkrypted_p2p.errors.RemoteInputError` instead of yielding ``undefined`` or garbage.

Decoding is bounded in memory, not only in time: a browser peer's frame is decoded before any
handshake, and an empty array is one input byte but ~64 bytes of Python objects.  So every value
decoded counts against :data:`MAX_OBJECTS` per :func:`unpack` call, and a container's declared count
is reserved against that budget (and against the bytes left, one byte per element at least) *before*
any element is built: a hostile count is refused at its header, with nothing allocated for it.
"""

from __future__ import annotations

__all__ = ["MAX_DEPTH", "MAX_OBJECTS", "BinaryPackError", "pack", "unpack"]

import math
import struct
from typing import Any, Final

from ..errors import P2PUsageError, RemoteInputError

MAX_DEPTH: Final = 64
MAX_OBJECTS: Final = 65_536
"""Values (scalars, strings, containers, map keys) one :func:`unpack` call may build: bounds the
decoded size to a few MiB whatever the input (PeerJS traffic carries bytes in ``bin``, one value)."""


class BinaryPackError(RemoteInputError):
    """Bytes that are not one well-formed BinaryPack value."""


def pack(value: Any) -> bytes:
    """``value`` (None, bool, int, float, str, bytes, list/tuple, dict with str keys) as bytes."""
    out = bytearray()
    _pack(value, out, 0)
    return bytes(out)


def _head(out: bytearray, length: int, fix: int, w16: int, w32: int) -> None:
    if length <= 0x0F:
        out.append(fix + length)
    elif length <= 0xFFFF:
        out.append(w16)
        out += length.to_bytes(2, "big")
    elif length <= 0xFFFFFFFF:
        out.append(w32)
        out += length.to_bytes(4, "big")
    else:
        raise P2PUsageError("Invalid length")


def _pack(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise P2PUsageError(f"value nested deeper than {MAX_DEPTH}")
    if isinstance(value, list | tuple):
        _head(out, len(value), 0x90, 0xDC, 0xDD)
        for item in value:
            _pack(item, out, depth + 1)
    elif isinstance(value, dict):
        _head(out, len(value), 0x80, 0xDE, 0xDF)
        for key, item in value.items():
            if not isinstance(key, str):
                raise P2PUsageError("binarypack map keys must be strings (JavaScript object keys)")
            _pack(key, out, depth + 1)
            _pack(item, out, depth + 1)
    else:
        _pack_scalar(value, out)


def _pack_scalar(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0xC0)
    elif value is True or value is False:
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int):
        _pack_integer(value, out)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise P2PUsageError("binarypack cannot carry NaN or infinity")
        if value.is_integer():  # JS: Math.floor(v) === v packs as an integer
            _pack_integer(int(value), out)
        else:
            out.append(0xCB)
            out += struct.pack(">d", value)
    elif isinstance(value, str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise P2PUsageError("string is not encodable as UTF-8") from exc
        _head(out, len(data), 0xB0, 0xD8, 0xD9)
        out += data
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        _head(out, len(data), 0xA0, 0xDA, 0xDB)
        out += data
    else:
        raise P2PUsageError(f'Type "{type(value).__name__}" not yet supported')


_INT_FORMS: Final = (  # the JavaScript packer's order of preference
    (0, 0xFF, 0xCC, ">B"),
    (-128, 0x7F, 0xD0, ">b"),
    (0, 0xFFFF, 0xCD, ">H"),
    (-32768, 0x7FFF, 0xD1, ">h"),
    (0, 0xFFFFFFFF, 0xCE, ">I"),
    (-(2**31), 2**31 - 1, 0xD2, ">i"),
    (-(2**63), 2**63 - 1, 0xD3, ">q"),
    (0, 2**64 - 1, 0xCF, ">Q"),
)


def _pack_integer(num: int, out: bytearray) -> None:
    if -32 <= num <= 0x7F:
        out.append(num & 0xFF)
        return
    for low, high, code, fmt in _INT_FORMS:
        if low <= num <= high:
            out.append(code)
            out += struct.pack(fmt, num)
            return
    raise P2PUsageError("Invalid integer")


def unpack(data: bytes | bytearray | memoryview, *, max_objects: int = MAX_OBJECTS) -> Any:
    """Exactly one value from ``data``, of at most ``max_objects`` values in all;
    :class:`BinaryPackError` for anything else."""
    if max_objects < 1:
        raise P2PUsageError("max_objects must be >= 1")
    reader = _Reader(bytes(data), max_objects)
    value = reader.value(0)
    if reader.pos != len(reader.data):
        raise BinaryPackError(f"{len(reader.data) - reader.pos} trailing bytes")
    return value


_FIXED: Final = {  # type byte -> (struct format, size)
    0xCA: (">f", 4), 0xCB: (">d", 8),
    0xCC: (">B", 1), 0xCD: (">H", 2), 0xCE: (">I", 4), 0xCF: (">Q", 8),
    0xD0: (">b", 1), 0xD1: (">h", 2), 0xD2: (">i", 4), 0xD3: (">q", 8),
}
_SIZED: Final = {  # type byte -> (kind, width of the length)
    0xD8: ("str", 2), 0xD9: ("str", 4), 0xDA: ("bin", 2), 0xDB: ("bin", 4),
    0xDC: ("array", 2), 0xDD: ("array", 4), 0xDE: ("map", 2), 0xDF: ("map", 4),
}
_CONSTANTS: Final = {0xC0: None, 0xC1: None, 0xC2: False, 0xC3: True,
                     0xD4: None, 0xD5: None, 0xD6: None, 0xD7: None}  # JS: null / undefined


class _Reader:
    __slots__ = ("budget", "data", "limit", "pos")

    def __init__(self, data: bytes, limit: int) -> None:
        self.data = data
        self.pos = 0
        self.limit = limit
        self.budget = limit - 1  # values still allowed: the top-level value is the first

    def reserve(self, kind: str, length: int, per_item: int) -> None:
        """Refuse a container whose count the input or the object budget cannot hold, before
        building any of it; otherwise take its values from the budget."""
        # Every element takes at least one byte: a count beyond the input is a lie.
        if length > len(self.data) - self.pos:
            raise BinaryPackError(f"{kind} of {length} items cannot fit the input")
        if length * per_item > self.budget:
            raise BinaryPackError(f"{kind} of {length} items exceeds the limit of "
                                  f"{self.limit} decoded values per message")
        self.budget -= length * per_item

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise BinaryPackError("read index out of range")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise BinaryPackError(f"nested deeper than {MAX_DEPTH}")
        code = self.take(1)[0]
        if code < 0x80:
            return code
        if code >= 0xE0:
            return code - 0x100
        if code < 0xC0:  # 0x80 map, 0x90 array, 0xa0 bin, 0xb0 str: length in the low nibble
            kind = ("map", "array", "bin", "str")[(code >> 4) - 8]
            return self.sized(kind, code & 0x0F, depth)
        if code in _CONSTANTS:
            return _CONSTANTS[code]
        if code in _FIXED:
            fmt, size = _FIXED[code]
            return struct.unpack(fmt, self.take(size))[0]
        if code in _SIZED:
            kind, width = _SIZED[code]
            return self.sized(kind, int.from_bytes(self.take(width), "big"), depth)
        raise BinaryPackError(f"unknown type byte 0x{code:02x}")

    def sized(self, kind: str, length: int, depth: int) -> Any:
        if kind == "bin":
            return self.take(length)
        if kind == "str":
            try:
                return self.take(length).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BinaryPackError("string is not UTF-8") from exc
        self.reserve(kind, length, 1 if kind == "array" else 2)
        if kind == "array":
            return [self.value(depth + 1) for _ in range(length)]
        out: dict[str, Any] = {}
        for _ in range(length):
            key = self.value(depth + 1)
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise BinaryPackError("map key is neither a string nor an integer")
            out[str(key)] = self.value(depth + 1)  # JavaScript object keys are strings
        return out
