"""``enkrypted listen`` and ``enkrypted send PEER TEXT...``: encrypted chat between two processes.

Both print JSON lines on stdout (one object per line, ``event`` first): ``listening`` (with our
``peer_id``), ``ready`` (peer, profile, layers, peer fingerprint, safety number), ``message``
(peer, messageId, text), ``receipt`` (messageId), ``closed`` (peer, reason), ``error``.

**Where the crypto service comes from.** Plugins never import each other. The shell creates the
crypto service first and hands it to this plugin's ``enkrypted_transport_service(context,
crypto)`` hook (the wiring table ``SLOT_SERVICES``); the plugin keeps what it was given in
:class:`Wiring`, and these commands - which the shell runs only after that verified load - use it.
The p2p ``AppContext`` it was given carries the ``[plugins.p2p]`` settings (``broker_url``, ICE
servers, host addresses), the shell's clock and the P8 limits.

The identity is a fresh one per run: persisting it (encrypted at rest) is the persistence issue's.
"""

from __future__ import annotations

__all__ = ["Wiring", "chat_commands"]

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from enkrypted_shell.contracts import LinkClosed

from ._wiring import Wiring
from .errors import P2PError
from .session import (
    ChatSession,
    HandshakeError,
    MessageReceived,
    ReceiptReceived,
    SessionReady,
)
from .webrtc import WebRTCEndpoint, WebRTCSettings, client_config
from .webrtc._config import LOOPBACK

BROKER_ENV = "ENKRYPTED_BROKER"


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _settings(wiring: Wiring, broker: str | None, loopback: bool) -> WebRTCSettings:
    base = WebRTCSettings.from_mapping(wiring.context.settings)
    url = broker or os.environ.get(BROKER_ENV)
    signaling = client_config(url) if url else base.signaling
    if loopback:
        return WebRTCSettings(signaling=signaling, ice_servers=base.ice_servers,
                              relay_only=base.relay_only, host_addresses=("127.0.0.1",),
                              remote_networks=LOOPBACK, connect_timeout=base.connect_timeout)
    return WebRTCSettings(signaling=signaling, ice_servers=base.ice_servers,
                          relay_only=base.relay_only, host_addresses=base.host_addresses,
                          remote_networks=base.remote_networks,
                          connect_timeout=base.connect_timeout)


def _ready_fields(peer: str, info: SessionReady) -> dict[str, Any]:
    return {"peer": peer, "profile": info.profile, "layers": list(info.layers),
            "fingerprint": info.peer_fingerprint, "safety_number": info.safety_number}


async def _serve_link(session: ChatSession, wiring: Wiring, counter: list[int], limit: int | None,
                      done: asyncio.Event) -> None:
    try:
        info = await session.start(timeout=wiring.context.limits.handshake_timeout_s)
    except (HandshakeError, LinkClosed) as exc:
        _emit("error", peer=session.peer_id, error=type(exc).__name__, message=str(exc))
        await session.close()
        return
    _emit("ready", **_ready_fields(session.peer_id, info))
    async for event in session.events():
        if isinstance(event, MessageReceived):
            _emit("message", peer=session.peer_id, messageId=event.message_id, text=event.text)
            counter[0] += 1
            if limit is not None and counter[0] >= limit:
                done.set()
        elif isinstance(event, LinkClosed):
            _emit("closed", peer=session.peer_id, reason=str(event),
                  dropped=dict(session.core.dropped))
    await session.close()


