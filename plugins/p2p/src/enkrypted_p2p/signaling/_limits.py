"""The broker's abuse limits, sans-I/O (``now`` passed in): failed-attempt throttles and the
client address behind trusted reverse proxies.

* :class:`FailureThrottle` - a token bucket of *failures* per key (an id, an address): each failure
  takes a token, tokens come back at ``rate`` per second up to ``burst``; a key without a token is
  throttled.  The broker counts ID-TAKEN answers (a wrong token for a held id) per id and per
  address, so guessing a token is bounded to ``rate`` guesses per second per id.
* :func:`client_address` - the client's address: the socket's peer, or, when that peer is a
  configured proxy, the right-most ``X-Forwarded-For`` hop that is not a proxy.
* :func:`address_key` - what the per-address limits count for that address: an IPv4 address
  itself, an IPv6 address's /64 (one subscriber usually holds a whole /64, so per-address limits
  keyed on full IPv6 addresses would be no limit at all); an IPv4-mapped IPv6 address as IPv4.
"""

from __future__ import annotations

__all__ = ["IPV6_PREFIX", "FailureThrottle", "address_key", "client_address", "parse_networks"]

import ipaddress
import itertools
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import P2PUsageError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FORWARDED_HOPS = 32
"""``X-Forwarded-For`` entries looked at, from the right (the left ones are the client's word)."""
IPV6_PREFIX = 64
"""IPv6 clients are counted per network of this prefix length by the per-address limits."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class FailureThrottle:
    """Failures per key, as token buckets; at most ``max_keys`` keys (least recently failed go
    first: their buckets are the likeliest to be full again)."""

    def __init__(self, burst: int, rate: float, max_keys: int = 100_000) -> None:
        if burst < 1 or rate <= 0 or max_keys < 1:
            raise P2PUsageError("a failure throttle needs burst >= 1, rate > 0 and max_keys >= 1")
        self._burst = float(burst)
        self._rate = rate
        self._max = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> _Bucket | None:
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        bucket.tokens = min(self._burst, bucket.tokens + max(0.0, now - bucket.at) * self._rate)
        bucket.at = now
        return bucket

    def blocked(self, key: str, now: float) -> bool:
        """No failure left for ``key``: refuse it before doing the work."""
        bucket = self._level(key, now)
        return bucket is not None and bucket.tokens < 1.0

    def fail(self, key: str, now: float) -> None:
        """``key`` failed once more (takes a token)."""
        bucket = self._level(key, now)
        if bucket is None:
            while len(self._buckets) >= self._max:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        else:
            self._buckets.move_to_end(key)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)

    def exhaust(self, key: str, now: float) -> None:
        """``key`` is refused until its bucket refills one token (a failure that costs it all)."""
        self.fail(key, now)
        bucket = self._buckets[key]
        bucket.tokens = 0.0

    def prune(self, now: float, limit: int = 1000) -> None:
        """Forget up to ``limit`` of the oldest keys whose bucket is full again (bounded work)."""
        for key in list(itertools.islice(self._buckets, limit)):
            bucket = self._level(key, now)
            if bucket is not None and bucket.tokens >= self._burst:
                del self._buckets[key]


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values (an address or a CIDR network) as networks; one-line errors."""
    out: list[Network] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise P2PUsageError(f"trusted proxy {value!r} is not an address or network") from exc
    return tuple(out)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The address to count a connection against (see the module).  ``X-Forwarded-For`` is read
    only when the socket's peer is a trusted proxy; a malformed hop stops the walk and the
    connection counts against the proxy's own address (fail closed: never a forged address)."""
    if not proxies or not forwarded_for or not _trusted(peer, proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")[-MAX_FORWARDED_HOPS:]]
    for hop in reversed(hops):
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not any(ip in net for net in proxies):
            return str(ip)
    return peer  # every hop is a proxy: the request came from the proxies themselves


def address_key(address: str) -> str:
    """The key the per-address limits count ``address`` under (see the module); an address that
    does not parse (a test's empty string, a Unix socket) is its own key."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)
