"""Safe local names for files named by a peer: never a path, never a device, never an overwrite.

A peer's name is only ever a *display and export* name: the encrypted file in the profile's
files directory is named after the transfer id. On export the name goes through
:func:`safe_name` and is created with ``O_EXCL`` under a unique suffix (:func:`create_unique`).
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Final

from ._wire import FileUsageError

MAX_NAME_BYTES: Final = 200
_FALLBACK: Final = "file"
# Windows reserved device names (with or without an extension), and their superscript-digit forms
_RESERVED: Final = re.compile(r"(con|prn|aux|nul|conin\$|conout\$|clock\$|(com|lpt)[0-9¹²³])",
                              re.IGNORECASE)
_FORBIDDEN: Final = frozenset('/\\:*?"<>|')
_DROP_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def safe_name(raw: str, max_bytes: int = MAX_NAME_BYTES) -> str:
    """One path component that is safe to create in any directory on any OS.

    NFKC first (a fullwidth solidus becomes ``/`` and is then replaced); control, format (bidi
    overrides, zero-width), surrogate, private-use and unassigned characters removed; separators
    and Windows-forbidden characters replaced by ``_``; leading / trailing dots and spaces
    stripped (no ``..``, no hidden file); a reserved device stem prefixed with ``_``; at most
    ``max_bytes`` of UTF-8, keeping a short extension.
    """
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(" " if c.isspace() else c for c in text)  # tab, newline: a space
    text = "".join(c for c in text if unicodedata.category(c) not in _DROP_CATEGORIES)
    text = "".join("_" if c in _FORBIDDEN else c for c in text)
    text = " ".join(text.split())  # every kind of whitespace run becomes one space
    text = text.strip(" .")
    if not text:
        return _FALLBACK
    stem = text.partition(".")[0]
    if _RESERVED.fullmatch(stem.rstrip(" ")):
        text = "_" + text
    return _truncate(text, max_bytes)


def _truncate(text: str, max_bytes: int) -> str:
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    stem, dot, ext = text.rpartition(".")
    if not dot or len(ext.encode("utf-8")) > 16:
        stem, ext = text, ""
    keep = max_bytes - len(ext.encode("utf-8")) - (1 if ext else 0)
    short = stem.encode("utf-8")[:keep].decode("utf-8", "ignore").rstrip(" .")
    return (short or _FALLBACK) + ("." + ext if ext else "")


def create_unique(directory: Path, name: str, *, attempts: int = 1000) -> tuple[Path, int]:
    """Create ``directory / safe_name(name)`` exclusively (``name (1).ext`` etc. if taken);
    the path and an open write descriptor. Never follows a symlink, never overwrites."""
    clean = safe_name(name)
    stem, dot, ext = clean.rpartition(".")
    if not dot or not stem:
        stem, dot, ext = clean, "", ""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for n in range(attempts):
        candidate = clean if n == 0 else _truncate(f"{stem} ({n}){dot}{ext}", MAX_NAME_BYTES + 8)
        path = directory / candidate
        if path.parent != directory:  # defence in depth: safe_name already made one component
            raise FileUsageError(f"refusing a name that leaves {directory}")
        try:
            return path, os.open(path, flags, 0o600)
        except FileExistsError:
            continue
    raise FileUsageError(f"no free name for {clean!r} in {directory} after {attempts} tries")
