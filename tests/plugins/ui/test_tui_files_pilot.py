"""The files screen (F4) at 80x24 under Textual's pilot, on :class:`FakeFileChatService` (p2p 2.1
``FileChatService``): send a file on the standard and the fast path (shown as reduced
protection), progress bars with rate and ETA, an offer accepted or rejected, a completed
transfer with ✓, export of a received file, and a 2.0 service without files."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, Input, OptionList, ProgressBar, Static, TabbedContent

from enkrypted_shell.contracts import (
    FileChatService,
    FileCompleted,
    FileOffered,
    FileProgress,
    StoredFile,
    implementation_problems,
    supports,
)
from enkrypted_shell.errors import StoreBusyError
from enkrypted_ui_cli.chatstore import ChatStore, MemoryProfileStore
from enkrypted_ui_cli.tui.app import ChatApp
from enkrypted_ui_cli.tui.files_screen import FilesScreen, TransferRow
from tests.plugins.ui.fake_chat import BOB_FP, FakeChatService, FakeFileChatService

NOW = 1_700_000_000.0
SHA = "5e" * 32
MIB = 1024 * 1024
Scenario = Callable[[ChatApp, Pilot[None], FakeFileChatService], Awaitable[None]]


def run(
    scenario: Scenario,
    root: Path,
    service: FakeChatService | None = None,
    store: ChatStore | None = None,
) -> ChatApp:
    """Run ``scenario`` at 80x24 with bob connected; bounded to 30 s."""
    svc = service or FakeFileChatService()
    app = ChatApp(svc, store or ChatStore(MemoryProfileStore()), wall=lambda: NOW, files_root=root)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            svc.emit(svc.established("bob", BOB_FP))
            await settle(pilot)
            app.model.select("bob")
            app.refresh_view()
            await scenario(app, pilot, svc)  # type: ignore[arg-type]
            await svc.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))
    return app


async def settle(pilot: Pilot[None], rounds: int = 4) -> None:
    for _ in range(rounds):
        await pilot.pause()


async def until(pilot: Pilot[None], ok: Callable[[], bool], what: str) -> None:
    """Wait (bounded: 100 pauses) for workers in threads to land."""
    for _ in range(100):
        if ok():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def text_of(app: ChatApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def rows(app: ChatApp) -> list[str]:
    """The transfer rows' labels as drawn (rows still being mounted are skipped)."""
    return [
        str(label.render())
        for row in app.screen.query(TransferRow)
        for label in row.query(".label").results(Static)
    ]


async def click(app: ChatApp, pilot: Pilot[None], selector: str) -> None:
    await until(pilot, lambda: bool(app.screen.query(selector)), selector)
    await settle(pilot)
    await pilot.click(selector)


async def send(app: ChatApp, pilot: Pilot[None], path: Path, *, fast: bool) -> None:
    await pilot.press("f4")
    await settle(pilot)
    assert isinstance(app.screen, FilesScreen)
    app.screen.query_one("#send-path", Input).value = str(path)
    if fast:
        app.screen.query_one("#fast", Checkbox).value = True
    await pilot.press("ctrl+s")


def test_the_fake_service_meets_the_file_chat_service_contract() -> None:
    assert implementation_problems(FakeFileChatService(), FileChatService) == []
    assert not supports(FakeChatService(), FileChatService)


def test_send_on_the_standard_path_shows_progress_then_the_receivers_check(tmp_path: Path) -> None:
    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF" * 1000)

    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeFileChatService) -> None:
        await send(app, pilot, doc, fast=False)
        await until(pilot, lambda: bool(svc.offered), "send_file")
        assert svc.offered == [("bob", doc, False)]
        await until(pilot, lambda: bool(rows(app)), "the transfer row")
        assert app.screen.query_one("#tabs", TabbedContent).active == "tab-transfers"
        assert "report.pdf" in rows(app)[0] and "standard protection" in rows(app)[0]
        svc.emit(FileProgress("bob", "t1", True, 1000, 4000, 2 * MIB, 90.0))
        await settle(pilot)
        bar = app.screen.query_one(ProgressBar)
        assert bar.progress == 25
        assert "2.0 MiB/s ETA 1:30" in str(app.screen.query_one(".rate", Static).render())
        svc.emit(FileCompleted("bob", "t1", True, "report.pdf", 4000, SHA, False))
        await settle(pilot)
        assert "verified ✓" in rows(app)[0]
        assert app.screen.query_one(ProgressBar).progress == 100
        await pilot.press("escape")
        await settle(pilot)
        lines = text_of(app, "#lines")
        assert "report.pdf (3.9 KiB, standard protection)" in lines
        assert "✓ the peer verified sha256 5e5e" in lines

    run(scenario, tmp_path)


