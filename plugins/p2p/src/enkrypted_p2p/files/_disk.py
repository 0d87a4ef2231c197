"""Files on disk: streamed reading of what we send, and received files encrypted at rest.

A received file lives in the profile's files directory as ``<transfer id>.part`` while it
arrives and ``<transfer id>.enkf`` once verified: never under the peer's name. It is a sequence of
fixed-stride records, one per chunk::

    round u32 || AES-256-GCM(file_key, nonce = round u32 || index u32 || 0x00000000,
                             chunk, aad = tid || index u32)

``file_key`` is random per file and kept, with the metadata, in the profile store's ``files``
table (itself sealed at rest, 4 MiB per value is plenty for a key and a name). A chunk index is
written again only in a later round (after a resume), so a (key, nonce) pair is never reused.
:meth:`FilesDirectory.export` decrypts to a user-chosen path, streamed, and checks the SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._names import create_unique, safe_name
from ._wire import TID_BYTES, FileLimits, FileTransferError, FileUsageError, InsufficientSpace

TABLE: Final = "files"
_ROUND: Final = struct.Struct(">I")
_RECORD_OVERHEAD: Final = _ROUND.size + 16
_READ_BLOCK: Final = 1024 * 1024


class StoredFileDamaged(FileTransferError):
    """A received file on disk fails authentication or its hash (altered or truncated)."""


class KeyTable(Protocol):
    """The part of the profile store (contract ``store`` 1.0) this module uses."""

    def get(self, table: str, key: bytes) -> bytes | None: ...

    def put(self, table: str, key: bytes, value: bytes) -> None: ...

    def delete(self, table: str, key: bytes) -> bool: ...


def hash_file(path: Path) -> tuple[int, bytes]:
    """``(size, sha256)`` of a file, read in 1 MiB blocks (for an offer)."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while block := f.read(_READ_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.digest()


