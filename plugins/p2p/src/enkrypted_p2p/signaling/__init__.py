"""PeerJS-compatible signaling: the broker, the client, and PeerJS's data-connection conventions.

Sans-I/O cores (:class:`BrokerCore`, :class:`ClientCore`, :class:`DataCodec`) and one asyncio
driver each (:class:`BrokerServer`, :class:`SignalingClient`).  See ``docs/broker.md``.
:class:`BrokerServer` is imported on first use: it loads the ``websockets`` library, which peers
that only connect to a broker never need.
"""

from typing import TYPE_CHECKING, Any

from ._binarypack import BinaryPackError, pack, unpack
from ._broker import BrokerCore
from ._client import (
    ClientCore,
    Disconnected,
    Expired,
    GaveUp,
    Opened,
    PeerLeft,
    Refused,
    Signal,
)
from ._command import broker_command
from ._config import BrokerConfig, ClientConfig, ReassemblyLimits
from ._dataconn import CHUNKED_MTU, CloseRequested, DataCodec, DataMessage, OfferInfo, Serialization
from ._peer import SignalingClient
from ._protocol import Frame, MessageType
from ._store import MemoryStore, SignalingStore

if TYPE_CHECKING:
    from ._server import BrokerServer

__all__ = [
    "CHUNKED_MTU",
    "BinaryPackError",
    "BrokerConfig",
    "BrokerCore",
    "BrokerServer",
    "ClientConfig",
    "ClientCore",
    "CloseRequested",
    "DataCodec",
    "DataMessage",
    "Disconnected",
    "Expired",
    "Frame",
    "GaveUp",
    "MemoryStore",
    "MessageType",
    "OfferInfo",
    "Opened",
    "PeerLeft",
    "ReassemblyLimits",
    "Refused",
    "Serialization",
    "Signal",
    "SignalingClient",
    "SignalingStore",
    "broker_command",
    "pack",
    "unpack",
]


def __getattr__(name: str) -> Any:
    if name == "BrokerServer":
        from ._server import BrokerServer

        return BrokerServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
