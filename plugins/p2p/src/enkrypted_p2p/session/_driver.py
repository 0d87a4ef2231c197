"""One asyncio driver per link: feeds a :class:`~._core.SessionCore` from the link and the clock.

``session = ChatSession(link, crypto, identity, initiator=..., context=...)``, ``await
session.start()`` (returns once Ready; :class:`SessionFailed`-based :class:`HandshakeError` or the
link's error otherwise), then :meth:`send_text` and ``async for event in session.events()``.
The clock is the shell's (``AppContext.clock``) and the limits its ``AppContext.limits``; the
handshake timeout (300 s) is the crypto handshake's own timer, fired through ``next_deadline``.
"""

from __future__ import annotations

__all__ = ["ChatSession", "HandshakeError"]

import asyncio
import contextlib
from collections.abc import AsyncIterator
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
from ._core import SendPdu, SessionCore, SessionFailed, SessionOutput, SessionReady
from ._fsm import SessionState


class HandshakeError(P2PError, RemoteInputError):
    """The handshake failed (no common profile, a bad PDU, the 300 s timeout): the local reason."""


_END = object()


class ChatSession:
    """The session with the peer at the other end of ``link``."""

    def __init__(self, link: Link, crypto: CryptoService, identity: bytes, *, initiator: bool,
                 clock: Clock = monotonic_clock, limits: WireLimits = WIRE_LIMITS) -> None:
        self.link = link
        self.core = SessionCore(limits)
        self._crypto, self._identity, self._initiator = crypto, identity, initiator
        self._clock = clock
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._ready: asyncio.Future[SessionReady] = asyncio.get_running_loop().create_future()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._send_lock = asyncio.Lock()
        self.info: SessionReady | None = None

    @property
    def state(self) -> SessionState:
        return self.core.state

    @property
    def peer_id(self) -> str:
        return self.link.peer_id

    async def start(self, timeout: float | None = None) -> SessionReady:
        """Run the handshake; returns once Ready."""
        self.core.channel_open()
        handshake = self._crypto.handshake(self._identity, initiator=self._initiator,
                                           now=self._clock())
        await self._apply(self.core.start_handshake(handshake))
        self._tasks = [asyncio.ensure_future(self._reader()), asyncio.ensure_future(self._timer())]
        async with asyncio.timeout(timeout):
            self.info = await asyncio.shield(self._ready)
        return self.info

    async def _apply(self, outputs: list[SessionOutput]) -> None:
        for out in outputs:
            if isinstance(out, SendPdu):
                async with self._send_lock:
                    await self.link.send(out.pdu)
            elif isinstance(out, SessionReady):
                if not self._ready.done():
                    self._ready.set_result(out)
                self._events.put_nowait(out)
            elif isinstance(out, SessionFailed):
                if not self._ready.done():
                    self._ready.set_exception(HandshakeError(out.reason))
                self._events.put_nowait(out)
            else:
                self._events.put_nowait(out)
        self._wake.set()

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
            self._wake.set()

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

    async def send_text(self, text: str) -> str:
        """Seal and send one message; its ``messageId`` (a receipt event follows later)."""
        message_id, outputs = self.core.send_text(text)
        await self._apply(outputs)
        return message_id

    async def send_typing(self) -> None:
        await self._apply(self.core.send_typing())

    async def events(self) -> AsyncIterator[Any]:
        """MessageReceived, ReceiptReceived, TypingReceived, SessionReady, SessionFailed, then
        the LinkClosed that ended the session; the iterator ends with the link."""
        while True:
            event = await self._events.get()
            if event is _END:
                self._events.put_nowait(_END)
                return
            yield event

    def wake(self) -> None:
        """Re-read the clock now (tests with a fake clock advance it, then call this)."""
        self._wake.set()

    async def close(self) -> None:
        self.core.close()
        await self.link.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
