"""The crypto service of contract ``crypto`` 2.0 / 2.1, parameterised by a primitives backend.

:class:`CascadeCryptoService` is contract 2.0 (any backend); :class:`GroupCryptoService` adds the
2.1 group API (MLS, :mod:`enkrypted_crypto.groups`) and is what :func:`service_from_settings`
builds for a backend with the ``mls-suite-1`` capability (pyca). The PyNaCl backend has no HPKE,
so its service stays 2.0 and ``supports(service, contracts.GroupCryptoService)`` is false.

The service advertises what its backend really has: ``capabilities`` are the backend's, and
``profiles`` / ``default_layers`` are what those primitives can serve.  Asking for more fails at
once with a message naming the missing primitive and the alternative (DESIGN.md §7) — the
handshake never starts with a layer it cannot run.

Settings (``[plugins.crypto]`` in the shell's configuration, ``AppContext.settings``):
``layers`` (``cipherLayers`` names, innermost first) and ``profiles`` (preferred first).
``AppContext.clock`` is the sessions' clock and ``AppContext.limits`` the P8 bounds
(:func:`service_from_context`).
"""

from __future__ import annotations

__all__ = [
    "HANDSHAKE_PRIMITIVES",
    "CascadeCryptoService",
    "GroupCryptoService",
    "service_from_context",
    "service_from_settings",
]

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Final

from enkrypted_shell.contracts import (
    AppContext,
    Clock,
    GroupJoinResult,
    GroupKeyPackage,
    GroupSession,
    Handshake,
    SecureSession,
    monotonic_clock,
)

from . import groups
from .cascade import DEFAULT_LAYERS, validate_layer_names
from .errors import CryptoUsageError
from .handshake import CascadeHandshake, HandshakeConfig, missing_primitive_message
from .limits import DEFAULT_LIMITS, Limits
from .primitives import Primitives
from .profiles import PROFILES
from .session import restore_session
from .session_layers import PROFILE_V0, LayerRegistry, replay_protection_problem
from .session_mls import MLS_CAPABILITY
from .x3dh import IdentityKeyPair

HANDSHAKE_PRIMITIVES: Final = frozenset(
    {"x25519", "ed25519", "hkdf-sha256", "hmac-sha256", "sha256"}
)
"""What X3DH, the confirmations and the transcript need whatever the layers."""


class CascadeCryptoService:
    """:class:`enkrypted_shell.contracts.CryptoService` over any :class:`Primitives`."""

    def __init__(
        self,
        prims: Primitives,
        *,
        profiles: Sequence[str] | None = None,
        layers: Sequence[str] | None = None,
        registry: LayerRegistry | None = None,
        limits: Limits = DEFAULT_LIMITS,
        clock: Clock = monotonic_clock,
    ) -> None:
        self._p = prims
        self._registry = registry if registry is not None else LayerRegistry()
        self._limits = limits
        self._clock = clock
        missing = HANDSHAKE_PRIMITIVES - prims.capabilities
        if missing:
            raise CryptoUsageError(
                f"backend {prims.name!r} lacks {sorted(missing)} needed by the handshake"
            )
        if layers is None:
            layers = tuple(n for n in DEFAULT_LAYERS if self._servable(n, PROFILES))
        self._layers = self._check_layers(layers, PROFILES if profiles is None else profiles)
        self._profiles = self._check_profiles(PROFILES if profiles is None else profiles)

    # ------------------------------------------------------------------ contracts.CryptoService
    @property
    def backend(self) -> str:
        return self._p.name

    @property
    def capabilities(self) -> frozenset[str]:
        return self._p.capabilities

    @property
    def profiles(self) -> tuple[str, ...]:
        return self._profiles

    @property
    def default_layers(self) -> tuple[str, ...]:
        return self._layers

    def new_identity(self) -> bytes:
        return IdentityKeyPair.generate(self._p).to_bytes()

    def fingerprint(self, identity: bytes) -> str:
        """Lowercase hex SHA-256 of the identity's ``Encode(IK)``: what the peer sees as our
        ``SecureSession.peer_fingerprint``."""
        return IdentityKeyPair.from_bytes(self._p, identity).public.fingerprint(self._p)

    def handshake(
        self,
        identity: bytes,
        *,
        initiator: bool,
        now: float,
        profiles: Sequence[str] | None = None,
        layers: Sequence[str] | None = None,
    ) -> Handshake:
        """Start a handshake at ``now`` (clock seconds; the timeout runs from there).

        Raises :class:`CryptoUsageError` / ``LayerUnavailable`` (``LocalMisuse``) for a profile or
        layer this service cannot serve, or an identity that is not one of ours.
        """
        chosen_profiles = self._check_profiles(self._profiles if profiles is None else profiles)
        chosen_layers = self._check_layers(
            self._layers if layers is None else layers, chosen_profiles
        )
        keys = IdentityKeyPair.from_bytes(self._p, identity)
        config = HandshakeConfig(
            self._p, chosen_profiles, chosen_layers, self._registry, self._limits, self._clock
        )
        return CascadeHandshake(config, keys, initiator=initiator, now=now)

    def restore(self, state: bytes) -> SecureSession:
        """A session from ``SecureSession.export_state()`` of this backend; anything damaged,
        truncated, foreign or from another backend is ``SessionStateError`` (``StateError``)."""
        return restore_session(
            self._p, state, self._registry, clock=self._clock, limits=self._limits
        )

    # ------------------------------------------------------------------ checks
    def _servable(self, layer: str, profiles: Sequence[str]) -> bool:
        caps = self._p.capabilities
        return all(not self._registry.missing_primitives([layer], p, caps) for p in profiles)

    def _check_profiles(self, profiles: Sequence[str]) -> tuple[str, ...]:
        profiles = tuple(profiles)
        unknown = [p for p in profiles if p not in PROFILES]
        if not profiles or unknown:
            raise CryptoUsageError(
                f"unknown or no wire profile(s) {unknown}; known: {list(PROFILES)}"
            )
        return profiles

    def _check_layers(self, layers: Sequence[str], profiles: Sequence[str]) -> tuple[str, ...]:
        names = validate_layer_names(layers, self._registry.names)  # MLS -> LayerUnavailable
        caps = self._p.capabilities
        for profile in profiles:
            for name, missing in self._registry.missing_primitives(names, profile, caps).items():
                raise CryptoUsageError(
                    missing_primitive_message(name, missing, self._p.name, "ours")
                )
            problem = replay_protection_problem(names, profile)
            if problem is not None:  # docs/protocol.md §2.2 replay rule: none without it
                raise CryptoUsageError(
                    f"{problem}; or restrict profiles to Profile-b1 with ML-KEM"
                    if profile == PROFILE_V0 and "ML-KEM" in names
                    else problem
                )
        return names


