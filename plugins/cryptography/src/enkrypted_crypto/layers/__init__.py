"""Cascade layers, each pure over a :class:`~enkrypted_crypto.primitives.Primitives`.

See the module docstrings of :mod:`.mlkem` and :mod:`.aesgcm` for the exact constructions and
call shapes the cascade manager uses.
"""

from __future__ import annotations

__all__ = [
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
]

from enkrypted_crypto.layers.aesgcm import (
    AesGcmSessionKeys,
    AesGcmSessionLayer,
    AesGcmSessionParameters,
    AesGcmV0KeyMaterial,
    AesGcmV0Layer,
    AesGcmV0Parameters,
)
from enkrypted_crypto.layers.mlkem import (
    MlKemKeyMaterial,
    MlKemLayer,
    MlKemParameters,
    MlKemPreparedKeys,
    MlKemSessionKeys,
    MlKemSessionLayer,
    MlKemSessionParameters,
)
