"""Where presence and queues live: the broker core's storage port, and its in-memory form.

The routing core (:mod:`._broker`) never touches storage; it emits effects (``Claim``,
``Forward``, ``Drain``, ...) that its driver carries out against a :class:`SignalingStore` and
feeds back.  One process uses :class:`MemoryStore`; several share :class:`._redis.RedisStore`.
Both keep the queue bounds (per destination and in total) atomically, so the core stays the same.
"""

from __future__ import annotations

__all__ = [
    "ClaimOutcome",
    "ForwardOutcome",
    "Inbox",
    "MemoryStore",
    "PresenceCache",
    "QueueLimits",
    "QueuedMessage",
    "SignalingStore",
    "same_token",
]

import enum
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


def same_token(held: str, offered: str) -> bool:
    """Token comparison in constant time (a timing side channel would leak the owner's token)."""
    return hmac.compare_digest(held.encode("utf-8", "surrogatepass"),
                               offered.encode("utf-8", "surrogatepass"))

class ClaimOutcome(enum.Enum):
    NEW = "new"
    """The id was free; it is ours now."""
    TAKEOVER = "takeover"
    """The id was held with the same token (elsewhere, or stale): it is ours now."""
    TAKEN = "taken"
    """Held with another token: refuse (``ID-TAKEN``)."""


