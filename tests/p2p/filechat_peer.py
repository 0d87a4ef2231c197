"""A file-transfer test peer in its own process (tests/p2p/test_filechat_*.py).

``peer``: an :class:`EndpointChat` on a WebRTC endpoint registered as ``--id`` (loopback ICE),
its identity, sessions and received files kept in ``--state-dir`` (a directory the *test* owns)
through the file-backed stand-in of the profile store (``tests.p2p.chat_peer.FileStore``), so a
killed process restarted on the same directory resumes its transfers.  It prints JSON lines:
``listening``, ``ready``, ``offered`` (a file we send), ``progress``, ``file-sent``,
``file-received`` (exported into ``<state-dir>/out``), ``file-failed``, ``message``, ``sent``.

    python -m tests.p2p.filechat_peer peer --broker URL --id bob --state-dir DIR --accept
    python -m tests.p2p.filechat_peer peer --broker URL --id alice --state-dir DIR --dial bob \
        --send FILE [--send-fast FILE ...] [--text-at BYTES] [--exit-after N]

SIGUSR1 closes every live link (the connection dies, the processes and sessions stay).

``cmd``: run a p2p plugin command the way the shell does (crypto hook, transport hook, command)
with an ``AppContext`` whose store is that file-backed store in ``--home``:

    python -m tests.p2p.filechat_peer cmd --home DIR listen --broker URL --accept-files OUT
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_shell.contracts import AppContext
from tests.p2p.chat_peer import FileStore


def vmhwm_kb() -> int:
    """This process's peak resident set (``VmHWM``), in KiB (0 where /proc is missing)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1])


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def peer(args: argparse.Namespace) -> None:
    from enkrypted_p2p.chat import EndpointChat, ReconnectPolicy
    from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings
    from enkrypted_shell.contracts import (
        ChatMessage,
        FileCompleted,
        FileFailed,
        FileProgress,
        PeerStateChanged,
        SessionEstablished,
    )

    state = Path(args.state_dir)
    (state / "out").mkdir(parents=True, exist_ok=True)
    crypto = enkrypted_crypto_service(AppContext(state))
    identity_file = state / "identity"
    if not identity_file.is_file():
        identity_file.write_bytes(crypto.new_identity())
    store = FileStore(state / "store.json")
    context = AppContext(state, store=store)  # type: ignore[arg-type]
    endpoint = await WebRTCEndpoint.open(WebRTCSettings.loopback(args.broker), args.id)
    chat = await EndpointChat.open(
        endpoint, crypto, identity_file.read_bytes(), context=context, accept_files=args.accept,
        reconnect=ReconnectPolicy(base_s=0.2, max_delay_s=1.0, max_attempts=60, window_s=120))
    loop = asyncio.get_running_loop()

    cutting: set[asyncio.Task[None]] = set()

    def cut() -> None:
        for p in list(chat._peers.values()):
            if p.session is not None:
                task = asyncio.ensure_future(p.session.link.close())
                cutting.add(task)
                task.add_done_callback(cutting.discard)
        emit(event="cut")

    loop.add_signal_handler(signal.SIGUSR1, cut)
    emit(event="listening", peer_id=chat.local_id)
    if args.dial:
        info = await chat.connect(args.dial, 60)
        emit(event="ready", peer=info.peer_id, resumed=info.resumed)
    for path, fast in [(p, False) for p in args.send] + [(p, True) for p in args.send_fast]:
        tid = await chat.send_file(args.dial, Path(path), fast=fast)
        emit(event="offered", transferId=tid, path=path, fast=fast)
    done, text_sent = 0, args.text_at is None
    async for event in chat.events():
        if isinstance(event, SessionEstablished) and not args.dial:
            emit(event="ready", peer=event.peer_id, resumed=event.resumed)
        elif isinstance(event, PeerStateChanged):
            emit(event="state", peer=event.peer_id, state=event.state)
        elif isinstance(event, ChatMessage):
            emit(event="message", text=event.text, received_at=event.received_at)
        elif isinstance(event, FileProgress):
            emit(event="progress", transferId=event.transfer_id, bytes=event.bytes,
                 total=event.total, outgoing=event.outgoing)
            if not text_sent and event.outgoing and event.bytes >= args.text_at:
                text_sent = True
                sent_at = time.time()
                await chat.send_text(args.dial, "ping during the transfer")
                emit(event="sent", sent_at=sent_at, at_bytes=event.bytes)
        elif isinstance(event, FileCompleted):
            fields: dict[str, Any] = {"transferId": event.transfer_id, "sha256": event.sha256,
                                      "size": event.size, "fast": event.fast,
                                      "vmhwm_kb": vmhwm_kb()}
            if event.outgoing:
                emit(event="file-sent", **fields)
            else:
                out = chat.export_file(event.transfer_id, state / "out" / event.transfer_id)
                emit(event="file-received", path=str(out), **fields)
            done += 1
        elif isinstance(event, FileFailed):
            emit(event="file-failed", transferId=event.transfer_id, reason=event.reason)
            done += 1
        if args.exit_after and done >= args.exit_after:
            break
    await asyncio.sleep(0.5)  # the last DONE / receipt leaves
    await chat.aclose()


def command(argv: list[str]) -> None:
    from enkrypted_p2p import plugin as p2p

    home = Path(argv[1])
    home.mkdir(parents=True, exist_ok=True)
    context = AppContext(home, store=FileStore(home / "store.json"))  # type: ignore[arg-type]
    crypto = enkrypted_crypto_service(AppContext(home))
    p2p.enkrypted_transport_service(context, crypto)
    commands = {c.name: c for c in p2p.enkrypted_cli_commands(context)}
    commands[argv[2]].main(args=argv[3:], prog_name=f"enkrypted {argv[2]}")


def main(argv: list[str]) -> None:
    if argv[:1] == ["cmd"] and argv[1:2] == ["--home"]:
        command(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="filechat_peer peer")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--dial", default=None)
    parser.add_argument("--accept", action="store_true")
    parser.add_argument("--send", action="append", default=[])
    parser.add_argument("--send-fast", action="append", default=[])
    parser.add_argument("--text-at", type=int, default=None)
    parser.add_argument("--exit-after", type=int, default=0)
    asyncio.run(asyncio.wait_for(peer(parser.parse_args(argv[1:])), 600))


if __name__ == "__main__":
    main(sys.argv[1:])
