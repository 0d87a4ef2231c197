"""Test kit for the file-transfer core: a real cascade session pair, in-memory sources and sinks,
and a pipe that moves frames between two :class:`FileTransfers` until both are quiet."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from enkrypted_p2p.files import FileEvent, FileLimits, FileTransfers
from enkrypted_shell.contracts import (
    CryptoFailure,
    CryptoService,
    Delivered,
    HandshakeComplete,
    SecureSession,
)


def session_pair(crypto: CryptoService) -> tuple[SecureSession, SecureSession]:
    """Two ends of one established cascade session (the real crypto plugin)."""
    a = crypto.handshake(crypto.new_identity(), initiator=True, now=0.0)
    b = crypto.handshake(crypto.new_identity(), initiator=False, now=0.0)
    sessions: dict[int, SecureSession] = {}
    queue = [(b, p) for p in a.data_to_send()]
    for _ in range(50):
        if not queue:
            break
        target, pdu = queue.pop(0)
        other = a if target is b else b
        events = target.receive(pdu, 0.0)
        queue += [(other, p) for p in target.data_to_send()]
        for event in events:
            if isinstance(event, HandshakeComplete):
                sessions[0 if target is a else 1] = event.session
    return sessions[0], sessions[1]


def sealing(session: SecureSession) -> tuple[Callable[[bytes], bytes],
                                             Callable[[bytes], bytes | None]]:
    def open_(data: bytes) -> bytes | None:
        try:
            result = session.open(data)
        except CryptoFailure:
            return None
        return result.plaintext if isinstance(result, Delivered) else None

    return session.seal, open_


def core_pair(crypto: CryptoService, limits: FileLimits | None = None,
              ) -> tuple[FileTransfers, FileTransfers, tuple[SecureSession, SecureSession]]:
    sa, sb = session_pair(crypto)
    return FileTransfers(*sealing(sa), limits), FileTransfers(*sealing(sb), limits), (sa, sb)


class MemorySource:
    def __init__(self, data: bytes) -> None:
        self.data = data

    @property
    def descriptor(self) -> str:
        return "memory"

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset:offset + length]


class MemorySink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.committed = self.discarded = False

    @property
    def descriptor(self) -> str:
        return "memory"

    def write(self, index: int, round_: int, data: bytes) -> None:
        assert index == len(self.chunks)
        self.chunks.append(data)

    def sync(self) -> None:
        pass

    def digest(self) -> bytes:
        return hashlib.sha256(b"".join(self.chunks)).digest()

    def commit(self) -> None:
        self.committed = True

    def discard(self) -> None:
        self.discarded = True


@dataclass
class Pipe:
    """Frames from a to b and back; ``tamper`` may rewrite or drop (``None``) a frame."""

    a: FileTransfers
    b: FileTransfers
    events_a: list[FileEvent] = field(default_factory=list)
    events_b: list[FileEvent] = field(default_factory=list)
    tamper: Callable[[FileTransfers, bytes], bytes | None] | None = None
    frames: int = 0

    def run(self, now: float = 1.0, *, max_frames: int = 1_000_000, budget: int = 1 << 24,
            stop: Callable[[], bool] | None = None) -> None:
        for _ in range(max_frames):
            if stop is not None and stop():
                return
            moved = False
            for sender, receiver, into in ((self.a, self.b, self.events_b),
                                           (self.b, self.a, self.events_a)):
                frame = sender.next_pdu(budget)
                if frame is None:
                    continue
                moved = True
                self.frames += 1
                if self.tamper is not None:
                    frame = self.tamper(sender, frame)
                    if frame is None:
                        continue
                into.extend(receiver.pdu_received(frame, now))
            self.events_a += self.a.take_events()
            self.events_b += self.b.take_events()
            if not moved:
                return
        raise AssertionError("pipe did not go quiet")
