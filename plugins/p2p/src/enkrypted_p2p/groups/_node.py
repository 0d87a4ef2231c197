"""One member's groups: answers key-package requests, joins from a Welcome, routes PDUs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from enkrypted_shell.contracts import GroupCryptoService, GroupJoined, GroupKeyPackage

from ..errors import P2PUsageError, RemoteInputError
from ._core import GroupCore
from ._events import GroupConfig, GroupOutput, MembershipChanged, PduRejected, SendTo
from ._signatures import welcome_parts, welcome_word
from ._wire import GroupPdu, Kind, decode_pdu

__all__ = ["GroupNode"]

_MAX_PENDING_INVITES = 16

InvitePolicy = Callable[[str, bytes], bool]


def _accept_all(peer_id: str, group_id: bytes) -> bool:
    return True


class GroupNode:
    """Every group of one member (one identity, one peer id), sans-I/O like its cores."""

    def __init__(
        self,
        service: GroupCryptoService,
        identity: bytes,
        peer_id: str,
        config: GroupConfig | None = None,
        accept_invite: InvitePolicy = _accept_all,
    ) -> None:
        self.service = service
        self.identity = identity
        self.peer_id = peer_id
        self.config = config or GroupConfig()
        self.groups: dict[bytes, GroupCore] = {}
        self._accept_invite = accept_invite
        self._key_packages: OrderedDict[bytes, GroupKeyPackage] = OrderedDict()
        # group id -> the private key package of a re-join a Welcome overtook (we were invited
        # meanwhile): the group may still carry that request out, and its Welcome is ours
        self._abandoned: OrderedDict[bytes, bytes] = OrderedDict()
        self._links: set[str] = set()

    def create_group(self, name: str = "", group_id: bytes | None = None) -> GroupCore:
        session = self.service.create_group(self.identity, group_id)
        core = GroupCore(self.service, self.identity, session, self.peer_id, {}, self.config, name)
        core.set_links(self._links, 0.0)
        self.groups[core.group_id] = core
        return core

    def adopt(self, core: GroupCore) -> None:
        """A core restored from :meth:`GroupCore.export_state` joins this node."""
        if core.peer_id != self.peer_id:
            raise P2PUsageError("that group state belongs to another peer id")
        core.set_links(self._links, 0.0)
        self.groups[core.group_id] = core

    def set_links(self, peers: Iterable[str], now: float) -> list[GroupOutput]:
        self._links = set(peers)
        out: list[GroupOutput] = []
        for core in self.groups.values():
            out += core.set_links(self._links, now)
        return out

    def next_deadline(self) -> float | None:
        deadlines = [c.next_deadline() for c in self.groups.values() if c.active]
        return min(deadlines) if deadlines else None

    def handle_timeout(self, now: float) -> list[GroupOutput]:
        out: list[GroupOutput] = []
        for core in list(self.groups.values()):
            out += core.handle_timeout(now)
        return out

    def receive(self, peer_id: str, data: bytes, now: float) -> list[GroupOutput]:
        """One frame from the link to ``peer_id``; never raises for the peer's fault."""
        try:
            pdu = decode_pdu(data)
        except RemoteInputError as exc:
            return [PduRejected(b"", peer_id, str(exc))]
        core = self.groups.get(pdu.group_id)
        if core is not None and pdu.kind is not Kind.KEY_PACKAGE_REQUEST:
            # a Welcome for the key package we gave (or of a re-join a Welcome overtook) is a
            # new start (invited again after we left); anything else, and a Welcome for the
            # core's re-join, is the core's
            joined = self._try_join(peer_id, pdu, now)
            return joined if joined is not None else core.receive(peer_id, data, now)
        try:
            return self._outside(peer_id, pdu, now)
        except RemoteInputError as exc:
            return [PduRejected(pdu.group_id, peer_id, str(exc))]

    def _try_join(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput] | None:
        if pdu.kind is not Kind.WELCOME or not self._keys_for(pdu.group_id):
            return None
        try:
            return self._join(peer_id, pdu, now)
        except RemoteInputError:
            return None

    def _outside(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        """A PDU of a group we have no core for: key packages are always ours to give (a member
        that asks sees us outside the group: we left, or were removed and do not know yet)."""
        if pdu.kind is Kind.KEY_PACKAGE_REQUEST:
            return self._key_package_for(peer_id, pdu)
        if pdu.kind is Kind.WELCOME and pdu.target == self.peer_id:
            return self._join(peer_id, pdu, now)
        if pdu.kind is Kind.STATUS:  # a member's heartbeat that overtook our Welcome
            return []
        raise RemoteInputError(f"{pdu.kind.name} for a group we are not in")

    def _key_package_for(self, peer_id: str, pdu: GroupPdu) -> list[GroupOutput]:
        if pdu.hops != 0 or pdu.origin != peer_id:
            raise RemoteInputError("a key package request comes over the asker's own link")
        if not self._accept_invite(peer_id, pdu.group_id):
            raise RemoteInputError("invitation declined")
        key_package = self._key_packages.get(pdu.group_id)  # a repeated request: the same one
        if key_package is None:
            key_package = self.service.new_key_package(self.identity)
            self._key_packages[pdu.group_id] = key_package
        while len(self._key_packages) > _MAX_PENDING_INVITES:
            self._key_packages.popitem(last=False)
        reply = GroupPdu(
            Kind.KEY_PACKAGE_RESPONSE,
            pdu.group_id,
            0,
            pdu.msg_id,
            self.peer_id,
            key_package.public,
            peer_id,
        )
        return [SendTo(peer_id, reply.encode())]

    def _keys_for(self, group_id: bytes) -> list[bytes]:
        """The private key packages a Welcome of ``group_id`` may be for (the node's own first)."""
        given = self._key_packages.get(group_id)
        keys = [given.private] if given is not None else []
        return keys + ([key] if (key := self._abandoned.get(group_id)) is not None else [])

    def _join(self, peer_id: str, pdu: GroupPdu, now: float) -> list[GroupOutput]:
        keys = self._keys_for(pdu.group_id)
        if not keys:
            raise RemoteInputError("a Welcome for a key package we did not give")
        welcome, info = welcome_parts(pdu)
        for private in keys:
            result = self.service.join_group(self.identity, private, welcome)
            if isinstance(result, GroupJoined) and result.session.group_id == pdu.group_id:
                break
        else:
            raise RemoteInputError("the Welcome was refused")
        from_committer = welcome_word(result.session, pdu, peer_id, welcome, info)
        old = self.groups.get(pdu.group_id)
        if old is not None and old.outranks(info.get("t"), info.get("tb"), result.session.epoch):
            # a member of the branch that loses asked us in: taking it would swap the group's
            # branch for that one (and leave the group's branch without us); or a late copy of
            # a Welcome our membership has overtaken
            reason = "a Welcome of a branch that loses to our membership, or older than it"
            return [PduRejected(pdu.group_id, peer_id, reason)]
        self._key_packages.pop(pdu.group_id, None)
        self._abandoned.pop(pdu.group_id, None)
        core = GroupCore(self.service, self.identity, result.session, self.peer_id, {}, self.config)
        core.load_welcome_info(info, from_committer=from_committer)
        if old is not None:  # invited again after leaving (or a removal we never heard of):
            core.remember_delivered(old, now)  # delivered stays delivered, unreceipted goes again
            self._keep_abandoned(old)
        self.groups[core.group_id] = core
        out: list[GroupOutput] = [MembershipChanged(core.group_id, core.epoch, core.members)]
        return out + core.set_links(self._links, now)

    def _keep_abandoned(self, old: GroupCore) -> None:
        """``old`` waited for the Welcome of its re-join: the request may still be carried out
        (it was on its way) — removing the leaf we just got and adding that one. Its Welcome is
        then the only way back in, so we keep its key (bounded; one per group)."""
        key = old.rejoin_key
        if key is None:
            return
        self._abandoned.pop(old.group_id, None)
        self._abandoned[old.group_id] = key
        while len(self._abandoned) > _MAX_PENDING_INVITES:
            self._abandoned.popitem(last=False)
