"""The web chat's driver: the shared presenter, the chat service, and what the page asks for.

One :class:`WebChat` per run.  It pumps :meth:`ChatService.events` into the presenter
(``ChatModel``, the TUI's: the same rules for receipts, changed keys and files), and carries out
the page's requests (:meth:`WebChat.handle`, one JSON object from the WebSocket) as background
tasks, like the TUI's workers.  Every change calls ``changed()`` so the server pushes a new
snapshot.  Store writes stay on this loop (the profile store belongs to the thread that opened
it); file uploads are written to a private temporary folder before ``send_file``.  With a
``GroupChatService`` (p2p 2.2, detected with ``supports``) the groups are the presenter's too
(``ChatModel.groups``, the TUI's ``GroupBook``: the same member-key, fork and left rules, the same
stored history and acknowledged keys), re-synced from ``groups()`` after each group event and
action, and the ``group-*`` requests create, rename, leave, add and remove members, send, and
acknowledge a changed key.
"""

from __future__ import annotations

__all__ = ["MAX_REQUEST_FIELD", "WebChat"]

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from enkrypted_shell.contracts import (
    ChatService,
    ContractError,
    FileChatService,
    FileCompleted,
    GroupChatForked,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatProblem,
    GroupChatReceipt,
    GroupChatRenamed,
    GroupChatService,
    PeerStateChanged,
    supports,
)
from enkrypted_shell.errors import ShellError
from enkrypted_ui_cli.chatstore import ChatStore
from enkrypted_ui_cli.errors import UiError
from enkrypted_ui_cli.invite import Target, check_peer_id, parse_target
from enkrypted_ui_cli.tui.groups import MAX_NAME_CHARS, GroupBook, GroupView
from enkrypted_ui_cli.tui.model import MAX_PEERS, MAX_TEXT_CHARS, ChatModel

MAX_REQUEST_FIELD: Final = MAX_TEXT_CHARS
MAX_TASKS: Final = 64
"""Service calls running at once on behalf of the page; more are refused with a notice."""
TYPING_EVERY_S: Final = 3.0
GROUP_EVENTS: Final = (GroupChatMessage, GroupChatReceipt, GroupChatMembership, GroupChatRenamed,
                       GroupChatForked, GroupChatLeft, GroupChatProblem)


