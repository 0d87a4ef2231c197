"""Groups as the page shows them (p2p 2.2, ``GroupChatService``): the view-model (pure, no I/O).

:class:`GroupBook` folds the group events and the service's ``groups()`` into one
:class:`GroupView` per group: name, epoch, members, state (``active`` / ``rejoining`` /
``left``), a fork seen, who removed us, unread count, and the conversation with per-member
receipts (an outgoing line remembers the members' fingerprints when it was sent, and which of
them answered).

The sending rule of 1:1 chats holds per member (docs/webui.md, "Groups"): the fingerprint of a
member's peer id is pinned — the contact's pinned key when the member is a contact, else the
first one this run saw in the group; a membership listing that peer id with another fingerprint
marks it *changed* and :meth:`GroupBook.send_blocked` refuses to send to the group until
:meth:`GroupBook.acknowledge` takes the new key.  A group's conversation (the last
``MAX_LINES`` lines) starts from its stored history (:meth:`GroupBook.seed`: the TUI's
``ChatStore`` group stream, which the shared presenter writes for the web chat too).
Everything here is raw; :mod:`.view` makes every peer-chosen string inert for the page.
"""

from __future__ import annotations

__all__ = ["MAX_GROUPS", "GroupBook", "GroupLine", "GroupView"]

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from enkrypted_shell.contracts import (
    GroupChatForked,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatProblem,
    GroupChatReceipt,
    GroupChatRenamed,
    GroupInfo,
    GroupMember,
)
from enkrypted_ui_cli.chatstore import GroupLine as StoredLine
from enkrypted_ui_cli.errors import UiError

GroupEvent = (GroupChatMessage | GroupChatReceipt | GroupChatMembership | GroupChatRenamed
              | GroupChatForked | GroupChatLeft | GroupChatProblem)
GROUP_EVENTS: Final = (GroupChatMessage, GroupChatReceipt, GroupChatMembership, GroupChatRenamed,
                       GroupChatForked, GroupChatLeft, GroupChatProblem)
MAX_GROUPS: Final = 200
MAX_LINES: Final = 500
MAX_MEMBERS: Final = 256
MAX_TEXT_CHARS: Final = 65_536
MAX_NAME_CHARS: Final = 128
MAX_NOTE_CHARS: Final = 300
MAX_EARLY: Final = 500
"""Receipts kept for messages whose ``send_group_text`` has not returned yet."""


@dataclass(slots=True)
class GroupLine:
    """A member's message (``sender`` its peer id, ``sender_fp`` its fingerprint), ours
    (``recipients``: the other members' fingerprints when sent; ``received``: those whose receipt
    came) or a note of the ui."""

    direction: Literal["in", "out", "note"]
    text: str
    at: float
    message_id: str = ""
    sender: str = ""
    sender_fp: str = ""
    recipients: tuple[str, ...] = ()
    received: set[str] = field(default_factory=set)


