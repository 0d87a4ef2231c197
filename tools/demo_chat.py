"""The demo's two-peer part: two `enkrypted` processes chat end to end encrypted over WebRTC.

Each peer is its own verified, locked shell process with its own encrypted profile (`enkrypted
--profile alice ...`): the broker (`enkrypted broker`) on a loopback port, Alice listening
(`enkrypted listen`), Bob connecting by her peer id and sending (`enkrypted send`). Both print
JSON lines; the demo shows them, checks both sides computed the same safety number and that each
side saw the other's profile fingerprint, and stops every process by its PID. ICE is pinned to
loopback by the demo's config.toml, so nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tools.loopback import wait_port

_TIMEOUT = 90.0
PASSPHRASE = "demo passphrase - use a real one"  # noqa: S105 (the demo profiles)
_MESSAGES = ("hello Alice - this left Bob's process sealed by every layer of the cascade",
             "and the broker saw only SDP and ICE candidates")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Broker:
    """``with Broker(user, environ, port, shell_args):`` the embedded broker, stopped by PID."""

    def __init__(self, user: Path, environ: dict[str, str], port: int,
                 command_args: Sequence[str] = ()) -> None:
        self.argv = [str(user), "broker", *command_args, "--port", str(port)]
        self.environ, self.port = environ, port
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Broker:
        print("$", " ".join(self.argv[1:]).join(["enkrypted ", " &"]), flush=True)
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True,
                                     stderr=subprocess.DEVNULL, env=self.environ)
        try:
            wait_port(self.port, self.proc, 60)  # type: ignore[arg-type]
        except BaseException:
            _stop(self.proc)
            raise
        print(f"broker listening on ws://127.0.0.1:{self.port}/peerjs (pid {self.proc.pid})",
              flush=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc is not None:
            _stop(self.proc)
            print(f"broker stopped (pid {self.proc.pid})", flush=True)


def _json_lines(text: str) -> list[dict[str, Any]]:
    stripped = (line.strip() for line in text.splitlines())
    return [json.loads(line) for line in stripped if line.startswith("{")]


def _show(who: str, events: Sequence[dict[str, Any]]) -> None:
    for event in events:
        print(f"  {who}: {json.dumps(event, ensure_ascii=False)}", flush=True)


def _profile(user: Path, environ: dict[str, str], name: str) -> str:
    """Create ``name``'s encrypted profile; its identity fingerprint."""
    subprocess.run([str(user), "profile", "create", name], env=environ, check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run([str(user), "--profile", name, "id", "--json"], env=environ, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    fingerprint = str(json.loads(out)["fingerprint"])
    print(f"$ enkrypted profile create {name}   -> identity {fingerprint[:16]}…", flush=True)
    return fingerprint


def _conversation(alice_argv: list[str], bob_argv: list[str], environ: dict[str, str],
                  command_args: Sequence[str] = ()
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float, int]:
    """Alice listens, Bob sends to her peer id: both sides' events, Bob's time to the last
    receipt and his exit code (Alice is stopped once Bob is done, if she has not ended)."""
    alice = subprocess.Popen([*alice_argv, "listen", *command_args, "--count",
                              str(len(_MESSAGES))], stdout=subprocess.PIPE, text=True, env=environ)
    try:
        assert alice.stdout is not None
        first = _json_lines(alice.stdout.readline())
        if not first or first[0].get("event") != "listening":
            raise SystemExit(f"demo failed: alice did not register ({first!r})")
        peer_id = first[0]["peer_id"]
        print(f"$ enkrypted listen   -> Alice is {peer_id} (pid {alice.pid})", flush=True)
        print(f"$ enkrypted send {peer_id} ...", flush=True)
        started = time.monotonic()
        bob = subprocess.run([*bob_argv, "send", *command_args, peer_id, *_MESSAGES],
                             capture_output=True, text=True, env=environ, timeout=_TIMEOUT,
                             check=False)
        took = time.monotonic() - started
        bob_events = _json_lines(bob.stdout)
        _show("bob  ", bob_events)
        if bob.returncode != 0:
            alice.terminate()
        rest, _ = alice.communicate(timeout=_TIMEOUT)
        alice_events = first + _json_lines(rest)
        _show("alice", alice_events)
        return alice_events, bob_events, took, bob.returncode
    finally:
        _stop(alice)


def two_peer_chat(user: Path, environ: dict[str, str], port: int,
                  command_args: Sequence[str] = ()) -> dict[str, str]:
    """Alice and Bob, each with a profile, chat through the broker on ``port``; their profiles'
    identity fingerprints."""
    keys = {name: _profile(user, {**environ, "ENKRYPTED_PASSPHRASE": PASSPHRASE}, name)
            for name in ("alice", "bob")}
    unlocked = {**environ, "ENKRYPTED_PASSPHRASE": PASSPHRASE}
    argv = {name: [str(user), "--profile", name] for name in keys}
    alice, bob, took, code = _conversation(argv["alice"], argv["bob"], unlocked, command_args)
    if code != 0:
        raise SystemExit(f"demo failed: send exited {code}")
    layers, safety = _check(alice, bob)
    ready = {side: _ready(events) for side, events in (("alice", alice), ("bob", bob))}
    if ready["alice"]["fingerprint"] != keys["bob"] or ready["bob"]["fingerprint"] != keys["alice"]:
        raise SystemExit("demo failed: a peer did not see the other's profile identity")
    print(f"two processes, {len(_MESSAGES)} messages delivered once each and receipted in "
          f"{took:.1f} s; layers {layers}; both sides show safety number {safety}; each saw the "
          "other's profile fingerprint", flush=True)
    return keys


def file_transfer(user: Path, environ: dict[str, str], folder: Path,
                  command_args: Sequence[str] = ()) -> None:
    """Bob sends Alice a 3 MiB file on the standard path (every chunk through the cascade); Alice
    keeps it encrypted in her profile, exports a verified copy, and the hashes agree."""
    unlocked = {**environ, "ENKRYPTED_PASSPHRASE": PASSPHRASE}
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "holiday-photos.tar"
    source.write_bytes(os.urandom(3 * 1024 * 1024))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    inbox = folder / "alice-inbox"
    inbox.mkdir(exist_ok=True)
    alice = subprocess.Popen([str(user), "--profile", "alice", "listen", *command_args,
                              "--accept-files", str(inbox), "--count", "1"],
                             stdout=subprocess.PIPE, text=True, env=unlocked)
    try:
        assert alice.stdout is not None
        first = _json_lines(alice.stdout.readline())
        if not first or first[0].get("event") != "listening":
            raise SystemExit(f"demo failed: alice did not register ({first!r})")
        peer_id = first[0]["peer_id"]
        print(f"$ enkrypted listen --accept-files {inbox.name}/   -> Alice is {peer_id}", flush=True)
        print(f"$ enkrypted sendfile --json {peer_id} {source.name}   (3 MiB)", flush=True)
        started = time.monotonic()
        bob = subprocess.run([str(user), "--profile", "bob", "sendfile", *command_args, "--json",
                              peer_id, str(source)], capture_output=True, text=True,
                             env=unlocked, timeout=_TIMEOUT * 2, check=False)
        took = time.monotonic() - started
        sent = [e for e in _json_lines(bob.stdout) if e.get("event") != "progress"]
        _show("bob  ", sent)
        if bob.returncode != 0:
            raise SystemExit(f"demo failed: sendfile exited {bob.returncode}: {bob.stderr[-400:]}")
        rest, _ = alice.communicate(timeout=_TIMEOUT)
        received = [e for e in _json_lines(rest) if e.get("event") == "file-received"]
        _show("alice", received)
    finally:
        _stop(alice)
    if len(received) != 1 or received[0]["sha256"] != expected:
        raise SystemExit(f"demo failed: the file did not arrive intact ({received!r})")
    copy = Path(received[0]["path"])
    if hashlib.sha256(copy.read_bytes()).hexdigest() != expected:
        raise SystemExit("demo failed: the exported copy differs")
    print(f"file: 3 MiB in {took:.1f} s, {received[0]['protection']}; sha256 {expected[:16]}… "
          "verified by Alice's process and again on the exported copy", flush=True)


def swap_backends(user: Path, environ: dict[str, str], nacl_lock: Path) -> None:
    """Bob swaps his crypto plugin for the PyNaCl backend. Against Alice's pyca default, which
    requires the MLS layer PyNaCl cannot serve (no HPKE), the handshake is refused on both sides -
    never a silent downgrade; with both on PyNaCl the negotiated layers are the ones PyNaCl serves.
    Every run is ``--locked``: pyca against the main lock, PyNaCl against ``nacl_lock`` (a second
    lock of the same environment with the other crypto plugin chosen)."""
    nacl = [str(user), "--crypto", "crypto-nacl", "--lock", str(nacl_lock)]
    print(f"(PyNaCl side: enkrypted --crypto crypto-nacl --lock {nacl_lock.name} ... --locked)",
          flush=True)
    alice, bob, _, code = _conversation([str(user)], nacl, environ, ["--locked"])
    if code == 0 or any(e.get("event") == "message" for e in alice):
        raise SystemExit("demo failed: pyca (MLS required) and PyNaCl agreed on something")
    print("refused as it must be: pyca's default cascade requires MLS, which PyNaCl cannot "
          "serve; nothing was delivered", flush=True)
    alice, bob, took, code = _conversation(nacl, nacl, environ, ["--locked"])
    if code != 0:
        raise SystemExit(f"demo failed: send exited {code}")
    layers, safety = _check(alice, bob)
    print(f"swap: both on PyNaCl: {len(_MESSAGES)} messages in {took:.1f} s; negotiated layers "
          f"{layers} (was MLS -> Signal -> ML-KEM -> AES on pyca); safety number {safety}",
          flush=True)


def _ready(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ready = next((e for e in events if e.get("event") == "ready"), None)
    if ready is None:
        raise SystemExit(f"demo failed: no session was established ({events!r})")
    return ready


def _check(alice: Sequence[dict[str, Any]], bob: Sequence[dict[str, Any]]) -> tuple[str, str]:
    got = [e["text"] for e in alice if e.get("event") == "message"]
    receipts = [e for e in bob if e.get("event") == "receipt"]
    if got != list(_MESSAGES) or len(receipts) != len(_MESSAGES):
        raise SystemExit(f"demo failed: delivered {got!r}, {len(receipts)} receipts")
    ours, theirs = _ready(alice), _ready(bob)
    if ours["safety_number"] != theirs["safety_number"] or ours["layers"] != theirs["layers"]:
        raise SystemExit("demo failed: the two sides disagree on the safety number or layers")
    return " -> ".join(theirs["layers"]), str(theirs["safety_number"])
