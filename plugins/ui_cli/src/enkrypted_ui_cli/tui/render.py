"""Rich text for the screens, from :mod:`.model` views (pure: no Textual, no I/O)."""

from __future__ import annotations

__all__ = [
    "contact_prompt",
    "conversation",
    "group_banner",
    "group_conversation",
    "group_prompt",
    "group_status",
    "members",
    "receipt_mark",
    "grouped",
    "qr_text",
    "safety_groups",
    "status_line",
]

import io
import time
from typing import Final

from rich.text import Text

from .groups import GroupView
from .model import ChatModel, PeerView

STATE_MARK: Final = {
    "ready": ("●", "green"),
    "connecting": ("◐", "yellow"),
    "handshaking": ("◐", "yellow"),
    "reconnecting": ("◐", "yellow"),
    "disconnected": ("○", "grey50"),
}
CRYPTO_MARK: Final = {
    "verified": ("✓", "green"),
    "unverified": ("?", "yellow"),
    "changed": ("!", "bold white on red"),
    "none": (" ", ""),
}
GROUP_MARK: Final = {
    "active": ("●", "green"),
    "rejoining": ("◐", "yellow"),
    "left": ("✕", "grey50"),
}
SHOWN_LINES: Final = 200


def clock(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


def grouped(text: str, size: int = 4, per_line: int = 8) -> str:
    """``text`` in groups of ``size``, ``per_line`` groups a line (fingerprints, safety numbers)."""
    groups = [text[i : i + size] for i in range(0, len(text), size)]
    return "\n".join(" ".join(groups[i : i + per_line]) for i in range(0, len(groups), per_line))


def safety_groups(number: str) -> str:
    """A safety number as people read it aloud: digits in fives, six groups a line (other
    characters: in fours); whitespace in the service's string is ignored."""
    compact = "".join(number.split())
    return grouped(compact, 5, 6) if compact.isdigit() else grouped(compact)


def contact_prompt(view: PeerView, width: int = 20) -> Text:
    """``● ? bob      (3)``: connection, crypto state, name, unread count."""
    mark, style = STATE_MARK.get(view.state, ("?", ""))
    crypto, crypto_style = CRYPTO_MARK[view.crypto]
    unread = f" ({view.unread})" if view.unread else ""
    name = view.label[: max(1, width - 4 - len(unread))]
    text = Text.assemble((mark, style), " ", (crypto, crypto_style), " ", name)
    if unread:
        text.append(unread, style="bold cyan")
    return text


def conversation(view: PeerView | None, model: ChatModel) -> Text:
    """The active conversation: ``[hh:mm] who: text`` with ``✓`` once delivered, ``…`` before."""
    if view is None:
        return Text("No conversation yet. Press F2 to connect to a peer or paste an invite.", "dim")
    out = Text()
    for line in view.lines[-SHOWN_LINES:]:
        if not _line(out, line.at, line.direction, view.label, line.text):
            out.append(" ✓\n" if line.delivered else " …\n", "green" if line.delivered else "dim")
    out.rstrip()
    return out


def status_line(model: ChatModel, view: PeerView | None) -> Text:
    """Connection state, wire profile and the active cascade layers of the open conversation."""
    if model.online:
        text = Text.assemble(("● ", "green"), ("online as ", "dim"), model.local_id)
    else:
        text = Text.assemble(("○ offline", "bold red"), (" was ", "dim"), model.local_id)
    if view is not None:
        mark, style = STATE_MARK.get(view.state, ("?", ""))
        text.append(" │ ", "dim")
        text.append(f"{mark} {view.label} {view.state}", style)
        if view.profile:
            text.append(" │ ", "dim")
            text.append(view.profile, "bold")
            text.append(" │ ", "dim")
            text.append(">".join(view.layers) or "no layers")
    return text


def group_prompt(view: GroupView, width: int = 19) -> Text:
    """``● friends 4 e12 (2)``: state, name, member count, epoch, unread; a fork or a changed
    member key is a red ``!``."""
    mark, style = GROUP_MARK.get(view.state, ("?", ""))
    if view.fork is not None or view.changed:
        mark, style = "!", "bold white on red"
    unread = f" ({view.unread})" if view.unread else ""
    tail = "left" if view.state == "left" else f"{len(view.members)} e{view.epoch}"
    room = max(1, width - 3 - len(tail) - len(unread))
    name = view.label if len(view.label) <= room else view.label[: room - 1] + "…"
    text = Text.assemble((mark, style), " ", name, " ", (tail, "dim"))
    if unread:
        text.append(unread, style="bold cyan")
    return text


def members(count: int) -> str:
    return f"{count} member" if count == 1 else f"{count} members"


def receipt_mark(received: int, recipients: int) -> tuple[str, str]:
    """`` ✓ 3/7`` (received by 3 of the 7 members it went to), `` … 0/7`` before any receipt."""
    if recipients == 0:
        return " ✓", "green"
    if received == 0:
        return f" … 0/{recipients}", "dim"
    return f" ✓ {received}/{recipients}", "green" if received == recipients else "yellow"


def _line(out: Text, at: float, direction: str, sender: str, text: str) -> bool:
    """``[hh:mm] sender: text`` (or a note) appended to ``out``; ``False`` for our own line,
    whose delivery mark the caller appends.  Peer text is appended as plain text, never markup."""
    stamp = f"[{clock(at)}] "
    if direction == "note":
        out.append(f"{stamp}— {text}\n", style="dim italic")
        return True
    out.append(stamp, "dim")
    if direction == "in":
        out.append(f"{sender}: ", "bold cyan")
        out.append(f"{text}\n")
        return True
    out.append("me: ", "bold green")
    out.append(text)
    return False


def group_conversation(view: GroupView) -> Text:
    """A group's conversation: ``[hh:mm] bob: text``, ours with ``✓ received/recipients``."""
    out = Text()
    for line in view.lines[-SHOWN_LINES:]:
        if not _line(out, line.at, line.direction, line.sender or line.sender_fp[:12], line.text):
            mark, style = receipt_mark(len(line.received), len(line.recipients))
            out.append(f"{mark}\n", style)
    out.rstrip()
    if not out:
        return Text(f"No messages in “{view.label}” yet. F5: members, add, rename, leave.", "dim")
    return out


def group_banner(view: GroupView, left_text: str) -> str | None:
    """The red line above a group conversation: changed key, fork, or left (else ``None``)."""
    if view.changed:
        who = ", ".join(sorted(view.changed)[:3])
        return f"⚠ {who}'s IDENTITY KEY CHANGED in this group — sending blocked. Press F5."
    if view.fork is not None:
        how = "re-joining (new Welcome)" if view.fork.rejoining else "we stay on ours"
        return f"⚠ FORK at epoch {view.fork.epoch}: members disagree — {how}. F5 for members."
    if view.state == "left":
        return f"✕ {left_text}"
    if view.state == "rejoining":
        return "◐ re-joining the group: a new Welcome is on its way"
    return None


def group_status(model: ChatModel, view: GroupView) -> Text:
    """Our id, then the group: name, members, epoch, state."""
    text = status_line(model, None)
    mark, style = GROUP_MARK.get(view.state, ("?", ""))
    text.append(" │ ", "dim")
    text.append(f"{mark} {view.label}", style)
    text.append(f" │ {members(len(view.members))} │ epoch {view.epoch} │ {view.state}", "dim")
    return text


def qr_text(data: str) -> str:
    """``data`` as a terminal QR code (segno, half-block characters, error level L).  A full block
    is a *light* module pair, so the screen draws it white on black; the 2-module quiet zone keeps
    it at 21 rows for a 100-character invite (version 5)."""
    import segno  # imported when the connect screen opens: it is not needed before

    out = io.StringIO()
    segno.make(data, error="l", micro=False).terminal(out=out, compact=True, border=2)
    return out.getvalue().rstrip("\n")
