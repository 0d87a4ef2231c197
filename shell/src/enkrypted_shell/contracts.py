"""Typed contracts between the shell and its plugin slots.

Each slot (``crypto``, ``p2p``, ``ui``) has one contract, versioned ``MAJOR.MINOR`` in
:data:`CONTRACT_VERSIONS`.  A plugin declares in its manifest which version it implements; the shell
accepts the same MAJOR with a MINOR at least the one listed here (DESIGN.md §4).  Anything that breaks
an existing plugin bumps MAJOR; additions bump MINOR.  ``docs/hooks.md`` is the prose version of this
module and must change with it.

Plugins import only names from this module, :mod:`enkrypted_shell.hookspecs` and the package root;
they never import each other.
"""

from __future__ import annotations

__all__ = [
    "CONTRACT_VERSIONS",
    "SLOTS",
    "SLOT_HOOKS",
    "AppContext",
    "CryptoFailure",
    "CryptoService",
    "Handshake",
    "HandshakeFailure",
    "Link",
    "LinkClosed",
    "SecureSession",
    "TransportService",
    "UIService",
]

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

SLOTS: Final = ("crypto", "p2p", "ui")
"""The slots in wiring order: crypto first, then p2p (given crypto), then ui (given both)."""

CONTRACT_VERSIONS: Final[Mapping[str, str]] = {"crypto": "1.0", "p2p": "1.0", "ui": "1.0"}
"""Contract version the shell speaks per slot (MAJOR.MINOR)."""

SLOT_HOOKS: Final[Mapping[str, frozenset[str]]] = {
    "crypto": frozenset({"enkrypted_crypto_service", "enkrypted_cli_commands"}),
    "p2p": frozenset({"enkrypted_transport_service", "enkrypted_cli_commands"}),
    "ui": frozenset({"enkrypted_ui_service", "enkrypted_cli_commands"}),
}
"""Hooks a plugin of each slot may implement; anything else is refused at registration."""


# --------------------------------------------------------------------------------------------- errors
class CryptoFailure(Exception):
    """The one opaque error for any failure to authenticate or decrypt (crypto contract 1.0).

    It says nothing about which layer or check failed; the crypto plugin logs details locally.
    Crypto plugins raise a subclass of it from their own exception root.
    """


class HandshakeFailure(Exception):
    """The peer handshake cannot complete (no common profile, bad PDU, wrong state)."""


class LinkClosed(Exception):
    """The link was closed, by us or by the peer; nothing more can be sent or received."""


# --------------------------------------------------------------------------------------------- context
@dataclass(frozen=True, slots=True)
class AppContext:
    """What the shell hands every service hook: where to keep state and the user's settings.

    ``settings`` is the plugin's table from the configuration file (``[plugins.<slot>]``),
    already parsed; ``dev_mode`` is true when unverified plugins were allowed in.
    """

    home: Path
    settings: Mapping[str, object] = field(default_factory=dict)
    dev_mode: bool = False


# --------------------------------------------------------------------------------------------- crypto 1.0
@runtime_checkable
class SecureSession(Protocol):
    """An established end-to-end session with one peer (crypto contract 1.0)."""

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
        """Fingerprint of the peer's identity key, for safety-number checks."""
        ...

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt one application message through every layer; returns the wire bytes."""
        ...

    def open(self, message: bytes) -> bytes:
        """Decrypt wire bytes; raises :class:`CryptoFailure` and delivers nothing on any failure."""
        ...


@runtime_checkable
class Handshake(Protocol):
    """Sans-I/O peer handshake: feed received PDUs in, take PDUs to send out."""

    def data_to_send(self) -> list[bytes]:
        """PDUs produced since the last call, in order."""
        ...

    def receive(self, pdu: bytes) -> None:
        """Process one PDU from the peer; raises :class:`HandshakeFailure` on a bad or unexpected PDU."""
        ...

    @property
    def complete(self) -> bool:
        """True once :meth:`session` may be called."""
        ...

    def session(self) -> SecureSession:
        """The established session; only valid once :attr:`complete`."""
        ...


@runtime_checkable
class CryptoService(Protocol):
    """What a crypto plugin provides (contract ``crypto`` 1.0)."""

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

    def handshake(
        self,
        identity: bytes,
        *,
        initiator: bool,
        profiles: Sequence[str] | None = None,
        layers: Sequence[str] | None = None,
    ) -> Handshake:
        """Start a handshake with one peer using ``identity`` (from :meth:`new_identity`).

        ``profiles`` and ``layers`` restrict what may be negotiated; ``None`` means the defaults.
        """
        ...


# --------------------------------------------------------------------------------------------- p2p 1.0
@runtime_checkable
class Link(Protocol):
    """An ordered, reliable, message-oriented link to one peer (a data channel or equivalent)."""

    @property
    def peer_id(self) -> str:
        """The routing handle of the remote end (not its cryptographic identity)."""
        ...

    async def send(self, pdu: bytes) -> None:
        """Send one PDU; raises :class:`LinkClosed` once closed."""
        ...

    async def receive(self) -> bytes:
        """Wait for the next PDU; raises :class:`LinkClosed` when the link ends."""
        ...

    async def close(self) -> None:
        """Close the link; idempotent."""
        ...


@runtime_checkable
class TransportService(Protocol):
    """What a p2p plugin provides (contract ``p2p`` 1.0)."""

    @property
    def name(self) -> str:
        """Transport name, e.g. ``memory`` or ``webrtc``."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """Transport features really provided (same names as the manifest)."""
        ...

    async def loopback_pair(self, first: str, second: str) -> tuple[Link, Link]:
        """Two connected in-process links, for local demos and tests."""
        ...


# --------------------------------------------------------------------------------------------- ui 1.0
@runtime_checkable
class UIService(Protocol):
    """What a ui plugin provides (contract ``ui`` 1.0)."""

    def run(self, argv: Sequence[str]) -> int:
        """Take over the process after a verified load; returns the exit code."""
        ...