class FileSource:
    """An outgoing file read chunk by chunk (never whole)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: BinaryIO = self.path.open("rb")

    @property
    def descriptor(self) -> str:
        return str(self.path)

    def read(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(length)

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    transfer_id: str
    name: str
    size: int
    sha256: str
    media_type: str
    complete: bool


class EncryptedSink:
    """An incoming file, written chunk by chunk, encrypted, to ``<tid>.part``."""

    def __init__(self, directory: FilesDirectory, tid: bytes, key: bytes, size: int,
                 chunk_size: int, *, verified: int | None = None) -> None:
        self._dir, self._tid, self._aead = directory, tid, AESGCM(key)
        self._size, self._chunk_size = size, chunk_size
        self._stride = chunk_size + _RECORD_OVERHEAD
        self.path = directory.root / f"{tid.hex()}.part"
        self._hash = hashlib.sha256()
        self._count = 0
        if verified is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            self._file: BinaryIO = os.fdopen(fd, "r+b")
        else:
            self._file = self.path.open("r+b")
            self._reopen(verified)

    @property
    def descriptor(self) -> str:
        return self._tid.hex()

    def _reopen(self, verified: int) -> None:
        if os.fstat(self._file.fileno()).st_size < verified * self._stride:
            raise StoredFileDamaged(f"{self.path.name} holds fewer than {verified} chunks")
        self._file.truncate(verified * self._stride)
        for chunk in _records(self._file, self._aead, self._tid, self._stride, verified):
            self._hash.update(chunk)
        self._count = verified

    def write(self, index: int, round_: int, data: bytes) -> None:
        if index != self._count:
            raise FileUsageError(f"chunk {index} written out of order (expected {self._count})")
        nonce = _ROUND.pack(round_) + struct.pack(">I", index) + bytes(4)
        sealed = self._aead.encrypt(nonce, data, self._tid + struct.pack(">I", index))
        self._file.seek(index * self._stride)
        self._file.write(_ROUND.pack(round_) + sealed)
        self._hash.update(data)
        self._count += 1

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def digest(self) -> bytes:
        return self._hash.digest()

    def commit(self) -> None:
        """Verified: make it durable and rename ``.part`` to ``.enkf`` (never over a file)."""
        self.sync()
        self._file.close()
        final = self.path.with_suffix(".enkf")
        os.link(self.path, final)  # FileExistsError rather than an overwrite
        self.path.unlink()
        _fsync_dir(self._dir.root)
        self._dir.mark_complete(self._tid)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)
        self._dir.forget(self._tid)


def _records(f: BinaryIO, aead: AESGCM, tid: bytes, stride: int, count: int) -> Iterator[bytes]:
    f.seek(0)
    for index in range(count):
        record = f.read(stride)
        if len(record) < _RECORD_OVERHEAD:
            raise StoredFileDamaged(f"record {index} is truncated")
        nonce = record[:4] + struct.pack(">I", index) + bytes(4)
        try:
            yield aead.decrypt(nonce, record[4:], tid + struct.pack(">I", index))
        except InvalidTag:
            raise StoredFileDamaged(f"record {index} fails authentication") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesDirectory:
    """The profile's files directory and its keys in the store's ``files`` table."""

    def __init__(self, root: Path, store: KeyTable, limits: FileLimits | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._store = store
        self.limits = limits or FileLimits()

    def check_space(self, size: int) -> None:
        """:class:`InsufficientSpace` above the size limit or if the disk would fall below the
        reserve (the encrypted file is ``size`` plus 20 bytes per chunk)."""
        if size > self.limits.max_file_bytes:
            raise InsufficientSpace(f"{size} bytes is above the limit of "
                                    f"{self.limits.max_file_bytes}")
        needed = size + size // 1024 + self.limits.free_disk_reserve_bytes
        free = shutil.disk_usage(self.root).free
        if free < needed:
            raise InsufficientSpace(f"{size} bytes offered, {free} free on the disk, "
                                    f"{needed} needed with the reserve")

    def open_sink(self, transfer_id: str, *, name: str, size: int, chunk_size: int,
                  sha256: str, media_type: str, peer_id: str = "",
                  fast: bool = False) -> EncryptedSink:
        """Check the space, keep a fresh key and the metadata (with the sending ``peer_id`` and
        whether it came over the fast path), create ``<tid>.part``."""
        tid = _tid(transfer_id)
        self.check_space(size)
        key = secrets.token_bytes(32)
        record = {"key": key.hex(), "name": safe_name(name), "size": size, "cs": chunk_size,
                  "sha256": sha256, "mt": media_type, "complete": False, "peer": peer_id,
                  "fast": fast}
        self._store.put(TABLE, tid, json.dumps(record).encode())
        return EncryptedSink(self, tid, key, size, chunk_size)

    def reopen_sink(self, transfer_id: str, verified: int) -> EncryptedSink:
        """The partial file of a restored transfer, cut back to ``verified`` chunks."""
        tid = _tid(transfer_id)
        record = self._record(tid)
        return EncryptedSink(self, tid, bytes.fromhex(record["key"]), record["size"],
                             record["cs"], verified=verified)

    def mark_complete(self, tid: bytes) -> None:
        record = self._record(tid)
        record["complete"] = True
        self._store.put(TABLE, tid, json.dumps(record).encode())

    def forget(self, tid: bytes) -> None:
        self._store.delete(TABLE, tid)

    def info(self, transfer_id: str) -> ReceivedFile:
        record = self._record(_tid(transfer_id))
        return ReceivedFile(transfer_id, record["name"], record["size"], record["sha256"],
                            record["mt"], record["complete"])

    def stored(self, records: list[tuple[bytes, bytes]]) -> list[tuple[ReceivedFile, str, bool]]:
        """The complete files among ``records`` (the store's ``files`` table rows), with the peer
        each came from and whether it came over the fast path."""
        out = []
        for tid, raw in records:
            try:
                record = json.loads(raw)
                info = ReceivedFile(tid.hex(), str(record["name"]), int(record["size"]),
                                    str(record["sha256"]), str(record["mt"]),
                                    bool(record["complete"]))
            except (ValueError, KeyError, TypeError):
                continue
            if info.complete and len(tid) == TID_BYTES:
                out.append((info, str(record.get("peer", "")), bool(record.get("fast", False))))
        return out

    def _record(self, tid: bytes) -> dict[str, Any]:
        raw = self._store.get(TABLE, tid)
        if raw is None:
            raise FileUsageError(f"no received file {tid.hex()}")
        record: dict[str, Any] = json.loads(raw)
        return record

    def export(self, transfer_id: str, destination: Path) -> Path:
        """Decrypt a complete received file to ``destination``: into it under the file's safe
        name if it is a directory (``name (1).ext`` if taken), else exactly there; never over an
        existing file. The SHA-256 is checked; a damaged file leaves nothing behind."""
        info, record = self.info(transfer_id), self._record(_tid(transfer_id))
        if not info.complete:
            raise FileUsageError(f"file {transfer_id} is not complete")
        if destination.is_dir():
            out_path, fd = create_unique(destination, info.name)
        else:
            out_path = destination
            fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            self._decrypt_into(_tid(transfer_id), record, fd, info.sha256)
        except BaseException:
            out_path.unlink(missing_ok=True)
            raise
        return out_path

    def _decrypt_into(self, tid: bytes, record: dict[str, Any], fd: int, sha: str) -> None:
        size, cs = int(record["size"]), int(record["cs"])
        aead = AESGCM(bytes.fromhex(record["key"]))
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, (self.root / f"{tid.hex()}.enkf").open("rb") as f:
            for chunk in _records(f, aead, tid, cs + _RECORD_OVERHEAD, -(-size // cs)):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha:
            raise StoredFileDamaged(f"file {tid.hex()} does not match its SHA-256")


def _tid(transfer_id: str) -> bytes:
    try:
        tid = bytes.fromhex(transfer_id)
    except ValueError:
        tid = b""
    if len(tid) != TID_BYTES:
        raise FileUsageError(f"{transfer_id!r} is not a transfer id")
    return tid