async def listen(wiring: Wiring, settings: WebRTCSettings, peer_id: str | None,
                 count: int | None) -> None:
    endpoint = await WebRTCEndpoint.open(settings, peer_id)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    _emit("listening", peer_id=endpoint.local_id)
    counter = [0]
    tasks: set[asyncio.Task[None]] = set()
    identity = wiring.crypto.new_identity()

    async def accept() -> None:
        async for link in endpoint.incoming():
            session = ChatSession(link, wiring.crypto, identity, initiator=False,
                                  clock=wiring.context.clock, limits=wiring.context.limits)
            task = asyncio.ensure_future(_serve_link(session, wiring, counter, count, done))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    acceptor = asyncio.ensure_future(accept())
    try:
        await done.wait()
        await asyncio.sleep(0.2)  # let the last receipt leave before the channel closes
    finally:
        acceptor.cancel()
        for task in list(tasks):
            task.cancel()
        await endpoint.aclose()


async def send(wiring: Wiring, settings: WebRTCSettings, peer: str, texts: tuple[str, ...],
               receipt_timeout: float) -> int:
    """Send ``texts`` in order; 0 once every receipt arrived, 1 if some did not in time."""
    endpoint = await WebRTCEndpoint.open(settings)
    try:
        link = await endpoint.connect(peer)
        session = ChatSession(link, wiring.crypto, wiring.crypto.new_identity(), initiator=True,
                              clock=wiring.context.clock, limits=wiring.context.limits)
        info = await session.start(timeout=wiring.context.limits.handshake_timeout_s)
        _emit("ready", **_ready_fields(peer, info))
        waiting = set()
        for text in texts:
            message_id = await session.send_text(text)
            waiting.add(message_id)
            _emit("sent", peer=peer, messageId=message_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(receipt_timeout):
                async for event in session.events():
                    if isinstance(event, ReceiptReceived) and event.message_id in waiting:
                        waiting.discard(event.message_id)
                        _emit("receipt", peer=peer, messageId=event.message_id)
                        if not waiting:
                            break
        await session.close()
        return 0 if not waiting else 1
    finally:
        await endpoint.aclose()


def _run(main: Callable[[], Any]) -> Any:
    try:
        return asyncio.run(main())
    except (P2PError, HandshakeError, LinkClosed) as exc:
        _emit("error", error=type(exc).__name__, message=str(exc))
        sys.exit(3)


def chat_commands(get_wiring: Callable[[], Wiring | None]) -> list[click.Command]:
    def wiring_or_fail() -> Wiring:
        wiring = get_wiring()
        if wiring is None:
            raise click.UsageError("run this through `enkrypted`: it needs the crypto service "
                                   "the shell wires into the p2p plugin")
        return wiring

    broker_option = click.option("--broker", default=None, metavar="URL",
                                 help=f"ws[s]://host:port/path?key=K (else ${BROKER_ENV}, else "
                                      "[plugins.p2p] broker_url)")
    loopback_option = click.option("--loopback", is_flag=True,
                                   help="ICE on 127.0.0.1 only (one machine, tests).")

    @click.command(name="listen", help="Wait for peers; print our peer id and their messages "
                                       "as JSON lines.")
    @broker_option
    @loopback_option
    @click.option("--id", "peer_id", default=None, help="Peer id to register (else the broker's).")
    @click.option("--count", type=int, default=None, help="Exit after this many messages.")
    def listen_command(broker: str | None, loopback: bool, peer_id: str | None,
                       count: int | None) -> None:
        wiring = wiring_or_fail()
        settings = _settings(wiring, broker, loopback)
        _run(lambda: listen(wiring, settings, peer_id, count))

    @click.command(name="send", help="Connect to PEER, send each TEXT encrypted, wait for receipts.")
    @broker_option
    @loopback_option
    @click.option("--receipt-timeout", type=float, default=30.0, show_default=True)
    @click.argument("peer")
    @click.argument("texts", nargs=-1, required=True)
    def send_command(broker: str | None, loopback: bool, receipt_timeout: float, peer: str,
                     texts: tuple[str, ...]) -> None:
        wiring = wiring_or_fail()
        settings = _settings(wiring, broker, loopback)
        code = _run(lambda: send(wiring, settings, peer, texts, receipt_timeout))
        sys.exit(code)

    return [listen_command, send_command]
