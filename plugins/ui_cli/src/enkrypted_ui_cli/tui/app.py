"""The chat app: contacts and groups, conversation, input with history, status bar; screens on
F1-F5.

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

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from enkrypted_shell.contracts import (
    ChatService,
    ContractError,
    FileChatService,
    FileCompleted,
    GroupChatService,
    PeerStateChanged,
    supports,
)
from enkrypted_shell.errors import ShellError

from ..chatstore import ChatStore
from ..invite import Target
from .files_screen import FilesScreen
from .group_screen import GroupScreen
from .groups import MAX_GROUPS
from .model import MAX_PEERS, MAX_TEXT_CHARS, ChatModel, InputHistory
from .render import (
    contact_prompt,
    conversation,
    group_banner,
    group_conversation,
    group_prompt,
    group_status,
    status_line,
)
from .screens import ConnectScreen, GroupChange, HelpScreen, SafetyScreen

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
        Binding("f5", "group", "Group"),
        Binding("f6", "cycle(-1)", "Prev", show=False),
        Binding("f7", "cycle(1)", "Next", show=False),
        Binding("f8", "disconnect", "Hang up"),
        Binding("ctrl+q", "quit", "Quit"),
    ]
    CSS = """
    #body { height: 1fr; }
    #side { width: 22; height: 100%; border-right: solid $primary; }
    #contacts { height: 1fr; border: none; }
    #groups-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    #groups { height: auto; max-height: 8; border: none; }
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
        self.group_service: GroupChatService | None = (
            service if supports(service, GroupChatService) else None  # type: ignore[assignment]
        )
        """The same service when it implements p2p 2.2 groups; ``None`` before."""
        self.files_root = files_root
        self.initial = initial
        self.wall = wall
        self.model = ChatModel(store, local_id=service.local_id, fingerprint=service.fingerprint)
        self._typing_sent = 0.0

    # ------------------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="side"):
                yield OptionList(id="contacts")
                if self.group_service is not None:
                    yield Static("Groups", id="groups-title")
                    yield OptionList(id="groups")
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
        self._load_groups()
        self.run_worker(self._pump(), name="events", group="events", exit_on_error=False)
        self.set_interval(1.0, self.refresh_notice)  # the typing hint expires without an event
        self.refresh_view()
        self.query_one("#message", Input).focus()
        if self.initial is not None:
            self._connect_to(self.initial)

    def refresh_view(self) -> None:
        """Redraw contacts, groups, conversation, banner and status from the model."""
        model = self.model
        view = model.peers.get(model.active or "")
        group = model.groups.views.get(model.active_group or "")
        contacts = self.query_one("#contacts", OptionList)
        contacts.set_options(
            [Option(contact_prompt(p), id=p.peer_id) for p in model.peers.values()]
        )
        if model.active in model.peers and group is None:
            contacts.highlighted = list(model.peers).index(model.active)
        self._refresh_groups(group is not None)
        banner: str | None = None
        if group is not None:
            banner = group_banner(group, model.groups.left_text(group))
        elif view is not None and view.key_changed:
            banner = f"⚠ {view.label}'s IDENTITY KEY CHANGED — sending blocked. Press F3."
        warning = self.query_one("#warning", Static)
        warning.update(Text(banner or ""))
        warning.display = banner is not None
        lines = group_conversation(group) if group is not None else conversation(view, model)
        self.query_one("#lines", Static).update(lines)
        self.query_one("#conversation", VerticalScroll).scroll_end(animate=False)
        self.refresh_notice()
        status = group_status(model, group) if group is not None else status_line(model, view)
        self.query_one("#status", Static).update(status)
        if isinstance(self.screen, FilesScreen):
            self.screen.refresh_files()
        elif isinstance(self.screen, GroupScreen):
            self.screen.refresh_group()

    def _refresh_groups(self, highlight: bool) -> None:
        if self.group_service is None:
            return
        groups = self.query_one("#groups", OptionList)
        views = list(self.model.groups.views.values())
        groups.set_options([Option(group_prompt(g), id=f"g{i}") for i, g in enumerate(views)])
        active = self.model.active_group
        if highlight and active is not None:
            groups.highlighted = list(self.model.groups.views).index(active)
        else:
            groups.highlighted = None

    def _load_groups(self) -> None:
        """The service's groups at start, with their stored history (on the UI thread: the
        store's SQLite connection belongs to it)."""
        if self.group_service is None:
            return
        try:
            infos = list(self.group_service.groups())[:MAX_GROUPS]
            self.model.groups.load(infos, self.wall())
        except (ContractError, ShellError) as exc:
            self.model.note(None, f"cannot list groups: {exc}", self.wall())

    def refresh_notice(self) -> None:
        """The notice line: "bob is typing…" for a few seconds, else the last notice."""
        model = self.model
        view = model.peers.get(model.active or "")
        notice = model.notice
        if model.active_group is None and view is not None and model.typing(
            view.peer_id, self.wall()
        ):
            notice = f"{view.label} is typing…"
        try:
            line = self.query_one("#notice", Static)
        except NoMatches:  # the 1 s timer fired while the main screen is mounting or torn down
            return
        line.update(Text(notice))  # may quote a peer: never markup

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

    @on(OptionList.OptionSelected, "#groups")
    def _picked_group(self, event: OptionList.OptionSelected) -> None:
        order = list(self.model.groups.views)
        if 0 <= event.option_index < len(order):
            self.model.select_group(order[event.option_index])
            self.refresh_view()
            self.query_one("#message", Input).focus()

    # ----------------------------------------------------------------------------- sending
    @on(Input.Submitted, "#message")
    def _submitted(self, event: Input.Submitted) -> None:
        text = event.value
        if not text.strip():
            return
        if self.model.active_group is not None:
            self._submit_group(event.input, self.model.active_group, text)
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

    def _submit_group(self, field: Input, group_id: str, text: str) -> None:
        blocked = self.model.groups.send_blocked(group_id)
        if self.group_service is None or blocked is not None:
            self.model.note(None, blocked or "this p2p plugin has no group chat", self.wall())
            self.refresh_view()
            return  # the text stays in the input
        field.value = ""
        self.query_one("#message", HistoryInput).history.push(text)
        self.run_worker(self._send_group(self.group_service, group_id, text), group="send",
                        exit_on_error=False)

    async def _send_group(self, service: GroupChatService, group_id: str, text: str) -> None:
        recipients = self.model.groups.recipients(group_id)
        try:
            message_id = await service.send_group_text(group_id, text)
        except ContractError as exc:
            self.model.note(None, f"not sent: {exc}", self.wall())
            self.query_one("#message", Input).value = text
        else:
            try:
                self.model.groups.sent(group_id, message_id, text, self.wall(), recipients)
            except ShellError as exc:
                self.model.note(None, f"sent, but not saved to the profile: {exc}", self.wall())
        self.refresh_view()

    @on(Input.Changed, "#message")
    def _typed(self, event: Input.Changed) -> None:
        peer, now = self.model.active, self.wall()
        if self.model.active_group is not None:
            return  # no typing notifications in groups
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
        group = self.model.groups.views.get(self.model.active_group or "")
        pair = (group.group_id, group.label) if group is not None and self.group_service else None
        screen = ConnectScreen(self.service.local_id, self.service.fingerprint, pair)
        self.push_screen(screen, self._connect_to)

    def _connect_to(self, target: Target | GroupChange | None) -> None:
        if isinstance(target, GroupChange):
            self.run_group_op(target.action, target.group_id, target.target.peer_id)
            return
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

    # ------------------------------------------------------------------------------ groups
    def action_group(self) -> None:
        if self.group_service is None:
            self.model.note(None, "this p2p plugin has no group chat", self.wall())
            self.refresh_view()
            return
        screen = GroupScreen(self.model, self.model.active_group, self.run_group_op,
                             self.refresh_view, self.wall)
        self.push_screen(screen)

    def run_group_op(self, op: str, group_id: str, argument: str) -> None:
        """``create`` / ``invite`` / ``remove`` / ``leave`` / ``rename`` in a worker."""
        if self.group_service is not None:
            self.run_worker(self._group_op(self.group_service, op, group_id, argument),
                            group="groups", exit_on_error=False)

    async def _group_op(self, service: GroupChatService, op: str, group_id: str,
                        argument: str) -> None:
        try:
            if op == "create":
                group_id = await service.create_group(argument)
                self._load_groups()  # its first membership may come later
                self.model.select_group(group_id)
                done = f"created “{argument}”"
            elif op == "invite":
                await service.invite(group_id, argument)
                done = f"invited {argument}: it shows as a member once committed"
            elif op == "remove":
                await service.remove(group_id, argument)
                done = f"removing {argument}"
            elif op == "leave":
                await service.leave(group_id)
                done = "leaving the group"
            else:
                await service.rename(group_id, argument)
                done = f"renaming to “{argument}”"
        except ContractError as exc:
            self.model.note(None, f"group {op} failed: {exc}", self.wall())
        else:
            self.model.note(None, done, self.wall())
        self.refresh_view()

    def action_safety(self) -> None:
        if self.model.active_group is not None:
            self.action_group()  # a group's safety numbers are on its Members tab
            return
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
        if self.model.active_group is not None:
            self.model.note(None, "F8 hangs up a 1:1 conversation: open a contact first",
                            self.wall())
            self.refresh_view()
            return
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
