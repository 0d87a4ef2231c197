"""ICE addressing: which local addresses aioice gathers on, which remote candidates we accept.

**The aioice adapter (the one place we touch aioice).** aioice 0.13 gathers host candidates from
the module function ``aioice.ice.get_host_addresses``, which skips ``127.0.0.1`` and ``::1`` on
purpose, and has no per-connection parameter for it (``Connection`` takes none, and aiortc creates
the ``Connection`` inside ``RTCIceGatherer``). So the loopback-only tests, and a user who wants to
pin the interfaces ICE may use, need another way in. :func:`host_addresses` is a context manager:
inside it, gathering started *by this task or the tasks it creates* (a :mod:`contextvars` value,
which ``asyncio.gather`` and ``create_task`` copy) uses exactly the configured addresses; gathering
anywhere else in the process sees the stock function's answer, unchanged. The replacement is
installed once, on first use, logs that it did, delegates to the original it keeps in
``__wrapped__``, and :func:`uninstall` restores the original. ``tests/p2p/test_webrtc_ice.py``
checks all of that. No other aioice/aiortc global is changed.

**Remote candidates.** :class:`CandidatePolicy` decides which remote candidates reach aioice:
mDNS ``.local`` names are always dropped (resolving them is multicast on the LAN); addresses
outside the configured networks are dropped (the loopback tests allow only 127.0.0.0/8 and
::1). The SDP of an offer or answer is filtered the same way before aiortc sees it.
"""

from __future__ import annotations

__all__ = [
    "CandidatePolicy",
    "filter_sdp_candidates",
    "host_addresses",
    "install",
    "installed",
    "split_sdp_candidates",
    "uninstall",
]

import contextlib
import contextvars
import ipaddress
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aioice.ice

_log = logging.getLogger("enkrypted.p2p.webrtc")

_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "enkrypted_ice_host_addresses", default=None
)
_ORIGINAL: dict[str, Callable[[bool, bool], list[str]]] = {}  # "fn": aioice's own, while wrapped


def _scoped_get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    pinned = _ADDRESSES.get()
    if pinned is None:
        return _ORIGINAL["fn"](use_ipv4, use_ipv6)
    out = []
    for address in pinned:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            out.append(address)
    return out


def installed() -> bool:
    return getattr(aioice.ice.get_host_addresses, "__wrapped__", None) is not None


def install() -> None:
    """Put the scoped replacement in ``aioice.ice`` (idempotent)."""
    if installed():
        return
    original = _ORIGINAL["fn"] = aioice.ice.get_host_addresses
    wrapper: Any = _scoped_get_host_addresses
    wrapper.__wrapped__ = original
    aioice.ice.get_host_addresses = wrapper
    _log.info("aioice.ice.get_host_addresses wrapped: pinned host addresses apply only inside "
              "enkrypted_p2p.webrtc.host_addresses()")


def uninstall() -> None:
    """Restore aioice's own function."""
    if installed():
        aioice.ice.get_host_addresses = _ORIGINAL.pop("fn")  # type: ignore[assignment]


@contextlib.contextmanager
def host_addresses(addresses: Sequence[str] | None) -> Iterator[None]:
    """Within this block (and tasks created in it), ICE gathers host candidates on exactly
    ``addresses`` (``None``: aioice's own choice)."""
    if addresses is None:
        yield
        return
    for address in addresses:
        ipaddress.ip_address(address)  # ValueError for a name: addresses only
    install()
    token = _ADDRESSES.set(tuple(addresses))
    try:
        yield
    finally:
        _ADDRESSES.reset(token)


# ------------------------------------------------------------------------------ remote candidates
@dataclass(frozen=True, slots=True)
class CandidatePolicy:
    """Which remote candidate addresses may be used; ``networks`` empty = any IP address."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def of(cls, networks: Sequence[str]) -> CandidatePolicy:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False  # an mDNS ``.local`` name or garbage: never resolved
        return not self.networks or any(ip in net for net in self.networks)

    def allows_line(self, candidate: str) -> bool:
        """``candidate:...`` SDP attribute value (with or without the ``candidate:`` prefix)."""
        bits = candidate.removeprefix("a=").removeprefix("candidate:").split()
        return len(bits) >= 8 and bits[2].lower() == "udp" and self.allows(bits[4])


def filter_sdp_candidates(sdp: str, policy: CandidatePolicy) -> tuple[str, int]:
    """The SDP without the candidates ``policy`` refuses; and how many were dropped."""
    kept, dropped = [], 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and not policy.allows_line(line):
            dropped += 1
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", dropped


def split_sdp_candidates(sdp: str) -> tuple[str, list[str], bool]:
    """Our SDP without its candidates (they are trickled in CANDIDATE messages instead): the
    bare SDP, the candidate attribute values (``candidate:...``), whether gathering was complete."""
    kept, candidates, complete = [], [], False
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            candidates.append(line[2:])
        elif line == "a=end-of-candidates":
            complete = True
        else:
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates, complete
