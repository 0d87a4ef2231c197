"""Bounds on untrusted input, in one place, with the spec's numbers (STYLE.md principle 2).

Values marked *P8.x* come from the Enkrypted Chat protocol spec (digest §6 "Limits", P8.1/3/4);
the others are ours and documented in ``docs/protocol.md`` §Limits.
"""

from __future__ import annotations

__all__ = ["DEFAULT_LIMITS", "Limits"]

from dataclasses import dataclass
from typing import Final

MiB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Every size, count and timeout applied to peer input by the crypto plugin."""

    max_pdu_bytes: int = 16 * MiB
    """P8.1: a data-channel PDU larger than this MUST be rejected (before parsing)."""
    cascade_chunk_bytes: int = 8192
    """P8.1: cascade payloads above this are chunked by the p2p layer (not here)."""
    max_chunks_per_message: int = 4096
    """P8.4: chunks per ``messageId``."""
    max_reassemblies_per_peer: int = 64
    """P8.4: concurrent reassemblies per peer."""
    chunk_reassembly_timeout_s: float = 120.0
    """P8.3: per ``messageId``."""
    handshake_timeout_s: float = 300.0
    """P8.3: data channel open -> ready."""
    max_handshake_pdu_bytes: int = 64 * 1024
    """Ours: handshake PDUs carry at most a few keys (an ML-KEM key is 1184 bytes)."""
    max_plaintext_bytes: int = 16 * MiB
    """Ours: what :meth:`seal` accepts; the sealed message must still fit ``max_pdu_bytes``."""
    max_layers: int = 4
    """Ours: MLS, Signal, ML-KEM, AES at most."""
    max_skip: int = 1000
    """Double Ratchet MAX_SKIP (Signal spec §3.5): message keys skipped in one chain."""
    max_skipped_keys: int = 2000
    """Ours: skipped message keys kept across all chains; the oldest are evicted."""
    max_json_depth: int = 16
    """Ours: nesting depth accepted in Profile-v0 and handshake JSON, checked before parsing
    (a real v0 message nests 6 deep, a handshake PDU 3)."""
    max_layer_params: int = 8
    """Ours: parameters (and ``layerMetadata.metadata`` entries) per layer in a v0 message."""
    max_json_containers: int = 64
    """Ours: ``[`` plus ``{`` bytes in a Profile-v0 message, counted before parsing (P8.4:
    "reject huge JSON arrays before allocating").  A message needs 5 plus, per layer, its
    metadata, ``metadata``, parameters and one per array parameter: at most
    5 + max_layers * (3 + max_layer_params) = 49; a real 3-layer message has 20."""
    max_json_strings: int = 256
    """Ours: strings (keys included) in a Profile-v0 message, counted as ``"`` pairs before
    parsing; a real 3-layer message has 59."""
    rotation_grace_messages: int = 32
    """Ours: after accepting a ``rotation-timestamp-broadcast``, the previous AES key still opens
    at most this many further messages of that direction (0: no grace)."""
    rotation_grace_ms: int = 30_000
    """Ours: ... and only for this long on the receiver's clock, whichever ends first."""
    max_control_pdu_bytes: int = 1024
    """Ours: a control PDU (rotation) is tens of bytes; larger ones are not parsed as one."""


DEFAULT_LIMITS: Final = Limits()
