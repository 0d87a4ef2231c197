"""The files screen (F4, p2p 2.1): send a file, answer offers, watch transfers, export files.

Three tabs: *Send* (a :class:`DirectoryTree` rooted at the chosen directory, a path input and the
fast-path toggle, labelled reduced protection), *Transfers* (every row of :class:`FileBook`,
newest first, with a :class:`ProgressBar`, rate and ETA; Accept / Reject on an offer, Cancel on
a running transfer) and *Received* (``files()``, exported to a chosen directory).  The async
service calls run in app workers and the checks of the file to send in a thread; ``files()`` and
``export_file`` run on the UI thread because the service reads the profile store, whose SQLite
connection belongs to it.  Errors are one line on the screen.
"""

from __future__ import annotations

__all__ = ["FilesScreen"]

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    DirectoryTree,
    Footer,
    Input,
    OptionList,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)
from textual.widgets.option_list import Option

from enkrypted_shell.contracts import ContractError, FileChatService
from enkrypted_shell.errors import ShellError

from .files import MAX_NAME_CHARS, Transfer, eta_text, human_size, protection
from .model import ChatModel

MAX_PATH_CHARS = 4096
MAX_ROWS_SHOWN = 50
FAST_LABEL = "Fast path: REDUCED PROTECTION (one AES layer)"


def _stat_file(raw: str) -> tuple[Path, int]:
    """The file to send and its size; :class:`ValueError` with one line if it is not one."""
    path = Path(raw.strip()).expanduser()
    if not raw.strip():
        raise ValueError("pick a file in the tree or type its path")
    try:
        if not path.is_file():
            raise ValueError(f"not a file: {path}")
        return path, path.stat().st_size
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def row_label(t: Transfer, label: str) -> Text:
    """``↑ bob  report.pdf  3.0 MiB  standard protection  done ✓``."""
    arrow = "↑" if t.outgoing else "↓"
    text = Text.assemble((f"{arrow} ", "bold"), (f"{label} ", "cyan"), (t.name or t.transfer_id))
    text.append(f"  {human_size(t.size)}  ", "dim")
    text.append(protection(t.fast), "bold white on red" if t.fast else "green")
    state = {"offered": "offered: accept?", "waiting": "waiting for the peer"}.get(t.state, "")
    if t.state == "done":
        state = "verified ✓"
    elif t.state == "failed":
        state = f"failed: {t.reason}"
    if state:
        text.append(f"  {state}", "red" if t.state == "failed" else "bold")
    return text


def rate_text(t: Transfer) -> str:
    if t.state != "active":
        return ""
    return f"{human_size(t.bytes)}/{human_size(t.size)} {human_size(t.rate)}/s {eta_text(t.eta)}"


class TransferRow(Vertical):
    """One transfer: its label, a progress bar with rate and ETA, and its buttons."""

    DEFAULT_CSS = """
    TransferRow { height: auto; margin-bottom: 1; }
    TransferRow > Horizontal { height: 1; }
    TransferRow ProgressBar { width: 28; }
    TransferRow Bar { width: 22; }
    TransferRow .rate { width: 1fr; }
    TransferRow Button { margin-left: 1; width: auto; min-width: 8; }
    """

    def __init__(self, transfer: Transfer, label: str) -> None:
        super().__init__()
        self.transfer = transfer
        self.label = label
        self.shown_state = transfer.state

    def compose(self) -> ComposeResult:
        t, key = self.transfer, self.transfer.key
        yield Static(row_label(t, self.label), classes="label")
        with Horizontal():
            bar = ProgressBar(total=100, show_eta=False, id=f"bar-{key}")
            bar.progress = 100 * t.fraction
            yield bar
            yield Static(rate_text(t), classes="rate")
            if t.state == "offered":
                yield Button("Accept", id=f"accept-{key}", variant="success", compact=True)
                yield Button("Reject", id=f"reject-{key}", variant="error", compact=True)
            elif not t.finished:
                yield Button("Cancel", id=f"cancel-{key}", compact=True)

    def update_from(self, t: Transfer) -> None:
        if not self.children:
            return  # not composed yet: compose draws the row as it is then
        self.query_one(".label", Static).update(row_label(t, self.label))
        self.query_one(ProgressBar).update(progress=100 * t.fraction)
        self.query_one(".rate", Static).update(rate_text(t))


