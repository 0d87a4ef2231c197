"""Wire profiles: Profile-v0 JSON (golden V1-V3, V7) and the binary Profile-b1 frame."""

from __future__ import annotations

import json
import struct

import pytest
from golden import GOLDEN_TIMESTAMP, golden_layers
from peers import connect

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.cascade import CascadeManager
from enkrypted_crypto.errors import CryptoUsageError, MalformedInput
from enkrypted_crypto.layers.aesgcm import v0_aad
from enkrypted_crypto.limits import DEFAULT_LIMITS, Limits
from enkrypted_crypto.profiles import (
    PROFILE_B1,
    PROFILE_V0,
    PROFILES,
    B1Codec,
    V0Codec,
    chunk_count,
    codec_for,
    split_chunks,
)
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_shell.contracts import Delivered, WireLimits

V3 = {
    "encrypted": True,
    "cascaded": True,
    "cascadedPayload": {
        "finalCiphertext": [72, 105, 1, 2, 3],
        "layerParameters": [{}],
        "layers": [{"algorithm": "MLS", "version": "1.0.0-golden"}],
        "originalSize": 2,
        "finalSize": 5,
        "timestamp": 1717000000000,
    },
}


def _v1():  # type: ignore[no-untyped-def]
    layers = golden_layers("MockCipher1", "MockCipher2", "MockCipher3")
    manager = CascadeManager(layers)
    return layers, manager, manager.seal(b"Hi", GOLDEN_TIMESTAMP)


def test_v3_encrypted_message_shape() -> None:
    """V3 pins the shape: flags, field names and JSON types (it pairs V1 bytes with 1 layer)."""
    layers, _, sealed = _v1()
    ours = V0Codec().encrypted_message(sealed, layers)
    assert set(V3) <= set(ours) and ours["encrypted"] is True and ours["cascaded"] is True
    payload, golden = ours["cascadedPayload"], V3["cascadedPayload"]
    assert isinstance(payload, dict) and isinstance(golden, dict)
    assert set(golden) <= set(payload)
    assert payload["finalCiphertext"] == golden["finalCiphertext"]  # V1 bytes as integer array
    for key in ("originalSize", "finalSize", "timestamp"):
        assert payload[key] == golden[key]
    assert payload["totalProcessingTime"] == 0
    assert payload["layerParameters"] == [{"goldenTag": 1}, {"goldenTag": 2}, {"goldenTag": 3}]
    first = payload["layers"][0]
    assert first == {
        "algorithm": "MockCipher1",
        "version": "1.0.0-golden",
        "timestamp": 1717000000000,
        "inputSize": 2,
        "outputSize": 3,
        "processingTime": 0,
    }


def test_v3_wire_is_compact_utf8_json_and_round_trips() -> None:
    layers, manager, sealed = _v1()
    wire = V0Codec().encode(sealed, layers)
    assert wire.startswith(b'{"encrypted":true,"cascaded":true,"cascadedPayload":{')
    assert b'"finalCiphertext":[72,105,1,2,3]' in wire
    assert manager.open(V0Codec().decode(wire, layers)) == b"Hi"


def test_v3_document_itself_decodes_with_one_layer() -> None:
    layers = golden_layers("MLS")
    doc = json.loads(json.dumps(V3))
    doc["cascadedPayload"]["layers"][0].update(timestamp=1, inputSize=2, outputSize=3)
    doc["cascadedPayload"]["layerParameters"] = [{"goldenTag": 1}]
    sealed = V0Codec().decode(json.dumps(doc).encode(), layers)
    assert sealed.final_ciphertext == bytes([72, 105, 1, 2, 3])
    assert sealed.original_size == 2


def test_v7_chunk_count_for_9000_bytes() -> None:
    assert chunk_count(9000) == 2
    chunks = split_chunks(bytes(9000))
    assert [len(c) for c in chunks] == [8192, 808]
    assert chunk_count(8192) == 1 and chunk_count(0) == 1
    with pytest.raises(CryptoUsageError):
        split_chunks(bytes(10), Limits(WireLimits(chunk_bytes=1, max_chunks_per_message=4)))


