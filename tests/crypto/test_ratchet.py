"""Double Ratchet (Signal spec): in order, out of order, MAX_SKIP, replay, transactions, persistence."""

from __future__ import annotations

import pytest
from conftest import seeded

from enkrypted_crypto.errors import CryptoUsageError, DecryptionFailed, MalformedInput
from enkrypted_crypto.limits import Limits
from enkrypted_crypto.primitives import Primitives
from enkrypted_crypto.ratchet import RatchetSession

AD = b"A" * 64 + b"B" * 64


def _pair(
    prims: Primitives, limits: Limits = Limits(), aead: str = "aes-256-gcm"
) -> tuple[RatchetSession, RatchetSession]:
    sk = prims.random(32)
    spk = prims.random(32)
    alice = RatchetSession.initiator(
        prims,
        sk,
        prims.x25519_public(spk),
        AD,
        aead=aead,
        limits=limits,  # type: ignore[arg-type]
    )
    bob = RatchetSession.responder(prims, sk, spk, AD, aead=aead, limits=limits)  # type: ignore[arg-type]
    return alice, bob


@pytest.mark.parametrize("aead", ["aes-256-gcm", "chacha20-poly1305"])
def test_ping_pong_both_aeads(prims: Primitives, aead: str) -> None:
    alice, bob = _pair(prims, aead=aead)
    assert not bob.can_send
    for i in range(5):
        assert bob.decrypt(alice.encrypt(b"a%d" % i)) == b"a%d" % i
        assert alice.decrypt(bob.encrypt(b"b%d" % i)) == b"b%d" % i


def test_responder_cannot_send_first(pyca: Primitives) -> None:
    _, bob = _pair(pyca)
    with pytest.raises(CryptoUsageError):
        bob.encrypt(b"x")


def test_out_of_order_across_chains(pyca: Primitives) -> None:
    alice, bob = _pair(pyca)
    first = [alice.encrypt(b"1-%d" % i) for i in range(4)]
    assert bob.decrypt(first[3]) == b"1-3"
    alice.decrypt(bob.encrypt(b"reply"))  # DH ratchet step on both sides
    second = [alice.encrypt(b"2-%d" % i) for i in range(3)]
    assert bob.decrypt(second[2]) == b"2-2"
    for i in (0, 2, 1):
        assert bob.decrypt(first[i]) == b"1-%d" % i
    assert bob.decrypt(second[0]) == b"2-0"
    assert bob.decrypt(second[1]) == b"2-1"


def test_replay_is_rejected_and_session_survives(pyca: Primitives) -> None:
    alice, bob = _pair(pyca)
    m0, m1 = alice.encrypt(b"zero"), alice.encrypt(b"one")
    assert bob.decrypt(m1) == b"one"
    assert bob.decrypt(m0) == b"zero"  # skipped key, used once
    for replay in (m0, m1):
        with pytest.raises(DecryptionFailed):
            bob.decrypt(replay)
    assert bob.decrypt(alice.encrypt(b"two")) == b"two"


def test_max_skip_bound(pyca: Primitives) -> None:
    alice, bob = _pair(pyca, Limits(max_skip=10))
    msgs = [alice.encrypt(b"%d" % i) for i in range(13)]
    with pytest.raises(DecryptionFailed):
        bob.decrypt(msgs[12])  # would skip 12 > 10
    assert bob.decrypt(msgs[10]) == b"10"  # 10 skipped: allowed
    assert bob.decrypt(msgs[3]) == b"3"


def test_skipped_key_store_is_capped(pyca: Primitives) -> None:
    alice, bob = _pair(pyca, Limits(max_skip=10, max_skipped_keys=5))
    msgs = [alice.encrypt(b"%d" % i) for i in range(10)]
    assert bob.decrypt(msgs[9]) == b"9"  # 9 skipped, only the newest 5 kept
    with pytest.raises(DecryptionFailed):
        bob.decrypt(msgs[0])
    assert bob.decrypt(msgs[8]) == b"8"


def test_forgery_leaves_state_unchanged(pyca: Primitives) -> None:
    alice, bob = _pair(pyca)
    bob.decrypt(alice.encrypt(b"hello"))
    before = bob.to_bytes()
    genuine = alice.encrypt(b"next")
    forged_header = bytearray(genuine)
    forged_header[5] ^= 1  # different DH key: would trigger a DH ratchet step
    forged_n = bytearray(genuine)
    forged_n[39] = 200  # skip ahead, then fail
    forged_body = bytearray(genuine)
    forged_body[-1] ^= 1
    for forged in (forged_header, forged_n, forged_body, genuine[:50], b""):
        with pytest.raises(DecryptionFailed):
            bob.decrypt(bytes(forged))
        assert bob.to_bytes() == before
    assert bob.decrypt(genuine) == b"next"


def test_extra_aad_is_bound(pyca: Primitives) -> None:
    alice, bob = _pair(pyca)
    message = alice.encrypt(b"x", aad=b"profile-1")
    with pytest.raises(DecryptionFailed):
        bob.decrypt(message, aad=b"profile-2")
    assert bob.decrypt(message, aad=b"profile-1") == b"x"


def test_prepare_without_commit_changes_nothing(pyca: Primitives) -> None:
    alice, bob = _pair(pyca)
    message = alice.encrypt(b"x")
    plaintext, _commit = bob.prepare_decrypt(message)
    assert plaintext == b"x"
    assert bob.decrypt(message) == b"x"  # not consumed until committed


def test_stale_commit_is_refused(pyca: Primitives) -> None:
    alice, bob = _pair(pyca)
    message = alice.encrypt(b"x")
    _, commit = bob.prepare_decrypt(message)
    bob.decrypt(message)
    with pytest.raises(CryptoUsageError):
        commit()


def test_state_round_trip_mid_conversation(prims: Primitives) -> None:
    alice, bob = _pair(prims)
    pending = [alice.encrypt(b"%d" % i) for i in range(3)]
    bob.decrypt(pending[2])
    bob = RatchetSession.from_bytes(prims, bob.to_bytes())
    alice = RatchetSession.from_bytes(prims, alice.to_bytes())
    assert bob.decrypt(pending[0]) == b"0"
    assert alice.decrypt(bob.encrypt(b"back")) == b"back"
    assert bob.decrypt(alice.encrypt(b"more")) == b"more"


@pytest.mark.parametrize("cut", [0, 4, 20, 200])
def test_corrupt_state_is_refused(pyca: Primitives, cut: int) -> None:
    alice, _ = _pair(pyca)
    blob = alice.to_bytes()
    with pytest.raises(MalformedInput):
        RatchetSession.from_bytes(pyca, blob[:cut])


def test_same_seed_same_wire_bytes_across_backends() -> None:
    transcripts = []
    for backend in ("pyca", "nacl"):
        prims = seeded(backend, b"ratchet-vector")
        alice, bob = _pair(prims)
        out = [alice.encrypt(b"hello"), alice.encrypt(b"world")]
        bob.decrypt(out[1])
        out.append(bob.encrypt(b"back"))
        transcripts.append(out)
    assert transcripts[0] == transcripts[1]
