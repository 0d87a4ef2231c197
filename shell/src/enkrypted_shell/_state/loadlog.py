"""Append-only, hash-chained log of every load decision (read by ``enkrypted plugins audit``).

Each line is a JSON object with ``seq``, ``time``, ``prev`` (the previous record's ``hash``),
``log_sha256`` (sha256 of every byte of the file before this line; absent in records written before
it was introduced) and the decision fields; ``hash`` is sha256 over the canonical JSON of the record
without ``hash``.  Removing, reordering or editing a line breaks the chain, which
:func:`verify_chain` reports with its line.

Every append verifies the whole chain before it writes (:meth:`LoadLog.append_many`), as ``audit``
does, without re-parsing every record: the last record's ``log_sha256`` commits to all the bytes
before it, and it was written only after those bytes verified, so hashing the file's bytes (about
1 ms per MB) and checking that one record proves the chain; any mismatch falls back to the full
walk, which decides.  A log without that field is walked once in full.

Crash safety: records are written with one ``pwrite`` and an ``fsync`` under an exclusive lock.
A crash (or ``kill -9``) in the middle of a write leaves an unterminated final line - the only
damage a crash can cause.  The next append preserves those bytes aside
(``load-log.jsonl.torn-<first 16 hex of their sha256>``, fsynced), overwrites them with a
``torn-record-preserved`` record naming their length, digest and file, and continues the chain.  A
terminated line that does not verify anywhere in the file is tampering or damage, never a crash:
:class:`LoadLogCorruptError` (exit 18).
"""

from __future__ import annotations

__all__ = ["GENESIS", "ChainState", "LoadLog", "split_torn", "verify_chain"]

import fcntl
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from ..errors import HomeError, LoadLogCorruptError
from .files import ensure_dir, fsync_dir, home_error, read_home_file, write_atomic

GENESIS = "0" * 64
_HASH_RE = re.compile(r"[0-9a-f]{64}")
TORN_EVENT = "torn-record-preserved"
_FIX = "keep the file for investigation and move it aside to start a new chain"


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
    torn: bytes = b""  # an unterminated final line (a crash during append), not in ``records``


