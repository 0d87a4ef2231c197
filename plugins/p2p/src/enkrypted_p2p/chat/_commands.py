"""``enkrypted listen``, ``enkrypted send PEER TEXT...`` and ``enkrypted chat-line PEER``:
encrypted chat between two processes, over :class:`~._service.EndpointChat` on a WebRTC endpoint.

All print JSON lines on stdout (one object per line, ``event`` first; what scripts read):
``listening`` (with our ``peer_id``), ``ready`` (peer, profile, layers, peer fingerprint, safety
number, resumed), ``message`` (peer, messageId, text), ``sent`` / ``receipt`` (messageId),
``reconnecting`` / ``closed`` (peer, reason), ``problem`` (peer, kind, message), ``error``;
with files (``listen --accept-files DIR``, ``sendfile``): ``file-offered``, ``file-received``
(the exported path, sha256, protection), ``file-sent``, ``file-failed``, ``progress``;
with groups (``group ...``, :mod:`._group_commands`): ``group-message`` (group, messageId, peer,
fingerprint, text, epoch), ``group-receipt``, ``group-membership`` (group, name, epoch, members,
added, removed, committer), ``group-renamed``, ``group-forked``, ``group-left``,
``group-problem``.  With an unlocked profile ``listen`` also serves the profile's ``group``
commands (:mod:`._control`).
``--json`` is the default; ``--plain`` prints lines for people instead.  ``sendfile`` and
``files list|export`` are in :mod:`._file_commands`.

**Where the crypto service comes from.** Plugins never import each other. The shell creates the
crypto service first and hands it to this plugin's ``enkrypted_transport_service(context,
crypto)`` hook (the wiring table ``SLOT_SERVICES``); the plugin keeps what it was given in
:class:`Wiring`, and these commands - which the shell runs only after that verified load - use it.
The p2p ``AppContext`` it was given carries the ``[plugins.p2p]`` settings (``broker_url``, ICE
servers, host addresses), the shell's clock, the P8 limits and (when a profile is unlocked) the
store where :class:`EndpointChat` keeps its sessions.

The identity is the unlocked profile's (``AppContext.identity``, with ``--profile NAME``: the one
``enkrypted id`` shows, so peers see the same fingerprint every run); without a profile it is a
fresh, ephemeral one per run.
"""

from __future__ import annotations

__all__ = ["Wiring", "chat_commands"]

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

import click

from enkrypted_shell.contracts import (
    ChatEvent,
    ChatMessage,
    ChatProblem,
    ChatReceipt,
    ContractError,
    FileCompleted,
    FileFailed,
    FileOffered,
    GroupChatForked,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatProblem,
    GroupChatReceipt,
    GroupChatRenamed,
    PeerStateChanged,
    ProfileStore,
    SessionEstablished,
)

from .._wiring import Wiring
from ..errors import P2PError
from ..webrtc import WebRTCEndpoint, WebRTCSettings, client_config
from ..webrtc._config import LOOPBACK
from ._control import ControlServer
from ._files import NO_STORE
from ._service import EndpointChat

BROKER_ENV = "ENKRYPTED_BROKER"
_PLAIN: list[bool] = [False]


