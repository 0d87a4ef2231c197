"""File transfers with one peer, sans-I/O: link frames and ``now`` in, events and frames out.

The session core hands every ``0x05`` / ``0x06`` link frame to :meth:`FileTransfers.pdu_received`
and, whenever no chat PDU is waiting and the channel has room, asks :meth:`FileTransfers.next_pdu`
for one more frame (at most one chunk), so a chat message never waits behind more than one chunk.
Sealing is a parameter (``seal`` / ``open_``, the session's), so this module knows no crypto
contract; reading and writing the file are behind :class:`ChunkSource` / :class:`ChunkSink`.

Per transfer: the receiver grants ``window`` chunks (ACCEPT, then ACK every half window) and
takes only the next expected chunk of the current *round*; anything else is dropped (stale
round, duplicate) or re-requested with a RESUME that opens a new round (gap, reorder, bad length,
failed authentication, stall). At the end the receiver compares the sink's SHA-256 with the
offer's and answers DONE. :meth:`export_state` / :meth:`restore` carry transfers across a
restart; the receiver drives every resume.
"""

from __future__ import annotations

__all__ = [
    "ChunkSink",
    "ChunkSource",
    "FileEvent",
    "FileTransfers",
    "OfferReceived",
    "TransferCancelled",
    "TransferComplete",
    "TransferFailed",
    "TransferInfo",
    "TransferRejected",
    "TransferStarted",
]

import json
import logging
import secrets
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from ._fastpath import fast_key, open_fast, parse_fast, seal_fast
from ._names import safe_name
from ._state import parse_state
from ._wire import (
    ACCEPT,
    CANCEL,
    DONE,
    FAST_FRAME,
    REJECT,
    RESUME,
    SEALED_FRAME,
    SHARE_BYTES,
    TID_BYTES,
    Ack,
    Chunk,
    FileLimits,
    FilePdu,
    FileUsageError,
    Grant,
    MalformedFilePdu,
    Offer,
    Reason,
    chunk_count,
    decode,
    encode,
)

_log = logging.getLogger("enkrypted.p2p.files")

Seal = Callable[[bytes], bytes]
Open = Callable[[bytes], "bytes | None"]
MAX_WINDOW: Final = 4096
RESTORE_ROUND_SKIP: Final = 8
"""Rounds a restored receiver skips: grants it sent after its last export are never reissued."""
_FINISHED_KEPT: Final = 256
_DONE_RESENT: Final = 16


class ChunkSource(Protocol):
    """Where an outgoing file's bytes come from (streamed; :class:`FileSource` on disk)."""

    @property
    def descriptor(self) -> str: ...

    def read(self, offset: int, length: int) -> bytes: ...


class ChunkSink(Protocol):
    """Where verified chunks of an incoming file go (:class:`EncryptedSink` on disk)."""

    @property
    def descriptor(self) -> str: ...

    def write(self, index: int, round_: int, data: bytes) -> None: ...

    def sync(self) -> None: ...

    def digest(self) -> bytes: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


# ------------------------------------------------------------------------------------- events
@dataclass(frozen=True, slots=True)
class OfferReceived:
    """The peer offers a file; ``name`` is already made safe (:func:`safe_name`)."""

    transfer_id: str
    name: str
    size: int
    sha256: str
    media_type: str
    fast: bool
    chunk_size: int


@dataclass(frozen=True, slots=True)
class TransferStarted:
    transfer_id: str


@dataclass(frozen=True, slots=True)
class TransferRejected:
    transfer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TransferCancelled:
    transfer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TransferComplete:
    transfer_id: str
    outgoing: bool


@dataclass(frozen=True, slots=True)
class TransferFailed:
    transfer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class TransferInfo:
    """A live transfer as the application sees it (progress bars, listings)."""

    transfer_id: str
    outgoing: bool
    name: str
    size: int
    sha256: str
    media_type: str
    fast: bool
    chunk_size: int
    running: bool
    done_bytes: int
    """Bytes sent (outgoing) or verified (incoming) so far."""