class ForwardOutcome(enum.Enum):
    DELIVERED = "delivered"  # handed to the broker process that holds the destination
    QUEUED = "queued"
    FULL = "full"  # a queue bound was reached: dropped
    DROPPED = "dropped"  # destination absent and the type is not queued (LEAVE, EXPIRE)
    SUBMITTED = "submitted"  # batched for another process; the outcome is not known yet


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A frame (already JSON text, ``src`` set by the broker) on its way to ``dst``."""

    src: str
    dst: str
    text: str
    queueable: bool = True
    routed: bool = False
    """Another broker process sent it here: route it by Redis's presence, never by a cached guess
    (two stale caches pointing at each other would otherwise bounce it)."""


@dataclass(frozen=True, slots=True)
class QueueLimits:
    max_msgs_per_dst: int
    max_bytes_per_dst: int
    max_bytes_total: int
    max_queues: int


Inbox = Callable[[list[QueuedMessage]], Awaitable[None]]
"""Called with the messages (in order) of one publication another broker process routed here."""
Kick = Callable[[str, str], Awaitable[None]]
"""Called with ``(peer_id, token)`` when another process took over an id held here."""


class PresenceCache:
    """Where ids live (id -> broker node), learned from the store's answers (sans-I/O, ``now``
    passed in).  An entry lives ``ttl`` seconds at most; the store also forgets an id when Redis
    announces that it left or was taken over, and a whole node when it has no subscriber (dead).
    At most ``max_entries`` ids are kept (the oldest learned go first)."""

    def __init__(self, ttl: float, max_entries: int = 65_536) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._where: dict[str, tuple[str, float]] = {}  # id -> (node, expires); learn order

    def __len__(self) -> int:
        return len(self._where)

    def get(self, peer_id: str, now: float) -> str | None:
        hit = self._where.get(peer_id)
        if hit is None:
            return None
        if hit[1] <= now:
            del self._where[peer_id]
            return None
        return hit[0]

    def learn(self, peer_id: str, node: str, now: float) -> None:
        self._where.pop(peer_id, None)
        while len(self._where) >= self._max:
            del self._where[next(iter(self._where))]
        self._where[peer_id] = (node, now + self._ttl)

    def forget(self, peer_id: str) -> None:
        self._where.pop(peer_id, None)

    def forget_node(self, node: str) -> int:
        gone = [peer_id for peer_id, (held, _) in self._where.items() if held == node]
        for peer_id in gone:
            del self._where[peer_id]
        return len(gone)


@runtime_checkable
class SignalingStore(Protocol):
    """Presence (id -> token, broker process) and per-destination queues."""

    node: str

    async def start(self, inbox: Inbox, kick: Kick) -> None: ...
    async def close(self) -> None: ...
    async def claim(self, peer_id: str, token: str, now: float) -> ClaimOutcome: ...
    async def release(self, peer_id: str, token: str, clear_queue: bool) -> None: ...
    async def forward(self, message: QueuedMessage, now: float) -> ForwardOutcome: ...
    def submit(self, message: QueuedMessage, now: float) -> ForwardOutcome:
        """:meth:`forward` without waiting: every store decides (memory) or batches (Redis) at
        once, so the driver relays a frame without a task switch."""
        ...
    async def drain(self, peer_id: str) -> list[QueuedMessage]: ...
    async def take_expired(self, cutoff: float) -> list[list[QueuedMessage]]: ...
    async def refresh(self, peer_ids: Sequence[str]) -> None: ...
    async def ids(self, limit: int) -> list[str]: ...


@dataclass(slots=True)
class _Queue:
    created: float
    messages: list[QueuedMessage] = field(default_factory=list)
    size: int = 0


class MemoryStore:
    """Presence and queues of a single broker process."""

    def __init__(self, limits: QueueLimits, node: str = "local") -> None:
        self.node = node
        self._limits = limits
        self._presence: dict[str, str] = {}  # id -> token
        self._queues: dict[str, _Queue] = {}  # insertion order = creation order
        self._total = 0

    @property
    def queued_bytes(self) -> int:
        return self._total

    async def start(self, inbox: Inbox, kick: Kick) -> None:
        return None  # nobody else routes to us

    async def close(self) -> None:
        return None

    async def claim(self, peer_id: str, token: str, now: float) -> ClaimOutcome:
        held = self._presence.get(peer_id)
        if held is None:
            self._presence[peer_id] = token
            return ClaimOutcome.NEW
        return ClaimOutcome.TAKEOVER if same_token(held, token) else ClaimOutcome.TAKEN

    async def release(self, peer_id: str, token: str, clear_queue: bool) -> None:
        held = self._presence.get(peer_id)
        if held is not None and same_token(held, token):
            del self._presence[peer_id]
        if clear_queue:
            self._drop_queue(peer_id)

    async def forward(self, message: QueuedMessage, now: float) -> ForwardOutcome:
        return self.submit(message, now)

    def submit(self, message: QueuedMessage, now: float) -> ForwardOutcome:
        # One process: a destination not connected to the core is not connected anywhere.
        if not message.queueable:
            return ForwardOutcome.DROPPED
        limits, size = self._limits, len(message.text)
        queue = self._queues.get(message.dst)
        if queue is None:
            if len(self._queues) >= limits.max_queues:
                return ForwardOutcome.FULL
            queue = _Queue(now)
        if (
            len(queue.messages) >= limits.max_msgs_per_dst
            or queue.size + size > limits.max_bytes_per_dst
            or self._total + size > limits.max_bytes_total
        ):
            return ForwardOutcome.FULL
        self._queues.setdefault(message.dst, queue)
        queue.messages.append(message)
        queue.size += size
        self._total += size
        return ForwardOutcome.QUEUED

    def _drop_queue(self, peer_id: str) -> list[QueuedMessage]:
        queue = self._queues.pop(peer_id, None)
        if queue is None:
            return []
        self._total -= queue.size
        return queue.messages

    async def drain(self, peer_id: str) -> list[QueuedMessage]:
        return self._drop_queue(peer_id)

    async def take_expired(self, cutoff: float) -> list[list[QueuedMessage]]:
        # peer: a queue expires expire_timeout after it was created (its lastReadAt never moves
        # before delivery), so creation order is expiry order.
        out: list[list[QueuedMessage]] = []
        for dst in list(self._queues):
            if self._queues[dst].created > cutoff:
                break
            out.append(self._drop_queue(dst))
        return out

    async def refresh(self, peer_ids: Sequence[str]) -> None:
        return None

    async def ids(self, limit: int) -> list[str]:
        return list(self._presence)[:limit]
