"""The commit side of a group core: intents and the sequencer rule (``docs/protocol.md`` §9.2).

Members send intents (add, remove, update, rejoin) to the sequencer - the member at the lowest
leaf index of the current epoch - and retransmit them until the group shows them done; the
sequencer turns them into the epoch's one commit, hands the job over when it leaves, and a later
member takes over (a new term) when everyone ahead of it is silent.
"""

from __future__ import annotations

import hashlib
from collections import deque

from enkrypted_shell.contracts import (
    ContractError,
    GroupCommit,
    GroupInputRejected,
)

from ..errors import P2PUsageError, RemoteInputError
from ._base import GroupCoreBase, addressed, new_id, removal_key
from ._events import (
    GroupLeft,
    GroupOutput,
    MembershipChanged,
    PduRejected,
)
from ._wire import (
    MAX_BODY,
    Kind,
    pack_list,
    unb64,
)

__all__ = ["SequencerCore"]


class SequencerCore(GroupCoreBase):
    """Intents and commits; :class:`~._core.GroupCore` adds input handling on top."""

    # ------------------------------------------------------------------ intents
    def _intend(self, intent: dict[str, object], now: float) -> list[GroupOutput]:
        if len(self._intents) >= self.config.max_intents:
            raise P2PUsageError("too many membership changes in flight")
        key = new_id().hex()
        intent = {**intent, "id": key}
        self._intents[key] = (intent, now + self.config.retry_s, 0)
        return self._dispatch_intent(intent, now)

    def _dispatch_intent(self, intent: dict[str, object], now: float) -> list[GroupOutput]:
        if self._intent_done(intent):
            self._intents.pop(str(intent["id"]), None)
            return []
        if self._retired:  # our own removal is the next member's to commit: remind it
            return self._handoff()
        if intent.get("op") == "rejoin":
            target = self._rejoin_target()
        elif self._is_sequencer():
            return self._execute(self.peer_id, intent, now)
        else:
            target = self._intent_target(now)
        if not target or target == self.peer_id:
            return []
        pdu = self._pdu(Kind.INTENT, self._signed("intent", intent), target=target)
        return self._route(pdu)

    def _intent_done(self, intent: dict[str, object], origin: str = "") -> bool:
        """Whether ``origin``'s (default: our own) request is done."""
        op = intent.get("op")
        if self._left:
            return True
        if op == "add":
            return intent.get("peer") in self.roster.values()
        if op == "remove":
            return not self._to_remove(intent, origin or self.peer_id)
        if op in ("update", "handoff"):
            return isinstance(intent.get("at"), int) and self.epoch > int(str(intent["at"]))
        return op == "rejoin" and self._rejoin_done(intent, origin)

    def _rejoin_done(self, intent: dict[str, object], origin: str) -> bool:
        """Ours: we are no longer re-joining. Another member's (kept for when we commit): its
        key package was used — our own re-join state says nothing about it."""
        if not origin or origin == self.peer_id:
            return self._rejoin_kp is None
        try:
            token = hashlib.sha256(unb64(intent.get("kp"), MAX_BODY)).digest()
        except RemoteInputError:
            return True  # cannot be carried out: dropped
        return token in self._used_key_packages

    def _to_remove(self, intent: dict[str, object], origin: str) -> list[str]:
        """The members a remove intent still removes: none once it was carried out (a late copy,
        after the member was invited again, must not remove it again). One made at epoch ``at``
        because a member was out spares it if it came back in (a re-join, a new invitation)
        after ``at``."""
        fps, at = intent.get("fps"), intent.get("at")
        if not isinstance(fps, list) or removal_key(origin, intent) in self._done_removals:
            return []
        wanted = [fp for fp in fps if isinstance(fp, str) and fp in self.members]
        if isinstance(at, int):
            wanted = [fp for fp in wanted if self._added_at.get(fp, 0) <= at]
        return wanted

    def _rejoin_target(self) -> str:
        return self._rejoin_via

    def _settle_intents(self, now: float) -> list[GroupOutput]:
        """After an epoch change: drop what is done, resend the rest, run the queue."""
        out: list[GroupOutput] = []
        for key, (intent, _, _) in list(self._intents.items()):
            if key not in self._intents:  # settled by a commit of this loop (an add admitted)
                continue
            if self._intent_done(intent):
                del self._intents[key]
            elif self._is_sequencer():
                out += self._execute(self.peer_id, intent, now)
        if self._is_sequencer() or self._queue:
            queued, self._queue = list(self._queue), deque()
            for origin, intent in queued:
                out += self._execute(origin, intent, now)
        return out

    # ------------------------------------------------------------------ the sequencer
    def _execute(self, origin: str, intent: dict[str, object], now: float) -> list[GroupOutput]:
        """Commit one intent (we are the sequencer, or it is the sequencer's hand-off)."""
        op = intent.get("op")
        if op == "handoff":
            return self._take_handoff(origin, intent)
        if not self._is_sequencer():
            self._keep(origin, intent)
            return []
        if self._intent_done(intent, origin) and op != "rejoin":
            return []
        try:
            return self._commit_intent(origin, op, intent, now)
        except (KeyError, RemoteInputError) as exc:
            return [PduRejected(self.group_id, origin, f"bad intent: {exc}")]

    def _keep(self, origin: str, intent: dict[str, object]) -> None:
        """Hold another member's intent until we are the one to commit it (bounded, once)."""
        known = {str(i.get("id")) for _, i in self._queue}
        if str(intent.get("id")) not in known and len(self._queue) < self.config.max_intents:
            self._queue.append((origin, intent))

    def _commit_intent(
        self, origin: str, op: object, intent: dict[str, object], now: float
    ) -> list[GroupOutput]:
        if op == "add":
            return self._commit_add(str(intent["peer"]), unb64(intent["kp"], MAX_BODY), now)
        if op == "remove":
            return self._commit_remove(origin, intent)
        if op == "update":
            return self._commit(set(self.members), self._session.update(), {})
        if op == "rejoin":
            return self._commit_rejoin(origin, intent, now)
        return [PduRejected(self.group_id, origin, f"unknown intent {op!r}")]

    def _commit_add(self, peer: str, key_package: bytes, now: float) -> list[GroupOutput]:
        if peer in self.roster.values() or len(self.members) >= self.config.max_members:
            return []
        token = hashlib.sha256(key_package).digest()
        if token in self._used_key_packages:  # one use (a late retransmitted add intent)
            return [PduRejected(self.group_id, peer, "that key package was used already")]
        before = set(self.members)
        result = self._session.add([key_package])
        if isinstance(result, GroupInputRejected):
            return [PduRejected(self.group_id, peer, f"key package refused: {result.reason}")]
        self._used_key_packages.add(token)
        added = [fp for fp in self.members if fp not in before]
        self._roster.update({fp: peer for fp in added})
        self._admitted(peer, now)
        assert result.welcome is not None  # an Add always has a Welcome
        body = pack_list([result.welcome, self._welcome_info(result.welcome)])
        welcome = self._pdu(Kind.WELCOME, body, target=peer, epoch=self.epoch)
        self._resend["welcome:" + peer] = (welcome, now + self.config.retry_s, 0)
        # the Welcome rides in the commit too: members linked to the new one resend it if we
        # cannot (we left, or our link is down)
        out = self._commit(before, result, {fp: peer for fp in added}, welcome.encode())
        return out + self._route(welcome)

    def _take_over(self, now: float) -> list[GroupOutput]:
        """Failover: when every member ahead of us in leaf order has been silent for
        ``failover_after_s`` times our position and we have changes waiting, we remove them
        (they may re-join) and become the sequencer of a new term."""
        if self._started is None:
            self._started = now
        self._queue = deque(i for i in self._queue if not self._intent_done(i[1], i[0]))
        waiting = self._intents or self._queue
        if self._left or self._rejoin_kp is not None or self._is_sequencer() or not waiting:
            return []
        position = self.members.index(self.own_fingerprint)
        wait = self.config.failover_after_s * position
        ahead, rest = self.members[:position], self.members[position + 1 :]
        if position == 0 or not self._links or any(self._quiet(fp, now) < wait for fp in ahead):
            return []
        # and most of the members we keep are alive to us: a member cut off from the group
        # (its links down, back from a pause) does not make a branch of its own
        alive = 1 + sum(self._quiet(fp, now) < self.config.failover_after_s for fp in rest)
        if 2 * alive <= 1 + len(rest):
            return []
        self._term, self._taker = self._term + 1, self.own_fingerprint
        self._rejoinable.update({self._roster[fp]: fp for fp in ahead if fp in self._roster})
        before = set(self.members)
        out = self._commit(before, self._session.remove(list(ahead)), {})
        return out + self._settle_intents(now)

    def _commit_remove(self, origin: str, intent: dict[str, object]) -> list[GroupOutput]:
        fps = intent.get("fps")
        if not isinstance(fps, list):
            raise RemoteInputError("remove intent without fingerprints")
        if self.own_fingerprint in fps and not isinstance(intent.get("at"), int):
            # a member cannot remove itself (RFC 9420 §12.1.3): the next member commits it,
            # at this epoch, and we commit nothing more
            self._retired = True
            return self._handoff()
        wanted = [fp for fp in self._to_remove(intent, origin) if fp != self.own_fingerprint]
        if not wanted:
            return []
        done = removal_key(origin, intent)
        return self._commit(set(self.members), self._session.remove(wanted), {}, done=done)

    def _handoff(self) -> list[GroupOutput]:
        """Ask the next member in leaf order to commit our removal. Members that told us they
        are out (§9.5) would never do it: the hand-off skips them, and names them so the
        successor removes them in the same commit."""
        skip, successor = self._successor()
        if not successor:
            return self._end_alone()
        intent = {"op": "handoff", "at": self.epoch, "id": new_id().hex(), "skip": skip}
        target = self._roster.get(successor, "")
        return self._route(self._pdu(Kind.INTENT, self._signed("intent", intent), target=target))

    def _end_alone(self) -> list[GroupOutput]:
        """We leave and no member is left to commit it: the others told us they are out (or
        there are none). Our membership ends here, and the group with it (``GroupLeft`` names
        us: nobody removed us)."""
        self._left = True
        self._intents.clear()
        self._queue.clear()
        return [GroupLeft(self.group_id, self.epoch, self.own_fingerprint)]

    def _successor(self) -> tuple[list[str], str]:
        """The members after us that are out, and the first that is not ("" if none is)."""
        skip: list[str] = []
        for fp in self.members[1:]:
            if self._roster.get(fp, "") not in self._gone:
                return skip, fp
            skip.append(fp)
        return skip, ""

    def _take_handoff(self, origin: str, intent: dict[str, object]) -> list[GroupOutput]:
        """The sequencer's hand-off to us: commit its removal, with the members it skipped as
        out (it could remove them itself: naming them gives it no power it lacks)."""
        at, skip = intent.get("at"), intent.get("skip", [])
        owner = self.members[0]
        if self._roster.get(owner) != origin or not isinstance(at, int) \
                or not isinstance(skip, list):
            return []
        ours = 1 + len(skip)
        if [*self.members[1:ours]] != skip or self.members[ours : ours + 1] != (
            self.own_fingerprint,
        ):
            return []
        if at < self.epoch:
            return []
        if at > self.epoch:  # we have not seen all of the old sequencer's commits yet
            self._keep(origin, intent)
            return []
        gone = [owner, *skip]
        return self._commit(set(self.members), self._session.remove(gone), {})

    def _commit_rejoin(
        self, origin: str, intent: dict[str, object], now: float
    ) -> list[GroupOutput]:
        key_package = unb64(intent["kp"], MAX_BODY)
        token = hashlib.sha256(key_package).digest()
        if token in self._used_key_packages:  # a retransmitted rejoin: done once already
            return []
        old = [fp for fp, peer in self.roster.items() if peer == origin]
        expected = old[0] if old else self._rejoinable.get(origin)
        if expected is None:
            return [
                PduRejected(self.group_id, origin, "rejoin from a peer that never was a member")
            ]
        if self._identity_of(key_package, old) != expected:
            # the intent's origin is not authenticated (a relay names it): only the identity
            # that was the member may take its place, never another key (docs/protocol.md §9.4)
            return [PduRejected(self.group_id, origin, "a rejoin key package of another identity")]
        self._rejoinable.pop(origin, None)
        out: list[GroupOutput] = []
        if old and old[0] != self.own_fingerprint:
            removal = self._session.remove(old)
            out += self._commit(set(self.members), removal, {}, rejoin=old[0])
        self._roster = {fp: p for fp, p in self._roster.items() if p != origin}
        return out + self._commit_add(origin, key_package, now)

    def _identity_of(self, key_package: bytes, replacing: list[str]) -> str | None:
        """The fingerprint ``key_package`` would add once ``replacing`` is removed (tried on a
        copy of our session: nothing is committed), ``None`` if it would not add exactly one."""
        try:
            trial = self._service.restore_group(self._session.export_state())
            if replacing and replacing[0] != self.own_fingerprint:
                trial.remove(replacing[:1])
            before = set(trial.members)
            result = trial.add([key_package])
        except ContractError:
            return None
        if isinstance(result, GroupInputRejected):
            return None
        added = [fp for fp in trial.members if fp not in before]
        return added[0] if len(added) == 1 else None

    def _commit(
        self,
        before: set[str],
        result: GroupCommit,
        added: dict[str, str],
        welcome: bytes = b"",
        *,
        done: bytes = b"",
        rejoin: str = "",
    ) -> list[GroupOutput]:
        """Our commit was applied by the session: send it to every member of the old epoch
        (the removed ones too: the commit tells them), with its details signed. ``done``: the removal request it carries
        out, which every member then knows is carried out; ``rejoin``: the member it removes to
        re-join (the next commit adds it back)."""
        old_epoch = self.epoch - 1
        old_members = before
        details: dict[str, object] = {"added": added, "term": self._term, "taker": self._taker}
        if done:
            details["done"] = done.hex()
            self._done_removals.add(done)
        if rejoin:
            details["rj"] = rejoin
        self._rejoin_marks = {rejoin} if rejoin else set()
        if added:  # every member (a later sequencer too) knows these key packages are used
            details["kps"] = [t.hex() for t in self._used_key_packages.export()[-len(added) :]]
        # signed, naming the commit: members believe the details from any copy (a relay's, a
        # history answer) and no relay can alter them
        details["h"] = hashlib.sha256(result.commit).hexdigest()
        if welcome:  # the Welcome it carries, which every member keeps for the new one
            details["w"] = hashlib.sha256(welcome).hexdigest()
        body = pack_list([result.commit, self._signed("commit", details), welcome])
        pdu = self._pdu(Kind.COMMIT, body, epoch=old_epoch)
        self._history.add(pdu)
        self._commit_hashes[old_epoch] = hashlib.sha256(result.commit).digest()
        removed = tuple(fp for fp in old_members if fp in self._roster and fp not in self.members)
        out: list[GroupOutput] = []
        for fp in sorted(old_members):
            peer = self._roster.get(fp)
            if peer and peer != self.peer_id and fp not in added:
                out += self._route(addressed(pdu, peer))
        for fp in removed:
            self._drop_member(fp)
        self._added_at.update({fp: self.epoch for fp in added})
        self._remember_epoch()
        change = MembershipChanged(
            self.group_id, self.epoch, self.members, tuple(added), removed, self.own_fingerprint
        )
        return [change, *out]
