"""An in-process simulated network of group members for the group-core tests.

Every member is a :class:`GroupNode` over the real pyca crypto plugin's group service. Frames
travel over links (pairs of peers) with random delays (so frames on different links reorder),
optional random drops, and are lost while a link is down or a member offline. Time is simulated:
``run`` advances a fake clock to the next frame or timer, bounded in steps and in seconds.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Iterable
from dataclasses import replace

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.service import GroupCryptoService
from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.groups import (
    GroupConfig,
    GroupCore,
    GroupEvent,
    GroupMessageDelivered,
    GroupNode,
    GroupOutput,
    GroupPdu,
    SendTo,
)
from enkrypted_p2p.groups._signatures import control_content
from enkrypted_p2p.groups._wire import Kind, decode_pdu, encode_json
from enkrypted_shell.contracts import GroupControlSigner

CONFIG = GroupConfig(retry_s=0.5, heartbeat_s=1.0)
_SERVICE = GroupCryptoService(PycaPrimitives())


class Net:
    def __init__(
        self,
        count: int,
        seed: int = 0,
        *,
        delay: tuple[float, float] = (0.001, 0.05),
        drop: float = 0.0,
        ordered: bool = True,
        config: GroupConfig = CONFIG,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        self.delay = delay
        self.drop = drop
        self.ordered = ordered
        self.service = _SERVICE
        self.peers = [f"peer-{i}" for i in range(count)]
        self.nodes = {
            p: GroupNode(self.service, self.service.new_identity(), p, config) for p in self.peers
        }
        self.fingerprints = {p: self.service.fingerprint(n.identity) for p, n in self.nodes.items()}
        self.links: set[frozenset[str]] = {
            frozenset(pair) for pair in itertools.combinations(self.peers, 2)
        }
        self.online = set(self.peers)
        self.events: dict[str, list[GroupEvent]] = {p: [] for p in self.peers}
        self.frames = 0
        self.bytes = 0
        self._queue: list[tuple[float, int, str, str, bytes]] = []
        self._seq = itertools.count()
        self._last_at: dict[tuple[str, str], float] = {}
        self.refresh_links()

    # ------------------------------------------------------------------ topology
    def linked(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self.links and a in self.online and b in self.online

    def refresh_links(self) -> None:
        for peer, node in self.nodes.items():
            if peer in self.online:
                up = [p for p in self.peers if p != peer and self.linked(peer, p)]
                self.feed(peer, node.set_links(up, self.now))

    def cut(self, a: str, b: str) -> None:
        self.links.discard(frozenset((a, b)))
        self.refresh_links()

    def set_offline(self, peer: str) -> None:
        self.online.discard(peer)
        self.refresh_links()

    def set_online(self, peer: str) -> None:
        self.online.add(peer)
        self.refresh_links()

    # ------------------------------------------------------------------ frames
    def feed(self, src: str, outputs: Iterable[GroupOutput]) -> None:
        for item in outputs:
            if not isinstance(item, SendTo):
                self.events[src].append(item)
                continue
            if not self.linked(src, item.peer_id) or self.rng.random() < self.drop:
                continue
            at = self.now + self.rng.uniform(*self.delay)
            if self.ordered:  # a data channel is ordered per link
                at = max(at, self._last_at.get((src, item.peer_id), 0.0) + 1e-6)
                self._last_at[(src, item.peer_id)] = at
            heapq.heappush(self._queue, (at, next(self._seq), src, item.peer_id, item.pdu))

    def run(self, seconds: float = 5.0, max_steps: int = 200_000) -> None:
        end = self.now + seconds
        for _ in range(max_steps):
            timer = min(
                (d for p in self.online if (d := self.nodes[p].next_deadline()) is not None),
                default=end,
            )
            frame = self._queue[0][0] if self._queue else end
            at = min(timer, frame, end)
            if at >= end:
                self.now = end
                return
            self.now = max(self.now, at)
            if frame <= timer:
                _, _, src, dst, data = heapq.heappop(self._queue)
                if self.linked(src, dst):
                    self.frames += 1
                    self.bytes += len(data)
                    self.feed(dst, self.nodes[dst].receive(src, data, self.now))
            else:
                for p in sorted(self.online):
                    node = self.nodes[p]
                    deadline = node.next_deadline()
                    if deadline is not None and deadline <= self.now:
                        self.feed(p, node.handle_timeout(self.now))
        raise AssertionError("the simulated network did not settle within max_steps")

    # ------------------------------------------------------------------ helpers
    def core(self, peer: str, group_id: bytes) -> GroupCore:
        return self.nodes[peer].groups[group_id]

    def form_group(self, members: list[str], name: str = "g") -> bytes:
        """``members[0]`` creates the group and invites the others, one by one."""
        creator = self.nodes[members[0]]
        core = creator.create_group(name)
        core.set_links([p for p in self.peers if self.linked(members[0], p)], self.now)
        for peer in members[1:]:
            self.feed(members[0], core.invite(peer, self.now))
            self.run(0.5)
        self.run(2.0)
        return core.group_id

    def key_package_answer(self, group_id: bytes, inviter: str, peer: str) -> bytes:
        """``inviter`` asks ``peer`` for a key package, straight over their link (no network
        delay): ``peer``'s answer, for a test to hand to the inviter when it chooses."""
        ask = self.core(inviter, group_id).invite(peer, self.now)[0]
        assert isinstance(ask, SendTo)
        answer = self.nodes[peer].receive(inviter, ask.pdu, self.now)[0]
        assert isinstance(answer, SendTo)
        return answer.pdu

    def delivered(self, peer: str) -> list[GroupMessageDelivered]:
        return [e for e in self.events[peer] if isinstance(e, GroupMessageDelivered)]

    def converged(self, group_id: bytes, peers: Iterable[str]) -> None:
        """Every one of ``peers`` is at the same epoch, with the same members and authenticator."""
        cores = [self.core(p, group_id) for p in peers]
        first = cores[0]
        for core in cores[1:]:
            assert (core.peer_id, core.epoch) == (core.peer_id, first.epoch)
            assert core.members == first.members, core.peer_id
            assert core.epoch_authenticator == first.epoch_authenticator, core.peer_id


