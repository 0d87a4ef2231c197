"""ML-KEM-768 (FIPS 203): Wycheproof keygen/decaps/encaps vectors and CCTV invalid-modulus keys.

Only the pyca backend declares ``ml-kem-768``; PyNaCl must refuse with ``UnsupportedPrimitive``
naming the primitive and the pyca backend.  Prepared keys (``mlkem768_encapsulation_key`` /
``mlkem768_decapsulation_key``) go through the same vectors; our fast FIPS 203 §7.2 check is
compared with the per-coefficient definition.  Encapsulation test vectors that fix the message
``m`` cannot be replayed (pyca does not accept ``m``), so valid ones check acceptance and sizes,
and a decapsulation round trip; invalid ones must be refused.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
        seed, ek = h(t["seed"]), h(t["ek"])
        return (
            PYCA.mlkem768_public(seed) == ek == PYCA.mlkem768_decapsulation_key(seed).public_bytes()
        )

    assert _failures("mlkem_768_keygen_seed_test", check) == []


def test_decaps_vectors() -> None:
    def check(t: dict[str, Any]) -> bool:
        seed, ciphertext = h(t["seed"]), h(t["c"])
        if t["result"] == "valid":
            prepared = PYCA.mlkem768_decapsulation_key(seed)
            return (
                PYCA.mlkem768_public(seed) == h(t["ek"])
                and PYCA.mlkem768_decapsulate(seed, ciphertext) == h(t["K"])
                and prepared.decapsulate(ciphertext) == h(t["K"])
            )
        if len(seed) != 64:  # our own key of the wrong size: local misuse
            expected: type[Exception] = CryptoUsageError
        else:  # the peer's ciphertext of the wrong size: hostile input
            expected = MalformedInput
        try:
            PYCA.mlkem768_decapsulate(seed, ciphertext)
        except expected:
            try:
                PYCA.mlkem768_decapsulation_key(seed).decapsulate(ciphertext)
            except expected:
                return True
        return False

    assert _failures("mlkem_768_test", check) == []


def test_encaps_vectors() -> None:
    def check(t: dict[str, Any]) -> bool:
        public = h(t["ek"])
        if t["result"] == "invalid":
            refused = 0
            for call in (PYCA.mlkem768_encapsulate, PYCA.mlkem768_encapsulation_key):
                try:
                    call(public)
                except MalformedKey:
                    refused += 1
            return refused == 2
        shared, ciphertext = PYCA.mlkem768_encapsulate(public)
        prepared = PYCA.mlkem768_encapsulation_key(public)
        shared2, ciphertext2 = prepared.encapsulate()
        return (
            len(shared) == len(shared2) == 32
            and len(ciphertext) == len(ciphertext2) == 1088
            and prepared.public_bytes() == public
        )

    assert _failures("mlkem_768_encaps_test", check) == []


def test_cctv_invalid_modulus_keys_rejected() -> None:
    keys = cctv_lines("ML-KEM-modulus", "ML-KEM-768.txt.gz")
    assert len(keys) > 700 and all(len(k) == 1184 for k in keys)
    for key in keys:
        with pytest.raises(MalformedKey):
            check_mlkem768_public(key)  # our own FIPS 203 §7.2 check ...
        with pytest.raises(MalformedKey):
            PYCA.mlkem768_encapsulate(key)  # ... and the backend's
        with pytest.raises(MalformedKey):
            PYCA.mlkem768_encapsulation_key(key)  # ... once, for a prepared key


def _reduced_by_definition(public: bytes) -> bool:
    """FIPS 203 §7.2 read literally: decode every 12-bit coefficient of t, compare with q."""
    t = public[:1152]
    for i in range(0, 1152, 3):
        low = t[i] | (t[i + 1] & 0x0F) << 8
        high = t[i + 1] >> 4 | t[i + 2] << 4
        if low >= 3329 or high >= 3329:
            return False
    return True


def _encode(coefficients: list[int]) -> bytes:
    out = bytearray()
    for c0, c1 in zip(coefficients[0::2], coefficients[1::2], strict=True):
        out += bytes((c0 & 0xFF, c0 >> 8 | (c1 & 0x0F) << 4, c1 >> 4))
    return bytes(out) + bytes(32)  # rho


def _fast_check_accepts(public: bytes | memoryview) -> bool:
    try:
        check_mlkem768_public(public)  # type: ignore[arg-type]  # views are accepted too
    except MalformedKey:
        return False
    return True


def test_fast_modulus_check_every_position_and_boundary() -> None:
    """Each of the 768 coefficients, alone at q-1 (fine) or at q / 4095 (refused)."""
    base = [3328 - i % 7 for i in range(768)]
    assert _fast_check_accepts(_encode(base))
    for position in range(768):
        for value, ok in ((3328, True), (3329, False), (4095, False), (0, True)):
            coefficients = list(base)
            coefficients[position] = value
            public = _encode(coefficients)
            assert _fast_check_accepts(public) is ok is _reduced_by_definition(public)


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    overrides=st.lists(
        st.tuples(st.integers(0, 767), st.sampled_from([3327, 3328, 3329, 3330, 4094, 4095])),
        max_size=4,
    ),
)
def test_fast_modulus_check_equals_the_definition(
    seed: int, overrides: list[tuple[int, int]]
) -> None:
    rng = random.Random(seed)
    coefficients = [rng.randrange(3329) for _ in range(768)]
    for position, value in overrides:
        coefficients[position] = value
    public = _encode(coefficients)
    assert _fast_check_accepts(public) is _reduced_by_definition(public)
    assert _reduced_by_definition(public) is all(c < 3329 for c in coefficients)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1184, max_size=1184))
def test_fast_modulus_check_on_arbitrary_bytes(public: bytes) -> None:
    assert _fast_check_accepts(public) is _reduced_by_definition(public)
    assert _fast_check_accepts(memoryview(public)) is _reduced_by_definition(public)


def test_roundtrip_and_seeded_generation() -> None:
    seed, public = PYCA.mlkem768_generate()
    assert len(seed) == 64 and len(public) == 1184
    shared, ciphertext = PYCA.mlkem768_encapsulate(public)
    assert PYCA.mlkem768_decapsulate(seed, ciphertext) == shared
    peer, own = PYCA.mlkem768_encapsulation_key(public), PYCA.mlkem768_decapsulation_key(seed)
    assert own.public_bytes() == peer.public_bytes() == public and seed.hex() not in repr(own)
    shared2, ciphertext2 = peer.encapsulate()
    assert own.decapsulate(ciphertext2) == shared2 == PYCA.mlkem768_decapsulate(seed, ciphertext2)
    assert own.decapsulate(ciphertext) == shared and ciphertext2 != ciphertext
    with pytest.raises(MalformedInput):
        own.decapsulate(ciphertext[:-1])
    with pytest.raises(CryptoUsageError):
        PYCA.mlkem768_decapsulation_key(seed[:32])
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
        lambda: nacl.mlkem768_encapsulation_key(public),
        lambda: nacl.mlkem768_decapsulation_key(seed),
    ]
    for call in calls:
        with pytest.raises(UnsupportedPrimitive, match=r"ml-kem-768.*enkrypted-crypto") as info:
            call()
        assert info.value.primitive == "ml-kem-768"
