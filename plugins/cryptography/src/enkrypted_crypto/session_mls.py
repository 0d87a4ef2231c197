"""The ``MLS`` cascade layer of a 1:1 session: a two-member RFC 9420 group (``docs/protocol.md``
§1.3, §2.1).

The handshake builds the group (:mod:`enkrypted_crypto.handshake`): the responder asks for the
initiator's KeyPackage (``mls-key-package-request``), creates the group at epoch 0, commits an
Add of that KeyPackage (``mls-commit``) and sends the Welcome (``mls-welcome``); the initiator
joins at epoch 1 and proves it with an exporter value (``mls-welcome-ack``).  Both sides are then
in epoch 1 of the group ``"EnkryptedChat-mls-1to1-v1/" || session id`` and stay there: each
message is one PrivateMessage (application content) of that epoch.

Identities: each member's leaf carries a basic credential whose identity is its ``Encode(IK)``
(64 bytes, §1.1) and signs with its Ed25519 identity key ``IKs`` — so the MLS signatures are
bound to the identities the handshake authenticated, and a leaf for any other key is refused
(:func:`identity_validator`).  MLS's ``SignWithLabel`` content starts with a one-byte label length
(< 0x40), our other ``IKs`` signatures with ``"EnkryptedChat-"`` (0x45), so they cannot collide.

Suite: 1, ``MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`` (the spec's, digest §4.3).  The engine
(:mod:`enkrypted_crypto.mls`) runs over pyca/cryptography directly, so the layer needs the
backend capability :data:`MLS_CAPABILITY`, which only the pyca backend declares.
"""

from __future__ import annotations

__all__ = [
    "MLS_CAPABILITY",
    "MLS_SUITE",
    "MLS_SUITE_NAME",
    "MlsCascadeLayer",
    "MlsParameters",
    "accept_welcome",
    "check_commit",
    "check_key_package",
    "create_group",
    "identity_validator",
    "mls_group_id",
    "new_key_package",
    "restore_mls",
]

import base64
import binascii
import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .cascade import NO_COMMIT, Commit
from .errors import DecryptionFailed, MalformedInput, SessionStateError
from .mls import CommitOutput, Group, GroupConfig, KeyPackageBundle, suite
from .mls._envelopes import GroupContext, MLSMessage, PublicMessage, Sender
from .mls._framing import AuthenticatedContent, verify_content
from .mls._keypackage import CredentialValidator, identity_key_validator, validate_key_package
from .mls._keypackage import new_key_package as _new_key_package
from .mls._messages import (
    COMMIT,
    MEMBER,
    PUBLIC_MESSAGE,
    Add,
    KeyPackage,
    ProposalOrRef,
    from_bytes,
    to_bytes,
)
from .mls._messages import (
    Commit as MlsCommit,
)
from .mls._tree import RatchetTree
from .primitives import BytesLike
from .x3dh import IdentityKeyPair

MLS_SUITE: Final = 1
MLS_SUITE_NAME: Final = "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
MLS_CAPABILITY: Final = "mls-suite-1"
"""The backend capability the layer needs: RFC 9420 cipher suite 1 (HPKE X25519/AES-128-GCM,
Ed25519), which the MLS engine takes from pyca/cryptography."""
_GROUP_LABEL: Final = b"EnkryptedChat-mls-1to1-v1/"
_IDENTITY: Final = 64  # Encode(IK) = IKs (Ed25519, 32) || IKd (X25519, 32)
_NEVER_EXPIRES: Final = 2**64 - 1
_U64: Final = struct.Struct(">Q")
_CREATOR, _JOINER = 0, 1  # leaf indices: the responder creates, the initiator joins


def mls_group_id(session_id: str) -> bytes:
    """The group of one session: bound to its handshake transcript through the session id."""
    return _GROUP_LABEL + session_id.encode("ascii")


def identity_validator(*identities: bytes) -> CredentialValidator:
    """Basic credentials of exactly these ``Encode(IK)`` identities, signing with their ``IKs``."""
    return identity_key_validator({i: i[:32] for i in identities})


def _config(own: bytes, peer: bytes) -> GroupConfig:
    return GroupConfig(validate_credential=identity_validator(own, peer))