class WebChat:
    """The presenter plus the service; ``changed`` is called after every change."""

    def __init__(
        self,
        service: ChatService,
        store: ChatStore,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.files: FileChatService | None = (
            service if supports(service, FileChatService) else None  # type: ignore[assignment]
        )
        self.wall = wall
        self.model = ChatModel(store, local_id=service.local_id, fingerprint=service.fingerprint)
        self.group_service: GroupChatService | None = (
            service if supports(service, GroupChatService) else None  # type: ignore[assignment]
        )
        self.changed: Callable[[], None] = lambda: None
        self._tasks: set[asyncio.Task[None]] = set()
        self._typing_sent = 0.0
        for peer, state in list(service.peers().items())[:MAX_PEERS]:  # sessions already running
            self.model.apply(PeerStateChanged(peer, state), wall())
        self.load_stored()
        self.sync_groups()

    @property
    def groups(self) -> GroupBook | None:
        """The presenter's group book, or ``None`` without a group service."""
        return self.model.groups if self.group_service is not None else None

    # ---------------------------------------------------------------------------- events
    async def pump(self) -> None:
        """Fold the service's events in until its stream ends."""
        reason = "the chat service stopped"
        try:
            async for event in self.service.events():
                try:
                    self.model.apply(event, self.wall())
                except ShellError as exc:  # the profile store refused a write: say so, go on
                    self.model.note(None, f"not saved to the profile: {exc}", self.wall())
                if isinstance(event, GROUP_EVENTS):
                    self.sync_groups()
                if isinstance(event, FileCompleted) and not event.outgoing:
                    self.load_stored()
                self.changed()
        except ContractError as exc:
            reason = f"the chat service stopped: {exc}"
        self.model.online = False
        self.model.note(None, reason, self.wall())
        self.changed()

    def load_stored(self) -> None:
        if self.files is None:
            return
        try:
            self.model.files.set_stored(list(self.files.files()))
        except ContractError as exc:
            self.model.note(None, f"cannot list received files: {exc}", self.wall())

    def sync_groups(self) -> None:
        """Take the service's word on the groups (name, epoch, members, state); a group seen for
        the first time starts from its stored history (the profile's ``ChatStore``, shared with
        the TUI)."""
        if self.group_service is None:
            return
        try:
            self.model.groups.load(self.group_service.groups(), self.wall())
        except ContractError as exc:
            self.model.note(None, f"cannot list the groups: {exc}", self.wall())
        except ShellError as exc:
            self.model.note(None, f"not saved to the profile: {exc}", self.wall())

    # ---------------------------------------------------------------------------- requests
    def handle(self, request: dict[str, Any]) -> None:
        """One request of the page (``{"op": ..., ...}``); a bad one is a notice, never fatal."""
        op = request.get("op")
        action = _OPS.get(op) if isinstance(op, str) else None
        try:
            if action is None:
                raise UiError(f"unknown request {str(op)[:40]!r}")
            action(self, request)
        except (UiError, KeyError, TypeError, ValueError, OverflowError) as exc:
            self.model.note(None, f"not done: {exc}", self.wall())
        except ShellError as exc:
            self.model.note(None, f"not saved to the profile: {exc}", self.wall())
        self.changed()

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        if len(self._tasks) >= MAX_TASKS:
            job.close()
            raise OverflowError("too many requests running; wait a moment")
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _peer(self, request: dict[str, Any]) -> str:
        peer = check_peer_id(_text(request, "peer"))
        if peer not in self.model.peers:
            raise UiError(f"{peer} is not a contact: connect first")
        return peer

    def select(self, request: dict[str, Any]) -> None:
        self.model.select(self._peer(request))

    def connect(self, request: dict[str, Any]) -> None:
        self.dial(parse_target(_text(request, "target")))

    def dial(self, target: Target) -> None:
        """Add (pinning an invite's fingerprint), open and dial ``target`` in the background."""
        self.model.add(target.peer_id, target.fingerprint)
        self.model.select(target.peer_id)
        self.model.note(target.peer_id, f"connecting to {target.peer_id}…", self.wall())
        self._spawn(self._connect(target.peer_id))

    async def _connect(self, peer: str) -> None:
        try:
            await self.service.connect(peer)
        except ContractError as exc:
            self.model.note(peer, f"could not connect: {exc}", self.wall())
            self.changed()

    def send(self, request: dict[str, Any]) -> None:
        peer, text = self._peer(request), _text(request, "text")
        if not text.strip():
            return
        blocked = self.model.send_blocked(peer)
        if blocked is not None:
            raise UiError(blocked)
        self._spawn(self._send(peer, text))

    async def _send(self, peer: str, text: str) -> None:
        try:
            message_id = await self.service.send_text(peer, text)
        except ContractError as exc:
            self.model.note(peer, f"not sent: {exc}", self.wall())
        else:
            try:
                self.model.sent(peer, message_id, text, self.wall())
            except ShellError as exc:
                self.model.note(peer, f"sent, but not saved to the profile: {exc}", self.wall())
        self.changed()

    def typing(self, request: dict[str, Any]) -> None:
        peer, now = self._peer(request), self.wall()
        if now - self._typing_sent >= TYPING_EVERY_S and self.model.send_blocked(peer) is None:
            self._typing_sent = now
            self._spawn(self._typing(peer))

    async def _typing(self, peer: str) -> None:
        with contextlib.suppress(ContractError):  # best effort
            await self.service.send_typing(peer)

    def verify(self, request: dict[str, Any]) -> None:
        peer = self._peer(request)
        view = self.model.peers[peer]
        if view.key_changed or not view.fingerprint:
            raise UiError("nothing to verify: no session, or the key changed (acknowledge first)")
        self.model.mark_verified(peer)
        self.model.note(peer, f"{view.label} marked verified", self.wall())

    def acknowledge(self, request: dict[str, Any]) -> None:
        self.model.acknowledge_key(self._peer(request), self.wall())

    def hangup(self, request: dict[str, Any]) -> None:
        self._spawn(self._hangup(self._peer(request)))

    async def _hangup(self, peer: str) -> None:
        try:
            await self.service.disconnect(peer)
        except ContractError as exc:
            self.model.note(peer, f"could not hang up: {exc}", self.wall())
            self.changed()

    # ------------------------------------------------------------------------------- files
    def _file_service(self) -> FileChatService:
        if self.files is None:
            raise UiError("this p2p plugin has no file transfer")
        return self.files

    def transfer(self, request: dict[str, Any]) -> None:
        """Accept, reject or cancel the transfer with the page's row ``key``."""
        service = self._file_service()
        row = self.model.files.by_key(int(request["key"]))
        action = request.get("action")
        if row is None:
            raise UiError("no such transfer")
        if action in ("accept", "reject") and row.state == "offered":
            row.state = "waiting" if action == "accept" else "failed"
            row.reason = "" if action == "accept" else "rejected"
            call = service.accept_file if action == "accept" else service.reject_file
        elif action == "cancel" and not row.finished:
            call = service.cancel_file
        else:
            raise UiError(f"cannot {str(action)[:20]} a transfer that is {row.state}")
        self._spawn(self._file_call(call, row.peer_id, row.transfer_id))

    async def _file_call(
        self, call: Callable[[str, str], Coroutine[Any, Any, None]], peer: str, transfer_id: str
    ) -> None:
        try:
            await call(peer, transfer_id)
        except ContractError as exc:
            self.model.note(peer, f"file: {exc}", self.wall())
            self.changed()

    def set_fast(self, request: dict[str, Any]) -> None:
        self.model.set_fast_default(self._peer(request), request.get("value") is True)

    async def send_file(self, peer: str, path: Path, name: str, fast: bool) -> None:
        """Offer an uploaded file (already on disk at ``path``) to ``peer``."""
        service = self._file_service()
        blocked = self.model.send_blocked(check_peer_id(peer))
        if blocked is not None:
            raise UiError(blocked)
        size = path.stat().st_size
        try:
            transfer_id = await service.send_file(peer, path, fast=fast)
        except ContractError as exc:
            self.model.note(peer, f"file not sent: {exc}", self.wall())
        else:
            self.model.file_sent(peer, transfer_id, name, size, fast, self.wall())
        self.changed()

    def export(self, file_id: str, folder: Path) -> Path:
        """A received file decrypted into ``folder`` (on this loop: the store's thread)."""
        return self._file_service().export_file(file_id, folder)

    # ------------------------------------------------------------------------------ groups
    def _book(self) -> tuple[GroupBook, GroupChatService]:
        if self.group_service is None:
            raise UiError("this p2p plugin has no group chat (p2p contract 2.2)")
        return self.model.groups, self.group_service

    def _view(self, request: dict[str, Any]) -> GroupView:
        book, _ = self._book()
        group_id = _text(request, "group")
        view = book.views.get(group_id)
        if view is None:
            raise UiError(f"no group {group_id[:64]!r}")
        return view

    def _group(self, request: dict[str, Any]) -> str:
        return self._view(request).group_id

    def _group_note(self, group_id: str, text: str) -> None:
        view = self.model.groups.views.get(group_id)
        if view is not None:
            self.model.groups.note(view, text, self.wall())
        else:
            self.model.note(None, text, self.wall())

    def _group_job(self, group_id: str, doing: str, job: Coroutine[Any, Any, object]) -> None:
        """Run a service call for the page; a refusal is a note in the group."""

        async def run() -> None:
            try:
                await job
            except ContractError as exc:
                self._group_note(group_id, f"could not {doing}: {exc}")
            self.sync_groups()
            self.changed()

        try:
            self._spawn(run())
        except OverflowError:
            job.close()
            raise

    def group_select(self, request: dict[str, Any]) -> None:
        self.model.select_group(self._group(request))

    def group_create(self, request: dict[str, Any]) -> None:
        _, service = self._book()
        self._spawn(self._create(service, _name(request)))

    async def _create(self, service: GroupChatService, name: str) -> None:
        try:
            group_id = await service.create_group(name)
        except ContractError as exc:
            self.model.note(None, f"could not create the group: {exc}", self.wall())
        else:
            self.sync_groups()
            if group_id in self.model.groups.views:
                self.model.select_group(group_id)
                self._group_note(group_id, "created the group; add members by peer id")
        self.changed()

    def group_rename(self, request: dict[str, Any]) -> None:
        group_id, name = self._group(request), _name(request)
        _, service = self._book()
        self._group_job(group_id, "rename the group", service.rename(group_id, name))

    def group_leave(self, request: dict[str, Any]) -> None:
        group_id = self._group(request)
        _, service = self._book()
        self._group_note(group_id, "leaving the group…")
        self._group_job(group_id, "leave the group", service.leave(group_id))

    def group_add(self, request: dict[str, Any]) -> None:
        group_id, peer = self._group(request), check_peer_id(_text(request, "peer"))
        _, service = self._book()
        self._group_note(group_id, f"inviting {peer}: it joins once the sequencer commits…")
        self._group_job(group_id, f"add {peer}", service.invite(group_id, peer))

    def group_remove(self, request: dict[str, Any]) -> None:
        group_id, peer = self._group(request), check_peer_id(_text(request, "peer"))
        _, service = self._book()
        self._group_note(group_id, f"removing {peer}…")
        self._group_job(group_id, f"remove {peer}", service.remove(group_id, peer))

    def group_send(self, request: dict[str, Any]) -> None:
        group_id, text = self._group(request), _text(request, "text")
        book, service = self._book()
        if not text.strip():
            return
        blocked = book.send_blocked(group_id)
        if blocked is not None:
            raise UiError(blocked)
        self._spawn(self._group_send(book, service, group_id, text))

    async def _group_send(
        self, book: GroupBook, service: GroupChatService, group_id: str, text: str
    ) -> None:
        recipients = book.recipients(group_id)  # the members this text is sealed for
        try:
            message_id = await service.send_group_text(group_id, text)
        except ContractError as exc:
            self._group_note(group_id, f"not sent: {exc}")
        else:
            try:  # shown, then kept in the profile with the TUI's history
                book.sent(group_id, message_id, text, self.wall(), recipients)
            except ShellError as exc:
                self._group_note(group_id, f"sent, but not saved to the profile: {exc}")
        self.changed()

    def group_acknowledge(self, request: dict[str, Any]) -> None:
        """Take a member's changed key for this group (unverified; kept in the profile)."""
        view, peer = self._view(request), check_peer_id(_text(request, "peer"))
        if peer not in view.changed:
            raise UiError(f"{peer}'s key did not change in this group")
        self.model.groups.acknowledge(view.group_id, peer, self.wall())

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _name(request: dict[str, Any]) -> str:
    name = " ".join(_text(request, "name").split())
    if not 0 < len(name) <= MAX_NAME_CHARS:
        raise UiError(f"a group name is 1 to {MAX_NAME_CHARS} characters")
    return name


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str):
        raise UiError(f"{key} must be text")
    if len(value) > MAX_REQUEST_FIELD:
        raise UiError(f"{key} is longer than {MAX_REQUEST_FIELD} characters")
    return value


_OPS: Final[dict[str, Callable[[WebChat, dict[str, Any]], None]]] = {
    "select": WebChat.select,
    "connect": WebChat.connect,
    "send": WebChat.send,
    "typing": WebChat.typing,
    "verify": WebChat.verify,
    "acknowledge": WebChat.acknowledge,
    "hangup": WebChat.hangup,
    "transfer": WebChat.transfer,
    "fast": WebChat.set_fast,
    "group-select": WebChat.group_select,
    "group-create": WebChat.group_create,
    "group-rename": WebChat.group_rename,
    "group-leave": WebChat.group_leave,
    "group-add": WebChat.group_add,
    "group-remove": WebChat.group_remove,
    "group-send": WebChat.group_send,
    "group-acknowledge": WebChat.group_acknowledge,
}
