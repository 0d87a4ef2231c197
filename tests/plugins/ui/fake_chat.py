"""A scripted :class:`ChatService` for the TUI tests and screenshots (contract p2p 2.0).

Events are pushed by the test (:meth:`FakeChatService.emit`); ``connect`` answers from a table of
scripted peers; ``send_text`` records what was sent and returns ``m1``, ``m2``, ...
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from enkrypted_shell.contracts import (
    ChatEvent,
    LinkClosedLocally,
    PeerStateChanged,
    PeerUnavailable,
    SessionEstablished,
)

ALICE_FP = "a1" * 32
BOB_FP = "b0b0" * 16
MALLORY_FP = "0bad" * 16
LAYERS = ("mls", "signal", "mlkem", "aes")


@dataclass
class FakeChatService:
    local_id: str = "alice-7f3k9q"
    fingerprint: str = ALICE_FP
    reachable: dict[str, str] = field(default_factory=lambda: {"bob": BOB_FP})
    sent: list[tuple[str, str]] = field(default_factory=list)
    typing: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    closed: bool = False

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[ChatEvent | None] = asyncio.Queue()

    def emit(self, event: ChatEvent) -> None:
        if isinstance(event, PeerStateChanged):
            self.states[event.peer_id] = event.state
        elif isinstance(event, SessionEstablished):
            self.states[event.peer_id] = "ready"
        self.queue.put_nowait(event)

    def established(
        self, peer_id: str, fingerprint: str, *, resumed: bool = False
    ) -> SessionEstablished:
        return SessionEstablished(
            peer_id,
            "B1",
            LAYERS,
            fingerprint,
            "".join(f"{i:05d}" for i in range(12345, 12357)),
            resumed,
        )

    async def connect(self, peer_id: str, timeout: float | None = None) -> SessionEstablished:
        if self.closed:
            raise LinkClosedLocally("closed")
        if peer_id not in self.reachable:
            raise PeerUnavailable(f"peer {peer_id!r} is not known to the broker")
        self.emit(PeerStateChanged(peer_id, "connecting"))
        event = self.established(peer_id, self.reachable[peer_id])
        self.emit(event)
        return event

    async def send_text(self, peer_id: str, text: str) -> str:
        if self.states.get(peer_id) not in ("ready", "reconnecting"):
            raise LinkClosedLocally(f"{peer_id} is not connected")
        self.sent.append((peer_id, text))
        return f"m{len(self.sent)}"

    async def send_typing(self, peer_id: str) -> None:
        self.typing.append(peer_id)

    async def events(self) -> AsyncIterator[ChatEvent]:
        while (event := await self.queue.get()) is not None:
            yield event

    def peers(self) -> Mapping[str, str]:
        return dict(self.states)

    async def disconnect(self, peer_id: str) -> None:
        if self.states.get(peer_id, "disconnected") != "disconnected":
            self.emit(PeerStateChanged(peer_id, "disconnected", "closed by us"))

    def export_state(self, peer_id: str) -> bytes | None:
        return f"state:{peer_id}".encode() if peer_id in self.states else None

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)
