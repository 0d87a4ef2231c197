"""One peer link: an aiortc ``RTCPeerConnection`` and its ordered, reliable data channel.

Messages are PeerJS ``raw`` frames (bytes as they are, binary SCTP messages), so a browser peerjs
client on a ``raw`` connection exchanges the same bytes. ``send`` honours backpressure: above the
high-water mark of buffered bytes it waits for the channel's ``bufferedamountlow`` event (the
low-water mark), so a fast sender never grows memory without bound.

Errors say who ended the link: :class:`LinkClosedLocally` after our own :meth:`close` (or the
endpoint's), :class:`LinkBroken` when the peer closed the channel, the ICE/DTLS connection failed,
or the peer flooded us past the receive backlog.
"""

from __future__ import annotations

__all__ = ["DataChannelLink"]

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from aiortc import RTCDataChannel, RTCPeerConnection

from enkrypted_shell.contracts import LinkBroken, LinkClosedLocally

from ..errors import P2PUsageError
from ._config import WebRTCSettings

_log = logging.getLogger("enkrypted.p2p.webrtc")


class DataChannelLink:
    """A :class:`~enkrypted_shell.contracts.Link` over one WebRTC data channel."""

    def __init__(self, peer_id: str, connection_id: str, pc: RTCPeerConnection,
                 channel: RTCDataChannel, settings: WebRTCSettings,
                 on_close: Callable[[DataChannelLink], Awaitable[None]] | None = None) -> None:
        self._peer_id = peer_id
        self.connection_id = connection_id
        self._pc = pc
        self._channel = channel
        self._settings = settings
        self._on_close = on_close
        self._inbox: deque[bytes] = deque()
        self._backlog = 0
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closed_locally = False
        self._broken: str | None = None
        self.dropped_text_frames = 0
        channel.bufferedAmountLowThreshold = settings.low_water
        channel.on("message", self._on_message)
        channel.on("close", lambda: self._break("the peer closed the data channel"))
        channel.on("bufferedamountlow", self._drained.set)
        pc.on("connectionstatechange", self._on_state)

    # ------------------------------------------------------------------ properties
    @property
    def peer_id(self) -> str:
        return self._peer_id

    @property
    def max_pdu_bytes(self) -> int:
        return self._settings.max_pdu_bytes

    @property
    def closed(self) -> bool:
        return self._closed_locally or self._broken is not None

    @property
    def close_reason(self) -> str | None:
        """``None`` while open; why it ended otherwise."""
        if self._closed_locally:
            return "closed locally"
        return self._broken

    @property
    def buffered_amount(self) -> int:
        return int(self._channel.bufferedAmount)

    @property
    def peer_connection(self) -> RTCPeerConnection:
        """The aiortc connection (for stats: the selected candidate pair)."""
        return self._pc

    # ------------------------------------------------------------------ events from aiortc
    def _on_message(self, data: bytes | str) -> None:
        if self.closed:
            return
        if isinstance(data, str):  # a text frame: not a PDU of ours (raw carries bytes)
            self.dropped_text_frames += 1
            return
        self._backlog += len(data)
        if self._backlog > self._settings.max_receive_backlog:
            self._break("the peer sent more than the receive backlog allows")
            self._spawn_teardown()
            return
        self._inbox.append(data)
        self._readable.set()

    def _on_state(self) -> None:
        state = self._pc.connectionState
        if state in ("failed", "closed") and not self._closed_locally:
            self._break(f"the connection to {self._peer_id} {state}")

    def _break(self, reason: str) -> None:
        if self._broken is None and not self._closed_locally:
            self._broken = reason
            _log.info("link %s to %s broken: %s", self.connection_id, self._peer_id, reason)
        self._readable.set()
        self._drained.set()

    def _spawn_teardown(self) -> None:
        task = asyncio.ensure_future(self._teardown())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    # ------------------------------------------------------------------ Link
    def _check_open(self) -> None:
        if self._closed_locally:
            raise LinkClosedLocally(f"the link to {self._peer_id} was closed by us")
        if self._broken is not None:
            raise LinkBroken(self._broken)

    async def send(self, pdu: bytes) -> None:
        self._check_open()
        if len(pdu) > self.max_pdu_bytes:
            raise P2PUsageError(f"PDU of {len(pdu)} bytes exceeds the link's {self.max_pdu_bytes}")
        while self._channel.bufferedAmount > self._settings.high_water:
            self._drained.clear()
            await self._drained.wait()
            self._check_open()
        if self._channel.readyState != "open":
            self._break(f"data channel is {self._channel.readyState}")
            self._check_open()
        self._channel.send(bytes(pdu))

    async def receive(self) -> bytes:
        while not self._inbox:
            self._check_open()
            self._readable.clear()
            await self._readable.wait()
        if self._closed_locally:
            raise LinkClosedLocally(f"the link to {self._peer_id} was closed by us")
        data = self._inbox.popleft()
        self._backlog -= len(data)
        return data

    async def close(self) -> None:
        if self._closed_locally:
            return
        self._closed_locally = True
        self._readable.set()
        self._drained.set()
        await self._teardown()

    async def _teardown(self) -> None:
        with contextlib.suppress(Exception):
            self._channel.close()
        with contextlib.suppress(Exception):
            await self._pc.close()
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            await callback(self)

    async def kill_transport(self) -> None:
        """Fault injection: stop the peer connection as a crash would (no SCTP close sent to
        the peer first is not possible with aiortc; the DTLS/ICE transports just stop)."""
        await self._pc.close()
