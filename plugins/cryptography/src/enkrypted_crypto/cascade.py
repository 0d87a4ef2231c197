"""Cascade manager: ordered layers, first innermost, reversed on decrypt (digest §4.1, §4.2).

Semantics follow ``CascadingCipherManager`` (digest §4.2) with two deliberate differences:

* **one opaque error.**  Any failure while opening — wrong layer count or names, malformed
  parameters, a failed tag, a replay — raises :class:`~enkrypted_crypto.errors.DecryptionFailed`
  and nothing else; the failing layer index is logged locally at DEBUG, never returned
  (STYLE.md principle 4);
* **transactions.**  Layers return ``(output, commit)``; commits run only after *every* layer has
  succeeded, so a failure anywhere delivers nothing and changes no state (the Double Ratchet
  keeps its keys for the next genuine message).

Layer names are the product's ``cipherLayers`` names (digest §4.1): ``MLS``, ``Signal``,
``ML-KEM``, ``AES``.  A registry without a layer's implementation raises
:class:`LayerUnavailable` when asked for it.
"""

from __future__ import annotations

__all__ = [
    "CANONICAL_ORDER",
    "NO_COMMIT",
    "DEFAULT_LAYERS",
    "CascadeLayer",
    "CascadeManager",
    "Commit",
    "LayerRecord",
    "LayerUnavailable",
    "SealedCascade",
    "validate_layer_names",
]

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Final, NamedTuple, Protocol

from enkrypted_shell.contracts import LocalMisuse

from .errors import CryptoError, CryptoUsageError, DecryptionFailed
from .limits import DEFAULT_LIMITS, Limits
from .primitives import BytesLike

Commit = Callable[[], None]

CANONICAL_ORDER: Final = ("MLS", "Signal", "ML-KEM", "AES")
"""Product order, innermost first (digest §4.1: ``cipherLayers``)."""

DEFAULT_LAYERS: Final = CANONICAL_ORDER
"""The default: the product's ``cipherLayers`` (digest §4.1); a service keeps the layers its
backend can serve (PyNaCl: ``Signal``, ``AES``)."""

_log = logging.getLogger(__name__)


class LayerUnavailable(CryptoError, LocalMisuse):
    """A configured layer has no implementation in this registry."""


def _no_commit() -> None:
    return None


NO_COMMIT: Final[Commit] = _no_commit


def validate_layer_names(names: Sequence[str], available: Sequence[str]) -> tuple[str, ...]:
    """Check a ``cipherLayers`` list: known names, no duplicates, product order, implemented.

    Raises :class:`CryptoUsageError` for a malformed list and :class:`LayerUnavailable` for a
    layer we know but cannot provide.
    """
    names = tuple(names)
    if not names:
        raise CryptoUsageError("cipherLayers must name at least one layer")
    unknown = [n for n in names if n not in CANONICAL_ORDER]
    if unknown:
        raise CryptoUsageError(f"unknown cipher layer(s) {unknown}; known: {list(CANONICAL_ORDER)}")
    if len(set(names)) != len(names):
        raise CryptoUsageError(f"cipherLayers lists a layer twice: {list(names)}")
    if list(names) != sorted(names, key=CANONICAL_ORDER.index):
        raise CryptoUsageError(f"cipherLayers must follow the order {list(CANONICAL_ORDER)}")
    for name in names:
        if name not in available:
            raise LayerUnavailable(f"{name} layer not available in this version")
    return names


class LayerRecord(NamedTuple):
    """What one layer contributed to a sealed message (``layers[i]`` + ``layerParameters[i]``).

    Immutable records are built per layer per message, so they are named tuples (cheaper to
    create than frozen dataclasses).
    """

    name: str
    parameters: object
    timestamp_ms: int
    input_size: int | None  # None: the profile does not carry sizes (b1)
    output_size: int | None


class SealedCascade(NamedTuple):
    """A cascade result before wire encoding (``cascadedPayload`` without the JSON).

    A decoded message's ``final_ciphertext`` may be a view into the received frame (no copy).
    """

    final_ciphertext: BytesLike
    records: tuple[LayerRecord, ...]
    original_size: int | None
    timestamp_ms: int


