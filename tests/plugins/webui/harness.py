"""The web chat in-process for tests and screenshots: the server on a scripted chat service
(tests/plugins/ui/fake_chat.py) with the page files of the source tree, checked exactly as the
plugin checks the shell's verified bytes (a RECORD is made for them here)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from enkrypted_shell.contracts import ChatService
from enkrypted_ui_cli.chatstore import ChatStore, MemoryProfileStore
from enkrypted_ui_web.access import Access
from enkrypted_ui_web.assets import FOLDER, check_assets
from enkrypted_ui_web.chat import WebChat
from enkrypted_ui_web.server import WebServer, bind_loopback

ROOT = Path(__file__).resolve().parents[3]
STATIC = ROOT / "plugins/ui_web/src/enkrypted_ui_web/static"


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def source_assets() -> tuple[dict[str, bytes], dict[str, str]]:
    """The page files of the source tree and a RECORD that lists them."""
    given = {p.name: p.read_bytes() for p in sorted(STATIC.iterdir()) if p.is_file()}
    return given, {FOLDER + name: record_hash(body) for name, body in given.items()}


@contextlib.asynccontextmanager
async def running(
    service: ChatService, store: ChatStore | None = None, *, wall: Callable[[], float] | None = None
) -> AsyncIterator[WebServer]:
    """The server on 127.0.0.1 (a free port) and the event pump, stopped on exit."""
    chat = WebChat(service, store or ChatStore(MemoryProfileStore()),
                   **({"wall": wall} if wall else {}))
    sock = bind_loopback()
    server = WebServer(chat, check_assets(*source_assets()), Access(sock.getsockname()[1]),
                       Path(tempfile.mkdtemp(prefix="enk-web-test-")))
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    pump = asyncio.get_running_loop().create_task(chat.pump())
    try:
        yield server
    finally:
        await chat.aclose()
        await runner.cleanup()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
