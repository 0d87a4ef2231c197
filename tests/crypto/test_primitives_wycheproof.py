"""Both backends against Wycheproof: AEADs, X25519, Ed25519, HKDF-SHA256, HMAC-SHA256.

A backend that does not declare a capability must raise ``UnsupportedPrimitive`` instead.
Each test loops over a whole vector file and reports every failing tcId at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from enkrypted_crypto.errors import (
    CryptoUsageError,
    DecryptionFailed,
    MalformedKey,
    UnsupportedPrimitive,
)
from enkrypted_crypto.primitives import Primitives
from tests.vectors import wycheproof_cases

h = bytes.fromhex
Case = tuple[dict[str, Any], dict[str, Any]]


def _run(name: str, check: Callable[[dict[str, Any], dict[str, Any]], bool]) -> int:
    failures, count = [], 0
    for group, test in wycheproof_cases(name):
        count += 1
        if not check(group, test):
            failures.append(test["tcId"])
    assert not failures, f"{name}: failing tcIds {failures}"
    return count


def _requires(prims: Primitives, capability: str, call: Callable[[], object]) -> bool:
    """True if the backend declares ``capability``; otherwise assert the call is refused."""
    if capability in prims.capabilities:
        return True
    with pytest.raises(UnsupportedPrimitive, match=capability):
        call()
    return False


# ------------------------------------------------------------------------------------------ AEAD
def _refused(call: Callable[[], bytes], error: type[Exception]) -> bool:
    try:
        call()
    except error:
        return True
    return False


AEAD_FILES = [
    ("aes-256-gcm", "aes_gcm_test", 12),
    ("chacha20-poly1305", "chacha20_poly1305_test", 12),
    ("xchacha20-poly1305", "xchacha20_poly1305_test", 24),
]


@pytest.mark.parametrize(("alg", "name", "nonce_size"), AEAD_FILES)
def test_aead_wycheproof(prims: Primitives, alg: Any, name: str, nonce_size: int) -> None:
    if not _requires(
        prims, alg, lambda: prims.aead_seal(alg, bytes(32), bytes(nonce_size), b"", b"")
    ):
        return
    checked = 0

    def check(group: dict[str, Any], t: dict[str, Any]) -> bool:
        nonlocal checked
        if group["keySize"] != 256 or group["tagSize"] != 128:
            return True  # only AES-256 and full tags are part of our interface
        key, iv, aad, msg = h(t["key"]), h(t["iv"]), h(t["aad"]), h(t["msg"])
        sealed = h(t["ct"]) + h(t["tag"])
        prepared = prims.aead_key(alg, key)  # the same checks through a prepared key
        if len(iv) != nonce_size:  # other nonce sizes are refused as local misuse
            calls: list[Callable[[], bytes]] = [
                lambda: prims.aead_open(alg, key, iv, sealed, aad),
                lambda: prepared.open(iv, sealed, aad),
                lambda: prepared.seal(iv, msg, aad),
            ]
            return all(_refused(call, CryptoUsageError) for call in calls)
        checked += 1
        openers: list[Callable[[], bytes]] = [
            lambda: prims.aead_open(alg, key, iv, sealed, aad),
            lambda: prepared.open(iv, memoryview(sealed), aad),
        ]
        if t["result"] == "invalid":
            return all(_refused(opener, DecryptionFailed) for opener in openers)
        return (
            all(opener() == msg for opener in openers)
            and prims.aead_seal(alg, key, iv, msg, aad) == sealed
            and prepared.seal(iv, memoryview(msg), aad) == sealed
        )

    _run(name, check)
    assert checked > 30


# ---------------------------------------------------------------------------------------- X25519
def test_x25519_wycheproof(prims: Primitives) -> None:
    def check(group: dict[str, Any], t: dict[str, Any]) -> bool:
        private, public, shared = h(t["private"]), h(t["public"]), h(t["shared"])
        if shared == bytes(32):  # low-order peer key: RFC 7748 §6.1 check, we refuse it
            try:
                prims.x25519(private, public)
            except MalformedKey:
                return True
            return False
        return prims.x25519(private, public) == shared  # "acceptable" cases must agree too

    assert _run("x25519_test", check) > 500


def test_x25519_public_and_size_checks(prims: Primitives) -> None:
    # RFC 7748 §6.1 Alice
    private = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    assert prims.x25519_public(private) == h(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    with pytest.raises(MalformedKey):
        prims.x25519(private, bytes(31))
    with pytest.raises(CryptoUsageError):
        prims.x25519(private[:31], bytes(32))


# --------------------------------------------------------------------------------------- Ed25519
def test_ed25519_wycheproof(prims: Primitives) -> None:
    def check(group: dict[str, Any], t: dict[str, Any]) -> bool:
        public = h(group["publicKey"]["pk"])
        ok = prims.ed25519_verify(public, h(t["msg"]), h(t["sig"]))
        return bool(ok == (t["result"] == "valid"))

    assert _run("ed25519_test", check) > 100


def test_ed25519_rfc8032_sign(prims: Primitives) -> None:
    # RFC 8032 §7.1 TEST 1 (empty message)
    seed = h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = h(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc6"
        "1e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert prims.ed25519_public(seed) == public
    assert prims.ed25519_sign(seed, b"") == sig
    assert prims.ed25519_verify(public, b"", sig)
    assert not prims.ed25519_verify(public, b"x", sig)
    assert not prims.ed25519_verify(public[:31], b"", sig)


# ------------------------------------------------------------------------------------ HKDF, HMAC
def test_hkdf_sha256_wycheproof(prims: Primitives) -> None:
    def check(group: dict[str, Any], t: dict[str, Any]) -> bool:
        args = (h(t["ikm"]), h(t["salt"]), h(t["info"]), t["size"])
        if t["result"] == "invalid":  # output longer than 255 * HashLen
            try:
                prims.hkdf_sha256(*args)
            except CryptoUsageError:
                return True
            return False
        return prims.hkdf_sha256(*args) == h(t["okm"])

    assert _run("hkdf_sha256_test", check) > 80


def test_hmac_sha256_wycheproof(prims: Primitives) -> None:
    def check(group: dict[str, Any], t: dict[str, Any]) -> bool:
        tag = prims.hmac_sha256(h(t["key"]), h(t["msg"]))[: group["tagSize"] // 8]
        return bool((tag == h(t["tag"])) == (t["result"] == "valid"))

    assert _run("hmac_sha256_test", check) > 150
