"""No plaintext and no key material at the broker (DESIGN.md: the broker is untrusted; docs/broker.md
"What the broker sees"): a real encrypted chat between two processes, ``enkrypted listen`` and
``enkrypted send`` (tests.p2p.recording_peer: the p2p plugin's commands with the real crypto
plugin), through our broker on loopback, over a real aiortc data channel.  Every WebSocket frame
the broker receives and every frame it sends is recorded; the peers record their identity key
pairs (private keys included) and every PDU their data channels carried.  Then:

* the frames are signaling only: OFFER / ANSWER / CANDIDATE payloads hold SDP, candidates and
  peerjs's connection fields, nothing else;
* the messages' unique marker appears in no frame, raw, hex or base64;
* no identity key pair and no data-channel PDU appears in any frame, raw, hex or base64 (a
  16-byte window of each, every 8 bytes, so a part of a secret is found too).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enkrypted_p2p.signaling import BrokerConfig, BrokerServer
from tests.p2p.servers import ROOT, SRC, stop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MARKER = f"enk-marker-{secrets.token_hex(8)}"
TEXTS = [f"{MARKER} meet me at the old mill at noon", f"{MARKER} bring the map",
         f"{MARKER} " + "long " * 400]
PAYLOAD_KEYS = {"OFFER": {"sdp", "type", "connectionId", "label", "serialization", "reliable",
                          "metadata"},
                "ANSWER": {"sdp", "type", "connectionId"},
                "CANDIDATE": {"candidate", "type", "connectionId"}}


def peer(record: Path, *argv: str) -> subprocess.Popen[str]:
    paths = [*SRC, ROOT / "plugins" / "cryptography" / "src", ROOT]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}
    return subprocess.Popen([sys.executable, "-m", "tests.p2p.recording_peer", str(record), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=ROOT)


def next_event(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if not line:
        err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
        raise AssertionError(f"no event within {timeout} s (exit {proc.poll()}): {err[-2000:]}")
    return json.loads(line)  # type: ignore[no-any-return]


def chat(port: int, record: Path) -> list[dict[str, Any]]:
    """``listen`` and ``send`` through the broker on ``port``; the listener's message events."""
    url = f"ws://127.0.0.1:{port}/?key=peerjs"
    listener = peer(record, "listen", "--broker", url, "--loopback", "--count", str(len(TEXTS)))
    sender: subprocess.Popen[str] | None = None
    try:
        first = next_event(listener, 60)
        assert first["event"] == "listening", first
        sender = peer(record, "send", "--broker", url, "--loopback", first["peer_id"], *TEXTS)
        _, err = sender.communicate(timeout=90)
        assert sender.returncode == 0, err[-2000:]
        messages: list[dict[str, Any]] = []
        for _ in range(20):
            if len(messages) == len(TEXTS):
                break
            event = next_event(listener, 30)
            if event["event"] == "message":
                messages.append(event)
        assert listener.wait(30) == 0
        return messages
    finally:
        for proc in (listener, sender):
            if proc is not None:
                stop(proc)  # type: ignore[arg-type]


def record_broker(server: BrokerServer, frames: list[str]) -> None:
    """Every WebSocket frame the broker receives (its core's input) and sends (its queue)."""
    frame, enqueue = server.core.frame, server._enqueue

    def received(conn: int, data: str | bytes, now: float) -> Any:
        frames.append(data if isinstance(data, str) else data.decode("latin-1"))
        return frame(conn, data, now)

    def sent(conn: int, text: str) -> bool:
        frames.append(text)
        return enqueue(conn, text)

    server.core.frame = received  # type: ignore[method-assign]
    server._enqueue = sent  # type: ignore[method-assign]


def strings(value: Any) -> Iterator[str]:
    """Every string inside a decoded frame (JSON escapes undone)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def forms(secret: bytes) -> Iterator[str]:
    """16-byte windows of ``secret`` every 8 bytes, as latin-1 text, hex (both cases) and base64
    (standard and URL-safe, at each of the three alignments)."""
    for start in range(0, max(1, len(secret) - 15), 8):
        piece = secret[start:start + 16]
        yield piece.decode("latin-1")
        yield piece.hex()
        yield piece.hex().upper()
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(secret[shift:]).decode()
            for start in range(0, max(1, len(text) - 23), 12):
                yield text[start:start + 24]


def test_broker_sees_no_plaintext_no_key_and_no_pdu_of_a_real_chat(tmp_path: Path) -> None:
    frames: list[str] = []
    record = tmp_path / "secrets.jsonl"

    async def scenario() -> list[dict[str, Any]]:
        server = BrokerServer(BrokerConfig())
        record_broker(server, frames)
        port = await server.start("127.0.0.1", 0)
        try:
            return await asyncio.to_thread(chat, port, record)
        finally:
            await server.stop()

    messages = asyncio.run(asyncio.wait_for(scenario(), 180))
    assert [m["text"] for m in messages] == TEXTS  # the chat really happened, end to end

    decoded = [json.loads(f) for f in frames]
    kinds = {d.get("type") for d in decoded}
    assert {"OFFER", "ANSWER", "CANDIDATE"} <= kinds <= {"OPEN", "HEARTBEAT", "OFFER", "ANSWER",
                                                         "CANDIDATE", "LEAVE", "EXPIRE"}
    for d in decoded:
        if d["type"] in PAYLOAD_KEYS:
            assert set(d["payload"]) <= PAYLOAD_KEYS[d["type"]], d  # SDP and candidates only
    seen = "\n".join([*frames, *(s for d in decoded for s in strings(d))])

    for marker in (MARKER, MARKER.encode().hex(), base64.b64encode(MARKER.encode()).decode()):
        assert marker not in seen
    notes = [json.loads(line) for line in record.read_text().splitlines()]
    identities = [bytes.fromhex(n["hex"]) for n in notes if n["kind"] == "identity"]
    pdus = [bytes.fromhex(n["hex"]) for n in notes if n["kind"] == "pdu"]
    assert len(identities) == 2 and len(pdus) >= 2 * len(TEXTS)  # both peers, every message
    for secret in identities + [p for p in pdus if len(p) >= 8]:
        for form in forms(secret):
            assert form not in seen, "a secret or PDU reached the broker"


def found(secret: bytes, frames: list[str]) -> bool:
    decoded = [json.loads(f) for f in frames]
    seen = "\n".join([*frames, *(s for d in decoded for s in strings(d))])
    return any(form in seen for form in forms(secret))


def test_the_check_finds_a_secret_in_every_encoding_and_at_any_offset() -> None:
    secret = secrets.token_bytes(120)
    clean = [json.dumps({"type": "CANDIDATE", "payload": {"candidate": "candidate:1 1 udp 1 "
                                                          "127.0.0.1 9 typ host"}})]
    assert not found(secret, clean)
    for leak in (secret[37:80].decode("latin-1"), secret[5:60].hex(), secret.hex().upper(),
                 base64.b64encode(b"x" + secret).decode(),
                 base64.urlsafe_b64encode(b"xy" + secret[:50]).decode()):
        assert found(secret, [*clean, json.dumps({"type": "OFFER", "payload": {"sdp": leak}})])
