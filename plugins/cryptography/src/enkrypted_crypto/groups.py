"""The crypto contract 2.1 group API (and 2.2's control signatures) over the MLS engine (``docs/mls.md`` "The contract's group
API", ``docs/hooks.md`` §4).

A :class:`MlsGroupSession` wraps one :class:`~enkrypted_crypto.mls.Group` and turns every failure a
peer can cause into a :class:`~enkrypted_shell.contracts.GroupInputRejected` event; the engine
applies a message completely or not at all, so a rejected message leaves the state unchanged.

Profile of MLS used here (what peers of this API send and accept):

* cipher suite 1 (``MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519``), no GroupContext extensions,
  the ratchet tree in the Welcome's GroupInfo;
* credentials: basic, identity ``Encode(IK)`` (64 bytes), the leaf signing with that identity's
  ``IKs`` (as in the 1:1 MLS layer, ``session_mls.py``); members are named by the fingerprint of
  ``Encode(IK)``, the string :meth:`CascadeCryptoService.fingerprint` gives;
* handshake messages are PublicMessage commits by a member whose proposals are Add and Remove by
  value (with a path, as we always send); proposals by reference, external commits and every
  other proposal type are refused; application messages are PrivateMessages;
* KeyPackage lifetimes are written ``0 .. 2^64-1`` and not checked: the sans-I/O API reads no
  wall clock (key packages are one-use; the application retires published ones);
* control signatures (2.2, :meth:`MlsGroupSession.sign_control`): ``SignWithLabel`` with the
  leaf's signature key, label ``"EnkryptedChat group control"``, content ``u16 len || group id ||
  the caller's bytes`` — the MLS labels keep them apart from every signature of the framing.
"""

from __future__ import annotations

__all__ = [
    "GROUP_STATE_MAGIC",
    "KEY_PACKAGE_MAGIC",
    "MlsGroupSession",
    "bound_identity_validator",
    "create_group",
    "join_group",
    "new_group_key_package",
    "restore_group",
]

import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Final

from enkrypted_shell.contracts import (
    GroupCommit,
    GroupCommitApplied,
    GroupEvent,
    GroupInputRejected,
    GroupJoined,
    GroupJoinResult,
    GroupKeyPackage,
    GroupMessage,
    RemoteInputError,
    RemovedFromGroup,
)

from .errors import CryptoError, CryptoUsageError, MalformedInput, SessionStateError
from .mls import CommitApplied as MlsCommitApplied
from .mls import Group, GroupConfig, KeyPackageBundle, key_package_message, suite
from .mls._envelopes import MLSMessage, PrivateMessage, PublicMessage, Welcome
from .mls._keypackage import new_key_package as _new_key_package
from .mls._messages import (
    APPLICATION,
    COMMIT,
    CRED_BASIC,
    MEMBER,
    Add,
    Commit,
    Credential,
    KeyPackage,
    Remove,
    from_bytes,
)
from .x3dh import IdentityKeyPair

GROUP_SUITE: Final = 1
KEY_PACKAGE_MAGIC: Final = b"EnkryptedChat-group-key-package-v1\x00"
GROUP_STATE_MAGIC: Final = b"EnkryptedChat-group-state-v1\x00"
_IDENTITY: Final = 64  # Encode(IK) = IKs (Ed25519, 32) || IKd (X25519, 32)
_KEY: Final = 32
_NEVER_EXPIRES: Final = 2**64 - 1
_GROUP_ID_BYTES: Final = 32
_MAX_GROUP_ID: Final = 256
CONTROL_LABEL: Final = b"EnkryptedChat group control"
MAX_CONTROL_SIGNATURE: Final = 128  # Ed25519's is 64; longer is refused before any parsing


def bound_identity_validator(credential: Credential, signature_key: bytes) -> bool:
    """A basic credential whose identity is an ``Encode(IK)`` and whose leaf signs with its
    ``IKs``: the member is who its fingerprint says (which identities may join is the
    application's choice, made before it adds a key package)."""
    return (
        credential.credential_type == CRED_BASIC
        and len(credential.identity) == _IDENTITY
        and hmac.compare_digest(credential.identity[:_KEY], signature_key)
    )


def _config() -> GroupConfig:
    return GroupConfig(validate_credential=bound_identity_validator)


def fingerprint_of(encoded_identity: bytes) -> str:
    """Lowercase hex SHA-256 of ``Encode(IK)`` (``PublicIdentity.fingerprint``)."""
    return hashlib.sha256(encoded_identity).hexdigest()


def _bundle(identity: IdentityKeyPair) -> KeyPackageBundle:
    cs = suite(GROUP_SUITE)
    return _new_key_package(cs, identity.public.encode(), identity.signing_seed, 0, _NEVER_EXPIRES)


def new_group_key_package(identity: IdentityKeyPair) -> GroupKeyPackage:
    """A fresh one-use KeyPackage of ``identity``: the MLSMessage to publish, and the private
    part (magic, HPKE init and leaf encryption private keys, the public part)."""
    bundle = _bundle(identity)
    public = key_package_message(bundle)
    private = KEY_PACKAGE_MAGIC + bundle.init_priv + bundle.encryption_priv + public
    return GroupKeyPackage(public, private)


