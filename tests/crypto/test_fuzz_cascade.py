"""Hypothesis fuzz of sealed cascades: every mutation is the one opaque error, delivers nothing,
and the session still opens the next genuine message (digest §6 P6.3, P8.2; STYLE.md §4)."""

from __future__ import annotations

import json
import struct
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peers import connect

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import DecryptionFailed
from enkrypted_crypto.limits import DEFAULT_LIMITS
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_shell.contracts import Delivered, SecureSession

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CASES = {
    "b1-pyca-full": ("pyca", PROFILE_B1, ["Signal", "ML-KEM", "AES"]),
    "b1-pyca-mlkem-aes": (
        "pyca",
        PROFILE_B1,
        ["ML-KEM", "AES"],
    ),  # no ratchet: KEM layer's replay window
    "b1-nacl": ("nacl", PROFILE_B1, ["Signal", "AES"]),
    "v0-pyca-no-scrypt": ("pyca", PROFILE_V0, ["Signal", "ML-KEM"]),
    "v0-nacl-signal": ("nacl", PROFILE_V0, ["Signal"]),
}


@cache
def _pair(case: str) -> tuple[SecureSession, SecureSession]:
    backend, profile, layers = CASES.get(case, ("pyca", PROFILE_V0, ["Signal", "ML-KEM", "AES"]))
    prims = PycaPrimitives() if backend == "pyca" else NaclPrimitives()
    service = CascadeCryptoService(prims)
    return connect(service, service, profiles=[profile], layers=layers)


def _essential(message: bytes) -> object:
    """A v0 document projected on what must be authenticated or checked: everything except
    the fields P5.3 calls informative (timing, top-level timestamp, layer ``metadata``, and the
    ML-KEM layer's timestamp, which its construction does not use)."""
    doc = json.loads(message)
    payload = doc["cascadedPayload"]
    keep = ("algorithm", "version", "timestamp", "inputSize", "outputSize")
    metas = [
        {k: m.get(k) for k in keep if not (k == "timestamp" and m["algorithm"] == "ML-KEM-768")}
        for m in payload["layers"]
    ]
    rest = {k: v for k, v in payload.items() if k not in ("timestamp", "totalProcessingTime")}
    return {**{k: v for k, v in doc.items() if k != "cascadedPayload"}, **rest, "layers": metas}


def _rejects_then_recovers(case: str, mutate) -> None:  # type: ignore[no-untyped-def]
    sender, receiver = _pair(case)
    genuine = sender.seal(b"secret plaintext")
    forged = mutate(genuine)
    if forged == genuine:
        return
    try:
        delivered = receiver.open(forged)
    except DecryptionFailed as exc:
        assert type(exc) is DecryptionFailed and str(exc) == "decryption failed"
        assert receiver.open(genuine) == Delivered(b"secret plaintext")
        return
    # Accepted: only possible if nothing but informative v0 fields changed.
    assert delivered == Delivered(b"secret plaintext")
    assert not forged.startswith(b"\xb1") and _essential(forged) == _essential(genuine)


# ---------------------------------------------------------------------------- byte-level
byte_mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**7), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 10**7), st.just(0)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=64), st.just(0)),
)


def _apply(message: bytes, mutation) -> bytes:  # type: ignore[no-untyped-def]
    kind, arg, bit = mutation
    if kind == "flip":
        pos = arg % len(message)
        return message[:pos] + bytes([message[pos] ^ (1 << bit)]) + message[pos + 1 :]
    if kind == "truncate":
        return message[: arg % len(message)]
    return message + arg


@pytest.mark.parametrize("case", sorted(CASES))
@FUZZ
@given(mutation=byte_mutations)
def test_byte_mutations(case: str, mutation) -> None:  # type: ignore[no-untyped-def]
    _rejects_then_recovers(case, lambda m: _apply(m, mutation))


# ---------------------------------------------------------------------------- b1 structure
def _b1_layers(message: bytes) -> tuple[bytes, list[bytes], bytes]:
    head, offset, entries = message[:10], 10, []
    for _ in range(message[1]):
        (size,) = struct.unpack_from(">H", message, offset + 1)
        entries.append(message[offset : offset + 3 + size])
        offset += 3 + size
    return head, entries, message[offset:]


@FUZZ
@given(op=st.sampled_from(["reverse", "drop-first", "drop-last", "dup", "swap-params"]))
def test_b1_layer_table_mutations(op: str) -> None:
    def mutate(message: bytes) -> bytes:
        head, entries, body = _b1_layers(message)
        if op == "reverse":
            entries.reverse()
        elif op == "drop-first":
            entries.pop(0)
        elif op == "drop-last":
            entries.pop()
        elif op == "dup":
            entries.append(entries[0])
        else:  # the Signal header moved into the AES slot and vice versa
            entries[0], entries[-1] = (
                entries[-1][:1] + entries[0][1:],
                entries[0][:1] + entries[-1][1:],
            )
        count = bytes([len(entries)]) if op != "swap-params" else head[1:2]
        return head[:1] + count + head[2:] + b"".join(entries) + body

    _rejects_then_recovers("b1-pyca-full", mutate)


