"""Start-up hooks in site-packages: ``.pth`` files and ``sitecustomize`` / ``usercustomize``.

Python runs these in every normal start of the interpreter, before any of our code. The shell's
own process never does (it is re-executed as ``python -I -S``, :mod:`.._boot`), but any other
start of this Python does — the ``enkrypted`` launcher's first moment included — so a hook that no
installed distribution records, byte for byte, is treated as a compromised environment: refused,
named, or (``--dev``) admitted loudly and logged. Pure over the folders it is given.
"""

from __future__ import annotations

__all__ = ["StartupHook", "startup_hooks", "unrecorded_hooks"]

import os
from collections.abc import Iterable
from typing import NamedTuple

from ..errors import IntegrityError
from .integrity import parse_record, record_hash

_HOOK_MODULES = ("sitecustomize", "usercustomize")


class StartupHook(NamedTuple):
    path: str
    kind: str  # ".pth" | "sitecustomize" | "usercustomize"
    owner: str | None  # "name version" of the distribution whose RECORD lists it with this hash


def startup_hooks(folders: Iterable[str]) -> list[StartupHook]:
    """Every start-up hook in ``folders``, with the distribution that records it (if any)."""
    found: list[StartupHook] = []
    for folder in folders:
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        hooks = [(n, _kind(n)) for n in names]
        hooks = [(n, k) for n, k in hooks if k is not None]
        if not hooks:
            continue
        owners = _recorded_owners(folder, names)
        for name, kind in hooks:
            path = os.path.join(folder, name)
            assert kind is not None
            found.append(StartupHook(path, kind, _owner(path, name, owners)))
    return found


def unrecorded_hooks(folders: Iterable[str]) -> list[StartupHook]:
    return [hook for hook in startup_hooks(folders) if hook.owner is None]


def _kind(name: str) -> str | None:
    if name.endswith(".pth"):
        return ".pth"
    stem = name.removesuffix(".py")
    return stem if stem in _HOOK_MODULES else None


def _recorded_owners(folder: str, names: list[str]) -> dict[str, tuple[str, str]]:
    """``{top-level path: (recorded hash, owner)}`` for top-level rows of the folder's RECORDs."""
    owners: dict[str, tuple[str, str]] = {}
    for info in (n for n in names if n.endswith(".dist-info")):
        try:
            with open(os.path.join(folder, info, "RECORD"), encoding="utf-8") as handle:
                text = handle.read()
            rows = parse_record(text, where=info, name=info)
        except (OSError, UnicodeDecodeError, IntegrityError):
            continue  # an unreadable RECORD owns nothing: its hooks count as unrecorded
        owner = info.removesuffix(".dist-info").replace("-", " ", 1)
        for path, value in rows:
            top = path.split("/")[0]
            if _kind(top) is not None and value:
                owners[path] = (value, owner)
    return owners


def _owner(path: str, name: str, owners: dict[str, tuple[str, str]]) -> str | None:
    if os.path.isdir(path):  # a sitecustomize package: owned only if every file is recorded
        return None
    recorded = owners.get(name)
    if recorded is None:
        return None
    value, owner = recorded
    try:
        with open(path, "rb") as handle:
            actual = record_hash(handle.read())
    except OSError:
        return None
    return owner if value == f"sha256={actual}" else None
