"""What every slot contract shares: the error split, the clock, the wire limits, the context.

Errors crossing a contract say who is at fault (STYLE.md §3, trio's closed-by-you vs
broken-by-them): :class:`LocalMisuse` (the caller used the API wrongly — a bug here),
:class:`RemoteInputError` (the peer or a remote party sent something malformed or hostile — expected,
never fatal to the process) and :class:`NetworkError` (the network failed). Plugins raise subclasses
of these from their own exception roots so the ui can react without knowing the plugin.
"""

from __future__ import annotations

__all__ = [
    "WIRE_LIMITS",
    "AppContext",
    "Clock",
    "ContractError",
    "LocalMisuse",
    "NetworkError",
    "RemoteInputError",
    "WireLimits",
    "monotonic_clock",
]

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .store import ProfileStore

Clock = Callable[[], float]
"""Seconds on a monotonic clock. Sans-I/O cores never read a clock: ``now`` is passed in, and
drivers take it from :attr:`AppContext.clock` (a fake clock in tests, :mod:`enkrypted_shell.testing`)."""


def monotonic_clock() -> float:
    """The default :data:`Clock`: :func:`time.monotonic`."""
    return time.monotonic()


class ContractError(Exception):
    """Root of every error a slot contract defines."""


class LocalMisuse(ContractError):
    """The caller broke the contract (wrong state, bad argument): a bug on this side."""


class RemoteInputError(ContractError):
    """The peer or a remote party sent malformed, unexpected or hostile input."""


class NetworkError(ContractError):
    """The network failed: unreachable, timed out, reset."""


@dataclass(frozen=True, slots=True)
class WireLimits:
    """Bounds on untrusted peer input, from the spec's P8 (enkrypted-chat digest §6).

    Every slot reads these instead of keeping its own constants; the 16 MiB PDU cap is defined
    here and only here.
    """

    max_pdu_bytes: int = 16 * 1024 * 1024
    """P8.1: a PDU above this is dropped before it is parsed."""
    chunk_bytes: int = 8192
    """P8.2: payload bytes per chunk of a chunked message."""
    max_chunks_per_message: int = 4096
    """P8.3: chunks one message may span (4096 x 8192 B = 32 MiB of chunk payload at most)."""
    max_reassemblies_per_peer: int = 64
    """P8.4: partially received messages kept per peer."""
    reassembly_timeout_s: float = 120.0
    """P8.5: a partial message older than this is dropped."""
    handshake_timeout_s: float = 300.0
    """P8.6: a handshake not complete after this fails (``HandshakeFailed``)."""

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise LocalMisuse(f"WireLimits.{name} must be a positive number, not {value!r}")


WIRE_LIMITS: Final = WireLimits()


@dataclass(frozen=True, slots=True)
class AppContext:
    """What the shell hands every service hook.

    ``home`` is where the plugin may keep state; ``settings`` its table from the configuration
    file (``[plugins.<slot>]``), already parsed; ``dev_mode`` is true when unverified plugins were
    allowed in; ``clock`` is the time source drivers pass as ``now``; ``limits`` the P8 bounds;
    ``store`` (store contract 1.0, :mod:`.store`) the slot's own namespace of the unlocked profile
    store, ``None`` when no profile is unlocked.  ``identity`` the unlocked profile's identity as
    the loaded crypto service made it (``CryptoService.new_identity()`` bytes, created and stored on
    first use): **secret key material** — pass it to the crypto / chat APIs that take an identity,
    never log, print or send it.  It is ``None`` when no profile is unlocked, and always in the
    crypto slot's own context (that service makes identities and takes them as arguments).  Read
    both with ``getattr(context, "store", None)`` / ``getattr(context, "identity", None)``: older
    shells have no such fields.  ``assets`` holds, for a plugin whose manifest names an asset
    folder (``plugin.assets``), the bytes of each file in it as the shell hashed them against the
    verified RECORD, by path relative to that folder (empty otherwise, and for a plugin admitted
    unverified by ``--dev``): serve these, never the files on disk.  Read it with ``getattr`` too.
    """

    home: Path
    settings: Mapping[str, object] = field(default_factory=dict)
    dev_mode: bool = False
    clock: Clock = monotonic_clock
    limits: WireLimits = WIRE_LIMITS
    store: ProfileStore | None = None
    identity: bytes | None = field(default=None, repr=False)
    assets: Mapping[str, bytes] = field(default_factory=dict, repr=False)