# ---------------------------------------------------------------------------- v0 structure
def _v0_edit(op: str, index: int, value: int):  # type: ignore[no-untyped-def]
    def mutate(message: bytes) -> bytes:
        doc = json.loads(message)
        payload = doc["cascadedPayload"]
        layers, params = payload["layers"], payload["layerParameters"]
        if op == "swap-params":
            params.reverse()
        elif op == "reorder-layers":
            layers.reverse()
            params.reverse()
        elif op == "drop-layer":
            layers.pop(index % len(layers))
            params.pop(index % len(params))
        elif op == "ciphertext-byte":
            ct = payload["finalCiphertext"]
            ct[index % len(ct)] = (ct[index % len(ct)] + 1 + value % 255) % 256
        elif op == "param-int":
            target = params[index % len(params)]
            key = sorted(target)[value % len(target)]
            if isinstance(target[key], list):
                target[key][0] = (target[key][0] + 1) % 256
            else:
                target[key] = value if target[key] != value else value + 1
        elif op == "timestamp":
            layers[index % len(layers)]["timestamp"] = value
        return json.dumps(doc).encode()

    return mutate


@FUZZ
@given(
    op=st.sampled_from(
        ["swap-params", "reorder-layers", "drop-layer", "ciphertext-byte", "param-int"]
    ),
    index=st.integers(0, 10**6),
    value=st.integers(0, 2**32),
)
def test_v0_structured_mutations(op: str, index: int, value: int) -> None:
    _rejects_then_recovers("v0-pyca-no-scrypt", _v0_edit(op, index, value))


@settings(max_examples=3, deadline=None)
@given(op=st.sampled_from(["timestamp", "ciphertext-byte", "param-int"]))
def test_v0_full_cascade_with_scrypt(op: str) -> None:
    """The AES layer's timestamp is load-bearing (part of its AAD, digest §4.3)."""
    _rejects_then_recovers("v0-pyca-full", _v0_edit(op, 2, 1717000000001))


# ---------------------------------------------------------------------------- replays, oversize
@pytest.mark.parametrize("case", sorted(CASES))
def test_replays_and_reordered_delivery(case: str) -> None:
    sender, receiver = _pair(case)
    first, second = sender.seal(b"one"), sender.seal(b"two")
    assert receiver.open(second) == Delivered(b"two")
    assert receiver.open(first) == Delivered(b"one")  # out of order is fine
    for replay in (first, second):
        with pytest.raises(DecryptionFailed):
            receiver.open(replay)
    assert receiver.open(sender.seal(b"three")) == Delivered(b"three")


def test_oversize_and_garbage_are_the_same_error() -> None:
    _, receiver = _pair("b1-pyca-full")
    for blob in (b"", b"\xb1", bytes(DEFAULT_LIMITS.max_pdu_bytes + 1), b"{}" * 10):
        with pytest.raises(DecryptionFailed):
            receiver.open(blob)


def test_cross_session_and_cross_direction_messages_fail() -> None:
    a, b = _pair("b1-pyca-full")
    c, d = connect(
        *(2 * [CascadeCryptoService(PycaPrimitives())]), layers=["Signal", "ML-KEM", "AES"]
    )
    with pytest.raises(DecryptionFailed):
        d.open(a.seal(b"for b only"))
    with pytest.raises(DecryptionFailed):
        a.open(a.seal(b"reflected"))
    assert b.open(a.seal(b"ok")) == Delivered(b"ok") and d.open(c.seal(b"ok")) == Delivered(b"ok")


@pytest.mark.parametrize("case", ["b1-nacl", "b1-pyca-full", "v0-nacl-signal"])
def test_every_single_bit_flip_is_rejected_or_informative(case: str) -> None:
    """Exhaustive complement to the random fuzz: each bit of one sealed message."""
    sender, receiver = _pair(case)
    genuine = sender.seal(b"secret plaintext")
    for pos in range(len(genuine)):
        for bit in range(8):
            forged = _apply(genuine, ("flip", pos, bit))
            try:
                delivered = receiver.open(forged)
            except DecryptionFailed:
                continue
            assert case.startswith("v0") and delivered == Delivered(b"secret plaintext")
            assert _essential(forged) == _essential(genuine)
            genuine = sender.seal(b"secret plaintext")  # the accepted copy consumed its key
    assert receiver.open(genuine) == Delivered(b"secret plaintext")
