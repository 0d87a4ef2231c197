"""Cascade layers bound to one session's keys, and the registry that builds them by name.

The ML-KEM and AES constructions live in :mod:`enkrypted_crypto.layers` (digest §4.3); this
module adapts them, and the Double Ratchet, to :class:`~enkrypted_crypto.cascade.CascadeLayer`.

Key material per layer (all from one handshake, ``docs/protocol.md`` §Key schedule):

* ``MLS``: the session's two-member RFC 9420 group, built in the handshake
  (:mod:`enkrypted_crypto.session_mls`); each message is a PrivateMessage of its epoch.
* ``Signal``: the Double Ratchet session seeded by X3DH (digest §4.4).  Its AEAD additionally
  binds the *cascade context* (profile, layer list, session id) and the message timestamp, so a
  message spliced into another profile or layer set, or re-dated, fails.  (The b1 AES layer binds
  the same.)
* ``ML-KEM``, Profile-v0: our ML-KEM-768 key and the peer's, exchanged in
  ``mlkem-key-exchange`` / ``-response`` and prepared once (:class:`MlKemPreparedKeys`); every
  message encapsulates afresh, as the spec says.  Profile-b1: the 32-byte secret of the one
  encapsulation the handshake carries (``mlkem_secret``), from which
  :class:`~enkrypted_crypto.layers.mlkem.MlKemSessionLayer` derives its direction chains; its AAD
  binds the cascade context and timestamp like the other b1 layers.
* ``AES``: Profile-v0 needs a *password* (P5.4 is a [GAP]); we define it as the lowercase hex of
  ``HKDF-SHA256(layer_secret, salt="", info="EnkryptedChat-v0/aes-password", 32)``.  Profile-b1
  derives direction keys from ``HKDF(layer_secret, info="EnkryptedChat-b1/aes-session-secret")``.
  Both are epoch 0 of the layer's key rotation (:mod:`enkrypted_crypto.rotation`,
  ``rotation-timestamp-broadcast``), which the layer object exposes as ``rotation``.
"""

from __future__ import annotations

__all__ = [
    "LAYER_IDS",
    "PROFILE_B1",
    "PROFILE_V0",
    "LayerRegistry",
    "LayerRestorer",
    "LayerSpec",
    "RestoreContext",
    "SessionSecrets",
    "SignalParameters",
    "cascade_context",
    "replay_protection_problem",
    "v0_password",
    "v0_rotated_password",
]

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from .cascade import NO_COMMIT, CascadeLayer, CascadeManager, Commit, validate_layer_names
from .errors import CryptoError, CryptoUsageError, MalformedInput, SessionStateError
from .layers.aesgcm import (
    AesGcmSessionKeys,
    AesGcmSessionParameters,
    AesGcmV0KeyMaterial,
    AesGcmV0Layer,
    AesGcmV0Parameters,
    session_open,
    session_seal,
)
from .layers.mlkem import (
    MlKemLayer,
    MlKemParameters,
    MlKemPreparedKeys,
    MlKemSessionKeys,
    MlKemSessionLayer,
    MlKemSessionParameters,
)
from .limits import DEFAULT_LIMITS, Limits
from .mls import Group
from .primitives import AeadKey, BytesLike, Primitives
from .ratchet import HEADER_LEN, RatchetSession
from .rotation import AesKeyRotation, export_rotation, restore_rotation
from .session_mls import MLS_CAPABILITY, MlsCascadeLayer, restore_mls

PROFILE_V0: Final = "EnkryptedChat-Profile-v0"
PROFILE_B1: Final = "EnkryptedChat-Profile-b1"
LAYER_IDS: Final = {"MLS": 1, "Signal": 2, "ML-KEM": 3, "AES": 4}
"""Layer identifiers in the binary profile's frame header."""

_V0_PASSWORD_INFO: Final = b"EnkryptedChat-v0/aes-password"
_B1_AES_INFO: Final = b"EnkryptedChat-b1/aes-session-secret"
_U32_MAX: Final = 2**32 - 1
_MLKEM_PUBLIC: Final = 1184
_MLKEM_SEED: Final = 64
_P = TypeVar("_P")
_K = TypeVar("_K")


