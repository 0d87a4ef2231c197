"""What the page draws, as one JSON-ready document built from the shared chat presenter (pure).

The presenter (``enkrypted_ui_cli.tui.model.ChatModel``, the TUI's own: the same contact, receipt,
changed-key and file rules) holds the state; :func:`snapshot` turns it into plain data for the
page.  Every string a peer could have chosen (message text, names, file names, reasons, notes
quoting them) goes through :func:`~.text.inert`; sizes are bounded: the open conversation's last
``MAX_LINES`` lines, ``MAX_TRANSFERS_SHOWN`` transfers, ``MAX_STORED_SHOWN`` received files.
The TUI's key hints in presenter notes ("(F3)") are reworded for the page.  Groups (p2p 2.2) come
from the presenter's group book too (``ChatModel.groups``): the list, and the open group
(``ChatModel.active_group``) with its members (fingerprints, the 1:1 safety number where a
session shows the same key) and per-member receipts.
"""

from __future__ import annotations

__all__ = ["snapshot", "transfer_doc"]

from typing import Any, Final

from enkrypted_shell.contracts import GroupChatForked
from enkrypted_ui_cli.chatstore import GroupLine
from enkrypted_ui_cli.errors import UiError
from enkrypted_ui_cli.invite import format_invite
from enkrypted_ui_cli.tui.files import Transfer
from enkrypted_ui_cli.tui.groups import GroupBook, GroupView
from enkrypted_ui_cli.tui.model import ChatModel, PeerView

from .text import inert, one_line

MAX_LINES: Final = 500
MAX_TRANSFERS_SHOWN: Final = 50
MAX_STORED_SHOWN: Final = 500
MAX_RECEIPTS_NAMED: Final = 8
"""Recipients named one by one under an outgoing group message (more: counted)."""
_HINTS: Final = (
    ("(F3)", "(Safety number)"),
    ("(F2)", "(Connect)"),
    ("(F5)", "(Members)"),
    ("F4 to accept or reject", "accept or reject it under Files"),
)


def _hints(text: str) -> str:
    for old, new in _HINTS:
        text = text.replace(old, new)
    return text


def _contact(view: PeerView, model: ChatModel, now: float) -> dict[str, Any]:
    return {
        "peer_id": inert(view.peer_id, 256),
        "label": inert(view.label, 256),
        "state": view.state,
        "crypto": view.crypto,
        "unread": view.unread,
        "typing": model.typing(view.peer_id, now),
        "profile": inert(view.profile, 64),
        "layers": [inert(x, 64) for x in view.layers],
    }


def _conversation(view: PeerView, model: ChatModel) -> dict[str, Any]:
    contact = view.contact
    return {
        "peer_id": inert(view.peer_id, 256),
        "label": inert(view.label, 256),
        "lines": [
            {
                "dir": line.direction,
                "text": _hints(inert(line.text)),
                "at": line.at,
                "delivered": line.delivered,
            }
            for line in view.lines[-MAX_LINES:]
        ],
        "blocked": _hints(model.send_blocked(view.peer_id) or "") or None,
        "safety_number": inert(view.safety_number, 128),
        "fingerprint": inert(view.fingerprint, 128),
        "pinned": inert(contact.pinned, 128),
        "verified": contact.verified,
        "key_changed": view.key_changed,
        "fast": contact.fast,
        "state": view.state,
        "profile": inert(view.profile, 64),
        "layers": [inert(x, 64) for x in view.layers],
    }


def transfer_doc(t: Transfer) -> dict[str, Any]:
    return {
        "key": t.key,
        "peer_id": inert(t.peer_id, 256),
        "outgoing": t.outgoing,
        "name": one_line(t.name or t.transfer_id, 120),
        "size": t.size,
        "fast": t.fast,
        "state": t.state,
        "bytes": t.bytes,
        "fraction": t.fraction,
        "rate": t.rate,
        "eta": t.eta,
        "sha256": inert(t.sha256, 64),
        "reason": one_line(t.reason, 200),
    }


def _group_item(view: GroupView) -> dict[str, Any]:
    return {
        "group_id": inert(view.group_id, 128),
        "label": one_line(view.label, 128),
        "epoch": view.epoch,
        "state": view.state,
        "members": len(view.members),
        "unread": view.unread,
        "fork": view.fork is not None,
        "changed": bool(view.changed),
    }


