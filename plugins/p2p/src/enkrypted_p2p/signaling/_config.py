"""Every bound and default of the signaling layer, in one place (STYLE.md principle 2).

Defaults marked *peer* equal npm ``peer`` 1.0.2's (crypto-p2p-anchors.md §3.4); the others are
ours: bounds the npm server does not have.
"""

from __future__ import annotations

__all__ = ["BrokerConfig", "ClientConfig", "ReassemblyLimits", "queue_limits"]

from dataclasses import dataclass

from ..errors import P2PUsageError
from ._limits import parse_networks
from ._store import QueueLimits


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """The broker's protocol settings and limits (seconds, bytes, counts)."""

    key: str = "peerjs"  # peer
    path: str = "/"  # peer
    expire_timeout: float = 5.0  # peer: 5,000 ms
    alive_timeout: float = 90.0  # peer library: 90,000 ms (its CLI: 60,000 ms, as ours)
    concurrent_limit: int = 5000  # peer
    allow_discovery: bool = False  # peer
    cleanup_out_msgs: float = 1.0  # peer: queue sweep every 1,000 ms
    alive_check_interval: float = 0.3  # peer: liveness sweep every 300 ms
    # --- ours ---
    max_frame_bytes: int = 64 * 1024
    """One WebSocket frame; an SDP offer with all candidates is a few KiB."""
    max_id_length: int = 256
    max_token_length: int = 256
    rate_per_s: float = 100.0
    """Sustained frames per second per connection (a token bucket; HEARTBEAT counts)."""
    rate_burst: int = 200
    max_invalid_frames: int = 20
    """Malformed / unknown frames tolerated per connection before it is closed."""
    max_queued_msgs_per_dst: int = 256
    max_queued_bytes_per_dst: int = 256 * 1024
    max_queued_bytes_total: int = 64 * 1024 * 1024
    max_queues: int = 10_000
    presence_ttl: float = 30.0
    """Redis presence expiry: a dead broker's ids are freed after this long."""
    presence_refresh: float = 10.0
    presence_cache_ttl: float = 5.0
    """Redis: how long a broker trusts where an id lived (frames then skip the forward script).
    Releases and takeovers are announced to every broker, so this bounds only missed news; a
    stale entry costs a hop (the named broker routes the frame on by Redis's presence)."""
    max_discovery_ids: int = 10_000
    # --- abuse limits (ours; _limits.py) ---
    max_conns_per_ip: int = 64
    """Concurrent sockets per client address (loopback counts like any address)."""
    trusted_proxies: tuple[str, ...] = ()
    """Reverse proxies (addresses or CIDR networks) whose ``X-Forwarded-For`` names the client."""
    id_fail_burst: int = 10
    """ID-TAKEN answers one id may cause before every attempt on it is refused for a while."""
    id_fail_rate: float = 0.2
    """Failed attempts per second per id allowed in the long run (one per 5 s)."""
    ip_fail_burst: int = 30
    """Failed or throttled attempts one address may make before its attempts are refused."""
    ip_fail_rate: float = 1.0
    max_throttled_keys: int = 100_000
    """Ids and addresses tracked by the failure throttles, each (least recently failed go first)."""

    def __post_init__(self) -> None:
        if not self.key or not self.path.startswith("/"):
            raise P2PUsageError("key must be non-empty and path must start with '/'")
        for name in ("expire_timeout", "alive_timeout", "cleanup_out_msgs", "alive_check_interval",
                     "rate_per_s", "presence_ttl", "presence_refresh", "presence_cache_ttl",
                     "id_fail_rate", "ip_fail_rate"):
            if getattr(self, name) <= 0:
                raise P2PUsageError(f"{name} must be positive")
        if self.concurrent_limit < 1 or self.max_frame_bytes < 64 or self.rate_burst < 1:
            raise P2PUsageError("concurrent_limit, max_frame_bytes and rate_burst are too small")
        if min(self.max_conns_per_ip, self.id_fail_burst, self.ip_fail_burst,
               self.max_throttled_keys) < 1:
            raise P2PUsageError("max_conns_per_ip, the fail bursts and max_throttled_keys must be >= 1")
        parse_networks(self.trusted_proxies)
        if self.presence_refresh >= self.presence_ttl or self.presence_cache_ttl >= self.presence_ttl:
            raise P2PUsageError("presence_refresh and presence_cache_ttl must be shorter than "
                                "presence_ttl")

    @property
    def base_path(self) -> str:
        """``path`` with exactly one trailing slash (``/`` stays ``/``)."""
        return self.path if self.path.endswith("/") else self.path + "/"


def queue_limits(config: BrokerConfig) -> QueueLimits:
    """The store's queue bounds from the broker's settings."""
    return QueueLimits(config.max_queued_msgs_per_dst, config.max_queued_bytes_per_dst,
                       config.max_queued_bytes_total, config.max_queues)


@dataclass(frozen=True, slots=True)
class ReassemblyLimits:
    """Bounds on binarypack ``__peerData`` reassembly, per data connection."""

    max_pending: int = 64
    """Partial messages in flight (DESIGN.md §8: 64 reassemblies per peer)."""
    max_message_bytes: int = 16 * 1024 * 1024
    """One reassembled message (P8.1: 16 MiB PDU cap)."""
    max_total_bytes: int = 32 * 1024 * 1024
    """All partial messages together."""
    timeout: float = 120.0
    """A partial message older than this is dropped (P8: 120 s)."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The PeerJS client's settings (peerjs 1.5.5 defaults where it has one)."""

    host: str = "127.0.0.1"
    port: int = 9000
    path: str = "/"
    key: str = "peerjs"
    secure: bool = False
    ping_interval: float = 5.0  # peerjs: pingInterval 5,000 ms
    reconnect_delays: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)
    max_reconnects: int = 20
    reclaim_grace: float = 1.0
    """After a reconnect with our token the server may rebind silently (no OPEN, §3.2)."""
    max_frame_bytes: int = 1024 * 1024
    max_outbox: int = 256
    """Frames kept while the socket is down (peerjs keeps an unbounded queue)."""
    max_pending_signals: int = 64
    """ANSWER/CANDIDATE kept for a connectionId not known yet (the browser stores them too)."""

    def __post_init__(self) -> None:
        if not self.key or not self.path.startswith("/"):
            raise P2PUsageError("key must be non-empty and path must start with '/'")
        if self.ping_interval <= 0 or not self.reconnect_delays:
            raise P2PUsageError("ping_interval must be positive and reconnect_delays non-empty")

    @property
    def base_path(self) -> str:
        return self.path if self.path.endswith("/") else self.path + "/"
