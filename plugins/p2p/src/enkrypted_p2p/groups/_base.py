"""What every part of a member's group core shares: its state and views, fan-out and relay,
retransmission, the fork checks and persistence. The protocol handlers (commands, intents, the
sequencer, input) are :class:`~enkrypted_p2p.groups._core.GroupCore`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections import deque
from dataclasses import replace
from typing import Any, Final, Self

from enkrypted_shell.contracts import (
    GroupControlSigner,
    GroupCryptoService,
    GroupSession,
    LocalMisuse,
    StateError,
)

from ..errors import P2PUsageError, RemoteInputError
from ._events import (
    GroupConfig,
    GroupOutput,
    SendTo,
)
from ._memory import History, SeenIds
from ._signatures import control_content, signed_by
from ._wire import (
    HOP_LIMIT,
    MAX_BODY,
    GroupPdu,
    Kind,
    b64,
    decode_json,
    decode_pdu,
    encode_json,
    hex_token,
    unb64,
)

__all__ = [
    "FORK_WINDOW",
    "MAX_TRIES",
    "GroupCoreBase",
    "addressed",
    "fork_check",
    "new_id",
    "wins_over",
]

_FORK_LABEL: Final = b"EnkryptedChat-group-fork-check-v1\x00"
_KEEP_EPOCHS: Final = 64
MAX_TRIES: Final = 30
REVIVE_TRIES: Final = 5
"""Tries a parked message gets again when a member it waits for is back."""
PARKED: Final = float("inf")
"""The due time of a message parked after ``MAX_TRIES``: kept (and saved) until a member it
waits for is back, every member receipted it, or newer messages push it out."""
OUTBOX_STATE_BYTES: Final = 4 * 1024 * 1024
"""Our unreceipted messages kept in the saved state (oldest first) up to this many bytes."""
_WELCOME_KPS: Final = 64
"""The latest used key packages (and carried-out removals) a Welcome tells the new member (it may
be the next sequencer)."""
_DONE_REMOVALS: Final = 256
"""Removal requests carried out that a member remembers (a late copy removes nobody)."""
FORK_WINDOW: Final = 8
"""Epochs whose fork checks a STATUS or RECEIPT carries: its own and the 7 before it."""


def fork_check(group_id: bytes, epoch: int, authenticator: bytes) -> str:
    """What members exchange to compare epochs: a hash of the epoch authenticator (the
    authenticator itself stays secret), 16 bytes hex."""
    data = _FORK_LABEL + len(group_id).to_bytes(1, "big") + group_id + epoch.to_bytes(8, "big")
    return hashlib.sha256(data + authenticator).hexdigest()[:32]


def new_id() -> bytes:
    return os.urandom(16)


class GroupCoreBase:
    """What every part of a member's group core shares: state, views, routing, persistence."""

    def __init__(
        self,
        service: GroupCryptoService,
        identity: bytes,
        session: GroupSession,
        peer_id: str,
        roster: dict[str, str],
        config: GroupConfig | None = None,
        name: str = "",
    ) -> None:
        self._service = service
        self._identity = identity
        self._session = session
        self.peer_id = peer_id
        self.config = config or GroupConfig()
        self._roster = dict(roster)
        self._roster[session.own_fingerprint] = peer_id
        self._links: set[str] = set()
        self._reach: dict[str, frozenset[str]] = {}
        self.name = name
        self._name_version: tuple[int, str] = (0, "")
        self._seen = SeenIds(self.config.seen_ids)
        self._relayed = SeenIds(self.config.seen_ids)
        self._history = History(self.config.history_max_items, self.config.history_max_bytes)
        self._commit_hashes: dict[int, bytes] = {}
        self._fork_checks: dict[int, str] = {}
        self._future: deque[tuple[str, GroupPdu]] = deque()
        self._intents: dict[str, tuple[dict[str, object], float, int]] = {}
        self._queue: deque[tuple[str, dict[str, object]]] = deque()
        self._retired = False
        self._left = False
        self._awaiting: dict[bytes, set[str]] = {}
        self._outbox: dict[bytes, tuple[GroupPdu, float, int]] = {}
        self._plain: dict[bytes, bytes] = {}  # our unreceipted messages, to re-seal if needed
        self._invites: dict[str, bytes] = {}  # peer id -> the msg_id of our request
        self._resend: dict[str, tuple[GroupPdu, float, int]] = {}
        self._rejoin_kp: bytes | None = None
        self._rejoin_via = ""
        self._rejoin_goal: tuple[int, str] | None = None  # (term, taker) of the branch we re-join
        self._history_asked = -1.0
        self._next_heartbeat = 0.0
        self._relay_budget = self.config.relay_queue
        self._term = 0  # takeovers so far: the branch of the higher term is the group
        self._rejoinable: dict[str, str] = {}  # peer -> fingerprint a takeover removed: it
        # may re-join, with a key package of that identity only
        self._heard: dict[str, float] = {}
        self._taker = ""  # who took over in this term ("" in term 0)
        self._peer_terms: dict[str, tuple[int, str]] = {}
        self._started: float | None = None
        self._used_key_packages = SeenIds(self.config.seen_ids)
        self._added_at: dict[str, int] = {}  # member -> the epoch its current leaf came in
        self._done_removals = SeenIds(_DONE_REMOVALS)  # removal requests carried out (once)
        self._rejoin_marks: set[str] = set()  # a member the last commit removed to re-join
        # (the next commit adds it back): our messages it owes a receipt for wait for it
        self._gone: set[str] = set()  # members that told us they are out (never alive again)
        self._resumed = 0.0  # when we last came back from not running (silence counts after)
        self._forks_shown: dict[str, int] = {}  # peer -> the fork epoch last shown for it
        self._out_answered: dict[str, float] = {}  # peer -> when we last told it we are out
        self._former: dict[str, None] = {}  # peers removed from our roster, the latest last
        self._remember_epoch()

    # ------------------------------------------------------------------ views
    @property
    def group_id(self) -> bytes:
        return self._session.group_id

    @property
    def epoch(self) -> int:
        return self._session.epoch

    @property
    def members(self) -> tuple[str, ...]:
        return self._session.members

    @property
    def own_fingerprint(self) -> str:
        return self._session.own_fingerprint

    @property
    def epoch_authenticator(self) -> bytes:
        return self._session.epoch_authenticator

    @property
    def active(self) -> bool:
        return not self._left

    @property
    def rejoining(self) -> bool:
        """We asked to be re-added (a fork we lost, or history gone) and wait for the Welcome."""
        return self._rejoin_kp is not None and not self._left

    @property
    def rejoin_key(self) -> bytes | None:
        """The private key package of the re-join we wait for (``None``: none)."""
        return self._rejoin_kp if self.rejoining else None

    def outranks(self, term: object, taker: object, epoch: int) -> bool:
        """Whether our membership stands against a Welcome to ``epoch`` of the branch ``(term,
        taker)`` (its Welcome info ``t``, ``tb``): we are an active member of another branch that
        it does not beat (docs/protocol.md §9.2: the later term, then the lower taker), or of
        the same branch at that epoch or later — its leaf is gone by then (one identity has one
        leaf: ours), it is a late copy. A Welcome of our own branch to a later epoch is a new
        invitation (we were removed and do not know yet): it does not."""
        if not self.active:
            return False
        if self.rejoining:  # any Welcome but one of a branch that loses to the one we re-join
            goal = self._rejoin_goal
            if goal is None or not isinstance(term, int) or not isinstance(taker, str):
                return False
            return wins_over(goal, (term, taker))
        if not isinstance(term, int) or not isinstance(taker, str):
            return True
        if (term, taker) == (self._term, self._taker):
            return epoch <= self.epoch
        return not self._beats_ours(term, taker)

    def invited(self, peer_id: str) -> bool:
        """We asked ``peer_id`` for a key package and wait for its answer."""
        return peer_id in self._invites

    @property
    def roster(self) -> dict[str, str]:
        """Member fingerprint → peer id, for the current members."""
        return {fp: self._roster[fp] for fp in self.members if fp in self._roster}

    @property
    def sequencer(self) -> str:
        """The fingerprint of this epoch's committer: the member at the lowest leaf index."""
        return self.members[0]

    def pending_intents(self) -> int:
        return len(self._intents)

    def _require_active(self) -> None:
        if self._left:
            raise P2PUsageError("we are no longer a member of this group")

    def _is_sequencer(self) -> bool:
        if self._left or self._retired or self._rejoin_kp is not None:
            return False  # off the group's branch while re-joining: we commit nothing
        return self.sequencer == self.own_fingerprint

    # ------------------------------------------------------------------ status, forks, catch-up
    def _check(self) -> str:
        return self._fork_checks[self.epoch]

    def _remember_epoch(self) -> None:
        self._fork_checks[self.epoch] = fork_check(
            self.group_id, self.epoch, self._session.epoch_authenticator
        )
        for old in [e for e in self._fork_checks if e < self.epoch - _KEEP_EPOCHS]:
            del self._fork_checks[old]
        for old in [e for e in self._commit_hashes if e < self.epoch - _KEEP_EPOCHS]:
            del self._commit_hashes[old]

    def _window(self) -> list[str]:
        """The fork checks of the epochs before ours, newest first ("" where we have none)."""
        back = range(1, min(FORK_WINDOW - 1, self.epoch) + 1)
        return [self._fork_checks.get(self.epoch - i, "") for i in back]

    def _status_to(self, peer: str, *, out: bool = False) -> SendTo:
        links = [] if out else sorted(self._links)[: self.config.max_members]
        status: dict[str, object] = {"e": self.epoch, "f": self._check(), "w": self._window()}
        status |= {"links": links, "t": self._term, "tb": self._taker}
        if out:
            status["out"] = True
        body = encode_json(status)
        return SendTo(peer, self._pdu(Kind.STATUS, body, target=peer).encode())

    # ------------------------------------------------------------------ roster and sequencer
    def _quiet(self, fp: str, now: float) -> float:
        """How long member ``fp`` has been silent to us: since its last frame, counted from when
        we started or last came back (a member that was not running heard nothing); forever
        once it told us it is out."""
        peer = self._roster.get(fp, "")
        if peer in self._gone:
            return float("inf")
        heard = self._heard.get(peer, now if self._started is None else self._started)
        return now - max(heard, self._resumed)

    def _drop_member(self, fp: str) -> None:
        """``fp`` was removed: out of the roster, remembered as a former member (bounded)."""
        peer = self._roster.pop(fp, None)
        self._added_at.pop(fp, None)
        if peer is not None:
            self._resend.pop("welcome:" + peer, None)  # that membership is over
        if peer is not None and peer != self.peer_id:
            self._former.pop(peer, None)
            self._former[peer] = None
            while len(self._former) > 2 * self.config.max_members:
                del self._former[next(iter(self._former))]

    def _admitted(self, peer: str, now: float) -> None:
        """``peer`` came in by a commit (invited, perhaps again): what it said while it was out
        ("out" statuses, its silence) is over — its silence counts from now, and any add of it
        still waiting is done. A member that left
        and is invited again takes the lowest free leaf, often the sequencer's: left "gone", it
        would look silent forever and the next member would take over at once."""
        self._gone.discard(peer)
        self._heard[peer] = now
        # an add of it still waiting (ours, or kept for the sequencer) is done: its key package
        # is used. Kept, it could add it again after a later removal with that used package
        self._queue = deque(
            (o, i) for o, i in self._queue if not (i.get("op") == "add" and i.get("peer") == peer)
        )
        for key in [k for k, (i, _, _) in self._intents.items()
                    if i.get("op") == "add" and i.get("peer") == peer]:
            del self._intents[key]

    def _silent(self, fp: str, now: float) -> bool:
        return self._quiet(fp, now) >= self.config.failover_after_s

    def _intent_target(self, now: float) -> str:
        """The sequencer; while it is silent, the first member after it that is not (the one
        that will take over, :meth:`_take_over`)."""
        for fp in self.members:
            if fp == self.own_fingerprint or not self._silent(fp, now):
                return self._roster.get(fp, "")
        return ""

    def _welcome_info(self, welcome: bytes) -> bytes:
        """What a new member learns beside the MLS Welcome, signed by us (the committer) and
        naming that Welcome (``h``), so a relay cannot alter it (§9.2 rule 3)."""
        version, by = self._name_version
        info = {"roster": self.roster, "name": self.name, "v": version, "by": by, "t": self._term}
        info["h"] = hashlib.sha256(welcome).hexdigest()
        info["tb"], info["ad"] = self._taker, self._added_at
        rejoinable = dict(sorted(self._rejoinable.items())[: self.config.max_members])
        used = [t.hex() for t in self._used_key_packages.export()[-_WELCOME_KPS:]]
        done = [t.hex() for t in self._done_removals.export()[-_WELCOME_KPS:]]
        return self._signed("welcome", {**info, "r": rejoinable, "kps": used, "dn": done})

    def load_welcome_info(self, info: dict[str, object], *, from_committer: bool = False) -> None:
        """What the committer sent with a Welcome: the peer ids, the name, the term. The
        removals it carried out (``dn``) are believed only if it is the committer's word
        (``from_committer``: signed by it, or, with a backend that cannot sign, not relayed)."""
        roster, name, version, by, term = (info.get(k) for k in ("roster", "name", "v", "by", "t"))
        if isinstance(roster, dict):
            self._roster = {k: v for k, v in roster.items() if isinstance(v, str) and len(v) <= 64}
            self._roster[self.own_fingerprint] = self.peer_id
        if isinstance(name, str) and isinstance(version, int) and isinstance(by, str):
            self.name, self._name_version = name[: self.config.max_name], (version, by)
        if isinstance(term, int):
            self._term = term
            taker = info.get("tb")
            self._taker = taker[:64] if isinstance(taker, str) else ""
        rejoinable = info.get("r")
        if isinstance(rejoinable, dict):  # {peer id: fingerprint}
            limit = self.config.max_members
            self._rejoinable = {p: fp for p, fp in list(rejoinable.items())[:limit]
                                if isinstance(fp, str) and len(p) <= 64}
        used = info.get("kps")  # key packages the group used: a late add of one is refused
        for raw in used[:_WELCOME_KPS] if isinstance(used, list) else []:
            if (token := hex_token(raw, 32)) is not None:
                self._used_key_packages.add(token)
        done = info.get("dn") if from_committer else None  # removals carried out
        for raw in done[:_WELCOME_KPS] if isinstance(done, list) else []:
            if (key := hex_token(raw, 16)) is not None:
                self._done_removals.add(key)
        added = info.get("ad")
        members = set(self.members)
        if isinstance(added, dict):  # when each member's leaf came in (§9.5, removals by "at")
            self._added_at = {k: v for k, v in added.items() if k in members and isinstance(v, int)}
        self._added_at[self.own_fingerprint] = self.epoch
        self._remember_epoch()

    def remember_delivered(self, earlier: GroupCoreBase, now: float = 0.0) -> None:
        """Take over from our earlier membership of this group the message ids delivered, and
        our messages some member has not receipted: sealed again at our epoch (same id) for
        those of their audience who are members now — the re-seal rule of :meth:`_retransmit`.
        A member removed without knowing it (the commit never reached it) and invited again
        keeps what it sent while it was still a member."""
        for msg_id in earlier._seen.export():
            self._seen.add(msg_id)
        for msg_id, (sent, _, tries) in earlier._outbox.items():
            plain, waiting = earlier._plain.get(msg_id), earlier._awaiting.get(msg_id)
            if plain is None or not waiting or msg_id in self._outbox:
                continue
            if len(self._awaiting) >= self.config.max_pending_receipts:
                break
            pdu = replace(sent, epoch=self.epoch, body=self._session.seal(plain))
            self._history.add(pdu)
            self._outbox[msg_id] = (pdu, now, tries)
            self._plain[msg_id] = plain
            self._awaiting[msg_id] = set(waiting)

    def _beaten_by(self, peer: str) -> bool:
        """The branch ``peer`` reported (its last STATUS) wins over ours: a later takeover
        term, or the same term taken over by a member of a lower fingerprint."""
        term, taker = self._peer_terms.get(peer, (-1, ""))
        return self._beats_ours(term, taker)

    def _loses_to_ours(self, peer: str) -> bool:
        """``peer`` reported (its last STATUS) a branch other than ours that ours beats."""
        reported = self._peer_terms.get(peer)
        return reported is not None and reported != (self._term, self._taker) \
            and not self._beats_ours(*reported)

    def _beats_ours(self, term: int, taker: str) -> bool:
        """The branch ``(term, taker)`` wins over ours (docs/protocol.md §9.2)."""
        return wins_over((term, taker), (self._term, self._taker))

    # ------------------------------------------------------------------ persistence
    def export_state(self) -> bytes:
        """Everything to resume after a restart (secret: the MLS state; store it encrypted)."""
        state = {
            "v": 1,
            "peer": self.peer_id,
            "session": b64(self._session.export_state()),
            "roster": self._roster,
            "name": [self.name, self._name_version[0], self._name_version[1]],
            "seen": [i.hex() for i in self._seen.export()],
            "history": [b64(p) for p in self._history.export()],
            "commits": {str(e): h.hex() for e, h in self._commit_hashes.items()},
            "checks": {str(e): c for e, c in self._fork_checks.items()},
            "intents": [i for i, _, _ in self._intents.values()],
            "flags": [self._left, self._retired],
            "term": [self._term, self._taker],
            "kps": [t.hex() for t in self._used_key_packages.export()],
            "rejoinable": dict(sorted(self._rejoinable.items())),
            "rejoin": b64(self._rejoin_kp) if self._rejoin_kp is not None else "",
            "added": self._added_at,
            "done": [k.hex() for k in self._done_removals.export()],
            "outbox": self._export_outbox(),
        }
        return encode_json(state)

    def _export_outbox(self) -> list[list[Any]]:
        """Our messages some member has not receipted yet: a restart resends them (§9.3)."""
        out: list[list[Any]] = []
        budget = OUTBOX_STATE_BYTES
        for msg_id, (pdu, _, _) in self._outbox.items():
            plain, waiting = self._plain.get(msg_id), self._awaiting.get(msg_id)
            if plain is None or not waiting:
                continue
            entry = [msg_id.hex(), b64(pdu.encode()), b64(plain), sorted(waiting)]
            budget -= len(entry[1]) + len(entry[2])
            if budget < 0:
                break
            out.append(entry)
        return out

    @classmethod
    def restore(
        cls,
        service: GroupCryptoService,
        identity: bytes,
        state: bytes,
        config: GroupConfig | None = None,
        now: float = 0.0,
    ) -> Self:
        """A core from :meth:`export_state`; :class:`P2PUsageError` if the state is unusable."""
        try:
            data: dict[str, Any] = decode_json(state) if len(state) <= MAX_BODY else {}
            session = service.restore_group(unb64(data["session"], MAX_BODY))
            name, version, by = data["name"]
            core = cls(service, identity, session, str(data["peer"]), dict(data["roster"]), config)
            core.name, core._name_version = str(name), (int(version), str(by))
            core._load(data, now)
        except (KeyError, TypeError, ValueError, RemoteInputError, StateError) as exc:
            raise P2PUsageError(f"damaged group core state: {exc}") from None
        return core

    def _load(self, data: dict[str, Any], now: float) -> None:
        for raw in data["seen"]:
            self._seen.add(bytes.fromhex(raw))
        for raw in data["history"]:
            self._history.add(decode_pdu(unb64(raw, MAX_BODY)))
        self._commit_hashes = {int(e): bytes.fromhex(h) for e, h in data["commits"].items()}
        self._fork_checks.update({int(e): str(c) for e, c in data["checks"].items()})
        for intent in data["intents"]:
            self._intents[str(intent["id"])] = (dict(intent), now, 0)
        left, retired = data["flags"]
        self._left, self._retired = bool(left), bool(retired)
        self._rejoin_kp = unb64(data["rejoin"], MAX_BODY) or None
        for token in data["kps"]:
            self._used_key_packages.add(bytes.fromhex(token))
        term, taker = data["term"]
        self._term, self._taker = int(term), str(taker)
        saved = data["rejoinable"]  # a list (no fingerprints) is of an older version: nobody
        self._rejoinable = {str(p): str(fp) for p, fp in saved.items()} if isinstance(
            saved, dict) else {}
        added = data.get("added", {})  # absent in states saved before the fork window
        self._added_at = {str(fp): int(e) for fp, e in added.items() if fp in self.members}
        for raw in data.get("done", []):  # absent in states saved before it was kept
            self._done_removals.add(bytes.fromhex(raw))
        for raw_id, pdu, plain, waiting in data.get("outbox", [])[:self.config.max_pending_receipts]:
            msg_id = bytes.fromhex(raw_id)  # absent in states saved before it was kept: none
            self._outbox[msg_id] = (decode_pdu(unb64(pdu, MAX_BODY)), now, 0)
            self._plain[msg_id] = unb64(plain, MAX_BODY)
            self._awaiting[msg_id] = {str(fp) for fp in waiting}

    # ------------------------------------------------------------------ fan-out and relay
    def _signed(self, label: str, body: dict[str, object], target: str = "") -> bytes:
        """``body`` as JSON with ``s``, our control signature over :func:`control_content`
        (crypto 2.2), when our session can sign; without it (or once removed) unsigned."""
        if isinstance(self._session, GroupControlSigner):
            content = control_content(label, self.peer_id, target, body)
            with contextlib.suppress(LocalMisuse):
                if content is not None:
                    body = {**body, "s": self._session.sign_control(content).hex()}
        return encode_json(body)

    def _signed_by_origin(self, label: str, origin: str, body: dict[str, object],
                          target: str = "") -> bool:
        """``body`` carries the control signature of ``origin``, a member of our epoch."""
        member = self._member_of(origin)
        return member is not None and signed_by(
            self._session, member, control_content(label, origin, target, body), body) is True

    def _member_of(self, peer: str) -> str | None:
        return next((fp for fp, p in self._roster.items() if p == peer), None)

    def _pdu(
        self, kind: Kind, body: bytes, *, target: str = "", epoch: int | None = None
    ) -> GroupPdu:
        epoch = self.epoch if epoch is None else epoch
        return GroupPdu(kind, self.group_id, epoch, new_id(), self.peer_id, body, target)

    def _broadcast_application(
        self, msg_id: bytes, inner: bytes
    ) -> tuple[GroupPdu, list[GroupOutput]]:
        if self._rejoin_kp is not None:
            raise P2PUsageError("re-joining the group (a fork or a gap): send again once back")
        wire = self._session.seal(inner)
        pdu = GroupPdu(Kind.APPLICATION, self.group_id, self.epoch, msg_id, self.peer_id, wire)
        self._seen.add(msg_id)
        self._history.add(pdu)
        out: list[GroupOutput] = []
        for fp, peer in sorted(self.roster.items()):
            if fp != self.own_fingerprint:
                out += self._route(addressed(pdu, peer))
        return pdu, out

    def _resend_due(self, now: float) -> list[GroupOutput]:
        """Key-package requests and Welcomes go again until the peer answers (bounded tries).
        A Welcome is then parked, not dropped: it is the new member's only way in, and goes
        again when the peer is back (:meth:`_revive`)."""
        out: list[GroupOutput] = []
        for key, (pdu, due, tries) in list(self._resend.items()):
            if tries >= MAX_TRIES and key.startswith("welcome:"):
                self._resend[key] = (pdu, PARKED, tries)
            elif tries >= MAX_TRIES:
                del self._resend[key]
            elif now >= due:
                self._resend[key] = (pdu, now + self.config.retry_s, tries + 1)
                out += self._route(pdu)
        return out

    def _retransmit(self, now: float) -> list[GroupOutput]:
        """Our messages not yet receipted by a member go to it again (the links are reliable
        while up; this covers frames lost when a link or a relay went down)."""
        out: list[GroupOutput] = []
        if self._rejoin_kp is not None:  # our session may be gone until the Welcome
            later = now + self.config.retry_s
            self._outbox = {k: (p, max(d, later), t) for k, (p, d, t) in self._outbox.items()}
            return out
        roster = self.roster
        for msg_id, (sent, due, tries) in list(self._outbox.items()):
            pdu = sent
            owed = self._awaiting.get(msg_id, set())
            waiting = owed & roster.keys()
            if not waiting:  # nobody left to owe it, unless re-joining (then it waits)
                if owed & self._rejoin_marks:  # a try spent waiting; parked after the last
                    if now >= due:
                        later = now + self.config.retry_s if tries + 1 < MAX_TRIES else PARKED
                        self._outbox[msg_id] = (pdu, later, tries + 1)
                else:
                    del self._outbox[msg_id]
                    self._plain.pop(msg_id, None)
                continue
            if tries >= MAX_TRIES:  # parked until a member it waits for is back (_revive)
                if due != PARKED:
                    self._outbox[msg_id] = (pdu, PARKED, tries)
                continue
            if now < due:
                continue
            if pdu.epoch != self.epoch:
                # members keep only recent epochs' keys (RFC 9420 §14): a message sealed some
                # commits ago is sealed again, same id, for those of its audience still here
                pdu = replace(pdu, epoch=self.epoch, body=self._session.seal(self._plain[msg_id]))
                self._history.add(pdu)
            self._outbox[msg_id] = (pdu, now + self.config.retry_s, tries + 1)
            for fp in sorted(waiting):
                out += self._route(addressed(pdu, roster[fp]))
        return out

    def _revive(self, peer: str, now: float) -> None:
        """``peer`` is back (a link came up, or it spoke after a silence): our messages parked
        after every retry, that it still owes a receipt for, get ``REVIVE_TRIES`` more tries
        (to every member still waiting), starting now; so does a parked Welcome for it."""
        welcome = self._resend.get("welcome:" + peer)
        if welcome is not None and welcome[1] == PARKED:  # added while away: its way in
            self._resend["welcome:" + peer] = (welcome[0], now, MAX_TRIES - REVIVE_TRIES)
        fp = self._member_of(peer)
        if fp is None:
            return
        for msg_id, (pdu, due, _) in self._outbox.items():
            if due == PARKED and fp in self._awaiting.get(msg_id, ()):
                self._outbox[msg_id] = (pdu, now, MAX_TRIES - REVIVE_TRIES)

    def _route(self, pdu: GroupPdu) -> list[GroupOutput]:
        """Directly where we have a link; else through one member that says it reaches the
        target; else through up to two linked members (they relay once more at most)."""
        target = pdu.target
        if target in self._links:
            return [SendTo(target, pdu.encode())]
        relays = sorted(p for p in self._links if target in self._reach.get(p, ()))[:1]
        if not relays:
            relays = sorted(p for p in self._links if p in self._roster.values())[:2]
        return [SendTo(p, pdu.encode()) for p in relays]

    def _relay(self, pdu: GroupPdu) -> list[GroupOutput]:
        if pdu.hops >= HOP_LIMIT:
            raise RemoteInputError("hop limit reached")
        if pdu.target not in self._roster.values() and pdu.origin not in self._roster.values():
            raise RemoteInputError("relay between non-members")
        key = pdu.msg_id + pdu.target.encode()
        if key in self._relayed:
            return []
        if self._relay_budget <= 0:
            raise RemoteInputError("relay budget exhausted for this period")
        self._relay_budget -= 1
        self._relayed.add(key)
        return self._route_relayed(pdu.relayed(pdu.target))

    def _route_relayed(self, pdu: GroupPdu) -> list[GroupOutput]:
        if pdu.target in self._links:
            return [SendTo(pdu.target, pdu.encode())]
        if pdu.hops >= HOP_LIMIT:
            return []
        relays = sorted(p for p in self._links if pdu.target in self._reach.get(p, ()))[:1]
        return [SendTo(p, pdu.encode()) for p in relays]


def addressed(pdu: GroupPdu, target: str) -> GroupPdu:
    return replace(pdu, target=target)


def wins_over(branch: tuple[int, str], other: tuple[int, str]) -> bool:
    """``branch`` (term, taker) wins over ``other`` (docs/protocol.md §9.2: the later term; at
    equal terms past 0, the taker of the lower fingerprint)."""
    return branch[0] > other[0] or (branch[0] == other[0] > 0 and branch[1] < other[1])


def removal_key(origin: str, intent: dict[str, object]) -> bytes:
    """Which removal request this is: its origin and id (ids are the requester's own: keyed by
    origin too, one member cannot mark another's request done by reusing its id)."""
    return hashlib.sha256(f"{origin}\0{intent.get('id', '')}".encode()).digest()[:16]