def _member(view: GroupView, book: GroupBook, model: ChatModel, index: int) -> dict[str, Any]:
    member = view.members[index]
    peer, fp = member.peer_id, member.fingerprint
    contact = model.peers.get(peer)
    if fp == book.fingerprint:
        crypto = "me"
    elif peer in view.changed:
        crypto = "changed"
    elif contact is not None and contact.contact.verified and contact.contact.pinned == fp:
        crypto = "verified"
    else:
        crypto = "unverified"
    same_key = contact is not None and contact.fingerprint == fp
    return {
        "peer_id": inert(peer, 256),
        "fingerprint": inert(fp, 128),
        "new_fingerprint": inert(view.changed.get(peer, ""), 128),
        "pinned": inert(view.keys.get(peer, ""), 128),
        "me": fp == book.fingerprint,
        "sequencer": index == 0,
        "crypto": crypto,
        "safety_number": inert(contact.safety_number, 128) if same_key and contact else "",
        "link": contact.state if contact is not None else "disconnected",
    }


def fork_text(event: GroupChatForked) -> str:
    """The red banner of a fork, until the group moves past its epoch."""
    then = "re-joining through a new Welcome" if event.rejoining else "we stay on our branch"
    return (f"FORK at epoch {event.epoch}, reported by {event.peer_id}: {event.reason} "
            f"({then})")


def _group_line(line: GroupLine, view: GroupView, book: GroupBook) -> dict[str, Any]:
    text = _hints(inert(line.text)) if line.direction == "note" else inert(line.text)
    doc: dict[str, Any] = {"dir": line.direction, "text": text, "at": line.at}
    if line.direction == "in":
        doc["sender"] = inert(line.sender or book.who(view, line.sender_fp), 256)
    elif line.direction == "out":
        doc["got"], doc["of"] = len(line.received), len(line.recipients)
        doc["receipts"] = [
            {"who": inert(book.who(view, fp), 256), "done": fp in line.received}
            for fp in line.recipients[:MAX_RECEIPTS_NAMED]
        ]
    return doc


def _group(view: GroupView, book: GroupBook, model: ChatModel) -> dict[str, Any]:
    return {
        **_group_item(view),
        "name": one_line(view.name, 128),
        "fork": inert(fork_text(view.fork), 400) if view.fork is not None else None,
        "left": inert(book.left_text(view), 400) if view.state == "left" else None,
        "blocked": _hints(inert(book.send_blocked(view.group_id) or "", 400)) or None,
        "members": [_member(view, book, model, i) for i in range(len(view.members))],
        "lines": [_group_line(x, view, book) for x in view.lines[-MAX_LINES:]],
    }


def groups_doc(book: GroupBook | None, model: ChatModel) -> dict[str, Any]:
    """The groups part of the snapshot (``groups_supported`` false without a group service)."""
    if book is None:
        return {"groups_supported": False, "groups": [], "active_group": None, "group": None}
    active = model.active_group
    view = book.views.get(active) if active is not None else None
    return {
        "groups_supported": True,
        "groups": [_group_item(v) for v in book.views.values()],
        "active_group": inert(view.group_id, 128) if view is not None else None,
        "group": _group(view, book, model) if view is not None else None,
    }


def snapshot(
    model: ChatModel, *, now: float, files: bool, groups: GroupBook | None = None
) -> dict[str, Any]:
    """The whole view (every open page shows the presenter's active conversation, or its
    active group)."""
    active = model.active
    view = model.peers.get(active) if active is not None else None
    try:
        invite = format_invite(model.fingerprint, model.local_id)
    except UiError:  # an id the broker gave us that the invite format cannot carry
        invite = ""
    return {
        "type": "state",
        "me": {
            "peer_id": inert(model.local_id, 256),
            "fingerprint": inert(model.fingerprint, 128),
            "invite": invite,
        },
        "online": model.online,
        "notice": _hints(inert(model.notice, 300)),
        **groups_doc(groups, model),
        "files_supported": files,
        "contacts": [_contact(v, model, now) for v in model.peers.values()],
        "active": inert(active, 256) if active is not None else None,
        "conversation": _conversation(view, model) if view is not None else None,
        "transfers": [transfer_doc(t) for t in model.files.for_peer(None)[:MAX_TRANSFERS_SHOWN]],
        "received": [
            {
                "id": inert(f.id, 128),
                "name": one_line(f.name, 120),
                "size": f.size,
                "sha256": inert(f.sha256, 64),
                "peer_id": inert(f.peer_id, 256),
                "fast": f.fast,
            }
            for f in model.files.stored[-MAX_STORED_SHOWN:]
        ],
    }
