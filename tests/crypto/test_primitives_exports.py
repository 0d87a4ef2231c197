"""Pins the public surface of the errors, backends and layers modules (STYLE.md principle 5)."""

from __future__ import annotations

import enkrypted_crypto.backends as backends
import enkrypted_crypto.backends.pyca as pyca
import enkrypted_crypto.errors as errors
import enkrypted_crypto.layers as layers
import enkrypted_crypto.layers.aesgcm as aesgcm
import enkrypted_crypto.layers.mlkem as mlkem
import enkrypted_crypto_nacl
import enkrypted_crypto_nacl.backend as nacl_backend


def test_exports_are_pinned() -> None:
    assert set(errors.__all__) == {
        "CryptoError",
        "CryptoUsageError",
        "DecryptionFailed",
        "MalformedInput",
        "MalformedKey",
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
    }
    for module in (backends, pyca, errors, layers, aesgcm, mlkem, nacl_backend):
        assert all(hasattr(module, name) for name in module.__all__), module.__name__
