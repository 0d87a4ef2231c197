"""One soak peer process: an :class:`EndpointChat` on a real WebRTC endpoint with a stable id, its
identity and sessions in ``--state-dir`` (the file-backed stand-in of the profile store, so a
killed process restarts from what it persisted), sending numbered messages to ``--partner`` at a
bounded rate until told to stop.

    python -m tests.soak.soak_peer --broker URL --id a0 --partner b0 --state-dir DIR [--dial]

Everything it sees goes, one JSON object a line, to ``DIR/events.jsonl`` (appended, so the
history survives restarts; each line is handed to the kernel before the next step, so a SIGKILL
loses nothing written):

* ``{"e": "start", "pid": ...}`` once per process;
* ``{"e": "intent", "seq": n}`` before ``send_text`` (the message *may* exist from here on: it is
  persisted before its PDU leaves), then ``{"e": "sent", "seq": n, "id": ..., "t": ...}`` once
  ``send_text`` returned (it *does* exist: kept until acknowledged), or ``{"e": "refused", ...}``;
* ``{"e": "msg", "id": ..., "text": ..., "t": ...}`` (``{"e": "again", "id": ...}`` when the
  service hands up a message this peer already recorded: its application's history, keyed by
  message id, shows it once), ``{"e": "receipt", "id": ...}``,
  ``{"e": "state", "state": ...}``, ``{"e": "ready", "resumed": ...}``, ``{"e": "problem", ...}``.

Commands on stdin, one a line: ``drop`` (kill the link's transport as a crash of the path would:
both sides see the link break and the dialler redials), ``quiet`` (stop sending), ``stats``
(one ``{"e": "stats", ...}`` line with the number of unacknowledged messages).  SIGTERM closes the
chat service and exits 0.  Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.chat import EndpointChat, ReconnectPolicy
from enkrypted_p2p.chat._service import SESSIONS_TABLE
from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings
from enkrypted_shell.contracts import (
    AppContext,
    ChatMessage,
    ChatProblem,
    ChatReceipt,
    LocalMisuse,
    NetworkError,
    PeerStateChanged,
    SessionEstablished,
)
from tests.p2p.chat_peer import FileStore
from tests.soak import ledger

LONG_TEXT_EVERY = 25
"""One message in this many is 20 kB (sealed and chunked over several link frames)."""
POLICY = ReconnectPolicy(base_s=0.2, max_delay_s=2.0, max_attempts=200, window_s=600.0,
                         connect_timeout_s=20.0)
"""Redial quickly and long enough to outlast a broker restart and the peer's restart."""


class EventLog:
    def __init__(self, path: Path) -> None:
        self._out: TextIO = path.open("a", encoding="utf-8", buffering=1)  # a line per write()

    def __call__(self, event: str, **fields: Any) -> None:
        self._out.write(json.dumps({"e": event, **fields}) + "\n")


def next_seq(path: Path) -> int:
    """The first sequence number no earlier run of this peer may have used."""
    if not path.is_file():
        return 0
    seqs = [json.loads(line).get("seq", -1) for line in path.read_text().splitlines()
            if line.startswith('{"e": "intent"')]
    return max(seqs, default=-1) + 1