def test_the_fast_path_is_labelled_reduced_protection_and_kept_per_contact(tmp_path: Path) -> None:
    movie = tmp_path / "movie.mkv"
    movie.write_bytes(b"\0" * 100)
    store = ChatStore(MemoryProfileStore())

    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeFileChatService) -> None:
        await send(app, pilot, movie, fast=True)
        assert "REDUCED PROTECTION" in str(app.screen.query_one("#fast", Checkbox).label)
        await until(pilot, lambda: bool(svc.offered), "send_file")
        assert svc.offered == [("bob", movie, True)]
        await until(pilot, lambda: bool(rows(app)), "the transfer row")
        assert "FAST: reduced protection" in rows(app)[0]
        await pilot.press("escape")
        await settle(pilot)
        assert "FAST: reduced protection" in text_of(app, "#lines")
        await pilot.press("f4")  # the contact's default is now the fast path
        await settle(pilot)
        assert app.screen.query_one("#fast", Checkbox).value is True

    run(scenario, tmp_path, store=store)
    assert [c.fast for c in store.contacts()] == [True]


def test_a_bad_path_or_no_session_is_a_one_line_error_nothing_sent(tmp_path: Path) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeFileChatService) -> None:
        await send(app, pilot, tmp_path / "missing.txt", fast=False)
        await until(pilot, lambda: "not a file" in text_of(app, "#send-error"), "the error")
        assert "\n" not in text_of(app, "#send-error")
        app.screen.query_one("#send-path", Input).value = str(tmp_path)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: str(tmp_path) in text_of(app, "#send-error"), "a dir refused")
        await pilot.press("escape")
        await pilot.press("f8")  # hang up: sending is refused before any I/O
        await settle(pilot)
        (tmp_path / "a.txt").write_text("a")
        await send(app, pilot, tmp_path / "a.txt", fast=False)
        await settle(pilot)
        assert "bob is disconnected" in text_of(app, "#send-error")
        assert svc.offered == []

    run(scenario, tmp_path)


def test_an_incoming_offer_is_a_notice_and_waits_for_accept(tmp_path: Path) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeFileChatService) -> None:
        svc.emit(FileOffered("bob", "in1", "photo.jpg", 2 * MIB, SHA, False))
        await settle(pilot)
        notice = text_of(app, "#notice")
        assert (
            notice == "bob offers photo.jpg (2.0 MiB, standard protection): F4 to accept or reject"
        )
        assert svc.answers == []  # nothing accepted without the user
        await pilot.press("f4")
        await settle(pilot)
        assert app.screen.query_one("#tabs", TabbedContent).active == "tab-transfers"
        assert "offered: accept?" in rows(app)[0]
        await click(app, pilot, "#accept-1")
        await until(pilot, lambda: bool(svc.answers), "accept_file")
        assert svc.answers == [("accept", "bob", "in1")]
        svc.emit(FileProgress("bob", "in1", False, MIB, 2 * MIB, MIB, 1.0))
        await settle(pilot)
        assert app.screen.query_one(ProgressBar).progress == 50
        assert app.screen.query("#cancel-1")  # a running transfer can be cancelled
        svc.stored = [StoredFile("in1", "photo.jpg", 2 * MIB, SHA, "bob", False)]
        svc.emit(FileCompleted("bob", "in1", False, "photo.jpg", 2 * MIB, SHA, False))
        await settle(pilot)
        assert "verified ✓" in rows(app)[0]
        stored = app.screen.query_one("#stored", OptionList)
        await until(
            pilot, lambda: "photo.jpg" in str(stored.get_option_at_index(0).prompt), "files()"
        )

    run(scenario, tmp_path)


