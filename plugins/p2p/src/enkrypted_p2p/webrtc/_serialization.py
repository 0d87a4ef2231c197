"""PeerJS serializations on our data channels: what a browser ``peerjs`` 1.5.5 client speaks.

A data connection's OFFER names its serialization (crypto-p2p-anchors.md §3.6, docs/webrtc.md
"Interoperability"); the side that answers speaks the one offered, the side that offers picks it:

* ``raw`` - bytes as they are (our default between our own peers): the plain
  :class:`~._link.DataChannelLink`.
* ``binary`` (peerjs's default; also ``default`` and ``binary-utf8``) - each message one BinaryPack
  value; a value packed to more than 16,300 bytes travels as ``__peerData`` chunks
  ``{__peerData, n, data, total}`` and is reassembled here within
  :class:`~enkrypted_p2p.signaling.ReassemblyLimits` (pending messages, bytes, age).
* ``json`` - each message one JSON text, UTF-8, in a *binary* frame (peerjs decodes every frame
  with ``TextDecoder``); under 16,300 bytes, never chunked.

Both are a :class:`PeerJSLink`: ``send_value`` / ``receive_value`` carry any value the
serialization can (``None``, bools, numbers, strings, lists, string-keyed dicts; ``bytes`` on
binary only), and the ``Link`` contract's ``send`` / ``receive`` carry ``bytes`` values (binary
only: JSON has no bytes). Everything from the peer is untrusted: a frame that does not decode, a
chunk that breaks the bounds, a value that is not ``bytes`` where a PDU is expected is dropped
and counted (:attr:`PeerJSLink.dropped_messages`, :attr:`PeerJSLink.dropped_values`), never
raised into the receiver; peerjs's in-band close (``{"__peerData": {"type": "close"}}``) ends the
link as the peer closing it.
"""

from __future__ import annotations

__all__ = ["EarlyFrames", "PeerJSLink", "open_link"]

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from enkrypted_shell.contracts import LinkClosedLocally

from ..errors import P2PUsageError, RemoteInputError
from ..signaling import CloseRequested, DataCodec, ReassemblyLimits, Serialization
from ._config import WebRTCSettings
from ._link import DataChannelLink

_log = logging.getLogger("enkrypted.p2p.webrtc")


class EarlyFrames:
    """Frames that arrive after the channel opened but before its link exists (a browser sends
    on ``open`` at once; the link is made a task switch later): held, bounded by ``limit`` bytes,
    and replayed into the link in order by :func:`open_link`."""

    def __init__(self, channel: RTCDataChannel, limit: int) -> None:
        self.channel, self._limit = channel, limit
        self.frames: list[bytes | str] = []
        self.size = 0
        self.overflowed = False
        channel.on("message", self._on_message)

    def _on_message(self, data: bytes | str) -> None:
        if self.size + len(data) > self._limit:
            self.overflowed = True
            return
        self.frames.append(data)
        self.size += len(data)

    def hand_over(self, link: DataChannelLink) -> None:
        self.channel.remove_listener("message", self._on_message)
        frames, self.frames, self.size = self.frames, [], 0
        for frame in frames:
            link._on_message(frame)
        if self.overflowed:
            link._break("the peer sent more than the receive backlog allows before the link opened")
            link._spawn_teardown()


def open_link(peer_id: str, connection_id: str, pc: RTCPeerConnection, channel: RTCDataChannel,
              settings: WebRTCSettings, serialization: Serialization,
              on_close: Callable[[DataChannelLink], Awaitable[None]] | None = None,
              early: EarlyFrames | None = None) -> DataChannelLink:
    """The link for a data channel whose OFFER named ``serialization``, fed first with the
    ``early`` frames that arrived before it existed."""
    link = (DataChannelLink(peer_id, connection_id, pc, channel, settings, on_close)
            if serialization is Serialization.RAW else
            PeerJSLink(peer_id, connection_id, pc, channel, settings, on_close,
                       serialization=serialization))
    if early is not None and early.channel is channel:  # a second channel of a peer: not ours
        early.hand_over(link)
    return link


