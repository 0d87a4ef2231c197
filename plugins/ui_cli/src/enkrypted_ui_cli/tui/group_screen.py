"""The group screen (F5, p2p 2.2): the open group's members, receipts and management.

Three tabs: *Members* (every member: peer id, fingerprint, the safety number of our 1:1 session
with it when that session's key is the member's group key, verified or not; a changed key shown
like the 1:1 changed-key block, with **A** to acknowledge; Remove), *Receipts* (our last messages
and which member received each) and *Manage* (add a member by peer id or invite link, rename,
leave — pressed twice —, create a new group).  Without an open group only *Manage* has content.
Every service call runs in an app worker (``run_op``); the results come back as group events,
and the app redraws this screen with :meth:`GroupScreen.refresh_group`.  Names, texts and ids
from peers are drawn as plain :class:`Text`, never as markup.
"""

from __future__ import annotations

__all__ = ["GroupScreen"]

import contextlib
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from enkrypted_shell.contracts import GroupMember

from ..errors import BadInvite
from ..invite import MAX_INPUT_CHARS, parse_target
from .groups import MAX_NAME_CHARS, GroupView, one_line
from .model import ChatModel
from .render import GROUP_MARK, grouped, members, receipt_mark, safety_groups

RunOp = Callable[[str, str, str], None]
"""``run_op(op, group_id, argument)``: ``create`` / ``invite`` / ``remove`` / ``leave`` /
``rename`` in an app worker."""
SHOWN_RECEIPTS = 10


def member_prompt(model: ChatModel, view: GroupView, member: GroupMember) -> Text:
    """``✓ bob  b0b0 b0b0 …  verified`` (``!`` and KEY CHANGED in red for a changed key)."""
    ours = member.fingerprint == model.fingerprint
    contact = model.peers.get(member.peer_id)
    verified = (contact is not None and contact.contact.verified
                and contact.contact.pinned == member.fingerprint)
    if member.peer_id in view.changed:
        mark, style, state = "!", "bold white on red", "KEY CHANGED"
    elif ours:
        mark, style, state = " ", "", "you"
    elif verified:
        mark, style, state = "✓", "green", "verified"
    else:
        mark, style, state = "?", "yellow", "not verified"
    text = Text.assemble((mark, style), " ", (f"{member.peer_id[:24]:<24}", "bold"), " ")
    text.append(grouped(member.fingerprint[:16], 4, 4) + " …  ", "dim")
    text.append(state, style if state != "you" else "dim")
    return text


def member_detail(model: ChatModel, view: GroupView, member: GroupMember) -> Text:
    """Peer id, fingerprint, the 1:1 safety number, and a changed key's old and new keys."""
    out = Text()
    if member.peer_id in view.changed:
        out.append(f"⚠ {member.peer_id}'s IDENTITY KEY CHANGED in this group.\n"
                   "Sending to the group is blocked. Compare the new key in person, then A.\n",
                   "bold white on red")
        out.append("Kept (old) key:\n", "dim")
        out.append(grouped(view.keys.get(member.peer_id, "")) + "\n")
    out.append("Peer id: ", "dim")
    out.append(member.peer_id + "\n")
    out.append("Fingerprint (authenticated by MLS):\n", "dim")
    out.append(grouped(member.fingerprint) + "\n")
    if member.fingerprint == model.fingerprint:
        out.append("This is you.", "dim")
        return out
    session = model.peers.get(member.peer_id)
    if session is None or not session.fingerprint:
        out.append("No 1:1 session with this member yet: the safety number shows once the\n"
                   "group dials it (or connect with F2).", "dim")
    elif session.fingerprint != member.fingerprint:
        out.append("⚠ our 1:1 session with this peer id has ANOTHER key than the group's.",
                   "bold white on red")
    else:
        out.append("Safety number (our 1:1 session with this member; F3 there to verify):\n",
                   "dim")
        out.append(safety_groups(session.safety_number), "bold")
    return out


