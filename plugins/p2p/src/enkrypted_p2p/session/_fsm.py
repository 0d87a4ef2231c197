"""The connection state machine of the spec (digest §5, P7.1, P7.4) as a transition table.

Idle -> SignalingRegistered -> WebRTCConnecting -> DataChannelOpen -> CryptoHandshaking -> Ready
-> Disconnected, plus the P7.4 edges: Disconnected -> WebRTCConnecting (reconnect),
DataChannelOpen -> Resuming -> Ready (resume with both sides' crypto state intact: the sealed
resume exchange of docs/protocol.md), Resuming -> DataChannelOpen (resume refused: a full handshake
follows, visibly), Ready -> CryptoHandshaking (session corrupt: a full handshake). Anything else is :class:`IllegalTransition`, which names the
state and the event (h11 style: the table is the whole truth).
"""

from __future__ import annotations

__all__ = ["TRANSITIONS", "ConnectionFSM", "FsmEvent", "IllegalTransition", "SessionState"]

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from enkrypted_shell.contracts import LocalMisuse

from ..errors import P2PError


class SessionState(enum.Enum):
    IDLE = "Idle"
    SIGNALING_REGISTERED = "SignalingRegistered"
    WEBRTC_CONNECTING = "WebRTCConnecting"
    DATA_CHANNEL_OPEN = "DataChannelOpen"
    CRYPTO_HANDSHAKING = "CryptoHandshaking"
    RESUMING = "Resuming"
    READY = "Ready"
    DISCONNECTED = "Disconnected"


class FsmEvent(enum.Enum):
    REGISTERED = "registered"
    CONNECT = "connect"  # we offer, or an offer arrived
    CHANNEL_OPEN = "channel-open"
    HANDSHAKE_START = "handshake-start"
    HANDSHAKE_COMPLETE = "handshake-complete"
    HANDSHAKE_FAILED = "handshake-failed"
    RESUME_START = "resume-start"  # a resume PDU sent or received on a new link (P7.4)
    RESUME = "resume"  # both kept their crypto state and proved it (P7.4)
    RESUME_REFUSED = "resume-refused"  # the peer kept nothing usable: a full handshake follows
    SESSION_CORRUPT = "session-corrupt"
    LINK_LOST = "link-lost"
    CONNECT_FAILED = "connect-failed"
    CLOSE = "close"


class IllegalTransition(P2PError, LocalMisuse):
    """An event the current state does not accept (a bug in the driver, never the peer's fault:
    peer input that does not fit the state is dropped before it becomes an event)."""

    def __init__(self, state: SessionState, event: FsmEvent) -> None:
        super().__init__(f"event {event.value!r} is illegal in state {state.value}")
        self.state = state
        self.event = event


S, E = SessionState, FsmEvent
_LIVE = (S.SIGNALING_REGISTERED, S.WEBRTC_CONNECTING, S.DATA_CHANNEL_OPEN,
         S.CRYPTO_HANDSHAKING, S.RESUMING, S.READY)

TRANSITIONS: Final[Mapping[tuple[SessionState, FsmEvent], SessionState]] = MappingProxyType({
    (S.IDLE, E.REGISTERED): S.SIGNALING_REGISTERED,
    (S.SIGNALING_REGISTERED, E.CONNECT): S.WEBRTC_CONNECTING,
    (S.WEBRTC_CONNECTING, E.CHANNEL_OPEN): S.DATA_CHANNEL_OPEN,
    (S.WEBRTC_CONNECTING, E.CONNECT_FAILED): S.DISCONNECTED,
    (S.DATA_CHANNEL_OPEN, E.HANDSHAKE_START): S.CRYPTO_HANDSHAKING,
    (S.DATA_CHANNEL_OPEN, E.RESUME): S.READY,
    (S.DATA_CHANNEL_OPEN, E.RESUME_START): S.RESUMING,
    (S.RESUMING, E.RESUME): S.READY,
    (S.RESUMING, E.RESUME_REFUSED): S.DATA_CHANNEL_OPEN,
    (S.RESUMING, E.HANDSHAKE_FAILED): S.DISCONNECTED,  # the resume timed out
    (S.CRYPTO_HANDSHAKING, E.HANDSHAKE_COMPLETE): S.READY,
    (S.CRYPTO_HANDSHAKING, E.HANDSHAKE_FAILED): S.DISCONNECTED,
    (S.READY, E.SESSION_CORRUPT): S.CRYPTO_HANDSHAKING,
    (S.DISCONNECTED, E.CONNECT): S.WEBRTC_CONNECTING,
    **{(state, E.LINK_LOST): S.DISCONNECTED
       for state in (S.DATA_CHANNEL_OPEN, S.CRYPTO_HANDSHAKING, S.RESUMING, S.READY)},
    **{(state, E.CLOSE): S.DISCONNECTED for state in (S.IDLE, *_LIVE)},
})


class ConnectionFSM:
    """The current state and its history; :meth:`fire` is the only way to change it."""

    def __init__(self, state: SessionState = SessionState.IDLE) -> None:
        self.state = state
        self.history: list[tuple[SessionState, FsmEvent, SessionState]] = []

    def can(self, event: FsmEvent) -> bool:
        return (self.state, event) in TRANSITIONS

    def fire(self, event: FsmEvent) -> SessionState:
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise IllegalTransition(self.state, event)
        self.history.append((self.state, event, target))
        self.state = target
        return target
