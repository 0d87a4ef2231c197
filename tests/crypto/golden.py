"""Mock cascade layers of the spec's golden vectors (digest §11, ``golden-vectors.fixtures.js``).

Layer *i* (1-based) appends the byte *i* on encrypt and strips the last byte on decrypt;
``version "1.0.0-golden"``, ``parameters = {goldenTag: i}``, timestamp 1717000000000.
"""

from __future__ import annotations

from collections.abc import Mapping

from enkrypted_crypto.cascade import NO_COMMIT, Commit
from enkrypted_crypto.errors import DecryptionFailed, MalformedInput

GOLDEN_TIMESTAMP = 1717000000000


class GoldenLayer:
    version = "1.0.0-golden"

    def __init__(self, name: str, index: int) -> None:
        self.name = name
        self.algorithm = name
        self.index = index

    def seal(self, data: bytes, now_ms: int) -> tuple[bytes, object, Commit]:
        return data + bytes([self.index]), {"goldenTag": self.index}, NO_COMMIT

    def open(self, data: bytes, parameters: object, timestamp_ms: int) -> tuple[bytes, Commit]:
        if parameters != {"goldenTag": self.index} or not data or data[-1] != self.index:
            raise DecryptionFailed()
        return data[:-1], NO_COMMIT

    def params_to_v0(self, parameters: object) -> dict[str, object]:
        assert isinstance(parameters, dict)
        return dict(parameters)

    def metadata_to_v0(self, parameters: object) -> dict[str, object]:
        return {}

    def params_from_v0(
        self, parameters: Mapping[str, object], metadata: Mapping[str, object]
    ) -> object:
        if set(parameters) != {"goldenTag"}:
            raise MalformedInput("golden parameters")
        return dict(parameters)

    def params_to_bytes(self, parameters: object) -> bytes:
        return bytes([self.index])

    def params_from_bytes(self, data: bytes) -> object:
        return {"goldenTag": data[0]} if len(data) == 1 else {}


def golden_layers(*names: str) -> list[GoldenLayer]:
    return [GoldenLayer(name, i) for i, name in enumerate(names, start=1)]