def test_v0_aes_aad_is_js_json_stringify() -> None:
    """Digest §4.3/§14: AAD = JSON.stringify({protocol, context, timestamp, encoding})."""
    assert v0_aad(GOLDEN_TIMESTAMP) == (
        b'{"protocol":"AES-GCM-256-v2.0.0","context":"cascading-cipher-encrypt",'
        b'"timestamp":1717000000000,"encoding":"binary"}'
    )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("cascadedPayload"),
        lambda d: d.update(encrypted=False),
        lambda d: d.update(chunked=True),
        lambda d: d["cascadedPayload"].update(finalCiphertext=[72, 256]),
        lambda d: d["cascadedPayload"].update(finalCiphertext=[72, "a"]),
        lambda d: d["cascadedPayload"].update(finalSize=99),
        lambda d: d["cascadedPayload"].update(originalSize=-1),
        lambda d: d["cascadedPayload"]["layers"].pop(),
        lambda d: d["cascadedPayload"]["layers"][0].update(algorithm="AES"),
        lambda d: d["cascadedPayload"]["layers"][0].update(timestamp="now"),
        lambda d: d["cascadedPayload"].update(layerParameters={}),
    ],
)
def test_v0_decoder_refuses_malformed_documents(mutate) -> None:  # type: ignore[no-untyped-def]
    layers, _, sealed = _v1()
    doc = V0Codec().encrypted_message(sealed, layers)
    mutate(doc)
    with pytest.raises(MalformedInput):
        V0Codec().decode(json.dumps(doc).encode(), layers)


@pytest.mark.parametrize("blob", [b"", b"{", b"[]", b'"x"', b"[" * 100000, b"\xff\xfe"])
def test_v0_decoder_refuses_non_documents(blob: bytes) -> None:
    with pytest.raises(MalformedInput):
        V0Codec().decode(blob, golden_layers("A"))


def test_oversize_pdus_are_refused_before_parsing() -> None:
    big = b" " * (DEFAULT_LIMITS.max_pdu_bytes + 1)
    for codec in (V0Codec(), B1Codec()):
        with pytest.raises(MalformedInput, match="16 MiB"):
            codec.decode(big, golden_layers("A"))


def test_b1_frame_layout() -> None:
    layers = golden_layers("Signal", "ML-KEM", "AES")
    sealed = CascadeManager(layers).seal(b"Hi", GOLDEN_TIMESTAMP)
    wire = B1Codec().encode(sealed, layers)
    head = struct.pack(">BBQ", 0xB1, 3, GOLDEN_TIMESTAMP)
    table = bytes([2, 0, 1, 1, 3, 0, 1, 2, 4, 0, 1, 3])
    assert wire == head + table + b"Hi\x01\x02\x03"
    decoded = B1Codec().decode(wire, layers)
    assert decoded.final_ciphertext == b"Hi\x01\x02\x03"
    assert decoded.timestamp_ms == GOLDEN_TIMESTAMP


def test_b1_decoding_copies_no_ciphertext() -> None:
    """The outer layer reads a view into the received frame (1 MiB messages: no extra copy)."""
    layers = golden_layers("Signal", "ML-KEM", "AES")
    wire = B1Codec().encode(CascadeManager(layers).seal(b"x" * 4096, GOLDEN_TIMESTAMP), layers)
    decoded = B1Codec().decode(wire, layers)
    assert isinstance(decoded.final_ciphertext, memoryview)
    assert decoded.final_ciphertext.obj is wire and bytes(decoded.final_ciphertext) == wire[22:]
    assert CascadeManager(layers).open(decoded) == b"x" * 4096


def test_b1_sessions_open_frames_from_any_buffer() -> None:
    service = CascadeCryptoService(PycaPrimitives())
    a, b = connect(service, service, profiles=[PROFILE_B1], layers=["Signal", "ML-KEM", "AES"])
    for kind in (bytes, bytearray, memoryview):
        wire = a.seal(b"frame")
        assert len(wire) == 5 + 127  # docs/protocol.md §3.2
        opened = b.open(kind(wire))  # type: ignore[arg-type]
        assert opened == Delivered(b"frame") and type(opened.plaintext) is bytes  # type: ignore[union-attr]


@pytest.mark.parametrize("cut", [0, 1, 9, 10, 12, 13])
def test_b1_truncated_frames_are_refused(cut: int) -> None:
    layers = golden_layers("Signal", "ML-KEM", "AES")
    wire = B1Codec().encode(CascadeManager(layers).seal(b"", 0), layers)
    with pytest.raises(MalformedInput):
        B1Codec().decode(wire[:cut], layers)


def test_b1_wrong_version_count_or_ids_are_refused() -> None:
    layers = golden_layers("Signal", "AES")
    wire = bytearray(B1Codec().encode(CascadeManager(layers).seal(b"x", 0), layers))
    for index, value in ((0, 0xB2), (1, 3), (10, 3)):
        bad = bytearray(wire)
        bad[index] = value
        with pytest.raises(MalformedInput):
            B1Codec().decode(bytes(bad), layers)


def test_profile_registry() -> None:
    assert PROFILES == (PROFILE_B1, PROFILE_V0)
    assert codec_for(PROFILE_V0).name == PROFILE_V0
    assert codec_for(PROFILE_B1).name == PROFILE_B1
    with pytest.raises(CryptoUsageError):
        codec_for("EnkryptedChat-Profile-v2-binary")
