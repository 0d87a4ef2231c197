"""Cascade manager: order, golden vectors V1/V2, one opaque error, transactions, layer config."""

from __future__ import annotations

import pytest
from golden import GOLDEN_TIMESTAMP, GoldenLayer, golden_layers

from enkrypted_crypto.cascade import (
    DEFAULT_LAYERS,
    CascadeManager,
    LayerRecord,
    LayerUnavailable,
    SealedCascade,
    validate_layer_names,
)
from enkrypted_crypto.errors import CryptoUsageError, DecryptionFailed
from enkrypted_crypto.session_layers import DEFAULT_SPECS, LayerRegistry, LayerSpec, SessionSecrets


def test_v1_mock_cascade_three_layers() -> None:
    """V1: plaintext 4869 ("Hi") -> finalCiphertext 4869010203."""
    manager = CascadeManager(golden_layers("MockCipher1", "MockCipher2", "MockCipher3"))
    sealed = manager.seal(bytes.fromhex("4869"), GOLDEN_TIMESTAMP)
    assert sealed.final_ciphertext.hex() == "4869010203"
    assert [r.name for r in sealed.records] == ["MockCipher1", "MockCipher2", "MockCipher3"]
    assert [(r.input_size, r.output_size) for r in sealed.records] == [(2, 3), (3, 4), (4, 5)]
    assert manager.open(sealed) == b"Hi"


def test_v2_profile_order_four_layers() -> None:
    """V2: MLS -> Signal -> ML-KEM -> AES mock cascade, 0a141e28 -> 0a141e2801020304."""
    manager = CascadeManager(golden_layers("MLS", "Signal", "ML-KEM", "AES"))
    sealed = manager.seal(bytes.fromhex("0a141e28"), GOLDEN_TIMESTAMP)
    assert sealed.final_ciphertext.hex() == "0a141e2801020304"
    assert manager.open(sealed) == bytes.fromhex("0a141e28")


def test_decrypt_reverses_order() -> None:
    manager = CascadeManager(golden_layers("A1", "A2"))
    sealed = manager.seal(b"x", 0)
    swapped = SealedCascade(b"x\x02\x01", sealed.records, 1, 0)
    with pytest.raises(DecryptionFailed):
        manager.open(swapped)


@pytest.mark.parametrize("mutation", ["drop", "reorder", "rename", "params"])
def test_layer_list_mismatch_is_one_opaque_error(mutation: str) -> None:
    manager = CascadeManager(golden_layers("MLS", "Signal", "ML-KEM", "AES"))
    sealed = manager.seal(b"abc", 0)
    records = list(sealed.records)
    if mutation == "drop":
        records.pop()
    elif mutation == "reorder":
        records.reverse()
    elif mutation == "rename":
        records[0] = LayerRecord("Other", records[0].parameters, 0, 3, 4)
    else:
        records[1], records[2] = (
            LayerRecord("Signal", records[2].parameters, 0, 4, 5),
            LayerRecord("ML-KEM", records[1].parameters, 0, 5, 6),
        )
    with pytest.raises(DecryptionFailed) as info:
        manager.open(SealedCascade(sealed.final_ciphertext, tuple(records), 3, 0))
    assert str(info.value) == "decryption failed"


class _CountingLayer(GoldenLayer):
    """A stateful layer: counts commits, so tests can see that failures commit nothing."""

    def __init__(self, name: str, index: int) -> None:
        super().__init__(name, index)
        self.commits = 0

    def _commit(self) -> None:
        self.commits += 1

    def seal(self, data: bytes, now_ms: int):  # type: ignore[no-untyped-def]
        out, params, _ = super().seal(data, now_ms)
        return out, params, self._commit

    def open(self, data: bytes, parameters: object, timestamp_ms: int):  # type: ignore[no-untyped-def]
        out, _ = super().open(data, parameters, timestamp_ms)
        return out, self._commit


def test_failure_in_inner_layer_commits_nothing() -> None:
    outer_state = _CountingLayer("Signal", 1)
    manager = CascadeManager([GoldenLayer("MLS", 2), outer_state])
    # Signal is outer here only to make it decrypt first; the inner MLS layer then fails.
    sealed = manager.seal(b"m", 0)
    assert outer_state.commits == 1
    broken = SealedCascade(b"m\x09\x01", sealed.records, 1, 0)
    with pytest.raises(DecryptionFailed):
        manager.open(broken)
    assert outer_state.commits == 1  # the outer layer opened, but did not commit
    manager.open(sealed)
    assert outer_state.commits == 2


def test_duplicates_and_empty_are_refused() -> None:
    with pytest.raises(CryptoUsageError):
        CascadeManager([GoldenLayer("AES", 1), GoldenLayer("AES", 2)])
    with pytest.raises(CryptoUsageError):
        CascadeManager([])


def test_layer_names_from_configuration() -> None:
    available = ("Signal", "ML-KEM", "AES")
    assert DEFAULT_LAYERS == ("MLS", "Signal", "ML-KEM", "AES")  # the product's cipherLayers
    assert validate_layer_names(["Signal", "ML-KEM", "AES"], available) == available
    with pytest.raises(LayerUnavailable, match="MLS layer not available in this version"):
        validate_layer_names(DEFAULT_LAYERS, available)
    for bad in ([], ["Signal", "Signal"], ["AES", "Signal"], ["DH-AES-GCM"], ["Signal", "MLS"]):
        with pytest.raises(CryptoUsageError):
            validate_layer_names(bad, available)


def test_registry_serves_mls_and_a_registry_without_it_refuses_it() -> None:
    assert LayerRegistry().names == ("MLS", "Signal", "ML-KEM", "AES")
    registry = LayerRegistry([s for s in DEFAULT_SPECS if s.name != "MLS"])
    assert registry.names == ("Signal", "ML-KEM", "AES")
    with pytest.raises(LayerUnavailable, match="MLS layer not available"):
        registry.build(["MLS", "AES"], None, "x", SessionSecrets(True, "s", b""))  # type: ignore[arg-type]

    def mls_stub(prims, profile, secrets, context):  # type: ignore[no-untyped-def]
        return GoldenLayer("MLS", 1)

    def aes_stub(prims, profile, secrets, context):  # type: ignore[no-untyped-def]
        return GoldenLayer("AES", 4)

    registry.register(LayerSpec("MLS", frozenset(), mls_stub))
    registry.register(LayerSpec("AES", frozenset(), aes_stub))
    assert registry.names == ("MLS", "Signal", "ML-KEM", "AES")
    # MLS refuses replays (used keys deleted), so it may stand in for Signal (replay rule).
    manager = registry.build(["MLS", "AES"], None, "x", SessionSecrets(True, "s", b""))  # type: ignore[arg-type]
    assert manager.open(manager.seal(b"group", 0)) == b"group"
    with pytest.raises(CryptoUsageError, match="no replay protection"):
        registry.build(["AES"], None, "x", SessionSecrets(True, "s", b""))  # type: ignore[arg-type]
