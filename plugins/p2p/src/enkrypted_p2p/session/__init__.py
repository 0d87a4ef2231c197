"""The chat session over one link: the spec's connection FSM (sans-I/O, a transition table),
the crypto 2.0 handshake, then sealed messages with ids, receipts, dedup and the P8 limits."""

from ._core import (
    MessageReceived,
    ReceiptReceived,
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

__all__ = [
    "TRANSITIONS",
    "ChatSession",
    "ConnectionFSM",
    "FsmEvent",
    "HandshakeError",
    "IllegalTransition",
    "MessageReceived",
    "ReceiptReceived",
    "SendPdu",
    "SessionCore",
    "SessionFailed",
    "SessionNotReady",
    "SessionOutput",
    "SessionReady",
    "SessionState",
    "TypingReceived",
]
