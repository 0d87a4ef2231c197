"""Cheap structural bounds on untrusted JSON, checked *before* ``json.loads``
(P8.4 "reject huge JSON arrays before allocating"; ``docs/protocol.md`` §4).

``json.loads`` allocates a Python object per value and recurses per nesting level, so a PDU
within the byte cap can still cost hundreds of MiB (millions of ``[]``) or overflow the stack
(deep nesting).  :func:`check_json_bounds` counts containers and strings with ``bytes.count``
and measures nesting depth from the positions of the few structural bytes (string-aware, so a
bracket inside a string is not nesting), all without building any object.  It is conservative:
it counts brackets inside strings towards the container cap, and it does not validate JSON.
"""

from __future__ import annotations

__all__ = ["check_json_bounds"]

from typing import Final

from .errors import MalformedInput

_OPEN: Final = frozenset(b"[{")
_CLOSE: Final = frozenset(b"]}")
_QUOTE: Final = ord('"')
_BACKSLASH: Final = ord("\\")
_STRUCTURAL: Final = (b"[", b"]", b"{", b"}", b'"', b"\\")


def check_json_bounds(
    data: bytes,
    *,
    max_depth: int,
    max_containers: int | None = None,
    max_strings: int | None = None,
) -> None:
    """Raise :class:`MalformedInput` if ``data`` nests deeper than ``max_depth`` or has more
    than ``max_containers`` ``[``/``{`` bytes or ``max_strings`` strings (``"`` pairs; a
    backslash counts like a quote, so escapes cannot be used to grow the scan)."""
    if max_containers is not None and data.count(b"[") + data.count(b"{") > max_containers:
        raise MalformedInput("JSON has too many arrays/objects")
    if max_strings is not None and (
        data.count(b'"') > 2 * max_strings or data.count(b"\\") > 2 * max_strings
    ):
        raise MalformedInput("JSON has too many strings")
    if _depth(data, max_depth) > max_depth:
        raise MalformedInput(f"JSON nests deeper than {max_depth}")


def _depth(data: bytes, limit: int) -> int:
    """Nesting depth outside strings, up to the first level beyond ``limit``."""
    positions: list[int] = []
    for byte in _STRUCTURAL:  # each find is a C-speed scan; hits are bounded by the caps above
        at = data.find(byte)
        while at != -1:
            positions.append(at)
            at = data.find(byte, at + 1)
    positions.sort()
    depth, in_string, escaped = 0, False, -1
    for at in positions:
        if at == escaped:  # the byte after a backslash inside a string
            continue
        char = data[at]
        if char == _BACKSLASH:
            if in_string:
                escaped = at + 1
        elif char == _QUOTE:
            in_string = not in_string
        elif in_string:
            continue
        elif char in _OPEN:
            depth += 1
            if depth > limit:
                return depth
        elif char in _CLOSE:
            depth -= 1
    return depth
