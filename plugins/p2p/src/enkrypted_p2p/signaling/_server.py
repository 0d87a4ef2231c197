"""The broker's asyncio driver: owns the listening socket, the connections (``_socket.py``) and
the store, and runs :class:`~._broker.BrokerCore`'s effects.  Nothing here decides routing.

HTTP, as npm ``peer`` (crypto-p2p-anchors.md §3.1): ``GET {path}`` (server info),
``GET {path}{key}/id`` (a fresh UUID, the key segment is not checked), ``GET {path}{key}/peers``
(only with discovery, else 401); WebSocket ``{path}peerjs?key&id&token``.  CORS allows any origin.
Plain HTTP answers close the connection (``Connection: close``).  Logs are one JSON object per
line on the ``enkrypted.broker`` logger, without payloads or tokens (a request line carries the
token: it is never logged).

Effects that need no waiting (a frame to send, a forward, which every store accepts at once, a
log record, a close) run synchronously inside ``data_received``: relaying a frame takes no task
switch.  A claim or a drain waits on the store: that connection's reading pauses until it is done,
so its frames keep their order (docs/adr/0013-broker-websocket-driver.md).
"""

from __future__ import annotations

__all__ = ["BrokerServer", "queue_limits"]

import asyncio
import contextlib
import json
import logging
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

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
from ._config import BrokerConfig, queue_limits
from ._limits import client_address, parse_networks
from ._socket import BrokerSocket
from ._store import MemoryStore, QueuedMessage, SignalingStore

LOG = logging.getLogger("enkrypted.broker")
MAX_QUERY_FIELDS = 32
SLOW_CONSUMER_BYTES = 1024 * 1024
"""A socket whose unsent output exceeds this is closed (1008): memory stays bounded."""
_INFO = json.dumps({
    "name": "PeerJS Server",
    "description": "A server side element to broker connections between PeerJS clients.",
    "website": "https://peerjs.com/",
}).encode()
_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}


