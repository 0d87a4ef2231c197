"""The modal screens: connect (own id + QR, peer id or invite in), safety number, help."""

from __future__ import annotations

__all__ = ["ConnectScreen", "GroupChange", "HelpScreen", "SafetyScreen"]

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Static

from ..errors import BadInvite
from ..invite import MAX_INPUT_CHARS, Target, format_invite, parse_target
from .model import PeerView
from .render import grouped, qr_text, safety_groups

HELP = """\
[b]Keys[/b]
  Enter      send the line in the input (Up/Down: earlier lines)
  F1         this help                F2   connect screen (QR, invite)
  F3         safety number: compare, mark verified, acknowledge a new key
  F4         files: send one (fast path = reduced protection), accept or
             reject offers, transfers with progress, export received files
  F5         group: members, safety numbers, receipts, add/remove, rename,
             leave, create (F2 in a group: Ctrl+G adds, Ctrl+R removes)
  F6 / F7    previous / next contact or group  Tab  list / input
  F8         hang up (the session is kept; F2 and the same id resume it)
  Ctrl+Q     quit (sessions are saved to resume next time)

[b]Contacts[/b]  ● ready  ◐ connecting  ○ disconnected
             ✓ verified  ? not verified  [white on red]![/] identity key CHANGED
[b]Groups[/b]    ● active  ◐ re-joining  ✕ left  [white on red]![/] fork or changed key
             `4 e12`: members, epoch;  `✓ 3/7`: received by 3 of 7

A changed identity key blocks sending to that contact until you review it
on the safety-number screen (F3) and acknowledge it (A).
Invite links: enkrypted://peer/<fingerprint>?id=<peer-id>"""


@dataclass(frozen=True, slots=True)
class GroupChange:
    """From the connect screen: add (``invite``) or ``remove`` ``target`` in ``group_id``."""

    action: str
    target: Target
    group_id: str