def verify_chain(lines: Sequence[str | bytes]) -> ChainState:
    """Pure check of the chain over the file's complete lines (text, or raw bytes decoded per line
    as UTF-8: a line that is not UTF-8 breaks the chain there).  A record's ``log_sha256``, when
    present, must be the digest of the lines before it, each with its ``\\n``."""
    prev = GENESIS
    records: list[dict[str, object]] = []
    before = hashlib.sha256()
    for number, raw in enumerate(lines, start=1):
        record = _next_record(raw, prev, before.hexdigest())
        if isinstance(record, str):
            return ChainState(tuple(records), False, f"line {number}: {record}", prev)
        if record is not None:
            records.append(record)
            prev = str(record["hash"])
        before.update(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass"))
        before.update(b"\n")
    return ChainState(tuple(records), True, None, prev)


def _next_record(raw: str | bytes, prev: str, before: str) -> dict[str, object] | str | None:
    """The record on line ``raw`` if it continues the chain from ``prev`` (``before``: the digest
    of the bytes before it), None for a blank line, else why not."""
    try:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return "not UTF-8"
    if not line.strip():
        return None
    try:
        record = json.loads(line)
        if not isinstance(record, dict):
            raise TypeError("not a JSON object")
        claimed = record.pop("hash")
    except (ValueError, KeyError, TypeError, RecursionError):
        return "not a log record"
    try:
        intact = record.get("prev") == prev and _digest(record) == claimed
    except (ValueError, TypeError, RecursionError):  # lone surrogates: never written by us
        intact = False
    if not intact:
        return "hash chain broken"
    if "log_sha256" in record and record["log_sha256"] != before:
        return "the bytes before this record changed (log_sha256 differs)"
    record["hash"] = claimed
    return record


def split_torn(data: bytes) -> tuple[bytes, bytes]:
    """``(complete lines, torn tail)``: every record is written with its ``\\n``, so bytes after the
    last ``\\n`` are a write cut off by a crash."""
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


class _Head(NamedTuple):
    seq: int
    hash: str
    hasher: hashlib._Hash  # sha256 of the verified bytes the next record follows


def _fast_head(body: bytes) -> _Head | None:
    """The last record if it verifies by itself and its ``log_sha256`` matches the bytes before
    it (which were verified before it was written); None: walk the chain.  One pass of sha256
    over the file, no copy of it."""
    end = len(body)
    while end and body[end - 1 : end].isspace():  # trailing blank lines, as verify_chain skips
        end -= 1
    if end == 0:
        return None
    start = body.rfind(b"\n", 0, end) + 1
    view = memoryview(body)
    try:
        record = json.loads(body[start:end].decode("utf-8"))
        claimed = record.pop("hash")
        if not (isinstance(claimed, str) and _valid_seq(record.get("seq"))):
            return None
        hasher = hashlib.sha256(view[:start])
        if record.get("log_sha256") != hasher.hexdigest() or _digest(record) != claimed:
            return None
    except (ValueError, AttributeError, KeyError, TypeError, RecursionError):
        return None
    hasher.update(view[start:])
    return _Head(int(record["seq"]), claimed, hasher)


def _valid_seq(seq: object) -> bool:
    return isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1


def _chain_head(body: bytes, path: Path) -> _Head:
    """Where to continue the chain, after verifying the whole chain of ``body`` (the fast
    check, else the full walk); :class:`LoadLogCorruptError` if it is broken."""
    fast = _fast_head(body)
    if fast is not None:
        return fast
    state = verify_chain(body.split(b"\n"))
    if not state.intact:
        raise LoadLogCorruptError(
            f"{path}: {state.problem}; the log was tampered with or damaged", fix=_FIX
        )
    if not state.records:
        return _Head(0, GENESIS, hashlib.sha256(body))
    seq = state.records[-1].get("seq")
    if not _valid_seq(seq) or not _HASH_RE.fullmatch(state.head):
        raise LoadLogCorruptError(
            f"{path}: the last record has no int seq and 64-hex hash; the log was tampered with",
            fix=_FIX,
        )
    assert isinstance(seq, int)
    return _Head(seq, state.head, hashlib.sha256(body))


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


class LoadLog:
    """The log file of one profile home."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> ChainState:
        """The chain as ``audit`` shows it; a torn final line is reported in ``torn`` (it is
        preserved aside by the next append), not as a break."""
        data = read_home_file(self.path) or b""
        # Bytes, split on "\n" only: a bad line is reported (not a traceback), and U+2028 or
        # U+0085 inside a record (written raw: ensure_ascii=False) does not split it.
        body, torn = split_torn(data)
        return verify_chain(body.split(b"\n"))._replace(torn=torn)

    def append(self, event: str, **fields: object) -> dict[str, object]:
        """Append one record (see :meth:`append_many`)."""
        return self.append_many([(event, fields)])[0]

    def append_many(self, events: list[tuple[str, dict[str, object]]]) -> list[dict[str, object]]:
        """Verify the whole chain, then append records under one exclusive lock, one write and
        one fsync.  A torn final line is preserved aside and recorded first (module doc)."""
        fd, created = self._open()
        with os.fdopen(fd, "r+b", buffering=0) as handle:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                data = handle.read()
            except OSError as exc:
                raise home_error(self.path, exc, "read") from exc
            body, torn = split_torn(data)
            head = _chain_head(body, self.path)
            pending = list(events)
            if torn:
                pending.insert(0, (TORN_EVENT, self._preserve(torn, offset=len(body))))
            written, out = _records(pending, head)
            try:
                _pwrite_all(fd, out, len(body))  # over the torn bytes, if any
                if len(out) < len(torn):
                    os.ftruncate(fd, len(body) + len(out))
                os.fsync(fd)
            except OSError as exc:
                raise home_error(self.path, exc, "append to") from exc
        if created:
            fsync_dir(self.path.parent)
        return written[len(written) - len(events) :]

    def _open(self) -> tuple[int, bool]:
        """The log's descriptor (created 0600 if missing) and whether it was created; the file
        must be a regular file (a FIFO or directory is refused, never waited on)."""
        ensure_dir(self.path.parent)
        created = not os.path.lexists(self.path)
        try:
            fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o600
            )
        except OSError as exc:
            raise home_error(self.path, exc, "open") from exc
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise HomeError(f"cannot use {self.path}: it is not a regular file")
        return fd, created

    def _preserve(self, torn: bytes, *, offset: int) -> dict[str, object]:
        """Keep a torn final line aside (durably, before it is overwritten); the fields of the
        record that says so.  Named by content: a crash before the overwrite preserves it again
        under the same name."""
        digest = hashlib.sha256(torn).hexdigest()
        aside = self.path.with_name(f"{self.path.name}.torn-{digest[:16]}")
        write_atomic(aside, torn)
        return {
            "torn_bytes": len(torn),
            "torn_sha256": digest,
            "offset": offset,
            "preserved_as": aside.name,
            "reason": "an unterminated final record: a write cut off by a crash",
        }


def _records(
    events: list[tuple[str, dict[str, object]]], head: _Head
) -> tuple[list[dict[str, object]], bytes]:
    """The new records chained after ``head``, and their bytes."""
    seq, prev, before = head
    written: list[dict[str, object]] = []
    out = bytearray()
    for event, fields in events:
        seq += 1
        record: dict[str, object] = {
            "seq": seq,
            "time": round(time.time(), 3),
            "prev": prev,
            "log_sha256": before.hexdigest(),
            "event": _safe_text(event),
            **{_safe_text(k): _sanitised(v) for k, v in fields.items() if k != "log_sha256"},
        }
        record["hash"] = prev = _digest(record)
        line = (json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        before.update(line)
        out += line
        written.append(record)
    return written, bytes(out)
