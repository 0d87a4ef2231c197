"""One asyncio driver per link: feeds a :class:`~._core.SessionCore` from the link and the clock.

``session = ChatSession(link, crypto, identity, initiator=..., context=...)``, ``await
session.start()`` (returns once Ready; :class:`SessionFailed`-based :class:`HandshakeError` or the
link's error otherwise), then :meth:`send_text` and ``async for event in session.events()``.
The clock is the shell's (``AppContext.clock``) and the limits its ``AppContext.limits``; the
handshake timeout (300 s) is the crypto handshake's own timer, fired through ``next_deadline``.

A session kept from an earlier link (``core=``, e.g. :func:`~._state.restore_core`) resumes on the
new one: the dialler (``initiator=True``) sends the sealed resume first; the acceptor passes the
link's first PDU as ``start(first_pdu=...)`` so a resume and a new handshake are told apart.  A
refused resume falls back to a full handshake on the same link.  ``on_change`` runs before any PDU
leaves and before any event is queued whenever the session may have changed: the place to persist
:meth:`export_state` (the crypto contract's "export again before releasing or acknowledging").

**Files.**  A file pump task sends the file core's frames (:meth:`SessionCore.next_file_pdu`):
one frame at a time under the same FIFO send lock as the chat PDUs, so a chat PDU waits for at most
one file frame, and only while the link's ``buffered_amount`` (when it has one: the WebRTC
channel's ``bufferedAmount``) is below :data:`FILE_HIGH_WATER`, so the channel's own buffer never
holds more than that ahead of a chat message.  ``on_change`` runs before every sealed file frame
(it advanced the crypto session); fast-path chunks do not touch it.
"""

from __future__ import annotations

__all__ = ["ChatSession", "HandshakeError"]

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from enkrypted_shell.contracts import (
    WIRE_LIMITS,
    Clock,
    CryptoService,
    Link,
    LinkClosed,
    RemoteInputError,
    WireLimits,
    monotonic_clock,
)

from ..errors import P2PError
from ..files import FAST_FRAME
from ._core import (
    RESUME,
    ReceiptReceived,
    ResumeRefused,
    SendPdu,
    SessionCore,
    SessionFailed,
    SessionOutput,
    SessionReady,
)
from ._fsm import SessionState
from ._state import export_core


class HandshakeError(P2PError, RemoteInputError):
    """The handshake failed (no common profile, a bad PDU, the 300 s timeout): the local reason."""


_END = object()
_MAX_QUEUED_EVENTS = 1024
FILE_HIGH_WATER = 512 * 1024
"""File frames go out only while the channel buffers less than this (a chat PDU then waits behind
at most this much: ~50 ms at 10 MB/s)."""
_FILE_POLL_S = 0.002
_PDU_MARGIN = 1024
SEND_WINDOW_WAIT_S = 30.0
"""How long :meth:`ChatSession.send_text` waits for receipts when the unacknowledged window is full
(a bulk sender ahead of its peer)."""
"""Bytes of a link PDU kept for the frame header and the session's seal."""


