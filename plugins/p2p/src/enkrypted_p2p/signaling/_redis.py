"""Presence and queues shared by several broker processes through Redis (``--redis URL``).

Keys (prefix ``enkrypted:broker:``): ``p:ID`` = ``node\\ntoken`` with an expiry the holding process
refreshes (a dead process's ids are freed after ``presence_ttl``); ``q:ID`` (list) and ``qm:ID``
(byte count) queue frames for an absent id; ``qexp`` (sorted set, score = creation time in ms)
finds expired queues; ``qtotal`` bounds all queues together.  Every check-and-change is one Lua
script, so the bounds and the id ownership hold across processes.  Frames for an id held by
another process are published on that process's channel ``n:NODE``.
"""

from __future__ import annotations

__all__ = ["RedisStore"]

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import P2PNetworkError
from ._store import ClaimOutcome, ForwardOutcome, Inbox, Kick, QueuedMessage, QueueLimits

LOG = logging.getLogger("enkrypted.broker")
PREFIX: Final = "enkrypted:broker:"
_T = TypeVar("_T")

_CLAIM = """
local v = redis.call('GET', KEYS[1])
local mine = ARGV[1] .. '\\n' .. ARGV[2]
if not v then
  redis.call('SET', KEYS[1], mine, 'PX', ARGV[3])
  return {'new', ''}
end
local nl = string.find(v, '\\n', 1, true)
local node = string.sub(v, 1, nl - 1)
if string.sub(v, nl + 1) == ARGV[2] then
  redis.call('SET', KEYS[1], mine, 'PX', ARGV[3])
  return {'takeover', node}
end
return {'taken', node}
"""

_DROP_QUEUE = """
local function drop_queue(q, m, zset, total, dst)
  local items = redis.call('LRANGE', q, 0, -1)
  local size = tonumber(redis.call('HGET', m, 'bytes') or '0')
  redis.call('DEL', q, m)
  redis.call('ZREM', zset, dst)
  if size > 0 then redis.call('DECRBY', total, size) end
  return items
end
"""

_RELEASE = _DROP_QUEUE + """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
if ARGV[2] == '1' then drop_queue(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[3]) end
return 1
"""

_FORWARD = """
local v = redis.call('GET', KEYS[1])
if v then
  local node = string.sub(v, 1, string.find(v, '\\n', 1, true) - 1)
  redis.call('PUBLISH', ARGV[9] .. 'n:' .. node, 'm\\n' .. ARGV[2] .. '\\n' .. ARGV[1])
  return 'delivered'
end
if ARGV[8] ~= '1' then return 'dropped' end
local size = string.len(ARGV[1])
local count = redis.call('LLEN', KEYS[2])
local qbytes = tonumber(redis.call('HGET', KEYS[3], 'bytes') or '0')
local total = tonumber(redis.call('GET', KEYS[5]) or '0')
if count == 0 and redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[7]) then return 'full' end
if count >= tonumber(ARGV[4]) or qbytes + size > tonumber(ARGV[5])
   or total + size > tonumber(ARGV[6]) then return 'full' end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'bytes', size)
redis.call('INCRBY', KEYS[5], size)
if count == 0 then redis.call('ZADD', KEYS[4], 'NX', ARGV[3], ARGV[2]) end
redis.call('PEXPIRE', KEYS[2], ARGV[10])
redis.call('PEXPIRE', KEYS[3], ARGV[10])
return 'queued'
"""

_DRAIN = _DROP_QUEUE + """
return drop_queue(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
"""

_TAKE_EXPIRED = _DROP_QUEUE + """
local dsts = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, dst in ipairs(dsts) do
  local items = drop_queue(ARGV[3] .. 'q:' .. dst, ARGV[3] .. 'qm:' .. dst, KEYS[1], KEYS[2], dst)
  table.insert(out, dst)
  table.insert(out, items)
end
return out
"""


def _entry(message: QueuedMessage) -> str:
    return f"{message.src}\n{int(message.queueable)}\n{message.text}"


def _parse_entry(dst: str, raw: str) -> QueuedMessage:
    src, queueable, text = raw.split("\n", 2)
    return QueuedMessage(src, dst, text, queueable == "1")


