"""The chat's view state: contract events in, what the screens draw out (pure, no Textual).

The presenter owns the rule that guards sending (docs/tui.md, "Changed identity key"): each
contact has a *pinned* fingerprint (first seen, or from an invite link); a
:class:`SessionEstablished` whose ``peer_fingerprint`` differs marks the contact ``key_changed``
and :meth:`ChatModel.send_blocked` refuses to send until :meth:`ChatModel.acknowledge_key`
pins the new key (unverified).  Writes go through :class:`ChatStore`.
"""

from __future__ import annotations

__all__ = ["ChatModel", "InputHistory", "PeerView"]

from dataclasses import dataclass, field, replace
from typing import Final

from enkrypted_shell.contracts import (
    ChatEvent,
    ChatMessage,
    ChatProblem,
    ChatReceipt,
    ChatTyping,
    FileCompleted,
    FileFailed,
    FileOffered,
    FileProgress,
    GroupChatForked,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatProblem,
    GroupChatReceipt,
    GroupChatRenamed,
    PeerStateChanged,
    SessionEstablished,
)

from ..chatstore import ChatStore, Contact, Line
from .files import FileBook, file_line
from .groups import GroupBook

MAX_LINES: Final = 500
"""Lines kept per conversation in memory (older ones stay in the store)."""
MAX_PEERS: Final = 1000
MAX_TEXT_CHARS: Final = 65_536
MAX_NOTICE_CHARS: Final = 300
TYPING_SHOWN_S: Final = 5.0
SENDABLE: Final = ("ready", "reconnecting")


@dataclass(slots=True)
class PeerView:
    """One contact as the screens show it."""

    contact: Contact
    state: str = "disconnected"
    profile: str = ""
    layers: tuple[str, ...] = ()
    fingerprint: str = ""
    """The fingerprint of this run's session ("" before one is established)."""
    safety_number: str = ""
    key_changed: bool = False
    unread: int = 0
    typing_at: float | None = None
    lines: list[Line] = field(default_factory=list)
    early_receipts: set[str] = field(default_factory=set)

    @property
    def peer_id(self) -> str:
        return self.contact.peer_id

    @property
    def label(self) -> str:
        return self.contact.name or self.contact.peer_id

    @property
    def crypto(self) -> str:
        """``changed`` / ``verified`` / ``unverified`` / ``none`` (no session yet)."""
        if self.key_changed:
            return "changed"
        if not self.fingerprint:
            return "none"
        return "verified" if self.contact.verified else "unverified"