class GroupCryptoService(CascadeCryptoService):
    """Crypto contract 2.1: :class:`CascadeCryptoService` and the group API (MLS suite 1)."""

    def __init__(
        self,
        prims: Primitives,
        *,
        profiles: Sequence[str] | None = None,
        layers: Sequence[str] | None = None,
        registry: LayerRegistry | None = None,
        limits: Limits = DEFAULT_LIMITS,
        clock: Clock = monotonic_clock,
    ) -> None:
        if MLS_CAPABILITY not in prims.capabilities:
            raise CryptoUsageError(
                f"backend {prims.name!r} lacks {MLS_CAPABILITY!r}, needed by the group API; use pyca"
            )
        super().__init__(
            prims, profiles=profiles, layers=layers, registry=registry, limits=limits, clock=clock
        )

    def _identity(self, identity: bytes) -> IdentityKeyPair:
        return IdentityKeyPair.from_bytes(self._p, identity)

    def new_key_package(self, identity: bytes) -> GroupKeyPackage:
        return groups.new_group_key_package(self._identity(identity))

    def create_group(self, identity: bytes, group_id: bytes | None = None) -> GroupSession:
        return groups.create_group(self._identity(identity), group_id, self._limits.max_pdu_bytes)

    def join_group(self, identity: bytes, key_package: bytes, welcome: bytes) -> GroupJoinResult:
        return groups.join_group(
            self._identity(identity), key_package, welcome, self._limits.max_pdu_bytes
        )

    def restore_group(self, state: bytes) -> GroupSession:
        return groups.restore_group(state, self._limits.max_pdu_bytes)


def _str_list(settings: Mapping[str, object], key: str) -> tuple[str, ...] | None:
    value = settings.get(key)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise CryptoUsageError(f"setting {key!r} must be a list of strings")
    return tuple(value)


def service_from_settings(
    prims: Primitives,
    settings: Mapping[str, object],
    *,
    clock: Clock = monotonic_clock,
    limits: Limits = DEFAULT_LIMITS,
) -> CascadeCryptoService:
    """Build the service from ``[plugins.crypto]`` settings (``layers``, ``profiles``): with
    the group API (2.1) when the backend has MLS, else contract 2.0."""
    kind = GroupCryptoService if MLS_CAPABILITY in prims.capabilities else CascadeCryptoService
    return kind(
        prims,
        profiles=_str_list(settings, "profiles"),
        layers=_str_list(settings, "layers"),
        clock=clock,
        limits=limits,
    )


def service_from_context(prims: Primitives, context: AppContext) -> CascadeCryptoService:
    """The service the plugin hook returns: settings, clock and P8 limits from the shell."""
    limits = replace(DEFAULT_LIMITS, wire=context.limits)
    return service_from_settings(prims, context.settings, clock=context.clock, limits=limits)
