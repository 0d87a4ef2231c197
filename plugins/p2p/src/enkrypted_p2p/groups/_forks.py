"""Forks and re-joins (``docs/protocol.md`` §9.5): STATUS and RECEIPT carry the fork checks of a
window of recent epochs, so two members at different epochs can still tell whether they are on
one branch; a member off the winning branch is shown it and re-joins; a member that is out of the
group (left, removed on another branch, or gave up re-joining) says so when it is still listed,
and the group removes it.
"""

from __future__ import annotations

from ..errors import P2PUsageError, RemoteInputError
from ._base import FORK_WINDOW, new_id, wins_over
from ._events import (
    ForkDetected,
    GroupLeft,
    GroupOutput,
    RejoinStarted,
    SendTo,
)
from ._sequencer import SequencerCore
from ._wire import GroupPdu, Kind, b64, decode_json

__all__ = ["ForkCore", "peer_checks"]

_MAX_CHECK = 64


def peer_checks(epoch: int, body: dict[str, object]) -> dict[int, str]:
    """The fork checks a STATUS or RECEIPT carries: ``f`` for ``epoch`` and the window ``w`` for
    the epochs before it, newest first ("" where the sender does not know one). Bounded."""
    window = body.get("w", [])
    if not isinstance(window, list) or len(window) > FORK_WINDOW - 1:
        raise RemoteInputError(f"a fork window lists at most {FORK_WINDOW - 1} checks")
    checks: dict[int, str] = {}
    current = body.get("f")
    if isinstance(current, str):
        checks[epoch] = current[:_MAX_CHECK]
    for back, check in enumerate(window, 1):
        if isinstance(check, str) and check and epoch - back >= 0:
            checks[epoch - back] = check[:_MAX_CHECK]
    return checks


