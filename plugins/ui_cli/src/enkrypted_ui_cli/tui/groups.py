"""Groups as the screens show them (p2p 2.2, ``GroupChatService``; pure, no Textual, no I/O
besides :class:`ChatStore`).  The one group view-model of both uis: the TUI draws it, and the web
chat (``enkrypted_ui_web``) serves it to its page.

:class:`GroupBook` folds the group events, and the service's word on the groups (``groups()``,
:meth:`GroupBook.load`), into one :class:`GroupView` per group: name, epoch, members, state
(``active`` / ``rejoining`` / ``left``, plus a fork notice), unread count, the conversation with
per-member receipts, and the member keys.  The sending rules (docs/tui.md, "Groups"):

* the 1:1 changed-key rule holds per member: the first fingerprint seen for a peer id in a group
  (or the contact's pinned one) is kept in the store (``group_keys``); a membership listing that
  peer id with another fingerprint marks it changed and :meth:`GroupBook.send_blocked` refuses to
  send to the group until :meth:`GroupBook.acknowledge` takes the new key (kept in the store too);
* nothing is sent to a group we left (read-only) or while we are re-joining it after a fork (the
  new Welcome has not come: a message would be sealed for the branch we are leaving).

Names and texts come from peers: they are clipped and made one line here, and drawn as plain
text (never markup) by the screens.
"""

from __future__ import annotations