def new_key_package(identity: IdentityKeyPair) -> KeyPackageBundle:
    """A fresh KeyPackage for this handshake: credential ``Encode(IK)``, signed with ``IKs``.

    Its lifetime is not checked by either side (the sans-I/O handshake reads no wall clock and
    the KeyPackage lives only inside one handshake), so it is written as ``0 .. 2^64-1``.
    """
    cs = suite(MLS_SUITE)
    return _new_key_package(
        cs, identity.public.encode(), identity.signing_seed, 0, _NEVER_EXPIRES
    )


def check_key_package(data: bytes, peer: bytes) -> KeyPackage:
    """The peer's KeyPackage MLSMessage: suite 1, valid signatures, credential = ``peer``."""
    body = from_bytes(data, MLSMessage.decode).body
    if not isinstance(body, KeyPackage):
        raise MalformedInput("mls-key-package does not carry a KeyPackage")
    cs = suite(MLS_SUITE)
    validate_key_package(
        cs, body, tree=None, validate_credential=identity_validator(peer), now=None
    )
    return body


def create_group(
    identity: IdentityKeyPair, peer: bytes, session_id: str, peer_key_package: KeyPackage
) -> tuple[Group, CommitOutput]:
    """Responder: the group at epoch 0 with only us, then the commit adding the peer (no path:
    our leaf is fresh) and its Welcome; the group is in epoch 1 afterwards."""
    own = identity.public.encode()
    bundle = new_key_package(identity)
    group = Group.create(MLS_SUITE, mls_group_id(session_id), bundle, _config(own, peer))
    out = group.commit([Add(peer_key_package)], force_path=False)
    return group, out


def check_commit(data: bytes, session_id: str, own_key_package: KeyPackage) -> bytes:
    """Initiator, before the Welcome: the commit must add exactly our KeyPackage to this
    session's group at epoch 0, by its creator.  Its signature and tag are checked once we have
    joined (:func:`accept_welcome`), when the creator's leaf and epoch 1 are known."""
    body = from_bytes(data, MLSMessage.decode).body
    if not isinstance(body, PublicMessage):
        raise MalformedInput("mls-commit must be a PublicMessage")
    content = body.content
    expected = (ProposalOrRef(proposal=Add(own_key_package)),)
    if (
        content.group_id != mls_group_id(session_id)
        or content.epoch != 0
        or content.sender != Sender(MEMBER, _CREATOR)
        or content.content_type != COMMIT
        or not isinstance(content.content, MlsCommit)
        or content.content.proposals != expected
        or content.content.path is not None
    ):
        raise MalformedInput("mls-commit is not the Add of our KeyPackage to this session's group")
    return data


def accept_welcome(
    welcome: bytes,
    commit: bytes,
    bundle: KeyPackageBundle,
    own: bytes,
    peer: bytes,
    session_id: str,
) -> Group:
    """Initiator: join from the Welcome and check the group is this session's two-member group
    in epoch 1, created by ``peer``, and that the commit we were sent is the one that made it
    (its signature under the creator's epoch-0 context, and its confirmation tag)."""
    group = Group.join(welcome, bundle, _config(own, peer))
    members = [(i, c.identity) for i, c in group.members()]
    if (
        group.group_id != mls_group_id(session_id)
        or group.epoch != 1
        or group.cipher_suite.suite_id != MLS_SUITE
        or group.my_leaf != _JOINER
        or members != [(_CREATOR, peer), (_JOINER, own)]
        or group.group_context.extensions
    ):
        raise MalformedInput("the Welcome is not for this session's two-member group")
    message = from_bytes(commit, MLSMessage.decode).body
    assert isinstance(message, PublicMessage)  # check_commit ran on it
    creator = group.tree.leaf(_CREATOR)
    assert creator is not None
    cs = group.cipher_suite
    epoch0 = GroupContext(
        MLS_SUITE, group.group_id, 0, RatchetTree(cs, [creator]).tree_hash(), b"", ()
    )
    ac = AuthenticatedContent(
        PUBLIC_MESSAGE, message.content, message.signature, message.confirmation_tag
    )
    tag = message.confirmation_tag or b""
    if not (
        verify_content(cs, ac, creator.signature_key, to_bytes(epoch0))
        and hmac.compare_digest(tag, group.confirmation_tag)
    ):
        raise DecryptionFailed
    return group


# ---------------------------------------------------------------------------------- the layer
@dataclass(frozen=True, slots=True)
class MlsParameters:
    """The MLS layer's parameters: in Profile-v0 ``{groupId, timestamp}`` (digest §4.3; the
    group id must be the session's, the timestamp the layer's authenticated one); none in b1."""

    timestamp_ms: int | None = None