def _own_bundle(identity: IdentityKeyPair, private: bytes) -> KeyPackageBundle:
    """The engine's bundle from our stored private key package (our storage: misuse if wrong)."""
    head = len(KEY_PACKAGE_MAGIC)
    if not private.startswith(KEY_PACKAGE_MAGIC) or len(private) <= head + 2 * _KEY:
        raise CryptoUsageError("not a private group key package (GroupKeyPackage.private)")
    init_priv = private[head : head + _KEY]
    enc_priv = private[head + _KEY : head + 2 * _KEY]
    try:
        body = from_bytes(private[head + 2 * _KEY :], MLSMessage.decode).body
    except CryptoError:
        raise CryptoUsageError("damaged private group key package") from None
    cs = suite(GROUP_SUITE)
    if (
        not isinstance(body, KeyPackage)
        or body.leaf_node.credential.identity != identity.public.encode()
        or cs.kem_public(enc_priv) != body.leaf_node.encryption_key
        or cs.kem_public(init_priv) != body.init_key
    ):
        raise CryptoUsageError("this group key package is not one of this identity's")
    return KeyPackageBundle(body, init_priv, enc_priv, identity.signing_seed)


def create_group(identity: IdentityKeyPair, group_id: bytes | None, max_pdu: int) -> MlsGroupSession:
    if group_id is None:
        group_id = os.urandom(_GROUP_ID_BYTES)
    if not isinstance(group_id, bytes) or not 0 < len(group_id) <= _MAX_GROUP_ID:
        raise CryptoUsageError(f"a group id is 1 to {_MAX_GROUP_ID} bytes")
    group = Group.create(GROUP_SUITE, group_id, _bundle(identity), _config())
    return MlsGroupSession(group, max_pdu)


def join_group(
    identity: IdentityKeyPair, key_package: bytes, welcome: bytes, max_pdu: int
) -> GroupJoinResult:
    bundle = _own_bundle(identity, key_package)
    if len(welcome) > max_pdu:
        return GroupInputRejected("the Welcome is larger than the PDU cap")
    try:
        body = from_bytes(welcome, MLSMessage.decode).body
        if not isinstance(body, Welcome):
            return GroupInputRejected("not a Welcome")
        if body.cipher_suite != GROUP_SUITE:  # before the engine, which refuses an unknown suite
            return GroupInputRejected(f"the Welcome is for cipher suite {body.cipher_suite}")
        group = Group.join(welcome, bundle, _config())
    except RemoteInputError as exc:
        return GroupInputRejected(f"Welcome refused: {exc}")
    problem = _profile_problem(group)
    if problem is not None:
        return GroupInputRejected(f"Welcome refused: {problem}")
    return GroupJoined(MlsGroupSession(group, max_pdu))


def _profile_problem(group: Group) -> str | None:
    if group.cipher_suite.suite_id != GROUP_SUITE:
        return f"the group uses cipher suite {group.cipher_suite.suite_id}, not {GROUP_SUITE}"
    if group.group_context.extensions:
        return "the group has GroupContext extensions this API does not use"
    if not 0 < len(group.group_id) <= _MAX_GROUP_ID:
        return "the group id is empty or too long"
    return None


def restore_group(state: bytes, max_pdu: int) -> MlsGroupSession:
    if not state.startswith(GROUP_STATE_MAGIC):
        raise SessionStateError("not an exported group state (GroupSession.export_state)")
    try:
        group = Group.restore_state(state[len(GROUP_STATE_MAGIC) :], _config())
    except CryptoError as exc:
        raise SessionStateError(f"damaged group state: {exc}") from None
    if _profile_problem(group) is not None or group.reinit is not None:
        raise SessionStateError("the group state is not one of this API's groups")
    return MlsGroupSession(group, max_pdu)


