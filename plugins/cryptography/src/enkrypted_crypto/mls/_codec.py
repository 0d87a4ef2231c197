"""TLS presentation-language codec with MLS variable-length vectors (RFC 9420 §2.1.2).

Vector lengths are QUIC-style varints: the top two bits of the first byte give the header size
(1, 2 or 4 bytes); ``0b11`` is reserved and rejected, and a length that could have been encoded
in fewer bytes is rejected too (§2.1.2: "the minimum number of bytes").  Every vector read is
bounded by ``LIMITS.max_vector_bytes`` and by what is left in the enclosing vector, and nested
vectors are bounded by ``LIMITS.max_depth``, so hostile input cannot make a decoder allocate or
recurse without limit.  Decoding failures raise :class:`~enkrypted_crypto.errors.MalformedInput`.
"""

from __future__ import annotations

__all__ = ["Reader", "Writer", "decode_all", "encode_varint"]

from collections.abc import Callable
from typing import Final, TypeVar

from enkrypted_crypto.errors import CryptoUsageError, MalformedInput
from enkrypted_crypto.mls._limits import LIMITS

MAX_VARINT: Final = (1 << 30) - 1

T = TypeVar("T")


def encode_varint(n: int) -> bytes:
    """The shortest RFC 9420 §2.1.2 header for length ``n``."""
    if n < 0 or n > MAX_VARINT:
        raise CryptoUsageError(f"vector length {n} cannot be encoded")
    if n < 1 << 6:
        return n.to_bytes(1, "big")
    if n < 1 << 14:
        return (n | 0x4000).to_bytes(2, "big")
    return (n | 0x80000000).to_bytes(4, "big")


class Writer:
    """Appends TLS-encoded fields to a buffer."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def uint(self, value: int, size: int) -> None:
        if value < 0 or value >= 1 << (8 * size):
            raise CryptoUsageError(f"{value} does not fit uint{8 * size}")
        self._buf += value.to_bytes(size, "big")

    def u8(self, value: int) -> None:
        self.uint(value, 1)

    def u16(self, value: int) -> None:
        self.uint(value, 2)

    def u32(self, value: int) -> None:
        self.uint(value, 4)

    def u64(self, value: int) -> None:
        self.uint(value, 8)

    def raw(self, data: bytes) -> None:
        """Fixed-length opaque field: no length prefix."""
        self._buf += data

    def opaque(self, data: bytes) -> None:
        """``opaque field<V>``."""
        self._buf += encode_varint(len(data))
        self._buf += data

    def vector(self, items: tuple[T, ...] | list[T], put: Callable[[Writer, T], None]) -> None:
        """``T field<V>``: the items encoded by ``put`` behind one length prefix."""
        inner = Writer()
        for item in items:
            put(inner, item)
        self.opaque(inner.getvalue())

    def optional(self, item: T | None, put: Callable[[Writer, T], None]) -> None:
        """``optional<T>``: a presence byte then the item."""
        if item is None:
            self.u8(0)
        else:
            self.u8(1)
            put(self, item)


class Reader:
    """Reads TLS-encoded fields from ``data``, never past its end or ``LIMITS.max_depth``."""

    __slots__ = ("_data", "_depth", "_pos")

    def __init__(self, data: bytes, depth: int = 0) -> None:
        if depth > LIMITS.max_depth:
            raise MalformedInput("MLS structure nested too deeply")
        self._data = bytes(data)
        self._pos = 0
        self._depth = depth

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def done(self) -> bool:
        return self._pos == len(self._data)

    def expect_end(self) -> None:
        if not self.done():
            raise MalformedInput("trailing bytes after MLS structure")

    def raw(self, n: int) -> bytes:
        if n < 0 or n > self.remaining():
            raise MalformedInput("MLS structure truncated")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def uint(self, size: int) -> int:
        return int.from_bytes(self.raw(size), "big")

    def u8(self) -> int:
        return self.uint(1)

    def u16(self) -> int:
        return self.uint(2)

    def u32(self) -> int:
        return self.uint(4)

    def u64(self) -> int:
        return self.uint(8)

    def varint(self) -> int:
        first = self.raw(1)[0]
        prefix = first >> 6
        if prefix == 3:
            raise MalformedInput("reserved vector length prefix 0b11")
        size = 1 << prefix
        value = int.from_bytes(bytes([first & 0x3F]) + self.raw(size - 1), "big")
        if size > 1 and value < 1 << (8 * (size >> 1) - 2):
            raise MalformedInput("vector length not minimally encoded")
        return value

    def opaque(self, limit: int = LIMITS.max_vector_bytes) -> bytes:
        n = self.varint()
        if n > limit:
            raise MalformedInput("MLS vector longer than allowed")
        return self.raw(n)

    def sub(self) -> Reader:
        """A reader over the next ``<V>`` vector, one nesting level deeper."""
        return Reader(self.opaque(), self._depth + 1)

    def vector(
        self, get: Callable[[Reader], T], max_items: int = LIMITS.max_vector_items
    ) -> tuple[T, ...]:
        inner = self.sub()
        items: list[T] = []
        while not inner.done():
            if len(items) >= max_items:
                raise MalformedInput("MLS vector has too many items")
            items.append(get(inner))
        return tuple(items)

    def optional(self, get: Callable[[Reader], T]) -> T | None:
        flag = self.u8()
        if flag == 0:
            return None
        if flag != 1:
            raise MalformedInput("optional presence byte is not 0 or 1")
        return get(self)

    def boolean(self) -> bool:
        flag = self.u8()
        if flag > 1:
            raise MalformedInput("bool is not 0 or 1")
        return flag == 1


def decode_all(data: bytes, get: Callable[[Reader], T]) -> T:
    """Decode exactly one structure filling ``data``."""
    reader = Reader(data)
    value = get(reader)
    reader.expect_end()
    return value
