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
import time
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, NamedTuple

from .errors import LoadLogCorruptError

GENESIS = "0" * 64


def _digest(record: Mapping[str, object]) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ChainState(NamedTuple):
    """Result of walking the chain."""

    records: tuple[dict[str, object], ...]
    intact: bool
    problem: str | None
    head: str


def verify_chain(lines: list[str]) -> ChainState:
    """Pure check of the chain over the file's lines."""
    prev = GENESIS
    records: list[dict[str, object]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            claimed = record.pop("hash")
        except (ValueError, KeyError, AttributeError, TypeError):
            return ChainState(tuple(records), False, f"line {number}: not a log record", prev)
        if record.get("prev") != prev or _digest(record) != claimed:
            return ChainState(tuple(records), False, f"line {number}: hash chain broken", prev)
        record["hash"] = claimed
        records.append(record)
        prev = claimed
    return ChainState(tuple(records), True, None, prev)


def _last_line(handle: BinaryIO, chunk: int = 4096) -> bytes:
    """The file's last non-empty line, read backwards from the end in chunks."""
    end = handle.seek(0, os.SEEK_END)
    data, pos = b"", end
    while pos > 0:
        step = min(chunk, pos)
        pos -= step
        handle.seek(pos)
        data = handle.read(step) + data
        stripped = data.rstrip(b"\n")
        if b"\n" in stripped:
            return stripped.rsplit(b"\n", 1)[1]
    return data.rstrip(b"\n")


class LoadLog:
    """The log file of one profile home."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> ChainState:
        if not self.path.exists():
            return ChainState((), True, None, GENESIS)
        return verify_chain(self.path.read_text("utf-8").splitlines())

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
            tail = _last_line(handle)  # the log grows with every start; read only its end
            try:
                last = json.loads(tail) if tail.strip() else None
            except ValueError as exc:
                raise LoadLogCorruptError(
                    f"{self.path}: last record is not JSON; the log was tampered with",
                    fix="keep the file for investigation and move it aside to start a new chain",
                ) from exc
            seq, prev = (int(last["seq"]), str(last["hash"])) if last else (0, GENESIS)
            written = []
            for event, fields in events:
                seq += 1
                record: dict[str, object] = {
                    "seq": seq,
                    "time": round(time.time(), 3),
                    "prev": prev,
                    "event": event,
                    **fields,
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
