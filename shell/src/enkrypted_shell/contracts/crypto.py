"""Slot ``crypto``, contract 2.0: identities, the peer handshake and the end-to-end session.

Sans-I/O in the h11 / aioquic style: nothing here reads a clock or touches a socket. The driver
(the p2p plugin's session) feeds received PDUs and ``now`` in, sends what :meth:`Handshake.data_to_send`
returns, and calls :meth:`Handshake.handle_timeout` at :meth:`Handshake.next_deadline`.

2.0 (breaking, from 1.0): ``Handshake.receive`` takes ``now`` and returns events instead of raising
for the peer's fault; timers; ``SecureSession.open`` returns :data:`OpenResult`; ``rotate``,
``export_state``, ``safety_number``; ``CryptoService.fingerprint`` and ``restore``.
"""

from __future__ import annotations

__all__ = [
    "ControlApplied",
    "CryptoFailure",
    "CryptoService",
    "Delivered",
    "Handshake",
    "HandshakeComplete",
    "HandshakeEvent",
    "HandshakeFailed",
    "HandshakeMisuse",
    "OpenResult",
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
