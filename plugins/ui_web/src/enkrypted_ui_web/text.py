"""Peer-supplied text made inert for the page (pure).

The page renders every string with ``textContent`` (never as HTML), so markup is already text.
What remains are characters that change how *other* text looks: bidirectional overrides,
embeddings, isolates and marks (a file name ``invoice\u202egnp.exe`` shown as
``invoiceexe.png``), invisible characters (zero-width space, word joiner, BOM, soft hyphen,
interlinear annotation, tags), C0/C1 controls and lone surrogates (not text: unencodable).  :func:`inert` replaces each with a visible
``⟨U+XXXX⟩`` marker so the user sees that something was there.  The joiners and variation
selectors that emoji and scripts such as Persian need (U+200C, U+200D, U+FE0x) stay.  The page
applies the same rule again before it draws (defence in depth) and isolates each message with
``unicode-bidi: isolate``.
"""

from __future__ import annotations

__all__ = ["inert", "one_line"]

import re
from typing import Final

_SUSPECT: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
    "\ud800-\udfff]"  # lone surrogates (a peer's JSON may carry one): not encodable as UTF-8
)


def _marker(match: re.Match[str]) -> str:
    return f"⟨U+{ord(match.group()):04X}⟩"


def inert(text: str, limit: int = 65_536) -> str:
    """``text`` (clipped to ``limit`` characters) with every bidi, invisible or control character
    but newline and tab replaced by a visible marker."""
    return _SUSPECT.sub(_marker, text[:limit])


def one_line(text: str, limit: int = 200) -> str:
    """:func:`inert`, on one line (a file name, a reason): whitespace runs become one space."""
    return inert(" ".join(text[: limit * 2].split()), limit)
