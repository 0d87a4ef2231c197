"""Fixtures for the crypto protocol tests: both backends, seeded randomness."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.primitives import Primitives
from enkrypted_crypto_nacl import NaclPrimitives


class SeededRandom:
    """Deterministic byte stream: SHA-256(seed || counter) blocks (tests and vectors only)."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            block = self._seed + self._counter.to_bytes(8, "big")
            self._buffer += hashlib.sha256(block).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


BACKENDS: dict[str, Callable[..., Primitives]] = {"pyca": PycaPrimitives, "nacl": NaclPrimitives}


@pytest.fixture(params=sorted(BACKENDS))
def prims(request: pytest.FixtureRequest) -> Primitives:
    """Each backend in turn, with OS randomness."""
    return BACKENDS[request.param]()


@pytest.fixture
def pyca() -> Primitives:
    return PycaPrimitives()


@pytest.fixture
def nacl() -> Primitives:
    return NaclPrimitives()


def seeded(backend: str, seed: bytes) -> Primitives:
    return BACKENDS[backend](random=SeededRandom(seed))


class Advertised:
    """Delegates to a backend but advertises a fixed name and capability set.

    Handshake PDUs carry the backend's name and capabilities, so two backends only produce
    identical bytes if they advertise the same; this isolates the cryptography for vectors.
    """

    def __init__(self, inner: Primitives, name: str, capabilities: frozenset[str]) -> None:
        self._inner = inner
        self.name = name
        self.capabilities = capabilities

    def __getattr__(self, attr: str) -> object:
        return getattr(self._inner, attr)


VECTOR_CAPABILITIES = frozenset(
    {"aes-256-gcm", "x25519", "ed25519", "hkdf-sha256", "hmac-sha256", "sha256", "scrypt"}
)


def vector_primitives(backend: str, seed: bytes, mlkem: bool = False) -> Primitives:
    caps = VECTOR_CAPABILITIES | ({"ml-kem-768"} if mlkem else set())
    return Advertised(seeded(backend, seed), "vector", caps)  # type: ignore[return-value]
