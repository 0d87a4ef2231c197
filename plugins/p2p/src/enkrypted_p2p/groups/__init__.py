"""Serverless group chat: MLS groups carried over 1:1 links (``docs/protocol.md`` "Group chat").

Sans-I/O: a :class:`GroupNode` per member holds a :class:`GroupCore` per group; PDUs, commands and
``now`` go in, :class:`SendTo` frames and frozen events come out.
"""

from __future__ import annotations

from ._base import fork_check
from ._core import GroupCore
from ._events import (
    ForkDetected,
    GroupConfig,
    GroupEvent,
    GroupLeft,
    GroupMessageDelivered,
    GroupOutput,
    GroupRenamed,
    MembershipChanged,
    PduRejected,
    ReceiptFromMember,
    RejoinStarted,
    SendTo,
)
from ._node import GroupNode
from ._wire import HOP_LIMIT, GroupPdu, Kind, decode_pdu

__all__ = [
    "HOP_LIMIT",
    "ForkDetected",
    "GroupConfig",
    "GroupCore",
    "GroupEvent",
    "GroupLeft",
    "GroupMessageDelivered",
    "GroupNode",
    "GroupOutput",
    "GroupPdu",
    "GroupRenamed",
    "Kind",
    "MembershipChanged",
    "PduRejected",
    "ReceiptFromMember",
    "RejoinStarted",
    "SendTo",
    "decode_pdu",
    "fork_check",
]