class MlsCascadeLayer:
    """``MLS`` layer: one PrivateMessage per message in the session group's current epoch.

    Profile-v0 base64-encodes the input first (digest §4.3, ``encoding: "base64"``); b1 does not.
    The PrivateMessage's ``authenticated_data`` is the message timestamp (u64 BE ms), so the
    layer's timestamp is authenticated too.  Opening consumes the message key only when the
    whole cascade succeeded (``Group.read_application``); our own messages reflected back to
    us are refused, and a replay fails because its key was deleted (RFC 9420 §9.2).
    """

    name: Final = "MLS"
    algorithm: Final = "MLS"

    def __init__(self, group: Group, profile_v0: bool) -> None:
        self._group = group
        self._v0 = profile_v0
        self._group_id = group.group_id.decode("ascii")
        self.version: Final = "1.0.0" if profile_v0 else "b1"

    @property
    def group(self) -> Group:
        return self._group

    def export_state(self) -> bytes:
        return self._group.export_state()

    def seal(self, data: BytesLike, now_ms: int) -> tuple[bytes, object, Commit]:
        payload = base64.b64encode(data) if self._v0 else bytes(data)
        out = self._group.protect(payload, _U64.pack(now_ms))
        return out, MlsParameters(now_ms), NO_COMMIT

    def open(self, data: BytesLike, parameters: object, timestamp_ms: int) -> tuple[bytes, Commit]:
        if not isinstance(parameters, MlsParameters):
            raise MalformedInput("expected MlsParameters")
        if parameters.timestamp_ms not in (None, timestamp_ms):  # v0 carries it twice
            raise MalformedInput("MLS layer timestamps disagree")
        message, accept = self._group.read_application(bytes(data))
        if message.sender == self._group.my_leaf:
            raise MalformedInput("our own MLS message came back")
        if not hmac.compare_digest(message.authenticated_data, _U64.pack(timestamp_ms)):
            raise DecryptionFailed
        if not self._v0:
            return message.data, accept
        try:
            return base64.b64decode(message.data, validate=True), accept
        except (binascii.Error, ValueError):
            raise MalformedInput("MLS layer plaintext is not base64") from None

    def params_to_v0(self, parameters: object) -> dict[str, object]:
        if not isinstance(parameters, MlsParameters):
            raise MalformedInput("expected MlsParameters")
        return {"groupId": self._group_id, "timestamp": parameters.timestamp_ms}

    def metadata_to_v0(self, parameters: object) -> dict[str, object]:
        return {"epoch": self._group.epoch, "encoding": "base64", "cipherSuite": MLS_SUITE_NAME}

    def params_from_v0(
        self, parameters: Mapping[str, object], metadata: Mapping[str, object]
    ) -> object:
        timestamp = parameters.get("timestamp")
        if set(parameters) != {"groupId", "timestamp"} or type(timestamp) is not int:
            raise MalformedInput("MLS layer parameters must be groupId and an integer timestamp")
        if parameters.get("groupId") != self._group_id:
            raise MalformedInput("MLS layer message for another group")
        return MlsParameters(timestamp)

    def params_to_bytes(self, parameters: object) -> bytes:
        return b""

    def params_from_bytes(self, data: bytes) -> object:
        if data:
            raise MalformedInput("the b1 MLS layer has no parameters")
        return MlsParameters()


def restore_mls(
    state: bytes, profile_v0: bool, session_id: str, identities: tuple[bytes, bytes]
) -> MlsCascadeLayer:
    """The layer from :meth:`MlsCascadeLayer.export_state`: the group must be this session's,
    active, in suite 1, with exactly the header's two identities."""
    own, peer = identities
    group = Group.restore_state(state, _config(own, peer))
    members = {i: c.identity for i, c in group.members()}
    if (
        group.group_id != mls_group_id(session_id)
        or group.cipher_suite.suite_id != MLS_SUITE
        or not group.active
        or group.reinit is not None
        or len(own) != _IDENTITY
        or group.my_leaf not in (_CREATOR, _JOINER)
        or members != {group.my_leaf: own, _CREATOR + _JOINER - group.my_leaf: peer}
    ):
        raise SessionStateError("MLS layer state of another session or other members")
    return MlsCascadeLayer(group, profile_v0)
