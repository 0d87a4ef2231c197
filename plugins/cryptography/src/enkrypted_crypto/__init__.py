"""``enkrypted-crypto``: the crypto slot of Enkrypted (cascade MLS -> Signal -> ML-KEM -> AES).

The stable surface for code outside the package: the service and its factory, the wire profile
names, and the exceptions.  Everything else (layers, ratchet, handshake PDUs, backends) is reached
through its own module; ``docs/protocol.md`` describes the protocol.

    from enkrypted_crypto import CascadeCryptoService, PycaPrimitives
    service = CascadeCryptoService(PycaPrimitives())

The shell loads the plugin through the ``enkrypted.plugins`` entry point
(:mod:`enkrypted_crypto.plugin`), which calls :func:`service_from_context` (settings, clock and
P8 limits from the shell's ``AppContext``).
"""

from __future__ import annotations

__all__ = [
    "PROFILES",
    "PROFILE_B1",
    "PROFILE_V0",
    "CascadeCryptoService",
    "CryptoError",
    "CryptoUsageError",
    "DecryptionFailed",
    "HandshakeUsageError",
    "LayerUnavailable",
    "MalformedInput",
    "MalformedKey",
    "PycaPrimitives",
    "SessionStateError",
    "UnsupportedPrimitive",
    "service_from_context",
    "service_from_settings",
]

from .backends.pyca import PycaPrimitives
from .cascade import LayerUnavailable
from .errors import (
    CryptoError,
    CryptoUsageError,
    DecryptionFailed,
    HandshakeUsageError,
    MalformedInput,
    MalformedKey,
    SessionStateError,
    UnsupportedPrimitive,
)
from .profiles import PROFILE_B1, PROFILE_V0, PROFILES
from .service import CascadeCryptoService, service_from_context, service_from_settings
