"""A hostile peer against the file-transfer core: traversal names, oversize and surplus offers,
chunk floods, chunks and control PDUs for unknown transfers, stale and forged grants, garbage
frames. Nothing raises, nothing is written where it should not be, every drop is counted."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.files import (
    FileLimits,
    FileTransfers,
    FileUsageError,
    OfferReceived,
    TransferFailed,
)
from enkrypted_p2p.files._fastpath import seal_fast
from enkrypted_p2p.files._wire import (
    ACCEPT,
    CANCEL,
    DONE,
    RESUME,
    SEALED_FRAME,
    Ack,
    Chunk,
    FilePdu,
    Grant,
    MalformedFilePdu,
    Offer,
    Reason,
    decode,
    encode,
)
from enkrypted_shell.contracts import AppContext, CryptoService, SecureSession
from tests.p2p.files_pipe import MemorySink, MemorySource, Pipe, core_pair

LIMITS = FileLimits(chunk_bytes=8192, window_chunks=8, max_incoming=4, max_rounds=16,
                    max_file_bytes=1 << 30)


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


def sealed(session: SecureSession, pdu: FilePdu) -> bytes:
    return bytes([SEALED_FRAME]) + session.seal(encode(pdu))


def hostile_offer(tid: bytes, *, name: str = "x", size: int = 10, fast: bool = False) -> Offer:
    return Offer(tid, size, 8192, fast, bytes(32), bytes(32), name, "text/plain")


@pytest.mark.parametrize("name", [
    "../../../etc/passwd", "/etc/passwd", "..", ".", "", "C:\\Windows\\system32\\x.dll",
    "CON", "nul.txt", "com1", "LPT9.log", "\u202etxt.exe", "a\u200bb\u200d.txt",
    "\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fx", "a/b\\c:d*e?f\"g<h>i|j", "x" * 1000, "\x00\x1b[31m",
])
def test_traversal_and_reserved_names_become_one_safe_component(crypto: CryptoService,
                                                                name: str) -> None:
    _, b, (sa, _) = core_pair(crypto, LIMITS)
    events = b.pdu_received(sealed(sa, hostile_offer(os.urandom(16), name=name)), 1.0)
    assert len(events) == 1 and isinstance(events[0], OfferReceived)
    shown = events[0].name
    assert shown and "/" not in shown and "\\" not in shown and shown not in (".", "..")
    assert not shown.startswith(".") and len(shown.encode()) <= 200
    assert shown.split(".")[0].lower() not in ("con", "nul", "com1", "lpt9")
    assert "\u202e" not in shown and "\u200b" not in shown and "\x00" not in shown


def test_oversize_and_surplus_offers_are_refused_without_asking(crypto: CryptoService) -> None:
    a, b, (sa, _) = core_pair(crypto, LIMITS)
    events = b.pdu_received(sealed(sa, hostile_offer(os.urandom(16), size=(1 << 30) + 1)), 1.0)
    assert events == [] and b.dropped["refused-offer"] == 1
    # more chunks than a u32 can count: malformed before anything else
    events = b.pdu_received(sealed(sa, hostile_offer(os.urandom(16), size=1 << 62)), 1.0)
    assert events == [] and b.dropped["malformed"] == 1
    for _ in range(LIMITS.max_incoming):
        assert b.pdu_received(sealed(sa, hostile_offer(os.urandom(16))), 1.0)
    assert b.pdu_received(sealed(sa, hostile_offer(os.urandom(16))), 1.0) == []
    assert b.dropped["refused-offer"] == 2
    refusals = []
    while (frame := b.next_pdu(1 << 20)) is not None:
        a.pdu_received(frame, 1.0)  # REJECTs for offers a never made: dropped, counted
        refusals.append(frame)
    assert len(refusals) == 2 and a.dropped["unknown-transfer"] == 2


def test_chunks_and_control_for_unknown_transfers_are_dropped(crypto: CryptoService) -> None:
    _, b, (sa, _) = core_pair(crypto, LIMITS)
    tid = os.urandom(16)
    for pdu in (Chunk(tid, 0, 0, b"x" * 10), Ack(tid, 0, 1, 8), Grant(ACCEPT, tid, 0, 0, 8,
                bytes(32)), Reason(CANCEL, tid, "cancelled"), Reason(DONE, tid, "ok")):
        assert b.pdu_received(sealed(sa, pdu), 1.0) == []
    assert b.pdu_received(seal_fast(bytes(32), tid, 0, 0, b"x"), 1.0) == []
    assert b.dropped["unknown-transfer"] == 6 and not b.has_pending()


def test_a_chunk_flood_is_bounded_and_ends_in_too_many_retries(crypto: CryptoService) -> None:
    _, b, (sa, _) = core_pair(crypto, LIMITS)
    tid = os.urandom(16)
    b.pdu_received(sealed(sa, hostile_offer(tid, size=100 * 8192)), 1.0)
    sink = MemorySink()
    b.accept(tid.hex(), sink, 1.0)
    events = []
    for i in range(300):  # chunks far ahead of the window, in the current round each time
        rnd = min(i, LIMITS.max_rounds + 1)
        events += b.pdu_received(sealed(sa, Chunk(tid, rnd, 50, b"y" * 8192)), 1.0)
    assert sink.chunks == [] and sink.discarded
    assert events == [TransferFailed(tid.hex(), "too-many-retries")]
    # a re-request per round up to max_rounds; the next gap fails it; the rest is unknown
    assert b.dropped["reordered"] == LIMITS.max_rounds + 1
    assert sum(b.dropped.values()) == 300


def test_forged_and_stale_grants_are_dropped(crypto: CryptoService) -> None:
    a, b, (_, sb) = core_pair(crypto, LIMITS)
    data = os.urandom(20 * 8192)
    tid = a.offer(MemorySource(data), name="f", size=len(data),
                  sha256=hashlib.sha256(data).digest(), fast=True)
    pipe = Pipe(a, b)
    pipe.run()
    sink = MemorySink()
    b.accept(tid, sink, 1.0)
    pipe.run(stop=lambda: len(sink.chunks) >= 5)
    raw = bytes.fromhex(tid)
    for pdu in (Grant(RESUME, raw, 99, 0, 8, bytes(32)),  # another key share: refused
                Grant(RESUME, raw, 0, 0, 8, b"\x00" * 32),
                Grant(RESUME, raw, 1000, 21 + 1, 8, bytes(32)),  # start past the end
                Ack(raw, 0, 10_000, 8)):
        a.pdu_received(sealed(sb, pdu), 1.0)
    assert a.dropped["share-changed"] + a.dropped["malformed-grant"] + a.dropped["stale-ack"] == 4
    pipe.run()
    assert b"".join(sink.chunks) == data


def test_local_misuse_is_refused_with_a_clear_error(crypto: CryptoService) -> None:
    a, _, _ = core_pair(crypto, LIMITS)
    source = MemorySource(b"x")
    for kwargs in ({"name": "x" * 1025}, {"media_type": "not a type"}, {"size": -1},
                   {"size": (1 << 30) + 1}, {"sha256": b"short"}):
        args: dict[str, object] = {"name": "x", "size": 1, "sha256": bytes(32), **kwargs}
        with pytest.raises(FileUsageError):
            a.offer(source, **args)  # type: ignore[arg-type]
    with pytest.raises(FileUsageError, match="no transfer"):
        a.accept("00" * 16, MemorySink(), 1.0)
    assert not a.has_pending()


def test_done_before_every_chunk_was_sent_is_ignored(crypto: CryptoService) -> None:
    a, b, (_, sb) = core_pair(crypto, LIMITS)
    data = os.urandom(20 * 8192)
    tid = a.offer(MemorySource(data), name="f", size=len(data),
                  sha256=hashlib.sha256(data).digest())
    Pipe(a, b).run()
    assert a.pdu_received(sealed(sb, Reason(DONE, bytes.fromhex(tid), "ok")), 1.0) == []
    assert a.dropped["unexpected-reason"] == 1 and a.progress(tid) == (0, 20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_pdu_or_malformed_never_another_error(data: bytes) -> None:
    try:
        pdu = decode(data)
    except MalformedFilePdu:
        return
    assert encode(pdu) == data or isinstance(pdu, Offer)


_FLOOD = FileTransfers(lambda b: b, lambda b: b, LIMITS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([b"\x05", b"\x06", b"", b"\x01"]))
def test_any_frame_is_dropped_or_used_never_raised(data: bytes, prefix: bytes) -> None:
    # an identity "seal" lets garbage through to the decoder: the core must still not raise
    _FLOOD.pdu_received(prefix + data, 1.0)
    while _FLOOD.next_pdu(1 << 20) is not None:
        pass
