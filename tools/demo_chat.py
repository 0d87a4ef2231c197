"""The demo's two-peer part: two `enkrypted` processes chat end to end encrypted over WebRTC.

Each peer is its own verified, locked shell process (`enkrypted --p2p enkrypted-p2p ...`): a
broker (`enkrypted broker`) on a free loopback port, Alice listening (`enkrypted listen`), Bob
connecting by her peer id and sending (`enkrypted send`). Both print JSON lines; the demo shows
them, checks both sides computed the same safety number, and stops every process by its PID.
ICE is pinned to loopback (`--loopback`), so nothing leaves the machine.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_TIMEOUT = 90.0
_MESSAGES = ("hello Alice - this left Bob's process sealed by MLS, Signal, ML-KEM and AES",
             "and the broker saw only SDP and ICE candidates")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _json_lines(text: str) -> list[dict[str, Any]]:
    stripped = (line.strip() for line in text.splitlines())
    return [json.loads(line) for line in stripped if line.startswith("{")]


def _show(who: str, events: Sequence[dict[str, Any]]) -> None:
    for event in events:
        print(f"  {who}: {json.dumps(event, ensure_ascii=False)}", flush=True)


def two_peer_chat(user: Path, environ: dict[str, str], shell_args: Sequence[str] = ()) -> None:
    """Broker + Alice (listen) + Bob (send) as separate processes; raises SystemExit on failure."""
    base = [str(user), *shell_args, "--p2p", "enkrypted-p2p"]
    broker = subprocess.Popen([*base, "broker", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=environ)
    alice: subprocess.Popen[str] | None = None
    try:
        assert broker.stdout is not None
        line = broker.stdout.readline()
        if "listening on" not in line:
            raise SystemExit(f"demo failed: the broker did not start ({line.strip()!r})")
        url = line.split()[-1].removesuffix("peerjs")
        print(f"$ enkrypted broker --port 0   -> {url}peerjs (pid {broker.pid})", flush=True)
        alice = subprocess.Popen([*base, "listen", "--broker", url, "--loopback", "--count",
                                  str(len(_MESSAGES))], stdout=subprocess.PIPE, text=True,
                                 env=environ)
        assert alice.stdout is not None
        first = _json_lines(alice.stdout.readline())
        if not first or first[0].get("event") != "listening":
            raise SystemExit(f"demo failed: alice did not register ({first!r})")
        peer_id = first[0]["peer_id"]
        print(f"$ enkrypted listen --loopback   -> Alice is {peer_id} (pid {alice.pid})", flush=True)
        print(f"$ enkrypted send --loopback {peer_id} ...", flush=True)
        started = time.monotonic()
        bob = subprocess.run([*base, "send", "--broker", url, "--loopback", peer_id, *_MESSAGES],
                             capture_output=True, text=True, env=environ, timeout=_TIMEOUT,
                             check=False)
        bob_events = _json_lines(bob.stdout)
        _show("bob  ", bob_events)
        if bob.returncode != 0:
            raise SystemExit(f"demo failed: send exited {bob.returncode}: {bob.stderr[-400:]}")
        rest, _ = alice.communicate(timeout=_TIMEOUT)
        alice_events = first + _json_lines(rest)
        _show("alice", alice_events)
        _check(alice_events, bob_events, time.monotonic() - started)
    finally:
        if alice is not None:
            _stop(alice)
        _stop(broker)


def _check(alice: Sequence[dict[str, Any]], bob: Sequence[dict[str, Any]], took: float) -> None:
    got = [e["text"] for e in alice if e.get("event") == "message"]
    receipts = [e for e in bob if e.get("event") == "receipt"]
    ready = {side: next((e for e in events if e.get("event") == "ready"), None)
             for side, events in (("alice", alice), ("bob", bob))}
    if got != list(_MESSAGES) or len(receipts) != len(_MESSAGES):
        raise SystemExit(f"demo failed: delivered {got!r}, {len(receipts)} receipts")
    if None in ready.values() or ready["alice"]["safety_number"] != ready["bob"]["safety_number"]:  # type: ignore[index]
        raise SystemExit("demo failed: the two sides disagree on the safety number")
    layers = " -> ".join(ready["bob"]["layers"])  # type: ignore[index]
    print(f"two processes, {len(got)} messages delivered once each and receipted in {took:.1f} s; "
          f"layers {layers}; both sides show safety number {ready['bob']['safety_number']}",  # type: ignore[index]
          flush=True)
