"""The HTTP side: aiohttp on 127.0.0.1, the verified page files from memory, one WebSocket.

Routes (every one behind :class:`~.access.Access`; docs/webui.md, "Access"):

=====================  ==========  ================================================================
``GET /``, ``/NAME``   public      the verified page files (:mod:`.assets`), nothing else
``POST /api/session``  secret      ``{"secret": ...}`` -> the session cookie (HttpOnly, Strict)
                                   and ``{"capability": ...}`` for this page
``GET /ws``            session     the WebSocket: snapshots out, requests (``{"op": ...}``) in
                                   (1:1 chat, files, groups: every change goes this way)
``GET /api/qr.svg``    session     our invite link as a QR code (segno)
``POST /api/upload``   session     a file to offer (``?peer=&name=&fast=``), streamed to disk
``GET /api/file/N``    session     received file number N (of the snapshot), decrypted, downloaded
=====================  ==========  ================================================================

"session" is the cookie *and* the page's capability of the same session (the
``X-Enkrypted-Capability`` header; on the WebSocket a ``Sec-WebSocket-Protocol`` entry).

Every response carries a strict Content-Security-Policy (no inline script, no ``eval``, Trusted
Types required, ``connect-src 'self'``), ``nosniff``, no referrer, no framing, no caching.
"""

from __future__ import annotations

__all__ = ["CSP", "MAX_UPLOAD_BYTES", "WebServer"]

import asyncio
import contextlib
import io
import json
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from aiohttp import WSMsgType, web

from enkrypted_shell.contracts import ContractError
from enkrypted_ui_cli.errors import UiError

from .access import (
    CAPABILITY_HEADER,
    COOKIE,
    PROTOCOL,
    Access,
    capability_from_protocols,
)
from .assets import INDEX, VerifiedAssets
from .chat import WebChat
from .text import one_line
from .view import snapshot

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
MAX_UPLOAD_BYTES: Final = 2 * 1024**3
MAX_WS_MESSAGE: Final = 256 * 1024
MAX_SOCKETS: Final = 8
PUSH_EVERY_S: Final = 0.1
_UNSAFE_NAME: Final = re.compile(r"[/\\:*?\"<>|]")


