"""Two peers in separate processes chat end to end encrypted over real aiortc data channels:
``enkrypted listen`` and ``enkrypted send`` (the p2p plugin's commands), through our broker and
through npm ``peer``, every process on loopback and stopped by its PID."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.environments import Environments
from tests.p2p.servers import ROOT, SRC, Server, stop

pytestmark = pytest.mark.slow

PATHS = [*SRC, ROOT / "plugins" / "cryptography" / "src", ROOT]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in PATHS)}


def start(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.p2p.chat_peer", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=ROOT)


def read_event(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no line within {timeout} s (exit {proc.poll()})")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise EOFError(f"process ended ({proc.poll()}): {err[-2000:]}")
    return json.loads(line)


def chat(server: Server, texts: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                     float]:
    url = f"ws://127.0.0.1:{server.port}{server.path}?key={server.key}"
    listener = start("listen", "--broker", url, "--loopback", "--count", str(len(texts)))
    sender: subprocess.Popen[str] | None = None
    try:
        first = read_event(listener, 60)
        assert first["event"] == "listening", first
        started = time.monotonic()
        sender = start("send", "--broker", url, "--loopback", first["peer_id"], *texts)
        out, _ = sender.communicate(timeout=90)
        elapsed = time.monotonic() - started
        assert sender.returncode == 0, (out, sender.stderr.read() if sender.stderr else "")
        sent = [json.loads(line) for line in out.splitlines()]
        got = []
        while len([e for e in got if e["event"] == "message"]) < len(texts):
            got.append(read_event(listener, 30))
        assert listener.wait(30) == 0
        return sent, got, elapsed
    finally:
        for proc in (listener, sender):
            if proc is not None:
                stop(proc)  # type: ignore[arg-type]


def check(sent: list[dict[str, Any]], got: list[dict[str, Any]], texts: list[str]) -> None:
    ready_s = next(e for e in sent if e["event"] == "ready")
    ready_l = next(e for e in got if e["event"] == "ready")
    assert ready_s["safety_number"] == ready_l["safety_number"]
    assert ready_s["profile"] == ready_l["profile"] and ready_s["layers"]
    messages = [e for e in got if e["event"] == "message"]
    assert [m["text"] for m in messages] == texts  # in order, each once
    ids = [e["messageId"] for e in sent if e["event"] == "sent"]
    assert [m["messageId"] for m in messages] == ids
    assert sorted(e["messageId"] for e in sent if e["event"] == "receipt") == sorted(ids)


TEXTS = ["hello over webrtc", "zweite Nachricht ✓", "x" * 20_000]


def test_two_processes_chat_through_our_broker(our_broker: Server) -> None:
    sent, got, elapsed = chat(our_broker, TEXTS)
    check(sent, got, TEXTS)
    print(f"send process start to last receipt: {elapsed:.2f} s")


def test_two_processes_chat_through_npm_peer(npm_peer: Server) -> None:
    sent, got, _ = chat(npm_peer, TEXTS)
    check(sent, got, TEXTS)


def test_chat_line_sends_stdin_lines_and_waits_for_receipts(our_broker: Server) -> None:
    url = f"ws://127.0.0.1:{our_broker.port}/"
    listener = start("listen", "--broker", url, "--loopback", "--count", "2")
    line: subprocess.Popen[str] | None = None
    try:
        peer_id = read_event(listener, 60)["peer_id"]
        line = subprocess.Popen([sys.executable, "-m", "tests.p2p.chat_peer", "chat-line",
                                 "--broker", url, "--loopback", peer_id],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
        out, err = line.communicate("first line\n\nsecond line\n", timeout=90)
        assert line.returncode == 0, (out, err)
        events = [json.loads(x) for x in out.splitlines()]
        sent = [e["messageId"] for e in events if e["event"] == "sent"]
        assert len(sent) == 2  # the empty line is not a message
        assert sorted(e["messageId"] for e in events if e["event"] == "receipt") == sorted(sent)
        got = [read_event(listener, 30) for _ in range(3)]
        assert [e["event"] for e in got] == ["ready", "message", "message"]
        assert [e["text"] for e in got[1:]] == ["first line", "second line"]
        assert listener.wait(30) == 0
    finally:
        for proc in (listener, line):
            if proc is not None:
                stop(proc)  # type: ignore[arg-type]


def test_send_to_an_absent_peer_fails_clearly(our_broker: Server) -> None:
    url = f"ws://127.0.0.1:{our_broker.port}/"
    proc = start("send", "--broker", url, "--loopback", "nobody", "hi")
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        stop(proc)  # type: ignore[arg-type]
    assert proc.returncode == 3
    error = json.loads(out.splitlines()[-1])
    assert error["event"] == "error" and error["error"] == "PeerUnavailable"


@pytest.mark.e2e
def test_listen_and_send_through_the_real_shell(
    tmp_path: Path, our_broker: Server, dist_wheels: dict[str, Path], environments: Environments
) -> None:
    """Wheels built from this tree (aiortc and its dependencies from wheelhouse/), installed into
    a throw-away environment; the shell verifies and loads the plugin set and runs the p2p
    plugin's commands, which reach the crypto service the shell wired into the p2p plugin."""
    core = ["enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto"]
    env = environments.make(tmp_path / "env", *(dist_wheels[n] for n in core))
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ENKRYPTED_DEV")}
    url = f"ws://127.0.0.1:{our_broker.port}/"

    def shell(home: str, *argv: str) -> subprocess.Popen[str]:
        environ = {**base, "ENKRYPTED_HOME": str(tmp_path / home), "ENKRYPTED_ALLOW_UNSIGNED": "1"}
        return subprocess.Popen([str(env.bin / "enkrypted"), *argv], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=environ)

    listener = shell("bob", "listen", "--broker", url, "--loopback", "--count", "2")
    sender = None
    try:
        first = read_event(listener, 120)
        assert first["event"] == "listening"
        sender = shell("alice", "send", "--broker", url, "--loopback", first["peer_id"],
                       "through the shell", "second")
        out, err = sender.communicate(timeout=180)
        assert sender.returncode == 0, (out, err)
        events = [read_event(listener, 30) for _ in range(3)]
        assert [e["event"] for e in events] == ["ready", "message", "message"]
        assert [e["text"] for e in events[1:]] == ["through the shell", "second"]
        assert listener.wait(30) == 0
    finally:
        for proc in (listener, sender):
            if proc is not None:
                stop(proc)  # type: ignore[arg-type]