_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""What a peer's text must not bring raw to the terminal: controls (escape sequences), bidi
overrides, and lone surrogates (a strict UTF-8 stdout cannot write them: the command would die)."""


def _escaped(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _emit(event: str, **fields: Any) -> None:
    if _PLAIN[0]:
        line = fields.get("text") if event == "message" else None
        text = f"{fields.get('peer', '')}> {line}" if line is not None else \
            f"[{event}] " + " ".join(f"{k}={v}" for k, v in fields.items())
        sys.stdout.write(_escaped(text) + "\n")
    else:  # only inside JSON strings: the escapes keep the same JSON value
        sys.stdout.write(_escaped(json.dumps({"event": event, **fields}, ensure_ascii=False))
                         + "\n")
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


def _ready_fields(info: SessionEstablished) -> dict[str, Any]:
    return {"peer": info.peer_id, "profile": info.profile, "layers": list(info.layers),
            "fingerprint": info.peer_fingerprint, "safety_number": info.safety_number,
            "resumed": info.resumed}


def _print_event(event: ChatEvent) -> None:
    """The JSON line of one chat event (connecting/handshaking/ready states are not printed)."""
    if isinstance(event, SessionEstablished):
        _emit("ready", **_ready_fields(event))
    elif isinstance(event, ChatMessage):
        _emit("message", peer=event.peer_id, messageId=event.message_id, text=event.text)
    elif isinstance(event, ChatReceipt):
        _emit("receipt", peer=event.peer_id, messageId=event.message_id)
    elif isinstance(event, PeerStateChanged) and event.state in ("reconnecting", "disconnected"):
        _emit("closed" if event.state == "disconnected" else "reconnecting",
              peer=event.peer_id, reason=event.reason)
    elif isinstance(event, ChatProblem):
        _emit("problem", peer=event.peer_id, kind=event.kind, message=event.message)
    elif isinstance(event, FileOffered):
        _emit("file-offered", peer=event.peer_id, transferId=event.transfer_id, name=event.name,
              size=event.size, sha256=event.sha256, protection=protection(event.fast))
    elif isinstance(event, FileFailed):
        _emit("file-failed", peer=event.peer_id, transferId=event.transfer_id,
              outgoing=event.outgoing, reason=event.reason)
    else:
        _print_group_event(event)


def _print_group_event(event: ChatEvent) -> None:
    if isinstance(event, GroupChatMessage):
        _emit("group-message", group=event.group_id, messageId=event.message_id,
              peer=event.peer_id, fingerprint=event.fingerprint, text=event.text,
              epoch=event.epoch)
    elif isinstance(event, GroupChatReceipt):
        _emit("group-receipt", group=event.group_id, messageId=event.message_id,
              peer=event.peer_id, fingerprint=event.fingerprint)
    elif isinstance(event, GroupChatMembership):
        _emit("group-membership", group=event.group_id, name=event.name, epoch=event.epoch,
              members=[{"peer": m.peer_id, "fingerprint": m.fingerprint} for m in event.members],
              added=list(event.added), removed=list(event.removed), committer=event.committer)
    elif isinstance(event, GroupChatRenamed):
        _emit("group-renamed", group=event.group_id, name=event.name, by=event.by)
    elif isinstance(event, GroupChatForked):
        _emit("group-forked", group=event.group_id, epoch=event.epoch, peer=event.peer_id,
              reason=event.reason, rejoining=event.rejoining)
    elif isinstance(event, GroupChatLeft):
        _emit("group-left", group=event.group_id, epoch=event.epoch, by=event.by)
    elif isinstance(event, GroupChatProblem):
        _emit("group-problem", group=event.group_id, kind=event.kind, message=event.message)


def protection(fast: bool) -> str:
    """How a transfer is protected, as ``--json`` shows it (the fast path is reduced)."""
    return "reduced (fast path: one AES-256-GCM layer)" if fast else "standard (full session)"


def _received(chat: EndpointChat, event: FileCompleted, accept_dir: Path | None) -> None:
    fields: dict[str, Any] = {"peer": event.peer_id, "transferId": event.transfer_id,
                              "name": event.name, "size": event.size, "sha256": event.sha256,
                              "protection": protection(event.fast)}
    if accept_dir is not None:
        try:
            fields["path"] = str(chat.export_file(event.transfer_id, accept_dir))
        except (P2PError, OSError) as exc:
            _emit("problem", peer=event.peer_id, kind="local", message=f"export failed: {exc}")
    _emit("file-received", **fields)


async def _open(wiring: Wiring, settings: WebRTCSettings, peer_id: str | None = None, *,
                accept_files: bool = False) -> EndpointChat:
    identity = getattr(wiring.context, "identity", None)
    if not isinstance(identity, bytes) or not identity:
        identity = wiring.crypto.new_identity()  # no unlocked profile: an ephemeral identity
    endpoint = await WebRTCEndpoint.open(settings, peer_id)
    return await EndpointChat.open(endpoint, wiring.crypto, identity, context=wiring.context,
                                   accept_files=accept_files)


async def listen(wiring: Wiring, settings: WebRTCSettings, peer_id: str | None,
                 count: int | None, accept_dir: Path | None = None) -> None:
    chat = await _open(wiring, settings, peer_id, accept_files=accept_dir is not None)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    store = getattr(wiring.context, "store", None)
    control = ControlServer(chat, cast(ProfileStore, store)) if store is not None else None
    if control is not None:
        await control.start()  # the profile's `group` commands reach this process
    _emit("listening", peer_id=chat.local_id)

    async def printer() -> None:
        received = 0
        async for event in chat.events():
            if isinstance(event, ChatReceipt):
                continue
            if isinstance(event, FileCompleted) and not event.outgoing:
                _received(chat, event, accept_dir)
            else:
                _print_event(event)
            if isinstance(event, ChatMessage | FileCompleted):
                received += 1
                if count is not None and received >= count:
                    done.set()

    task = asyncio.ensure_future(printer())
    try:
        await done.wait()
        await asyncio.sleep(0.2)  # let the last receipt leave before the channel closes
    finally:
        task.cancel()
        if control is not None:
            await control.aclose()
        await chat.aclose()


async def _await_receipts(chat: EndpointChat, waiting: set[str], timeout: float,
                          more: asyncio.Event | None = None,
                          shown: SessionEstablished | None = None) -> None:
    """Print events until every id in ``waiting`` has its receipt (and ``more`` is unset);
    ``shown`` is the session ``connect`` returned, already printed (not printed twice)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            async for event in chat.events():
                if event != shown:
                    _print_event(event)
                if isinstance(event, ChatReceipt):
                    waiting.discard(event.message_id)
                if not waiting and (more is None or not more.is_set()):
                    return


