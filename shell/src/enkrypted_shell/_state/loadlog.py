"""Append-only, hash-chained log of every load decision (read by ``enkrypted plugins audit``).

Each line is a JSON object with ``seq``, ``time``, ``prev`` (the previous record's ``hash``) and the
decision fields; ``hash`` is sha256 over the canonical JSON of the record without ``hash``.  Removing,
reordering or editing a line breaks the chain, which :func:`verify_chain` reports with its line.
"""

from __future__ import annotations

__all__ = ["GENESIS", "ChainState", "LoadLog", "verify_chain"]

import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ..errors import LoadLogCorruptError

GENESIS = "0" * 64
_HASH_RE = re.compile(r"[0-9a-f]{64}")


def _digest(record: Mapping[str, object]) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _safe_text(text: str) -> str:
    """``text`` unchanged when it is valid Unicode; lone surrogates (a non-UTF-8 file name through
    ``os.fsdecode``) become ``\\udcff``-style escapes so the record can be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _sanitised(value: object) -> object:
    """``value`` with every string (dict keys included) made encodable as UTF-8 (see
    :func:`_safe_text`); valid strings are left as they are, so digests do not change."""
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, Mapping):
        return {_sanitised(k): _sanitised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sanitised(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_sanitised(v) for v in value)
    return value


class ChainState(NamedTuple):
    """Result of walking the chain."""

    records: tuple[dict[str, object], ...]
    intact: bool
    problem: str | None
    head: str


def verify_chain(lines: Sequence[str | bytes]) -> ChainState:
    """Pure check of the chain over the file's lines (text, or raw bytes decoded per line as
    UTF-8: a line that is not UTF-8 breaks the chain there)."""
    prev = GENESIS
    records: list[dict[str, object]] = []
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            return ChainState(tuple(records), False, f"line {number}: not UTF-8", prev)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise TypeError("not a JSON object")
            claimed = record.pop("hash")
        except (ValueError, KeyError, TypeError, RecursionError):
            return ChainState(tuple(records), False, f"line {number}: not a log record", prev)
        try:
            intact = record.get("prev") == prev and _digest(record) == claimed
        except (ValueError, TypeError, RecursionError):  # lone surrogates: never written by us
            intact = False
        if not intact:
            return ChainState(tuple(records), False, f"line {number}: hash chain broken", prev)
        record["hash"] = claimed
        records.append(record)
        prev = claimed
    return ChainState(tuple(records), True, None, prev)


def _last_line(handle: BinaryIO, chunk: int = 4096) -> bytes:
    """The file's last non-blank line, read backwards from the end in chunks (blank lines are
    skipped as :func:`verify_chain` skips them, so they cannot hide the last record)."""
    end = handle.seek(0, os.SEEK_END)
    data, pos = b"", end
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        handle.seek(pos)
        data = handle.read(step) + data
        stripped = data.rstrip()
        if b"\n" in stripped:
            return stripped.rsplit(b"\n", 1)[1]
    return data.rstrip()


def _chain_head(tail: bytes, path: Path) -> tuple[int, str]:
    """``(seq, hash)`` of the last record, from its raw line; ``(0, GENESIS)`` for an empty log.

    Anything else than a record with an int ``seq`` and a 64-hex ``hash`` means the log was
    damaged: refuse rather than restart the chain or crash.
    """
    if not tail.strip():
        return 0, GENESIS
    fix = "keep the file for investigation and move it aside to start a new chain"
    try:
        last = json.loads(tail.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise LoadLogCorruptError(
            f"{path}: last record is not UTF-8 JSON; the log was tampered with", fix=fix
        ) from exc
    seq = last.get("seq") if isinstance(last, dict) else None
    digest = last.get("hash") if isinstance(last, dict) else None
    if (
        not isinstance(seq, int)
        or isinstance(seq, bool)
        or seq < 1
        or not isinstance(digest, str)
        or not _HASH_RE.fullmatch(digest)
    ):
        raise LoadLogCorruptError(
            f"{path}: last line is not a log record (no int seq and 64-hex hash); "
            "the log was tampered with",
            fix=fix,
        )
    return seq, digest


class LoadLog:
    """The log file of one profile home."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> ChainState:
        if not self.path.exists():
            return ChainState((), True, None, GENESIS)
        # Bytes, split on "\n" only: a bad line is reported (not a traceback), and U+2028 or
        # U+0085 inside a record (written raw: ensure_ascii=False) does not split it.
        return verify_chain(self.path.read_bytes().split(b"\n"))

    def append(self, event: str, **fields: object) -> dict[str, object]:
        """Append one record (see :meth:`append_many`)."""
        return self.append_many([(event, fields)])[0]

    def append_many(self, events: list[tuple[str, dict[str, object]]]) -> list[dict[str, object]]:
        """Append records under one exclusive lock and one fsync; the chain continues from the
        last line of the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            # the log grows with every start; read only its end
            seq, prev = _chain_head(_last_line(handle), self.path)
            written = []
            for event, fields in events:
                seq += 1
                record: dict[str, object] = {
                    "seq": seq,
                    "time": round(time.time(), 3),
                    "prev": prev,
                    "event": _safe_text(event),
                    **{_safe_text(k): _sanitised(v) for k, v in fields.items()},
                }
                record["hash"] = prev = _digest(record)
                written.append(record)
            text = "".join(
                json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in written
            )
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        return written