def replay_protection_problem(names: Sequence[str], profile: str) -> str | None:
    """Why a session with layers ``names`` in ``profile`` would accept replays (None: it won't).

    The rule (``docs/protocol.md`` §2.2 "replay rule"): a session's layers must include ``Signal`` (the
    Double Ratchet refuses every message key it has used) or ``MLS`` (the secret tree deletes
    every key it has used, and our own messages are refused), or, in Profile-b1, ``ML-KEM``
    (:class:`~enkrypted_crypto.layers.mlkem.MlKemSessionLayer` keeps a replay window).  The AES
    layers and the Profile-v0 ML-KEM layer keep no replay state, and the Profile-v0 AES password
    is the same in both directions, so such a session would also accept its own messages back.
    """
    if "Signal" in names or "MLS" in names or (profile == PROFILE_B1 and "ML-KEM" in names):
        return None
    short = "v0" if profile == PROFILE_V0 else "b1" if profile == PROFILE_B1 else profile
    return (
        f"layers {list(names)} in profile {short} have no replay protection: include Signal "
        f"or MLS (or, in Profile-b1 only, ML-KEM)"
    )


def _expect(parameters: object, kind: type[_P]) -> _P:
    if not isinstance(parameters, kind):
        raise MalformedInput(f"expected {kind.__name__}")
    return parameters


@dataclass(frozen=True, slots=True, repr=False)
class SessionSecrets:
    """Everything one session's layers are keyed from (secret; produced by the handshake).

    ``mlkem`` is the Profile-v0 ML-KEM key pair (prepared); ``mlkem_secret`` the Profile-b1
    secret of the handshake's encapsulation; ``mls`` the session's two-member MLS group.
    ``limits`` bound what the layers accept.
    """

    initiator: bool
    session_id: str
    layer_secret: bytes
    ratchet: RatchetSession | None = None
    mlkem: MlKemPreparedKeys | None = None
    mlkem_secret: bytes | None = None
    limits: Limits = field(default=DEFAULT_LIMITS)
    mls: Group | None = None

    def __repr__(self) -> str:
        return f"SessionSecrets(initiator={self.initiator}, session_id={self.session_id!r}, ...)"


# --------------------------------------------------------------------------------------- Signal
@dataclass(frozen=True, slots=True)
class SignalParameters:
    """The Double Ratchet header (``dh || pn || n``) carried as layer parameters."""

    header: bytes

    def __post_init__(self) -> None:
        if len(self.header) != HEADER_LEN:
            raise MalformedInput("Signal layer header must be 40 bytes")


class SignalLayer:
    """``Signal`` layer: Double Ratchet (digest §4.3 parameters ``publicKey, messageNumber,
    previousChainLength, sessionId``)."""

    name: Final = "Signal"
    algorithm: Final = "X3DH-DoubleRatchet"
    version: Final = "1.0.0"

    def __init__(self, ratchet: RatchetSession, session_id: str, context: bytes) -> None:
        self._ratchet = ratchet
        self._session_id = session_id
        self._context = context

    def seal(self, data: BytesLike, now_ms: int) -> tuple[bytes, object, Commit]:
        aad = _bind_time(self._context, now_ms)
        header, body, commit = self._ratchet.prepare_encrypt_parts(data, aad)
        return body, SignalParameters(header), commit

    def open(self, data: BytesLike, parameters: object, timestamp_ms: int) -> tuple[bytes, Commit]:
        header = _expect(parameters, SignalParameters).header
        aad = _bind_time(self._context, timestamp_ms)
        return self._ratchet.prepare_decrypt_parts(header, data, aad)

    def params_to_v0(self, parameters: object) -> dict[str, object]:
        dh, pn, n = struct.unpack(">32sII", _expect(parameters, SignalParameters).header)
        return {
            "publicKey": list(dh),
            "messageNumber": n,
            "previousChainLength": pn,
            "sessionId": self._session_id,
        }

    def metadata_to_v0(self, parameters: object) -> dict[str, object]:
        return {}

    def params_from_v0(
        self, parameters: Mapping[str, object], metadata: Mapping[str, object]
    ) -> object:
        dh, n = parameters.get("publicKey"), parameters.get("messageNumber")
        pn = parameters.get("previousChainLength")
        if parameters.get("sessionId") != self._session_id:
            raise MalformedInput("Signal layer sessionId is not this session's")
        if not (isinstance(dh, list) and len(dh) == 32 and _is_u32(n) and _is_u32(pn)):
            raise MalformedInput("Signal layer parameters malformed")
        return SignalParameters(struct.pack(">32sII", _int_array(dh), pn, n))

    def params_to_bytes(self, parameters: object) -> bytes:
        return _expect(parameters, SignalParameters).header

    def params_from_bytes(self, data: bytes) -> object:
        return SignalParameters(bytes(data))

    def export_state(self) -> bytes:
        return self._ratchet.to_bytes()


