"""The session core owns the file transfers (sans-I/O; docs/protocol.md §8 "In the session"):
built once Ready, fed ``0x05`` / ``0x06`` frames, frames pulled with ``next_file_pdu`` only in
Ready, ``link_lost`` on a lost link and ``link_restored`` after a resume, its state saved with the
session and given back on restore; file frames before Ready or hostile ones never end the chat."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.files import FAST_FRAME, SEALED_FRAME, FileTransfers
from enkrypted_p2p.session import (
    FileOutput,
    SavedStateError,
    SessionCore,
    SessionState,
    export_core,
    restore_core,
)
from enkrypted_p2p.session._state import MAGIC, VERSION
from enkrypted_shell.contracts import AppContext, CryptoService
from tests.p2p.files_pipe import MemorySink, MemorySource
from tests.p2p.test_session_core import ready_pair
from tests.p2p.test_session_resume import drop_link, relink_resume


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


def shuttle(a: SessionCore, b: SessionCore, now: float = 1.0) -> list[object]:
    """Move file frames both ways until quiet; every file event of either side."""
    events: list[object] = []
    for _ in range(10_000):
        moved = False
        for src, dst in ((a, b), (b, a)):
            frame = src.next_file_pdu(1 << 20)
            if frame is not None:
                moved = True
                events += [o.event for o in dst.pdu_received(frame, now)
                           if isinstance(o, FileOutput)]
        if not moved:
            return events
    raise AssertionError("no end")


def test_the_file_core_exists_once_ready_and_carries_a_file(crypto: CryptoService) -> None:
    fresh = SessionCore()
    assert fresh.files is None and fresh.next_file_pdu(1 << 20) is None
    a, b = ready_pair(crypto)
    assert isinstance(a.files, FileTransfers) and isinstance(b.files, FileTransfers)
    data = bytes(range(256)) * 1000
    tid = a.files.offer(MemorySource(data), name="x.bin", size=len(data),
                        sha256=hashlib.sha256(data).digest())
    [offer] = shuttle(a, b)
    assert offer.transfer_id == tid  # type: ignore[attr-defined]
    sink = MemorySink()
    b.files.accept(tid, sink, 1.0)
    shuttle(a, b)
    assert b"".join(sink.chunks) == data and sink.committed and a.files.transfers() == []


def test_hostile_file_frames_are_dropped_and_the_chat_goes_on(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    for junk in (bytes([SEALED_FRAME]), bytes([SEALED_FRAME]) + bytes(100),
                 bytes([FAST_FRAME]) + bytes(60), bytes([FAST_FRAME])):
        assert b.pdu_received(junk, 1.0) == []
    assert b.state is SessionState.READY
    assert sum(b.files.dropped.values()) == 4  # type: ignore[union-attr]
    _, out = a.send_text("still here")
    assert any(getattr(o, "text", None) == "still here"
               for p in out for o in b.pdu_received(p.pdu, 1.0))  # type: ignore[union-attr]


def test_file_frames_before_ready_are_dropped(crypto: CryptoService) -> None:
    core = SessionCore()
    core.channel_open()
    core.start_handshake(crypto.handshake(crypto.new_identity(), initiator=False, now=0.0))
    assert core.pdu_received(bytes([SEALED_FRAME]) + bytes(40), 0.0) == []
    assert core.files is None and core.state is SessionState.CRYPTO_HANDSHAKING


def test_a_lost_link_pauses_and_a_resume_restarts_the_transfer(crypto: CryptoService) -> None:
    a, b = ready_pair(crypto)
    assert a.files is not None and b.files is not None
    data = bytes(300_000)
    tid = a.files.offer(MemorySource(data), name="z", size=len(data),
                        sha256=hashlib.sha256(data).digest())
    shuttle(a, b)
    sink = MemorySink()
    b.files.accept(tid, sink, 1.0)
    accept = b.next_file_pdu(1 << 20)
    assert accept is not None
    a.pdu_received(accept, 1.0)
    for _ in range(3):  # three chunks arrive, then the link drops
        frame = a.next_file_pdu(1 << 20)
        assert frame is not None
        b.pdu_received(frame, 1.0)
    assert b.files.transfers()[0].done_bytes == 3 * 64 * 1024
    drop_link(a, b)
    assert not a.files.link_up and a.next_file_pdu(1 << 20) is None
    relink_resume(a, b)
    assert a.files.link_up and b.files.link_up
    shuttle(a, b, 3.0)
    assert b"".join(sink.chunks) == data and sink.committed and a.files.transfers() == []


def test_the_file_state_is_saved_with_the_session(crypto: CryptoService) -> None:
    a, _ = ready_pair(crypto)
    assert a.files is not None
    a.files.offer(MemorySource(b"abc"), name="n", size=3, sha256=hashlib.sha256(b"abc").digest())
    saved = export_core(a)
    assert saved is not None
    body = json.loads(saved[len(MAGIC) + 1:])
    assert base64.b64decode(body["files"]) == a.files.export_state()
    restored = restore_core(saved, crypto)
    assert restored.files is None and restored.files_saved == a.files.export_state()
    assert export_core(restored) is not None  # still carried before the core is rebuilt
    body["files"] = "not base64!"
    with pytest.raises(SavedStateError):
        restore_core(MAGIC + bytes([VERSION]) + json.dumps(body).encode(), crypto)
