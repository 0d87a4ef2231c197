"""The broker's routing core without sockets: events in, effects out, ``now`` passed in.  The
harness plays the driver's part against :class:`MemoryStore` (whose coroutines never suspend)."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any

import pytest

from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.signaling import BrokerConfig, BrokerCore, MemoryStore
from enkrypted_p2p.signaling._broker import (
    CLOSE_TAKEN_OVER,
    Claim,
    Close,
    Drain,
    Effect,
    Forward,
    Log,
    Refresh,
    Release,
    Send,
    SweepQueues,
)
from enkrypted_p2p.signaling._limits import (
    FailureThrottle,
    address_key,
    client_address,
    parse_networks,
)
from enkrypted_p2p.signaling._server import queue_limits
from enkrypted_p2p.signaling._store import PresenceCache


def sync(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("MemoryStore suspended")


class Harness:
    def __init__(self, **overrides: Any) -> None:
        self.config = BrokerConfig(**overrides)
        self.store = MemoryStore(queue_limits(self.config))
        self.core = BrokerCore(self.config, now=0.0)
        self.sent: dict[int, list[dict[str, Any]]] = {}
        self.closed: dict[int, int] = {}
        self.logs: list[Log] = []
        self.now = 0.0

    def run(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Send):
                if e.conn in self.closed:
                    assert e.src and e.dst
                    self.run(self.core.undeliverable(e.src, e.dst))
                else:
                    self.sent.setdefault(e.conn, []).append(json.loads(e.text))
            elif isinstance(e, Close):
                self.closed[e.conn] = e.code
            elif isinstance(e, Claim):
                self.run(self.core.claimed(e.conn, sync(self.store.claim(e.peer_id, e.token, self.now)), self.now))
            elif isinstance(e, Release):
                sync(self.store.release(e.peer_id, e.token, e.clear_queue))
            elif isinstance(e, Forward):
                self.core.forwarded(e.message, sync(self.store.forward(e.message, self.now)))
            elif isinstance(e, Drain):
                self.run(self.core.queued(e.conn, sync(self.store.drain(e.peer_id))))
            elif isinstance(e, SweepQueues):
                self.run(self.core.expired(sync(self.store.take_expired(e.cutoff))))
            elif isinstance(e, Log):
                self.logs.append(e)
            else:
                assert isinstance(e, Refresh)

    def connect(self, conn: int, peer_id: str, token: str = "t", key: str = "peerjs",
                remote: str = "127.0.0.1") -> list[dict[str, Any]]:
        self.run(self.core.connect(conn, {"id": peer_id, "token": token, "key": key}, self.now, remote))
        return self.sent.get(conn, [])

    def send(self, conn: int, frame: Any) -> None:
        data = frame if isinstance(frame, str | bytes) else json.dumps(frame)
        self.run(self.core.frame(conn, data, self.now))

    def advance(self, seconds: float, step: float = 0.1) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            self.run(self.core.tick(self.now))

    def disconnect(self, conn: int) -> None:
        self.closed.setdefault(conn, 1006)
        self.run(self.core.disconnected(conn, self.now))


def test_defaults_equal_npm_peer() -> None:
    c = BrokerConfig()
    assert (c.key, c.path, c.expire_timeout, c.alive_timeout, c.concurrent_limit,
            c.allow_discovery, c.cleanup_out_msgs, c.alive_check_interval) == (
        "peerjs", "/", 5.0, 90.0, 5000, False, 1.0, 0.3)
    with pytest.raises(P2PUsageError):
        BrokerConfig(path="no-slash")


def test_registration_outcomes() -> None:
    h = Harness()
    assert h.connect(1, "alice") == [{"type": "OPEN"}]
    assert h.connect(2, "alice", token="other") == [
        {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}]
    assert 2 in h.closed and 1 not in h.closed
    assert h.connect(3, "", token="x") == [{"type": "ERROR", "payload": {
        "msg": "No id, token, or key supplied to websocket server"}}]
    assert h.connect(4, "bob", key="wrong") == [{"type": "ERROR", "payload": {"msg": "Invalid key provided"}}]
    assert h.connect(5, "bad\nid")[0]["type"] == "ERROR"


def test_concurrent_limit() -> None:
    h = Harness(concurrent_limit=2)
    h.connect(1, "a")
    h.connect(2, "b")
    assert h.connect(3, "c") == [{"type": "ERROR", "payload": {
        "msg": "Server has reached its concurrent user limit"}}]
    h.disconnect(1)
    assert h.connect(4, "c") == [{"type": "OPEN"}]


def test_relay_overwrites_src_and_forwards_only_four_fields() -> None:
    h = Harness()
    h.connect(1, "alice")
    h.connect(2, "bob")
    h.send(1, {"type": "OFFER", "src": "mallory", "dst": "bob", "payload": {"sdp": 1},
               "extra": "dropped"})
    assert h.sent[2][-1] == {"type": "OFFER", "src": "alice", "dst": "bob", "payload": {"sdp": 1}}
    h.send(2, {"type": "ANSWER", "dst": "alice", "payload": {}})
    h.send(2, {"type": "CANDIDATE", "dst": "alice", "payload": {"c": 1}})
    assert [m["type"] for m in h.sent[1][1:]] == ["ANSWER", "CANDIDATE"]
    assert h.core.stats.relayed == 3


def test_queue_then_expire_once_per_pair() -> None:
    h = Harness()
    h.connect(1, "alice")
    for kind in ("OFFER", "CANDIDATE", "CANDIDATE"):
        h.send(1, {"type": kind, "dst": "ghost", "payload": {}})
    h.send(1, {"type": "LEAVE", "dst": "ghost"})  # not queued
    assert h.store.queued_bytes > 0 and h.core.stats.queued == 3
    h.advance(4.5)
    assert h.sent[1] == [{"type": "OPEN"}]
    h.advance(2.0)  # 5 s expire_timeout, swept every 1 s
    assert h.sent[1][1:] == [{"type": "EXPIRE", "src": "ghost", "dst": "alice"}]
    assert h.store.queued_bytes == 0


def test_queued_messages_are_delivered_on_registration() -> None:
    h = Harness()
    h.connect(1, "alice")
    h.send(1, {"type": "OFFER", "dst": "bob", "payload": {"n": 1}})
    h.send(1, {"type": "CANDIDATE", "dst": "bob", "payload": {"n": 2}})
    h.advance(2.0)
    assert h.connect(2, "bob") == [
        {"type": "OPEN"},
        {"type": "OFFER", "src": "alice", "dst": "bob", "payload": {"n": 1}},
        {"type": "CANDIDATE", "src": "alice", "dst": "bob", "payload": {"n": 2}},
    ]


def test_same_token_takes_over_without_open() -> None:
    h = Harness()
    h.connect(1, "alice", token="tok")
    h.connect(9, "bob")
    assert h.connect(2, "alice", token="tok") == []  # npm peer rebinds silently
    assert h.closed[1] == CLOSE_TAKEN_OVER
    h.disconnect(1)  # the old socket's close must not free the id
    h.send(9, {"type": "OFFER", "dst": "alice", "payload": {}})
    assert h.sent[2][-1]["src"] == "bob"


def test_alive_timeout_frees_the_id_and_clears_its_queue() -> None:
    h = Harness(alive_timeout=10.0, expire_timeout=60.0)
    h.connect(1, "quiet")
    h.connect(2, "chatty")
    h.send(2, {"type": "OFFER", "dst": "absent", "payload": {}})
    for _ in range(3):
        h.advance(4.0)
        h.send(2, {"type": "HEARTBEAT"})
    assert 1 in h.closed and 2 not in h.closed  # relayed frames do not count, HEARTBEAT does
    assert h.connect(3, "quiet", token="new") == [{"type": "OPEN"}]


def test_leave_without_dst_unregisters() -> None:
    h = Harness()
    h.connect(1, "alice")
    h.send(1, {"type": "LEAVE"})
    assert 1 in h.closed and h.connect(2, "alice", token="x") == [{"type": "OPEN"}]


def test_rate_size_and_invalid_limits() -> None:
    h = Harness(rate_per_s=10.0, rate_burst=5, max_invalid_frames=3, max_frame_bytes=200)
    h.connect(1, "flood")
    for _ in range(6):
        h.send(1, {"type": "HEARTBEAT"})
    assert h.sent[1][-1] == {"type": "ERROR", "payload": {"msg": "Rate limit exceeded"}}
    h.connect(2, "junk")
    for bad in ("{nope", "[1]", '{"type": 5}', '{"type":"BOGUS"}'):
        h.send(2, bad)
    assert h.sent[2][-1] == {"type": "ERROR", "payload": {"msg": "Too many invalid messages"}}
    h.connect(3, "big")
    h.send(3, {"type": "OFFER", "dst": "x", "payload": "y" * 300})
    assert h.sent[3][-1] == {"type": "ERROR", "payload": {"msg": "Message too big"}}
    assert h.closed[3] == 1009


def test_queue_bounds_per_destination_and_total() -> None:
    h = Harness(max_queued_msgs_per_dst=3, max_queued_bytes_total=10_000, rate_burst=1000)
    h.connect(1, "alice")
    for _ in range(5):
        h.send(1, {"type": "OFFER", "dst": "victim", "payload": {}})
    assert (h.core.stats.queued, h.core.stats.queue_full) == (3, 2)
    for i in range(200):
        h.send(1, {"type": "OFFER", "dst": f"v{i}", "payload": "p" * 100})
    assert h.store.queued_bytes <= 10_000 and h.core.stats.queue_full > 100


def test_send_failure_returns_leave_to_sender() -> None:
    h = Harness()
    h.connect(1, "alice")
    h.connect(2, "bob")
    h.closed[2] = 1006  # bob's socket died; the core has not heard yet
    h.send(1, {"type": "OFFER", "dst": "bob", "payload": {}})
    assert h.sent[1][-1] == {"type": "LEAVE", "src": "bob", "dst": "alice"}


def test_logs_never_carry_payloads() -> None:
    h = Harness(max_invalid_frames=100)
    h.connect(1, "alice")
    h.connect(2, "bob")
    secret = "v=0 o=- SECRET-SDP"
    h.send(1, {"type": "OFFER", "dst": "bob", "payload": {"sdp": {"sdp": secret}}})
    h.send(1, json.dumps({"type": "WHAT", "payload": secret}))
    h.send(1, '{"type": "OFFER", "payload": "' + secret)
    h.disconnect(1)
    assert h.logs and all(secret not in repr(log) for log in h.logs)


def test_claim_answered_after_the_socket_closed_gives_the_id_back() -> None:
    h = Harness()
    effects = h.core.connect(1, {"id": "ann", "token": "t", "key": "peerjs"}, 0.0)
    claim = effects[0]
    assert isinstance(claim, Claim)
    outcome = sync(h.store.claim("ann", "t", 0.0))
    h.run(h.core.disconnected(1, 0.0))
    h.run(h.core.claimed(1, outcome, 0.0))
    assert h.connect(2, "ann", token="other") == [{"type": "OPEN"}]


# ---------------------------------------------------------------------------- abuse limits
PER_IP = {"type": "ERROR", "payload": {"msg": "Too many connections from this address"}}
THROTTLED = {"type": "ERROR", "payload": {"msg": "Too many failed attempts"}}
TAKEN = {"type": "ID-TAKEN", "payload": {"msg": "ID is taken"}}


def test_per_address_socket_limit_counts_loopback_and_frees_on_close() -> None:
    h = Harness(max_conns_per_ip=3)
    assert [h.connect(i, f"p{i}")[0]["type"] for i in range(1, 4)] == ["OPEN"] * 3
    assert h.connect(4, "p4") == [PER_IP] and h.closed[4] == 1008
    assert h.connect(5, "p5", remote="10.0.0.7") == [{"type": "OPEN"}]  # another address
    h.disconnect(4)  # the refused socket is not counted once gone
    assert h.connect(6, "p6") == [PER_IP]
    h.disconnect(6)
    h.disconnect(1)
    assert h.connect(7, "p7") == [{"type": "OPEN"}]


def test_wrong_tokens_for_a_held_id_are_throttled_per_id_then_refill() -> None:
    h = Harness(id_fail_burst=3, id_fail_rate=0.5, ip_fail_burst=1000)
    h.connect(1, "victim", token="secret")
    answers = [h.connect(10 + i, "victim", token=f"guess{i}", remote=f"10.0.0.{i}")
               for i in range(5)]
    assert answers == [[TAKEN]] * 3 + [[THROTTLED]] * 2  # bounded per id, whatever the address
    assert all(h.closed[10 + i] == (1000 if i < 3 else 1008) for i in range(5))
    assert h.core.stats.throttled == 2
    h.advance(2.0)  # one failure refilled at 0.5/s
    assert h.connect(21, "victim", token="guess9", remote="10.0.0.9") == [TAKEN]
    assert h.connect(22, "victim", token="guess10", remote="10.0.0.10") == [THROTTLED]
    assert h.connect(24, "other", remote="10.0.0.1") == [{"type": "OPEN"}]  # other ids untouched


def test_the_owners_token_is_never_throttled_by_failures_on_its_id() -> None:
    """Only failures meet the per-id bucket: the token is compared first, so guessers cannot lock
    the owner out of its own id (its reconnect with the right token takes the session over)."""
    h = Harness(id_fail_burst=3, id_fail_rate=0.2, ip_fail_burst=1000)
    h.connect(1, "victim", token="secret", remote="10.0.0.1")
    for i in range(11):  # the review's attack: wrong tokens from many addresses
        h.connect(100 + i, "victim", token=f"guess{i}", remote=f"2001:db8:{i}::1")
    assert h.connect(111, "victim", token="guess", remote="192.0.2.1") == [THROTTLED]
    h.connect(2, "victim", token="secret", remote="10.0.0.1")  # at once, no refill
    assert 2 not in h.closed and h.closed[1] == CLOSE_TAKEN_OVER
    h.send(2, {"type": "HEARTBEAT"})
    # the owner's socket drops for good and the id is released: its reconnect is a new claim
    h.disconnect(2)
    assert h.connect(3, "victim", token="secret", remote="198.51.100.7") == [{"type": "OPEN"}]
    assert h.connect(112, "victim", token="guess", remote="192.0.2.2") == [THROTTLED]  # still


def test_the_owners_token_wins_through_the_store_while_its_id_is_throttled() -> None:
    """The id held by another broker process: the store compares the token, and only a TAKEN
    answer is a failure."""
    elsewhere = Harness(id_fail_burst=2, ip_fail_burst=1000)
    h = Harness(id_fail_burst=2, ip_fail_burst=1000)
    h.store = elsewhere.store
    elsewhere.connect(1, "victim", token="secret")
    answers = [h.connect(10 + i, "victim", token=f"g{i}", remote=f"10.0.1.{i}") for i in range(4)]
    assert answers == [[TAKEN]] * 2 + [[THROTTLED]] * 2
    assert h.connect(20, "victim", token="secret", remote="10.0.0.1") == [{"type": "OPEN"}]


def test_a_wrong_guess_on_a_throttled_id_empties_the_address_bucket() -> None:
    """While an id is throttled each address gets one guess per 1/ip_fail_rate seconds, so many
    addresses cannot keep guessing at the per-id bucket's refill rate each."""
    h = Harness(id_fail_burst=1, id_fail_rate=0.01, ip_fail_burst=50, ip_fail_rate=1.0)
    h.connect(1, "victim", token="secret")
    assert h.connect(10, "victim", token="g0", remote="192.0.2.9") == [TAKEN]
    assert h.connect(11, "victim", token="g1", remote="192.0.2.9") == [THROTTLED]
    assert h.connect(12, "fresh", remote="192.0.2.9") == [THROTTLED]  # the address, for anything
    assert h.connect(13, "fresh", remote="192.0.2.10") == [{"type": "OPEN"}]
    h.advance(1.0)
    assert h.connect(14, "fresh2", remote="192.0.2.9") == [{"type": "OPEN"}]


