"""The chat session over one link: the spec's connection FSM (sans-I/O, a transition table),
the crypto 2.0 handshake, then sealed messages with ids, receipts, dedup and the P8 limits; the
P7.4 resume of a kept session on a new link, and the session as bytes (:mod:`._state`)."""

from ._core import (
    FileOutput,
    FilesFactory,
    GroupFrameReceived,
    IdentityChanged,
    MessageReceived,
    ReceiptReceived,
    ResumeRefused,
    SendPdu,
    SessionCore,
    SessionFailed,
    SessionNotReady,
    SessionOutput,
    SessionReady,
    TypingReceived,
)
from ._driver import ChatSession, HandshakeError
from ._fsm import TRANSITIONS, ConnectionFSM, FsmEvent, IllegalTransition, SessionState
from ._state import MAX_STATE_BYTES, SavedStateError, export_core, restore_core

__all__ = [
    "MAX_STATE_BYTES",
    "TRANSITIONS",
    "ChatSession",
    "ConnectionFSM",
    "FileOutput",
    "FilesFactory",
    "FsmEvent",
    "GroupFrameReceived",
    "HandshakeError",
    "IdentityChanged",
    "IllegalTransition",
    "MessageReceived",
    "ReceiptReceived",
    "ResumeRefused",
    "SavedStateError",
    "SendPdu",
    "SessionCore",
    "SessionFailed",
    "SessionNotReady",
    "SessionOutput",
    "SessionReady",
    "SessionState",
    "TypingReceived",
    "export_core",
    "restore_core",
]