class SoakPeer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state = Path(args.state_dir)
        self.log = EventLog(self.state / "events.jsonl")
        self.seq = next_seq(self.state / "events.jsonl")
        self.sending = True
        self.rng = random.Random()  # message sizes, not secrets
        self.chat: EndpointChat | None = None
        self.endpoint: WebRTCEndpoint | None = None
        self.stop = asyncio.Event()

    async def open(self) -> EndpointChat:
        crypto = enkrypted_crypto_service(AppContext(self.state))
        identity_file = self.state / "identity"
        if not identity_file.is_file():
            identity_file.write_bytes(crypto.new_identity())
        store = FileStore(self.state / "sessions.json")
        saved = {k.decode(): v for k, v in store.items(SESSIONS_TABLE)}
        context = AppContext(self.state, store=store)  # type: ignore[arg-type]
        for attempt in range(30):  # the broker may be restarting right now: bounded retries
            try:
                self.endpoint = await WebRTCEndpoint.open(
                    WebRTCSettings.loopback(self.args.broker), self.args.id)
                break
            except (NetworkError, TimeoutError) as exc:
                self.log("broker-unreachable", attempt=attempt, why=str(exc)[:200])
                await asyncio.sleep(1.0)
        else:
            raise RuntimeError("the broker stayed unreachable for 30 attempts")
        assert self.endpoint is not None
        return await EndpointChat.open(self.endpoint, crypto, identity_file.read_bytes(),
                                       context=context, saved=saved, reconnect=POLICY)

    async def run(self) -> None:
        self.log("start", pid=os.getpid(), next_seq=self.seq)
        self.chat = chat = await self.open()
        tasks = [asyncio.ensure_future(c) for c in (self.record(chat), self.commands(),
                                                    self.send_loop(chat))]
        if self.args.dial:
            tasks.append(asyncio.ensure_future(self.keep_dialling(chat)))
        for task in tasks:
            task.add_done_callback(self.crashed)
        await self.stop.wait()
        for task in tasks[1:]:
            task.cancel()
        for task in tasks[1:]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.wait_for(chat.aclose(), 30)
        await asyncio.wait_for(tasks[0], 30)  # every event up to the close is recorded
        self.log("stopped")

    def crashed(self, task: asyncio.Task[None]) -> None:
        """A loop of ours ended by itself: log why and stop (the ledger then shows the gap)."""
        if not task.cancelled() and task.exception() is not None:
            self.log("crashed", error=repr(task.exception())[:300])
            self.stop.set()

    async def record(self, chat: EndpointChat) -> None:
        seen = {e["id"] for e in ledger.read_events(self.state) if e["e"] == "msg"}
        async for event in chat.events():
            if isinstance(event, ChatMessage) and event.message_id in seen:
                # Handed up again after a restart (it stayed with the session until taken):
                # a history keyed by message id shows it once.
                self.log("again", id=event.message_id, t=time.time())
            elif isinstance(event, ChatMessage):
                seen.add(event.message_id)
                self.log("msg", id=event.message_id, text=event.text[:64], t=time.time())
            elif isinstance(event, ChatReceipt):
                self.log("receipt", id=event.message_id, t=time.time())
            elif isinstance(event, SessionEstablished):
                self.log("ready", resumed=event.resumed, t=time.time())
            elif isinstance(event, PeerStateChanged):
                self.log("state", state=event.state, reason=event.reason[:200], t=time.time())
            elif isinstance(event, ChatProblem):
                self.log("problem", kind=event.kind, text=event.message[:300], t=time.time())

    async def keep_dialling(self, chat: EndpointChat) -> None:
        """The dialler (re)connects whenever the service gave up (``disconnected``)."""
        while True:
            if chat.peers().get(self.args.partner, "disconnected") == "disconnected":
                with contextlib.suppress(NetworkError, LocalMisuse, TimeoutError,
                                         Exception):
                    await chat.connect(self.args.partner, 20)
            await asyncio.sleep(1.0)

    def text(self, seq: int) -> str:
        head = f"{self.args.id}>{self.args.partner}#{seq}"
        if seq % LONG_TEXT_EVERY == LONG_TEXT_EVERY - 1:
            return head + " " + "L" * 20_000
        return head + " " + "s" * self.rng.randrange(0, 400)

    async def send_loop(self, chat: EndpointChat) -> None:
        period = 1.0 / self.args.rate
        while True:
            await asyncio.sleep(period * self.rng.uniform(0.5, 1.5))
            if not self.sending:
                continue
            seq = self.seq
            self.log("intent", seq=seq)
            self.seq += 1
            try:
                message_id = await chat.send_text(self.args.partner, self.text(seq))
            except (LocalMisuse, NetworkError) as exc:  # no session yet, or the window is full
                self.log("refused", seq=seq, why=str(exc)[:200])
                continue
            self.log("sent", seq=seq, id=message_id, t=time.time())

    async def commands(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            if line == "drop":
                await self.drop()
            elif line == "quiet":
                self.sending = False
                self.log("quiet")
            elif line == "stats":
                self.log("stats", unacknowledged=self.unacknowledged())

    async def drop(self) -> None:
        assert self.endpoint is not None
        links = [x for x in self.endpoint.links if x.peer_id == self.args.partner]
        self.log("drop", links=len(links))
        for link in links:
            await link.kill_transport()

    def unacknowledged(self) -> int:
        assert self.chat is not None
        data = self.chat.export_state(self.args.partner)
        return 0 if data is None else len(json.loads(data[7:])["unacknowledged"])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="soak_peer")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--partner", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--dial", action="store_true")
    parser.add_argument("--rate", type=float, default=2.0, help="messages per second")
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    peer = SoakPeer(parser.parse_args(argv))

    async def body() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, peer.stop.set)
        loop.add_signal_handler(signal.SIGINT, peer.stop.set)
        loop.call_later(peer.args.max_seconds, peer.stop.set)  # bounded even if orphaned
        await peer.run()

    asyncio.run(body())


if __name__ == "__main__":
    main(sys.argv[1:])