def _bind_time(context: bytes, timestamp_ms: int) -> bytes:
    """AAD = cascade context || u64 timestamp: the frame's timestamp is authenticated too."""
    if not 0 <= timestamp_ms < 2**64:
        raise MalformedInput("timestamp out of range")
    return context + timestamp_ms.to_bytes(8, "big")


def _is_u32(value: object) -> bool:
    return type(value) is int and 0 <= value <= _U32_MAX


def _int_array(values: list[object]) -> bytes:
    try:
        return bytes(values)  # type: ignore[arg-type]  # checked by bytes() itself
    except (TypeError, ValueError):
        raise MalformedInput("byte array must hold integers 0..255") from None


# --------------------------------------------------------------------------------------- ML-KEM
_MLKEM_V0_METADATA: Final = {
    "keyEncapsulation": "ML-KEM-768",
    "keyDerivation": "HKDF-SHA256",
    "encryption": "AES-GCM-256",
}


class MlKemCascadeLayer:
    """``ML-KEM`` layer, Profile-v0: per-message ML-KEM-768 encapsulation (digest §4.3)."""

    name: Final = "ML-KEM"
    algorithm: Final = "ML-KEM-768"
    version: Final = "1.0.0"

    def __init__(self, prims: Primitives, keys: MlKemPreparedKeys) -> None:
        self._layer = MlKemLayer(prims)
        self._keys = keys

    def export_state(self) -> bytes:
        """The peer's key and our seed: the layer keeps nothing else."""
        if self._keys.own_seed is None:
            raise CryptoUsageError("this ML-KEM layer was built without its seed; cannot export")
        return self._keys.peer.public_bytes() + self._keys.own_seed

    def seal(self, data: BytesLike, now_ms: int) -> tuple[bytes, object, Commit]:
        out, params = self._layer.encrypt(data, self._keys)
        return out, params, NO_COMMIT

    def open(self, data: BytesLike, parameters: object, timestamp_ms: int) -> tuple[bytes, Commit]:
        params = _expect(parameters, MlKemParameters)
        return self._layer.decrypt(data, params, self._keys), NO_COMMIT

    def params_to_v0(self, parameters: object) -> dict[str, object]:
        return dict(_expect(parameters, MlKemParameters).to_v0())

    def metadata_to_v0(self, parameters: object) -> dict[str, object]:
        return dict(_MLKEM_V0_METADATA)

    def params_from_v0(
        self, parameters: Mapping[str, object], metadata: Mapping[str, object]
    ) -> object:
        return MlKemParameters.from_v0(parameters)

    def params_to_bytes(self, parameters: object) -> bytes:
        return _expect(parameters, MlKemParameters).to_bytes()

    def params_from_bytes(self, data: bytes) -> object:
        return MlKemParameters.from_bytes(bytes(data))