async def send(wiring: Wiring, settings: WebRTCSettings, peer: str, texts: tuple[str, ...],
               receipt_timeout: float, peer_id: str | None = None) -> int:
    """Send ``texts`` in order; 0 once every receipt arrived, 1 if some did not in time."""
    chat = await _open(wiring, settings, peer_id)
    try:
        established = await chat.connect(peer)
        _emit("ready", **_ready_fields(established))
        waiting = set()
        for text in texts:
            message_id = await chat.send_text(peer, text)
            waiting.add(message_id)
            _emit("sent", peer=peer, messageId=message_id)
        await _await_receipts(chat, waiting, receipt_timeout, shown=established)
        return 0 if not waiting else 1
    finally:
        await chat.aclose()


async def chat_line(wiring: Wiring, settings: WebRTCSettings, peer: str,
                    receipt_timeout: float, peer_id: str | None = None) -> int:
    """stdin lines -> messages to ``peer``; its messages -> stdout; at EOF wait for receipts."""
    chat = await _open(wiring, settings, peer_id)
    try:
        established = await chat.connect(peer)
        _emit("ready", **_ready_fields(established))
        waiting: set[str] = set()
        typing = asyncio.Event()
        typing.set()
        printer = asyncio.ensure_future(_await_receipts(chat, waiting, float("inf"), typing,
                                                        shown=established))
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            text = line.rstrip("\n")
            if text:
                message_id = await chat.send_text(peer, text)
                waiting.add(message_id)
                _emit("sent", peer=peer, messageId=message_id)
        typing.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(printer, receipt_timeout if waiting else 0.2)
        return 0 if not waiting else 1
    finally:
        await chat.aclose()


def _run(main: Callable[[], Any]) -> Any:
    try:
        return asyncio.run(main())
    except (P2PError, ContractError) as exc:
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
    receipt_option = click.option("--receipt-timeout", type=float, default=30.0,
                                  show_default=True)
    json_option = click.option("--json/--plain", "as_json", default=True, show_default=True,
                               help="JSON lines for scripts (default), or lines for people.")
    id_option = click.option("--id", "peer_id", default=None,
                             help="Peer id to register (else the broker's); a stable id lets a "
                                  "profile's kept sessions resume without a new handshake.")

    @click.command(name="listen", help="Wait for peers; print our peer id and their messages "
                                       "as JSON lines.")
    @broker_option
    @loopback_option
    @id_option
    @click.option("--count", type=int, default=None,
                  help="Exit after this many messages and received files.")
    @click.option("--accept-files", "accept_dir", default=None, metavar="DIR",
                  type=click.Path(file_okay=False, dir_okay=True, writable=True, path_type=Path),
                  help="Accept every offered file (kept encrypted in the profile) and export a "
                       "copy into DIR once verified. Needs an unlocked profile. Default: offers "
                       "are printed and declined by nobody (they wait).")
    @json_option
    def listen_command(broker: str | None, loopback: bool, peer_id: str | None,
                       count: int | None, accept_dir: Path | None, as_json: bool) -> None:
        _PLAIN[0] = not as_json
        wiring = wiring_or_fail()
        settings = _settings(wiring, broker, loopback)
        if accept_dir is not None:
            if getattr(wiring.context, "store", None) is None:
                _emit("error", error="FileUsageError", message=NO_STORE)
                sys.exit(2)
            accept_dir.mkdir(parents=True, exist_ok=True)
        _run(lambda: listen(wiring, settings, peer_id, count, accept_dir))

    @click.command(name="send", help="Connect to PEER, send each TEXT encrypted, wait for "
                                     "receipts (JSON lines).")
    @broker_option
    @loopback_option
    @receipt_option
    @json_option
    @id_option
    @click.argument("peer")
    @click.argument("texts", nargs=-1, required=True)
    def send_command(broker: str | None, loopback: bool, receipt_timeout: float, as_json: bool,
                     peer_id: str | None, peer: str, texts: tuple[str, ...]) -> None:
        _PLAIN[0] = not as_json
        wiring = wiring_or_fail()
        settings = _settings(wiring, broker, loopback)
        sys.exit(_run(lambda: send(wiring, settings, peer, texts, receipt_timeout, peer_id)))

    @click.command(name="chat-line", help="Chat with PEER line by line: each stdin line is sent "
                                          "encrypted; its messages are printed (JSON lines).")
    @broker_option
    @loopback_option
    @receipt_option
    @json_option
    @id_option
    @click.argument("peer")
    def chat_line_command(broker: str | None, loopback: bool, receipt_timeout: float,
                          as_json: bool, peer_id: str | None, peer: str) -> None:
        _PLAIN[0] = not as_json
        wiring = wiring_or_fail()
        settings = _settings(wiring, broker, loopback)
        sys.exit(_run(lambda: chat_line(wiring, settings, peer, receipt_timeout, peer_id)))

    from ._file_commands import file_commands
    from ._group_commands import group_commands

    return [listen_command, send_command, chat_line_command,
            *file_commands(wiring_or_fail, broker_option, loopback_option),
            *group_commands(wiring_or_fail)]
