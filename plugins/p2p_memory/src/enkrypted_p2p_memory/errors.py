"""The memory transport's exception root, split by who is at fault (STYLE.md principle 3).

Every class is also the p2p contract's error of the same meaning, so a ui that knows no plugin
tells "you misused it" from "the peer is not there" from "the id is taken".
"""

from __future__ import annotations

__all__ = ["MemoryTransportError", "MemoryUsageError", "NoSuchPeer", "Refused"]

from enkrypted_shell.contracts import LocalMisuse, PeerUnavailable, SignalingFailed


class MemoryTransportError(Exception):
    """Root of every error this plugin raises on purpose."""


class MemoryUsageError(MemoryTransportError, LocalMisuse, ValueError):
    """Local misuse: a bad setting, peer id or timeout, an oversize PDU, too many links."""


class NoSuchPeer(MemoryTransportError, PeerUnavailable):
    """No endpoint of that id is registered on the network (or it accepts no more links)."""


class Refused(MemoryTransportError, SignalingFailed):
    """The switchboard refused the registration: the id is taken on that network, or the
    process already holds as many endpoints as it may."""
