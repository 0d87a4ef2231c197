"""``enkrypted --ui ui-web chat``: the web chat on 127.0.0.1 until Ctrl+C (or Quit on the page).

It needs what the TUI needs (an unlocked profile, a p2p 2.0 chat service; checked by the shared
``chat_inputs``) plus the verified page files the shell hands over (:mod:`.assets`).  It opens the
chat service resuming the sessions kept from the last run, serves the page, prints the URL (the
per-start secret in its fragment), opens a browser where one is available (``webbrowser``; not
with ``--no-browser`` or ``ENKRYPTED_NO_BROWSER=1``), and on exit saves each peer's session and
closes the service, exactly as the TUI does.
"""

from __future__ import annotations

__all__ = ["run_web", "web_commands"]

import asyncio
import contextlib
import os
import signal
import tempfile
import webbrowser
from collections.abc import Callable
from pathlib import Path

import click
from aiohttp import web

from enkrypted_shell.contracts import AppContext, ChatService, ContractError, TransportServiceV2
from enkrypted_ui_cli.chatstore import ChatStore
from enkrypted_ui_cli.command import chat_inputs
from enkrypted_ui_cli.invite import Target, check_peer_id, parse_target

from .access import Access
from .assets import VerifiedAssets, check_assets, record_rows
from .chat import WebChat
from .server import WebServer, bind_loopback


async def run_web(
    transport: TransportServiceV2,
    identity: bytes,
    store: ChatStore,
    assets: VerifiedAssets,
    *,
    peer_id: str | None = None,
    target: Target | None = None,
    port: int = 0,
    announce: Callable[[str], None] = click.echo,
    open_browser: bool = False,
) -> None:
    """Open the chat service, serve the page until stopped, save sessions, close."""
    service = await transport.open_chat(
        identity, None, peer_id=peer_id, saved=store.saved_sessions()
    )
    try:
        with tempfile.TemporaryDirectory(prefix="enkrypted-web-") as scratch:
            await _serve(service, store, assets, Path(scratch), target, port, announce,
                         open_browser)
    finally:
        try:
            for peer in list(service.peers()):
                with contextlib.suppress(ContractError):
                    store.save_session(peer, service.export_state(peer))
        finally:
            await service.aclose()


async def _serve(
    service: ChatService, store: ChatStore, assets: VerifiedAssets, scratch: Path,
    target: Target | None, port: int, announce: Callable[[str], None], open_browser: bool,
) -> None:
    chat = WebChat(service, store)
    sock = bind_loopback(port)
    access = Access(sock.getsockname()[1])
    server = WebServer(chat, assets, access, scratch)
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, server.stopped.set)
    pump = loop.create_task(chat.pump())
    try:
        await web.SockSite(runner, sock).start()
        announce(f"enkrypted web chat for {service.local_id}: open {access.url}")
        announce("(Ctrl+C to stop; the URL holds this run's secret: do not share it)")
        if open_browser:
            loop.run_in_executor(None, webbrowser.open, access.url)
        if target is not None:
            chat.dial(target)
        await server.stopped.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        await chat.aclose()
        await runner.cleanup()
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, ContractError):
            await pump


def web_commands(context: AppContext, transport: Callable[[], object]) -> list[click.Command]:
    """The ui plugin's commands for ``context``; ``transport()`` is the wired transport service."""

    @click.command("chat")
    @click.option("--peer-id", default=None, help="Ask the broker for this id (else it assigns one).")
    @click.option("--connect", "dial", default=None, metavar="PEER|INVITE",
                  help="Dial a peer id or invite at start.")
    @click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
                  help="Port on 127.0.0.1 (0: a free one).")
    @click.option("--no-browser", is_flag=True, help="Only print the URL.")
    def chat(peer_id: str | None, dial: str | None, port: int, no_browser: bool) -> None:
        """Encrypted chat in your browser, served on 127.0.0.1 from the verified wheel."""
        try:
            target = parse_target(dial) if dial is not None else None
            wanted = check_peer_id(peer_id) if peer_id is not None else None
            assets = check_assets(getattr(context, "assets", {}), record_rows())
            identity, store, service = chat_inputs(context, transport())
            browser = not no_browser and os.environ.get("ENKRYPTED_NO_BROWSER") != "1"
            asyncio.run(run_web(service, identity, store, assets, peer_id=wanted, target=target,
                                port=port, open_browser=browser))
        except ContractError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            raise click.ClickException(f"cannot serve on 127.0.0.1:{port}: {exc}") from exc

    return [chat]