def test_ipv6_clients_are_counted_per_64_and_ipv4_per_address() -> None:
    assert address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2::9") == address_key("2001:db8:1:2:ffff::1")
    assert address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("192.0.2.1") == "192.0.2.1" and address_key("192.0.2.2") == "192.0.2.2"
    assert address_key("") == "" and address_key("not-an-ip") == "not-an-ip"
    h = Harness(max_conns_per_ip=2, id_fail_burst=1000, ip_fail_burst=2)
    assert h.connect(1, "a", remote="2001:db8::1") == [{"type": "OPEN"}]
    assert h.connect(2, "b", remote="2001:db8::2") == [{"type": "OPEN"}]
    assert h.connect(3, "c", remote="2001:db8::3") == [PER_IP]  # the same /64
    assert h.connect(4, "c", remote="2001:db8:0:1::3") == [{"type": "OPEN"}]  # the next /64
    h.connect(5, "x", token="mine", remote="10.1.1.1")
    for i in range(2):
        assert h.connect(10 + i, "x", remote=f"2001:db8:0:2::{i + 1}") == [TAKEN]
        h.disconnect(10 + i)  # the refused socket closes: no longer counted against the /64
    assert h.connect(12, "fresh", remote="2001:db8:0:2::99") == [THROTTLED]  # failures too
    assert h.connect(13, "fresh", remote="2001:db8:0:3::99") == [{"type": "OPEN"}]


