"""Presence and queues shared by several broker processes through Redis (``--redis URL``).

Keys (prefix ``enkrypted:broker:``): ``p:ID`` = ``node\\ntoken`` with an expiry the holding process
refreshes (a dead process's ids are freed after ``presence_ttl``); ``q:ID`` (list) and ``qm:ID``
(byte count) queue frames for an absent id; ``qexp`` (sorted set, score = creation time in ms)
finds expired queues; ``qtotal`` bounds all queues together.  Every check-and-change is one Lua
script, so the bounds and the id ownership hold across processes.

Relay between processes: each process subscribes to its channel ``n:NODE`` and to ``inv``.  The
forwards of one event-loop tick leave in one pipeline per lane (one round trip): frames for an id
whose broker is in the :class:`~._store.PresenceCache` are published straight to that broker, one
publication per broker; the rest go through the forward script, which looks presence up (and
answers where each id lives, to fill the cache), publishes to the holder or queues with the bounds
(also when the holder's publication has no listener: its broker died before its presence expired).
A release or a takeover publishes the id on ``inv`` (every process forgets it); a publication
nobody received (the broker died) makes the sender forget that broker and route the frames again
through the script.  Ordering per (src, dst) holds: a dst always falls in the same lane, a lane
flushes one pipeline at a time and starts the next only once Redis has answered the last (so has
run it), and in one flush every frame for one dst takes the same path.
"""

from __future__ import annotations

__all__ = ["RedisStore"]

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from ..errors import P2PNetworkError
from ._store import (
    ClaimOutcome,
    ForwardOutcome,
    Inbox,
    Kick,
    PresenceCache,
    QueuedMessage,
    QueueLimits,
)

LOG = logging.getLogger("enkrypted.broker")
PREFIX: Final = "enkrypted:broker:"
BATCH: Final = 512
LANES: Final = 4
"""Flushes in flight at once.  Each destination id belongs to one lane (its hash), and a lane sends
one pipeline at a time, so frames for one id still leave in order; other ids do not wait behind a
pipeline whose answer is not back (with two brokers over Redis: +7-20 % relay rate, bench)."""
MAX_BATCHED: Final = 20_000
"""Frames waiting for Redis; beyond it forwards are dropped (bounded memory if Redis stalls)."""
MAX_CONNECTIONS: Final = 32
"""Redis connections per broker process (the pub/sub listener has its own)."""
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
  redis.call('PUBLISH', ARGV[4] .. 'inv', 'i\\n' .. ARGV[5])
  if node ~= ARGV[1] then
    redis.call('PUBLISH', ARGV[4] .. 'n:' .. node, 'k\\n' .. ARGV[5] .. '\\n' .. ARGV[2])
  end
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
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[4] .. 'inv', 'i\\n' .. ARGV[3])
end
if ARGV[2] == '1' then drop_queue(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[3]) end
return 1
"""

_FORWARD_MANY = """
-- ARGV[8]: records 'dst\\nsrc\\nqueueable\\ntext' joined by \\30 (JSON text escapes control
-- characters, ids are printable). One argument and four counts back (then dst, node pairs for
-- the presence caches): redis-py's per-argument encoding and per-item parsing cost more than
-- the work itself.
local p = ARGV[1]
local now, max_msgs, max_dst, max_total = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local max_queues, backstop, batch = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local counts = {0, 0, 0, 0}  -- delivered, queued, full, dropped
local pubs, nodes, dead = {}, {}, {}

local function queue(rec)  -- for an absent id (or one whose broker has died): bounded
  local nl = string.find(rec, '\\n', 1, true)
  local dst, entry = string.sub(rec, 1, nl - 1), string.sub(rec, nl + 1)
  local nl2 = string.find(entry, '\\n', 1, true)
  if string.sub(entry, nl2 + 1, nl2 + 1) ~= '1' then
    counts[4] = counts[4] + 1
    return
  end
  local q, m, z, t = p .. 'q:' .. dst, p .. 'qm:' .. dst, p .. 'qexp', p .. 'qtotal'
  local size = string.len(entry)
  local count = redis.call('LLEN', q)
  local qbytes = tonumber(redis.call('HGET', m, 'bytes') or '0')
  local total = tonumber(redis.call('GET', t) or '0')
  if (count == 0 and redis.call('ZCARD', z) >= max_queues) or count >= max_msgs
     or qbytes + size > max_dst or total + size > max_total then
    counts[3] = counts[3] + 1
    return
  end
  redis.call('RPUSH', q, entry)
  redis.call('HINCRBY', m, 'bytes', size)
  redis.call('INCRBY', t, size)
  if count == 0 then redis.call('ZADD', z, 'NX', now, dst) end
  redis.call('PEXPIRE', q, backstop)
  redis.call('PEXPIRE', m, backstop)
  counts[2] = counts[2] + 1
end

