"""The file-transfer core over an in-memory pipe with a real cascade session: every size edge on
both paths, re-requests for corrupted / replayed / reordered chunks, cancel and reject, resume
from exported state in fresh cores, and chat-first fairness (docs/protocol.md, "File transfer")."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.files import (
    FAST_FRAME,
    SEALED_FRAME,
    FileLimits,
    FileTransfers,
    LinkScheduler,
    OfferReceived,
    TransferCancelled,
    TransferComplete,
    TransferRejected,
    TransferStarted,
)
from enkrypted_shell.contracts import AppContext, CryptoService
from tests.p2p.files_pipe import MemorySink, MemorySource, Pipe, core_pair, sealing

SMALL = FileLimits(chunk_bytes=8192, window_chunks=8)


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


def offer(sender: FileTransfers, data: bytes, *, fast: bool, name: str = "f.bin") -> str:
    return sender.offer(MemorySource(data), name=name, size=len(data),
                        sha256=hashlib.sha256(data).digest(), fast=fast)


def transfer(a: FileTransfers, b: FileTransfers, data: bytes, *, fast: bool,
             pipe: Pipe | None = None) -> tuple[str, MemorySink, Pipe]:
    pipe = pipe or Pipe(a, b)
    tid = offer(a, data, fast=fast)
    pipe.run()
    offered = [e for e in pipe.events_b if isinstance(e, OfferReceived)]
    assert offered[-1].transfer_id == tid and offered[-1].size == len(data)
    assert offered[-1].fast is fast
    sink = MemorySink()
    pipe.events_b += b.accept(tid, sink, 1.0)
    pipe.run()
    return tid, sink, pipe


def test_the_public_surface_is_pinned() -> None:
    import enkrypted_p2p.files as files

    assert sorted(files.__all__) == sorted([
        "FAST_FRAME", "SEALED_FRAME", "ChunkSink", "ChunkSource", "EncryptedSink", "FileEvent",
        "FileLimits", "FileSource", "FileStateError", "FileTransferError", "FileTransfers",
        "FileUsageError", "FilesDirectory", "InsufficientSpace", "KeyTable", "LinkScheduler",
        "MalformedFilePdu", "OfferReceived", "ReceivedFile", "StoredFileDamaged",
        "TransferCancelled", "TransferComplete", "TransferFailed", "TransferInfo", "TransferRejected",
        "TransferStarted", "create_unique", "hash_file", "safe_name"])
    assert all(hasattr(files, name) for name in files.__all__)


# ------------------------------------------------------------------------------ sizes, both paths
@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
@pytest.mark.parametrize("size", [0, 1, 8191, 8192, 8193, 3 * 8192 + 5, 100_000])
def test_every_size_edge_arrives_whole_and_verified(crypto: CryptoService, size: int,
                                                    fast: bool) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    data = os.urandom(size)
    tid, sink, pipe = transfer(a, b, data, fast=fast)
    assert b"".join(sink.chunks) == data and sink.committed and not sink.discarded
    assert TransferComplete(tid, False) in pipe.events_b
    assert TransferComplete(tid, True) in pipe.events_a
    assert TransferStarted(tid) in pipe.events_a
    assert not a.dropped and not b.dropped


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_chunks_travel_as_their_path_says_and_never_in_clear(crypto: CryptoService,
                                                             fast: bool) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    frames: list[bytes] = []

    def record(sender: FileTransfers, frame: bytes) -> bytes:
        frames.append(frame)
        return frame

    data = os.urandom(5 * 8192)
    transfer(a, b, data, fast=fast, pipe=Pipe(a, b, tamper=record))
    chunk_frames = [f for f in frames if len(f) > 8192]
    assert len(chunk_frames) == 5
    assert {f[0] for f in chunk_frames} == {FAST_FRAME if fast else SEALED_FRAME}
    assert not any(data[i:i + 32] in f for f in frames for i in range(0, len(data), 4096))


def test_several_transfers_interleave_round_robin(crypto: CryptoService) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    files = [os.urandom(20 * 8192) for _ in range(3)]
    tids = [offer(a, d, fast=i == 1) for i, d in enumerate(files)]
    pipe = Pipe(a, b)
    pipe.run()
    sinks = {tid: MemorySink() for tid in tids}
    for tid in tids:
        b.accept(tid, sinks[tid], 1.0)
    while (grant := b.next_pdu(1 << 20)) is not None:
        a.pdu_received(grant, 1.0)
    for _ in range(12):  # the first 12 frames from a: the three transfers in turn
        frame = a.next_pdu(1 << 20)
        assert frame is not None
        b.pdu_received(frame, 1.0)
    assert [len(sinks[t].chunks) for t in tids] == [4, 4, 4]
    pipe.run()
    assert [b"".join(sinks[t].chunks) for t in tids] == files


# ------------------------------------------------------------------------------ flow control
def test_sender_never_has_more_than_the_window_in_flight(crypto: CryptoService) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    tid = offer(a, os.urandom(40 * 8192), fast=True)
    Pipe(a, b).run()
    b.accept(tid, MemorySink(), 1.0)
    a.pdu_received(b.next_pdu(1 << 20) or b"", 1.0)  # the ACCEPT only
    sent = 0
    while a.next_pdu(1 << 20) is not None:
        sent += 1
    assert sent == SMALL.window_chunks


def test_budget_below_a_chunk_sends_no_chunk(crypto: CryptoService) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    tid = offer(a, os.urandom(3 * 8192), fast=False)
    Pipe(a, b).run()
    b.accept(tid, MemorySink(), 1.0)
    a.pdu_received(b.next_pdu(1 << 20) or b"", 1.0)
    assert a.has_pending() and a.next_pdu(4096) is None and a.next_pdu(8192) is not None


# ------------------------------------------------------------------------------ fairness
def test_a_chat_frame_goes_out_within_one_chunk_of_being_queued(crypto: CryptoService) -> None:
    a, b, _ = core_pair(crypto)
    tid = offer(a, b"x" * (64 * 1024 * 40), fast=True)
    Pipe(a, b).run()
    b.accept(tid, MemorySink(), 1.0)
    a.pdu_received(b.next_pdu(1 << 20) or b"", 1.0)
    link = LinkScheduler(a)
    for _ in range(5):
        frame = link.next_frame(1 << 20)
        assert frame is not None and frame[0] == FAST_FRAME
    link.queue_chat(b"\x01chat")
    assert link.next_frame(1 << 20) == b"\x01chat"
    assert (link.next_frame(1 << 20) or b"")[:1] == bytes([FAST_FRAME])


# ------------------------------------------------------------------------------ integrity
@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_corrupted_chunk_is_detected_and_re_requested(crypto: CryptoService, fast: bool) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    data = os.urandom(12 * 8192)
    hit = {"n": 0}

    def corrupt(sender: FileTransfers, frame: bytes) -> bytes:
        if sender is a and len(frame) > 8000:
            hit["n"] += 1
            if hit["n"] == 4:
                return frame[:-40] + bytes(b ^ 0xFF for b in frame[-40:-20]) + frame[-20:]
        return frame

    _, sink, _ = transfer(a, b, data, fast=fast, pipe=Pipe(a, b, tamper=corrupt))
    assert b"".join(sink.chunks) == data and sink.committed
    if fast:
        assert b.dropped["corrupt-chunk"] == 1  # the fast layer caught it, a RESUME asked again
    else:
        assert b.dropped["undecryptable"] == 1  # the session caught it; the gap re-requests
        assert b.dropped["reordered"] == 1


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_reordered_and_replayed_chunks_are_dropped_or_re_requested(crypto: CryptoService,
                                                                   fast: bool) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    data = os.urandom(10 * 8192)
    held: list[bytes] = []
    seen: list[bytes] = []

    def reorder(sender: FileTransfers, frame: bytes) -> bytes | None:
        if sender is not a or len(frame) < 8000:
            return frame
        seen.append(frame)
        if len(seen) == 3:
            held.append(frame)
            return None  # chunk 2 held back: chunk 3 arrives first
        return frame

    _, sink, _ = transfer(a, b, data, fast=fast, pipe=Pipe(a, b, tamper=reorder))
    assert b"".join(sink.chunks) == data and b.dropped["reordered"] == 1
    # replay the held (old-round) chunk and an already delivered one after the end: dropped
    for frame in (held[0], seen[0]):
        b.pdu_received(frame, 2.0)
    assert b"".join(sink.chunks) == data
    assert sum(b.dropped.values()) >= 3


def test_wrong_hash_fails_the_transfer_on_both_sides(crypto: CryptoService) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    data = os.urandom(3 * 8192)
    tid = a.offer(MemorySource(data), name="x", size=len(data), sha256=bytes(32))
    pipe = Pipe(a, b)
    pipe.run()
    sink = MemorySink()
    b.accept(tid, sink, 1.0)
    pipe.run()
    assert sink.discarded and not sink.committed
    assert any(getattr(e, "reason", "") == "hash-mismatch" for e in pipe.events_b)
    assert any(getattr(e, "reason", "") == "hash-mismatch" for e in pipe.events_a)


# ------------------------------------------------------------------------------ reject, cancel
def test_reject_and_cancel_reach_the_other_side(crypto: CryptoService) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    pipe = Pipe(a, b)
    t1 = offer(a, b"one", fast=False)
    t2 = offer(a, os.urandom(30 * 8192), fast=False)
    pipe.run()
    b.reject(t1)
    sink = MemorySink()
    b.accept(t2, sink, 1.0)
    pipe.run(stop=lambda: len(sink.chunks) >= 3)
    a.cancel(t2)
    pipe.run()
    assert TransferRejected(t1, "declined") in pipe.events_a
    assert TransferCancelled(t2, "cancelled") in pipe.events_b and sink.discarded


# ------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
@pytest.mark.parametrize("restart", ["none", "receiver", "sender", "both"])
def test_kill_mid_way_and_resume_from_exported_state(crypto: CryptoService, fast: bool,
                                                     restart: str) -> None:
    a, b, (sa, sb) = core_pair(crypto, SMALL)
    data = os.urandom(40 * 8192 + 77)
    tid = offer(a, data, fast=fast)
    pipe = Pipe(a, b)
    pipe.run()
    sink = MemorySink()
    b.accept(tid, sink, 1.0)
    pipe.run(stop=lambda: len(sink.chunks) >= 17)
    state_a, state_b = a.export_state(), b.export_state()
    verified = len(sink.chunks)
    # 3 more chunks are written after the export, then the link drops with frames in flight
    pipe.run(stop=lambda: len(sink.chunks) >= verified + 3)
    a.next_pdu(1 << 20)
    a.link_lost()
    b.link_lost()
    if restart in ("sender", "both"):
        a = FileTransfers.restore(state_a, *sealing(sa), sources=lambda d: MemorySource(data),
                                  sinks=_no_sink, limits=SMALL)
    if restart in ("receiver", "both"):

        def reopen(descriptor: str, count: int) -> MemorySink:
            assert count == verified and descriptor == "memory"
            del sink.chunks[count:]
            return sink

        b = FileTransfers.restore(state_b, *sealing(sb), sources=_no_source, sinks=reopen,
                                  limits=SMALL)
    a.link_restored(5.0)
    b.link_restored(5.0)
    pipe = Pipe(a, b)
    pipe.run()
    assert b"".join(sink.chunks) == data and sink.committed
    assert TransferComplete(tid, False) in pipe.events_b
    assert TransferComplete(tid, True) in pipe.events_a


def _no_sink(descriptor: str, count: int) -> MemorySink:
    raise AssertionError("the sender has no sink")


def _no_source(descriptor: str) -> MemorySource:
    raise AssertionError("the receiver has no source")


def test_an_unanswered_offer_is_repeated_after_reconnect(crypto: CryptoService) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    offer(a, b"abc", fast=False)
    a.link_lost()  # the OFFER never left
    a.link_restored(2.0)
    pipe = Pipe(a, b)
    pipe.run()
    assert any(isinstance(e, OfferReceived) for e in pipe.events_b)


def test_an_offer_saved_before_the_application_answered_is_asked_again_after_a_restart(
        crypto: CryptoService) -> None:
    """The receiver saved its state with the offer in it and stopped before its application
    accepted: after the restart the sender's repeated offer asks the new process's application
    (once), and the file then arrives; in one process a repeated offer stays a duplicate."""
    a, b, (_, sb) = core_pair(crypto, SMALL)
    data = os.urandom(3 * 8192 + 5)
    tid = offer(a, data, fast=False)
    pipe = Pipe(a, b)
    pipe.run()
    assert [e.transfer_id for e in pipe.events_b if isinstance(e, OfferReceived)] == [tid]
    a.link_lost()
    a.link_restored(2.0)  # the sender repeats the offer: this process was told already
    pipe.run()
    assert len([e for e in pipe.events_b if isinstance(e, OfferReceived)]) == 1
    assert b.dropped["duplicate-offer"] == 1
    b = FileTransfers.restore(b.export_state(), *sealing(sb), sources=_no_source,
                              sinks=_no_sink, limits=SMALL)  # stopped before accepting
    b.link_restored(3.0)
    a.link_lost()
    a.link_restored(3.0)
    pipe = Pipe(a, b)
    pipe.run()
    again = [e for e in pipe.events_b if isinstance(e, OfferReceived)]
    assert [(e.transfer_id, e.size, e.name) for e in again] == [(tid, len(data), "f.bin")]
    sink = MemorySink()
    pipe.events_b += b.accept(tid, sink, 4.0)
    pipe.run()
    assert b"".join(sink.chunks) == data and TransferComplete(tid, True) in pipe.events_a


def test_a_stalled_transfer_is_re_requested_at_the_deadline(crypto: CryptoService) -> None:
    a, b, _ = core_pair(crypto, SMALL)
    tid = offer(a, os.urandom(10 * 8192), fast=True)
    Pipe(a, b).run()
    sink = MemorySink()
    b.accept(tid, sink, 1.0)
    b.next_pdu(1 << 20)  # the ACCEPT is lost
    deadline = b.next_deadline()
    assert deadline == 1.0 + SMALL.stall_timeout_s
    assert b.handle_timeout(deadline - 0.1) == [] and not b.has_pending()
    b.handle_timeout(deadline)
    assert b.dropped["stall"] == 1 and b.has_pending()
    Pipe(a, b).run()
    assert sink.committed


def test_restore_refuses_damaged_state(crypto: CryptoService, tmp_path: Path) -> None:
    from enkrypted_p2p.files import FileStateError

    a, _, (sa, _) = core_pair(crypto, SMALL)
    offer(a, b"x", fast=False)
    good = a.export_state()
    for bad in (b"", b"{}", b"[1]", good.replace(b'"cs": 8192', b'"cs": 1'),
                good.replace(b'"v": 1', b'"v": 2'), b"\xff" * 10):
        with pytest.raises(FileStateError):
            FileTransfers.restore(bad, *sealing(sa), sources=_no_source, sinks=_no_sink)
