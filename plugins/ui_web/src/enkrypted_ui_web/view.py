"""What the page draws, as one JSON-ready document built from the shared chat presenter (pure).

The presenter (``enkrypted_ui_cli.tui.model.ChatModel``, the TUI's own: the same contact, receipt,
changed-key and file rules) holds the state; :func:`snapshot` turns it into plain data for the
page.  Every string a peer could have chosen (message text, names, file names, reasons, notes
quoting them) goes through :func:`~.text.inert`; sizes are bounded: the open conversation's last
``MAX_LINES`` lines, ``MAX_TRANSFERS_SHOWN`` transfers, ``MAX_STORED_SHOWN`` received files.
The TUI's key hints in presenter notes ("(F3)") are reworded for the page.
"""

from __future__ import annotations

__all__ = ["snapshot", "transfer_doc"]

from typing import Any, Final

from enkrypted_ui_cli.errors import UiError
from enkrypted_ui_cli.invite import format_invite
from enkrypted_ui_cli.tui.files import Transfer
from enkrypted_ui_cli.tui.model import ChatModel, PeerView

from .text import inert, one_line

MAX_LINES: Final = 500
MAX_TRANSFERS_SHOWN: Final = 50
MAX_STORED_SHOWN: Final = 500
_HINTS: Final = (
    ("(F3)", "(Safety number)"),
    ("(F2)", "(Connect)"),
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


def snapshot(model: ChatModel, *, now: float, files: bool) -> dict[str, Any]:
    """The whole view (every open page shows the presenter's active conversation)."""
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