local pos, len = 1, string.len(batch)
while pos <= len do
  local stop = string.find(batch, '\\30', pos, true) or (len + 1)
  local rec = string.sub(batch, pos, stop - 1)
  pos = stop + 1
  local dst = string.sub(rec, 1, string.find(rec, '\\n', 1, true) - 1)
  local node = nodes[dst]
  if node == nil then
    local v = redis.call('GET', p .. 'p:' .. dst)
    node = v and string.sub(v, 1, string.find(v, '\\n', 1, true) - 1) or false
    nodes[dst] = node
  end
  if node then
    if not pubs[node] then pubs[node] = {} end
    table.insert(pubs[node], rec)
  else
    queue(rec)
  end
end
for node, list in pairs(pubs) do
  if redis.call('PUBLISH', p .. 'n:' .. node, 'b\\30' .. table.concat(list, '\\30')) > 0 then
    counts[1] = counts[1] + #list
  else  -- nobody listens: that broker died, its presence has not expired yet
    dead[node] = true
    for _, rec in ipairs(list) do queue(rec) end
  end
end
for dst, node in pairs(nodes) do
  if node and not dead[node] then
    table.insert(counts, dst)
    table.insert(counts, node)
  end
end
return counts
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
    return QueuedMessage(src, dst, text, queueable == "1", routed=True)


def _record(message: QueuedMessage) -> str:
    return f"{message.dst}\n{_entry(message)}"