class MlKemB1CascadeLayer:
    """``ML-KEM`` layer, Profile-b1: keys from the handshake's encapsulation, counter nonces."""

    name: Final = "ML-KEM"
    algorithm: Final = "ML-KEM-768"
    version: Final = "b1"

    def __init__(
        self, prims: Primitives, keys: MlKemSessionKeys, context: bytes, limits: Limits
    ) -> None:
        bound = limits.max_skipped_keys
        self._layer = MlKemSessionLayer(prims, keys, max_gap=bound, max_skipped=bound)
        self._context = context

    @classmethod
    def restored(cls, layer: MlKemSessionLayer, context: bytes) -> MlKemB1CascadeLayer:
        self = cls.__new__(cls)
        self._layer, self._context = layer, context
        return self

    def export_state(self) -> bytes:
        return self._layer.export_state()

    def seal(self, data: BytesLike, now_ms: int) -> tuple[bytes, object, Commit]:
        out, params = self._layer.encrypt(data, _bind_time(self._context, now_ms))
        return out, params, NO_COMMIT  # the send counter advanced already (never reused)

    def open(self, data: BytesLike, parameters: object, timestamp_ms: int) -> tuple[bytes, Commit]:
        params = _expect(parameters, MlKemSessionParameters)
        return self._layer.decrypt(data, params, _bind_time(self._context, timestamp_ms))

    def params_to_v0(self, parameters: object) -> dict[str, object]:
        return {"counter": _expect(parameters, MlKemSessionParameters).counter}

    def metadata_to_v0(self, parameters: object) -> dict[str, object]:
        return {}

    def params_from_v0(
        self, parameters: Mapping[str, object], metadata: Mapping[str, object]
    ) -> object:
        return MlKemSessionParameters(parameters.get("counter"))  # type: ignore[arg-type]

    def params_to_bytes(self, parameters: object) -> bytes:
        return _expect(parameters, MlKemSessionParameters).to_bytes()

    def params_from_bytes(self, data: bytes) -> object:
        return MlKemSessionParameters.from_bytes(data)


# ------------------------------------------------------------------------------------------ AES
class AesV0CascadeLayer:
    """``AES`` layer, Profile-v0: per-message scrypt over the session password (digest §4.3).

    The password is the current epoch's of :attr:`rotation` (``rotation-timestamp-broadcast``);
    while a grace window is open, a message that fails under the current password is tried
    under the previous one (one more scrypt).
    """

    name: Final = "AES"
    algorithm: Final = "AES-GCM-256"
    version: Final = "2.0.0"

    def __init__(self, prims: Primitives, rotation: AesKeyRotation[AesGcmV0KeyMaterial]) -> None:
        self._layer = AesGcmV0Layer(prims)
        self.rotation = rotation

    def export_state(self) -> bytes:
        return export_rotation(self.rotation)

    def seal(self, data: BytesLike, now_ms: int) -> tuple[bytes, object, Commit]:
        out, params = self._layer.encrypt(data, self.rotation.send_key, now_ms=now_ms)
        return out, params, NO_COMMIT

    def open(self, data: BytesLike, parameters: object, timestamp_ms: int) -> tuple[bytes, Commit]:
        params = _expect(parameters, AesGcmV0Parameters)
        return _open_any(self.rotation, lambda key: self._layer.decrypt(data, params, key))

    def params_to_v0(self, parameters: object) -> dict[str, object]:
        return dict(_expect(parameters, AesGcmV0Parameters).to_v0())

    def metadata_to_v0(self, parameters: object) -> dict[str, object]:
        meta = _expect(parameters, AesGcmV0Parameters).v0_metadata()
        return {k: v for k, v in meta.items() if k not in {"algorithm", "version", "timestamp"}}

    def params_from_v0(
        self, parameters: Mapping[str, object], metadata: Mapping[str, object]
    ) -> object:
        return AesGcmV0Parameters.from_v0(parameters, metadata)

    def params_to_bytes(self, parameters: object) -> bytes:
        raise CryptoUsageError("the Profile-v0 AES layer has no binary encoding")

    def params_from_bytes(self, data: bytes) -> object:
        raise MalformedInput("the Profile-v0 AES layer has no binary encoding")


def _open_any(rotation: AesKeyRotation[_K], attempt: Callable[[_K], bytes]) -> tuple[bytes, Commit]:
    """Open under the current receive key, then under the previous one while in grace.

    Out of grace (the usual case) there is one key and nothing to commit.
    """
    if not rotation.in_grace:
        return attempt(rotation.receive_key), NO_COMMIT
    current, previous = rotation.receive_keys()
    try:
        return attempt(current), rotation.opened
    except CryptoError:
        return attempt(previous), rotation.opened


