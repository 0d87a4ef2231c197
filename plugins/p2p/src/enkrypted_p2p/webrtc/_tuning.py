"""Transport tuning: the SCTP/UDP knobs the aiortc measurements found safe, in one place.

aiortc 1.16 keeps its SCTP constants in module globals and one inline literal, and aioice leaves
the host sockets at the kernel's default buffer (``rmem_default``, 208 KiB here). On loopback that
buffer overflows under bulk traffic (``Udp RcvbufErrors``), and every drop that fast retransmit
does not repair waits for the T3 timer, whose floor is ``SCTP_RTO_MIN`` = 1 s. These knobs helped
and stay inside what the protocols allow (docs/webrtc.md "Tuning"):

* **SCTP burst 4 -> 16 chunks** per transmit round (RFC 4960 §7.2.4 Max.Burst is a
  recommendation, and congestion control still bounds the flight by ``cwnd``); done by running
  aiortc's own ``_transmit`` up to four times in a row while the window has room, never while in
  fast recovery (which keeps its smaller burst).
* **RTO floor 1 s -> 50 ms** (the RTO is still SRTT + 4 RTTVAR, so on a real path with a larger
  RTT the floor does not matter; it only stops a 0.5 ms loopback/LAN path stalling 1 s per loss).
* **Delayed SACK: one SACK per 2 packets** (RFC 4960 §6.2: "at least every second packet", within
  200 ms; aiortc SACKs every packet). The SACK for an odd packet goes out with the next packet's or
  after 5 ms at the latest; out-of-order or duplicate data is still acknowledged at once (gap
  reports drive fast retransmit). Half the SACKs is less per-packet work on both sides: the
  benchmark found it the one knob that still helps when the CPU, not loss, is the limit.
* **UDP socket buffers 4 MiB** (``SO_RCVBUF``/``SO_SNDBUF`` of the ICE sockets, host and TURN;
  the kernel caps them at ``net.core.rmem_max``/``wmem_max``).

Not applied, ever: larger SCTP packets (they only work on loopback; real paths and browsers
expect ~1200-byte packets).

Everything is **per connection**: :func:`apply_tuning` changes attributes of one
``RTCSctpTransport`` instance and setsockopt on that connection's sockets; no aiortc or aioice
module global is touched, so a tuned and a stock connection can live in one process (the
benchmark compares them side by side). ``Tuning(enabled=False)`` (:data:`STOCK`) leaves the
connection exactly as aiortc made it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TUNING", "STOCK", "AppliedTuning", "Tuning", "apply_tuning", "applied_tuning"]

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..errors import P2PUsageError

if TYPE_CHECKING:  # aiortc is imported only where connections are made
    from aiortc import RTCDataChannel

_log = logging.getLogger("enkrypted.p2p.webrtc")

_AIORTC_BURST: Final = 4
"""aiortc 1.16 ``_transmit``: ``burst_size = 4 * USERDATA_MAX_LENGTH`` outside fast recovery."""
_MAX_BUFFER: Final = 64 * 1024 * 1024
_MAX_BURST: Final = 64
_MAX_SACK_EVERY: Final = 4
_ATTR: Final = "_enkrypted_tuning"


@dataclass(frozen=True, slots=True)
class Tuning:
    """Which knobs to apply to each new connection (``enabled=False``: none, stock aiortc)."""

    enabled: bool = True
    sctp_burst_chunks: int = 16
    """DATA chunks per transmit round (aiortc: 4); a multiple of 4."""
    sctp_rto_min_s: float = 0.05
    """Floor of the SCTP retransmission timeout (aiortc: 1 s)."""
    udp_buffer_bytes: int = 4 * 1024 * 1024
    """SO_RCVBUF / SO_SNDBUF asked for on every ICE socket (the kernel caps it)."""
    sctp_sack_every: int = 2
    """One SACK per this many packets in order (aiortc: 1; RFC 4960 §6.2 allows 2)."""
    sctp_sack_delay_s: float = 0.005
    """A deferred SACK goes out after this at the latest (RFC 4960 §6.2: at most 0.2 s)."""

    def __post_init__(self) -> None:
        if not (_AIORTC_BURST <= self.sctp_burst_chunks <= _MAX_BURST
                and self.sctp_burst_chunks % _AIORTC_BURST == 0):
            raise P2PUsageError(f"sctp_burst_chunks must be a multiple of {_AIORTC_BURST} "
                                f"between {_AIORTC_BURST} and {_MAX_BURST}")
        if not 0.01 <= self.sctp_rto_min_s <= 1.0:
            raise P2PUsageError("sctp_rto_min_s must be between 0.01 and 1 s")
        if not 1 <= self.sctp_sack_every <= _MAX_SACK_EVERY:
            raise P2PUsageError(f"sctp_sack_every must be between 1 and {_MAX_SACK_EVERY}")
        if not 0.001 <= self.sctp_sack_delay_s <= 0.2:
            raise P2PUsageError("sctp_sack_delay_s must be between 0.001 and 0.2 s")
        if not 0 < self.udp_buffer_bytes <= _MAX_BUFFER:
            raise P2PUsageError(f"udp_buffer_bytes must be between 1 and {_MAX_BUFFER}")


DEFAULT_TUNING: Final = Tuning()
STOCK: Final = Tuning(enabled=False)


@dataclass(frozen=True, slots=True)
class AppliedTuning:
    """What :func:`apply_tuning` did to one connection (the kernel's effective buffer sizes)."""

    tuning: Tuning
    sockets: int
    rcvbuf_bytes: tuple[int, ...]
    sndbuf_bytes: tuple[int, ...]


def applied_tuning(channel: RTCDataChannel) -> AppliedTuning | None:
    """The tuning applied to ``channel``'s connection, or None (stock)."""
    sctp = channel.transport
    value = getattr(sctp, _ATTR, None)
    return value if isinstance(value, AppliedTuning) else None


def apply_tuning(channel: RTCDataChannel, tuning: Tuning) -> AppliedTuning | None:
    """Apply ``tuning`` to the connection that carries ``channel`` (idempotent; None if stock)."""
    if not tuning.enabled:
        return None
    sctp = channel.transport
    done = applied_tuning(channel)
    if done is not None:
        return done
    _wrap_transmit(sctp, tuning.sctp_burst_chunks // _AIORTC_BURST)
    _wrap_update_rto(sctp, tuning.sctp_rto_min_s)
    sctp._rto = max(sctp._rto, tuning.sctp_rto_min_s)
    if tuning.sctp_sack_every > 1:
        _wrap_send_sack(sctp, tuning.sctp_sack_every, tuning.sctp_sack_delay_s)
    sockets = _ice_sockets(sctp)
    rcv, snd = [], []
    for sock in sockets:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, tuning.udp_buffer_bytes)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, tuning.udp_buffer_bytes)
            rcv.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
            snd.append(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))
        except OSError as exc:  # a closed socket: the connection is going away anyway
            _log.info("cannot size an ICE socket's buffers: %s", exc)
    result = AppliedTuning(tuning, len(sockets), tuple(rcv), tuple(snd))
    setattr(sctp, _ATTR, result)
    return result


