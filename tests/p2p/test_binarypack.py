"""BinaryPack and ``__peerData`` chunking, pinned byte for byte against node's
``peerjs-js-binarypack`` 2.1.0 (tools/node/node_modules), plus the decoder's bounds."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enkrypted_p2p.errors import P2PUsageError, RemoteInputError
from enkrypted_p2p.signaling import (
    CHUNKED_MTU,
    BinaryPackError,
    CloseRequested,
    DataCodec,
    DataMessage,
    ReassemblyLimits,
    Serialization,
    pack,
    unpack,
)
from enkrypted_p2p.signaling._binarypack import MAX_DEPTH, MAX_OBJECTS
from tests.p2p.servers import NODE_MODULES, require_node_modules

ORACLE = Path(__file__).parent / "js" / "binarypack_oracle.cjs"

VALUES: list[Any] = [
    0, 1, 127, 128, 255, 256, -1, -32, -33, -128, -129, 65535, 65536, -32768, -32769,
    2**32 - 1, 2**32, -(2**31), -(2**31) - 1, 2**53 - 1, -(2**53 - 1),
    1.5, -2.25, 3.141592653589793, 1e-7, 123456.789, -0.1,
    "", "a", "x" * 15, "x" * 16, "é€😀", "y" * 70000,
    b"", b"\x00" * 15, bytes(range(16)), bytes(70000),
    None, True, False,
    [], [1, "a", None], list(range(16)), [[1, [2, [3]]], {"k": b"v"}],
    {}, {"a": 1}, {f"k{i:02}": i for i in range(16)}, {"nested": {"list": [1.5, "s", b"b"]}},
]
CHUNKED: list[Any] = [
    {"blob": bytes(range(256)) * 160, "s": "x" * 20000},  # ~61 KB: 4 chunks
    "z" * 16300,  # packs to 16305 bytes: just over the MTU
    "w" * 16290,  # packs to 16295 bytes: not chunked
]


def _desc(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bin": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [_desc(v) for v in value]
    if isinstance(value, dict):
        return {k: _desc(v) for k, v in value.items()}
    return value


def _js_view(value: Any) -> Any:
    """What node's unpacker yields: it reads int64 through a uint64 double, so negative int64
    values lose precision there (a JavaScript limit, not a wire difference)."""
    if isinstance(value, int) and not isinstance(value, bool) and value < -(2**31):
        return int(float(value + 2**64) - 2**64)
    return _desc(value)


def _oracle(request: dict[str, Any]) -> dict[str, Any]:
    node = require_node_modules()
    proc = subprocess.run([str(node), str(ORACLE), str(NODE_MODULES)], input=json.dumps(request),
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_pack_and_unpack_match_node_byte_for_byte() -> None:
    ours = [pack(v).hex() for v in VALUES]
    result = _oracle({"pack": [_desc(v) for v in VALUES], "unpack": ours, "chunk": []})
    for value, mine, theirs in zip(VALUES, ours, result["pack"], strict=True):
        assert mine == theirs, f"pack({value!r:.60})"
    for value, decoded in zip(VALUES, result["unpack"], strict=True):
        assert decoded == _js_view(value), f"node unpack of our {value!r:.60}"
    for value, theirs in zip(VALUES, result["pack"], strict=True):
        assert unpack(bytes.fromhex(theirs)) == value


def test_chunking_matches_peerjs_and_reassembles() -> None:
    result = _oracle({"pack": [], "unpack": [], "chunk": [_desc(v) for v in CHUNKED]})
    for value, theirs in zip(CHUNKED, result["chunk"], strict=True):
        frames = DataCodec(Serialization.BINARY).encode(value)
        assert [bytes(f).hex() for f in frames if isinstance(f, bytes)] == theirs
        receiver = DataCodec(Serialization.BINARY)
        outs = [receiver.decode(bytes.fromhex(h), now=0.0) for h in reversed(theirs)]  # any order
        assert outs[-1] == DataMessage(value) and all(o is None for o in outs[:-1])
        assert receiver.pending == 0 and receiver.pending_bytes == 0
    first = bytes.fromhex(result["chunk"][0][0])
    assert len(first) == CHUNKED_MTU + 31  # a full chunk is 16,331 bytes on the wire


@settings(max_examples=200, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary()
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    lambda inner: st.lists(inner, max_size=20) | st.dictionaries(st.text(), inner, max_size=20),
    max_leaves=50))
def test_round_trip(value: Any) -> None:
    assert unpack(pack(value)) == value


@pytest.mark.parametrize("data", [
    b"", b"\xc4", b"\xd9\x00\x00\x00\x05ab", b"\xdd\xff\xff\xff\xff", b"\x91" * 100,
    b"\x01\x02", b"\xb2\xff\xfe", b"\x81\x90\x01", b"\xde\x00\x02\xa1x",
])
def test_decoder_refuses_malformed_input(data: bytes) -> None:
    with pytest.raises(BinaryPackError):
        unpack(data)


def test_encoder_refuses_what_javascript_cannot_carry() -> None:
    for value in (float("nan"), float("inf"), 2**64, -(2**63) - 1, {1: "x"}, object(), "\ud800"):
        with pytest.raises(P2PUsageError):
            pack(value)
    assert pack(2.0) == pack(2)  # JavaScript has one number type


def test_reassembly_is_bounded() -> None:
    limits = ReassemblyLimits(max_pending=2, max_message_bytes=40_000, max_total_bytes=50_000,
                              timeout=5.0)
    codec = DataCodec(Serialization.BINARY, limits)

    def piece(key: int, n: int, total: int, size: int = 100) -> bytes:
        return pack({"__peerData": key, "n": n, "data": bytes(size), "total": total})

    assert codec.decode(piece(1, 0, 2), now=0.0) is None
    assert codec.decode(piece(2, 0, 2), now=0.0) is None
    with pytest.raises(RemoteInputError, match="too many"):
        codec.decode(piece(3, 0, 2), now=0.0)
    with pytest.raises(BinaryPackError):  # duplicate index
        codec.decode(piece(1, 0, 2), now=0.0)
    with pytest.raises(BinaryPackError):  # total disagrees
        codec.decode(piece(1, 1, 3), now=0.0)
    with pytest.raises(BinaryPackError):  # more chunks than the size limit allows
        codec.decode(piece(4, 0, 10_000), now=0.0)
    assert codec.decode(pack("ordinary"), now=10.0) == DataMessage("ordinary")
    assert codec.pending == 0 and codec.pending_bytes == 0  # both partials timed out
    big = DataCodec(Serialization.BINARY, limits)
    for n in range(2):
        assert big.decode(piece(7, n, 4, size=16300), now=0.0) is None
    with pytest.raises(RemoteInputError, match="limits"):
        big.decode(piece(7, 2, 4, size=16300), now=0.0)
    assert big.pending_bytes == 0
    nested = pack({"__peerData": 9, "n": 0, "data": piece(1, 0, 1), "total": 1})
    with pytest.raises(BinaryPackError, match="itself a chunk"):
        big.decode(nested, now=0.0)


def test_json_raw_and_close_conventions() -> None:
    json_codec = DataCodec(Serialization.JSON)
    frames = json_codec.encode({"msg": "héllo", "n": [1, 2]})
    assert frames == ['{"msg":"héllo","n":[1,2]}'.encode()]  # bytes: a binary frame
    assert json_codec.decode(frames[0], now=0.0) == DataMessage({"msg": "héllo", "n": [1, 2]})
    with pytest.raises(P2PUsageError, match="too big"):
        json_codec.encode("x" * CHUNKED_MTU)
    assert json_codec.decode(json_codec.close_message(), now=0.0) == CloseRequested()
    binary = DataCodec(Serialization.DEFAULT)
    assert binary.decode(binary.close_message(), now=0.0) == CloseRequested()
    raw = DataCodec(Serialization.RAW)
    assert raw.encode(b"\x00pdu") == [b"\x00pdu"] and raw.decode("text", now=0.0) == DataMessage("text")
    with pytest.raises(P2PUsageError):
        raw.encode({"not": "bytes"})


# ---------------------------------------------------------------- decoding is bounded in memory
def test_array_of_empty_arrays_is_refused_at_its_header_in_bounded_memory() -> None:
    """An empty array is one input byte but ~64 bytes decoded: a count past the object budget is
    refused before any element is built (quickly, with memory a small multiple of the input)."""
    import struct
    import time
    import tracemalloc

    count = 2_000_000
    frame = b"\xdd" + struct.pack(">I", count) + b"\x90" * count
    tracemalloc.start()
    try:
        started = time.perf_counter()
        with pytest.raises(RemoteInputError, match="decoded values"):
            unpack(frame)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 2 * len(frame)  # the copy of the input, nothing per element


def test_object_budget_counts_every_value_including_nested_ones() -> None:
    assert unpack(pack([[0] * 9] * 9), max_objects=91) == [[0] * 9] * 9  # 1 + 9 + 81
    with pytest.raises(BinaryPackError, match="decoded values"):
        unpack(pack([[0] * 9] * 9), max_objects=90)
    assert unpack(pack({"a": [1, 2]}), max_objects=5) == {"a": [1, 2]}  # map, key, list, 1, 2
    with pytest.raises(BinaryPackError, match="decoded values"):
        unpack(pack({"a": [1, 2]}), max_objects=4)
    assert MAX_OBJECTS == 65_536
    unpack(pack(list(range(MAX_OBJECTS - 1))))  # a full budget is fine
    with pytest.raises(BinaryPackError, match="decoded values"):
        unpack(pack(list(range(MAX_OBJECTS))))


def test_many_small_containers_exhaust_the_budget_not_the_memory() -> None:
    """Nested rather than flat: 300 arrays of 300 empty arrays each (90,301 values)."""
    inner = b"\xdc" + (300).to_bytes(2, "big") + b"\x90" * 300
    frame = b"\xdc" + (300).to_bytes(2, "big") + inner * 300
    with pytest.raises(BinaryPackError, match="decoded values"):
        unpack(frame)


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    unpack(b"\x91" * MAX_DEPTH + b"\x90")
    with pytest.raises(BinaryPackError, match="nested deeper"):
        unpack(b"\x91" * (MAX_DEPTH + 1) + b"\x90")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\x90", b"\x91", b"\x92", b"\x9f", b"\x80", b"\x81", b"\x8f",
                                 b"\xdc\xff\xff", b"\xdd\x00\x01\x00\x00", b"\xde\x00\x10",
                                 b"\xa1x", b"\x01", b"\xc0"]),
                max_size=400),
       st.integers(1, 200))
def test_fuzzed_nested_containers_decode_within_the_budget_or_are_refused(
        parts: list[bytes], budget: int) -> None:
    """Any container soup either decodes to at most ``budget`` values or raises BinaryPackError."""
    data = b"".join(parts)
    try:
        value = unpack(data, max_objects=budget)
    except BinaryPackError:
        return
    assert _count_values(value) <= budget
    assert unpack(pack(value)) == value


def _count_values(value: Any) -> int:
    if isinstance(value, list):
        return 1 + sum(_count_values(item) for item in value)
    if isinstance(value, dict):
        return 1 + sum(1 + _count_values(item) for item in value.values())
    return 1