class MlsGroupSession:
    """:class:`enkrypted_shell.contracts.GroupSession` over one MLS :class:`Group`."""

    def __init__(self, group: Group, max_pdu: int) -> None:
        self._group = group
        self._max_pdu = max_pdu

    # ------------------------------------------------------------------ views
    @property
    def group_id(self) -> bytes:
        return self._group.group_id

    @property
    def epoch(self) -> int:
        return self._group.epoch

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(fingerprint_of(c.identity) for _, c in self._group.members())

    @property
    def own_fingerprint(self) -> str:
        return self._fingerprint(self._group.my_leaf)

    @property
    def epoch_authenticator(self) -> bytes:
        return self._group.epoch_authenticator

    def _fingerprint(self, leaf: int) -> str:
        credential = self._group.credential_at(leaf)
        assert credential is not None
        return fingerprint_of(credential.identity)

    def _leaves(self) -> dict[str, int]:
        return {fingerprint_of(c.identity): i for i, c in self._group.members()}

    # ------------------------------------------------------------------ our changes
    def _require_member(self) -> None:
        if not self._group.active:
            raise CryptoUsageError("we were removed from this group")

    def add(self, key_packages: Sequence[bytes]) -> GroupCommit | GroupInputRejected:
        self._require_member()
        if not key_packages:
            raise CryptoUsageError("add needs at least one key package")
        if any(len(kp) > self._max_pdu for kp in key_packages):
            return GroupInputRejected("a key package is larger than the PDU cap")
        try:
            out = self._group.add([bytes(kp) for kp in key_packages])
        except RemoteInputError as exc:
            return GroupInputRejected(f"key package refused: {exc}")
        return GroupCommit(out.commit, out.welcome)

    def remove(self, fingerprints: Sequence[str]) -> GroupCommit:
        self._require_member()
        leaves = self._leaves()
        wanted = list(dict.fromkeys(fingerprints))
        if not wanted:
            raise CryptoUsageError("remove needs at least one member")
        unknown = [f for f in wanted if f not in leaves]
        if unknown:
            raise CryptoUsageError(f"not members of this group: {unknown}")
        if self.own_fingerprint in wanted:
            raise CryptoUsageError("a member cannot remove itself (another member commits it)")
        out = self._group.remove([leaves[f] for f in wanted])
        return GroupCommit(out.commit, out.welcome)

    def update(self) -> GroupCommit:
        self._require_member()
        out = self._group.update()
        return GroupCommit(out.commit, out.welcome)

    def seal(self, plaintext: bytes) -> bytes:
        self._require_member()
        if len(plaintext) > self._max_pdu:
            raise CryptoUsageError("the message cannot fit the PDU cap")
        wire = self._group.protect(bytes(plaintext))
        if len(wire) > self._max_pdu:
            raise CryptoUsageError("the sealed message does not fit the PDU cap")
        return wire

    def export_state(self) -> bytes:
        return GROUP_STATE_MAGIC + self._group.export_state()

    # ------------------------------------------------------------------ control signatures (2.2)
    def sign_control(self, content: bytes) -> bytes:
        self._require_member()
        return self._group.sign_with_label(CONTROL_LABEL, self._control(content))

    def verify_control(self, fingerprint: str, content: bytes, signature: bytes) -> bool:
        leaf_index = self._leaves().get(fingerprint)
        leaf = self._group.tree.leaf(leaf_index) if leaf_index is not None else None
        if leaf is None or len(signature) > MAX_CONTROL_SIGNATURE:
            return False
        return self._group.cipher_suite.verify_with_label(
            leaf.signature_key, CONTROL_LABEL, self._control(content), bytes(signature))

    def _control(self, content: bytes) -> bytes:
        """The signed content: the group id (length-prefixed) then the caller's bytes, so a
        signature of one group never verifies in another."""
        group_id = self._group.group_id
        return len(group_id).to_bytes(2, "big") + group_id + bytes(content)

    # ------------------------------------------------------------------ peers' messages
    def receive(self, message: bytes) -> list[GroupEvent]:
        if not self._group.active:
            return [GroupInputRejected("we were removed from this group")]
        if len(message) > self._max_pdu:
            return [GroupInputRejected("the message is larger than the PDU cap")]
        try:
            return [self._receive(bytes(message))]
        except RemoteInputError as exc:
            return [GroupInputRejected(str(exc) or type(exc).__name__)]

    def _receive(self, data: bytes) -> GroupEvent:
        body = from_bytes(data, MLSMessage.decode).body
        if isinstance(body, PrivateMessage):
            if body.content_type != APPLICATION:
                raise MalformedInput("handshake messages of this API are PublicMessages")
            return self._application(data)
        if not isinstance(body, PublicMessage):
            raise MalformedInput("not a group message (a commit or an application message)")
        content = body.content
        if content.content_type != COMMIT or not isinstance(content.content, Commit):
            raise MalformedInput("this API carries commits, not standalone proposals")
        if content.sender.sender_type != MEMBER:
            raise MalformedInput("commits come from members (no external commits)")
        proposals = content.content.proposals
        if any(p.proposal is None or not isinstance(p.proposal, Add | Remove) for p in proposals):
            raise MalformedInput("commits of this API carry Add and Remove proposals by value")
        before = self.members
        applied = self._group.process(data)
        committer = self._fingerprint(content.sender.index)
        if isinstance(applied, MlsCommitApplied) and applied.removed_self:
            return RemovedFromGroup(applied.epoch, committer)
        if not isinstance(applied, MlsCommitApplied):  # the filters above make this unreachable
            raise MalformedInput("not a commit")
        after = self.members
        return GroupCommitApplied(
            applied.epoch,
            committer,
            after,
            tuple(f for f in after if f not in before),
            tuple(f for f in before if f not in after),
        )

    def _application(self, data: bytes) -> GroupMessage:
        message, accept = self._group.read_application(data)
        if message.sender == self._group.my_leaf:
            raise MalformedInput("our own application message came back")
        # a late message of a recent past epoch is named by that epoch's tree: its sender may
        # have left since
        credential = self._group.credential_at(message.sender, message.epoch)
        if credential is None:
            raise MalformedInput("application message from a blank leaf")
        accept()
        return GroupMessage(fingerprint_of(credential.identity), message.data)