def _wrap_transmit(sctp: Any, rounds: int) -> None:
    """Run aiortc's ``_transmit`` (burst 4) up to ``rounds`` times while the window has room.

    Each run sends until ``flight_size`` reaches ``min(flight_size + 4 chunks, cwnd)``, so
    ``rounds`` runs send up to ``4 * rounds`` chunks, still within ``cwnd``. In fast recovery
    (``_fast_recovery_exit`` set) it runs once: aiortc's own burst of 2 applies.
    """
    original: Callable[[], Coroutine[Any, Any, None]] = sctp._transmit

    async def transmit() -> None:
        for _ in range(rounds):
            before = sctp._flight_size
            await original()
            if (sctp._fast_recovery_exit is not None or not sctp._outbound_queue
                    or sctp._flight_size >= sctp._cwnd or sctp._flight_size == before):
                return

    sctp._transmit = transmit


def _wrap_update_rto(sctp: Any, rto_min: float) -> None:
    """aiortc's RTO update (RFC 4960 §6.3.1), then the same formula with our floor."""
    from aiortc.rtcsctptransport import SCTP_RTO_MAX

    original: Callable[[float], None] = sctp._update_rto
    rto_max = float(SCTP_RTO_MAX)

    def update_rto(measured: float) -> None:
        original(measured)
        sctp._rto = max(rto_min, min(sctp._srtt + 4 * sctp._rttvar, rto_max))

    sctp._update_rto = update_rto


def _wrap_send_sack(sctp: Any, every: int, delay: float) -> None:
    """aiortc calls ``_send_sack`` after every packet that carried DATA; send only every
    ``every``-th, at once if data came out of order or twice, else within ``delay``."""
    original: Callable[[], Coroutine[Any, Any, None]] = sctp._send_sack
    established = type(sctp).State.ESTABLISHED
    state: dict[str, Any] = {"count": 0, "timer": None}

    async def deferred() -> None:
        if sctp._sack_needed and sctp._association_state == established:
            with contextlib.suppress(ConnectionError):  # closed meanwhile: nothing to ack
                await original()

    def fire() -> None:
        state["timer"] = None
        if sctp._sack_needed:
            task = asyncio.ensure_future(deferred())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def send_sack() -> None:
        state["count"] += 1
        if sctp._sack_misordered or sctp._sack_duplicates or state["count"] % every == 0:
            if state["timer"] is not None:
                state["timer"].cancel()
                state["timer"] = None
            await original()
        elif state["timer"] is None:
            state["timer"] = asyncio.get_running_loop().call_later(delay, fire)

    sctp._send_sack = send_sack


def _ice_sockets(sctp: Any) -> list[socket.socket]:
    """The UDP sockets of the ICE connection under ``sctp``: host ones and TURN ones."""
    try:
        connection = sctp.transport.transport.iceGatherer._connection
        protocols = list(connection._protocols)
    except AttributeError:
        return []
    out = []
    for protocol in protocols:
        transport = getattr(protocol, "transport", None)
        inner = getattr(transport, "_TurnTransport__inner_protocol", None)  # a TURN relay
        if inner is not None:
            transport = getattr(inner, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None and sock.type == socket.SOCK_DGRAM:
            out.append(sock)
    return out
