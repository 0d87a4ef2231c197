"""PyNaCl (libsodium) backend for ``enkrypted-crypto``: everything libsodium has, no ML-KEM."""

from __future__ import annotations

__all__ = ["NaclPrimitives"]

from enkrypted_crypto_nacl.backend import NaclPrimitives