@dataclass(slots=True)
class GroupView:
    group_id: str
    name: str = ""
    epoch: int = 0
    members: tuple[GroupMember, ...] = ()
    state: str = "active"
    unread: int = 0
    lines: list[GroupLine] = field(default_factory=list)
    fork: GroupChatForked | None = None
    """The last fork reported, until the group moves past its epoch."""
    left_by: str | None = None
    """Set once we are out: the fingerprint that removed us (ours, or "", for our own leave)."""
    keys: dict[str, str] = field(default_factory=dict)
    """Peer id -> the fingerprint pinned for it in this group."""
    changed: dict[str, str] = field(default_factory=dict)
    """Peer id -> a new fingerprint not acknowledged yet (sending is blocked)."""
    early: dict[str, set[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or f"group {self.group_id[:8]}"


class GroupBook:
    """Every group's view; ``pinned(peer_id)`` is the contact's pinned fingerprint (or "")."""

    def __init__(self, fingerprint: str, pinned: Callable[[str], str]) -> None:
        self.fingerprint = fingerprint
        self.pinned = pinned
        self.views: dict[str, GroupView] = {}
        self.active: str | None = None
        """The group the page shows (``None``: a 1:1 conversation)."""
        self.notice = ""

    # -------------------------------------------------------------------------------- state
    def view(self, group_id: str) -> GroupView:
        """The group ``group_id`` (a local misuse if unknown)."""
        view = self.views.get(group_id)
        if view is None:
            raise UiError(f"no group {group_id[:64]!r}")
        return view

    def _view(self, group_id: str) -> GroupView | None:
        view = self.views.get(group_id)
        if view is None and group_id:
            if len(self.views) >= MAX_GROUPS:
                self.notice = f"ignored a group beyond the first {MAX_GROUPS}"
                return None
            view = self.views[group_id] = GroupView(group_id)
        return view

    def sync(self, infos: Sequence[GroupInfo], now: float) -> None:
        """Take the service's view of every group (name, epoch, members, state)."""
        for info in infos:
            view = self._view(info.group_id)
            if view is not None:
                view.name, view.state = info.name[:MAX_NAME_CHARS], info.state
                self._members(view, info.epoch, info.members, now)
                if info.state == "left" and view.left_by is None:
                    view.left_by = ""
                elif info.state != "left":
                    view.left_by = None

    def seed(self, group_id: str, stored: Sequence[StoredLine]) -> None:
        """Start a group's conversation from its stored history (oldest first)."""
        view = self.view(group_id)
        old = [GroupLine(x.direction, x.text, x.at, x.message_id, x.sender, x.sender_fp,
                         x.recipients, set(x.received)) for x in list(stored)[-MAX_LINES:]]
        view.lines[:0] = old
        del view.lines[: max(0, len(view.lines) - MAX_LINES)]

    def select(self, group_id: str | None) -> None:
        if group_id is not None:
            self.view(group_id).unread = 0
        self.active = group_id

    # ------------------------------------------------------------------------------- events
    def apply(self, event: GroupEvent, now: float) -> str | None:
        """Fold one group event in; the group it concerns (``None``: none we can show)."""
        if isinstance(event, GroupChatProblem) and not event.group_id:
            self.notice = f"{event.kind} problem with the saved groups: {event.message}"
            return None
        view = self._view(event.group_id)
        if view is None:
            return None
        if isinstance(event, GroupChatMessage):
            self._received(view, event)
        elif isinstance(event, GroupChatReceipt):
            self._receipt(view, event.message_id, event.fingerprint)
        elif isinstance(event, GroupChatMembership):
            self._membership(view, event, now)
        elif isinstance(event, GroupChatRenamed):
            view.name = event.name[:MAX_NAME_CHARS]
            self.note(view, f"renamed to “{view.name}” by {self.who(view, event.by)}", now)
        elif isinstance(event, GroupChatForked):
            view.fork = event
            if event.rejoining:
                view.state = "rejoining"
            self.note(view, fork_text(event), now)
        elif isinstance(event, GroupChatLeft):
            view.state, view.left_by = "left", event.by
            self.note(view, self.left_text(view), now)
        else:
            self.note(view, f"{event.kind} problem: {event.message}", now)
        return view.group_id

    def _received(self, view: GroupView, event: GroupChatMessage) -> None:
        self._push(view, GroupLine("in", event.text[:MAX_TEXT_CHARS], event.received_at,
                                   event.message_id, event.peer_id, event.fingerprint))
        if view.group_id != self.active:
            view.unread += 1

    def _receipt(self, view: GroupView, message_id: str, fingerprint: str) -> None:
        for line in reversed(view.lines):
            if line.direction == "out" and line.message_id == message_id:
                if fingerprint in line.recipients:
                    line.received.add(fingerprint)
                return
        if message_id in view.early or len(view.early) < MAX_EARLY:
            view.early.setdefault(message_id, set()).add(fingerprint)

    def _membership(self, view: GroupView, event: GroupChatMembership, now: float) -> None:
        before = {m.fingerprint: m.peer_id for m in view.members}
        if event.name:
            view.name = event.name[:MAX_NAME_CHARS]
        if view.state != "left":
            view.state = "active"
        if view.fork is not None and event.epoch > view.fork.epoch:
            view.fork = None
        self._members(view, event.epoch, event.members, now)
        by = f" by {self.who(view, event.committer)}" if event.committer else ""
        for fp in event.added[:MAX_MEMBERS]:
            self.note(view, f"{self.who(view, fp)} joined (epoch {event.epoch}){by}", now)
        for fp in event.removed[:MAX_MEMBERS]:
            name = "we" if fp == self.fingerprint else before.get(fp) or short(fp)
            self.note(view, f"{name} left the group (epoch {event.epoch}){by}", now)

    def _members(self, view: GroupView, epoch: int, members: Sequence[GroupMember],
                 now: float) -> None:
        view.epoch, view.members = epoch, tuple(members[:MAX_MEMBERS])
        for member in view.members:
            peer, fp = member.peer_id, member.fingerprint
            if not peer or fp == self.fingerprint:
                continue
            known = view.keys.get(peer) or self.pinned(peer) or fp
            if known == fp:
                view.keys[peer] = fp
                view.changed.pop(peer, None)
            elif view.changed.get(peer) != fp:
                view.changed[peer] = fp
                self.note(view, f"{peer}'s identity key in this group CHANGED: sending is "
                                "blocked until you review it (Members)", now)

    # ------------------------------------------------------------------------------ sending
    def send_blocked(self, group_id: str) -> str | None:
        """Why a message to the group cannot go now (one line), or ``None``."""
        view = self.views.get(group_id)
        if view is None:
            return "no group open"
        if view.state == "left":
            return f"we are no longer in {view.label}: it is read-only"
        if view.state == "rejoining":
            return f"re-joining {view.label} after a fork: wait for the new Welcome"
        if view.changed:
            who = ", ".join(sorted(view.changed))
            return f"the identity key of {who} changed in {view.label}: review it under Members"
        return None

    def recipients(self, group_id: str) -> tuple[str, ...]:
        return tuple(m.fingerprint for m in self.view(group_id).members
                     if m.fingerprint != self.fingerprint)

    def sent(self, group_id: str, message_id: str, text: str, recipients: tuple[str, ...],
             now: float) -> None:
        view = self.view(group_id)
        line = GroupLine("out", text[:MAX_TEXT_CHARS], now, message_id, recipients=recipients)
        line.received = view.early.pop(message_id, set()) & set(recipients)
        self._push(view, line)

    def acknowledge(self, group_id: str, peer_id: str, now: float) -> None:
        """Take ``peer_id``'s new key in this group (unverified) and unblock sending."""
        view = self.view(group_id)
        new = view.changed.pop(peer_id, None)
        if new is None:
            raise UiError(f"{peer_id[:64]}'s key did not change in this group")
        view.keys[peer_id] = new
        self.note(view, f"{peer_id}'s new identity key acknowledged (not verified)", now)

    # ------------------------------------------------------------------------------ wording
    def who(self, view: GroupView, fingerprint: str) -> str:
        if fingerprint == self.fingerprint:
            return "us"
        member = next((m for m in view.members if m.fingerprint == fingerprint), None)
        return member.peer_id if member is not None and member.peer_id else short(fingerprint)

    def left_text(self, view: GroupView) -> str:
        if view.left_by in ("", self.fingerprint):
            return f"we left the group (epoch {view.epoch}): it is read-only now"
        return (f"we were removed by {self.who(view, view.left_by or '')} "
                f"(epoch {view.epoch}): the group is read-only now")

    def note(self, view: GroupView, text: str, now: float) -> None:
        self.notice = text[:MAX_NOTE_CHARS]
        self._push(view, GroupLine("note", self.notice, now))

    @staticmethod
    def _push(view: GroupView, line: GroupLine) -> None:
        view.lines.append(line)
        if len(view.lines) > MAX_LINES:
            del view.lines[: len(view.lines) - MAX_LINES]


def short(fingerprint: str) -> str:
    return f"{fingerprint[:12]}…" if len(fingerprint) > 12 else fingerprint or "?"


def fork_text(event: GroupChatForked) -> str:
    then = "re-joining through a new Welcome" if event.rejoining else "we stay on our branch"
    return (f"FORK at epoch {event.epoch}, reported by {event.peer_id}: {event.reason} "
            f"({then})")