class ChatSession:
    """The session with the peer at the other end of ``link``."""

    def __init__(self, link: Link, crypto: CryptoService, identity: bytes, *, initiator: bool,
                 clock: Clock = monotonic_clock, limits: WireLimits = WIRE_LIMITS,
                 core: SessionCore | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.link = link
        self.core = SessionCore(limits) if core is None else core
        self._on_change = on_change
        self._crypto, self._identity, self._initiator = crypto, identity, initiator
        self._clock = clock
        self._events: asyncio.Queue[Any] = asyncio.Queue()  # bounded by _queue (backpressure)
        self._room = asyncio.Event()
        self._ready: asyncio.Future[SessionReady] = asyncio.get_running_loop().create_future()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._send_lock = asyncio.Lock()
        self.info: SessionReady | None = None
        self._closed = False
        self._files_wake = asyncio.Event()
        self._acked = asyncio.Event()  # a receipt came (or the link ended): the window may have room

    @property
    def state(self) -> SessionState:
        return self.core.state

    @property
    def peer_id(self) -> str:
        return self.link.peer_id

    async def start(self, timeout: float | None = None, *,
                    first_pdu: bytes | None = None) -> SessionReady:
        """Resume the kept session or run the handshake; returns once Ready."""
        core, now = self.core, self._clock()
        if core.state is SessionState.DISCONNECTED:
            core.relink()
        core.channel_open()
        if self._initiator and core.can_resume:
            outputs = core.start_resume(secrets.token_bytes(16), now)
        elif not self._initiator and first_pdu is not None and first_pdu[:1] == bytes([RESUME]):
            outputs = core.pdu_received(first_pdu, now)
        else:
            outputs = core.start_handshake(self._new_handshake())
            if first_pdu is not None:
                outputs += core.pdu_received(first_pdu, now)
        await self._apply(outputs)
        self._tasks = [asyncio.ensure_future(self._reader()), asyncio.ensure_future(self._timer()),
                       asyncio.ensure_future(self._file_pump())]
        async with asyncio.timeout(timeout):
            self.info = await asyncio.shield(self._ready)
        return self.info

    def _new_handshake(self) -> Any:
        return self._crypto.handshake(self._identity, initiator=self._initiator,
                                      now=self._clock())

    def export_state(self) -> bytes | None:
        """The kept session as bytes (:mod:`._state`), ``None`` before any handshake completed."""
        return export_core(self.core)

    async def _apply(self, outputs: list[SessionOutput]) -> None:
        if outputs and self._on_change is not None:
            self._on_change()
        for out in outputs:
            if isinstance(out, ResumeRefused):
                self._events.put_nowait(out)
                await self._apply(self.core.start_handshake(self._new_handshake()))
            elif isinstance(out, SendPdu):
                async with self._send_lock:
                    await self.link.send(out.pdu)
            elif isinstance(out, SessionReady):
                if not self._ready.done():
                    self._ready.set_result(out)
                await self._queue(out)
            elif isinstance(out, SessionFailed):
                if not self._ready.done():
                    self._ready.set_exception(HandshakeError(out.reason))
                await self._queue(out)
            else:
                if isinstance(out, ReceiptReceived):
                    self._acked.set()
                await self._queue(out)
        self._wake.set()
        self._files_wake.set()

    async def _queue(self, event: object) -> None:
        """Queue an event; past 1024 unread ones wait (the link reader stops reading)."""
        while self._events.qsize() >= _MAX_QUEUED_EVENTS:
            self._room.clear()
            await self._room.wait()
        self._events.put_nowait(event)

    async def _reader(self) -> None:
        try:
            while self.core.state is not SessionState.DISCONNECTED:
                pdu = await self.link.receive()
                await self._apply(self.core.pdu_received(pdu, self._clock()))
        except LinkClosed as exc:
            self.core.link_lost()
            if not self._ready.done():
                self._ready.set_exception(exc)
            self._events.put_nowait(exc)
        finally:
            self._events.put_nowait(_END)
            self._acked.set()
            self._wake.set()
            self._files_wake.set()

    async def _timer(self) -> None:
        while self.core.state is not SessionState.DISCONNECTED:
            deadline = self.core.next_deadline()
            self._wake.clear()
            delay = 3600.0 if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            now = self._clock()
            deadline = self.core.next_deadline()
            if deadline is not None and now >= deadline:
                with contextlib.suppress(LinkClosed):
                    await self._apply(self.core.handle_timeout(now))

    def kick_files(self) -> None:
        """The file core has something new to send (an offer, an accept, a cancel)."""
        self._files_wake.set()

    async def file_events(self) -> None:
        """Queue the events a local file command produced in the core."""
        await self._apply(self.core.file_events())

    def _file_room(self) -> bool:
        buffered = getattr(self.link, "buffered_amount", None)
        return not isinstance(buffered, int) or buffered < FILE_HIGH_WATER

    async def _file_pump(self) -> None:
        """Send file frames while there are any and the link has room; chat PDUs go first."""
        budget = getattr(self.link, "max_pdu_bytes", 64 * 1024 + 2 * _PDU_MARGIN) - _PDU_MARGIN
        with contextlib.suppress(LinkClosed):
            while self.core.state is not SessionState.DISCONNECTED:
                if not self.core.has_file_pdu():
                    self._files_wake.clear()
                    await self._files_wake.wait()
                    continue
                if not self._file_room():
                    await asyncio.sleep(_FILE_POLL_S)
                    continue
                async with self._send_lock:
                    frame = self.core.next_file_pdu(budget)
                    if frame is not None and frame[0] != FAST_FRAME and self._on_change is not None:
                        self._on_change()  # the crypto session advanced: persist before it leaves
                    if frame is not None:
                        await self.link.send(frame)
                events = self.core.file_events()
                if events:
                    await self._apply(events)
                if frame is None:
                    await asyncio.sleep(_FILE_POLL_S)

    async def send_text(self, text: str) -> str:
        """Seal and send one message; its ``messageId`` (a receipt event follows later).  While
        the unacknowledged window (256 messages, 2 MiB) is full it waits for receipts, at most
        :data:`SEND_WINDOW_WAIT_S`; then (or once the link is gone) the core's error."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SEND_WINDOW_WAIT_S):
                while not self.core.has_room(text) and self.core.state is SessionState.READY:
                    self._acked.clear()
                    await self._acked.wait()
        message_id, outputs = self.core.send_text(text)
        await self._apply(outputs)
        return message_id

    async def send_typing(self) -> None:
        await self._apply(self.core.send_typing())

    async def send_group(self, pdu: bytes) -> None:
        """Seal and send one group envelope (``on_change`` persists before it leaves)."""
        await self._apply(self.core.send_group(pdu))

    async def events(self) -> AsyncIterator[Any]:
        """MessageReceived, ReceiptReceived, TypingReceived, SessionReady, SessionFailed, then
        the LinkClosed that ended the session; the iterator ends with the link."""
        while True:
            event = await self._events.get()
            self._room.set()
            if event is _END:
                self._events.put_nowait(_END)
                return
            yield event

    def wake(self) -> None:
        """Re-read the clock now (tests with a fake clock advance it, then call this)."""
        self._wake.set()
        self._files_wake.set()

    async def close(self) -> None:
        """Close the link; idempotent.  Only the first call touches the core: a kept core may
        already serve this peer's next link when a second close comes."""
        if self._closed:
            return
        self._closed = True
        self.core.close()
        await self.link.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
