"""One member process of ``bench_groups.py``: a real chat service (``EndpointChat``, the p2p
plugin's ``GroupChatService``) over aiortc on loopback through our broker, driven by JSON lines on
stdin and reporting JSON lines on stdout, with every byte its links send counted.

    python benchmarks/groups_peer.py BROKER_URL PEER_ID

Requests (one JSON object a line): ``create`` (``name``), ``invite`` (``group``, ``peer``),
``connect`` (``peer``), ``gsend`` (``group``, ``tag``, ``size``: one group message),
``psend`` (``peers``, ``tag``, ``size``: the same text over each 1:1 session in turn),
``bytes`` (the link counters), ``quit``.  Reports: ``ready``, ``created``, ``connected``,
``sent`` (``at``: ``time.monotonic()`` just before the first send), ``gmsg`` / ``msg`` (a
delivery, ``at`` when the event reached this process), ``grcpt`` / ``rcpt`` (a receipt),
``membership``, ``bytes``, ``error``.  ``time.monotonic()`` is CLOCK_MONOTONIC, one clock for every
process of the machine, so the parent subtracts times taken in different processes.

Wire bytes are the PDUs handed to the data channels (sealed session PDUs: MLS ciphertext inside
the 1:1 session's seal, receipts, acknowledgements), not the SCTP/DTLS/UDP framing below them.
The group heartbeat is set to an hour so that only per-message traffic is counted (at the
default 5 s, status frames are background traffic of every group, whatever is sent).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any


def _say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class MemoryStore:
    """The store contract 1.0 in memory: the chat service persists groups and sessions into it
    (what the real, encrypted store is handed), without disk time in the numbers."""

    namespace = "slot:p2p"

    def __init__(self) -> None:
        self.tables: dict[str, dict[bytes, bytes]] = {}

    def get(self, table: str, key: bytes) -> bytes | None:
        return self.tables.get(table, {}).get(key)

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.tables.setdefault(table, {})[key] = value

    def delete(self, table: str, key: bytes) -> bool:
        return self.tables.get(table, {}).pop(key, None) is not None

    def items(self, table: str) -> list[tuple[bytes, bytes]]:
        return sorted(self.tables.get(table, {}).items())

    def append(self, stream: bytes, value: bytes) -> int:
        raise NotImplementedError

    def read(self, stream: bytes, *, after: int = 0, limit: int | None = None
             ) -> list[tuple[int, bytes]]:
        raise NotImplementedError


class Counter:
    bytes = 0
    pdus = 0


class CountingLink:
    """A link that counts what it sends (everything else forwarded)."""

    def __init__(self, link: Any, counter: Counter) -> None:
        self._link, self._counter = link, counter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._link, name)

    @property
    def peer_id(self) -> str:
        return str(self._link.peer_id)

    @property
    def max_pdu_bytes(self) -> int:
        return int(self._link.max_pdu_bytes)

    @property
    def close_reason(self) -> str | None:
        return self._link.close_reason  # type: ignore[no-any-return]

    async def send(self, pdu: bytes) -> None:
        await self._link.send(pdu)
        self._counter.bytes += len(pdu)
        self._counter.pdus += 1

    async def receive(self) -> bytes:
        return await self._link.receive()  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self._link.close()


class CountingEndpoint:
    """The WebRTC endpoint with every link wrapped in :class:`CountingLink`."""

    def __init__(self, endpoint: Any) -> None:
        self._endpoint = endpoint
        self.counter = Counter()

    @property
    def local_id(self) -> str:
        return str(self._endpoint.local_id)

    async def connect(self, peer_id: str, timeout: float | None = None) -> CountingLink:
        return CountingLink(await self._endpoint.connect(peer_id, timeout), self.counter)

    async def incoming(self) -> AsyncIterator[CountingLink]:
        async for link in self._endpoint.incoming():
            yield CountingLink(link, self.counter)

    async def aclose(self) -> None:
        await self._endpoint.aclose()


def _text(tag: str, size: int) -> str:
    return (tag + " " + "x" * size)[: max(size, len(tag))]


async def _pump(chat: Any) -> None:
    from enkrypted_shell.contracts import (
        ChatMessage,
        ChatReceipt,
        GroupChatMembership,
        GroupChatMessage,
        GroupChatProblem,
        GroupChatReceipt,
    )

    async for event in chat.events():
        now = time.monotonic()
        if isinstance(event, GroupChatMessage):
            _say(event="gmsg", tag=event.text.split(" ", 1)[0], at=now, group=event.group_id)
        elif isinstance(event, ChatMessage):
            _say(event="msg", tag=event.text.split(" ", 1)[0], at=now, peer=event.peer_id)
        elif isinstance(event, GroupChatReceipt):
            _say(event="grcpt", id=event.message_id, peer=event.peer_id, at=now)
        elif isinstance(event, ChatReceipt):
            _say(event="rcpt", id=event.message_id, peer=event.peer_id, at=now)
        elif isinstance(event, GroupChatMembership):
            _say(event="membership", group=event.group_id, epoch=event.epoch,
                 members=[m.peer_id for m in event.members])
        elif isinstance(event, GroupChatProblem):
            _say(event="problem", group=event.group_id, message=event.message)


async def _handle(chat: Any, endpoint: CountingEndpoint, request: dict[str, Any]) -> bool:
    op = request["op"]
    if op == "create":
        _say(event="created", group=await chat.create_group(request["name"]))
    elif op == "invite":
        await chat.invite(request["group"], request["peer"])
    elif op == "connect":
        await chat.connect(request["peer"], 60)
        _say(event="connected", peer=request["peer"])
    elif op == "gsend":
        text, at = _text(request["tag"], request["size"]), time.monotonic()
        message_id = await chat.send_group_text(request["group"], text)
        _say(event="sent", tag=request["tag"], at=at, ids=[message_id])
    elif op == "psend":
        text, at = _text(request["tag"], request["size"]), time.monotonic()
        ids = [await chat.send_text(peer, text) for peer in request["peers"]]
        _say(event="sent", tag=request["tag"], at=at, ids=ids)
    elif op == "bytes":
        _say(event="bytes", bytes=endpoint.counter.bytes, pdus=endpoint.counter.pdus)
    elif op == "quit":
        return False
    return True


async def _main(url: str, peer_id: str) -> None:
    from enkrypted_crypto.plugin import enkrypted_crypto_service
    from enkrypted_p2p.chat import EndpointChat
    from enkrypted_p2p.groups import GroupConfig
    from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings
    from enkrypted_shell.contracts import AppContext, ContractError

    with tempfile.TemporaryDirectory(prefix="enkrypted-bench-group-") as home:
        crypto = enkrypted_crypto_service(AppContext(Path(home)))
        endpoint = CountingEndpoint(
            await WebRTCEndpoint.open(WebRTCSettings.loopback(url), peer_id))
        context = AppContext(Path(home), store=MemoryStore())  # type: ignore[arg-type]
        config = GroupConfig(history_max_bytes=1024 * 1024, heartbeat_s=3600.0)
        chat = await EndpointChat.open(endpoint, crypto, crypto.new_identity(),  # type: ignore[arg-type]
                                       context=context, group_config=config)
        pump = asyncio.ensure_future(_pump(chat))
        _say(event="ready", fingerprint=chat.fingerprint)
        loop = asyncio.get_running_loop()
        try:
            while line := await loop.run_in_executor(None, sys.stdin.readline):
                try:
                    if not await _handle(chat, endpoint, json.loads(line)):
                        break
                except (ContractError, KeyError, ValueError) as exc:
                    _say(event="error", message=f"{type(exc).__name__}: {exc}")
        finally:
            pump.cancel()
            await chat.aclose()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(_main(sys.argv[1], sys.argv[2]), 3600))
