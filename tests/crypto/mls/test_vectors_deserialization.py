"""RFC 9420 vectors: deserialization.json (§2.1.2 variable-size vector headers)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls._codec import Reader, encode_varint


def _check(e: dict[str, Any]) -> None:
    header = h(e["vlbytes_header"])
    reader = Reader(header)
    assert reader.varint() == e["length"]
    assert reader.done()
    assert encode_varint(e["length"]) == header


def test_deserialization_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "deserialization", _check, expected_run=14)


@pytest.mark.parametrize(
    "data",
    [b"\xc0", b"\x40\x01", b"\x80\x00\x00\x01", b"\x40", b"\x05abc"],
    ids=["reserved-prefix", "non-minimal-2", "non-minimal-4", "truncated-header", "truncated-body"],
)
def test_malformed_vector_headers_rejected(data: bytes) -> None:
    with pytest.raises(MalformedInput):
        Reader(data).opaque()


def test_nesting_depth_bounded() -> None:
    data = b""
    for _ in range(40):
        data = encode_varint(len(data)) + data
    reader = Reader(data)
    with pytest.raises(MalformedInput, match="nested"):
        for _ in range(40):
            reader = reader.sub()