def test_an_offer_rejected_ends_failed_declined(tmp_path: Path) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeFileChatService) -> None:
        svc.emit(FileOffered("bob", "in1", "virus.exe", 10, SHA, True))
        await settle(pilot)
        assert "FAST: reduced protection" in text_of(app, "#notice")
        await pilot.press("f4")
        await settle(pilot)
        await click(app, pilot, "#reject-1")
        await until(pilot, lambda: "failed: declined" in "".join(rows(app)), "declined")
        assert svc.answers == [("reject", "bob", "in1")]
        assert not app.screen.query(Button).filter("#accept-1")

    run(scenario, tmp_path)


def test_export_a_received_file_and_a_refused_export_is_one_line(tmp_path: Path) -> None:
    svc = FakeFileChatService()
    svc.stored = [StoredFile("s1", "notes.txt", 5, SHA, "bob", False)]
    svc.contents = {"s1": b"hello"}
    out = tmp_path / "out"
    out.mkdir()

    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeFileChatService) -> None:
        await pilot.press("f4")
        await settle(pilot)
        app.screen.query_one("#tabs", TabbedContent).active = "tab-received"
        stored = app.screen.query_one("#stored", OptionList)
        await until(pilot, lambda: "notes.txt" in str(stored.get_option_at_index(0).prompt), "list")
        stored.highlighted = 0
        app.screen.query_one("#export-dest", Input).value = str(out)
        await settle(pilot)
        await pilot.click("#export")
        await until(pilot, lambda: "exported to" in text_of(app, "#export-error"), "export")
        assert (out / "notes.txt").read_bytes() == b"hello"
        await pilot.pause(0.6)  # two quick clicks would be one double click
        await pilot.click("#export")  # never over an existing file: the service says so
        await until(pilot, lambda: "already exists" in text_of(app, "#export-error"), "refusal")
        assert "not exported" in text_of(app, "#export-error")

    run(scenario, tmp_path, service=svc)


def test_a_2_0_service_without_files_says_so_in_one_line(tmp_path: Path) -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeFileChatService) -> None:
        assert app.file_service is None
        await pilot.press("f4")
        await settle(pilot)
        assert not isinstance(app.screen, FilesScreen)
        assert text_of(app, "#notice") == "this p2p plugin has no file transfer"
        await pilot.press("f1")
        await settle(pilot)
        assert "F4" in text_of(app, "#help")

    run(scenario, tmp_path, service=FakeChatService())


def test_cancel_a_running_transfer(tmp_path: Path) -> None:
    doc = tmp_path / "big.iso"
    doc.write_bytes(b"x" * 10)

    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeFileChatService) -> None:
        await send(app, pilot, doc, fast=False)
        await until(pilot, lambda: bool(svc.offered), "send_file")
        svc.emit(FileProgress("bob", "t1", True, 3, 10, 1.0, 7.0))
        await settle(pilot)
        await click(app, pilot, "#cancel-1")
        await until(pilot, lambda: "failed: cancelled" in "".join(rows(app)), "cancelled")
        assert svc.answers == [("cancel", "bob", "t1")]
        assert not app.screen.query("#cancel-1")

    run(scenario, tmp_path)


def test_a_store_refusing_the_fast_default_is_one_line_and_the_toggle_still_counts(
    tmp_path: Path,
) -> None:
    class BusyContacts(MemoryProfileStore):
        busy = False

        def put(self, table: str, key: bytes, value: bytes) -> None:
            if self.busy:
                raise StoreBusyError("another process holds the profile store")
            super().put(table, key, value)

    doc = tmp_path / "a.txt"
    doc.write_text("a")
    store = BusyContacts()

    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeFileChatService) -> None:
        store.busy = True
        await pilot.press("f4")
        await settle(pilot)
        app.screen.query_one("#fast", Checkbox).value = True
        await settle(pilot)
        assert "default not saved to the profile: another" in text_of(app, "#send-error")
        app.screen.query_one("#send-path", Input).value = str(doc)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: bool(svc.offered), "send_file")
        assert svc.offered == [("bob", doc, True)]

    run(scenario, tmp_path, store=ChatStore(store))