class AesB1CascadeLayer:
    """``AES`` layer, Profile-b1: HKDF session keys, no scrypt; AAD binds the cascade context.

    Keys are the current epoch's of :attr:`rotation`; while a grace window is open, a message
    that fails under the current receive key is tried under the previous one.
    """

    name: Final = "AES"
    algorithm: Final = "AES-GCM-256"
    version: Final = "b1"

    def __init__(
        self, prims: Primitives, rotation: AesKeyRotation[AeadKey], context: bytes
    ) -> None:
        self._p = prims
        self.rotation = rotation  # holds the only references to the keys (dropped when rotated)
        self._context = context

    def export_state(self) -> bytes:
        return export_rotation(self.rotation)

    def seal(self, data: BytesLike, now_ms: int) -> tuple[bytes, object, Commit]:
        aad = _bind_time(self._context, now_ms)
        out, params = session_seal(self._p, self.rotation.send_key, data, aad)
        return out, params, NO_COMMIT

    def open(self, data: BytesLike, parameters: object, timestamp_ms: int) -> tuple[bytes, Commit]:
        params = _expect(parameters, AesGcmSessionParameters)
        aad = _bind_time(self._context, timestamp_ms)
        return _open_any(self.rotation, lambda key: session_open(key, data, params, aad))

    def params_to_v0(self, parameters: object) -> dict[str, object]:
        return {"nonce": list(_expect(parameters, AesGcmSessionParameters).nonce)}

    def metadata_to_v0(self, parameters: object) -> dict[str, object]:
        return {}

    def params_from_v0(
        self, parameters: Mapping[str, object], metadata: Mapping[str, object]
    ) -> object:
        nonce = parameters.get("nonce")
        if not isinstance(nonce, list):
            raise MalformedInput("AES nonce must be a byte array")
        return AesGcmSessionParameters(_int_array(nonce))

    def params_to_bytes(self, parameters: object) -> bytes:
        return _expect(parameters, AesGcmSessionParameters).to_bytes()

    def params_from_bytes(self, data: bytes) -> object:
        return AesGcmSessionParameters.from_bytes(bytes(data))


# ------------------------------------------------------------------------------------- registry
LayerFactory = Callable[[Primitives, str, SessionSecrets, bytes], CascadeLayer]
"""``factory(primitives, profile, secrets, context) -> layer``."""


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """A layer implementation: its name, the primitives it needs per profile, its factory, and
    how to restore it from exported state (``None``: its sessions cannot be exported)."""

    name: str
    primitives: frozenset[str]
    factory: LayerFactory
    v0_primitives: frozenset[str] = frozenset()
    restore: LayerRestorer | None = None


def _mls(prims: Primitives, profile: str, s: SessionSecrets, context: bytes) -> CascadeLayer:
    if s.mls is None:
        raise CryptoUsageError("MLS layer needs the handshake's MLS group")
    return MlsCascadeLayer(s.mls, profile == PROFILE_V0)


def _signal(prims: Primitives, profile: str, s: SessionSecrets, context: bytes) -> CascadeLayer:
    if s.ratchet is None:
        raise CryptoUsageError("Signal layer needs a Double Ratchet session")
    return SignalLayer(s.ratchet, s.session_id, context)


def _mlkem(prims: Primitives, profile: str, s: SessionSecrets, context: bytes) -> CascadeLayer:
    if profile == PROFILE_V0:
        if s.mlkem is None:
            raise CryptoUsageError("ML-KEM layer (Profile-v0) needs ML-KEM key material")
        return MlKemCascadeLayer(prims, s.mlkem)
    if s.mlkem_secret is None:
        raise CryptoUsageError("ML-KEM layer (Profile-b1) needs the handshake's ML-KEM secret")
    keys = MlKemSessionKeys.derive(prims, s.mlkem_secret, initiator=s.initiator)
    return MlKemB1CascadeLayer(prims, keys, context, s.limits)


