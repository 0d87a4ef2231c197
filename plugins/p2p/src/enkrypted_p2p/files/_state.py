"""Parsing :meth:`FileTransfers.export_state` back, every field checked (it may be damaged)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._wire import (
    MAX_CHUNK,
    MAX_NAME_BYTES,
    MIN_CHUNK,
    SHARE_BYTES,
    TID_BYTES,
    FileUsageError,
    chunk_count,
)

_MAX_STATE_BYTES = 4 * 1024 * 1024
_MAX_ITEMS = 4096


class FileStateError(FileUsageError):
    """Exported file-transfer state that cannot be restored (damaged or foreign)."""


@dataclass(frozen=True, slots=True)
class StateItem:
    fields: dict[str, Any]
    handle: str | None


def parse_state(state: bytes) -> tuple[list[StateItem], list[tuple[bytes, str]]]:
    if len(state) > _MAX_STATE_BYTES:
        raise FileStateError("file-transfer state above 4 MiB")
    try:
        doc = json.loads(state)
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise FileStateError("file-transfer state: not version 1")
        raw_items, raw_finished = doc["transfers"], doc["finished"]
        if not isinstance(raw_items, list) or not isinstance(raw_finished, list):
            raise FileStateError("file-transfer state: transfers / finished are not lists")
        if len(raw_items) > _MAX_ITEMS or len(raw_finished) > _MAX_ITEMS:
            raise FileStateError("file-transfer state: too many entries")
        items = [_item(i) for i in raw_items]
        finished = [(_hex(tid, TID_BYTES), _str(reason)) for tid, reason in raw_finished]
    except FileStateError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise FileStateError(f"file-transfer state is damaged: {exc}") from exc
    return items, finished


def _item(raw: object) -> StateItem:
    if not isinstance(raw, dict):
        raise FileStateError("file-transfer state: an entry is not an object")
    size, chunk_size = _int(raw["size"]), _int(raw["cs"])
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise FileStateError("file-transfer state: chunk size out of range")
    nxt, round_ = _int(raw["next"]), int(raw["round"])
    if nxt > chunk_count(size, chunk_size) or not -1 <= round_ <= 0xFFFFFFFF:
        raise FileStateError("file-transfer state: chunk count or round out of range")
    name = _str(raw["name"])
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise FileStateError("file-transfer state: name too long")
    peer = raw["peer"]
    fields = {
        "tid": _hex(raw["tid"], TID_BYTES), "outgoing": _bool(raw["out"]), "size": size,
        "chunk_size": chunk_size, "fast": _bool(raw["fast"]), "sha256": _hex(raw["sha"], 32),
        "name": name, "media_type": _str(raw["mt"]), "my_share": _hex(raw["mine"], SHARE_BYTES),
        "peer_share": None if peer is None else _hex(peer, SHARE_BYTES),
        "running": _bool(raw["running"]), "round": round_, "next": nxt,
    }
    handle = raw["handle"]
    return StateItem(fields, None if handle is None else _str(handle))


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FileStateError(f"file-transfer state: {value!r} is not a count")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise FileStateError(f"file-transfer state: {value!r} is not a boolean")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise FileStateError(f"file-transfer state: {value!r} is not a string")
    return value


def _hex(value: object, length: int) -> bytes:
    data = bytes.fromhex(_str(value))
    if len(data) != length:
        raise FileStateError(f"file-transfer state: expected {length} bytes of hex")
    return data