def test_peer_process_killed_mid_conversation(our_broker: Server, tmp_path: Path) -> None:
    """SIGKILL the listening process after 5 acknowledged messages: our side's session ends
    with LinkBroken (ICE consent / DTLS failure), in bounded time, with nothing delivered twice."""
    import asyncio
    import signal

    from enkrypted_crypto.plugin import enkrypted_crypto_service
    from enkrypted_p2p.session import ChatSession, ReceiptReceived, SessionState
    from enkrypted_p2p.webrtc import WebRTCEndpoint, WebRTCSettings
    from enkrypted_shell.contracts import AppContext, LinkBroken, LinkClosed

    url = f"ws://127.0.0.1:{our_broker.port}/"
    listener = start("listen", "--broker", url, "--loopback")
    try:
        peer_id = read_event(listener, 60)["peer_id"]
        crypto = enkrypted_crypto_service(AppContext(tmp_path))

        async def scenario() -> float:
            endpoint = await WebRTCEndpoint.open(WebRTCSettings.loopback(url))
            try:
                session = ChatSession(await endpoint.connect(peer_id), crypto,
                                      crypto.new_identity(), initiator=True)
                await session.start(30)
                ids = [await session.send_text(f"n{i}") for i in range(5)]
                acked: set[str] = set()
                async with asyncio.timeout(20):
                    async for event in session.events():
                        if isinstance(event, ReceiptReceived):
                            acked.add(event.message_id)
                            if acked == set(ids):
                                break
                await asyncio.sleep(0.5)  # a receipt leaves before the listener prints the line
                os.kill(listener.pid, signal.SIGKILL)
                listener.wait(10)
                killed = time.monotonic()
                broken: object = None
                async with asyncio.timeout(60):
                    async for event in session.events():
                        if isinstance(event, LinkClosed):
                            broken = event
                            break
                assert isinstance(broken, LinkBroken), broken
                assert session.state is SessionState.DISCONNECTED
                return time.monotonic() - killed
            finally:
                await endpoint.aclose()

        detected = asyncio.run(asyncio.wait_for(scenario(), 120))
        print(f"hard kill detected after {detected:.1f} s")
        assert listener.stdout is not None
        got = [json.loads(line) for line in listener.stdout.read().splitlines()]
        texts = [e["text"] for e in got if e["event"] == "message"]
        assert texts == [f"n{i}" for i in range(5)]
    finally:
        stop(listener)  # type: ignore[arg-type]
