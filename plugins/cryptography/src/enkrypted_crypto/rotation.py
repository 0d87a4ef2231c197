"""AES-layer key rotation: the ``rotation-timestamp-broadcast`` PDU (``docs/protocol.md`` §1.5).

The spec names the PDU and says it "updates the password suffix" of the AES layer (digest §4.3,
§5 "Key rotation"); how is P5.4, a [GAP].  Our definition:

* **Per direction.**  A peer rotates the key it *sends* under; the PDU it sends moves the peer's
  *receive* key to the same epoch.  Each direction's timestamps come from one clock (the
  sender's) and never race with the other direction's.
* **One-way chain.**  Each direction ``d`` (``"i->r"`` / ``"r->i"``) has a secret chain rooted in
  the session's layer secret::

      chain_d[0]  = HKDF-SHA256(ikm=layer_secret, salt="",
                                info="EnkryptedChat-aes-rotation-v1/root/" || profile || "/" || d, 32)
      mac_d[k]    = HKDF-SHA256(ikm=chain_d[k], salt="", info="EnkryptedChat-aes-rotation-v1/mac", 32)
      chain_d[k+1] || key_d[k+1]
                  = HKDF-SHA256(ikm=chain_d[k], salt=u64be(T[k+1]),
                                info="EnkryptedChat-aes-rotation-v1/step", 64)

  Epoch 0 is the AES layer as the handshake keyed it (unchanged bytes).  Epoch ``k >= 1`` uses
  ``key_d[k]``: Profile-v0 as the password ``hex(key_d[k]) || ":" || decimal(T[k])`` (the spec's
  timestamp suffix), Profile-b1 as the AES-256-GCM key.  Older chain values are dropped at once,
  older keys after the grace window, so a later state compromise does not reach them.
* **Authenticated.**  The PDU carries ``T[k+1]`` and
  ``HMAC-SHA256(mac_d[k], "EnkryptedChat-rotation-timestamp-broadcast-v1" || u64be(T[k+1]))``.
  The receiver accepts it only if ``T[k+1] > T[k]`` and the MAC checks under its *current*
  epoch: a forged, replayed, reflected, older or skipped PDU is refused and changes nothing.
* **Grace.**  After accepting, the receiver still opens messages under the previous key for at
  most ``Limits.rotation_grace_messages`` further messages and ``Limits.rotation_grace_ms``
  (its own clock), whichever ends first, then drops it.  The sender drops its previous key at
  once.

:class:`AesKeyRotation` is that state for one session; the AES cascade layers read their keys from
it and the session (:class:`~enkrypted_crypto.session.CascadeSession`) drives it.  The wire forms
of the PDU are the profile codecs' (:mod:`enkrypted_crypto.profiles`).
"""

from __future__ import annotations

__all__ = [
    "MAC_LABEL",
    "MAX_TIMESTAMP_MS",
    "ROTATION_TYPE",
    "AesKeyRotation",
    "RotationAnnouncement",
    "export_rotation",
    "restore_rotation",
    "rotation_mac",
]

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Generic, NamedTuple, TypeVar

from .errors import CryptoUsageError, DecryptionFailed, MalformedInput, SessionStateError
from .limits import DEFAULT_LIMITS, Limits
from .primitives import Primitives
from .statecodec import StateReader, StateWriter

ROTATION_TYPE: Final = "rotation-timestamp-broadcast"
"""The spec's PDU ``type`` (digest §6)."""
MAX_TIMESTAMP_MS: Final = 2**53 - 1
"""Rotation timestamps stay in the JS safe-integer range in both profiles."""
MAC_SIZE: Final = 32
MAC_LABEL: Final = b"EnkryptedChat-rotation-timestamp-broadcast-v1"
_ROOT_INFO: Final = b"EnkryptedChat-aes-rotation-v1/root/"
_STEP_INFO: Final = b"EnkryptedChat-aes-rotation-v1/step"
_MAC_INFO: Final = b"EnkryptedChat-aes-rotation-v1/mac"
_DIRECTION: Final = {True: b"i->r", False: b"r->i"}
_K = TypeVar("_K")

KeyFactory = Callable[[bytes, int], _K]
"""``make_key(key_material32, timestamp_ms)`` -> the layer's key object for a new epoch."""


@dataclass(frozen=True, slots=True)
class RotationAnnouncement:
    """The content of a ``rotation-timestamp-broadcast`` PDU: the new epoch's timestamp, its MAC."""

    timestamp_ms: int
    mac: bytes

    def __post_init__(self) -> None:
        if type(self.timestamp_ms) is not int or not 0 < self.timestamp_ms <= MAX_TIMESTAMP_MS:
            raise MalformedInput("rotation timestamp must be an integer in 1..2**53-1")
        if type(self.mac) is not bytes or len(self.mac) != MAC_SIZE:
            raise MalformedInput("rotation MAC must be 32 bytes")


