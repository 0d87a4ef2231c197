"""Pins the public surface of the package facade and of the errors, primitives, backends and
layers modules (STYLE.md principle 5)."""

from __future__ import annotations

import enkrypted_crypto
import enkrypted_crypto.backends as backends
import enkrypted_crypto.backends.pyca as pyca
import enkrypted_crypto.errors as errors
import enkrypted_crypto.layers as layers
import enkrypted_crypto.layers.aesgcm as aesgcm
import enkrypted_crypto.layers.mlkem as mlkem
import enkrypted_crypto.primitives as primitives
import enkrypted_crypto.service as service
import enkrypted_crypto_nacl
import enkrypted_crypto_nacl.backend as nacl_backend


def test_exports_are_pinned() -> None:
    assert set(errors.__all__) == {
        "CryptoError",
        "CryptoUsageError",
        "DecryptionFailed",
        "HandshakeUsageError",
        "MalformedInput",
        "MalformedKey",
        "SessionStateError",
        "UnsupportedPrimitive",
    }
    assert pyca.__all__ == ["PycaPrimitives"]
    assert nacl_backend.__all__ == enkrypted_crypto_nacl.__all__ == ["NaclPrimitives"]
    assert set(layers.__all__) == {
        "AesGcmSessionKeys",
        "AesGcmSessionLayer",
        "AesGcmSessionParameters",
        "AesGcmV0KeyMaterial",
        "AesGcmV0Layer",
        "AesGcmV0Parameters",
        "MlKemKeyMaterial",
        "MlKemLayer",
        "MlKemParameters",
        "MlKemPreparedKeys",
        "MlKemSessionKeys",
        "MlKemSessionLayer",
        "MlKemSessionParameters",
    }
    assert set(primitives.__all__) == {
        "CAPABILITIES",
        "AeadAlgorithm",
        "AeadKey",
        "BytesLike",
        "MlKemDecapsulationKey",
        "MlKemEncapsulationKey",
        "Primitives",
        "Random",
    }
    assert {"B1_SECRET_INFO", "EPOCH_MESSAGES", "b1_session_secret"} <= set(mlkem.__all__)
    modules = (backends, pyca, errors, layers, aesgcm, mlkem, primitives, nacl_backend)
    for module in (*modules, enkrypted_crypto):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__


def test_package_facade() -> None:
    """``import enkrypted_crypto``: the service, its factory, the profile names, the errors."""
    assert set(enkrypted_crypto.__all__) == {
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
    }
    assert enkrypted_crypto.service_from_settings is service.service_from_settings
    assert enkrypted_crypto.DecryptionFailed is errors.DecryptionFailed
    assert enkrypted_crypto.PycaPrimitives is pyca.PycaPrimitives
    assert enkrypted_crypto.PROFILES == (enkrypted_crypto.PROFILE_B1, enkrypted_crypto.PROFILE_V0)
    svc = enkrypted_crypto.service_from_settings(enkrypted_crypto.PycaPrimitives(), {})
    assert isinstance(svc, enkrypted_crypto.CascadeCryptoService)
    assert svc.default_layers == ("MLS", "Signal", "ML-KEM", "AES")


def test_backends_implement_the_whole_primitives_protocol() -> None:
    """Every method of the protocol exists on both backends (nacl refuses ML-KEM when called)."""
    wanted = {n for n in dir(primitives.Primitives) if not n.startswith("_")}
    for backend in (pyca.PycaPrimitives(), enkrypted_crypto_nacl.NaclPrimitives()):
        assert wanted <= set(dir(backend)), type(backend).__name__


def test_errors_are_split_by_fault() -> None:
    """Each error is the shell contract's error of its fault, so a ui reacts without knowing us."""
    from enkrypted_shell import contracts as c

    local = (
        errors.CryptoUsageError,
        errors.UnsupportedPrimitive,
        enkrypted_crypto.LayerUnavailable,
    )
    for cls in local:
        assert issubclass(cls, c.LocalMisuse) and not issubclass(cls, c.RemoteInputError)
    for cls in (errors.MalformedInput, errors.MalformedKey, errors.DecryptionFailed):
        assert issubclass(cls, c.RemoteInputError) and not issubclass(cls, c.LocalMisuse)
    assert issubclass(errors.DecryptionFailed, c.CryptoFailure)
    assert issubclass(errors.HandshakeUsageError, c.HandshakeMisuse)
    assert issubclass(errors.SessionStateError, c.StateError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.CryptoError)
