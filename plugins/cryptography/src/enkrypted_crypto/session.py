"""An established session: the negotiated cascade plus the negotiated wire profile.

Implements :class:`enkrypted_shell.contracts.SecureSession` (crypto contract 2.0).  ``open`` is
fail-closed and uniform: *any* problem with the input — oversize, malformed framing, wrong layer
list, failed tag, replay, a refused control PDU — raises
:class:`~enkrypted_crypto.errors.DecryptionFailed`, delivers nothing and leaves the session state
unchanged (STYLE.md principle 4; digest §6 P6.3).  A message opens as
:class:`~enkrypted_shell.contracts.Delivered`; a valid control PDU (AES-layer key rotation,
``rotation-timestamp-broadcast``, ``docs/protocol.md`` §1.5) is applied and opens as
:class:`~enkrypted_shell.contracts.ControlApplied`.

Time: the session reads the service's clock (``AppContext.clock``, seconds) for message
timestamps and the rotation grace window; the cascade works in integer milliseconds
(:func:`to_ms`).  :meth:`CascadeSession.rotate` takes ``now`` from its caller instead.

:meth:`CascadeSession.export_state` serialises everything (``docs/protocol.md`` §6);
:func:`restore_session` is its fail-closed inverse, which the service exposes as ``restore``.
"""

from __future__ import annotations

__all__ = [
    "STATE_MAGIC",
    "CascadeSession",
    "SessionIdentities",
    "restore_session",
    "safety_number",
    "to_ms",
]

import hmac
import logging
import struct
from dataclasses import dataclass
from typing import Any, Final

from enkrypted_shell.contracts import (
    Clock,
    ControlApplied,
    Delivered,
    OpenResult,
    monotonic_clock,
)

from .cascade import CascadeManager, validate_layer_names
from .errors import CryptoError, CryptoUsageError, DecryptionFailed, SessionStateError
from .limits import DEFAULT_LIMITS, Limits
from .primitives import Primitives
from .profiles import PROFILES, ProfileCodec, codec_for
from .rotation import ROTATION_TYPE, AesKeyRotation
from .session_layers import LayerRegistry
from .statecodec import StateReader, StateWriter

_log = logging.getLogger(__name__)

STATE_MAGIC: Final = b"EKSS"
"""First bytes of an exported session (``docs/protocol.md`` §6.1)."""
_STATE_VERSION: Final = 1
_DIGEST: Final = 32
_IDENTITY: Final = 64  # Encode(IK) = Ed25519 public || X25519 public
_MAX_NAME: Final = 64
_SAFETY_VERSION: Final = b"\x00\x00"
_SAFETY_LABEL: Final = b"EnkryptedChat-safety-number-v1"
_SAFETY_ITERATIONS: Final = 5200
_MAX_MS: Final = 2**53 - 1


def to_ms(seconds: float) -> int:
    """Clock seconds as the cascade's integer milliseconds (clamped to 0 .. 2**53-1)."""
    return min(max(round(seconds * 1000), 0), _MAX_MS)


def safety_number(prims: Primitives, first: bytes, second: bytes) -> str:
    """The 60-digit safety number of two ``Encode(IK)`` identities (``docs/protocol.md`` §1.6).

    Per identity: ``h = SHA-512(0x0000 || label || Encode(IK))``, then 5200 times
    ``h = SHA-512(h || Encode(IK))``; the first 30 bytes as six 5-byte big-endian numbers, each
    mod 100000 as 5 digits.  The two 30-digit halves are sorted and concatenated, so both peers
    get the same number.
    """
    halves = sorted(_safety_half(prims, identity) for identity in (first, second))
    return "".join(halves)


def _safety_half(prims: Primitives, identity: bytes) -> str:
    digest = prims.hash("sha512", _SAFETY_VERSION + _SAFETY_LABEL + identity)
    for _ in range(_SAFETY_ITERATIONS):
        digest = prims.hash("sha512", digest + identity)
    chunks = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return "".join(f"{chunk:05d}" for chunk in chunks)


@dataclass(frozen=True, slots=True)
class SessionIdentities:
    """Both peers' public identities (``Encode(IK)``, 64 bytes each) and the session id."""

    own: bytes
    peer: bytes
    session_id: str


