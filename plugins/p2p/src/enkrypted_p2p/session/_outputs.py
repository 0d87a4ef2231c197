"""What a :class:`~._core.SessionCore` hands its driver: frozen outputs, one class per kind."""

from __future__ import annotations

__all__ = [
    "FileOutput",
    "GroupFrameReceived",
    "IdentityChanged",
    "MessageReceived",
    "ReceiptReceived",
    "ResumeRefused",
    "SendPdu",
    "SessionFailed",
    "SessionOutput",
    "SessionReady",
    "TypingReceived",
]

from dataclasses import dataclass

from ..files import FileEvent


@dataclass(frozen=True, slots=True)
class SendPdu:
    pdu: bytes


@dataclass(frozen=True, slots=True)
class SessionReady:
    profile: str
    layers: tuple[str, ...]
    peer_fingerprint: str
    safety_number: str
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class ResumeRefused:
    """The peer refused our resume (it kept no usable state): start a full handshake now."""

    reason: str


@dataclass(frozen=True, slots=True)
class SessionFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class IdentityChanged:
    """A full handshake on a kept session completed with a *different* identity key: whoever
    answers for this peer id now is not who we talked to. Nothing queued for the old identity is
    sent (``withheld``: those message ids), its file transfers are dropped, and the new identity
    starts unverified - the ui must show it before the user sends again."""

    previous_fingerprint: str
    peer_fingerprint: str
    withheld: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MessageReceived:
    message_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReceiptReceived:
    message_id: str


@dataclass(frozen=True, slots=True)
class TypingReceived:
    pass


@dataclass(frozen=True, slots=True)
class FileOutput:
    """An event of the file transfers (offer, started, complete, failed, ...)."""

    event: FileEvent


@dataclass(frozen=True, slots=True)
class GroupFrameReceived:
    """A group envelope the peer sent over this session (opened; not yet judged)."""

    pdu: bytes


SessionOutput = (SendPdu | SessionReady | SessionFailed | MessageReceived | ReceiptReceived
                 | TypingReceived | ResumeRefused | FileOutput | IdentityChanged
                 | GroupFrameReceived)