class PeerJSLink(DataChannelLink):
    """A data channel speaking peerjs's ``binary`` or ``json`` serialization."""

    def __init__(self, peer_id: str, connection_id: str, pc: RTCPeerConnection,
                 channel: RTCDataChannel, settings: WebRTCSettings,
                 on_close: Callable[[DataChannelLink], Awaitable[None]] | None = None, *,
                 serialization: Serialization, limits: ReassemblyLimits | None = None) -> None:
        if serialization is Serialization.RAW:
            raise P2PUsageError("raw connections are plain DataChannelLinks")
        self._codec = DataCodec(serialization, limits or ReassemblyLimits(
            max_message_bytes=settings.max_receive_backlog // 2,
            max_total_bytes=settings.max_receive_backlog))
        self._values: deque[tuple[Any, int]] = deque()
        self.dropped_messages = 0
        """Frames that did not decode or broke the reassembly bounds (remote input)."""
        self.dropped_values = 0
        """Decoded values :meth:`receive` skipped because they were not ``bytes``."""
        super().__init__(peer_id, connection_id, pc, channel, settings, on_close)

    @property
    def serialization(self) -> Serialization:
        """``binary`` or ``json`` (``default`` and ``binary-utf8`` are ``binary``)."""
        return self._codec.serialization

    @property
    def pending_chunks(self) -> int:
        """Chunked messages partly received (bounded by ``ReassemblyLimits.max_pending``)."""
        return self._codec.pending

    # ------------------------------------------------------------------ events from aiortc
    def _on_message(self, data: bytes | str) -> None:
        if self.closed:
            return
        try:
            out = self._codec.decode(data, asyncio.get_running_loop().time())
        except RemoteInputError as exc:
            self.dropped_messages += 1
            _log.info("dropped a %s message from %s: %s", self.serialization, self.peer_id, exc)
            return
        if out is None:  # one chunk of a longer message
            return
        if isinstance(out, CloseRequested):
            self._break("the peer closed the connection (peerjs close)")
            self._spawn_teardown()
            return
        size = self._codec.last_message_bytes
        self._backlog += size
        if self._backlog > self._settings.max_receive_backlog:
            self._break("the peer sent more than the receive backlog allows")
            self._spawn_teardown()
            return
        self._values.append((out.value, size))
        self._readable.set()

    # ------------------------------------------------------------------ values
    async def send_value(self, value: Any) -> None:
        """Send one value; :class:`P2PUsageError` if the serialization cannot carry it (json:
        bytes, or 16,300 bytes and more once encoded; binary: past the reassembly limit)."""
        self._check_open()
        for frame in self._codec.encode(value):  # binary and json frames are all bytes
            await DataChannelLink.send(self, frame if isinstance(frame, bytes) else frame.encode())

    async def receive_value(self) -> Any:
        """The next value the peer sent, in order; raises as :meth:`receive` when the link ends."""
        while not self._values:
            self._check_open()
            self._readable.clear()
            await self._readable.wait()
        if self._closed_locally:
            raise LinkClosedLocally(f"the link to {self.peer_id} was closed by us")
        value, size = self._values.popleft()
        self._backlog -= size
        return value

    # ------------------------------------------------------------------ Link (bytes PDUs)
    async def send(self, pdu: bytes) -> None:
        if self.serialization is Serialization.JSON:
            raise P2PUsageError("json connections carry JSON values, not bytes: use send_value")
        if len(pdu) > self.max_pdu_bytes:
            raise P2PUsageError(f"PDU of {len(pdu)} bytes exceeds the link's {self.max_pdu_bytes}")
        await self.send_value(bytes(pdu))

    async def receive(self) -> bytes:
        while True:
            value = await self.receive_value()
            if isinstance(value, bytes):
                return value
            self.dropped_values += 1
