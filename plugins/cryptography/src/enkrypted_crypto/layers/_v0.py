"""Profile-v0 JSON helpers: byte strings travel as plain integer arrays (digest §4.3)."""

from __future__ import annotations

from collections.abc import Mapping

from enkrypted_crypto.errors import MalformedInput


def to_int_array(data: bytes) -> list[int]:
    return list(data)


def from_int_array(obj: Mapping[str, object], field: str, size: int) -> bytes:
    """Read ``obj[field]`` as a byte array of exactly ``size`` integers in 0..255."""
    value = obj.get(field)
    if not isinstance(value, list) or len(value) != size:
        raise MalformedInput(f"parameter {field!r} must be an array of {size} bytes")
    if not all(type(b) is int and 0 <= b <= 255 for b in value):
        raise MalformedInput(f"parameter {field!r} must hold integers 0..255")
    return bytes(value)
