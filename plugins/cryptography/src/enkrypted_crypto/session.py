"""An established session: the negotiated cascade plus the negotiated wire profile.

Implements :class:`enkrypted_shell.contracts.SecureSession` (crypto contract 1.0).  ``open`` is
fail-closed and uniform: *any* problem with the input — oversize, malformed framing, wrong layer
list, failed tag, replay — raises :class:`~enkrypted_crypto.errors.DecryptionFailed`, delivers
nothing and leaves the session state unchanged (STYLE.md principle 4; digest §6 P6.3).
"""

from __future__ import annotations

__all__ = ["CascadeSession", "Clock", "system_clock_ms"]

import logging
import time
from collections.abc import Callable

from .cascade import CascadeManager
from .errors import CryptoError, CryptoUsageError, DecryptionFailed
from .limits import DEFAULT_LIMITS, Limits
from .profiles import ProfileCodec

Clock = Callable[[], int]
"""Returns the current Unix time in milliseconds (injected so tests and vectors are fixed)."""

_log = logging.getLogger(__name__)


def system_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class CascadeSession:
    """One peer's end-to-end session (``seal`` / ``open``)."""

    __slots__ = ("_clock", "_codec", "_fingerprint", "_limits", "_manager")

    def __init__(
        self,
        manager: CascadeManager,
        codec: ProfileCodec,
        peer_fingerprint: str,
        *,
        clock: Clock = system_clock_ms,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._manager = manager
        self._codec = codec
        self._fingerprint = peer_fingerprint
        self._clock = clock
        self._limits = limits

    @property
    def profile(self) -> str:
        return self._codec.name

    @property
    def layers(self) -> tuple[str, ...]:
        return self._manager.names

    @property
    def peer_fingerprint(self) -> str:
        return self._fingerprint

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt through every layer; raises :class:`CryptoUsageError` if it cannot fit a PDU."""
        if len(plaintext) > self._limits.max_plaintext_bytes:
            raise CryptoUsageError("plaintext larger than the per-message limit; split it")
        sealed = self._manager.seal(bytes(plaintext), self._clock())
        wire = self._codec.encode(sealed, self._manager.layers)
        if len(wire) > self._limits.max_pdu_bytes:
            # The ratchet step is committed, which only costs the peer one skipped key.
            raise CryptoUsageError("sealed message exceeds the 16 MiB PDU cap (P8.1); split it")
        return wire

    def open(self, message: bytes) -> bytes:
        """Decrypt; any failure is :class:`DecryptionFailed` and delivers nothing."""
        try:
            sealed = self._codec.decode(message, self._manager.layers)
        except (CryptoError, ValueError, TypeError) as exc:
            _log.debug("session: undecodable %s message: %s", self.profile, type(exc).__name__)
            raise DecryptionFailed() from None
        return self._manager.open(sealed)
