"""The client's asyncio driver: owns the WebSocket (aiohttp) and the timers of one
:class:`~._client.ClientCore`; the application reads its events with :meth:`next_event`.
"""

from __future__ import annotations

__all__ = ["SignalingClient"]

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from ..errors import BrokerRefused, P2PNetworkError, RemoteInputError
from ._client import (
    ClientCore,
    ClientOutput,
    ClientState,
    CloseSocket,
    GaveUp,
    Opened,
    OpenSocket,
    Refused,
    SendFrame,
    valid_peer_id,
)
from ._config import ClientConfig
from ._dataconn import Serialization, answer_payload, candidate_payload
from ._protocol import MessageType

Event = Any  # the application events of ClientOutput (Opened, Signal, Expired, ...)


class SignalingClient:
    """``async with SignalingClient(config) as client:`` registers (fetching an id if none is
    given) and keeps the registration alive - heartbeats, reconnects with the same id and token -
    until closed."""

    def __init__(self, config: ClientConfig, peer_id: str | None = None, token: str | None = None,
                 *, ssl_context: ssl.SSLContext | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._wanted_id, self._token = peer_id, token
        self._ssl = ssl_context
        self._clock = clock
        self.core: ClientCore | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._opened = asyncio.Event()
        self._failure: Exception | None = None

    @property
    def _ssl_arg(self) -> ssl.SSLContext | bool:
        return self._ssl if self._ssl is not None else True

    @property
    def peer_id(self) -> str:
        if self.core is None:
            raise P2PNetworkError("not registered yet")
        return self.core.peer_id

    @property
    def token(self) -> str:
        if self.core is None:
            raise P2PNetworkError("not registered yet")
        return self.core.token

    async def __aenter__(self) -> SignalingClient:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------ lifecycle
    async def open(self, timeout: float = 10.0) -> str:
        """Register with the broker; the peer id.  Raises :class:`BrokerRefused` or
        :class:`P2PNetworkError`."""
        self._session = aiohttp.ClientSession()
        peer_id = self._wanted_id or await self._fetch_id()
        self.core = ClientCore(self.config, peer_id, self._token)
        self._spawn(self._timers())
        await self._apply(self.core.connect(self._clock()))
        try:
            async with asyncio.timeout(timeout):
                await self._opened.wait()
        except TimeoutError as exc:
            await self.close()
            raise P2PNetworkError(f"no OPEN from the broker within {timeout} s") from exc
        if self._failure is not None:
            await self.close()
            raise self._failure
        return peer_id

    async def _fetch_id(self) -> str:
        assert self._session is not None
        url = ClientCore.id_url(self.config)
        try:
            async with self._session.get(url, ssl=self._ssl_arg) as response:
                response.raise_for_status()
                text = (await response.content.read(1024)).decode("utf-8", "replace").strip()
        except (aiohttp.ClientError, OSError) as exc:
            raise P2PNetworkError(f"cannot get a peer id from {url}: {exc}") from exc
        if not valid_peer_id(text):
            raise RemoteInputError("the broker sent an invalid peer id")
        return text

    async def close(self) -> None:
        if self.core is not None:
            self.core.destroy()  # the socket is closed below, while its reader still runs
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await ws.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()

    async def drop(self) -> None:
        """Close the socket as a network failure would; the client reconnects by itself."""
        if self._ws is not None:
            self._opened.clear()
            await self._ws.close()

    async def wait_open(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self._opened.wait()

    async def next_event(self, timeout: float = 10.0) -> Event:
        async with asyncio.timeout(timeout):
            return await self._events.get()

    async def wait_for(self, kind: type, timeout: float = 10.0) -> Any:
        """Skip events until one of type ``kind`` (bounded by ``timeout``)."""
        deadline = self._clock() + timeout
        while True:
            event = await self.next_event(max(0.0, deadline - self._clock()))
            if isinstance(event, kind):
                return event

    # ------------------------------------------------------------------------ sending
    async def send(self, kind: MessageType, dst: str, payload: Any) -> None:
        assert self.core is not None
        await self._apply(self.core.send(kind, dst, payload))

    async def offer(self, dst: str, sdp: dict[str, Any], *, serialization: Serialization =
                    Serialization.BINARY, reliable: bool = False, metadata: Any = None,
                    label: str | None = None, connection_id: str | None = None) -> str:
        assert self.core is not None
        cid, out = self.core.offer(dst, sdp, connection_id=connection_id, label=label,
                                   serialization=serialization, reliable=reliable,
                                   metadata=metadata)
        await self._apply(out)
        return cid

    async def answer(self, dst: str, connection_id: str, sdp: dict[str, Any]) -> None:
        await self.send(MessageType.ANSWER, dst, answer_payload(sdp, connection_id))

    async def candidate(self, dst: str, connection_id: str, candidate: dict[str, Any]) -> None:
        await self.send(MessageType.CANDIDATE, dst, candidate_payload(candidate, connection_id))

    # ------------------------------------------------------------------------ driver
    async def _apply(self, outputs: list[ClientOutput]) -> None:
        for out in outputs:
            if isinstance(out, SendFrame):
                if self._ws is not None and not self._ws.closed:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await self._ws.send_str(out.text)
            elif isinstance(out, OpenSocket):
                self._spawn(self._connect(out.url))
            elif isinstance(out, CloseSocket):
                if self._ws is not None:
                    self._spawn(self._ws.close())
            else:
                self._event(out)
        self._wake.set()

    def _event(self, event: Event) -> None:
        if isinstance(event, Opened):
            self._opened.set()
        elif isinstance(event, Refused):
            self._failure = BrokerRefused(event.kind, event.message)
            self._opened.set()
        elif isinstance(event, GaveUp):
            self._failure = P2PNetworkError(f"gave up after {event.attempts} reconnects")
            self._opened.set()
        self._events.put_nowait(event)

    async def _connect(self, url: str) -> None:
        assert self.core is not None and self._session is not None
        try:
            ws = await self._session.ws_connect(url, autoping=True, compress=0, ssl=self._ssl_arg,
                                                max_msg_size=self.config.max_frame_bytes)
        except (aiohttp.ClientError, OSError):
            await self._apply(self.core.socket_closed(self._clock()))
            return
        self._ws = ws
        try:
            await self._apply(self.core.socket_opened(self._clock()))
            async for msg in ws:
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    await self._apply(self.core.frame_received(msg.data, self._clock()))
        finally:
            if self._ws is ws:
                self._ws = None
            if self.core.state is not ClientState.CLOSED:
                await self._apply(self.core.socket_closed(self._clock(), ws.close_code))

    async def _timers(self) -> None:
        assert self.core is not None
        while self.core.state is not ClientState.CLOSED:
            deadline = self.core.next_deadline()
            self._wake.clear()
            delay = 1.0 if deadline is None else max(0.0, deadline - self._clock())
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
            # races with the inner wait finishing, which left close() waiting forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            await self._apply(self.core.tick(self._clock()))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