FileEvent = (OfferReceived | TransferStarted | TransferRejected | TransferCancelled
             | TransferComplete | TransferFailed)


@dataclass(slots=True)
class _Transfer:
    tid: bytes
    outgoing: bool
    size: int
    chunk_size: int
    fast: bool
    sha256: bytes
    name: str
    media_type: str
    my_share: bytes
    peer_share: bytes | None = None
    running: bool = False
    round: int = -1
    next: int = 0
    """Sender: the next chunk to send. Receiver: the next expected (= verified chunks)."""
    acked: int = 0
    window: int = 0
    acked_sent: int = 0
    progress_at: float = 0.0
    source: ChunkSource | None = None
    sink: ChunkSink | None = None
    key: bytes | None = None

    @property
    def total(self) -> int:
        return chunk_count(self.size, self.chunk_size)

    def length(self, index: int) -> int:
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def fast_key(self) -> bytes:
        if self.key is None:
            assert self.peer_share is not None
            pair = ((self.my_share, self.peer_share) if self.outgoing
                    else (self.peer_share, self.my_share))
            self.key = fast_key(self.tid, pair[0], pair[1], self.round)
        return self.key


class FileTransfers:
    """Offers, accepts, chunks and resumes of the file transfers with one peer."""

    def __init__(self, seal: Seal, open_: Open, limits: FileLimits | None = None, *,
                 random: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self._seal, self._open = seal, open_
        self.limits = limits or FileLimits()
        self._random = random
        self._transfers: dict[bytes, _Transfer] = {}
        self._control: deque[bytes] = deque()
        self._rotation: deque[bytes] = deque()
        self._finished: OrderedDict[bytes, str] = OrderedDict()
        self._events: list[FileEvent] = []
        self._announced: set[bytes] = set()  # incoming offers told to this process's application
        self.dropped: Counter[str] = Counter()
        self.link_up = True

    # ------------------------------------------------------------------------- local commands
    def offer(self, source: ChunkSource, *, name: str, size: int, sha256: bytes,
              media_type: str = "application/octet-stream", fast: bool = False) -> str:
        """Offer a file; its transfer id (hex). ``fast`` is the reduced-protection path."""
        outgoing = sum(t.outgoing for t in self._transfers.values())
        if outgoing >= self.limits.max_outgoing:
            raise FileUsageError(f"at most {self.limits.max_outgoing} outgoing transfers at once")
        if not 0 <= size <= self.limits.max_file_bytes or len(sha256) != 32:
            raise FileUsageError(f"a file is 0..{self.limits.max_file_bytes} bytes with a "
                                 "32-byte SHA-256")
        tid = self._random(TID_BYTES)
        t = _Transfer(tid, True, size, self.limits.chunk_bytes, fast, sha256, name, media_type,
                      self._random(SHARE_BYTES), source=source)
        self._queue(self._offer_pdu(t))  # encodes (and so validates) before registering
        self._transfers[tid] = t
        self._rotation.append(tid)
        return tid.hex()

    def accept(self, transfer_id: str, sink: ChunkSink, now: float) -> list[FileEvent]:
        """Accept an offered file into ``sink`` (check size and free disk before)."""
        t = self._local(transfer_id, outgoing=False)
        if t.running:
            raise FileUsageError(f"transfer {transfer_id} was already accepted")
        t.sink, t.running, t.round, t.progress_at = sink, True, 0, now
        t.acked_sent = 0
        self._queue(Grant(ACCEPT, t.tid, 0, 0, self.limits.window_chunks, t.my_share))
        if t.total == 0:
            self._finish_incoming(t)
        return self.take_events()

    def reject(self, transfer_id: str, reason: str = "declined") -> None:
        t = self._local(transfer_id, outgoing=False)
        if t.running:
            raise FileUsageError(f"transfer {transfer_id} is running: cancel it instead")
        self._queue(Reason(REJECT, t.tid, reason))
        self._forget(t, reason)

    def cancel(self, transfer_id: str) -> None:
        """Stop a transfer in either direction; the peer is told, a partial file deleted."""
        t = self._local(transfer_id, outgoing=None)
        self._queue(Reason(CANCEL, t.tid, "cancelled"))
        self._forget(t, "cancelled")

    def progress(self, transfer_id: str) -> tuple[int, int]:
        """``(verified or sent chunks, total chunks)`` of a live transfer."""
        t = self._local(transfer_id, outgoing=None)
        return t.next, t.total

    def transfers(self) -> list[TransferInfo]:
        """Every live transfer (offered, running or waiting for a resume)."""
        return [TransferInfo(t.tid.hex(), t.outgoing, t.name, t.size, t.sha256.hex(),
                             t.media_type, t.fast, t.chunk_size, t.running,
                             min(t.size, t.next * t.chunk_size))
                for t in self._transfers.values()]

    def _local(self, transfer_id: str, *, outgoing: bool | None) -> _Transfer:
        try:
            t = self._transfers[bytes.fromhex(transfer_id)]
        except (ValueError, KeyError):
            raise FileUsageError(f"no transfer {transfer_id!r}") from None
        if outgoing is not None and t.outgoing is not outgoing:
            raise FileUsageError(f"transfer {transfer_id} is {'out' if t.outgoing else 'in'}going")
        return t

    # ------------------------------------------------------------------------- sending
    def has_pending(self) -> bool:
        """Whether :meth:`next_pdu` has something to give (control PDUs or granted chunks)."""
        return self.link_up and (bool(self._control) or any(
            self._sendable(t) for t in self._transfers.values()))

    def next_pdu(self, budget: int) -> bytes | None:
        """One link frame of at most about ``budget`` bytes: a control PDU first, else the next
        granted chunk of the transfers in turn (round robin); ``None`` if nothing fits now.
        Call it only when no chat PDU is waiting: that is the whole fairness rule."""
        if not self.link_up:
            return None
        if self._control:
            return bytes([SEALED_FRAME]) + self._seal(self._control.popleft())
        for _ in range(len(self._rotation)):
            tid = self._rotation[0]
            self._rotation.rotate(-1)
            t = self._transfers.get(tid)
            if t is None:
                self._rotation.remove(tid)
                continue
            if self._sendable(t):
                return self._chunk_frame(t) if budget >= t.length(t.next) else None
        return None

    def _sendable(self, t: _Transfer) -> bool:
        return (t.outgoing and t.running and t.next < t.total
                and t.next < t.acked + t.window)

    def _chunk_frame(self, t: _Transfer) -> bytes | None:
        assert t.source is not None
        index, length = t.next, t.length(t.next)
        data = t.source.read(index * t.chunk_size, length)
        if len(data) != length:  # the file shrank under us: the hash would fail anyway
            self._fail(t, "failed", f"source returned {len(data)} of {length} bytes")
            return bytes([SEALED_FRAME]) + self._seal(self._control.popleft())
        t.next += 1
        if t.fast:
            return seal_fast(t.fast_key(), t.tid, t.round, index, data)
        return bytes([SEALED_FRAME]) + self._seal(encode(Chunk(t.tid, t.round, index, data)))

    def _queue(self, pdu: FilePdu) -> None:
        self._control.append(encode(pdu))

    def _offer_pdu(self, t: _Transfer) -> Offer:
        return Offer(t.tid, t.size, t.chunk_size, t.fast, t.sha256, t.my_share, t.name,
                     t.media_type)

    # ------------------------------------------------------------------------- receiving
    def pdu_received(self, frame: bytes, now: float) -> list[FileEvent]:
        """One ``0x05`` or ``0x06`` link frame. Never raises for the peer's fault: what cannot
        be used is dropped and counted in :attr:`dropped`."""
        if frame[:1] == bytes([FAST_FRAME]):
            self._fast_chunk(frame, now)
            return self.take_events()
        if frame[:1] != bytes([SEALED_FRAME]):
            return self._drop("not-a-file-frame")
        plain = self._open(frame[1:])
        if plain is None:
            return self._drop("undecryptable")
        try:
            pdu = decode(plain)
        except MalformedFilePdu as exc:
            _log.info("malformed file PDU: %s", exc)
            return self._drop("malformed")
        if isinstance(pdu, Offer):
            self._on_offer(pdu)
        elif isinstance(pdu, Grant):
            self._on_grant(pdu)
        elif isinstance(pdu, Ack):
            self._on_ack(pdu)
        elif isinstance(pdu, Reason):
            self._on_reason(pdu)
        else:
            self._on_chunk(pdu, now)
        return self.take_events()

    def take_events(self) -> list[FileEvent]:
        events, self._events = self._events, []
        return events

    def _drop(self, why: str) -> list[FileEvent]:
        self.dropped[why] += 1
        _log.debug("dropped a file PDU: %s", why)
        return self.take_events()

    def _on_offer(self, o: Offer) -> None:
        if o.tid in self._finished:
            self._queue(Reason(DONE, o.tid, self._finished[o.tid]))
            return
        known = self._transfers.get(o.tid)
        if known is not None:
            if not known.outgoing and not known.running and o.tid not in self._announced:
                # restored from a state saved before the application answered it (the process
                # stopped in between): the sender's repeat asks this application again
                self._announce(known)
            else:
                self._drop("duplicate-offer")
            return
        incoming = sum(not t.outgoing for t in self._transfers.values())
        if incoming >= self.limits.max_incoming or o.size > self.limits.max_file_bytes:
            self._queue(Reason(REJECT, o.tid, "busy" if incoming >= self.limits.max_incoming
                               else "too-large"))
            self._drop("refused-offer")
            return
        t = _Transfer(o.tid, False, o.size, o.chunk_size, o.fast, o.sha256, safe_name(o.name),
                      o.media_type, self._random(SHARE_BYTES), peer_share=o.share)
        self._transfers[o.tid] = t
        self._announce(t)

    def _announce(self, t: _Transfer) -> None:
        self._announced.add(t.tid)
        self._events.append(OfferReceived(t.tid.hex(), t.name, t.size, t.sha256.hex(),
                                          t.media_type or "application/octet-stream", t.fast,
                                          t.chunk_size))

    def _peer(self, tid: bytes, *, outgoing: bool) -> _Transfer | None:
        t = self._transfers.get(tid)
        if t is None or t.outgoing is not outgoing:
            self._drop("unknown-transfer")
            return None
        return t

    def _on_grant(self, g: Grant) -> None:
        t = self._peer(g.tid, outgoing=True)
        if t is None:
            return
        if not (g.start <= t.total and 0 < g.window <= MAX_WINDOW):
            self._drop("malformed-grant")
        elif t.peer_share is not None and g.share != t.peer_share:
            self._drop("share-changed")
        elif g.round <= t.round or (g.kind == ACCEPT and t.running):
            self._drop("stale-grant")  # a round is never reopened: no fast-path nonce reuse
        else:
            started = not t.running
            t.peer_share, t.running, t.round, t.key = g.share, True, g.round, None
            t.next = t.acked = g.start
            t.window = g.window
            if started:
                self._events.append(TransferStarted(t.tid.hex()))

    def _on_ack(self, a: Ack) -> None:
        t = self._peer(a.tid, outgoing=True)
        if t is None:
            return
        if a.round != t.round or not (t.acked <= a.next <= t.next and 0 < a.window <= MAX_WINDOW):
            self._drop("stale-ack")
            return
        t.acked, t.window = a.next, a.window

    def _on_reason(self, r: Reason) -> None:
        t = self._transfers.get(r.tid)
        if t is None:
            self._drop("unknown-transfer")
        elif r.kind == CANCEL:
            self._forget(t, r.reason)
            self._events.append(TransferCancelled(t.tid.hex(), r.reason))
        elif r.kind == REJECT and t.outgoing and not t.running:
            self._forget(t, r.reason)
            self._events.append(TransferRejected(t.tid.hex(), r.reason))
        elif r.kind == DONE and t.outgoing and t.running and t.next == t.total:
            self._forget(t, r.reason)
            self._events.append(TransferComplete(t.tid.hex(), True) if r.reason == "ok"
                                else TransferFailed(t.tid.hex(), r.reason))
        else:
            self._drop("unexpected-reason")

    def _on_chunk(self, c: Chunk, now: float) -> None:
        t = self._peer(c.tid, outgoing=False)
        if t is not None and t.fast:
            self._drop("wrong-path")
        elif t is not None:
            self._take_chunk(t, c.round, c.index, c.data, now)

    def _fast_chunk(self, frame: bytes, now: float) -> None:
        header = parse_fast(frame)
        if header is None:
            self._drop("malformed")
            return
        tid, round_, index = header
        t = self._peer(tid, outgoing=False)
        if t is None:
            return
        if not (t.fast and t.running):
            self._drop("wrong-path")
        elif round_ != t.round:
            self._drop("stale-round")
        else:
            data = open_fast(t.fast_key(), frame)
            if data is None:
                self._rerequest(t, "corrupt-chunk", now)
            else:
                self._take_chunk(t, round_, index, data, now)

    def _take_chunk(self, t: _Transfer, round_: int, index: int, data: bytes, now: float) -> None:
        if not t.running or round_ != t.round:
            self._drop("stale-round")  # a replay or a chunk sent before our last re-request
        elif index < t.next:
            self._drop("duplicate")
        elif index > t.next:
            self._rerequest(t, "reordered", now)
        elif len(data) != t.length(index):
            self._rerequest(t, "bad-length", now)
        else:
            assert t.sink is not None
            t.sink.write(index, round_, data)
            t.next += 1
            t.progress_at = now
            if t.next == t.total:
                self._finish_incoming(t)
            elif t.next - t.acked_sent >= max(1, self.limits.window_chunks // 2):
                t.acked_sent = t.next
                self._queue(Ack(t.tid, t.round, t.next, self.limits.window_chunks))

    def _rerequest(self, t: _Transfer, why: str | None, now: float) -> None:
        """Ask again from the last verified chunk, in a new round (old-round chunks then drop);
        ``why`` is the peer's fault counted in :attr:`dropped` (``None`` for a resume)."""
        if why is not None:
            self.dropped[why] += 1
        if t.round + 1 > self.limits.max_rounds:
            self._fail(t, "too-many-retries", f"more than {self.limits.max_rounds} re-requests")
            return
        t.round, t.key, t.acked_sent, t.progress_at = t.round + 1, None, t.next, now
        self._queue(Grant(RESUME, t.tid, t.round, t.next, self.limits.window_chunks, t.my_share))

    def _finish_incoming(self, t: _Transfer) -> None:
        assert t.sink is not None
        if t.sink.digest() != t.sha256:
            self._fail(t, "hash-mismatch", "the file's SHA-256 is not the offered one")
            return
        try:
            t.sink.commit()
        except OSError as exc:
            self._fail(t, "failed", f"cannot store the file: {exc}")
            return
        self._queue(Reason(DONE, t.tid, "ok"))
        self._forget(t, "ok", discard=False)
        self._events.append(TransferComplete(t.tid.hex(), False))

    def _fail(self, t: _Transfer, reason: str, detail: str) -> None:
        _log.info("file transfer %s failed: %s", t.tid.hex(), detail)
        self._queue(Reason(CANCEL if t.outgoing or t.next < t.total else DONE, t.tid, reason))
        self._forget(t, reason)
        self._events.append(TransferFailed(t.tid.hex(), reason))

    def _forget(self, t: _Transfer, reason: str, *, discard: bool = True) -> None:
        del self._transfers[t.tid]
        self._announced.discard(t.tid)
        if discard and t.sink is not None:
            t.sink.discard()
        close = getattr(t.source, "close", None)  # FileSource: the file stays open until here
        if callable(close):
            close()
        if not t.outgoing:
            self._finished[t.tid] = reason
            while len(self._finished) > _FINISHED_KEPT:
                self._finished.popitem(last=False)

    # ------------------------------------------------------------------------- timers, link
    def next_deadline(self) -> float | None:
        times = [t.progress_at + self.limits.stall_timeout_s for t in self._transfers.values()
                 if not t.outgoing and t.running]
        return min(times) if times and self.link_up else None

    def handle_timeout(self, now: float) -> list[FileEvent]:
        """A running incoming transfer without progress for ``stall_timeout_s`` is re-requested."""
        if self.link_up:
            for t in list(self._transfers.values()):
                if (not t.outgoing and t.running
                        and now >= t.progress_at + self.limits.stall_timeout_s):
                    self._rerequest(t, "stall", now)
        return self.take_events()

    def link_lost(self) -> None:
        """The channel is gone: what was queued or in flight is lost; senders wait for a RESUME."""
        self.link_up = False
        self._control.clear()
        for t in self._transfers.values():
            if t.outgoing:
                t.acked, t.window = t.next, 0

    def link_restored(self, now: float) -> None:
        """A channel (and a session) again: re-offer what was not answered, re-request every
        running incoming transfer from its last verified chunk, repeat our last DONEs."""
        self.link_up = True
        for t in list(self._transfers.values()):
            if t.outgoing and not t.running:
                self._queue(self._offer_pdu(t))
            elif not t.outgoing and t.running:
                self._rerequest(t, None, now)
        for tid, reason in list(self._finished.items())[-_DONE_RESENT:]:
            if reason in ("ok", "hash-mismatch"):
                self._queue(Reason(DONE, tid, reason))

    # ------------------------------------------------------------------------- resume state
    def export_state(self) -> bytes:
        """Every live transfer (secret: it holds the fast-path shares; store it encrypted).
        Incoming sinks are synced first, so the verified counts are on disk."""
        items = []
        for t in self._transfers.values():
            if t.sink is not None:
                t.sink.sync()
            handle = t.source or t.sink
            items.append({
                "tid": t.tid.hex(), "out": t.outgoing, "size": t.size, "cs": t.chunk_size,
                "fast": t.fast, "sha": t.sha256.hex(), "name": t.name, "mt": t.media_type,
                "mine": t.my_share.hex(), "peer": t.peer_share.hex() if t.peer_share else None,
                "running": t.running, "round": t.round, "next": t.next,
                "handle": handle.descriptor if handle else None})
        finished = [[tid.hex(), reason] for tid, reason in self._finished.items()]
        return json.dumps({"v": 1, "transfers": items, "finished": finished}).encode()

    @classmethod
    def restore(cls, state: bytes, seal: Seal, open_: Open, *,
                sources: Callable[[str], ChunkSource], sinks: Callable[[str, int], ChunkSink],
                limits: FileLimits | None = None) -> FileTransfers:
        """A core from :meth:`export_state`, link down (call :meth:`link_restored`).
        ``sinks(descriptor, verified_chunks)`` must reopen a partial file at that count."""
        core = cls(seal, open_, limits)
        core.link_up = False
        items, finished = parse_state(state)
        for item in items:
            t = _Transfer(**item.fields)
            if t.outgoing and item.handle is not None:
                t.source = sources(item.handle)
                core._rotation.append(t.tid)
            elif t.running and item.handle is not None:
                t.sink = sinks(item.handle, t.next)
                t.round += RESTORE_ROUND_SKIP
            core._transfers[t.tid] = t
        core._finished.update(finished)
        return core