def _aes(prims: Primitives, profile: str, s: SessionSecrets, context: bytes) -> CascadeLayer:
    if profile == PROFILE_V0:
        password = prims.hkdf_sha256(s.layer_secret, b"", _V0_PASSWORD_INFO, 32)
        v0 = AesKeyRotation(
            prims, s.layer_secret, profile=profile, initiator=s.initiator,
            make_key=v0_password, send_material=password, receive_material=password,
            limits=s.limits,
        )  # fmt: skip
        return AesV0CascadeLayer(prims, v0)
    secret = prims.hkdf_sha256(s.layer_secret, b"", _B1_AES_INFO, 32)
    keys = AesGcmSessionKeys.derive(prims, secret, initiator=s.initiator)
    b1 = AesKeyRotation(
        prims, s.layer_secret, profile=profile, initiator=s.initiator, make_key=_b1_key(prims),
        send_material=keys.send_key, receive_material=keys.receive_key, limits=s.limits,
    )  # fmt: skip
    return AesB1CascadeLayer(prims, b1, context)


def _b1_key(prims: Primitives) -> Callable[[bytes, int], AeadKey]:
    def b1_key(material: bytes, timestamp_ms: int) -> AeadKey:
        return prims.aead_key("aes-256-gcm", material)

    return b1_key


def v0_rotated_password(material: bytes, timestamp_ms: int) -> AesGcmV0KeyMaterial:
    """Profile-v0 password of a rotated epoch: ``hex(key) || ":" || decimal(T)``."""
    return AesGcmV0KeyMaterial(f"{material.hex()}:{timestamp_ms}")


def v0_password(material: bytes, timestamp_ms: int) -> AesGcmV0KeyMaterial:
    """Profile-v0 password of any epoch: epoch 0 (``T`` = 0) is ``hex(key)`` as the handshake
    derived it (§1.3), a rotated epoch :func:`v0_rotated_password`."""
    if timestamp_ms == 0:
        return AesGcmV0KeyMaterial(material.hex())
    return v0_rotated_password(material, timestamp_ms)


# -------------------------------------------------------------------------------- restoring
@dataclass(frozen=True, slots=True)
class RestoreContext:
    """What a restored layer is bound to besides its own state (from the session's header)."""

    prims: Primitives
    profile: str
    session_id: str
    context: bytes
    limits: Limits
    now_ms: int
    identities: tuple[bytes, bytes] = (b"", b"")
    """``Encode(IK)`` of this side and of the peer, from the session's header."""


LayerRestorer = Callable[[RestoreContext, bytes], CascadeLayer]
"""``restore(context, state) -> layer``: the inverse of the layer's ``export_state()``; raises
:class:`~enkrypted_crypto.errors.SessionStateError` (or a ``CryptoError`` the caller turns into one)."""


def _restore_mls(rc: RestoreContext, state: bytes) -> CascadeLayer:
    return restore_mls(state, rc.profile == PROFILE_V0, rc.session_id, rc.identities)


def _restore_signal(rc: RestoreContext, state: bytes) -> CascadeLayer:
    ratchet = RatchetSession.from_bytes(rc.prims, state, rc.limits)
    own, peer = rc.identities
    if ratchet.associated_data not in (own + peer, peer + own):
        raise SessionStateError("Double Ratchet state of another pair of identities")
    return SignalLayer(ratchet, rc.session_id, rc.context)


def _restore_mlkem(rc: RestoreContext, state: bytes) -> CascadeLayer:
    p = rc.prims
    if rc.profile == PROFILE_V0:
        if len(state) != _MLKEM_PUBLIC + _MLKEM_SEED:
            raise SessionStateError("ML-KEM layer state must be a 1184-byte key and a 64-byte seed")
        peer, seed = state[:_MLKEM_PUBLIC], state[_MLKEM_PUBLIC:]
        keys = MlKemPreparedKeys(
            p.mlkem768_encapsulation_key(peer), p.mlkem768_decapsulation_key(seed), seed
        )
        return MlKemCascadeLayer(p, keys)
    bound = rc.limits.max_skipped_keys
    layer = MlKemSessionLayer.restore(p, state, max_gap=bound, max_skipped=bound)
    return MlKemB1CascadeLayer.restored(layer, rc.context)


