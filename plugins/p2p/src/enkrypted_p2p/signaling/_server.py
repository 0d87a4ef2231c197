"""The broker's asyncio driver: owns the HTTP/WebSocket sockets (aiohttp) and the store, and runs
:class:`~._broker.BrokerCore`'s effects.  Nothing here decides routing.

HTTP, as npm ``peer`` (crypto-p2p-anchors.md §3.1): ``GET {path}`` (server info),
``GET {path}{key}/id`` (a fresh UUID, the key segment is not checked), ``GET {path}{key}/peers``
(only with discovery, else 401); WebSocket ``{path}peerjs?key&id&token``.  CORS allows any origin.
Logs are one JSON object per line on the ``enkrypted.broker`` logger, without payloads or tokens;
aiohttp's access log is off because request lines carry the token.
"""

from __future__ import annotations

__all__ = ["BrokerServer"]

import asyncio
import contextlib
import json
import logging
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine

from aiohttp import WSMsgType, web

from ..errors import P2PNetworkError
from ._broker import (
    BrokerCore,
    Claim,
    Close,
    Drain,
    Effect,
    Forward,
    Log,
    Refresh,
    Release,
    Send,
    SweepQueues,
)
from ._config import BrokerConfig
from ._limits import client_address, parse_networks
from ._store import MemoryStore, QueuedMessage, QueueLimits, SignalingStore

LOG = logging.getLogger("enkrypted.broker")
MAX_QUERY_FIELDS = 32
SLOW_CONSUMER_BYTES = 1024 * 1024
"""A socket whose unsent output exceeds this is closed (1008): memory stays bounded."""
_INFO = {
    "name": "PeerJS Server",
    "description": "A server side element to broker connections between PeerJS clients.",
    "website": "https://peerjs.com/",
}


def queue_limits(config: BrokerConfig) -> QueueLimits:
    return QueueLimits(config.max_queued_msgs_per_dst, config.max_queued_bytes_per_dst,
                       config.max_queued_bytes_total, config.max_queues)


@web.middleware
async def _cors(request: web.Request, handler: Callable[[web.Request], object]) -> web.StreamResponse:
    response = await handler(request)  # type: ignore[misc]
    assert isinstance(response, web.StreamResponse)
    if not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = request.headers.get("Origin", "*")
        response.headers["Vary"] = "Origin"
    return response


