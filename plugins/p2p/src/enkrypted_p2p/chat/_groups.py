""":class:`GroupDesk`: the one asyncio driver of a chat service's :class:`GroupNode` (contract 2.2).

The node is sans-I/O; this desk is where its frames, commands, link changes and timers meet, one
job at a time on one task (docs/protocol.md "Group chat", "In the chat service"):

* **Frames** come from the 1:1 sessions (``0x07`` / ``0x08``, opened by the session) with the
  session's authenticated peer fingerprint.  Only a member of the frame's group (its roster entry
  must name that fingerprint), a peer we invited, or — for the kinds an outsider legitimately
  sends (key packages, Welcome, status, history, re-join intent) — anyone, gets through;
  frames of groups we are not in (other than an invitation) are dropped and counted.
* **Sending**: a :class:`SendTo` goes over the ready session to that peer; to a peer without one
  it waits in a small bounded queue while the peer is dialled (at most one dial per peer per
  :data:`REDIAL_S`), and goes out when the session is ready.  The core retransmits anything that
  matters, so a frame dropped from a full queue only delays.
* **Mesh**: every member dials the members of its groups with a larger peer id (the smaller id
  dials: no glare storm), at most :data:`MESH_LINKS` per service; the rest is reached through
  other members (relayed ciphertext, docs/protocol.md §9.3).
* **Persistence**: every group a job touched is exported to the profile store (table ``groups``)
  *before* the job's frames leave (the MLS state advanced: a restored older state would reuse
  keys), and restored when the service opens.
"""

from __future__ import annotations

__all__ = ["GROUPS_TABLE", "MESH_LINKS", "GroupDesk"]

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, TypeVar

from enkrypted_shell.contracts import (
    ChatEvent,
    GroupChatForked,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatProblem,
    GroupChatReceipt,
    GroupChatRenamed,
    GroupCryptoService,
    GroupInfo,
    GroupMember,
    ProfileStore,
)

from ..errors import P2PUsageError, RemoteInputError
from ..groups import (
    ForkDetected,
    GroupConfig,
    GroupCore,
    GroupEvent,
    GroupLeft,
    GroupMessageDelivered,
    GroupNode,
    GroupOutput,
    GroupPdu,
    GroupRenamed,
    Kind,
    MembershipChanged,
    PduRejected,
    ReceiptFromMember,
    RejoinStarted,
    SendTo,
    decode_pdu,
)

_log = logging.getLogger("enkrypted.p2p.groups")

GROUPS_TABLE: Final = "groups"
MESH_LINKS: Final = 16
"""Members a service dials on its own (the smaller peer id dials); others reach us or relay."""
REDIAL_S: Final = 5.0
DIALS_PER_WINDOW: Final = MESH_LINKS
"""Group dials at most per :data:`REDIAL_S`, all peers together: the peer ids come from rosters
other members wrote, so a hostile roster must not turn us into a dial amplifier."""
QUEUED_FRAMES: Final = 64
"""Frames kept per peer without a ready session (the oldest go first; the core retransmits)."""
QUEUED_PEERS: Final = 64
JOB_QUEUE: Final = 1024
MAX_GROUPS: Final = 256
"""Groups restored from the profile store at most."""
DRIVER_CONFIG: Final = GroupConfig(history_max_bytes=1024 * 1024)
"""The core's bounds, history at 1 MiB so a saved group fits one profile-store record (4 MiB)."""
_OUTSIDER_KINDS: Final = frozenset({
    Kind.STATUS, Kind.HISTORY_REQUEST, Kind.HISTORY_RESPONSE, Kind.KEY_PACKAGE_REQUEST,
    Kind.KEY_PACKAGE_RESPONSE, Kind.WELCOME, Kind.INTENT})
"""What a peer outside our roster of a group may send us for it (a former member, one on another
branch, an invitee, a re-joiner); the core checks each further."""

T = TypeVar("T")
Job = Callable[[float], tuple[list[GroupOutput], set[bytes]]]
Send = Callable[[str, bytes], Awaitable[bool]]