class ForkCore(SequencerCore):
    """Fork detection over a window of epochs, re-joins, and removal of members that are out."""

    def _mismatch(self, checks: dict[int, str]) -> int | None:
        """The first epoch both sides know whose checks differ (``None``: one branch, as far as
        the window shows)."""
        known = self._fork_checks
        return min((e for e, c in checks.items() if e in known and known[e] != c), default=None)

    # ------------------------------------------------------------------ STATUS
    def _on_status(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        if pdu.hops != 0:
            raise RemoteInputError("a status is never relayed")
        body = decode_json(pdu.body)
        epoch, links = body.get("e"), body.get("links")
        if not isinstance(epoch, int) or not isinstance(links, list):
            raise RemoteInputError("a status is {e, f, w, links}")
        if len(links) > self.config.max_members:
            raise RemoteInputError("a status lists too many links")
        checks = peer_checks(epoch, body)
        if body.get("out") is True:  # the sender is no member of any branch of ours
            return [] if self._left else self._on_out_status(peer_id, epoch, checks, now)
        if self._left:
            return self._answer_out(peer_id, now)
        self._reach[peer_id] = frozenset(p for p in links if isinstance(p, str))
        term = body.get("t")
        if isinstance(term, int):
            taker = body.get("tb")
            self._peer_terms[peer_id] = (term, taker[:64] if isinstance(taker, str) else "")
        if peer_id in self.roster.values():
            return self._compare(peer_id, epoch, checks, now, direct=True)
        # a former member behind us (our status makes it fetch the commit that removed it),
        # or one on another branch (our status shows it the fork)
        differs = checks.get(epoch) != self._fork_checks.get(epoch)
        behind = epoch < self.epoch
        out: list[GroupOutput] = []
        if behind or differs or self._mismatch(checks) is not None:
            out.append(self._status_to(peer_id))
        if peer_id in self._former and epoch <= self.epoch:
            # the branch it is on may be the group's (it went on without the commit that
            # removed it here, under a later term): compared like a member's
            out += self._compare(peer_id, epoch, checks, now, direct=True)
        return out

    def _answer_out(self, peer_id: str, now: float) -> list[GroupOutput]:
        """We are out, but ``peer_id`` still sends us its status (it lists us): tell it, at most
        once per heartbeat period, so its group removes us."""
        last = self._out_answered.get(peer_id)
        if last is not None and now - last < self.config.heartbeat_s:
            return []
        self._out_answered.pop(peer_id, None)
        self._out_answered[peer_id] = now
        while len(self._out_answered) > 2 * self.config.max_members:
            del self._out_answered[next(iter(self._out_answered))]
        return [self._status_to(peer_id, out=True)]

    def _on_out_status(
        self, peer_id: str, epoch: int, checks: dict[int, str], now: float
    ) -> list[GroupOutput]:
        """A member we list says it is out: if it is ahead of us on our branch, the commit that
        removed it is in its history; else (our epoch or before, or another branch) it goes."""
        listed = [
            fp for fp, p in self.roster.items() if p == peer_id and fp != self.own_fingerprint
            and self._added_at.get(fp, 0) <= epoch
        ]  # a status of an epoch before its leaf came in is of a former membership (late)
        if self._rejoin_kp is not None:
            if peer_id == self._rejoin_via and len(self._gone) < 2 * self.config.max_members:
                self._gone.add(peer_id)  # another member of its branch carries our request on
            return []
        if not listed:
            return []
        if epoch > self.epoch and self._mismatch(checks) is None:
            # ahead of us on our branch: the commit that took it out comes with the history;
            # until then it is not "gone" (a gone sequencer is silent at once: a takeover
            # racing that history would split the group)
            return self._ask_history(peer_id, now)
        if len(self._gone) < 2 * self.config.max_members:
            self._gone.add(peer_id)  # never heard again as alive: its silence is final
        intents = [i for i, _, _ in self._intents.values()]
        if any(i.get("op") == "remove" and i.get("fps") == listed for i in intents):
            return []
        try:
            return self._intend({"op": "remove", "fps": listed, "at": self.epoch}, now)
        except P2PUsageError:  # too many changes in flight: its next status asks again
            return []

    def _ask_history(self, peer_id: str, now: float) -> list[GroupOutput]:
        if self._rejoin_kp is not None or now < self._history_asked + self.config.retry_s:
            return []
        self._history_asked = now
        pdu = self._pdu(Kind.HISTORY_REQUEST, b"", target=peer_id)
        return [SendTo(peer_id, pdu.encode())] if peer_id in self._links else self._route(pdu)

    # ------------------------------------------------------------------ comparing branches
    def _compare(
        self, peer: str, epoch: int, checks: dict[int, str], now: float, direct: bool
    ) -> list[GroupOutput]:
        at = self._mismatch(checks)
        reason = "epoch authenticators differ"
        if at is None:
            if epoch > self.epoch:
                return self._ask_history(peer, now)
            if not (direct and self._beaten_by(peer)):
                return []
            # a later term at an epoch we passed without it: that branch is not ours
            at, reason = epoch, "a later takeover term at an epoch we passed"
        if direct and self._beaten_by(peer):
            return self._fork(peer, at, f"{reason} (the branch of a later takeover term)", now)
        if direct and peer == self._roster.get(self.sequencer) and not self._is_sequencer() \
                and not self._loses_to_ours(peer):
            # within a term the sequencer's branch is the group's; a sequencer's peer that
            # reports a branch ours beats has gone over to it (its leaf here is a left-over)
            return self._fork(peer, at, f"{reason} (the sequencer's branch)", now)
        return self._show_fork(peer, at, reason)

    def _show_fork(self, peer: str, epoch: int, reason: str) -> list[GroupOutput]:
        """Shown once per peer and epoch (its every status would repeat it)."""
        if self._forks_shown.get(peer) == epoch:
            return []
        self._forks_shown.pop(peer, None)
        self._forks_shown[peer] = epoch
        while len(self._forks_shown) > 2 * self.config.max_members:
            del self._forks_shown[next(iter(self._forks_shown))]
        return [ForkDetected(self.group_id, epoch, peer, reason)]

    def _fork(self, peer: str, epoch: int, reason: str, now: float) -> list[GroupOutput]:
        """Never silent: the event, then — we are off the branch that wins, which is the group
        by definition — a re-join through ``peer`` (a Welcome puts us on its epoch)."""
        shown = self._show_fork(peer, epoch, reason)
        if self._rejoin_kp is not None:
            return shown
        shown = shown or [ForkDetected(self.group_id, epoch, peer, reason)]
        return [*shown, *self._rejoin(peer, f"fork at epoch {epoch}", now)]

    # ------------------------------------------------------------------ re-joining
    def _rejoin(self, peer: str, reason: str, now: float) -> list[GroupOutput]:
        kp = self._service.new_key_package(self._identity)
        self._rejoin_kp = kp.private
        self._rejoin_via = peer
        self._rejoin_goal = self._peer_terms.get(peer)  # the branch we set out to re-join
        intent: dict[str, object] = {"op": "rejoin", "kp": b64(kp.public), "id": new_id().hex()}
        self._intents[str(intent["id"])] = (intent, now + self.config.retry_s, 0)
        pdu = self._pdu(Kind.INTENT, self._signed("intent", intent), target=peer)
        return [RejoinStarted(self.group_id, self.epoch, reason), *self._route(pdu)]

    def _rejoin_target(self) -> str:
        """The member we re-join through; while our link to it is down, once it told us it is
        out, or once it reports a branch that loses to the one we set out to re-join (it took a
        Welcome of another), another linked member on that branch (or a better one) carries the
        intent."""
        via, goal = self._rejoin_via, self._rejoin_goal
        if goal is None:
            return via

        def on_goal(peer: str) -> bool:
            branch = self._peer_terms.get(peer)
            return peer not in self._gone and branch is not None and (
                branch == goal or wins_over(branch, goal))

        if via in self._links and on_goal(via):
            return via
        same = sorted(p for p in self._links if on_goal(p))
        return same[0] if same else via

    def _gave_up_rejoin(self) -> list[GroupOutput]:
        """No Welcome came (the group's sequencer refused us or is unreachable): we are out of
        the group, and shown it; another member can invite us again. Members still listing us
        hear that we are out (:meth:`_answer_out`) and remove us."""
        self._rejoin_kp = None
        self._left = True
        return [GroupLeft(self.group_id, self.epoch, "")]
