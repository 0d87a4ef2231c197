"""Slot ``crypto``, contracts 2.0, 2.1 and 2.2: identities, the peer handshake, the end-to-end
session, (2.1) MLS groups and (2.2) members' signatures on the group's control data.

Sans-I/O in the h11 / aioquic style: nothing here reads a clock or touches a socket. The driver
(the p2p plugin's session) feeds received PDUs and ``now`` in, sends what :meth:`Handshake.data_to_send`
returns, and calls :meth:`Handshake.handle_timeout` at :meth:`Handshake.next_deadline`.

2.0 (breaking, from 1.0): ``Handshake.receive`` takes ``now`` and returns events instead of raising
for the peer's fault; timers; ``SecureSession.open`` returns :data:`OpenResult`; ``rotate``,
``export_state``, ``safety_number``; ``CryptoService.fingerprint`` and ``restore``.

2.1 (a MINOR: it only adds): the group API, an optional feature — :class:`GroupCryptoService`
(MLS key packages, create, join from a Welcome, restore) and :class:`GroupSession` (add / remove /
update producing a commit and a Welcome, ``receive`` returning events, ``seal``, epoch, members,
export). A plugin declaring 2.1 implements :class:`CryptoServiceV21` (2.0 plus the group API);
one declaring 2.0 is still checked against 2.0's :class:`CryptoService`, unchanged. Callers
feature-detect the group API with ``supports(service, GroupCryptoService)``.

2.2 (a MINOR: it only adds): every :class:`GroupSession` of a 2.2 service is also a
:class:`GroupControlSigner` — a member signs data the application sends beside the MLS messages
(receipts, requests) with its leaf's signature key, and any member verifies it against the
signer's leaf, so a member that relays it for another cannot forge or alter it. Callers
feature-detect it on the session: ``supports(session, GroupControlSigner)``.
"""

from __future__ import annotations

__all__ = [
    "ControlApplied",
    "CryptoFailure",
    "CryptoService",
    "CryptoServiceV21",
    "CryptoServiceV22",
    "Delivered",
    "GroupCommit",
    "GroupCommitApplied",
    "GroupControlSigner",
    "GroupCryptoService",
    "GroupEvent",
    "GroupInputRejected",
    "GroupJoinResult",
    "GroupJoined",
    "GroupKeyPackage",
    "GroupMessage",
    "GroupSession",
    "Handshake",
    "HandshakeComplete",
    "HandshakeEvent",
    "HandshakeFailed",
    "HandshakeMisuse",
    "OpenResult",
    "RemovedFromGroup",
    "SecureSession",
    "StateError",
]

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ._common import LocalMisuse, RemoteInputError


class CryptoFailure(RemoteInputError):
    """The one opaque error for any failure to authenticate or decrypt a message.

    It says nothing about which layer or check failed (STYLE.md §4); the crypto plugin logs
    details locally. Nothing is delivered and the session state is unchanged.
    """


class HandshakeMisuse(LocalMisuse):
    """The handshake was driven wrongly (a PDU after it ended, ``session`` before completion)."""


class StateError(RemoteInputError):
    """Exported session state that cannot be restored (damaged, foreign, from another backend)."""


# ------------------------------------------------------------------------------- handshake events
@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The handshake succeeded; ``session`` is ready for application messages."""

    session: SecureSession


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    """The handshake ended without a session.

    ``reason`` is the local, detailed explanation (for the user and the log). ``pdu_to_send`` is the
    ``protocol-error`` PDU for the peer (generic text, P3), or ``None`` when the peer must not be
    told anything (it sent the error itself, or the failure is a local timeout). It is also queued
    in :meth:`Handshake.data_to_send`, so a driver that only forwards that queue tells the peer too.
    """

    reason: str
    pdu_to_send: bytes | None = None


HandshakeEvent = HandshakeComplete | HandshakeFailed


@runtime_checkable
class Handshake(Protocol):
    """Sans-I/O peer handshake: PDUs and ``now`` in, events and PDUs out."""

    def data_to_send(self) -> list[bytes]:
        """PDUs produced since the last call, in order (the first PDU of an initiator is queued
        at creation)."""
        ...

    def receive(self, pdu: bytes, now: float) -> list[HandshakeEvent]:
        """Process one PDU from the peer.

        Never raises for the peer's fault: a malformed, unexpected or refused PDU ends the
        handshake with :class:`HandshakeFailed`. Raises :class:`HandshakeMisuse` if called after
        the handshake ended.
        """
        ...

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must be called (``None`` once the handshake ended)."""
        ...

    def handle_timeout(self, now: float) -> list[HandshakeEvent]:
        """Fire timers due at ``now``: past the handshake timeout (``WireLimits.handshake_timeout_s``
        from the handshake's start) the handshake fails with :class:`HandshakeFailed`."""
        ...

    @property
    def complete(self) -> bool:
        """True once a :class:`HandshakeComplete` was returned."""
        ...


# ------------------------------------------------------------------------------- the session
@dataclass(frozen=True, slots=True)
class Delivered:
    """An application message, decrypted and authenticated through every layer."""

    plaintext: bytes