class FilesScreen(ModalScreen[None]):
    """Files with the open contact (sending) and with everyone (transfers, received files)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Back"),
        Binding("f4", "dismiss_none", "Back", show=False),
        Binding("ctrl+s", "send", "Send file"),
    ]
    DEFAULT_CSS = """
    FilesScreen { align: center middle; }
    #files-box { width: 100%; height: 100%; background: $surface; }
    #files-title { height: 1; padding: 0 1; text-style: bold; }
    #tabs { height: 1fr; }
    #tabs TabPane { height: 1fr; padding: 0; }
    #tree { height: 1fr; }
    #send-path, #export-dest { height: 3; }
    #send-row, #export-row { height: 3; }
    #fast, #export-dest { width: 1fr; }
    #send, #export { width: auto; min-width: 10; }
    #send-error, #export-error { height: 1; color: $error; padding: 0 1; }
    #stored { height: 1fr; }
    #transfers { height: 1fr; }
    """

    def __init__(
        self,
        service: FileChatService,
        model: ChatModel,
        root: Path,
        changed: Callable[[], None],
        wall: Callable[[], float],
    ) -> None:
        super().__init__()
        self.service = service
        self.model = model
        self.root = root
        self.changed = changed
        self.wall = wall
        self.peer = model.active
        self._stored_ids: tuple[str, ...] | None = None

    # ---------------------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        view = self.model.peers.get(self.peer or "")
        who = view.label if view is not None else "nobody (connect first: F2)"
        fast = view.contact.fast if view is not None else False
        with Vertical(id="files-box"):
            yield Static(f"Files — sending to {who}", id="files-title")
            with TabbedContent(id="tabs"):
                with TabPane("Send", id="tab-send"):
                    yield DirectoryTree(self.root, id="tree")
                    yield Input(
                        placeholder="path of the file to send",
                        max_length=MAX_PATH_CHARS,
                        id="send-path",
                    )
                    with Horizontal(id="send-row"):
                        yield Checkbox(FAST_LABEL, fast, id="fast")
                        yield Button("Send", id="send", variant="primary")
                    yield Static("", id="send-error")
                with TabPane("Transfers", id="tab-transfers"):
                    yield VerticalScroll(id="transfers")
                with TabPane("Received", id="tab-received"):
                    yield OptionList(id="stored")
                    with Horizontal(id="export-row"):
                        yield Input(
                            str(Path.home()),
                            placeholder="export into this directory",
                            max_length=MAX_PATH_CHARS,
                            id="export-dest",
                        )
                        yield Button("Export", id="export", variant="primary")
                    yield Static("", id="export-error")
        yield Footer()

    def on_mount(self) -> None:
        if self.model.files.offers():
            self.query_one("#tabs", TabbedContent).active = "tab-transfers"
        self.refresh_files()
        self._load_stored()

    def refresh_files(self) -> None:
        """Rows follow the model: new ones mounted, changed states rebuilt, progress updated."""
        box = self.query_one("#transfers", VerticalScroll)
        rows = self.model.files.for_peer(None)[:MAX_ROWS_SHOWN]
        shown = list(box.query(TransferRow))
        same = [(w.transfer.key, w.shown_state) for w in shown] == [(t.key, t.state) for t in rows]
        if same:
            for widget in shown:
                widget.update_from(widget.transfer)
        else:  # a row came, went or changed state (its buttons change): rebuild, in order
            box.remove_children()
            box.mount_all(TransferRow(t, self._label(t.peer_id)) for t in rows)
        self._refresh_stored()

    def _refresh_stored(self) -> None:
        """The received files, redrawn only when the list changed (the highlight is kept)."""
        files = self.model.files.stored
        ids = tuple(f.id for f in files)
        if ids == self._stored_ids:
            return
        self._stored_ids = ids
        stored = self.query_one("#stored", OptionList)
        at = stored.highlighted
        stored.set_options(
            [
                Option(
                    f"{f.name[:MAX_NAME_CHARS]}  {human_size(f.size)}  from {self._label(f.peer_id)}"
                    f"{'  (fast path)' if f.fast else ''}",
                    id=f"f{i}",
                )
                for i, f in enumerate(files)
            ]
            or [Option("no received files yet", disabled=True)]
        )
        if files:
            stored.highlighted = min(at or 0, len(files) - 1)

    def _label(self, peer_id: str) -> str:
        view = self.model.peers.get(peer_id)
        return view.label if view is not None else peer_id

    def _load_stored(self) -> None:
        """``files()`` on the UI thread: the service reads the profile store, whose SQLite
        connection belongs to this thread (a short read, like the ui's own store writes)."""
        try:
            files = self.service.files()
        except ContractError as exc:
            self._error("#export-error", f"cannot list received files: {exc}")
            return
        self.model.files.set_stored(list(files))
        if self.is_attached:
            self.refresh_files()

    def _error(self, selector: str, text: str) -> None:
        with contextlib.suppress(NoMatches):  # the screen may be gone: the notice keeps it
            self.query_one(selector, Static).update(text.splitlines()[0][:200] if text else "")
        if text:
            self.model.notice = text.splitlines()[0][:200]
        self.changed()

    # ----------------------------------------------------------------------------- sending
    @on(DirectoryTree.FileSelected, "#tree")
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        self.query_one("#send-path", Input).value = str(event.path)[:MAX_PATH_CHARS]

    @on(Checkbox.Changed, "#fast")
    def _fast_toggled(self, event: Checkbox.Changed) -> None:
        if self.peer is not None:
            try:
                self.model.set_fast_default(self.peer, event.value)
            except ShellError as exc:  # the profile store refused the write: say so, go on
                self._error("#send-error", f"default not saved to the profile: {exc}")

    @on(Input.Submitted, "#send-path")
    def _path_submitted(self) -> None:
        self.action_send()

    def action_send(self) -> None:
        peer = self.peer
        blocked = self.model.send_blocked(peer)
        if blocked is not None or peer is None:
            self._error("#send-error", blocked or "no peer")
            return
        raw = self.query_one("#send-path", Input).value
        fast = self.query_one("#fast", Checkbox).value
        self._error("#send-error", "")
        self.app.run_worker(self._send(peer, raw, fast), group="files", exit_on_error=False)

    async def _send(self, peer: str, raw: str, fast: bool) -> None:
        try:
            path, size = await asyncio.to_thread(_stat_file, raw)
            transfer_id = await self.service.send_file(peer, path, fast=fast)
        except (ValueError, ContractError) as exc:
            self._error("#send-error", f"not sent: {exc}")
            return
        try:
            self.model.file_sent(peer, transfer_id, path.name, size, fast, self.wall())
        except OverflowError as exc:  # sent, but the table is full of running transfers
            self._error("#send-error", f"offered {path.name}, not shown: {exc}")
            return
        self.model.notice = f"offered {path.name} ({protection(fast)})"
        if self.is_attached:
            self.query_one("#tabs", TabbedContent).active = "tab-transfers"
        self.changed()

    # --------------------------------------------------------------------------- transfers
    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        name = event.button.id or ""
        if name == "send":
            self.action_send()
        elif name == "export":
            self._export()
        elif "-" in name:
            action, _, key = name.partition("-")
            row = self.model.files.by_key(int(key)) if key.isdigit() else None
            if row is not None and action in ("accept", "reject", "cancel"):
                self.app.run_worker(self._answer(action, row), group="files", exit_on_error=False)

    async def _answer(self, action: str, row: Transfer) -> None:
        call = {
            "accept": self.service.accept_file,
            "reject": self.service.reject_file,
            "cancel": self.service.cancel_file,
        }[action]
        try:
            await call(row.peer_id, row.transfer_id)
        except ContractError as exc:
            self.model.notice = f"could not {action} {row.name}: {exc}"[:200]
        else:
            if action == "accept" and row.state == "offered":
                row.state = "waiting"
            elif action == "reject" and row.state == "offered":
                row.state, row.reason = "failed", "declined by us"
            done = {"accept": "accepted", "reject": "rejected", "cancel": "cancelled"}[action]
            self.model.notice = f"{done} {row.name or row.transfer_id}"[:200]
        self.changed()

    # ----------------------------------------------------------------------------- export
    def _export(self) -> None:
        stored = self.query_one("#stored", OptionList)
        at = stored.highlighted
        files = self.model.files.stored
        if at is None or not 0 <= at < len(files):
            self._error("#export-error", "pick a received file first")
            return
        dest = self.query_one("#export-dest", Input).value.strip()
        if not dest:
            self._error("#export-error", "type the directory to export into")
            return
        self.query_one("#export-error", Static).update(f"exporting {files[at].name}…")
        self.call_after_refresh(self._do_export, files[at].id, Path(dest).expanduser())

    def _do_export(self, file_id: str, dest: Path) -> None:
        """On the UI thread, once "exporting…" is drawn: ``export_file`` reads the profile store
        (its SQLite connection belongs to this thread), then decrypts and hashes the file."""
        try:
            written = self.service.export_file(file_id, dest)
        except (ContractError, OSError) as exc:
            self._error("#export-error", f"not exported: {exc}")
            return
        self._error("#export-error", "")
        self.model.notice = f"exported to {written}"[:200]
        with contextlib.suppress(NoMatches):
            self.query_one("#export-error", Static).update(Text(f"exported to {written}", "green"))
        self.changed()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