class RedisStore:
    """:class:`~._store.SignalingStore` over one Redis server (redis-py asyncio)."""

    def __init__(self, url: str, limits: QueueLimits, node: str, presence_ttl: float = 30.0,
                 backstop_ttl: float = 300.0, prefix: str = PREFIX) -> None:
        self.node = node
        self._limits = limits
        self._ttl_ms = int(presence_ttl * 1000)
        self._backstop_ms = int(backstop_ttl * 1000)
        self._p = prefix
        self._redis: aioredis.Redis = aioredis.Redis.from_url(url, decode_responses=True)
        self._scripts = {name: self._redis.register_script(src) for name, src in (
            ("claim", _CLAIM), ("release", _RELEASE), ("forward", _FORWARD), ("drain", _DRAIN),
            ("expired", _TAKE_EXPIRED))}
        self._listener: asyncio.Task[None] | None = None

    async def _call(self, op: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await op()
        except (RedisError, OSError) as exc:
            raise P2PNetworkError(f"redis: {exc}") from exc

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._call(lambda: self._scripts[name](keys=keys, args=args))

    def _queue_keys(self, dst: str) -> list[str]:
        return [self._p + "q:" + dst, self._p + "qm:" + dst, self._p + "qexp", self._p + "qtotal"]

    # ------------------------------------------------------------------------ lifecycle
    async def start(self, inbox: Inbox, kick: Kick) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._call(lambda: pubsub.subscribe(self._p + "n:" + self.node))
        self._listener = asyncio.create_task(self._listen(pubsub, inbox, kick))

    async def _listen(self, pubsub: Any, inbox: Inbox, kick: Kick) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                LOG.warning('{"event": "store.error", "error": %r}', str(exc))
                await asyncio.sleep(1.0)
                continue
            if not message or not isinstance(message.get("data"), str):
                continue
            try:
                await self._dispatch(message["data"], inbox, kick)
            except Exception as exc:  # one bad publication must not stop routing
                LOG.warning('{"event": "store.inbox_error", "error": %r}', repr(exc))

    async def _dispatch(self, data: str, inbox: Inbox, kick: Kick) -> None:
        kind, _, rest = data.partition("\n")
        if kind == "m":
            dst, _, entry = rest.partition("\n")
            await inbox(_parse_entry(dst, entry))
        elif kind == "k":
            peer_id, _, token = rest.partition("\n")
            await kick(peer_id, token)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    # ------------------------------------------------------------------------ presence
    async def claim(self, peer_id: str, token: str, now: float) -> ClaimOutcome:
        kind, node = await self._script("claim", [self._p + "p:" + peer_id],
                                        [self.node, token, self._ttl_ms])
        if kind == "takeover" and node and node != self.node:
            channel = self._p + "n:" + node
            await self._call(lambda: self._redis.publish(channel, f"k\n{peer_id}\n{token}"))
        return {"new": ClaimOutcome.NEW, "takeover": ClaimOutcome.TAKEOVER}.get(
            kind, ClaimOutcome.TAKEN)

    async def release(self, peer_id: str, token: str, clear_queue: bool) -> None:
        keys = [self._p + "p:" + peer_id, *self._queue_keys(peer_id)]
        await self._script("release", keys, [f"{self.node}\n{token}", int(clear_queue), peer_id])

    async def refresh(self, peer_ids: Sequence[str]) -> None:
        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for peer_id in peer_ids:
                    pipe.pexpire(self._p + "p:" + peer_id, self._ttl_ms)
                await pipe.execute()
        await self._call(run)

    async def ids(self, limit: int) -> list[str]:
        async def run() -> list[str]:
            out: list[str] = []
            async for key in self._redis.scan_iter(match=self._p + "p:*", count=1000):
                out.append(key[len(self._p) + 2:])
                if len(out) >= limit:
                    break
            return out
        return await self._call(run)

    # ------------------------------------------------------------------------ queues
    async def forward(self, message: QueuedMessage, now: float) -> ForwardOutcome:
        lim = self._limits
        keys = [self._p + "p:" + message.dst, *self._queue_keys(message.dst)]
        args = [_entry(message), message.dst, int(now * 1000), lim.max_msgs_per_dst,
                lim.max_bytes_per_dst, lim.max_bytes_total, lim.max_queues, int(message.queueable),
                self._p, self._backstop_ms]
        return ForwardOutcome(await self._script("forward", keys, args))

    async def drain(self, peer_id: str) -> list[QueuedMessage]:
        items = await self._script("drain", self._queue_keys(peer_id), [peer_id])
        return [_parse_entry(peer_id, raw) for raw in items]

    async def take_expired(self, cutoff: float) -> list[list[QueuedMessage]]:
        flat = await self._script("expired", [self._p + "qexp", self._p + "qtotal"],
                                  [int(cutoff * 1000), 100, self._p])
        return [[_parse_entry(dst, raw) for raw in items]
                for dst, items in zip(flat[::2], flat[1::2], strict=True)]