class CascadeSession:
    """One peer's end-to-end session (``seal`` / ``open`` / ``rotate`` / ``export_state``)."""

    __slots__ = (
        "_clock",
        "_codec",
        "_ids",
        "_limits",
        "_manager",
        "_p",
        "_rotation",
        "_safety",
    )

    def __init__(
        self,
        prims: Primitives,
        manager: CascadeManager,
        codec: ProfileCodec,
        identities: SessionIdentities,
        *,
        clock: Clock = monotonic_clock,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._p = prims
        self._manager = manager
        self._codec = codec
        self._ids = identities
        self._clock = clock
        self._limits = limits
        self._rotation = _find_rotation(manager)
        self._safety: str | None = None

    # ------------------------------------------------------------------ contracts.SecureSession
    @property
    def profile(self) -> str:
        return self._codec.name

    @property
    def layers(self) -> tuple[str, ...]:
        return self._manager.names

    @property
    def peer_fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the peer's ``Encode(IK)`` (``CryptoService.fingerprint``)."""
        return self._p.hash("sha256", self._ids.peer).hex()

    @property
    def safety_number(self) -> str:
        """60 decimal digits (show as 12 groups of 5), the same on both sides (§1.6)."""
        if self._safety is None:
            self._safety = safety_number(self._p, self._ids.own, self._ids.peer)
        return self._safety

    def seal(self, plaintext: bytes) -> bytes:
        """Encrypt through every layer; raises :class:`CryptoUsageError` if it cannot fit a PDU."""
        if len(plaintext) > self._limits.max_plaintext_bytes:
            raise CryptoUsageError("plaintext larger than the per-message limit; split it")
        now = self._now_ms()
        if self._rotation is not None:
            self._rotation.expire(now)
        sealed = self._manager.seal(bytes(plaintext), now)
        wire = self._codec.encode(sealed, self._manager.layers)
        if len(wire) > self._limits.max_pdu_bytes:
            # The ratchet step is committed, which only costs the peer one skipped key.
            raise CryptoUsageError("sealed message exceeds the 16 MiB PDU cap (P8.1); split it")
        return wire

    def open(self, message: bytes) -> OpenResult:
        """Decrypt; any failure is :class:`DecryptionFailed` and delivers nothing.

        A valid control PDU (``rotation-timestamp-broadcast``) is applied and gives
        ``ControlApplied("rotation-timestamp-broadcast")``.
        """
        now = self._now_ms()
        if self._rotation is not None:
            self._rotation.expire(now)  # clock-driven only: the input cannot cause it
        if self._codec.is_control(message):
            self._receive_control(message, now)
            return ControlApplied(ROTATION_TYPE)
        try:
            sealed = self._codec.decode(message, self._manager.layers)
        except (CryptoError, ValueError, TypeError) as exc:
            _log.debug("session: undecodable %s message: %s", self.profile, type(exc).__name__)
            raise DecryptionFailed() from None
        return Delivered(self._manager.open(sealed))

    def rotate(self, now: float) -> bytes | None:
        """Rotate the AES layer's key for what *we* send; returns the control PDU to send first,
        or ``None`` when the session has no AES layer (nothing else rotates: the Double Ratchet
        and the b1 ML-KEM layer move their keys on their own).

        Messages sealed afterwards use the new epoch, so the peer must receive this PDU before
        them (the data channel is ordered; resending the same bytes is harmless, the peer
        accepts them once).  ``now`` (clock seconds) becomes the rotation timestamp in ms unless
        it is not past the previous one (then previous + 1 ms).
        """
        if self._rotation is None:
            return None
        now_ms = to_ms(now)
        self._rotation.expire(now_ms)
        return self._codec.encode_rotation(self._rotation.announce(now_ms))

    def export_state(self) -> bytes:
        """The whole session (secret; store it encrypted), ``docs/protocol.md`` §6.1."""
        out = StateWriter().fixed(STATE_MAGIC).u8(_STATE_VERSION)
        out.text(self._p.name).text(self.profile).text(self._ids.session_id)
        out.fixed(self._ids.own).fixed(self._ids.peer)
        out.u8(len(self._manager.layers))
        for layer in self._manager.layers:
            export = getattr(layer, "export_state", None)
            if export is None:
                raise CryptoUsageError(f"layer {layer.name} cannot export its state")
            out.text(layer.name).var(export())
        body = out.getvalue()
        return body + self._p.hash("sha256", body)

    # ------------------------------------------------------------------ beyond the contract
    def is_control(self, message: bytes) -> bool:
        """Whether ``message`` is framed as a control PDU of this profile (not whether it is valid)."""
        return self._codec.is_control(message)

    def receive_control(self, pdu: bytes) -> None:
        """Apply the peer's control PDU; any problem is :class:`DecryptionFailed`, no change."""
        now = self._now_ms()
        if self._rotation is not None:
            self._rotation.expire(now)
        self._receive_control(pdu, now)

    @property
    def rotation_timestamps(self) -> tuple[int, int]:
        """``(sending, receiving)`` rotation timestamps in ms; 0 = that direction never rotated."""
        if self._rotation is None:
            return (0, 0)
        return (self._rotation.send_timestamp_ms, self._rotation.receive_timestamp_ms)

    def _now_ms(self) -> int:
        return to_ms(self._clock())

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


# ------------------------------------------------------------------------------ restore
def restore_session(
    prims: Primitives,
    state: bytes,
    registry: LayerRegistry,
    *,
    clock: Clock = monotonic_clock,
    limits: Limits = DEFAULT_LIMITS,
) -> CascadeSession:
    """Inverse of :meth:`CascadeSession.export_state`; anything wrong is
    :class:`SessionStateError` and nothing is restored (the session is built only at the end)."""
    try:
        return _restore(prims, bytes(state), registry, clock, limits)
    except SessionStateError:
        raise
    except (CryptoError, ValueError, TypeError, KeyError, IndexError, struct.error) as exc:
        _log.debug("restore: refused state: %s: %s", type(exc).__name__, exc)
        raise SessionStateError(f"exported session refused: {exc}") from None


def _restore(
    prims: Primitives, state: bytes, registry: LayerRegistry, clock: Clock, limits: Limits
) -> CascadeSession:
    if not isinstance(state, bytes) or len(state) > limits.max_state_bytes:
        raise SessionStateError("exported session larger than max_state_bytes")
    if len(state) < len(STATE_MAGIC) + 1 + _DIGEST or not state.startswith(STATE_MAGIC):
        raise SessionStateError("not an exported Enkrypted session (EKSS)")
    body, digest = state[:-_DIGEST], state[-_DIGEST:]
    if not hmac.compare_digest(prims.hash("sha256", body), digest):
        raise SessionStateError("exported session is damaged (checksum mismatch)")
    r = StateReader(body[len(STATE_MAGIC) :], "exported session")
    if r.u8() != _STATE_VERSION:
        raise SessionStateError("exported session of an unknown format version")
    backend, profile = r.text(_MAX_NAME), r.text(_MAX_NAME)
    if backend != prims.name:
        raise SessionStateError(f"exported session is from backend {backend!r}, not {prims.name!r}")
    if profile not in PROFILES:
        raise SessionStateError(f"exported session has an unknown profile {profile!r}")
    session_id = r.text(_MAX_NAME)
    identities = SessionIdentities(r.fixed(_IDENTITY), r.fixed(_IDENTITY), session_id)
    n = r.u8()
    if not 1 <= n <= limits.max_layers:
        raise SessionStateError(f"exported session has {n} layers")
    entries = [(r.text(_MAX_NAME), r.var(limits.max_state_bytes)) for _ in range(n)]
    r.done()
    try:
        names = validate_layer_names([name for name, _ in entries], registry.names)
    except CryptoError as exc:
        raise SessionStateError(f"exported session: {exc}") from None
    missing = registry.missing_primitives(names, profile, prims.capabilities)
    if missing:
        raise SessionStateError(f"backend {prims.name!r} cannot serve layers {sorted(missing)}")
    manager = registry.restore(
        names, [s for _, s in entries], prims, profile, session_id, limits, to_ms(clock()),
        (identities.own, identities.peer),
    )  # fmt: skip
    return CascadeSession(
        prims, manager, codec_for(profile, limits), identities, clock=clock, limits=limits
    )