__all__ = ["MAX_GROUPS", "GroupBook", "GroupView", "one_line"]

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from enkrypted_shell.contracts import (
    GROUP_STATES,
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

from ..chatstore import MAX_GROUP_MEMBERS, ChatStore, GroupLine

GroupEvent = (GroupChatMessage | GroupChatReceipt | GroupChatMembership | GroupChatRenamed
              | GroupChatForked | GroupChatLeft | GroupChatProblem)
MAX_GROUPS: Final = 200
MAX_LINES: Final = 500
MAX_TEXT_CHARS: Final = 65_536
MAX_NAME_CHARS: Final = 128
MAX_NOTE_CHARS: Final = 300
MAX_ID_CHARS: Final = 128


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (any whitespace run is one space), at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(slots=True)
class GroupView:
    """One group as the screens show it."""

    group_id: str
    name: str = ""
    epoch: int = 0
    members: tuple[GroupMember, ...] = ()
    state: str = "active"
    unread: int = 0
    lines: list[GroupLine] = field(default_factory=list)
    fork: GroupChatForked | None = None
    left_by: str = ""
    keys: dict[str, str] = field(default_factory=dict)
    """Peer id -> the fingerprint first seen for it in this group (kept in the store)."""
    changed: dict[str, str] = field(default_factory=dict)
    """Peer id -> its new fingerprint, for members whose key changed (not acknowledged yet)."""
    early: dict[str, set[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or f"group {self.group_id[:8]}"

    def member(self, peer_id: str) -> GroupMember | None:
        return next((m for m in self.members if m.peer_id == peer_id), None)


class GroupBook:
    """Every group's view; :meth:`apply` takes the group events in order."""

    def __init__(self, store: ChatStore, fingerprint: str, *,
                 pinned: Callable[[str], str], say: Callable[[str], None]) -> None:
        self.store = store
        self.fingerprint = fingerprint
        self.pinned = pinned
        """A contact's pinned fingerprint by peer id ("" if none): a group member's first key."""
        self.say = say
        self.views: dict[str, GroupView] = {}

    # ---------------------------------------------------------------------------- the list
    def load(self, infos: Sequence[GroupInfo], now: float) -> None:
        """The service's word on its groups (``groups()``): a group not shown yet starts with its
        stored history and member keys; every listed group takes the service's name, epoch,
        members (through the member-key rule) and state."""
        for info in list(infos)[:MAX_GROUPS]:
            known = info.group_id[:MAX_ID_CHARS] in self.views
            view = self._view(info.group_id)
            if view is None:
                continue
            if not known:
                view.lines = self.store.group_history(view.group_id)
            view.state = info.state if info.state in GROUP_STATES else "active"
            if view.state != "left":
                view.left_by = ""
            self._members(view, info.name, info.epoch, info.members, now)

    def _view(self, group_id: str) -> GroupView | None:
        group_id = group_id[:MAX_ID_CHARS]
        view = self.views.get(group_id)
        if view is None:
            if len(self.views) >= MAX_GROUPS:
                self.say(f"ignored a group event: at most {MAX_GROUPS} groups")
                return None
            view = self.views[group_id] = GroupView(group_id)
            view.keys = self.store.group_keys(group_id)
        return view

    # ------------------------------------------------------------------------------ events
    def apply(self, event: GroupEvent, now: float, active: str | None) -> str | None:
        """Fold one group event in; the group it concerns (``None``: ignored)."""
        if isinstance(event, GroupChatProblem) and not event.group_id:
            self.say(f"{event.kind} problem with the saved groups: {event.message}")
            return None
        view = self._view(event.group_id)
        if view is None:
            return None
        if isinstance(event, GroupChatMessage):
            self._received(view, event, active)
        elif isinstance(event, GroupChatReceipt):
            self._receipt(view, event.message_id, event.fingerprint)
        elif isinstance(event, GroupChatMembership):
            self._membership(view, event, now)
        elif isinstance(event, GroupChatRenamed):
            view.name = one_line(event.name, MAX_NAME_CHARS)
            self.note(view, f"{self.who(view, event.by)} renamed the group to “{view.name}”", now)
        elif isinstance(event, GroupChatForked):
            view.fork = event
            view.state = "rejoining" if event.rejoining else view.state
            how = "we are re-joining by a new Welcome" if event.rejoining else "we stay"
            self.note(view, f"FORK at epoch {event.epoch}: {one_line(event.peer_id, 64)} is on "
                            f"another branch ({one_line(event.reason, 120)}); {how}", now)
        elif isinstance(event, GroupChatLeft):
            view.state, view.left_by = "left", event.by or self.fingerprint
            self.note(view, self.left_text(view), now)
        else:
            self.note(view, f"{event.kind} problem: {event.message}", now)
        return view.group_id

    def _received(self, view: GroupView, event: GroupChatMessage, active: str | None) -> None:
        line = GroupLine("in", event.text[:MAX_TEXT_CHARS], event.received_at,
                         event.message_id[:MAX_ID_CHARS], event.peer_id[:MAX_ID_CHARS],
                         event.fingerprint[:MAX_ID_CHARS])
        self._push(view, line)
        if view.group_id != active:
            view.unread += 1
        self.store.append_group(view.group_id, line)  # last: a refused write loses nothing

    def _receipt(self, view: GroupView, message_id: str, fingerprint: str) -> None:
        for line in reversed(view.lines):
            if line.direction == "out" and line.message_id == message_id:
                if fingerprint in line.recipients and fingerprint not in line.received:
                    line.received.add(fingerprint)
                    self.store.append_group_receipt(view.group_id, message_id, fingerprint)
                return
        if len(view.early) < MAX_LINES and len(view.early.get(message_id, ())) < MAX_GROUP_MEMBERS:
            view.early.setdefault(message_id[:MAX_ID_CHARS], set()).add(fingerprint)

    def _membership(self, view: GroupView, event: GroupChatMembership, now: float) -> None:
        before = view.members
        self._members(view, event.name, event.epoch, event.members, now)
        names = {m.fingerprint: m.peer_id for m in (*before, *view.members)}
        if view.state == "left" and any(m.fingerprint == self.fingerprint for m in view.members):
            view.state, view.left_by = "active", ""  # invited again
        elif view.state == "rejoining":
            view.state = "active"
        if view.fork is not None and event.epoch > view.fork.epoch:
            view.fork = None
        came = [names.get(fp) or self.who(view, fp) for fp in event.added[:8]]
        went = [names.get(fp) or self.who(view, fp) for fp in event.removed[:8]]
        if not before:
            count = len(view.members)
            self.note(view, f"joined “{view.label}” at epoch {view.epoch}: {count} member"
                            f"{'' if count == 1 else 's'}", now)
        if came:
            self.note(view, f"{', '.join(came)} joined (epoch {view.epoch})", now)
        if went:
            self.note(view, f"{', '.join(went)} left or were removed (epoch {view.epoch})", now)

    def _members(self, view: GroupView, name: str, epoch: int,
                 members: Sequence[GroupMember], now: float) -> None:
        view.name = one_line(name, MAX_NAME_CHARS) or view.name
        view.epoch = max(0, epoch)
        view.members = tuple(
            GroupMember(one_line(m.peer_id, MAX_ID_CHARS), m.fingerprint[:MAX_ID_CHARS])
            for m in list(members)[:MAX_GROUP_MEMBERS])
        pins = dict(view.keys)
        for m in view.members:
            if m.fingerprint == self.fingerprint or not m.peer_id:
                continue  # a member without a peer id has nothing to pin against
            first = pins.setdefault(m.peer_id, self.pinned(m.peer_id) or m.fingerprint)
            if first != m.fingerprint and view.changed.get(m.peer_id) != m.fingerprint:
                view.changed[m.peer_id] = m.fingerprint
                self.note(view, f"IDENTITY KEY CHANGED for {m.peer_id}: sending to the group is "
                                "blocked until you review it (F5)", now)
            elif first == m.fingerprint:
                view.changed.pop(m.peer_id, None)
        if pins != view.keys and len(pins) <= MAX_GROUP_MEMBERS:
            view.keys = pins
            self.store.save_group_keys(view.group_id, pins)

    # ------------------------------------------------------------------------------ sending
    def send_blocked(self, group_id: str) -> str | None:
        """Why a message to the group cannot go now (one line), or ``None``."""
        view = self.views.get(group_id)
        if view is None:
            return "no such group"
        if view.state == "left":
            return f"you are no longer in “{view.label}” (read-only)"
        if view.state == "rejoining":
            return f"re-joining “{view.label}” after a fork: wait for the new Welcome"
        if view.changed:
            who = ", ".join(sorted(view.changed)[:3])
            return f"{who}'s identity key changed in “{view.label}”: review it (F5)"
        return None

    def recipients(self, group_id: str) -> tuple[str, ...]:
        view = self.views[group_id]
        return tuple(m.fingerprint for m in view.members if m.fingerprint != self.fingerprint)

    def sent(self, group_id: str, message_id: str, text: str, now: float,
             recipients: tuple[str, ...]) -> None:
        """``send_group_text`` returned ``message_id`` (to ``recipients``, the members then)."""
        view = self.views[group_id]
        line = GroupLine("out", text[:MAX_TEXT_CHARS], now, message_id, recipients=recipients)
        line.received = view.early.pop(message_id, set()) & set(recipients)
        self._push(view, line)
        self.store.append_group(group_id, line)
        for fingerprint in sorted(line.received):
            self.store.append_group_receipt(group_id, message_id, fingerprint)

    def acknowledge(self, group_id: str, peer_id: str, now: float) -> None:
        """Accept a member's changed key: kept as its key in this group (in the store, so it
        holds after a restart and in the other ui), sending unblocked."""
        view = self.views[group_id]
        new = view.changed.pop(peer_id, None)
        if new is None:
            return
        view.keys = {**view.keys, peer_id: new}
        self.store.save_group_keys(group_id, view.keys)
        self.note(view, f"new identity key of {peer_id} acknowledged (not verified)", now)

    # ---------------------------------------------------------------------------- helpers
    def who(self, view: GroupView, fingerprint: str) -> str:
        """A member by fingerprint: "you", its peer id, or the fingerprint's start."""
        if fingerprint == self.fingerprint:
            return "you"
        member = next((m for m in view.members if m.fingerprint == fingerprint), None)
        return member.peer_id if member is not None else one_line(fingerprint[:12], 12) + "…"

    def left_text(self, view: GroupView) -> str:
        if not view.left_by or view.left_by == self.fingerprint:
            return f"you left “{view.label}”: read-only, later messages are unreadable to you"
        return (f"{self.who(view, view.left_by)} removed you from “{view.label}”: read-only, "
                "later messages are unreadable to you")

    def note(self, view: GroupView, text: str, now: float) -> None:
        text = one_line(text, MAX_NOTE_CHARS)
        self.say(text)
        self._push(view, GroupLine("note", text, now))

    @staticmethod
    def _push(view: GroupView, line: GroupLine) -> None:
        view.lines.append(line)
        if len(view.lines) > MAX_LINES:
            del view.lines[: len(view.lines) - MAX_LINES]
