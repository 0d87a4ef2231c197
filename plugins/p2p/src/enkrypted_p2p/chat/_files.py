"""Files in the chat service (p2p contract 2.1, :class:`FileChatService`): the per-service desk
that builds each peer's file core, turns its events into the contract's, stores what arrives
encrypted at rest and reports progress.

* **Where received files go**: ``<context.home>/files`` as :class:`FilesDirectory` records, each
  file's key and metadata in the profile store's ``files`` table.  Without ``AppContext.store``
  (no unlocked profile) nothing is received: an offer is declined and a one-line
  :class:`ChatProblem` says why - keys are never kept in clear.
* **Auto-accept** (``accept_files=True``, the ``listen --accept-files DIR`` flag): offers are
  accepted as they come; otherwise a :class:`FileOffered` event waits for :meth:`accept`.
* **Progress**: a :class:`FileProgress` per live transfer whose byte count moved, at most every
  :data:`PROGRESS_INTERVAL_S` (rate: a moving average; ETA from it).
* **Restart**: the peer's file core is restored with the session (``sources`` reopen the sent
  file by path, ``sinks`` reopen the partial encrypted file at its verified count).
"""

from __future__ import annotations

__all__ = ["PROGRESS_INTERVAL_S", "FileDesk"]

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from enkrypted_shell.contracts import (
    AppContext,
    ChatEvent,
    ChatProblem,
    FileCompleted,
    FileFailed,
    FileOffered,
    FileProgress,
    ProfileStore,
    StoredFile,
)

from ..files import (
    EncryptedSink,
    FileEvent,
    FileLimits,
    FilesDirectory,
    FileSource,
    FileTransferError,
    FileTransfers,
    FileUsageError,
    OfferReceived,
    TransferCancelled,
    TransferComplete,
    TransferFailed,
    TransferRejected,
    hash_file,
)
from ..files._disk import TABLE as FILES_TABLE
from ..session import FilesFactory

_log = logging.getLogger("enkrypted.p2p.chat.files")

PROGRESS_INTERVAL_S: Final = 0.25
WINDOW_CHUNKS: Final = 8
"""Chunks we let a peer have in flight to us (512 KiB): a text message sent during a transfer
arrives behind at most this much, whatever the link's speed (the core's default is 32)."""
_RATE_WEIGHT: Final = 0.3
NO_STORE: Final = ("cannot receive files without an unlocked profile store "
                   "(their keys are never kept in clear)")


@dataclass(slots=True)
class _Meta:
    peer_id: str
    outgoing: bool
    name: str
    size: int
    sha256: str
    fast: bool
    chunk_size: int = 0
    media_type: str = "application/octet-stream"
    last_bytes: int = -1
    last_at: float = 0.0
    rate: float = 0.0