class ChatModel:
    """Every contact's view; :meth:`apply` takes the service's events in order."""

    def __init__(self, store: ChatStore, *, local_id: str, fingerprint: str) -> None:
        self.store = store
        self.local_id = local_id
        self.fingerprint = fingerprint
        self.peers: dict[str, PeerView] = {}
        self.active: str | None = None
        self.notice = ""
        self.online = True
        """False once the service's event stream ended."""
        self.files = FileBook()
        """File transfers (p2p 2.1; stays empty with a 2.0 service)."""
        self.groups = GroupBook(store, fingerprint, pinned=self._pinned, say=self._say)
        """Groups (p2p 2.2; stays empty without a ``GroupChatService``)."""
        self.active_group: str | None = None
        """The open group conversation (it takes the place of ``active`` while set)."""
        for contact in store.contacts():
            self.peers[contact.peer_id] = PeerView(contact, lines=store.history(contact.peer_id))
        if self.peers:
            self.active = next(iter(self.peers))

    # ---------------------------------------------------------------------------- contacts
    def add(self, peer_id: str, fingerprint: str | None = None) -> PeerView:
        """The contact ``peer_id`` (created and stored if new; an invite pins ``fingerprint``)."""
        view = self.peers.get(peer_id)
        if view is None:
            if len(self.peers) >= MAX_PEERS:
                raise OverflowError(f"at most {MAX_PEERS} contacts")
            view = self.peers[peer_id] = PeerView(Contact(peer_id, pinned=fingerprint or ""))
            self.store.save_contact(view.contact)
        elif fingerprint and not view.contact.pinned:
            self._set_contact(view, replace(view.contact, pinned=fingerprint))
        return view

    def select(self, peer_id: str) -> None:
        if peer_id in self.peers:
            self.active, self.active_group = peer_id, None
            self.peers[peer_id].unread = 0

    def select_group(self, group_id: str) -> None:
        view = self.groups.views.get(group_id)
        if view is not None:
            self.active_group = group_id
            view.unread = 0

    def cycle(self, step: int) -> None:
        """The next contact or group (contacts first, then groups)."""
        order = [("p", p) for p in self.peers] + [("g", g) for g in self.groups.views]
        if order:
            current = ("g", self.active_group) if self.active_group else ("p", self.active)
            at = order.index(current) if current in order else 0
            kind, key = order[(at + step) % len(order)]
            if kind == "p" and key is not None:
                self.select(key)
            elif key is not None:
                self.select_group(key)

    def _pinned(self, peer_id: str) -> str:
        view = self.peers.get(peer_id)
        return view.contact.pinned if view is not None else ""

    def _say(self, text: str) -> None:
        self.notice = text[:MAX_NOTICE_CHARS]

    def _set_contact(self, view: PeerView, contact: Contact) -> None:
        view.contact = contact
        self.store.save_contact(contact)

    # ------------------------------------------------------------------------------ events
    def apply(self, event: ChatEvent, now: float) -> str | None:
        """Fold one event in; the peer it concerns (``None``: the service as a whole)."""
        if isinstance(event, GroupChatMessage | GroupChatReceipt | GroupChatMembership
                      | GroupChatRenamed | GroupChatForked | GroupChatLeft | GroupChatProblem):
            self.groups.apply(event, now, self.active_group)
            return None  # a group's, not a contact's (docs/tui.md "Groups")
        if isinstance(event, ChatProblem):
            self.notice = f"{event.kind} problem: {event.message}"[:MAX_NOTICE_CHARS]
            if event.peer_id in self.peers:
                self._note(self.peers[event.peer_id], self.notice, now)
                return event.peer_id
            return None
        try:
            view = self.add(event.peer_id)
        except OverflowError as exc:
            self.notice = f"ignored {type(event).__name__} from a new peer: {exc}"
            return None
        if isinstance(event, PeerStateChanged):
            view.state = event.state
            if event.state == "disconnected" and event.reason:
                self._note(view, f"disconnected: {event.reason}", now)
        elif isinstance(event, SessionEstablished):
            self._established(view, event, now)
        elif isinstance(event, ChatMessage):
            self._received(view, event)
        elif isinstance(event, ChatReceipt):
            self._receipt(view, event.message_id)
        elif isinstance(event, ChatTyping):
            view.typing_at = now
        elif isinstance(event, FileOffered | FileProgress | FileCompleted | FileFailed):
            self._file_event(view, event, now)
        return view.peer_id

    def _file_event(
        self,
        view: PeerView,
        event: FileOffered | FileProgress | FileCompleted | FileFailed,
        now: float,
    ) -> None:
        """A transfer row changes; offers, completions and failures are also conversation lines
        (progress is not: it would flood the conversation)."""
        try:
            row = self.files.apply(event)
        except OverflowError as exc:
            self._note(view, f"ignored a file event: {exc}", now)
            return
        if not isinstance(event, FileProgress):
            self._note(view, file_line(row, view.label), now)

    def file_sent(
        self, peer_id: str, transfer_id: str, name: str, size: int, fast: bool, now: float
    ) -> None:
        """``send_file`` returned ``transfer_id``: a row and a conversation line."""
        row = self.files.sent(peer_id, transfer_id, name, size, fast)
        if peer_id in self.peers and not row.finished:
            self._note(self.peers[peer_id], file_line(row), now)

    def set_fast_default(self, peer_id: str, fast: bool) -> None:
        """The contact's default for the file fast path (kept in the contact record)."""
        view = self.peers.get(peer_id)
        if view is not None and view.contact.fast != fast:
            self._set_contact(view, replace(view.contact, fast=fast))

    def _established(self, view: PeerView, event: SessionEstablished, now: float) -> None:
        view.state, view.profile, view.layers = "ready", event.profile, event.layers
        view.fingerprint, view.safety_number = event.peer_fingerprint, event.safety_number
        pinned = view.contact.pinned
        if not pinned:
            self._set_contact(view, replace(view.contact, pinned=event.peer_fingerprint))
        elif pinned != event.peer_fingerprint:
            view.key_changed = True
            self._note(
                view, "IDENTITY KEY CHANGED: sending is blocked until you review it (F3)", now
            )
            return
        how = "resumed" if event.resumed else "established"
        self._note(view, f"session {how}: {event.profile} ({' > '.join(event.layers)})", now)

    def _received(self, view: PeerView, event: ChatMessage) -> None:
        view.typing_at = None
        line = Line("in", event.text[:MAX_TEXT_CHARS], event.received_at, event.message_id, True)
        self._push(view, line)
        if view.peer_id != self.active:
            view.unread += 1
        self.store.append(view.peer_id, line)  # last: a refused write loses nothing on screen

    def _receipt(self, view: PeerView, message_id: str) -> None:
        for i in range(len(view.lines) - 1, -1, -1):
            line = view.lines[i]
            if line.direction == "out" and line.message_id == message_id:
                if not line.delivered:
                    view.lines[i] = replace(line, delivered=True)
                    self.store.append_receipt(view.peer_id, message_id)
                return
        if len(view.early_receipts) < MAX_LINES:
            view.early_receipts.add(message_id)

    # ------------------------------------------------------------------------------ sending
    def send_blocked(self, peer_id: str | None) -> str | None:
        """Why a message to ``peer_id`` cannot go now (one line), or ``None``."""
        view = self.peers.get(peer_id or "")
        if view is None:
            return "no conversation open: connect to a peer first (F2)"
        if view.key_changed:
            return (
                f"{view.label}'s identity key changed: review it on the safety-number screen (F3)"
            )
        if view.state not in SENDABLE:
            return f"{view.label} is {view.state}: connect first (F2)"
        return None

    def sent(self, peer_id: str, message_id: str, text: str, now: float) -> None:
        view = self.peers[peer_id]
        delivered = message_id in view.early_receipts
        view.early_receipts.discard(message_id)
        line = Line("out", text[:MAX_TEXT_CHARS], now, message_id, delivered)
        self._push(view, line)
        self.store.append(peer_id, line)
        if delivered:
            self.store.append_receipt(peer_id, message_id)

    # ------------------------------------------------------------------------- verification
    def mark_verified(self, peer_id: str) -> None:
        """The user compared the safety number: the session's fingerprint is pinned, verified."""
        view = self.peers[peer_id]
        if not view.fingerprint or view.key_changed:
            return
        self._set_contact(view, replace(view.contact, pinned=view.fingerprint, verified=True))

    def acknowledge_key(self, peer_id: str, now: float) -> None:
        """Accept a changed key: pin it, unverified, and unblock sending."""
        view = self.peers[peer_id]
        if not view.key_changed:
            return
        view.key_changed = False
        self._set_contact(view, replace(view.contact, pinned=view.fingerprint, verified=False))
        self._note(view, "new identity key acknowledged (not verified)", now)

    # ---------------------------------------------------------------------------- helpers
    def note(self, peer_id: str | None, text: str, now: float) -> None:
        """A one-line notice: in ``peer_id``'s conversation, and as the status line."""
        self.notice = text[:MAX_NOTICE_CHARS]
        if peer_id in self.peers:
            self._note(self.peers[peer_id], text, now)

    def _note(self, view: PeerView, text: str, now: float) -> None:
        self.notice = text[:MAX_NOTICE_CHARS]
        self._push(view, Line("note", self.notice, now))

    @staticmethod
    def _push(view: PeerView, line: Line) -> None:
        view.lines.append(line)
        if len(view.lines) > MAX_LINES:
            del view.lines[: len(view.lines) - MAX_LINES]

    def typing(self, peer_id: str, now: float) -> bool:
        view = self.peers.get(peer_id)
        return bool(view and view.typing_at is not None and now - view.typing_at < TYPING_SHOWN_S)


class InputHistory:
    """Lines sent from the input, for Up/Down recall (bounded; the draft is kept)."""

    def __init__(self, limit: int = 100) -> None:
        self.limit = limit
        self.entries: list[str] = []
        self.pos = 0
        self.draft = ""

    def push(self, text: str) -> None:
        if text and (not self.entries or self.entries[-1] != text):
            self.entries.append(text)
            del self.entries[: max(0, len(self.entries) - self.limit)]
        self.pos = len(self.entries)
        self.draft = ""

    def older(self, current: str) -> str:
        if self.pos == len(self.entries):
            self.draft = current
        self.pos = max(0, self.pos - 1)
        return self.entries[self.pos] if self.entries else current

    def newer(self) -> str:
        self.pos = min(len(self.entries), self.pos + 1)
        return self.draft if self.pos == len(self.entries) else self.entries[self.pos]
