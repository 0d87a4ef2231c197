"""Bounded binary reader and writer for exported session state (``docs/protocol.md`` §6).

Fields are big-endian integers, fixed-size byte strings, and variable byte strings prefixed with
their u32 length.  Every read checks the bytes are there and every variable field its own bound,
so a damaged or hostile state raises :class:`~enkrypted_crypto.errors.SessionStateError` before
anything is allocated for it; :meth:`StateReader.done` refuses trailing bytes.
"""

from __future__ import annotations

__all__ = ["StateReader", "StateWriter"]

import struct
from typing import Final

from .errors import SessionStateError

_U8: Final = struct.Struct(">B")
_U16: Final = struct.Struct(">H")
_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")


class StateWriter:
    """Appends fields; :meth:`getvalue` returns the bytes."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> StateWriter:
        self._parts.append(_U8.pack(value))
        return self

    def u16(self, value: int) -> StateWriter:
        self._parts.append(_U16.pack(value))
        return self

    def u32(self, value: int) -> StateWriter:
        self._parts.append(_U32.pack(value))
        return self

    def u64(self, value: int) -> StateWriter:
        self._parts.append(_U64.pack(value))
        return self

    def fixed(self, data: bytes) -> StateWriter:
        self._parts.append(bytes(data))
        return self

    def var(self, data: bytes) -> StateWriter:
        self._parts.append(_U32.pack(len(data)))
        self._parts.append(bytes(data))
        return self

    def text(self, value: str) -> StateWriter:
        return self.var(value.encode("utf-8"))

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class StateReader:
    """Reads fields in order from untrusted bytes; any shortfall is :class:`SessionStateError`."""

    __slots__ = ("_data", "_offset", "_what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = memoryview(bytes(data))
        self._offset = 0
        self._what = what

    def _take(self, n: int) -> bytes:
        end = self._offset + n
        if n < 0 or end > len(self._data):
            raise SessionStateError(f"{self._what}: truncated")
        out = bytes(self._data[self._offset : end])
        self._offset = end
        return out

    def u8(self) -> int:
        return int(_U8.unpack(self._take(1))[0])

    def u16(self) -> int:
        return int(_U16.unpack(self._take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self._take(8))[0])

    def flag(self) -> bool:
        value = self.u8()
        if value > 1:
            raise SessionStateError(f"{self._what}: a flag is {value}, not 0 or 1")
        return value == 1

    def fixed(self, n: int) -> bytes:
        return self._take(n)

    def var(self, max_len: int) -> bytes:
        length = self.u32()
        if length > max_len:
            raise SessionStateError(f"{self._what}: a field of {length} bytes exceeds {max_len}")
        return self._take(length)

    def text(self, max_len: int) -> str:
        try:
            return self.var(max_len).decode("utf-8")
        except UnicodeDecodeError:
            raise SessionStateError(f"{self._what}: a name is not UTF-8") from None

    def count(self, max_count: int) -> int:
        """A u32 element count, refused above ``max_count``."""
        n = self.u32()
        if n > max_count:
            raise SessionStateError(f"{self._what}: {n} entries exceed {max_count}")
        return n

    def done(self) -> None:
        if self._offset != len(self._data):
            raise SessionStateError(
                f"{self._what}: {len(self._data) - self._offset} trailing bytes"
            )