class RedisStore:
    """:class:`~._store.SignalingStore` over one Redis server (redis-py asyncio)."""

    def __init__(self, url: str, limits: QueueLimits, node: str, presence_ttl: float = 30.0,
                 backstop_ttl: float = 300.0, prefix: str = PREFIX, cache_ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self._limits = limits
        self._ttl_ms = int(presence_ttl * 1000)
        self._backstop_ms = int(backstop_ttl * 1000)
        self._p = prefix
        # Blocking: a burst of claims/releases (hundreds of sockets closing at once) waits for a
        # connection instead of failing with "Too many connections" and losing a flush.
        # RESP2: redis-py 8's RESP3 pub/sub push handler formats every publication into a debug
        # string even when debug logging is off, ~8 % of a relaying broker's CPU (a publication
        # carries a whole batch of frames).  Nothing here needs RESP3.
        pool = aioredis.BlockingConnectionPool.from_url(url, decode_responses=True, protocol=2,
                                                        max_connections=MAX_CONNECTIONS, timeout=10)
        self._redis: aioredis.Redis = aioredis.Redis.from_pool(pool)  # closed with it
        self._scripts = {name: self._redis.register_script(src) for name, src in (
            ("claim", _CLAIM), ("release", _RELEASE), ("forward", _FORWARD_MANY), ("drain", _DRAIN),
            ("expired", _TAKE_EXPIRED))}
        self.cache = PresenceCache(cache_ttl)
        self._clock = clock
        self._listener: asyncio.Task[None] | None = None
        self._lanes: list[list[QueuedMessage]] = [[] for _ in range(LANES)]
        self._flushers: list[asyncio.Task[None] | None] = [None] * LANES
        self.published = 0
        """Frames sent straight to their broker (presence cache hits), for the benchmark."""
        self.scripted = 0
        """Frames sent through the forward script (cache misses, queued, rerouted)."""
        self.flushes = 0
        """Pipelines sent (frames per pipeline = how well the forwards of a tick are batched)."""

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
        await self._call(lambda: self._redis.script_load(_FORWARD_MANY))  # evalsha in pipelines
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._call(lambda: pubsub.subscribe(self._p + "n:" + self.node, self._p + "inv"))
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
        if data.startswith("b\x1e"):
            records = data[2:].split("\x1e")  # JSON escapes control characters
            await inbox([_parse_entry(*record.split("\n", 1)) for record in records])
            return
        kind, _, rest = data.partition("\n")
        if kind == "i":  # released or taken over: where it lived is no longer known
            self.cache.forget(rest)
        elif kind == "k":
            peer_id, _, token = rest.partition("\n")
            await kick(peer_id, token)

    async def close(self) -> None:
        LOG.info('{"event": "store.closed", "published": %d, "scripted": %d, "flushes": %d}',
                 self.published, self.scripted, self.flushes)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    # ------------------------------------------------------------------------ presence
    async def claim(self, peer_id: str, token: str, now: float) -> ClaimOutcome:
        self.cache.forget(peer_id)  # it is about to live here, or it is someone else's
        kind, _node = await self._script("claim", [self._p + "p:" + peer_id],
                                         [self.node, token, self._ttl_ms, self._p, peer_id])
        return {"new": ClaimOutcome.NEW, "takeover": ClaimOutcome.TAKEOVER}.get(
            kind, ClaimOutcome.TAKEN)

    async def release(self, peer_id: str, token: str, clear_queue: bool) -> None:
        keys = [self._p + "p:" + peer_id, *self._queue_keys(peer_id)]
        await self._script("release", keys, [f"{self.node}\n{token}", int(clear_queue), peer_id,
                                             self._p])

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

    # ------------------------------------------------------------------------ relay and queues
    async def forward(self, message: QueuedMessage, now: float) -> ForwardOutcome:
        return self.submit(message, now)

    def submit(self, message: QueuedMessage, now: float) -> ForwardOutcome:
        """Batched: the forwards of one loop iteration leave in one pipeline per lane (see the
        module)."""
        if sum(map(len, self._lanes)) >= MAX_BATCHED:
            return ForwardOutcome.FULL
        lane = hash(message.dst) % LANES
        self._lanes[lane].append(message)
        flusher = self._flushers[lane]
        if flusher is None or flusher.done():
            self._flushers[lane] = asyncio.create_task(self._flush(lane))
        return ForwardOutcome.SUBMITTED

    async def _flush(self, lane: int) -> None:
        while self._lanes[lane]:
            waiting = self._lanes[lane]
            batch, self._lanes[lane] = waiting[:BATCH], waiting[BATCH:]
            try:
                await self._flush_batch(batch, lane)
            except P2PNetworkError as exc:
                LOG.warning('{"event": "store.error", "dropped": %d, "error": %r}', len(batch),
                            str(exc))

    def _split(self, batch: list[QueuedMessage], now: float) -> tuple[list[str],
                                                                    dict[str, list[QueuedMessage]]]:
        """Frames for the forward script, and frames per broker known to hold their dst."""
        scripted: list[str] = []
        direct: dict[str, list[QueuedMessage]] = {}
        decided: dict[str, str | None] = {}  # one path per dst in one flush (ordering)
        for message in batch:
            if message.dst not in decided:
                node = None if message.routed else self.cache.get(message.dst, now)
                decided[message.dst] = None if node == self.node else node
            node = decided[message.dst]
            if node is None:
                scripted.append(_record(message))
            else:
                direct.setdefault(node, []).append(message)
        return scripted, direct

    async def _flush_batch(self, batch: list[QueuedMessage], lane: int) -> None:
        now = self._clock()
        scripted, direct = self._split(batch, now)
        lim = self._limits
        args: list[Any] = [self._p, int(time.time() * 1000), lim.max_msgs_per_dst,
                           lim.max_bytes_per_dst, lim.max_bytes_total, lim.max_queues,
                           self._backstop_ms, "\x1e".join(scripted)]

        async def run(publish: bool) -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                if scripted:
                    pipe.evalsha(self._scripts["forward"].sha, 0, *args)
                for node, messages in direct.items() if publish else ():
                    pipe.publish(self._p + "n:" + node,
                                 "b\x1e" + "\x1e".join(map(_record, messages)))
                return list(await pipe.execute(raise_on_error=False))

        self.flushes += 1
        results = await self._call(lambda: run(True))
        if scripted and isinstance(results[0], NoScriptError):  # Redis restarted: load, once more
            await self._call(lambda: self._redis.script_load(_FORWARD_MANY))
            results[0] = (await self._call(lambda: run(False)))[0]
        for result in results:
            if isinstance(result, Exception):
                raise P2PNetworkError(f"redis: {result}")
        self.scripted += len(scripted)
        if scripted:
            found = results.pop(0)[4:]
            for dst, node in zip(found[::2], found[1::2], strict=True):
                self.cache.learn(dst, node, now)
        self._reroute_unheard(direct, results, lane)

    def _reroute_unheard(self, direct: dict[str, list[QueuedMessage]], receivers: list[Any],
                         lane: int) -> None:
        """A publication nobody received: that broker is gone; route its frames through the
        script (presence decides: its successor, the queue, or nothing)."""
        again: list[QueuedMessage] = []
        for (node, messages), heard in zip(direct.items(), receivers, strict=True):
            if heard:
                self.published += len(messages)
                continue
            self.cache.forget_node(node)
            again.extend(QueuedMessage(m.src, m.dst, m.text, m.queueable, routed=True)
                         for m in messages)
        if again:
            LOG.warning('{"event": "store.node_gone", "rerouted": %d}', len(again))
            self._lanes[lane][:0] = again

    async def drain(self, peer_id: str) -> list[QueuedMessage]:
        items = await self._script("drain", self._queue_keys(peer_id), [peer_id])
        return [_parse_entry(peer_id, raw) for raw in items]

    async def take_expired(self, cutoff: float) -> list[list[QueuedMessage]]:
        flat = await self._script("expired", [self._p + "qexp", self._p + "qtotal"],
                                  [int(cutoff * 1000), 100, self._p])
        return [[_parse_entry(dst, raw) for raw in items]
                for dst, items in zip(flat[::2], flat[1::2], strict=True)]