def pdu_for(outputs: Iterable[GroupOutput], kind: Kind, target: str) -> GroupPdu:
    """The first PDU of ``kind`` addressed to ``target`` among a core's outputs (sent to it
    directly or through a relay), as the PDU its origin made (``hops`` 0)."""
    pdu = next(p for o in outputs if isinstance(o, SendTo)
               and (p := decode_pdu(o.pdu)).kind is kind and p.target == target)
    return replace(pdu, hops=0)


def signed_details(
    signer: GroupControlSigner, origin: str, commit: bytes, details: dict[str, object]
) -> bytes:
    """A commit's details as its committer ``origin`` signs them (docs/protocol.md §9.2 rule 3):
    for tests that make a commit outside a core (a cloned state, a rogue branch)."""
    body = {**details, "h": hashlib.sha256(commit).hexdigest()}
    content = control_content("commit", origin, "", body)
    assert content is not None
    return encode_json({**body, "s": signer.sign_control(content).hex()})


_OPS = ("update", "remove", "invite", "leave", "text", "text")


def random_change(net: Net, gid: bytes, rng: random.Random) -> None:
    """One random change or message from a random active member (the race tests' step)."""
    cores = [c for p in net.peers if (c := net.nodes[p].groups.get(gid)) and c.active]
    core = rng.choice(cores)
    op = rng.choice(_OPS)
    others = [fp for fp in core.members if fp != core.own_fingerprint]
    outsiders = [p for p in net.peers if p not in core.roster.values()]
    try:
        if op == "update":
            out = core.update(net.now)
        elif op == "remove" and len(others) > 2:
            out = core.remove([rng.choice(others)], net.now)
        elif op == "invite" and outsiders:
            out = core.invite(rng.choice(outsiders), net.now)
        elif op == "leave" and len(others) > 2:
            out = core.leave(net.now)
        else:
            out = core.send_text(f"m{rng.random()}", net.now)[1]
    except P2PUsageError:
        return
    net.feed(core.peer_id, out)
