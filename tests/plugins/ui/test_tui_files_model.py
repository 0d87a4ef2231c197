"""The files part of the presenter (pure): p2p 2.1 file events folded into bounded transfer rows,
conversation lines (name, size, protection, ✓ once the receiver verified the hash), the fast-path
default kept in the contact record, and the one-line formats."""

from __future__ import annotations

import pytest

from enkrypted_shell.contracts import (
    FileCompleted,
    FileFailed,
    FileOffered,
    FileProgress,
    StoredFile,
)
from enkrypted_ui_cli.chatstore import ChatStore, MemoryProfileStore
from enkrypted_ui_cli.tui.files import (
    MAX_STORED_SHOWN,
    FileBook,
    eta_text,
    file_line,
    human_size,
)
from enkrypted_ui_cli.tui.model import ChatModel

SHA = "ab" * 32
MIB = 1024 * 1024


def model() -> ChatModel:
    m = ChatModel(ChatStore(MemoryProfileStore()), local_id="alice", fingerprint="a1" * 32)
    m.add("bob")
    m.select("bob")
    return m


def test_an_offer_waits_for_the_user_and_is_a_notice_and_a_conversation_line() -> None:
    m = model()
    m.apply(FileOffered("bob", "t1", "report.pdf", 3 * MIB, SHA, False), 1.0)
    (row,) = m.files.offers()
    assert (row.state, row.outgoing, row.name, row.size) == (
        "offered",
        False,
        "report.pdf",
        3 * MIB,
    )
    assert (
        m.notice == "bob offers report.pdf (3.0 MiB, standard protection): F4 to accept or reject"
    )
    assert "F4" in m.peers["bob"].lines[-1].text


def test_progress_then_completion_shows_bytes_rate_eta_then_the_verified_hash() -> None:
    m = model()
    m.file_sent("bob", "t1", "movie.mkv", 10 * MIB, True, 1.0)
    assert "FAST: reduced protection" in m.peers["bob"].lines[-1].text
    m.apply(FileProgress("bob", "t1", True, 4 * MIB, 10 * MIB, 2 * MIB, 3.0), 2.0)
    row = m.files.get("bob", "t1")
    assert row is not None
    assert (row.state, row.bytes, row.rate, row.eta) == ("active", 4 * MIB, 2 * MIB, 3.0)
    assert row.fraction == pytest.approx(0.4)
    lines = len(m.peers["bob"].lines)
    m.apply(FileProgress("bob", "t1", True, 5 * MIB, 10 * MIB, 2 * MIB, 2.5), 3.0)
    assert len(m.peers["bob"].lines) == lines  # progress never floods the conversation
    m.apply(FileCompleted("bob", "t1", True, "movie.mkv", 10 * MIB, SHA, True), 4.0)
    assert (row.state, row.fraction, row.sha256) == ("done", 1.0, SHA)
    assert "✓ the peer verified sha256 abababab" in m.peers["bob"].lines[-1].text


def test_events_before_send_file_returns_are_kept_and_named_afterwards() -> None:
    m = model()
    m.apply(FileProgress("bob", "t1", True, 10, 100, 5.0, None), 1.0)
    m.file_sent("bob", "t1", "a.txt", 100, False, 1.0)
    row = m.files.get("bob", "t1")
    assert row is not None and (row.name, row.state, row.bytes) == ("a.txt", "active", 10)


def test_a_failure_keeps_its_one_line_reason_and_later_progress_is_ignored() -> None:
    m = model()
    m.apply(FileOffered("bob", "t1", "x.bin", 10, SHA, False), 1.0)
    m.apply(FileFailed("bob", "t1", False, "hash mismatch\non chunk 3"), 2.0)
    m.apply(FileProgress("bob", "t1", False, 5, 10, 1.0, 5.0), 3.0)
    row = m.files.get("bob", "t1")
    assert row is not None and (row.state, row.reason) == ("failed", "hash mismatch on chunk 3")
    assert "failed: hash mismatch on chunk 3" in m.peers["bob"].lines[-1].text


def test_the_table_is_bounded_finished_rows_go_first_then_new_ones_are_refused() -> None:
    book = FileBook(limit=3)
    for i in range(3):
        book.apply(FileOffered("bob", f"t{i}", "f", 1, SHA, False))
    book.apply(FileFailed("bob", "t0", False, "declined"))
    book.apply(FileOffered("bob", "t3", "f", 1, SHA, False))
    assert [t.transfer_id for t in book.for_peer("bob")] == ["t3", "t2", "t1"]
    with pytest.raises(OverflowError, match="at most 3"):
        book.apply(FileOffered("bob", "t4", "f", 1, SHA, False))


def test_a_full_table_is_a_notice_not_a_crash() -> None:
    m = model()
    m.files.limit = 1
    m.apply(FileOffered("bob", "t1", "f", 1, SHA, False), 1.0)
    m.apply(FileOffered("bob", "t2", "f", 1, SHA, False), 1.0)
    assert "ignored a file event: at most 1 transfers" in m.notice


def test_untrusted_names_and_sizes_are_clipped_to_one_bounded_line() -> None:
    book = FileBook()
    row = book.apply(FileOffered("bob", "t1", "a\nb" + "x" * 500, -5, "f" * 500, False))
    assert "\n" not in row.name and len(row.name) <= 120 and row.size == 0
    assert len(row.sha256) == 64
    book.set_stored([StoredFile(f"s{i}", "n", 1, SHA, "bob", False) for i in range(600)])
    assert len(book.stored) == MAX_STORED_SHOWN and book.stored[-1].id == "s599"


def test_the_fast_default_is_kept_in_the_contact_record() -> None:
    store = ChatStore(MemoryProfileStore())
    m = ChatModel(store, local_id="alice", fingerprint="a1" * 32)
    m.add("bob")
    m.set_fast_default("bob", True)
    assert [c.fast for c in store.contacts()] == [True]
    assert ChatModel(store, local_id="alice", fingerprint="").peers["bob"].contact.fast


def test_sizes_and_etas_read_as_people_say_them() -> None:
    assert [human_size(n) for n in (0, 1023, 1536, 3 * MIB, 5 * 1024 * MIB)] == [
        "0 B", "1023 B", "1.5 KiB", "3.0 MiB", "5.0 GiB",
    ]  # fmt: skip
    assert [eta_text(e) for e in (None, 5.0, 125.0, 3725.0)] == [
        "ETA ?", "ETA 0:05", "ETA 2:05", "ETA 1:02:05",
    ]  # fmt: skip
    book = FileBook()
    assert "waiting for the peer" in file_line(book.sent("bob", "t1", "a", 1, False))


def test_an_offer_the_service_auto_accepted_becomes_active_without_the_user() -> None:
    m = model()
    m.apply(FileOffered("bob", "t1", "a.bin", 100, SHA, False), 1.0)
    m.apply(FileProgress("bob", "t1", False, 50, 100, 10.0, 5.0), 2.0)
    assert m.files.offers() == []
    row = m.files.get("bob", "t1")
    assert row is not None and row.state == "active" and row.fraction == 0.5