def _restore_aes(rc: RestoreContext, state: bytes) -> CascadeLayer:
    if rc.profile == PROFILE_V0:
        v0 = restore_rotation(rc.prims, state, v0_password, rc.limits, rc.now_ms)
        return AesV0CascadeLayer(rc.prims, v0)
    b1 = restore_rotation(rc.prims, state, _b1_key(rc.prims), rc.limits, rc.now_ms)
    return AesB1CascadeLayer(rc.prims, b1, rc.context)


_BASE: Final = frozenset({"hkdf-sha256", "aes-256-gcm"})
DEFAULT_SPECS: Final = (
    LayerSpec("MLS", frozenset({MLS_CAPABILITY}), _mls, restore=_restore_mls),
    LayerSpec("Signal", _BASE | {"x25519", "hmac-sha256"}, _signal, restore=_restore_signal),
    LayerSpec("ML-KEM", _BASE | {"ml-kem-768"}, _mlkem, restore=_restore_mlkem),
    LayerSpec("AES", _BASE, _aes, v0_primitives=frozenset({"scrypt"}), restore=_restore_aes),
)


def cascade_context(profile: str, names: Sequence[str], session_id: str) -> bytes:
    """Bytes every context-binding layer authenticates: profile, layer list, session id."""
    return f"EnkryptedChat-cascade-v1|{profile}|{','.join(names)}|{session_id}".encode()


class LayerRegistry:
    """Layer implementations by ``cipherLayers`` name (all four by default)."""

    __slots__ = ("_specs",)

    def __init__(self, specs: Iterable[LayerSpec] = DEFAULT_SPECS) -> None:
        self._specs: dict[str, LayerSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: LayerSpec) -> None:
        if spec.name not in LAYER_IDS:
            raise CryptoUsageError(f"unknown cipher layer {spec.name!r}")
        self._specs[spec.name] = spec

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in LAYER_IDS if n in self._specs)

    def required_primitives(self, name: str, profile: str) -> frozenset[str]:
        spec = self._specs[name]
        return spec.primitives | (spec.v0_primitives if profile == PROFILE_V0 else frozenset())

    def missing_primitives(
        self, names: Sequence[str], profile: str, capabilities: frozenset[str]
    ) -> dict[str, frozenset[str]]:
        """Per layer, the primitives ``capabilities`` lacks (empty dict: all servable)."""
        missing = {n: self.required_primitives(n, profile) - capabilities for n in names}
        return {n: m for n, m in missing.items() if m}

    def build(
        self,
        names: Sequence[str],
        prims: Primitives,
        profile: str,
        secrets: SessionSecrets,
        limits: Limits = DEFAULT_LIMITS,
    ) -> CascadeManager:
        names = validate_layer_names(names, self.names)
        problem = replay_protection_problem(names, profile)
        if problem is not None:
            raise CryptoUsageError(problem)
        context = cascade_context(profile, names, secrets.session_id)
        layers = [self._specs[n].factory(prims, profile, secrets, context) for n in names]
        return CascadeManager(layers, limits)

    def restore(
        self,
        names: Sequence[str],
        states: Sequence[bytes],
        prims: Primitives,
        profile: str,
        session_id: str,
        limits: Limits,
        now_ms: int,
        identities: tuple[bytes, bytes] = (b"", b""),
    ) -> CascadeManager:
        """The cascade of an exported session: each layer from its ``export_state()`` bytes.

        Raises :class:`~enkrypted_crypto.errors.SessionStateError` for a layer list this registry
        cannot serve or a layer that cannot be restored; layer errors propagate for the caller
        to turn into one.
        """
        try:
            names = validate_layer_names(names, self.names)
        except CryptoError as exc:
            raise SessionStateError(f"exported session: {exc}") from None
        problem = replay_protection_problem(names, profile)
        if problem is not None:
            raise SessionStateError(f"exported session: {problem}")
        context = cascade_context(profile, names, session_id)
        rc = RestoreContext(prims, profile, session_id, context, limits, now_ms, identities)
        layers = []
        for name, state in zip(names, states, strict=True):
            restorer = self._specs[name].restore
            if restorer is None:
                raise SessionStateError(f"exported session: layer {name} cannot be restored")
            layers.append(restorer(rc, state))
        return CascadeManager(layers, limits)