class GroupDesk:
    """The groups of one chat service: ``desk.start()``, then frames / links / commands."""

    def __init__(self, service: GroupCryptoService, identity: bytes, local_id: str, *,
                 store: ProfileStore | None, emit: Callable[[ChatEvent], Awaitable[None]],
                 send: Send, dial: Callable[[str], None], clock: Callable[[], float],
                 config: GroupConfig = DRIVER_CONFIG) -> None:
        self.node = GroupNode(service, identity, local_id, config)
        self._store, self._emit, self._send, self._dial, self._clock = store, emit, send, dial, clock
        self._jobs: asyncio.Queue[Job] = asyncio.Queue(JOB_QUEUE)
        self._waiting: dict[str, deque[bytes]] = {}
        self._ready: set[str] = set()
        self._dialled: dict[str, float] = {}
        self._recent_dials: deque[float] = deque()
        self.dropped: Counter[str] = Counter()

    # ------------------------------------------------------------------ start and persistence
    def restore(self) -> list[ChatEvent]:
        """The groups kept in the profile store; one problem event per damaged one."""
        problems: list[ChatEvent] = []
        if self._store is None:
            return problems
        try:
            saved = self._store.items(GROUPS_TABLE)
        except Exception as exc:  # the store's errors belong to the shell
            return [GroupChatProblem("", "local", f"saved groups: {exc}")]
        for key, data in saved[:MAX_GROUPS]:
            try:
                core = GroupCore.restore(self.node.service, self.node.identity, data,
                                         self.node.config, self._clock())
                self.node.adopt(core)
            except P2PUsageError as exc:
                problems.append(GroupChatProblem(key.hex(), "local", str(exc)))
        return problems

    def _persist(self, group_ids: Iterable[bytes]) -> None:
        if self._store is None:
            return
        for group_id in group_ids:
            core = self.node.groups.get(group_id)
            if core is None:
                continue
            try:
                self._store.put(GROUPS_TABLE, group_id, core.export_state())
            except Exception as exc:  # the store's errors belong to the shell
                _log.warning("cannot persist group %s: %s", group_id.hex()[:16], exc)

    async def run(self) -> None:
        """The driver: one job at a time, the node's timers in between."""
        self.dial_mesh()
        while True:
            deadline = self.node.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - self._clock())
            try:
                async with asyncio.timeout(delay):
                    job = await self._jobs.get()
            except TimeoutError:
                job = self._timeouts
            try:
                outputs, touched = job(self._clock())
            except Exception:  # a bug must not stop every group: logged, counted, skipped
                _log.exception("a group job failed")
                self.dropped["job-error"] += 1
                continue
            self._persist(touched)
            await self._deliver(outputs)

    def _timeouts(self, now: float) -> tuple[list[GroupOutput], set[bytes]]:
        out: list[GroupOutput] = []
        touched: set[bytes] = set()
        for group_id, core in list(self.node.groups.items()):
            outputs = core.handle_timeout(now)
            if any(not isinstance(o, SendTo) or o.pdu[3] != Kind.STATUS for o in outputs):
                touched.add(group_id)  # more than heartbeats: a retransmission may have sealed
            out += outputs
        return out, touched

    async def call(self, command: Callable[[float], tuple[T, list[GroupOutput], bytes]]) -> T:
        """Run a local command on the driver; its result (or its :class:`P2PUsageError`)."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def job(now: float) -> tuple[list[GroupOutput], set[bytes]]:
            try:
                result, outputs, group_id = command(now)
            except Exception as exc:  # the caller gets it, the driver goes on
                done.set_exception(exc)
                return [], set()
            done.set_result(result)
            return outputs, {group_id}

        await self._jobs.put(job)
        return await done

    # ------------------------------------------------------------------ frames and links
    async def frame_received(self, peer_id: str, data: bytes, fingerprint: str | None) -> None:
        """A group frame the session with ``peer_id`` (identity ``fingerprint``) opened."""
        try:
            pdu = decode_pdu(data)
        except RemoteInputError:
            self.dropped["malformed"] += 1
            return
        why = self._refusal(peer_id, pdu, fingerprint)
        if why:
            self.dropped[why] += 1
            _log.info("dropped a group frame from %s: %s", peer_id[:64], why)
            return

        def job(now: float) -> tuple[list[GroupOutput], set[bytes]]:
            return self.node.receive(peer_id, data, now), {pdu.group_id}

        await self._jobs.put(job)

    def _refusal(self, peer_id: str, pdu: GroupPdu, fingerprint: str | None) -> str:
        """Why a frame may not reach the node ('' if it may)."""
        kind = pdu.kind
        core = self.node.groups.get(pdu.group_id)
        if core is None:
            if kind not in (Kind.KEY_PACKAGE_REQUEST, Kind.WELCOME, Kind.STATUS):
                return "unknown-group"
            joins = kind is not Kind.STATUS  # anyone may invite us, into a bounded number
            return "too-many-groups" if joins and len(self.node.groups) >= MAX_GROUPS else ""
        member = next((fp for fp, p in core.roster.items() if p == peer_id), None)
        if member is not None:
            return "" if member == fingerprint else "identity-mismatch"
        if core.invited(peer_id) or kind in _OUTSIDER_KINDS:
            # an outsider speaks for itself, to us: it names no other origin (a relay's origin
            # is not authenticated) and asks us to relay nothing (only a Welcome is relayed to
            # us, by members the re-joining outsider may not know yet; MLS checks it)
            relayed = pdu.hops != 0 and kind is not Kind.WELCOME
            return "outsider-relay" if relayed or pdu.target not in ("", self.node.peer_id) \
                else ""
        return "not-a-member"

    def links_changed(self, ready: set[str]) -> None:
        """The peers with a ready session now (the chat service calls this on state changes)."""
        if ready == self._ready:
            return
        self._ready = set(ready)

        def job(now: float) -> tuple[list[GroupOutput], set[bytes]]:
            out = self.node.set_links(sorted(self._ready), now)
            for peer in sorted(self._ready & self._waiting.keys()):
                out += [SendTo(peer, pdu) for pdu in self._waiting.pop(peer)]
            return out, set()

        try:
            self._jobs.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped["links-job-queue-full"] += 1  # the next change or heartbeat catches up

    def dial_mesh(self) -> None:
        """Dial the members we are to keep a link to (the smaller peer id dials)."""
        local = self.node.peer_id
        wanted = sorted({p for core in self.node.groups.values() if core.active
                         for p in core.roster.values() if p > local})
        for peer in wanted[:MESH_LINKS]:
            if peer not in self._ready:
                self._dial_once(peer, force=True)

    def _dial_once(self, peer: str, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now < self._dialled.get(peer, -REDIAL_S) + REDIAL_S:
            return
        while self._recent_dials and self._recent_dials[0] <= now - REDIAL_S:
            self._recent_dials.popleft()
        if len(self._recent_dials) >= DIALS_PER_WINDOW:
            self.dropped["dial-budget"] += 1  # the core retransmits: a later try dials it
            return
        self._recent_dials.append(now)
        self._dialled[peer] = now
        while len(self._dialled) > QUEUED_PEERS * 4:
            del self._dialled[next(iter(self._dialled))]
        self._dial(peer)

    # ------------------------------------------------------------------ outputs
    async def _deliver(self, outputs: list[GroupOutput]) -> None:
        for out in outputs:
            if isinstance(out, SendTo):
                await self._send_to(out.peer_id, out.pdu)
            else:
                event = self._event(out)
                if event is not None:
                    await self._emit(event)
        if any(isinstance(o, MembershipChanged) for o in outputs):
            self.dial_mesh()

    async def _send_to(self, peer: str, pdu: bytes) -> None:
        if peer == self.node.peer_id:
            return
        if peer in self._ready and await self._send(peer, pdu):
            return
        if peer not in self._waiting and len(self._waiting) >= QUEUED_PEERS:
            self.dropped["queue-full"] += 1
            return
        queue = self._waiting.setdefault(peer, deque(maxlen=QUEUED_FRAMES))
        queue.append(pdu)
        self._dial_once(peer)

    def _event(self, out: GroupEvent) -> ChatEvent | None:  # noqa: PLR0911 - one per kind
        if isinstance(out, GroupMessageDelivered):
            return GroupChatMessage(out.group_id.hex(), out.msg_id.hex(), out.sender_peer,
                                    out.sender, out.text, out.epoch, time.time())
        if isinstance(out, ReceiptFromMember):
            return GroupChatReceipt(out.group_id.hex(), out.msg_id.hex(), out.peer_id, out.member)
        core = self.node.groups.get(out.group_id)
        if isinstance(out, MembershipChanged):
            roster = core.roster if core is not None else {}
            members = tuple(GroupMember(roster.get(fp, ""), fp) for fp in out.members)
            return GroupChatMembership(out.group_id.hex(), core.name if core else "", out.epoch,
                                       members, out.added, out.removed, out.committer)
        if isinstance(out, GroupRenamed):
            return GroupChatRenamed(out.group_id.hex(), out.name, out.by)
        if isinstance(out, ForkDetected):
            rejoining = core is not None and core.rejoining
            return GroupChatForked(out.group_id.hex(), out.epoch, out.peer_id, out.reason,
                                   rejoining)
        if isinstance(out, GroupLeft):
            return GroupChatLeft(out.group_id.hex(), out.epoch, out.committer)
        if isinstance(out, RejoinStarted):
            return GroupChatProblem(out.group_id.hex(), "remote",
                                    f"re-joining the group at epoch {out.epoch}: {out.reason}")
        assert isinstance(out, PduRejected)
        if out.peer_id == self.node.peer_id:  # our own operation, given up after its retries
            return GroupChatProblem(out.group_id.hex(), "network", out.reason)
        self.dropped["rejected"] += 1
        _log.info("group %s: a PDU from %s was refused: %s", out.group_id.hex()[:16],
                  out.peer_id[:64], out.reason)
        return None

    # ------------------------------------------------------------------ commands
    async def create(self, name: str) -> str:
        _check_name(name, self.node.config.max_name)
        if len(self.node.groups) >= MAX_GROUPS:
            raise P2PUsageError(f"at most {MAX_GROUPS} groups per profile")

        def command(now: float) -> tuple[str, list[GroupOutput], bytes]:
            core = self.node.create_group(name)
            return core.group_id.hex(), [], core.group_id

        return await self.call(command)

    async def invite(self, group_id: str, peer_id: str) -> None:
        core = self.core(group_id)
        if peer_id == self.node.peer_id:
            raise P2PUsageError("we are a member already")
        await self.call(lambda now: (None, core.invite(peer_id, now), core.group_id))

    async def remove(self, group_id: str, peer_id: str) -> None:
        core = self.core(group_id)
        fingerprint = next((fp for fp, p in core.roster.items() if p == peer_id), None)
        if fingerprint is None:
            raise P2PUsageError(f"{peer_id[:64]!r} is not a member of that group")
        await self.call(lambda now: (None, core.remove([fingerprint], now), core.group_id))

    async def leave(self, group_id: str) -> None:
        core = self.core(group_id)
        await self.call(lambda now: (None, core.leave(now), core.group_id))

    async def rename(self, group_id: str, name: str) -> None:
        core = self.core(group_id)
        await self.call(lambda now: (None, core.rename(name, now), core.group_id))

    async def send_text(self, group_id: str, text: str) -> str:
        core = self.core(group_id)

        def command(now: float) -> tuple[str, list[GroupOutput], bytes]:
            message_id, outputs = core.send_text(text, now)
            return message_id.hex(), outputs, core.group_id

        return await self.call(command)

    # ------------------------------------------------------------------ views
    def core(self, group_id: str) -> GroupCore:
        try:
            core = self.node.groups.get(bytes.fromhex(group_id))
        except ValueError:
            core = None
        if core is None:
            raise P2PUsageError(f"no group {group_id[:64]!r}")
        return core

    def infos(self) -> list[GroupInfo]:
        out = []
        for group_id, core in self.node.groups.items():
            roster = core.roster
            members = tuple(GroupMember(roster.get(fp, ""), fp) for fp in core.members)
            state = "left" if not core.active else "rejoining" if core.rejoining else "active"
            out.append(GroupInfo(group_id.hex(), core.name, core.epoch, members, state))
        return out


def _check_name(name: str, limit: int) -> None:
    if not 0 < len(name) <= limit or not name.isprintable():
        raise P2PUsageError(f"a group name is 1 to {limit} printable characters")