def test_an_address_that_keeps_failing_is_refused_until_its_bucket_refills() -> None:
    h = Harness(id_fail_burst=100, ip_fail_burst=4, ip_fail_rate=1.0)
    for i in range(4):
        h.connect(i + 1, f"held{i}", token="mine", remote="10.1.1.1")
    answers = [h.connect(10 + i, f"held{i % 4}", token="x", remote="192.0.2.9") for i in range(6)]
    assert answers == [[TAKEN]] * 4 + [[THROTTLED]] * 2
    assert h.connect(20, "fresh", remote="192.0.2.9") == [THROTTLED]  # every attempt from it
    assert h.connect(21, "fresh", remote="192.0.2.10") == [{"type": "OPEN"}]  # its neighbour
    h.advance(1.0)
    assert h.connect(22, "fresh2", remote="192.0.2.9") == [{"type": "OPEN"}]


def test_failure_throttle_keeps_a_bounded_number_of_keys() -> None:
    throttle = FailureThrottle(burst=1, rate=1.0, max_keys=100)
    for i in range(1000):
        throttle.fail(f"id{i}", now=0.0)
    assert len(throttle) == 100 and throttle.blocked("id999", 0.0) and not throttle.blocked("id0", 0.0)
    throttle.prune(now=5.0)  # refilled buckets are forgotten
    assert len(throttle) == 0


