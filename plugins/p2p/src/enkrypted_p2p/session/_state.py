"""A session as bytes and back (P7.4 across restarts): the crypto session's own export, the dedup
window and the unacknowledged messages, versioned and bounded.

Layout: ``b"EKSESS" || version u8 (1) || UTF-8 JSON`` with ``session`` (base64 of
:meth:`SecureSession.export_state`), ``seen`` (the dedup window, oldest first) and
``unacknowledged`` (``[messageId, text]`` pairs, in send order), when some wait, ``inbox``
(``[messageId, text]`` pairs handed up and not yet taken by the application, oldest first; an
older reader ignores it) and, when file transfers exist,
``files`` (base64 of :meth:`FileTransfers.export_state`, bounded by the file limits: at most 80
live transfers and 256 finished ids, so a few tens of KiB).  It holds key material: the caller
stores it encrypted (the profile store), never in clear.
"""

from __future__ import annotations

__all__ = ["MAX_STATE_BYTES", "SavedStateError", "export_core", "restore_core"]

import base64
import binascii
import json
from typing import Final

from enkrypted_shell.contracts import (
    WIRE_LIMITS,
    CryptoService,
    RemoteInputError,
    StateError,
    WireLimits,
)

from ..errors import P2PError
from ._core import MAX_INBOX, MAX_SEEN_IDS, MAX_UNACKNOWLEDGED, SessionCore, _valid_id
from ._fsm import ConnectionFSM, SessionState

MAGIC: Final = b"EKSESS"
VERSION: Final = 1
MAX_STATE_BYTES: Final = 8 * 1024 * 1024


class SavedStateError(P2PError, RemoteInputError):
    """Saved session bytes that cannot be restored (damaged, foreign, another version)."""


def export_core(core: SessionCore) -> bytes | None:
    """The kept session of ``core`` as bytes (``None`` before any handshake completed)."""
    if core.session is None:
        return None
    body: dict[str, object] = {"session": base64.b64encode(core.session.export_state()).decode("ascii"),
            "seen": list(core.seen_ids()),
            "unacknowledged": [[mid, text] for mid, text in core.unacknowledged.items()]}
    if core.inbox:
        body["inbox"] = [[mid, text] for mid, text in core.inbox.items()]
    files = core.files.export_state() if core.files is not None else core.files_saved
    if files is not None:
        body["files"] = base64.b64encode(files).decode("ascii")
    return MAGIC + bytes([VERSION]) + json.dumps(body, separators=(",", ":")).encode("utf-8")


def restore_core(data: bytes, crypto: CryptoService, limits: WireLimits = WIRE_LIMITS
                 ) -> SessionCore:
    """A :class:`SessionCore` in Disconnected holding the saved session, ready to resume."""
    encoded, seen, unacknowledged, inbox, files = _parse(data)
    try:
        session = crypto.restore(base64.b64decode(encoded, validate=True))
    except (StateError, binascii.Error, ValueError) as exc:
        raise SavedStateError(f"the saved crypto session cannot be restored: {exc}") from exc
    core = SessionCore(limits, connecting=False)
    core.fsm = ConnectionFSM(SessionState.DISCONNECTED)
    core.session = session
    core.remember(seen)
    for message_id, text in unacknowledged:
        core.unacknowledged[message_id] = text
    core.inbox.update(inbox)
    core.files_saved = files
    return core


def _parse(data: bytes) -> tuple[str, list[str], list[tuple[str, str]], list[tuple[str, str]],
                                 bytes | None]:
    if len(data) > MAX_STATE_BYTES:
        raise SavedStateError(f"saved session of {len(data)} bytes (at most {MAX_STATE_BYTES})")
    if not data.startswith(MAGIC) or len(data) <= len(MAGIC):
        raise SavedStateError("not a saved enkrypted session")
    if data[len(MAGIC)] != VERSION:
        raise SavedStateError(f"saved session version {data[len(MAGIC)]} (this one reads {VERSION})")
    try:
        body = json.loads(data[len(MAGIC) + 1:])
    except (ValueError, RecursionError) as exc:
        raise SavedStateError("the saved session is not valid JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("session"), str):
        raise SavedStateError("the saved session has no crypto session")
    seen, unacked = body.get("seen"), body.get("unacknowledged")
    if not isinstance(seen, list) or len(seen) > MAX_SEEN_IDS or not all(map(_valid_id, seen)):
        raise SavedStateError("the saved dedup window is malformed or too long")
    unacknowledged = _pairs(unacked, MAX_UNACKNOWLEDGED, "unacknowledged messages")
    inbox = _pairs(body.get("inbox", []), MAX_INBOX, "messages not yet taken")
    files = body.get("files")
    try:
        saved_files = None if files is None else base64.b64decode(files, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise SavedStateError("the saved file transfers are not base64") from exc
    return body["session"], seen, unacknowledged, inbox, saved_files


def _pairs(value: object, bound: int, what: str) -> list[tuple[str, str]]:
    """``[[messageId, text], ...]`` of at most ``bound`` pairs."""
    if not isinstance(value, list) or len(value) > bound or not all(
            isinstance(p, list) and len(p) == 2 and _valid_id(p[0]) and isinstance(p[1], str)
            for p in value):
        raise SavedStateError(f"the saved {what} are malformed or too many")
    return [(p[0], p[1]) for p in value]