class FileDesk:
    """Owned by :class:`~._service.EndpointChat`; ``emit`` queues a contract event."""

    def __init__(self, context: AppContext, store: ProfileStore | None,
                 emit: Callable[[ChatEvent], Awaitable[None]], *, accept_files: bool,
                 limits: FileLimits | None = None) -> None:
        self._context, self._store, self._emit = context, store, emit
        self.accept_files = accept_files
        self.limits = limits or FileLimits(window_chunks=WINDOW_CHUNKS)
        self.directory: FilesDirectory | None = None
        if store is not None:
            self.directory = FilesDirectory(Path(context.home) / "files", store, self.limits)
        self._meta: dict[str, _Meta] = {}

    # ------------------------------------------------------------------ the peer's file core
    def factory(self, peer_id: str) -> FilesFactory:
        """How the session core of ``peer_id`` builds its file core (fresh or restored)."""
        def build(seal: Callable[[bytes], bytes], open_: Callable[[bytes], bytes | None],
                  saved: bytes | None) -> FileTransfers:
            if saved is not None:
                try:
                    core = FileTransfers.restore(saved, seal, open_, sources=_source,
                                                 sinks=self._sink, limits=self.limits)
                except (FileTransferError, OSError, ValueError) as exc:
                    _log.warning("file transfers with %s not restored: %s", peer_id, exc)
                else:
                    self._learn(peer_id, core)
                    return core
            return FileTransfers(seal, open_, self.limits)
        return build

    def _sink(self, descriptor: str, verified: int) -> EncryptedSink:
        if self.directory is None:
            raise FileUsageError(NO_STORE)
        return self.directory.reopen_sink(descriptor, verified)

    def _learn(self, peer_id: str, core: FileTransfers) -> None:
        for t in core.transfers():
            self._meta[t.transfer_id] = _Meta(peer_id, t.outgoing, t.name, t.size, t.sha256,
                                              t.fast, t.chunk_size, t.media_type)

    # ------------------------------------------------------------------ local commands
    async def offer(self, peer_id: str, core: FileTransfers, path: Path, *, fast: bool) -> str:
        path = Path(path)
        if not path.is_file():
            raise FileUsageError(f"{path} is not a readable file")
        size, digest = await asyncio.to_thread(hash_file, path)
        source = FileSource(path)
        try:
            tid = core.offer(source, name=path.name, size=size, sha256=digest, fast=fast)
        except BaseException:
            source.close()
            raise
        self._meta[tid] = _Meta(peer_id, True, path.name, size, digest.hex(), fast,
                                self.limits.chunk_bytes)
        return tid

    def accept(self, peer_id: str, core: FileTransfers, transfer_id: str, now: float
               ) -> list[FileEvent]:
        meta = self._meta.get(transfer_id)
        if meta is None or meta.outgoing or meta.peer_id != peer_id:
            raise FileUsageError(f"no file {transfer_id!r} offered by {peer_id!r}")
        if self.directory is None:
            raise FileUsageError(NO_STORE)
        sink = self.directory.open_sink(transfer_id, name=meta.name, size=meta.size,
                                        chunk_size=meta.chunk_size, sha256=meta.sha256,
                                        media_type=meta.media_type, peer_id=peer_id,
                                        fast=meta.fast)
        try:
            return core.accept(transfer_id, sink, now)
        except BaseException:
            sink.discard()
            raise

    def check_peer(self, peer_id: str, transfer_id: str) -> None:
        meta = self._meta.get(transfer_id)
        if meta is None or meta.peer_id != peer_id:
            raise FileUsageError(f"no transfer {transfer_id!r} with {peer_id!r}")

    def forget(self, transfer_id: str) -> None:
        self._meta.pop(transfer_id, None)

    # ------------------------------------------------------------------ events of the file core
    async def on_event(self, peer_id: str, core: FileTransfers, event: FileEvent,
                       now: float) -> bool:
        """One event of ``peer_id``'s file core; ``True`` if the core has new frames to send."""
        if isinstance(event, OfferReceived):
            self._meta[event.transfer_id] = _Meta(peer_id, False, event.name, event.size,
                                                  event.sha256, event.fast, event.chunk_size,
                                                  event.media_type)
            if not self.accept_files:
                await self._emit(FileOffered(peer_id, event.transfer_id, event.name, event.size,
                                             event.sha256, event.fast))
                return False
            try:
                for follow in self.accept(peer_id, core, event.transfer_id, now):
                    await self.on_event(peer_id, core, follow, now)
            except (FileTransferError, OSError) as exc:
                core.reject(event.transfer_id, "no-space" if "space" in str(exc) else "declined")
                self.forget(event.transfer_id)
                await self._emit(ChatProblem(peer_id, "local", f"file {event.name!r} refused: "
                                                               f"{exc}"))
                await self._emit(FileFailed(peer_id, event.transfer_id, False, str(exc)))
            return True
        meta = self._meta.get(event.transfer_id)
        outgoing = meta.outgoing if meta is not None else False
        if isinstance(event, TransferComplete):
            self._meta.pop(event.transfer_id, None)
            if meta is not None:
                await self._emit(FileCompleted(peer_id, event.transfer_id, event.outgoing,
                                               meta.name, meta.size, meta.sha256, meta.fast))
        elif isinstance(event, TransferRejected | TransferCancelled | TransferFailed):
            self._meta.pop(event.transfer_id, None)
            kind = type(event).__name__.removeprefix("Transfer").lower()
            await self._emit(FileFailed(peer_id, event.transfer_id, outgoing,
                                        f"{kind}: {event.reason}"))
        return False

    async def progress(self, cores: Sequence[tuple[str, FileTransfers]], now: float) -> None:
        """A :class:`FileProgress` for every live transfer whose byte count moved."""
        for peer_id, core in cores:
            for t in core.transfers():
                meta = self._meta.get(t.transfer_id)
                if meta is None or not t.running or t.done_bytes == meta.last_bytes:
                    continue
                if meta.last_bytes >= 0 and now > meta.last_at:
                    rate = (t.done_bytes - meta.last_bytes) / (now - meta.last_at)
                    meta.rate = rate if meta.rate == 0 else (
                        _RATE_WEIGHT * rate + (1 - _RATE_WEIGHT) * meta.rate)
                meta.last_bytes, meta.last_at = t.done_bytes, now
                eta = (t.size - t.done_bytes) / meta.rate if meta.rate > 0 else None
                await self._emit(FileProgress(peer_id, t.transfer_id, t.outgoing, t.done_bytes,
                                              t.size, meta.rate, eta))

    # ------------------------------------------------------------------ stored files
    def files(self) -> list[StoredFile]:
        if self.directory is None or self._store is None:
            return []
        rows = list(self._store.items(FILES_TABLE))
        return [StoredFile(info.transfer_id, info.name, info.size, info.sha256, peer, fast)
                for info, peer, fast in self.directory.stored(rows)]

    def export(self, file_id: str, destination: Path) -> Path:
        if self.directory is None:
            raise FileUsageError("no profile store: there are no stored files to export")
        return self.directory.export(file_id, Path(destination))


def _source(descriptor: str) -> FileSource:
    return FileSource(Path(descriptor))