class WebServer:
    """One run of the web chat on ``access.port``."""

    def __init__(
        self, chat: WebChat, assets: VerifiedAssets, access: Access, scratch: Path
    ) -> None:
        self.chat, self.assets, self.access, self.scratch = chat, assets, access, scratch
        self.sockets: set[web.WebSocketResponse] = set()
        self._push_pending = False
        self._last_push = 0.0
        self.stopped = asyncio.Event()
        chat.changed = self.push

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.on_response_prepare.append(_harden)
        app.router.add_post("/api/session", self._session)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/api/qr.svg", self._qr)
        app.router.add_post("/api/upload", self._upload)
        app.router.add_get(r"/api/file/{index:\d{1,4}}", self._download)
        app.router.add_get("/", self._asset)
        app.router.add_get(r"/{name:[A-Za-z0-9._-]{1,64}}", self._asset)
        return app

    # -------------------------------------------------------------------------------- guard
    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        public = request.path == "/" or (
            request.path.count("/") == 1 and not request.path.startswith("/ws")
        )
        websocket = request.path == "/ws"
        verdict = self.access.check(
            "WEBSOCKET" if websocket else request.method,
            request.headers.get("Host"),
            request.headers.get("Origin"),
            cookie=request.cookies.get(COOKIE),
            capability=(
                capability_from_protocols(request.headers.get("Sec-WebSocket-Protocol"))
                if websocket else request.headers.get(CAPABILITY_HEADER)
            ),
            needs_session=not public and request.path != "/api/session",
        )
        if not verdict.allowed:
            return web.Response(status=verdict.status, text=f"{verdict.reason}\n")
        response: web.StreamResponse = await handler(request)
        return response

    # ------------------------------------------------------------------------------- routes
    async def _asset(self, request: web.Request) -> web.Response:
        asset = self.assets.by_name.get(request.match_info.get("name", INDEX))
        if asset is None:
            raise web.HTTPNotFound(text="not one of the verified page files\n")
        return web.Response(
            body=asset.body, headers={"Content-Type": asset.content_type, "ETag": asset.sha256}
        )

    async def _session(self, request: web.Request) -> web.Response:
        try:
            offered = (await request.json()).get("secret")
        except (ValueError, AttributeError):
            offered = None
        grant = (
            self.access.exchange(offered, request.cookies.get(COOKIE))
            if isinstance(offered, str) else None
        )
        if grant is None:
            return web.Response(status=403, text="wrong secret: open the URL the chat printed\n")
        response = web.json_response({"capability": grant.capability})
        response.set_cookie(COOKIE, grant.session, httponly=True, samesite="Strict", path="/")
        return response

    async def _qr(self, request: web.Request) -> web.Response:
        import segno  # only when the connect panel is opened

        invite = snapshot(self.chat.model, now=time.time(), files=False)["me"]["invite"]
        out = io.BytesIO()
        segno.make(invite or self.chat.model.local_id, error="m").save(
            out, kind="svg", scale=6, border=2, xmldecl=False, dark="#000", light="#fff"
        )
        return web.Response(body=out.getvalue(), content_type="image/svg+xml")

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        if len(self.sockets) >= MAX_SOCKETS:
            raise web.HTTPServiceUnavailable(text="too many pages open\n")
        ws = web.WebSocketResponse(
            max_msg_size=MAX_WS_MESSAGE, heartbeat=30, protocols=(PROTOCOL,)
        )
        await ws.prepare(request)
        self.sockets.add(ws)
        try:
            await ws.send_str(self._state())
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    break
                try:
                    request_doc = json.loads(message.data)
                except ValueError:
                    request_doc = None
                if isinstance(request_doc, dict) and request_doc.get("op") == "quit":
                    self.stopped.set()
                elif isinstance(request_doc, dict):
                    self.chat.handle(request_doc)
        finally:
            self.sockets.discard(ws)
        return ws

    async def _upload(self, request: web.Request) -> web.Response:
        peer = request.query.get("peer", "")
        name = _safe_name(request.query.get("name", ""))
        fast = request.query.get("fast") == "1"
        size = request.content_length
        if size is None or size > MAX_UPLOAD_BYTES:
            return web.Response(status=413, text=f"a file up to {MAX_UPLOAD_BYTES} bytes\n")
        folder = self.scratch / secrets.token_hex(8)
        folder.mkdir(mode=0o700)
        path = folder / name
        written = 0
        with path.open("wb") as out:
            async for block in request.content.iter_chunked(1 << 20):
                written += len(block)
                if written > size:
                    break
                await asyncio.to_thread(out.write, block)
        if written != size:
            shutil.rmtree(folder, ignore_errors=True)
            return web.Response(status=400, text="the upload was cut short\n")
        try:
            await self.chat.send_file(peer, path, name, fast)
        except (UiError, ContractError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return web.Response(status=409, text=f"{exc}\n")
        return web.Response(status=202, text="offered\n")

    async def _download(self, request: web.Request) -> web.StreamResponse:
        stored = self.chat.model.files.stored
        index = int(request.match_info["index"])
        if index >= len(stored):
            raise web.HTTPNotFound(text="no such received file\n")
        folder = Path(tempfile.mkdtemp(dir=self.scratch))
        try:
            path = self.chat.export(stored[index].id, folder)
            body = await asyncio.to_thread(path.read_bytes)
        except (UiError, ContractError, OSError) as exc:
            return web.Response(status=409, text=f"cannot export: {exc}\n")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        name = _safe_name(stored[index].name)
        return web.Response(
            body=body,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f"attachment; filename*=UTF-8''{_quote(name)}",
            },
        )

    # -------------------------------------------------------------------------------- push
    def _state(self) -> str:
        doc = snapshot(self.chat.model, now=time.time(), files=self.chat.files is not None,
                       groups=self.chat.groups)
        return json.dumps(doc, ensure_ascii=False)

    def push(self) -> None:
        """A new snapshot to every page, at most every ``PUSH_EVERY_S`` (progress is chatty)."""
        if self._push_pending:
            return
        self._push_pending = True
        wait = max(0.0, self._last_push + PUSH_EVERY_S - time.monotonic())
        asyncio.get_running_loop().call_later(wait, self._flush)

    def _flush(self) -> None:
        self._push_pending = False
        self._last_push = time.monotonic()
        if not self.sockets:
            return
        state = self._state()
        for ws in list(self.sockets):
            if not ws.closed:
                asyncio.get_running_loop().create_task(_send_quietly(ws, state))


async def _send_quietly(ws: web.WebSocketResponse, text: str) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(text)


async def _harden(request: web.Request, response: web.StreamResponse) -> None:
    for key, value in HEADERS.items():
        response.headers[key] = value


def _safe_name(raw: str) -> str:
    """A file name to write or offer: one line, no path or shell-special characters."""
    name = _UNSAFE_NAME.sub("_", one_line(raw, 120)).lstrip(". ")
    return name or "file.bin"


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (``port`` 0: a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    sock.setblocking(False)
    return sock