def test_forwarded_for_is_trusted_only_from_configured_proxies() -> None:
    proxies = parse_networks(["10.0.0.1", "192.168.0.0/16"])
    assert client_address("203.0.113.5", "198.51.100.1", proxies) == "203.0.113.5"  # not a proxy
    assert client_address("10.0.0.1", None, proxies) == "10.0.0.1"
    assert client_address("10.0.0.1", "198.51.100.1", proxies) == "198.51.100.1"
    # right-most hop that is not a proxy; the left entries are the client's own word
    assert client_address("10.0.0.1", "6.6.6.6, 198.51.100.1, 192.168.3.4", proxies) == "198.51.100.1"
    assert client_address("10.0.0.1", "198.51.100.1, not-an-ip", proxies) == "10.0.0.1"  # fail closed
    assert client_address("10.0.0.1", "192.168.1.1", proxies) == "10.0.0.1"  # only proxies
    assert client_address("::1", "2001:db8::1", parse_networks(["::1"])) == "2001:db8::1"
    assert client_address("10.0.0.1", "1.2.3.4", ()) == "10.0.0.1"  # no proxies configured
    with pytest.raises(P2PUsageError, match="trusted proxy"):
        BrokerConfig(trusted_proxies=("proxy.example",))


def test_presence_cache_expires_forgets_and_stays_bounded() -> None:
    cache = PresenceCache(ttl=1.0, max_entries=3)
    cache.learn("a", "n1", now=0.0)
    cache.learn("b", "n2", now=0.0)
    assert cache.get("a", 0.5) == "n1" and cache.get("a", 1.0) is None  # gone after ttl
    cache.learn("c", "n2", now=0.5)
    cache.learn("d", "n1", now=0.5)
    cache.learn("e", "n1", now=0.5)  # over the bound: the oldest learned ("b") goes
    assert cache.get("b", 0.6) is None and len(cache) == 3
    cache.forget("d")
    assert cache.forget_node("n1") == 1 and cache.get("e", 0.6) is None and cache.get("c", 0.6) == "n2"