def receipts_text(view: GroupView) -> Text:
    """Our last messages: ``received by 3/7`` and each member ✓ or …."""
    lines = [x for x in view.lines if x.direction == "out"][-SHOWN_RECEIPTS:]
    if not lines:
        return Text("Nothing sent to this group yet.", "dim")
    names = {m.fingerprint: m.peer_id for m in view.members}
    out = Text()
    for line in reversed(lines):
        _, style = receipt_mark(len(line.received), len(line.recipients))
        out.append(one_line(line.text, 40), "bold")
        out.append(f"  received by {len(line.received)}/{len(line.recipients)}\n", style)
        for fp in line.recipients:
            got = fp in line.received
            out.append(f"   {'✓' if got else '…'} ", "green" if got else "dim")
            out.append(names.get(fp) or f"{fp[:12]}… (no longer a member)")
        out.append("\n")
    out.rstrip()
    return out


class GroupScreen(ModalScreen[None]):
    """Members, receipts and management of the open group (or only "create" without one)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Back"),
        Binding("f5", "dismiss_none", "Back", show=False),
        Binding("a", "acknowledge", "Acknowledge key"),
    ]
    DEFAULT_CSS = """
    GroupScreen { align: center middle; }
    #group-box { width: 100%; height: 100%; background: $surface; }
    #group-title { height: 1; padding: 0 1; text-style: bold; }
    #group-tabs { height: 1fr; }
    #group-tabs TabPane { height: 1fr; padding: 0; }
    #members { height: auto; max-height: 8; border: none; }
    #member-detail { height: 1fr; padding: 0 1; }
    #member-buttons { height: 1; }
    #member-buttons Button { margin-right: 1; width: auto; }
    .manage-row { height: 3; }
    .manage-row Input { width: 1fr; }
    .manage-row Button { width: auto; min-width: 12; }
    #group-error { height: 1; color: $error; padding: 0 1; }
    """

    def __init__(self, model: ChatModel, group_id: str | None, run_op: RunOp,
                 changed: Callable[[], None], wall: Callable[[], float]) -> None:
        super().__init__()
        self.model, self.group_id, self.run_op = model, group_id, run_op
        self.changed, self.wall = changed, wall
        self._leave_armed = False
        self._shown: tuple[object, ...] | None = None

    @property
    def view(self) -> GroupView | None:
        return self.model.groups.views.get(self.group_id or "")

    # ---------------------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        with Vertical(id="group-box"):
            yield Static("", id="group-title")
            with TabbedContent(id="group-tabs"):
                with TabPane("Members", id="tab-members"):
                    yield OptionList(id="members")
                    with VerticalScroll(id="member-detail"):
                        yield Static("", id="member-text")
                    with Horizontal(id="member-buttons"):
                        yield Button("Acknowledge new key (A)", id="acknowledge", variant="error",
                                     compact=True)
                        yield Button("Remove from group", id="remove", compact=True)
                with TabPane("Receipts", id="tab-receipts"), VerticalScroll():
                    yield Static("", id="receipts")
                with TabPane("Manage", id="tab-manage"):
                    yield from self._manage()
            yield Static("", id="group-error")
        yield Footer()

    def _manage(self) -> ComposeResult:
        with Horizontal(classes="manage-row"):
            yield Input(placeholder="add: peer id or invite link", max_length=MAX_INPUT_CHARS,
                        id="add-target")
            yield Button("Add", id="add", variant="primary")
        with Horizontal(classes="manage-row"):
            yield Input(placeholder="new name", max_length=MAX_NAME_CHARS, id="rename-to")
            yield Button("Rename", id="rename")
        with Horizontal(classes="manage-row"):
            yield Input(placeholder="name of a new group", max_length=MAX_NAME_CHARS,
                        id="new-name")
            yield Button("Create", id="create", variant="success")
        with Horizontal(classes="manage-row"):
            yield Button("Leave group", id="leave", variant="error")

    def on_mount(self) -> None:
        if self.view is None:
            self.query_one("#group-tabs", TabbedContent).active = "tab-manage"
            self.query_one("#new-name", Input).focus()
        self.refresh_group()

    def refresh_group(self) -> None:
        """Redraw from the model (the member highlight is kept)."""
        view = self.view
        title = self.query_one("#group-title", Static)
        if view is None:
            title.update(Text("Groups — no group open: create one below"))
            for wid in ("#add", "#rename", "#leave", "#remove", "#acknowledge"):
                self.query_one(wid, Button).disabled = True
            return
        mark, style = GROUP_MARK.get(view.state, ("?", ""))
        title.update(Text.assemble((mark, style), " ", (view.label, "bold cyan"),
                                   (f" · {members(len(view.members))} · epoch {view.epoch} · "
                                    f"{view.state}", "dim")))
        options = self.query_one("#members", OptionList)
        shown = (view.members, tuple(sorted(view.changed)), view.state)
        if shown != self._shown:
            self._shown = shown
            at = options.highlighted
            options.set_options([Option(member_prompt(self.model, view, m), id=f"m{i}")
                                 for i, m in enumerate(view.members)])
            if view.members:
                options.highlighted = min(at or 0, len(view.members) - 1)
        self._show_member()
        self.query_one("#receipts", Static).update(receipts_text(view))
        left = view.state == "left"
        for wid in ("#add", "#rename", "#leave", "#remove"):
            self.query_one(wid, Button).disabled = left

    def _member(self) -> GroupMember | None:
        view = self.view
        at = self.query_one("#members", OptionList).highlighted
        if view is None or at is None or not 0 <= at < len(view.members):
            return None
        return view.members[at]

    def _show_member(self) -> None:
        view, member = self.view, self._member()
        text = Text("No member selected.", "dim")
        if view is not None and member is not None:
            text = member_detail(self.model, view, member)
        self.query_one("#member-text", Static).update(text)
        ack = self.query_one("#acknowledge", Button)
        ack.display = bool(view and member and member.peer_id in view.changed)
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """**A** is offered only on a member whose key changed."""
        if action == "acknowledge":
            view, member = self.view, self._member()
            return bool(view and member and member.peer_id in view.changed)
        return True

    @on(OptionList.OptionHighlighted, "#members")
    def _highlighted(self) -> None:
        self._show_member()

    # ---------------------------------------------------------------------------- actions
    def _error(self, text: str) -> None:
        with contextlib.suppress(NoMatches):
            self.query_one("#group-error", Static).update(Text(one_line(text, 200)))

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        {"add": self._add, "rename": self._rename, "create": self._create, "leave": self._leave,
         "remove": self._remove, "acknowledge": self.action_acknowledge,
         }.get(event.button.id or "", lambda: None)()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        {"add-target": self._add, "rename-to": self._rename, "new-name": self._create,
         }.get(event.input.id or "", lambda: None)()

    def _add(self) -> None:
        if self.group_id is None:
            return
        field = self.query_one("#add-target", Input)
        try:
            target = parse_target(field.value)
        except BadInvite as exc:
            self._error(str(exc))
            return  # the input keeps what was typed
        field.value = ""
        self._error(f"inviting {target.peer_id}…")
        self.run_op("invite", self.group_id, target.peer_id)

    def _rename(self) -> None:
        field = self.query_one("#rename-to", Input)
        name = one_line(field.value, MAX_NAME_CHARS)
        if self.group_id is None or not name:
            self._error("type the new name first")
            return
        field.value = ""
        self.run_op("rename", self.group_id, name)

    def _create(self) -> None:
        field = self.query_one("#new-name", Input)
        name = one_line(field.value, MAX_NAME_CHARS)
        if not name:
            self._error("type the new group's name first")
            return
        field.value = ""
        self.run_op("create", "", name)
        self.dismiss(None)

    def _leave(self) -> None:
        if self.group_id is None:
            return
        if not self._leave_armed:
            self._leave_armed = True
            self._error("press Leave group again to leave (you cannot read it afterwards)")
            return
        self.run_op("leave", self.group_id, "")
        self.dismiss(None)

    def _remove(self) -> None:
        member = self._member()
        if self.group_id is None or member is None:
            self._error("pick a member on the Members tab first")
            return
        if member.fingerprint == self.model.fingerprint:
            self._error("to remove yourself, leave the group (Manage)")
            return
        self._error(f"removing {member.peer_id}…")
        self.run_op("remove", self.group_id, member.peer_id)

    def action_acknowledge(self) -> None:
        member, view = self._member(), self.view
        if view is None or member is None or member.peer_id not in view.changed:
            return
        self.model.groups.acknowledge(view.group_id, member.peer_id, self.wall())
        self._shown = None
        self.changed()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
