"""ML-KEM-768 (FIPS 203): Wycheproof keygen/decaps/encaps vectors and CCTV invalid-modulus keys.

Only the pyca backend declares ``ml-kem-768``; PyNaCl must refuse with ``UnsupportedPrimitive``
naming the primitive and the pyca backend.  Encapsulation test vectors that fix the message
``m`` cannot be replayed (pyca does not accept ``m``), so valid ones check acceptance and sizes,
and a decapsulation round trip; invalid ones must be refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from enkrypted_crypto.backends import check_mlkem768_public
from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import (
    CryptoUsageError,
    MalformedInput,
    MalformedKey,
    UnsupportedPrimitive,
)
from enkrypted_crypto.primitives import Primitives
from enkrypted_crypto_nacl import NaclPrimitives
from tests.vectors import cctv_lines, wycheproof_cases

h = bytes.fromhex
PYCA = PycaPrimitives()


def _failures(name: str, check: Callable[[dict[str, Any]], bool]) -> list[int]:
    return [t["tcId"] for g, t in wycheproof_cases(name) if not check(t)]


def test_keygen_seed_vectors() -> None:
    def check(t: dict[str, Any]) -> bool:
        return PYCA.mlkem768_public(h(t["seed"])) == h(t["ek"])

    assert _failures("mlkem_768_keygen_seed_test", check) == []


def test_decaps_vectors() -> None:
    def check(t: dict[str, Any]) -> bool:
        seed, ciphertext = h(t["seed"]), h(t["c"])
        if t["result"] == "valid":
            return PYCA.mlkem768_public(seed) == h(t["ek"]) and PYCA.mlkem768_decapsulate(
                seed, ciphertext
            ) == h(t["K"])
        if len(seed) != 64:  # our own key of the wrong size: local misuse
            expected: type[Exception] = CryptoUsageError
        else:  # the peer's ciphertext of the wrong size: hostile input
            expected = MalformedInput
        try:
            PYCA.mlkem768_decapsulate(seed, ciphertext)
        except expected:
            return True
        return False

    assert _failures("mlkem_768_test", check) == []


def test_encaps_vectors() -> None:
    def check(t: dict[str, Any]) -> bool:
        public = h(t["ek"])
        if t["result"] == "invalid":
            try:
                PYCA.mlkem768_encapsulate(public)
            except MalformedKey:
                return True
            return False
        shared, ciphertext = PYCA.mlkem768_encapsulate(public)
        return len(shared) == 32 and len(ciphertext) == 1088

    assert _failures("mlkem_768_encaps_test", check) == []


def test_cctv_invalid_modulus_keys_rejected() -> None:
    keys = cctv_lines("ML-KEM-modulus", "ML-KEM-768.txt.gz")
    assert len(keys) > 700 and all(len(k) == 1184 for k in keys)
    for key in keys:
        with pytest.raises(MalformedKey):
            check_mlkem768_public(key)  # our own FIPS 203 §7.2 check ...
        with pytest.raises(MalformedKey):
            PYCA.mlkem768_encapsulate(key)  # ... and the backend's


def test_roundtrip_and_seeded_generation() -> None:
    seed, public = PYCA.mlkem768_generate()
    assert len(seed) == 64 and len(public) == 1184
    shared, ciphertext = PYCA.mlkem768_encapsulate(public)
    assert PYCA.mlkem768_decapsulate(seed, ciphertext) == shared
    fixed = PycaPrimitives(random=lambda n: bytes(range(n)))
    assert fixed.mlkem768_generate() == fixed.mlkem768_generate()


def test_nacl_refuses_mlkem() -> None:
    nacl: Primitives = NaclPrimitives()
    assert "ml-kem-768" not in nacl.capabilities
    seed, public = PYCA.mlkem768_generate()
    calls: list[Callable[[], object]] = [
        nacl.mlkem768_generate,
        lambda: nacl.mlkem768_public(seed),
        lambda: nacl.mlkem768_encapsulate(public),
        lambda: nacl.mlkem768_decapsulate(seed, bytes(1088)),
    ]
    for call in calls:
        with pytest.raises(UnsupportedPrimitive, match=r"ml-kem-768.*enkrypted-crypto") as info:
            call()
        assert info.value.primitive == "ml-kem-768"