class CascadeLayer(Protocol):
    """One cascade layer bound to a session's keys.

    ``parameters`` are layer-specific objects; the profile codecs ask the layer to encode and
    decode them (``params_to_*`` / ``params_from_*``), which raise ``MalformedInput``.
    """

    @property
    def name(self) -> str:
        """The ``cipherLayers`` name (``Signal``, ``ML-KEM``, ``AES``, ``MLS``)."""
        ...

    @property
    def algorithm(self) -> str:
        """``layerMetadata.algorithm`` in Profile-v0 (the JS class name)."""
        ...

    @property
    def version(self) -> str: ...

    def seal(self, data: BytesLike, now_ms: int) -> tuple[bytes, object, Commit]: ...

    def open(
        self, data: BytesLike, parameters: object, timestamp_ms: int
    ) -> tuple[BytesLike, Commit]:
        """``data`` may be a view into the received frame; the layer must not keep it."""
        ...

    def params_to_v0(self, parameters: object) -> dict[str, object]: ...

    def metadata_to_v0(self, parameters: object) -> dict[str, object]:
        """Extra ``layerMetadata`` keys (beyond algorithm/version/timestamp/sizes)."""
        ...

    def params_from_v0(
        self, parameters: Mapping[str, object], metadata: Mapping[str, object]
    ) -> object: ...

    def params_to_bytes(self, parameters: object) -> bytes: ...

    def params_from_bytes(self, data: bytes) -> object: ...


class CascadeManager:
    """Applies ``layers`` in order (first innermost) and reverses them on :meth:`open`."""

    __slots__ = ("_layers", "_limits", "_names")

    def __init__(self, layers: Sequence[CascadeLayer], limits: Limits = DEFAULT_LIMITS) -> None:
        names = tuple(layer.name for layer in layers)
        if not names or len(names) > limits.max_layers:
            raise CryptoUsageError(f"a cascade needs 1..{limits.max_layers} layers")
        if len(set(names)) != len(names):  # addLayer rejects duplicates (digest §4.2)
            raise CryptoUsageError(f"duplicate cascade layer in {list(names)}")
        self._layers = tuple(layers)
        self._names = names
        self._limits = limits

    @property
    def layers(self) -> tuple[CascadeLayer, ...]:
        return self._layers

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def seal(self, plaintext: bytes, now_ms: int) -> SealedCascade:
        """Encrypt through every layer; state advances only if all layers succeed."""
        data = plaintext
        records: list[LayerRecord] = []
        commits: list[Commit] = []
        for layer in self._layers:
            out, params, commit = layer.seal(data, now_ms)
            records.append(LayerRecord(layer.name, params, now_ms, len(data), len(out)))
            commits.append(commit)
            data = out
        for commit in commits:
            commit()
        return SealedCascade(data, tuple(records), len(plaintext), now_ms)

    def open(self, sealed: SealedCascade) -> bytes:
        """Decrypt in reverse order; any failure is :class:`DecryptionFailed`, nothing changes."""
        records = sealed.records
        if tuple(r.name for r in records) != self._names:
            _log.debug(
                "cascade: layer list %s does not match the session", [r.name for r in records]
            )
            raise DecryptionFailed()
        data: BytesLike = sealed.final_ciphertext
        commits: list[Commit] = []
        for index in range(len(self._layers) - 1, -1, -1):
            layer, record = self._layers[index], records[index]
            try:
                _check_size(record.output_size, data)
                data, commit = layer.open(data, record.parameters, record.timestamp_ms)
                _check_size(record.input_size, data)
            except Exception as exc:  # any failure becomes the one opaque error
                _log.debug(
                    "cascade: layer %d (%s) failed: %s", index, layer.name, type(exc).__name__
                )
                raise DecryptionFailed() from None
            commits.append(commit)
        if sealed.original_size is not None and sealed.original_size != len(data):
            raise DecryptionFailed()
        for commit in commits:
            commit()
        return data if type(data) is bytes else bytes(data)


def _check_size(declared: int | None, data: BytesLike) -> None:
    """Declared sizes (Profile-v0 ``inputSize``/``outputSize``) must be the real ones."""
    if declared is not None and declared != len(data):
        raise DecryptionFailed()
