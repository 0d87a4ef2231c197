"""Run a p2p plugin command the way the shell does after a verified load, without installing
wheels: crypto service first (the crypto plugin's hook), then the p2p plugin's transport hook
given that crypto service, then the p2p plugin's commands. The real shell path is covered by the
e2e test (test_chat_processes.py::test_listen_and_send_through_the_real_shell).

    python -m tests.p2p.chat_peer listen --broker ws://127.0.0.1:PORT/ --loopback

``stateful`` is a test peer for the restart test: an :class:`EndpointChat` on a WebRTC endpoint
registered as ``--id``, its identity and sessions kept in ``--state-dir`` (a directory the *test*
owns in its tmp dir; the sessions go through a file-backed stand-in of the profile store, the same
``AppContext.store`` path the encrypted profile store takes, and are also given back as
``saved=``).  It prints the chat events as JSON lines, dials ``--dial`` if given, and exits after
``--count`` messages:

    python -m tests.p2p.chat_peer stateful --broker URL --id bob --state-dir DIR --count 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p import plugin as p2p
from enkrypted_shell.contracts import AppContext


class FileStore:
    """The store contract 1.0 over one JSON file (tests only: the real store encrypts)."""

    namespace = "slot:p2p"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tables: dict[str, dict[str, str]] = (
            json.loads(path.read_text()) if path.is_file() else {})

    def get(self, table: str, key: bytes) -> bytes | None:
        value = self.tables.get(table, {}).get(key.hex())
        return None if value is None else bytes.fromhex(value)

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.tables.setdefault(table, {})[key.hex()] = value.hex()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.tables))
        os.replace(tmp, self.path)  # a kill never leaves half a file

    def delete(self, table: str, key: bytes) -> bool:
        return self.tables.get(table, {}).pop(key.hex(), None) is not None

    def items(self, table: str) -> list[tuple[bytes, bytes]]:
        return sorted((bytes.fromhex(k), bytes.fromhex(v))
                      for k, v in self.tables.get(table, {}).items())

    def append(self, stream: bytes, value: bytes) -> int:
        raise NotImplementedError

    def read(self, stream: bytes, *, after: int = 0, limit: int | None = None
             ) -> list[tuple[int, bytes]]:
        raise NotImplementedError


async def stateful(args: argparse.Namespace) -> None:
    from enkrypted_p2p.chat import EndpointChat, ReconnectPolicy
    from enkrypted_p2p.chat._service import SESSIONS_TABLE
    from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings
    from enkrypted_shell.contracts import ChatMessage, PeerStateChanged, SessionEstablished

    state = Path(args.state_dir)
    crypto = enkrypted_crypto_service(AppContext(state))
    identity_file = state / "identity"
    if not identity_file.is_file():
        identity_file.write_bytes(crypto.new_identity())
    store = FileStore(state / "sessions.json")
    saved = {k.decode(): v for k, v in store.items(SESSIONS_TABLE)}
    context = AppContext(state, store=store)  # type: ignore[arg-type]
    endpoint = await WebRTCEndpoint.open(WebRTCSettings.loopback(args.broker), args.id)
    chat = await EndpointChat.open(endpoint, crypto, identity_file.read_bytes(), context=context,
                                   saved=saved, reconnect=ReconnectPolicy(base_s=0.2,
                                                                          max_delay_s=1.0))

    def emit(**fields: object) -> None:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()

    emit(event="listening", peer_id=chat.local_id, fingerprint=chat.fingerprint)
    if args.dial:
        info = await chat.connect(args.dial, 30)
        emit(event="ready", peer=info.peer_id, resumed=info.resumed)
    received = 0
    async for event in chat.events():
        if isinstance(event, SessionEstablished) and not args.dial:
            emit(event="ready", peer=event.peer_id, resumed=event.resumed)
        elif isinstance(event, ChatMessage):
            emit(event="message", peer=event.peer_id, messageId=event.message_id, text=event.text)
            received += 1
            if received >= args.count:
                break
        elif isinstance(event, PeerStateChanged):
            emit(event="state", peer=event.peer_id, state=event.state)
    await asyncio.sleep(0.3)  # the last receipt leaves
    await chat.aclose()


def main(argv: list[str]) -> None:
    if argv[:1] == ["stateful"]:
        parser = argparse.ArgumentParser(prog="chat_peer stateful")
        parser.add_argument("--broker", required=True)
        parser.add_argument("--id", required=True)
        parser.add_argument("--state-dir", required=True)
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--dial", default=None)
        asyncio.run(asyncio.wait_for(stateful(parser.parse_args(argv[1:])), 300))
        return
    home = Path(tempfile.mkdtemp(prefix="enkrypted-chat-"))
    crypto = enkrypted_crypto_service(AppContext(home))
    p2p.enkrypted_transport_service(AppContext(home), crypto)
    commands = {c.name: c for c in p2p.enkrypted_cli_commands(AppContext(home))}
    commands[argv[0]].main(args=argv[1:], prog_name=f"enkrypted {argv[0]}")


if __name__ == "__main__":
    main(sys.argv[1:])