def rotation_mac(prims: Primitives, mac_key: bytes, timestamp_ms: int) -> bytes:
    """The PDU's MAC over the new epoch's timestamp, keyed by the current epoch."""
    return prims.hmac_sha256(mac_key, MAC_LABEL + timestamp_ms.to_bytes(8, "big"))


class _Epoch(NamedTuple):
    """One direction's position in its chain (secret)."""

    timestamp_ms: int  # 0 for epoch 0
    chain: bytes
    mac_key: bytes


def _epoch(prims: Primitives, chain: bytes, timestamp_ms: int) -> _Epoch:
    return _Epoch(timestamp_ms, chain, prims.hkdf_sha256(chain, b"", _MAC_INFO, 32))


def _step(prims: Primitives, current: _Epoch, timestamp_ms: int) -> tuple[_Epoch, bytes]:
    out = prims.hkdf_sha256(current.chain, timestamp_ms.to_bytes(8, "big"), _STEP_INFO, 64)
    return _epoch(prims, out[:32], timestamp_ms), out[32:]


class _Key(NamedTuple, Generic[_K]):
    """A layer key with what it was made from (kept so the state can be exported)."""

    material: bytes
    timestamp_ms: int
    key: _K


class AesKeyRotation(Generic[_K]):
    """Rotation state of one session's AES layer, both directions (module docstring).

    ``send_material`` / ``receive_material`` are epoch 0's key bytes (as the handshake keyed the
    layer); ``make_key(material, timestamp_ms)`` turns an epoch's bytes into the layer's key object
    (``timestamp_ms`` is 0 for epoch 0).  Methods that change
    state either succeed completely or raise and change nothing.
    """

    __slots__ = (
        "_grace_deadline_ms",
        "_grace_left",
        "_limits",
        "_make_key",
        "_p",
        "_previous",
        "_receive",
        "_receive_key",
        "_send",
        "_send_key",
    )

    def __init__(
        self,
        prims: Primitives,
        layer_secret: bytes,
        *,
        profile: str,
        initiator: bool,
        make_key: KeyFactory[_K],
        send_material: bytes,
        receive_material: bytes,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        if len(layer_secret) < 32:
            raise CryptoUsageError("rotation needs a 32-byte layer secret")

        def root(initiator_sends: bool) -> _Epoch:
            info = _ROOT_INFO + profile.encode() + b"/" + _DIRECTION[initiator_sends]
            return _epoch(prims, prims.hkdf_sha256(layer_secret, b"", info, 32), 0)

        self._setup(prims, make_key, limits, root(initiator), root(not initiator))
        self._send_key = _Key(send_material, 0, make_key(send_material, 0))
        self._receive_key = _Key(receive_material, 0, make_key(receive_material, 0))

    def _setup(
        self,
        prims: Primitives,
        make_key: KeyFactory[_K],
        limits: Limits,
        send: _Epoch,
        receive: _Epoch,
    ) -> None:
        self._p = prims
        self._make_key = make_key
        self._limits = limits
        self._send = send
        self._receive = receive
        self._previous: _Key[_K] | None = None
        self._grace_left = 0
        self._grace_deadline_ms = 0

    def __repr__(self) -> str:
        return (
            f"AesKeyRotation(send={self._send.timestamp_ms}, "
            f"receive={self._receive.timestamp_ms}, grace={self._previous is not None})"
        )

    # ------------------------------------------------------------------ what the layer uses
    @property
    def send_key(self) -> _K:
        return self._send_key.key

    @property
    def receive_key(self) -> _K:
        """The current epoch's receive key."""
        return self._receive_key.key

    def receive_keys(self) -> tuple[_K, ...]:
        """The current receive key, then the previous one while its grace lasts."""
        if self._previous is None:
            return (self._receive_key.key,)
        return (self._receive_key.key, self._previous.key)

    def opened(self) -> None:
        """Commit after a message was opened: one message of the grace window is used up."""
        if self._previous is not None:
            self._grace_left -= 1
            if self._grace_left <= 0:
                self._previous = None

    def expire(self, now_ms: int) -> None:
        """Drop the previous receive key once its grace time is over (local clock only)."""
        if self._previous is not None and now_ms >= self._grace_deadline_ms:
            self._previous = None

    # ------------------------------------------------------------------ timestamps
    @property
    def send_timestamp_ms(self) -> int:
        """``T`` of the epoch we send under (0: never rotated)."""
        return self._send.timestamp_ms

    @property
    def receive_timestamp_ms(self) -> int:
        """``T`` of the newest epoch the peer announced (0: never rotated)."""
        return self._receive.timestamp_ms

    @property
    def in_grace(self) -> bool:
        return self._previous is not None

    # ------------------------------------------------------------------ rotation
    def announce(self, now_ms: int) -> RotationAnnouncement:
        """Rotate our sending direction; returns what the PDU must carry.

        ``T`` is ``now_ms``, or one more than the current epoch's if the clock did not advance.
        The previous send key is dropped: messages sealed from now on use the new epoch.
        """
        timestamp = max(int(now_ms), self._send.timestamp_ms + 1)
        if timestamp > MAX_TIMESTAMP_MS:
            raise CryptoUsageError("rotation timestamp beyond 2**53-1 ms")
        mac = rotation_mac(self._p, self._send.mac_key, timestamp)
        nxt, material = _step(self._p, self._send, timestamp)
        key = _Key(material, timestamp, self._make_key(material, timestamp))
        self._send, self._send_key = nxt, key
        return RotationAnnouncement(timestamp, mac)

    def accept(self, announcement: RotationAnnouncement, now_ms: int) -> None:
        """Move our receive direction to the announced epoch, or raise ``DecryptionFailed``.

        Refused (state unchanged): a timestamp not above the current one, or a MAC that does not
        check under the current epoch — i.e. forged, replayed, reflected, older or skipped PDUs.
        """
        timestamp = announcement.timestamp_ms
        if timestamp <= self._receive.timestamp_ms:
            raise DecryptionFailed()
        expected = rotation_mac(self._p, self._receive.mac_key, timestamp)
        if not hmac.compare_digest(expected, announcement.mac):
            raise DecryptionFailed()
        nxt, material = _step(self._p, self._receive, timestamp)
        key = _Key(material, timestamp, self._make_key(material, timestamp))
        grace_messages = self._limits.rotation_grace_messages
        grace_ms = self._limits.rotation_grace_ms
        keep = grace_messages > 0 and grace_ms > 0
        self._previous = self._receive_key if keep else None
        self._grace_left = grace_messages
        self._grace_deadline_ms = int(now_ms) + grace_ms
        self._receive, self._receive_key = nxt, key


# ------------------------------------------------------------------------------ exported state
_STATE_VERSION: Final = 1
_MAX_MATERIAL: Final = 64


def export_rotation(rotation: AesKeyRotation[Any]) -> bytes:
    """The rotation state (secret) in the format of ``docs/protocol.md`` §6.2."""
    r = rotation
    out = StateWriter().u8(_STATE_VERSION)
    for epoch in (r._send, r._receive):
        out.u64(epoch.timestamp_ms).fixed(epoch.chain)
    for key in (r._send_key, r._receive_key):
        out.u64(key.timestamp_ms).var(key.material)
    out.u8(r._previous is not None)
    if r._previous is not None:
        out.u64(r._previous.timestamp_ms).var(r._previous.material)
        out.u32(r._grace_left).u64(r._grace_deadline_ms)
    return out.getvalue()


def restore_rotation(
    prims: Primitives,
    data: bytes,
    make_key: KeyFactory[_K],
    limits: Limits,
    now_ms: int,
) -> AesKeyRotation[_K]:
    """Inverse of :func:`export_rotation`; raises :class:`SessionStateError`.

    A grace window never outlives ``now_ms + rotation_grace_ms`` (a restored session may run on a
    clock that restarted) nor ``rotation_grace_messages``.
    """
    reader = StateReader(data, "AES rotation state")
    if reader.u8() != _STATE_VERSION:
        raise SessionStateError("AES rotation state: unknown version")

    def epoch() -> _Epoch:
        timestamp = _timestamp(reader.u64())
        return _epoch(prims, reader.fixed(32), timestamp)

    def key() -> _Key[_K]:
        timestamp = _timestamp(reader.u64())
        material = reader.var(_MAX_MATERIAL)
        return _Key(material, timestamp, make_key(material, timestamp))

    send, receive = epoch(), epoch()
    send_key, receive_key = key(), key()
    if (send_key.timestamp_ms, receive_key.timestamp_ms) != (
        send.timestamp_ms,
        receive.timestamp_ms,
    ):
        raise SessionStateError("AES rotation state: keys and epochs disagree")
    previous = key() if reader.flag() else None
    grace_left = reader.u32() if previous is not None else 0
    deadline = reader.u64() if previous is not None else 0
    reader.done()
    if previous is not None and not (
        previous.timestamp_ms < receive.timestamp_ms
        and 0 < grace_left <= limits.rotation_grace_messages
    ):
        raise SessionStateError("AES rotation state: inconsistent grace window")
    rotation: AesKeyRotation[_K] = AesKeyRotation.__new__(AesKeyRotation)
    rotation._setup(prims, make_key, limits, send, receive)
    rotation._send_key, rotation._receive_key = send_key, receive_key
    if previous is not None:
        rotation._previous = previous
        rotation._grace_left = grace_left
        rotation._grace_deadline_ms = min(deadline, now_ms + limits.rotation_grace_ms)
    return rotation


def _timestamp(value: int) -> int:
    if value > MAX_TIMESTAMP_MS:
        raise SessionStateError("AES rotation state: timestamp beyond 2**53-1")
    return value
