"""One member's sans-I/O core of one group (``docs/protocol.md`` "Group chat").

PDUs from peers, local commands and ``now`` go in; :class:`SendTo` frames and events come out.
Commit ordering is the *sequencer rule*: the member at the lowest leaf index of the current epoch
(``members[0]``) makes every commit; the others send it intents (add, remove, update, rejoin)
and retransmit them until the group shows them done. One committer per epoch means one commit
per epoch, so every member that applies the commits in epoch order reaches the same state.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Sequence

from enkrypted_shell.contracts import (
    ContractError,
    GroupCommitApplied,
    GroupInputRejected,
    GroupJoined,
    GroupMessage,
    RemovedFromGroup,
)

from ..errors import P2PUsageError, RemoteInputError
from ._base import MAX_TRIES, PARKED, new_id
from ._events import (
    GroupLeft,
    GroupMessageDelivered,
    GroupOutput,
    GroupRenamed,
    MembershipChanged,
    PduRejected,
    ReceiptFromMember,
    SendTo,
)
from ._forks import ForkCore, peer_checks
from ._signatures import committer_signed, welcome_parts, welcome_word
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
    pack_list,
    unpack_list,
)

__all__ = ["GroupCore"]


class GroupCore(ForkCore):
    """One member's view of one group. Not thread-safe; one driver calls it."""

    # ------------------------------------------------------------------ local commands
    def send_text(self, text: str, now: float) -> tuple[bytes, list[GroupOutput]]:
        """Seal ``text`` for the current members and fan it out; returns its message id."""
        self._require_active()
        if len(text.encode()) > self.config.max_text:
            raise P2PUsageError(f"a group message is at most {self.config.max_text} bytes")
        msg_id = new_id()
        inner = encode_json({"t": "msg", "id": msg_id.hex(), "text": text})
        pdu, out = self._broadcast_application(msg_id, inner)
        others = {fp for fp in self.members if fp != self.own_fingerprint}
        if len(self._awaiting) >= self.config.max_pending_receipts:
            oldest = next(iter(self._awaiting))
            self._awaiting.pop(oldest)
            self._outbox.pop(oldest, None)
            self._plain.pop(oldest, None)
        self._awaiting[msg_id] = others
        self._outbox[msg_id] = (pdu, now + self.config.retry_s, 0)
        self._plain[msg_id] = inner
        return msg_id, out

    def rename(self, name: str, now: float) -> list[GroupOutput]:
        """Rename the group: last writer wins by (counter, fingerprint), a sealed control."""
        self._require_active()
        if not 0 < len(name) <= self.config.max_name or not name.isprintable():
            raise P2PUsageError(f"a group name is 1 to {self.config.max_name} printable chars")
        version = (self._name_version[0] + 1, self.own_fingerprint)
        self._name_version, self.name = version, name
        inner = encode_json({"t": "name", "id": "", "name": name, "v": version[0]})
        out: list[GroupOutput] = [GroupRenamed(self.group_id, name, self.own_fingerprint)]
        return out + self._broadcast_application(new_id(), inner)[1]

    def invite(self, peer_id: str, now: float) -> list[GroupOutput]:
        """Ask ``peer_id`` (a peer we have a link to) for a key package; an Add follows."""
        self._require_active()
        if peer_id in self.roster.values():
            raise P2PUsageError(f"{peer_id} is already a member")
        if len(self.members) >= self.config.max_members:
            raise P2PUsageError(f"a group has at most {self.config.max_members} members")
        pdu = self._pdu(Kind.KEY_PACKAGE_REQUEST, b"", target=peer_id)
        self._invites[peer_id] = pdu.msg_id
        self._resend["invite:" + peer_id] = (pdu, now + self.config.retry_s, 0)
        return [SendTo(peer_id, pdu.encode())]

    def remove(self, fingerprints: Iterable[str], now: float) -> list[GroupOutput]:
        self._require_active()
        fps = sorted(set(fingerprints))
        if not fps or any(fp not in self.members for fp in fps):
            raise P2PUsageError("remove names current members only")
        if self.own_fingerprint in fps:
            raise P2PUsageError("use leave() to leave the group")
        return self._intend({"op": "remove", "fps": fps}, now)

    def leave(self, now: float) -> list[GroupOutput]:
        self._require_active()
        return self._intend({"op": "remove", "fps": [self.own_fingerprint]}, now)

    def update(self, now: float) -> list[GroupOutput]:
        """Ask for a key update commit (new epoch secrets)."""
        self._require_active()
        return self._intend({"op": "update", "at": self.epoch}, now)

    def set_links(self, peers: Iterable[str], now: float) -> list[GroupOutput]:
        """The driver's current direct links; new links get our status at once."""
        new = set(peers) - {self.peer_id}
        added = new - self._links
        self._links = new
        members = self._roster.values()
        for peer in added:
            self._revive(peer, now)
        return [self._status_to(p) for p in sorted(added) if p in members] if self.active else []

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float:
        retry = [t for _, t, _ in self._intents.values()]
        resend = [t for _, t, _ in [*self._outbox.values(), *self._resend.values()]]
        return min([self._next_heartbeat, *retry, *resend])

    def handle_timeout(self, now: float) -> list[GroupOutput]:
        out: list[GroupOutput] = []
        if self._left:
            return out
        if now - self._next_heartbeat > self.config.heartbeat_s:
            self._resumed = now  # our timers fired late: we were not running, heard nothing
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat_s
            self._relay_budget = self.config.relay_queue
            members = self.roster.values()
            out += [self._status_to(p) for p in sorted(self._links) if p in members]
        for key, (intent, due, tries) in list(self._intents.items()):
            if now < due or key not in self._intents:  # due, and not settled meanwhile
                continue
            if tries >= MAX_TRIES:
                del self._intents[key]
                out.append(PduRejected(self.group_id, self.peer_id, f"gave up on {intent['op']}"))
                out += self._gave_up_rejoin() if intent.get("op") == "rejoin" else []
                continue
            self._intents[key] = (intent, now + self.config.retry_s, tries + 1)
            out += self._dispatch_intent(intent, now)
        if self._left:  # a re-join given up: our session may be removed, nothing to reseal
            return out
        return out + self._retransmit(now) + self._resend_due(now) + self._take_over(now)

    # ------------------------------------------------------------------ input
    def receive(self, peer_id: str, data: bytes, now: float) -> list[GroupOutput]:
        """One PDU from the link to ``peer_id``. Never raises for the peer's fault: a bad PDU
        is a :class:`PduRejected` and changes nothing."""
        try:
            pdu = decode_pdu(data)
            if pdu.group_id != self.group_id:
                raise RemoteInputError("a PDU of another group")
            if pdu.hops == 0 and pdu.origin != peer_id:
                raise RemoteInputError("a direct PDU whose origin is not the link's peer")
            members = self._roster.values()
            for peer in {peer_id, pdu.origin} & set(members):  # bounded: members only
                last = self._heard.get(peer)
                if last is None or now - last > 2 * self.config.heartbeat_s:
                    self._revive(peer, now)  # it speaks after a silence: it may be back
                self._heard[peer] = now
            if peer_id in members:  # the link's peer itself (a relayed origin is only named)
                self._gone.discard(peer_id)
            if pdu.target and pdu.target != self.peer_id:
                return self._relay(pdu)
            welcome = self._resend.get("welcome:" + pdu.origin)
            if welcome is not None and pdu.hops == 0 and pdu.epoch >= welcome[0].epoch:
                del self._resend["welcome:" + pdu.origin]  # the new member is in
            return self._dispatch(peer_id, pdu, now)
        except RemoteInputError as exc:
            return [PduRejected(self._session.group_id, peer_id, str(exc))]

    def _dispatch(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        if pdu.kind is Kind.STATUS:
            return self._on_status(peer_id, pdu, now)
        if pdu.kind is Kind.HISTORY_REQUEST:
            return self._on_history_request(peer_id, pdu, now)
        if self._left and pdu.kind is not Kind.WELCOME:
            raise RemoteInputError("we are no longer a member of this group")
        handlers = {
            Kind.COMMIT: self._on_commit,
            Kind.APPLICATION: self._on_application,
            Kind.RECEIPT: self._on_receipt,
            Kind.INTENT: self._on_intent,
            Kind.HISTORY_RESPONSE: self._on_history_response,
            Kind.WELCOME: self._on_welcome,
            Kind.KEY_PACKAGE_RESPONSE: self._on_key_package,
        }
        handler = handlers.get(pdu.kind)
        if handler is None:
            raise RemoteInputError(f"a member core does not take {pdu.kind.name}")
        return handler(peer_id, pdu, now)

    def _member_peer(self, pdu: GroupPdu) -> str:
        if pdu.origin not in self.roster.values():
            raise RemoteInputError(f"{pdu.kind.name} from {pdu.origin!r}, not a member")
        return pdu.origin

    def _is_future(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput] | None:
        """Keep a PDU of a later epoch until we caught up, and ask for the history."""
        if pdu.epoch <= self.epoch:
            return None
        if len(self._future) >= self.config.future_buffer:
            self._future.popleft()
        self._future.append((peer_id, pdu))
        return self._ask_history(peer_id, now)

    def _on_commit(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        parts = unpack_list(pdu.body, 3)
        if len(parts) != 3:
            raise RemoteInputError("a commit PDU is (commit, details, welcome or empty)")
        commit, info, welcome = parts
        digest = hashlib.sha256(commit).digest()
        if pdu.epoch < self.epoch:
            known = self._commit_hashes.get(pdu.epoch)
            if known is not None and known != digest:
                # unverifiable now (that epoch's keys are gone): the fork checks decide
                raise RemoteInputError(f"another commit for the past epoch {pdu.epoch}")
            return []
        future = self._is_future(peer_id, pdu, now)
        if future is not None:
            return future
        details = decode_json(info)
        signed = self._committers_word(peer_id, pdu, commit, digest, details)
        events = self._session.receive(commit)
        if events and isinstance(events[0], GroupInputRejected) and self._wins(peer_id, pdu):
            # a commit for our epoch from the group's branch does not apply: we are off it
            reason = f"its commit for our epoch: {events[0].reason}"
            return self._fork(peer_id, pdu.epoch, reason, now)
        trusted = signed if signed is not None else pdu.hops == 0 and pdu.origin == peer_id
        out = self._after_commit(peer_id, pdu, digest, details, events, now, trusted=trusted)
        carried = hashlib.sha256(welcome).hexdigest()
        if welcome and events and isinstance(events[0], GroupCommitApplied) and (
            signed is None or details.get("w") == carried
        ):
            self._relay_welcome(welcome, events[0], now)
        return out

    def _committers_word(
        self, peer_id: str, pdu: GroupPdu, commit: bytes, digest: bytes,
        details: dict[str, object],
    ) -> bool | None:
        """Check a commit's details before it is applied (docs/protocol.md §9.2 rule 3): signed by
        the PDU's origin and naming this commit, and that origin is the member MLS names as the
        committer (tried on a copy of our session: commits are rare, nothing is applied). Raises
        if the commit would apply with details that are not its committer's — nothing changes;
        the committer's own copy comes again, or from history. ``None``: our session cannot
        verify (no crypto 2.2). A commit MLS refuses goes on to the fork checks."""
        member = self._member_of(pdu.origin)
        signed = committer_signed(self._session, "commit", pdu.origin, member, details, digest)
        if signed is None:
            return None
        if not signed and not self._wins(peer_id, pdu):
            # refused whether MLS takes it or not (only a commit of the branch that beats ours
            # is worth trying: it shows the fork); no copy of the session for anyone's junk
            raise RemoteInputError("commit details its committer did not sign")
        try:
            trial = self._service.restore_group(self._session.export_state()).receive(commit)
        except ContractError as exc:  # unknown committer: nothing is applied (fail closed)
            raise RemoteInputError(f"cannot check the commit's committer: {exc}") from exc
        event = trial[0] if trial else None
        if isinstance(event, GroupCommitApplied | RemovedFromGroup) and (
            not signed or event.committer != member
        ):
            raise RemoteInputError("commit details its committer did not sign")
        return signed

    def _relay_welcome(self, data: bytes, applied: GroupCommitApplied, now: float) -> None:
        """Keep the Welcome a commit carried for the added peer: resent now if we have a link
        to it; else parked until it is back (the sequencer may be gone by then)."""
        try:
            welcome = decode_pdu(data)
        except RemoteInputError:
            return
        added = {self._roster.get(fp) for fp in applied.added}
        ours = welcome.kind is Kind.WELCOME and welcome.group_id == self.group_id
        if ours and welcome.target in added and welcome.hops == 0:
            # we are not its origin: it goes on as relayed (hops 1), straight to the new member
            due, tries = (now, 0) if welcome.target in self._links else (PARKED, MAX_TRIES)
            self._resend["welcome:" + welcome.target] = (welcome.relayed(welcome.target), due,
                                                        tries)

    def _wins(self, peer_id: str, pdu: GroupPdu) -> bool:
        """``peer_id`` (a direct link) is on the branch that wins over ours: our sequencer's
        (it sent its own commit), or one of a later takeover term."""
        if self._beaten_by(peer_id):
            return True
        return pdu.hops == 0 and pdu.origin == peer_id == self._roster.get(self.sequencer)

    def _after_commit(
        self,
        peer_id: str,
        pdu: GroupPdu,
        digest: bytes,
        details: dict[str, object],
        events: Sequence[object],
        now: float,
        *,
        trusted: bool,
    ) -> list[GroupOutput]:
        """``trusted``: the details are the committer's word (signed by it; with a backend that
        cannot sign, not relayed)."""
        event = events[0] if events else None
        if isinstance(event, GroupInputRejected):
            return [PduRejected(self.group_id, peer_id, f"commit refused: {event.reason}")]
        self._history.add(pdu)
        self._commit_hashes[pdu.epoch] = digest
        if isinstance(event, RemovedFromGroup):
            if self._rejoin_kp is not None:  # our old leaf goes; the Welcome brings us back
                return []
            self._left = True
            self._intents.clear()
            return [GroupLeft(self.group_id, event.epoch, event.committer)]
        assert isinstance(event, GroupCommitApplied)
        added, term = details.get("added"), details.get("term")
        mapping = added if isinstance(added, dict) else {}
        taker = details.get("taker")
        used = details.get("kps")
        for raw in used[:8] if isinstance(used, list) else []:
            if (token := hex_token(raw, 32)) is not None:
                self._used_key_packages.add(token)
        done = hex_token(details.get("done"), 16)
        if done is not None and trusted:
            # the removal it carried out, a late copy of which removes nobody — believed only
            # as the committer's word: a relay could otherwise retire a request to remove it
            self._done_removals.add(done)
        if isinstance(term, int) and isinstance(taker, str) and term > self._term:
            self._term, self._taker = term, taker[:64]  # a takeover commit: the members it
            # removed may re-join
            self._rejoinable.update({p: fp for fp, p in self._roster.items() if fp in event.removed})
        for fp in event.added:
            self._added_at[fp] = event.epoch
            peer = mapping.get(fp)
            if isinstance(peer, str) and 0 < len(peer) <= 64:
                self._roster[fp] = peer
                self._admitted(peer, now)
        for fp in event.removed:
            self._drop_member(fp)
        rejoin = details.get("rj")  # removed to re-join: the next commit adds it back
        self._rejoin_marks = {rejoin} if isinstance(rejoin, str) and rejoin in event.removed else set()
        self._remember_epoch()
        change = MembershipChanged(
            self.group_id, event.epoch, event.members, event.added, event.removed, event.committer
        )
        return [change, *self._settle_intents(now), *self._drain_future(now)]

    def _drain_future(self, now: float) -> list[GroupOutput]:
        ready = [(p, f) for p, f in self._future if f.epoch <= self.epoch]
        self._future = deque((p, f) for p, f in self._future if f.epoch > self.epoch)
        ready.sort(key=lambda item: (item[1].epoch, item[1].kind != Kind.COMMIT))
        return self._dispatch_each(ready, now)

    def _on_application(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        origin = pdu.origin  # MLS names and authenticates the sender, at the message's epoch
        if pdu.msg_id in self._seen:
            return self._receipt_for(origin, [pdu.msg_id])
        future = self._is_future(peer_id, pdu, now)
        if future is not None:
            return future
        events = self._session.receive(pdu.body)
        event = events[0] if events else None
        if not isinstance(event, GroupMessage):
            reason = event.reason if isinstance(event, GroupInputRejected) else "not a message"
            return [PduRejected(self.group_id, peer_id, f"application refused: {reason}")]
        self._seen.add(pdu.msg_id)
        self._history.add(pdu)
        out = self._inner(pdu, event)
        return out + self._receipt_for(origin, [pdu.msg_id])

    def _inner(self, pdu: GroupPdu, message: GroupMessage) -> list[GroupOutput]:
        """The sealed control inside an application message (authenticated by MLS)."""
        try:
            inner = decode_json(message.plaintext)
        except RemoteInputError as exc:
            return [PduRejected(self.group_id, pdu.origin, f"sealed content: {exc}")]
        sender_peer = self._roster.get(message.sender, pdu.origin)
        kind = inner.get("t")
        if kind == "msg" and inner.get("id") == pdu.msg_id.hex():
            text = inner.get("text")
            if isinstance(text, str) and len(text.encode("utf-8", "surrogatepass")) <= (
                    self.config.max_text):  # a member's JSON may carry a lone surrogate
                return [
                    GroupMessageDelivered(
                        self.group_id, pdu.msg_id, message.sender, sender_peer, text, pdu.epoch
                    )
                ]
        if kind == "name":
            name, version = inner.get("name"), inner.get("v")
            if isinstance(name, str) and isinstance(version, int) and 0 < len(name) <= 128:
                if (version, message.sender) > self._name_version:
                    self._name_version, self.name = (version, message.sender), name
                    return [GroupRenamed(self.group_id, name, message.sender)]
                return []
        return [PduRejected(self.group_id, pdu.origin, "sealed content of an unknown kind")]

    def _receipt_for(self, origin: str, ids: list[bytes]) -> list[GroupOutput]:
        if origin == self.peer_id or origin not in self.roster.values():
            return []
        receipt: dict[str, object] = {"ids": [i.hex() for i in ids], "e": self.epoch,
                                      "f": self._check(), "w": self._window()}
        body = self._signed("receipt", receipt, target=origin)  # a relay cannot forge or alter it
        return self._route(self._pdu(Kind.RECEIPT, body, target=origin))

    def _on_receipt(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        origin = self._member_peer(pdu)
        body = decode_json(pdu.body)
        ids, epoch = body.get("ids"), body.get("e")
        if not isinstance(ids, list) or len(ids) > 64 or not isinstance(epoch, int):
            raise RemoteInputError("a receipt is {ids (at most 64), e, f}")
        msg_ids = [token for raw in ids if (token := hex_token(raw, 16)) is not None]
        if len(msg_ids) != len(ids):
            raise RemoteInputError("a receipt id is 16 bytes in hex")
        member = next(fp for fp, p in self.roster.items() if p == origin)
        if pdu.hops and not self._signed_by_origin("receipt", origin, body, target=pdu.target):
            raise RemoteInputError("a relayed receipt without its origin's signature")
        checks = peer_checks(epoch, body)
        out = self._compare(origin, epoch, checks, now, direct=pdu.hops == 0)
        for msg_id in msg_ids:
            waiting = self._awaiting.get(msg_id)
            if waiting is not None and member in waiting:
                waiting.discard(member)
                out.append(ReceiptFromMember(self.group_id, msg_id, member, origin))
                if not waiting:
                    self._outbox.pop(msg_id, None)
                    self._plain.pop(msg_id, None)
        return out

    def _on_intent(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        intent = decode_json(pdu.body)
        if intent.get("op") not in ("add", "remove", "update", "rejoin", "handoff"):
            raise RemoteInputError(f"an intent of unknown kind {intent.get('op')!r}")
        if intent.get("op") != "rejoin":
            self._member_peer(pdu)
            if pdu.hops and not self._signed_by_origin("intent", pdu.origin, intent):
                raise RemoteInputError("a relayed request without its origin's signature")
        intent.pop("s", None)
        if intent.get("op") in ("handoff", None) or self._is_sequencer():
            return self._execute(pdu.origin, intent, now)
        target = self._intent_target(now)
        if pdu.hops < HOP_LIMIT and target and target != self.peer_id:
            return self._route_relayed(pdu.relayed(target))
        return self._execute(pdu.origin, intent, now)  # kept: we may be the one to take over

    def _on_key_package(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        if pdu.hops != 0 or self._invites.get(peer_id) != pdu.msg_id:  # only our latest ask's
            raise RemoteInputError("a key package nobody asked for")
        del self._invites[peer_id]
        self._resend.pop("invite:" + peer_id, None)
        return self._intend({"op": "add", "peer": peer_id, "kp": b64(pdu.body)}, now)

    def _on_history_request(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        if pdu.hops != 0 and pdu.origin not in self._roster.values():
            raise RemoteInputError("a relayed history request from a non-member")
        if pdu.epoch < self.epoch and not self._history.has_commit_from(pdu.epoch):
            body = b"\x00"  # gone: the asker re-joins by a Welcome
        else:
            budget = min(self.config.history_max_bytes, MAX_BODY - 16)
            body = b"\x01" + pack_list(self._history.since(pdu.epoch, budget))
        reply = self._pdu(Kind.HISTORY_RESPONSE, body, target=pdu.origin)
        return [SendTo(peer_id, reply.encode())] if pdu.hops == 0 else self._route(reply)

    def _on_history_response(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        if pdu.body[:1] == b"\x00":
            if self._rejoin_kp is not None or pdu.origin not in self.roster.values():
                return []
            sequencer = self._roster.get(self.sequencer, "")
            if sequencer not in ("", pdu.origin, self.peer_id) and not self._beaten_by(pdu.origin):
                # that member may have joined after our gap: the sequencer has seen every commit
                self._history_asked = -1.0
                return self._ask_history(sequencer, now)
            return self._rejoin(pdu.origin, "the history we missed is gone", now)
        if pdu.body[:1] != b"\x01":
            raise RemoteInputError("a history response starts with 0 or 1")
        items = [
            decode_pdu(raw) for raw in unpack_list(pdu.body[1:], self.config.history_max_items)
        ]
        if any(
            i.kind not in (Kind.COMMIT, Kind.APPLICATION) or i.group_id != self.group_id
            for i in items
        ):
            raise RemoteInputError("a history item is a commit or an application message")
        return self._dispatch_each([(peer_id, item) for item in items], now)

    def _dispatch_each(self, items: list[tuple[str, GroupPdu]], now: float) -> list[GroupOutput]:
        """Several PDUs in order; one bad PDU is rejected alone, and a removal stops the rest."""
        out: list[GroupOutput] = []
        for peer_id, pdu in items:
            if self._left:
                break
            try:
                out += self._dispatch(peer_id, pdu, now)
            except RemoteInputError as exc:
                out.append(PduRejected(self.group_id, peer_id, str(exc)))
        return out

    def _on_welcome(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        if self._rejoin_kp is None:
            raise RemoteInputError("a Welcome we did not ask for")
        welcome, info = welcome_parts(pdu)
        result = self._service.join_group(self._identity, self._rejoin_kp, welcome)
        if not isinstance(result, GroupJoined) or result.session.group_id != self.group_id:
            raise RemoteInputError("the Welcome was refused")
        from_committer = welcome_word(result.session, pdu, peer_id, welcome, info)
        self._session = result.session
        self._rejoin_kp = None
        self._left = self._retired = False
        self._future.clear()
        self._fork_checks.clear()  # the old branch's epochs are not the group's
        self._commit_hashes.clear()
        self._gone.clear()
        self._forks_shown.clear()
        self._done_removals.clear()  # the old branch's removals are not the group's
        self.load_welcome_info(info, from_committer=from_committer)
        out: list[GroupOutput] = [MembershipChanged(self.group_id, self.epoch, self.members)]
        return out + self._settle_intents(now)

