"""The p2p plugin's exception root, split by who is at fault (STYLE.md principle 3).

* :class:`P2PUsageError` - the caller asked for something meaningless (bad id, oversize PDU, a
  value binarypack cannot carry, a bad setting).  The contract's
  :class:`~enkrypted_shell.contracts.LocalMisuse`, and a :class:`ValueError` so generic callers
  still catch it.
* :class:`RemoteInputError` - a peer or a broker sent something malformed, oversize or hostile
  (the contract's :class:`~enkrypted_shell.contracts.RemoteInputError`). Drivers drop the
  offending input and log it; they never crash on it.
* :class:`P2PNetworkError` - the network or the broker would not carry us (socket dropped, HTTP
  failure, registration refused).  Its two p2p 2.0 cases are also the contract's:
  :class:`PeerUnavailable` is :class:`enkrypted_shell.contracts.PeerUnavailable`, and
  :class:`SignalingError` (with :class:`BrokerRefused`) is
  :class:`enkrypted_shell.contracts.SignalingFailed`, so a ui catches them without knowing us.

Foreign exceptions (aiohttp, redis, json, struct) are translated at the boundary with
``raise ... from``.
"""

from __future__ import annotations

from enkrypted_shell import contracts
from enkrypted_shell.contracts import LocalMisuse, NetworkError

__all__ = [
    "BrokerRefused",
    "PeerUnavailable",
    "SignalingError",
    "P2PError",
    "P2PNetworkError",
    "P2PUsageError",
    "RemoteInputError",
]


class P2PError(Exception):
    """Root of every error the p2p plugin raises on purpose."""


class P2PUsageError(P2PError, LocalMisuse, ValueError):
    """Local misuse: the caller's arguments cannot mean anything."""


class RemoteInputError(P2PError, contracts.RemoteInputError):
    """Input from the other side (peer or broker) is malformed, oversize or hostile."""


class P2PNetworkError(P2PError, NetworkError):
    """The network failed us: connection refused or dropped, HTTP error, timeout.

    Also the shell contract's :class:`~enkrypted_shell.contracts.NetworkError`, so a ui that knows
    no plugin can still tell "the network failed" from "you misused the API"."""


class PeerUnavailable(P2PNetworkError, contracts.PeerUnavailable):
    """The peer id is not reachable: the broker expired our OFFER (no such id), or no data
    channel opened before the connect timeout."""


class SignalingError(P2PNetworkError, contracts.SignalingFailed):
    """The broker connection failed or the signaling exchange went wrong (malformed SDP from the
    peer, the signaling client gave up)."""


class BrokerRefused(SignalingError):
    """The broker refused the registration (``ID-TAKEN``, ``ERROR`` or ``INVALID-KEY``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"broker refused registration: {kind}: {message}")
        self.kind = kind
        self.message = message
