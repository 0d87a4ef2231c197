"""The chat app: contacts, conversation, input with history, status bar; screens on F1-F4.

Everything the service does runs in a Textual worker (``connect``/``send_text``/``send_typing``
and the event pump), so the UI loop only draws; :class:`ChatModel` decides what is shown and
whether sending is allowed.
"""

from __future__ import annotations

__all__ = ["ChatApp"]

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from enkrypted_shell.contracts import (
    ChatService,
    ContractError,
    FileChatService,
    FileCompleted,
    PeerStateChanged,
    supports,
)
from enkrypted_shell.errors import ShellError

from ..chatstore import ChatStore
from ..invite import Target
from .files_screen import FilesScreen
from .model import MAX_PEERS, MAX_TEXT_CHARS, ChatModel, InputHistory
from .render import contact_prompt, conversation, status_line
from .screens import ConnectScreen, HelpScreen, SafetyScreen

TYPING_EVERY_S = 3.0


class HistoryInput(Input):
    """The message line: Up/Down recall what was sent before."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "older", "Earlier", show=False),
        Binding("down", "newer", "Later", show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.history = InputHistory()

    def action_older(self) -> None:
        self.value = self.history.older(self.value)
        self.cursor_position = len(self.value)

    def action_newer(self) -> None:
        self.value = self.history.newer()
        self.cursor_position = len(self.value)


class ChatApp(App[None]):
    """``enkrypted chat``: one :class:`ChatService`, one :class:`ChatStore`."""

    TITLE = "Enkrypted"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help"),
        Binding("f2", "connect", "Connect"),
        Binding("f3", "safety", "Safety"),
        Binding("f4", "files", "Files"),
        Binding("f6", "cycle(-1)", "Prev"),
        Binding("f7", "cycle(1)", "Next"),
        Binding("f8", "disconnect", "Hang up"),
        Binding("ctrl+q", "quit", "Quit"),
    ]
    CSS = """
    #body { height: 1fr; }
    #contacts { width: 22; height: 100%; border: none; border-right: solid $primary; }
    #conv-box { width: 1fr; }
    #warning { background: $error; color: $text; text-style: bold; height: auto; display: none; }
    #conversation { height: 1fr; padding: 0 1; }
    #notice { height: 1; color: $text-muted; padding: 0 1; }
    #message { height: 3; }
    #status { height: 1; background: $panel; padding: 0 1; }
    """

    def __init__(
        self,
        service: ChatService,
        store: ChatStore,
        *,
        wall: Callable[[], float] = time.time,
        initial: Target | None = None,
        files_root: Path | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.file_service: FileChatService | None = (
            service if supports(service, FileChatService) else None  # type: ignore[assignment]
        )
        """The same service when it implements p2p 2.1 files; ``None`` for a 2.0 one."""
        self.files_root = files_root
        self.initial = initial
        self.wall = wall
        self.model = ChatModel(store, local_id=service.local_id, fingerprint=service.fingerprint)
        self._typing_sent = 0.0

    # ------------------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield OptionList(id="contacts")
            with Vertical(id="conv-box"):
                yield Static("", id="warning")
                with VerticalScroll(id="conversation"):
                    yield Static("", id="lines")
        yield Static("", id="notice")
        yield HistoryInput(
            placeholder="Message (Enter to send, F1 for help)",
            id="message",
            max_length=MAX_TEXT_CHARS,
        )
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        for peer, state in list(self.service.peers().items())[:MAX_PEERS]:  # already running
            self.model.apply(PeerStateChanged(peer, state), self.wall())
        self.run_worker(self._pump(), name="events", group="events", exit_on_error=False)
        self.set_interval(1.0, self.refresh_notice)  # the typing hint expires without an event
        self.refresh_view()
        self.query_one("#message", Input).focus()
        if self.initial is not None:
            self._connect_to(self.initial)

    def refresh_view(self) -> None:
        """Redraw contacts, conversation, banner and status from the model."""
        model = self.model
        view = model.peers.get(model.active or "")
        contacts = self.query_one("#contacts", OptionList)
        contacts.set_options(
            [Option(contact_prompt(p), id=p.peer_id) for p in model.peers.values()]
        )
        if model.active in model.peers:
            contacts.highlighted = list(model.peers).index(model.active)
        warning = self.query_one("#warning", Static)
        if view is not None and view.key_changed:
            warning.update(f"⚠ {view.label}'s IDENTITY KEY CHANGED — sending blocked. Press F3.")
            warning.display = True
        else:
            warning.display = False
        self.query_one("#lines", Static).update(conversation(view, model))
        self.query_one("#conversation", VerticalScroll).scroll_end(animate=False)
        self.refresh_notice()
        self.query_one("#status", Static).update(status_line(model, view))
        if isinstance(self.screen, FilesScreen):
            self.screen.refresh_files()

    def refresh_notice(self) -> None:
        """The notice line: "bob is typing…" for a few seconds, else the last notice."""
        model = self.model
        view = model.peers.get(model.active or "")
        notice = model.notice
        if view is not None and model.typing(view.peer_id, self.wall()):
            notice = f"{view.label} is typing…"
        self.query_one("#notice", Static).update(notice)

    # ------------------------------------------------------------------------------ events
    async def _pump(self) -> None:
        reason = "the chat service stopped"
        try:
            async for event in self.service.events():
                try:
                    self.model.apply(event, self.wall())
                except ShellError as exc:  # the profile store refused a write: say so, go on
                    self.model.note(None, f"not saved to the profile: {exc}", self.wall())
                if isinstance(event, FileCompleted) and not event.outgoing:
                    self._load_stored()
                self.refresh_view()
        except ContractError as exc:
            reason = f"the chat service stopped: {exc}"
        self.model.online = False
        self.model.note(None, reason, self.wall())
        self.refresh_view()

    @on(OptionList.OptionSelected, "#contacts")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.model.select(event.option.id)
            self.refresh_view()
            self.query_one("#message", Input).focus()

    # ----------------------------------------------------------------------------- sending
    @on(Input.Submitted, "#message")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value
        if not text.strip():
            return
        peer = self.model.active
        blocked = self.model.send_blocked(peer)
        if blocked is not None or peer is None:
            self.model.note(None, blocked or "no peer", self.wall())
            self.refresh_view()
            return  # the text stays in the input: nothing is lost
        event.input.value = ""
        self.query_one("#message", HistoryInput).history.push(text)
        self.run_worker(self._send(peer, text), group="send", exit_on_error=False)

    async def _send(self, peer: str, text: str) -> None:
        try:
            message_id = await self.service.send_text(peer, text)
        except ContractError as exc:
            self.model.note(peer, f"not sent: {exc}", self.wall())
            self.query_one("#message", Input).value = text
        else:
            try:
                self.model.sent(peer, message_id, text, self.wall())
            except ShellError as exc:
                self.model.note(peer, f"sent, but not saved to the profile: {exc}", self.wall())
        self.refresh_view()

    @on(Input.Changed, "#message")
    def _typed(self, event: Input.Changed) -> None:
        peer, now = self.model.active, self.wall()
        quiet = now - self._typing_sent >= TYPING_EVERY_S
        if peer and event.value and quiet and self.model.send_blocked(peer) is None:
            self._typing_sent = now
            self.run_worker(self._typing(peer), group="typing", exit_on_error=False)

    async def _typing(self, peer: str) -> None:
        with contextlib.suppress(ContractError):  # best effort (the contract's words)
            await self.service.send_typing(peer)

    # ----------------------------------------------------------------------------- screens
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_connect(self) -> None:
        screen = ConnectScreen(self.service.local_id, self.service.fingerprint)
        self.push_screen(screen, self._connect_to)

    def _connect_to(self, target: Target | None) -> None:
        if target is None:
            return
        try:
            self.model.add(target.peer_id, target.fingerprint)
        except OverflowError as exc:
            self.model.note(None, f"not added: {exc}", self.wall())
            self.refresh_view()
            return
        self.model.select(target.peer_id)
        self.model.note(target.peer_id, f"connecting to {target.peer_id}…", self.wall())
        self.refresh_view()
        self.run_worker(self._connect(target.peer_id), group="connect", exit_on_error=False)

    async def _connect(self, peer: str) -> None:
        try:
            await self.service.connect(peer)
        except ContractError as exc:
            self.model.note(peer, f"could not connect: {exc}", self.wall())
            self.refresh_view()

    def action_safety(self) -> None:
        view = self.model.peers.get(self.model.active or "")
        if view is None:
            self.model.note(None, "no contact selected: connect first (F2)", self.wall())
            self.refresh_view()
            return
        peer = view.peer_id

        def done(choice: str | None) -> None:
            if choice == "verified":
                self.model.mark_verified(peer)
                self.model.note(peer, f"{view.label} marked verified", self.wall())
            elif choice == "acknowledged":
                self.model.acknowledge_key(peer, self.wall())
            self.refresh_view()

        self.push_screen(SafetyScreen(view, self.service.fingerprint), done)

    def action_files(self) -> None:
        if self.file_service is None:
            self.model.note(None, "this p2p plugin has no file transfer", self.wall())
            self.refresh_view()
            return
        root = self.files_root or Path.cwd()
        screen = FilesScreen(self.file_service, self.model, root, self.refresh_view, self.wall)
        self.push_screen(screen)

    def _load_stored(self) -> None:
        """The received files again (a new one was verified), read on the UI thread: the service
        reads the profile store, whose SQLite connection belongs to it."""
        if self.file_service is None:
            return
        try:
            files = self.file_service.files()
        except ContractError as exc:
            self.model.note(None, f"cannot list received files: {exc}", self.wall())
        else:
            self.model.files.set_stored(list(files))
        self.refresh_view()

    def action_disconnect(self) -> None:
        peer = self.model.active
        if peer is None or self.model.peers[peer].state == "disconnected":
            return
        self.run_worker(self._disconnect(peer), group="connect", exit_on_error=False)

    async def _disconnect(self, peer: str) -> None:
        try:
            await self.service.disconnect(peer)
        except ContractError as exc:
            self.model.note(peer, f"could not hang up: {exc}", self.wall())
            self.refresh_view()

    def action_cycle(self, step: int) -> None:
        self.model.cycle(step)
        self.refresh_view()