class BrokerServer:
    """One broker process: ``await start()``, then ``await stop()``."""

    def __init__(self, config: BrokerConfig, store: SignalingStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store or MemoryStore(queue_limits(config))
        self.clock = clock
        self.core = BrokerCore(config, clock())
        self._proxies = parse_networks(config.trusted_proxies)
        self._sockets: dict[int, web.WebSocketResponse] = {}
        self._transports: dict[int, asyncio.BaseTransport] = {}
        self._outq: dict[int, list[bytes]] = {}
        self._flush_scheduled = False
        self._next_conn = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------------ lifecycle
    def app(self) -> web.Application:
        base = self.config.base_path
        app = web.Application(middlewares=[_cors])
        app.router.add_get(base, self._info)
        app.router.add_get(base + "peerjs", self._websocket)
        app.router.add_get(base + "{key}/id", self._new_id)
        app.router.add_get(base + "{key}/peers", self._peers)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 9000,
                    ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen; returns the bound port (``port=0`` picks a free one)."""
        await self.store.start(self._inbox, self._kick)
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            raise P2PNetworkError(f"cannot listen on {host}:{port}: {exc}") from exc
        server = site._server  # the one bound socket, to learn the port chosen for 0
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        self._timer = asyncio.create_task(self._timers())
        _log("broker.listening", host=host, port=self.port, path=self.config.base_path,
             tls=ssl_context is not None, store=type(self.store).__name__, node=self.store.node)
        return self.port

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        for ws in list(self._sockets.values()):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.store.close()

    # ------------------------------------------------------------------------ HTTP
    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(_INFO)

    async def _new_id(self, request: web.Request) -> web.Response:
        return web.Response(text=str(uuid.uuid4()), content_type="text/html")

    async def _peers(self, request: web.Request) -> web.Response:
        if not self.config.allow_discovery:
            return web.Response(status=401, text="Unauthorized")
        return web.json_response(await self.store.ids(self.config.max_discovery_ids))

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=self.config.max_frame_bytes,
                                   autoping=True, timeout=2.0)
        await ws.prepare(request)
        self._next_conn += 1
        conn = self._next_conn
        self._sockets[conn] = ws
        if request.transport is not None:
            self._transports[conn] = request.transport
        remote = client_address(request.remote or "", request.headers.get("X-Forwarded-For"),
                                self._proxies)
        try:
            await self._run(self.core.connect(conn, _query(request.query_string), self.clock(),
                                              remote))
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._run(self.core.frame(conn, msg.data, self.clock()))
                elif msg.type is WSMsgType.ERROR:
                    _log("socket.error", conn=conn, remote=remote, error=str(ws.exception()))
                    break
        finally:
            self._sockets.pop(conn, None)
            self._transports.pop(conn, None)
            self._outq.pop(conn, None)
            await self._run(self.core.disconnected(conn, self.clock()))
        return ws

    # ------------------------------------------------------------------------ effects
    async def _run(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                await self._send(effect)
            elif isinstance(effect, Forward):
                outcome = await self.store.forward(effect.message, self.clock())
                self.core.forwarded(effect.message, outcome)
            else:
                await self._run_slow(effect)

    async def _send(self, effect: Send) -> None:
        if (not self._enqueue(effect.conn, effect.text) and effect.src is not None
                and effect.dst is not None):
            await self._run(self.core.undeliverable(effect.src, effect.dst))

    def _enqueue(self, conn: int, text: str) -> bool:
        """Queue one text frame; all frames queued in this loop iteration leave in one write per
        socket (a send syscall per frame was most of the relay cost)."""
        transport = self._transports.get(conn)
        ws = self._sockets.get(conn)
        if transport is None or ws is None or ws.closed or transport.is_closing():
            return False
        self._outq.setdefault(conn, []).append(_text_frame(text))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def _flush(self, only: int | None = None) -> None:
        if only is None:
            self._flush_scheduled = False
            pending, self._outq = self._outq, {}
        else:
            frames = self._outq.pop(only, None)
            pending = {only: frames} if frames else {}
        for conn, frames in pending.items():
            transport = self._transports.get(conn)
            if transport is None or transport.is_closing():
                continue
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(b"".join(frames))
            if transport.get_write_buffer_size() > SLOW_CONSUMER_BYTES:
                _log("client.slow", conn=conn, buffered=transport.get_write_buffer_size())
                self._spawn(self._close(conn, 1008))

    async def _run_slow(self, effect: Effect) -> None:
        try:
            if isinstance(effect, Close):
                self._spawn(self._close(effect.conn, effect.code))
            elif isinstance(effect, Claim):
                await self._claim(effect)
            elif isinstance(effect, Release):
                await self.store.release(effect.peer_id, effect.token, effect.clear_queue)
            elif isinstance(effect, Drain):
                messages = await self.store.drain(effect.peer_id)
                await self._run(self.core.queued(effect.conn, messages))
            elif isinstance(effect, SweepQueues):
                await self._run(self.core.expired(await self.store.take_expired(effect.cutoff)))
            elif isinstance(effect, Refresh):
                await self.store.refresh(effect.peer_ids)
            elif isinstance(effect, Log):
                _log(effect.event, **dict(effect.fields))
        except P2PNetworkError as exc:
            _log("store.error", effect=type(effect).__name__, error=str(exc))

    async def _claim(self, effect: Claim) -> None:
        try:
            outcome = await self.store.claim(effect.peer_id, effect.token, self.clock())
        except P2PNetworkError as exc:
            _log("store.error", effect="Claim", error=str(exc))
            await self._run(self.core.claim_failed(effect.conn))
            return
        await self._run(self.core.claimed(effect.conn, outcome, self.clock()))

    async def _close(self, conn: int, code: int) -> None:
        self._flush(only=conn)  # what the core sent before closing (ERROR, ID-TAKEN) goes first
        ws = self._sockets.get(conn)
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close(code=code)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _timers(self) -> None:
        while True:
            await asyncio.sleep(max(0.0, self.core.next_deadline() - self.clock()))
            try:
                await self._run(self.core.tick(self.clock()))
            except Exception as exc:  # a timer must never die; log and go on
                _log("timer.error", error=repr(exc))

    # ------------------------------------------------------------------------ other brokers
    async def _inbox(self, messages: list[QueuedMessage]) -> None:
        deliver = self.core.deliver
        await self._run([effect for message in messages for effect in deliver(message)])

    async def _kick(self, peer_id: str, token: str) -> None:
        await self._run(self.core.kick(peer_id, token))


def _query(raw: str) -> dict[str, str]:
    """The WebSocket URL's parameters, first value wins (as ``request.query.get``), parsed without
    caching a MultiDict on the request for the socket's lifetime (about 0.5 KB per client)."""
    out: dict[str, str] = {}
    try:
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:  # too many fields: answered like missing parameters
        return out
    for name, value in pairs:
        out.setdefault(name, value)
    return out


def _text_frame(text: str) -> bytes:
    """An unmasked, final text frame (RFC 6455 §5.2), as a server sends it."""
    data = text.encode("utf-8")
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 65536:
        return b"\x81\x7e" + size.to_bytes(2, "big") + data
    return b"\x81\x7f" + size.to_bytes(8, "big") + data


def _log(event: str, **fields: object) -> None:
    if LOG.isEnabledFor(logging.INFO):
        LOG.info(json.dumps({"event": event, **fields}, default=str, sort_keys=True))
