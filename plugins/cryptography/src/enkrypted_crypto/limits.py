"""Bounds on untrusted input, in one place (STYLE.md principle 2).

The spec's P8 numbers (digest §6 "Limits": PDU cap, chunking, reassembly, handshake timeout) are
the shell's :class:`~enkrypted_shell.contracts.WireLimits`, defined once for every slot and handed
to the plugin as ``AppContext.limits``; :class:`Limits` carries them as ``wire`` and adds the
crypto plugin's own bounds, documented in ``docs/protocol.md`` §Limits.
"""

from __future__ import annotations

__all__ = ["DEFAULT_LIMITS", "Limits"]

from dataclasses import dataclass
from typing import Final

from enkrypted_shell.contracts import WIRE_LIMITS, WireLimits

KiB: Final = 1024
MiB: Final = 1024 * KiB


@dataclass(frozen=True, slots=True)
class Limits:
    """Every size, count and timeout applied to peer input by the crypto plugin."""

    wire: WireLimits = WIRE_LIMITS
    """P8: the spec's numbers, shared with the other slots (``AppContext.limits``)."""
    max_handshake_pdu_bytes: int = 64 * KiB
    """Ours: handshake PDUs carry at most a few keys (an ML-KEM key is 1184 bytes)."""
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
    max_state_bytes: int = 1 * MiB
    """Ours: an exported session (``docs/protocol.md`` §Exported state) is refused above this
    before parsing; the largest real one (2000 skipped ratchet keys, 2000 skipped ML-KEM
    counters) is about 160 KiB."""

    @property
    def max_pdu_bytes(self) -> int:
        """P8.1: a data-channel PDU larger than this MUST be rejected (before parsing)."""
        return self.wire.max_pdu_bytes

    @property
    def max_plaintext_bytes(self) -> int:
        """What :meth:`seal` accepts: no more than the PDU cap, which the sealed message must
        still fit."""
        return self.wire.max_pdu_bytes

    @property
    def handshake_timeout_s(self) -> float:
        """P8.6: a handshake not complete this long after it started fails."""
        return self.wire.handshake_timeout_s


DEFAULT_LIMITS: Final = Limits()