@dataclass(frozen=True, slots=True)
class ControlApplied:
    """A valid control PDU (e.g. a key rotation announcement) was applied; nothing to deliver."""

    kind: str


OpenResult = Delivered | ControlApplied


@runtime_checkable
class SecureSession(Protocol):
    """An established end-to-end session with one peer."""

    @property
    def profile(self) -> str:
        """The negotiated wire profile, e.g. ``EnkryptedChat-Profile-v0``."""
        ...

    @property
    def layers(self) -> tuple[str, ...]:
        """The negotiated cascade layers, innermost first."""
        ...

    @property
    def peer_fingerprint(self) -> str:
        """Fingerprint of the peer's identity key (as :meth:`CryptoService.fingerprint` gives it)."""
        ...

    @property
    def safety_number(self) -> str:
        """A number both peers compute identically from both identity keys, to compare out of band."""
        ...

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt one application message through every layer; returns the wire bytes.

        Raises :class:`LocalMisuse` (a subclass) if the plaintext cannot fit the PDU cap.
        """
        ...

    def open(self, message: bytes) -> OpenResult:
        """Decrypt wire bytes; raises :class:`CryptoFailure` and delivers nothing on any failure."""
        ...

    def rotate(self, now: float) -> bytes | None:
        """Rotate the keys of what we send; returns the control PDU to send first, or ``None``
        when the negotiated layers have nothing to rotate."""
        ...

    def export_state(self) -> bytes:
        """The whole session state, for :meth:`CryptoService.restore` (secret: store it encrypted).
        After a message is sealed or opened, export again before releasing or acknowledging it."""
        ...


@runtime_checkable
class CryptoService(Protocol):
    """What a crypto plugin provides."""

    @property
    def backend(self) -> str:
        """Name of the primitives backend, e.g. ``pyca`` or ``nacl``."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """Primitives this backend really provides (same names as the manifest)."""
        ...

    @property
    def profiles(self) -> tuple[str, ...]:
        """Wire profiles this backend can serve, most preferred first."""
        ...

    def new_identity(self) -> bytes:
        """A fresh serialised identity key pair (keep it secret; store encrypted at rest)."""
        ...

    def fingerprint(self, identity: bytes) -> str:
        """The public fingerprint of an identity from :meth:`new_identity` (shown to the user)."""
        ...

    def handshake(
        self,
        identity: bytes,
        *,
        initiator: bool,
        now: float,
        profiles: Sequence[str] | None = None,
        layers: Sequence[str] | None = None,
    ) -> Handshake:
        """Start a handshake with one peer using ``identity``, at time ``now``.

        ``profiles`` and ``layers`` restrict what may be negotiated; ``None`` means the defaults.
        Raises :class:`LocalMisuse` (a subclass) for a profile or layer this backend cannot serve.
        """
        ...

    def restore(self, state: bytes) -> SecureSession:
        """A session from :meth:`SecureSession.export_state`; :class:`StateError` if unusable."""
        ...


# =============================================================================== 2.1: groups
# An optional feature (feature-detected with ``supports(service, GroupCryptoService)``): the crypto
# 2.0 members above are unchanged. Like the handshake, the group API is sans-I/O and never raises
# for a peer's fault: what a peer sent that cannot be used is a :class:`GroupInputRejected` event,
# and the group is then exactly as it was (``export_state()`` before and after are equal).


@dataclass(frozen=True, slots=True)
class GroupKeyPackage:
    """A one-use key package of one identity, for being added to a group.

    ``public`` is what to publish (peers pass it to :meth:`GroupSession.add`); ``private`` is
    what to keep, secret, until a Welcome for it arrives (:meth:`GroupCryptoService.join_group`);
    it contains ``public``. Delete ``private`` once it was used.
    """

    public: bytes
    private: bytes


@dataclass(frozen=True, slots=True)
class GroupCommit:
    """What a membership or key change produced: ``commit`` for every other member of the group
    before the change, ``welcome`` (``None`` when nobody was added) for the added members.

    The change is applied to our session when it is returned (our epoch already advanced).
    """

    commit: bytes
    welcome: bytes | None


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """An application message of a member, decrypted and authenticated (``sender`` is its
    identity's fingerprint, as :meth:`CryptoService.fingerprint` gives it)."""

    sender: str
    plaintext: bytes


@dataclass(frozen=True, slots=True)
class GroupCommitApplied:
    """Another member's commit was applied: the group is now at ``epoch`` with ``members``
    (fingerprints, in leaf order); ``added`` / ``removed`` are the changes it made."""

    epoch: int
    committer: str
    members: tuple[str, ...]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RemovedFromGroup:
    """A commit of ``committer`` removed us at ``epoch``: the session is over (``seal`` and the
    membership changes raise :class:`LocalMisuse`, ``receive`` rejects everything)."""

    epoch: int
    committer: str


@dataclass(frozen=True, slots=True)
class GroupInputRejected:
    """Input from a peer was refused (malformed, oversized, wrong group or epoch, failed
    authentication, replayed, from a non-member, a kind of message this API does not carry).

    ``reason`` is local detail for the log; the group state is unchanged.
    """

    reason: str


GroupEvent = GroupMessage | GroupCommitApplied | RemovedFromGroup | GroupInputRejected


@dataclass(frozen=True, slots=True)
class GroupJoined:
    """A Welcome was accepted: ``session`` is our member state in the group it created."""

    session: GroupSession


GroupJoinResult = GroupJoined | GroupInputRejected


@runtime_checkable
class GroupSession(Protocol):
    """One member's state of one group (MLS, RFC 9420), sans-I/O: bytes in, events and bytes out.

    Members are named by their identity fingerprints. Commits are applied when we create them:
    the caller orders membership changes so that one member commits per epoch (a commit for an
    epoch we have left is rejected as stale).
    """

    @property
    def group_id(self) -> bytes:
        """The group's id (the same for every member)."""
        ...

    @property
    def epoch(self) -> int:
        """The current epoch: 0 at creation, +1 per applied commit."""
        ...

    @property
    def members(self) -> tuple[str, ...]:
        """The members' fingerprints, ours included, in leaf order."""
        ...

    @property
    def own_fingerprint(self) -> str:
        """Our own identity's fingerprint (one of :attr:`members`)."""
        ...

    @property
    def epoch_authenticator(self) -> bytes:
        """A value every member of the current epoch shares, to compare out of band."""
        ...

    def add(self, key_packages: Sequence[bytes]) -> GroupCommit | GroupInputRejected:
        """Add the identities of these published :attr:`GroupKeyPackage.public` key packages.

        A key package that is malformed, of another suite, badly signed or of a present member
        is a :class:`GroupInputRejected` (nothing changes). Raises :class:`LocalMisuse` for an
        empty list or after :class:`RemovedFromGroup`.
        """
        ...

    def remove(self, fingerprints: Sequence[str]) -> GroupCommit:
        """Remove these members; raises :class:`LocalMisuse` for ourselves, a fingerprint that is
        not a member, or an empty list."""
        ...

    def update(self) -> GroupCommit:
        """Replace our leaf's and path's keys (post-compromise security); no membership change."""
        ...

    def receive(self, message: bytes) -> list[GroupEvent]:
        """Process one message of the group: a commit or an application message.

        Never raises for the peer's fault: anything that cannot be used returns
        ``[GroupInputRejected]`` and leaves the state unchanged.
        """
        ...

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt one application message for the members of the current epoch. Raises
        :class:`LocalMisuse` if it cannot fit the PDU cap or after :class:`RemovedFromGroup`."""
        ...

    def export_state(self) -> bytes:
        """The whole member state, for :meth:`GroupCryptoService.restore_group` (secret: store it
        encrypted). Export again after every change, seal or receive."""
        ...


@runtime_checkable
class GroupControlSigner(Protocol):
    """2.2: signatures of a member on the group's control data (detect with ``supports``).

    Signed with the member's leaf signature key under a label of the implementation's own
    (never valid as an MLS message signature), bound to the group id. The signer's key stays the
    member's for the life of its leaf, so a signature made at one epoch verifies at the next."""

    def sign_control(self, content: bytes) -> bytes:
        """Our signature on ``content``; raises :class:`LocalMisuse` after :class:`RemovedFromGroup`."""
        ...

    def verify_control(self, fingerprint: str, content: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is the member ``fingerprint``'s (a member of the current epoch)
        on ``content`` in this group. Never raises for the peer's fault: anything else is
        ``False``."""
        ...


@runtime_checkable
class GroupCryptoService(Protocol):
    """The 2.1 group feature of a crypto service (detect it with ``supports``)."""

    def new_key_package(self, identity: bytes) -> GroupKeyPackage:
        """A fresh one-use key package for ``identity`` (from :meth:`CryptoService.new_identity`)."""
        ...

    def create_group(self, identity: bytes, group_id: bytes | None = None) -> GroupSession:
        """A new group with ``identity`` as its only member, at epoch 0 (a random id if ``None``)."""
        ...

    def join_group(self, identity: bytes, key_package: bytes, welcome: bytes) -> GroupJoinResult:
        """Join from a Welcome addressed to our :attr:`GroupKeyPackage.private` ``key_package``.

        Never raises for the peer's fault: a malformed Welcome, one for another key package, or
        a group that fails validation is :class:`GroupInputRejected`. Raises :class:`LocalMisuse`
        when ``key_package`` is not one of ``identity``'s.
        """
        ...

    def restore_group(self, state: bytes) -> GroupSession:
        """A session from :meth:`GroupSession.export_state`; :class:`StateError` if unusable."""
        ...


@runtime_checkable
class CryptoServiceV21(CryptoService, GroupCryptoService, Protocol):
    """Crypto contract 2.1: 2.0's :class:`CryptoService` and the group API."""


@runtime_checkable
class CryptoServiceV22(CryptoServiceV21, Protocol):
    """Crypto contract 2.2: 2.1, and every :class:`GroupSession` it returns (created, joined or
    restored) is also a :class:`GroupControlSigner`."""