class ConnectScreen(ModalScreen[Target | GroupChange | None]):
    """Our peer id and fingerprint (text and QR of our invite link); a peer id or invite in.
    With an open group (p2p 2.2), Ctrl+G adds the peer to it and Ctrl+R removes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Back"),
        Binding("ctrl+g", "group('invite')", "Add to group", show=False),
        Binding("ctrl+r", "group('remove')", "Remove from group", show=False),
    ]
    DEFAULT_CSS = """
    ConnectScreen { align: center middle; }
    #connect-box { width: 80; height: 100%; background: $surface; }
    #qr { width: 43; height: 100%; }
    #qr-code { width: auto; color: white; background: black; }
    #connect-side { width: 1fr; padding: 0 1; }
    #connect-error { color: $error; height: auto; }
    """

    def __init__(
        self, local_id: str, fingerprint: str, group: tuple[str, str] | None = None
    ) -> None:
        super().__init__()
        self.local_id = local_id
        self.fingerprint = fingerprint
        self.group = group
        """``(group id, name)`` of the open group, when the service has groups."""

    def compose(self) -> ComposeResult:
        try:
            invite = format_invite(self.fingerprint, self.local_id)
            code = qr_text(invite)
        except BadInvite as exc:
            invite, code = "", f"no QR code: {exc}"
        with Horizontal(id="connect-box"):
            with VerticalScroll(id="qr"):
                yield Static(code, id="qr-code")
            with Vertical(id="connect-side"):
                yield Static(Text("Connect", style="bold"))
                yield Static(Text.assemble(("Your peer id: ", "dim"), self.local_id), id="own-id")
                yield Static(Text("Your fingerprint:", style="dim"))
                yield Static(grouped(self.fingerprint, 4, 4), id="own-fingerprint")
                yield Static(Text("Invite link (scan the code or share it):", style="dim"))
                yield Static(invite, id="invite")
                yield Static(Text("Peer id or invite link:", style="dim"))
                yield Input(
                    placeholder="enkrypted://peer/…?id=…",
                    max_length=MAX_INPUT_CHARS,
                    id="target",
                )
                if self.group is not None:
                    yield Static(
                        Text.assemble(
                            ("Enter: connect · Ctrl+G: add to ", "dim"),
                            (self.group[1], "bold cyan"),
                            (" · Ctrl+R: remove from it", "dim"),
                        ),
                        id="connect-group",
                    )
                yield Static("", id="connect-error")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#target", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        target = self._target()
        if target is not None:
            self.dismiss(target)

    def _target(self) -> Target | None:
        try:
            return parse_target(self.query_one("#target", Input).value)
        except BadInvite as exc:
            self.query_one("#connect-error", Static).update(Text(str(exc)))
            return None  # the input keeps what was typed: nothing is lost

    def action_group(self, action: str) -> None:
        if self.group is None:
            return
        target = self._target()
        if target is not None:
            self.dismiss(GroupChange(action, target, self.group[0]))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class SafetyScreen(ModalScreen[str | None]):
    """Compare the safety number; mark verified (V), or acknowledge a changed key (A)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "verified", "Mark verified"),
        Binding("a", "acknowledge", "Acknowledge new key"),
        Binding("escape", "dismiss_none", "Back"),
    ]
    DEFAULT_CSS = """
    SafetyScreen { align: center middle; }
    #safety-box { width: 78; height: auto; max-height: 100%; border: round $accent;
                  background: $surface; padding: 0 1; }
    #safety-warning { background: $error; color: $text; text-style: bold; height: auto; }
    #safety-buttons { height: 3; }
    """

    def __init__(self, view: PeerView, own_fingerprint: str) -> None:
        super().__init__()
        self.view = view
        self.own_fingerprint = own_fingerprint

    def compose(self) -> ComposeResult:
        view = self.view
        with Vertical(id="safety-box"):
            yield Static(Text.assemble(("Safety number with ", "bold"), (view.label, "bold cyan")))
            if view.key_changed:
                yield Static(
                    f"⚠ {view.label}'s IDENTITY KEY CHANGED since you last talked.\n"
                    "Sending is blocked. Compare the new safety number in person, then press A.",
                    id="safety-warning",
                )
                yield Static(Text("Pinned (old) key:", style="dim"))
                yield Static(grouped(view.contact.pinned), id="old-fingerprint")
            elif not view.fingerprint:
                yield Static("No session yet: connect first, then compare.", id="safety-state")
            else:
                state = "VERIFIED" if view.contact.verified else "not verified yet"
                yield Static(Text(f"Status: {state}", style="bold"), id="safety-state")
            if view.fingerprint:
                yield Static(Text("Safety number (the same on both screens):", style="dim"))
                yield Static(
                    Text(safety_groups(view.safety_number), style="bold"), id="safety-number"
                )
                yield Static(Text(f"{view.label}'s key:", style="dim"))
                yield Static(grouped(view.fingerprint), id="peer-fingerprint")
            yield Static(Text("Your key:", style="dim"))
            yield Static(grouped(self.own_fingerprint), id="own-key")
            with Horizontal(id="safety-buttons"):
                if view.key_changed:
                    yield Button("Acknowledge new key (A)", id="acknowledge", variant="error")
                elif view.fingerprint and not view.contact.verified:
                    yield Button("Mark verified (V)", id="verified", variant="success")
                yield Button("Back (Esc)", id="back")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"acknowledge": self.action_acknowledge, "verified": self.action_verified}.get(
            event.button.id or "", self.action_dismiss_none
        )()

    def action_verified(self) -> None:
        if self.view.fingerprint and not self.view.key_changed:
            self.dismiss("verified")

    def action_acknowledge(self) -> None:
        if self.view.key_changed:
            self.dismiss("acknowledged")

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Keys and symbols."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Back"),
        Binding("f1", "dismiss_none", "Back", show=False),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #help { width: 78; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP, id="help")
        yield Footer()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