class BrokerServer:
    """One broker process: ``await start()``, then ``await stop()``."""

    def __init__(self, config: BrokerConfig, store: SignalingStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store or MemoryStore(queue_limits(config))
        self.clock = clock
        self.core = BrokerCore(config, clock())
        self._proxies = parse_networks(config.trusted_proxies)
        self._sockets: dict[int, BrokerSocket] = {}
        self._accepted: set[BrokerSocket] = set()
        self._outq: dict[int, list[bytes]] = {}
        self._flush_scheduled = False
        self._next_conn = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._server: asyncio.Server | None = None
        self.port = 0

    # ------------------------------------------------------------------------ lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 9000,
                    ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen; returns the bound port (``port=0`` picks a free one)."""
        await self.store.start(self._inbox, self._kick)
        loop = asyncio.get_running_loop()
        max_message = self.config.max_frame_bytes
        try:
            self._server = await loop.create_server(
                lambda: self._accept(BrokerSocket(self, max_message)), host, port,
                ssl=ssl_context, backlog=1024, reuse_address=True)
        except OSError as exc:
            raise P2PNetworkError(f"cannot listen on {host}:{port}: {exc}") from exc
        sockets = self._server.sockets
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
        if self._server is not None:
            self._server.close()
        for sock in list(self._accepted):
            sock.close(1001)
        await asyncio.sleep(0)  # let the close frames reach the transports
        for sock in list(self._accepted):
            sock.abort()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
        for task in list(self._tasks):
            task.cancel()
        await self.store.close()

    def _accept(self, sock: BrokerSocket) -> BrokerSocket:
        self._accepted.add(sock)
        return sock

    # ------------------------------------------------------------------------ HTTP
    def request(self, sock: BrokerSocket, request: Request) -> None:
        """The connection's HTTP request: a WebSocket upgrade on ``{path}peerjs``, or a route."""
        path, _, query = request.path.partition("?")
        base = self.config.base_path
        route = path[len(base):] if path.startswith(base) else None
        if route == "peerjs":
            self._upgrade(sock, request, query)
        elif route == "":
            self._respond(sock, request, 200, _INFO, "application/json")
        elif route is not None and route.count("/") == 1 and route.endswith("/id"):
            self._respond(sock, request, 200, str(uuid.uuid4()).encode(), "text/html")
        elif route is not None and route.count("/") == 1 and route.endswith("/peers"):
            if self.config.allow_discovery:
                self._spawn(self._peers(sock, request))
            else:
                self._respond(sock, request, 401, b"Unauthorized", "text/plain")
        else:
            self._respond(sock, request, 404, b"Not Found", "text/plain")

    async def _peers(self, sock: BrokerSocket, request: Request) -> None:
        try:
            ids = await self.store.ids(self.config.max_discovery_ids)
        except P2PNetworkError as exc:
            _log("store.error", effect="ids", error=str(exc))
            self._respond(sock, request, 503, b"Service Unavailable", "text/plain")
            return
        self._respond(sock, request, 200, json.dumps(ids).encode(), "application/json")

    def _respond(self, sock: BrokerSocket, request: Request, status: int, body: bytes,
                 kind: str) -> None:
        headers = Headers([
            ("Content-Type", kind + "; charset=utf-8"), ("Content-Length", str(len(body))),
            ("Access-Control-Allow-Origin", request.headers.get("Origin", "*")),
            ("Vary", "Origin"), ("Connection", "close"),
        ])
        sock.ws.send_response(Response(status, _REASONS.get(status, "Error"), headers, body))
        sock.flush_protocol()

    def _upgrade(self, sock: BrokerSocket, request: Request, query: str) -> None:
        response = sock.ws.accept(request)
        sock.ws.send_response(response)
        sock.flush_protocol()
        if response.status_code != 101:
            return
        transport = sock.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        remote = client_address(str(peer[0]) if peer else "", request.headers.get("X-Forwarded-For"),
                                self._proxies)
        request.headers.clear()  # the library's parser keeps the request for the socket's life
        self._next_conn += 1
        sock.conn = conn = self._next_conn
        self._sockets[conn] = sock
        self._handle(sock, self.core.connect(conn, _query(query), self.clock(), remote))

    # ------------------------------------------------------------------------ WebSocket events
    def message(self, sock: BrokerSocket, data: bytes) -> None:
        if sock.conn:
            self._handle(sock, self.core.frame(sock.conn, data, self.clock()))

    def lost(self, sock: BrokerSocket) -> None:
        self._accepted.discard(sock)
        conn = sock.conn
        if not conn:
            return
        self._sockets.pop(conn, None)
        self._outq.pop(conn, None)
        self._handle(None, self.core.disconnected(conn, self.clock()))

    def _handle(self, sock: BrokerSocket | None, effects: list[Effect]) -> None:
        """Run ``effects``; if one must wait on the store, pause ``sock`` until it is done."""
        rest = self._run_now(effects)
        if not rest:
            return
        if sock is not None:
            sock.pause()
        self._spawn(self._finish(sock, rest))

    async def _finish(self, sock: BrokerSocket | None, effects: list[Effect]) -> None:
        try:
            await self._run(effects)
        finally:
            if sock is not None:
                self._resume(sock)

    def _resume(self, sock: BrokerSocket) -> None:
        sock.resume()
        while sock.backlog and not sock.busy:
            self.message(sock, sock.backlog.popleft())

    # ------------------------------------------------------------------------ effects
    def _run_now(self, effects: list[Effect]) -> list[Effect]:
        """Run effects in order while none needs to wait; return the rest (from the first that
        waits on the store: a claim, a drain, a sweep)."""
        for index, effect in enumerate(effects):
            kind = type(effect)
            if kind is Send:
                self._send(effect)  # type: ignore[arg-type]
            elif kind is Forward:
                message = effect.message  # type: ignore[union-attr]
                self.core.forwarded(message, self.store.submit(message, self.clock()))
            elif kind is Log:
                _log(effect.event, **dict(effect.fields))  # type: ignore[union-attr]
            elif kind is Close:
                self._close(effect.conn, effect.code)  # type: ignore[union-attr]
            elif kind is Release or kind is Refresh:
                self._spawn(self._background(effect))  # nothing after it depends on its answer
            else:
                return effects[index:]
        return []

    async def _run(self, effects: list[Effect]) -> None:
        """Run effects in order, waiting on the store where needed; an answer's effects run
        before the rest."""
        pending = effects
        while pending:
            pending = self._run_now(pending)
            if not pending:
                return
            effect, rest = pending[0], pending[1:]
            try:
                pending = await self._wait(effect) + rest
            except P2PNetworkError as exc:
                _log("store.error", effect=type(effect).__name__, error=str(exc))
                pending = rest

    async def _background(self, effect: Effect) -> None:
        try:
            await self._wait(effect)
        except P2PNetworkError as exc:
            _log("store.error", effect=type(effect).__name__, error=str(exc))

    async def _wait(self, effect: Effect) -> list[Effect]:
        if isinstance(effect, Claim):
            try:
                outcome = await self.store.claim(effect.peer_id, effect.token, self.clock())
            except P2PNetworkError as exc:
                _log("store.error", effect="Claim", error=str(exc))
                return self.core.claim_failed(effect.conn)
            return self.core.claimed(effect.conn, outcome, self.clock())
        if isinstance(effect, Drain):
            return self.core.queued(effect.conn, await self.store.drain(effect.peer_id))
        if isinstance(effect, SweepQueues):
            return self.core.expired(await self.store.take_expired(effect.cutoff))
        if isinstance(effect, Release):
            await self.store.release(effect.peer_id, effect.token, effect.clear_queue)
        elif isinstance(effect, Refresh):
            await self.store.refresh(effect.peer_ids)
        return []

    def _send(self, effect: Send) -> None:
        if (not self._enqueue(effect.conn, effect.text) and effect.src is not None
                and effect.dst is not None):
            self._run_now_or_spawn(self.core.undeliverable(effect.src, effect.dst))

    def _run_now_or_spawn(self, effects: list[Effect]) -> None:
        rest = self._run_now(effects)
        if rest:
            self._spawn(self._run(rest))

    def _enqueue(self, conn: int, text: str) -> bool:
        """Queue one text frame; the frames one read produced leave in one write per socket when
        that read is handled (:meth:`flush`), others at the end of the loop iteration (a send
        syscall per frame was most of the relay cost)."""
        sock = self._sockets.get(conn)
        if sock is None or not sock.open:
            return False
        queue = self._outq.get(conn)
        if queue is None:
            self._outq[conn] = [_text_frame(text)]
        else:
            queue.append(_text_frame(text))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return True

    def flush(self) -> None:
        """Write every queued frame now (a socket's read is done: its frames need not wait for the
        rest of the loop iteration, where other sockets' reads could be delayed by preemption)."""
        if self._outq:
            self._flush()

    def _flush(self, only: int | None = None) -> None:
        if only is None:
            self._flush_scheduled = False
            pending, self._outq = self._outq, {}
        else:
            frames = self._outq.pop(only, None)
            pending = {only: frames} if frames else {}
        for conn, frames in pending.items():
            sock = self._sockets.get(conn)
            if sock is None or not sock.open or sock.transport is None:
                continue
            transport = sock.transport
            transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
            if transport.get_write_buffer_size() > SLOW_CONSUMER_BYTES:
                _log("client.slow", conn=conn, buffered=transport.get_write_buffer_size())
                self._close(conn, 1008)

    def _close(self, conn: int, code: int) -> None:
        self._flush(only=conn)  # what the core sent before closing (ERROR, ID-TAKEN) goes first
        sock = self._sockets.get(conn)
        if sock is not None:
            sock.close(code)

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
        self.flush()  # one publication's frames leave now, as a socket read's do

    async def _kick(self, peer_id: str, token: str) -> None:
        await self._run(self.core.kick(peer_id, token))


def _query(raw: str) -> dict[str, str]:
    """The WebSocket URL's parameters, first value wins (as npm ``peer``'s ``url.parse``)."""
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
