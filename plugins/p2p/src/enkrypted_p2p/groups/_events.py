"""What a :class:`~enkrypted_p2p.groups.GroupCore` puts out (frozen) and the bounds it keeps."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import P2PUsageError

__all__ = [
    "ForkDetected",
    "GroupConfig",
    "GroupEvent",
    "GroupLeft",
    "GroupMessageDelivered",
    "GroupOutput",
    "GroupRenamed",
    "MembershipChanged",
    "PduRejected",
    "ReceiptFromMember",
    "RejoinStarted",
    "SendTo",
]


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Every bound of the group core on untrusted input and on its own memory."""

    max_members: int = 64
    history_max_items: int = 256
    history_max_bytes: int = 4 * 1024 * 1024
    future_buffer: int = 256
    relay_queue: int = 256
    seen_ids: int = 4096
    max_intents: int = 64
    max_pending_receipts: int = 1024
    retry_s: float = 2.0
    heartbeat_s: float = 5.0
    failover_after_s: float = 300.0
    max_text: int = 64 * 1024
    max_name: int = 128

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise P2PUsageError(f"GroupConfig.{name} must be positive, not {value!r}")


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``pdu`` to ``peer_id`` over the 1:1 link to it."""

    peer_id: str
    pdu: bytes


@dataclass(frozen=True, slots=True)
class GroupMessageDelivered:
    """A member's application message, decrypted, delivered exactly once."""

    group_id: bytes
    msg_id: bytes
    sender: str
    """The sender's identity fingerprint (authenticated by MLS)."""
    sender_peer: str
    text: str
    epoch: int


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """A commit was applied (or we joined): the group is at ``epoch`` with ``members``."""

    group_id: bytes
    epoch: int
    members: tuple[str, ...]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    committer: str = ""


@dataclass(frozen=True, slots=True)
class ReceiptFromMember:
    """``member`` (fingerprint; ``peer_id`` its peer) received our message ``msg_id``."""

    group_id: bytes
    msg_id: bytes
    member: str
    peer_id: str


@dataclass(frozen=True, slots=True)
class ForkDetected:
    """Members disagree on the group at ``epoch``: never silent, always this event."""

    group_id: bytes
    epoch: int
    peer_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class GroupRenamed:
    group_id: bytes
    name: str
    by: str


@dataclass(frozen=True, slots=True)
class GroupLeft:
    """We are no longer a member (removed, or our leave was committed) at ``epoch``;
    ``committer`` is ours when we were the last member that could commit and left, "" when
    we gave up re-joining."""

    group_id: bytes
    epoch: int
    committer: str


@dataclass(frozen=True, slots=True)
class RejoinStarted:
    """We cannot catch up (history gone, or a fork we lost): we asked to be re-added."""

    group_id: bytes
    epoch: int
    reason: str


@dataclass(frozen=True, slots=True)
class PduRejected:
    """A PDU from ``peer_id`` was dropped; the group state is unchanged (local log detail)."""

    group_id: bytes
    peer_id: str
    reason: str


GroupEvent = (
    GroupMessageDelivered
    | MembershipChanged
    | ReceiptFromMember
    | ForkDetected
    | GroupRenamed
    | GroupLeft
    | RejoinStarted
    | PduRejected
)
GroupOutput = SendTo | GroupEvent
