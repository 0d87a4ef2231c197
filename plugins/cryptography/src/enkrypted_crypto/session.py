"""An established session: the negotiated cascade plus the negotiated wire profile.

Implements :class:`enkrypted_shell.contracts.SecureSession` (crypto contract 1.0).  ``open`` is
fail-closed and uniform: *any* problem with the input — oversize, malformed framing, wrong layer
list, failed tag, replay — raises :class:`~enkrypted_crypto.errors.DecryptionFailed`, delivers
nothing and leaves the session state unchanged (STYLE.md principle 4; digest §6 P6.3).

AES-layer key rotation (``rotation-timestamp-broadcast``, ``docs/protocol.md`` §1.5) is outside
the contract: :meth:`CascadeSession.rotate` returns the control PDU to send, and
:meth:`CascadeSession.receive_control` applies one from the peer.  :meth:`CascadeSession.open`
also accepts a control PDU, so a shell that only knows the contract still follows the peer's
rotations: it is applied and ``open`` returns ``b""`` (no application plaintext); a bad one is the
same opaque ``DecryptionFailed`` as a bad message.  Callers that must tell a consumed control PDU
from an empty message ask :meth:`CascadeSession.is_control` first.
"""

from __future__ import annotations

__all__ = ["CascadeSession", "Clock", "system_clock_ms"]

import logging
import time
from collections.abc import Callable
from typing import Any

from .cascade import CascadeManager
from .errors import CryptoError, CryptoUsageError, DecryptionFailed
from .limits import DEFAULT_LIMITS, Limits
from .profiles import ProfileCodec
from .rotation import AesKeyRotation

Clock = Callable[[], int]
"""Returns the current Unix time in milliseconds (injected so tests and vectors are fixed)."""

_log = logging.getLogger(__name__)


def system_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class CascadeSession:
    """One peer's end-to-end session (``seal`` / ``open``)."""

    __slots__ = ("_clock", "_codec", "_fingerprint", "_limits", "_manager", "_rotation")

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
        self._rotation = _find_rotation(manager)

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
        now = self._clock()
        if self._rotation is not None:
            self._rotation.expire(now)
        sealed = self._manager.seal(bytes(plaintext), now)
        wire = self._codec.encode(sealed, self._manager.layers)
        if len(wire) > self._limits.max_pdu_bytes:
            # The ratchet step is committed, which only costs the peer one skipped key.
            raise CryptoUsageError("sealed message exceeds the 16 MiB PDU cap (P8.1); split it")
        return wire

    def open(self, message: bytes) -> bytes:
        """Decrypt; any failure is :class:`DecryptionFailed` and delivers nothing.

        A valid control PDU (``rotation-timestamp-broadcast``) is applied and yields ``b""``.
        """
        now = self._clock()
        if self._rotation is not None:
            self._rotation.expire(now)  # clock-driven only: the input cannot cause it
        if self._codec.is_control(message):
            self._receive_control(message, now)
            return b""
        try:
            sealed = self._codec.decode(message, self._manager.layers)
        except (CryptoError, ValueError, TypeError) as exc:
            _log.debug("session: undecodable %s message: %s", self.profile, type(exc).__name__)
            raise DecryptionFailed() from None
        return self._manager.open(sealed)

    # ------------------------------------------------------------------ AES-layer key rotation
    def is_control(self, message: bytes) -> bool:
        """Whether ``message`` is framed as a control PDU of this profile (not whether it is valid)."""
        return self._codec.is_control(message)

    def rotate(self, now_ms: int | None = None) -> bytes:
        """Rotate the AES layer's key for what *we* send; returns the PDU to send to the peer.

        Messages sealed afterwards use the new epoch, so the peer must receive this PDU before
        them (the data channel is ordered; resending the same bytes is harmless, the peer
        accepts them once).  ``now_ms`` defaults to the session clock; it becomes the rotation
        timestamp unless the clock has not advanced past the previous one (then previous + 1).
        Raises :class:`CryptoUsageError` if the session has no AES layer.
        """
        if self._rotation is None:
            raise CryptoUsageError("key rotation needs the AES layer, which this session lacks")
        clock = self._clock()
        self._rotation.expire(clock)
        return self._codec.encode_rotation(
            self._rotation.announce(clock if now_ms is None else now_ms)
        )

    def receive_control(self, pdu: bytes) -> None:
        """Apply the peer's control PDU; any problem is :class:`DecryptionFailed`, no change."""
        now = self._clock()
        if self._rotation is not None:
            self._rotation.expire(now)
        self._receive_control(pdu, now)

    @property
    def rotation_timestamps(self) -> tuple[int, int]:
        """``(sending, receiving)`` rotation timestamps in ms; 0 = that direction never rotated."""
        if self._rotation is None:
            return (0, 0)
        return (self._rotation.send_timestamp_ms, self._rotation.receive_timestamp_ms)

    def _receive_control(self, pdu: bytes, now_ms: int) -> None:
        try:
            if self._rotation is None:
                raise CryptoUsageError("no AES layer to rotate")
            announcement = self._codec.decode_rotation(pdu)
            self._rotation.accept(announcement, now_ms)
        except (CryptoError, ValueError, TypeError) as exc:
            _log.debug("session: rejected %s control PDU: %s", self.profile, type(exc).__name__)
            raise DecryptionFailed() from None


def _find_rotation(manager: CascadeManager) -> AesKeyRotation[Any] | None:
    """The AES layer's rotation state, if the cascade has an AES layer."""
    for layer in manager.layers:
        rotation = getattr(layer, "rotation", None)
        if isinstance(rotation, AesKeyRotation):
            return rotation
    return None
