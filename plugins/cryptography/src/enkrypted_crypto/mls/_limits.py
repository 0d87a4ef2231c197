"""Every bound the MLS engine applies to untrusted input, in one place (STYLE.md principle 2).

RFC 9420 sets few numeric limits itself (§2.1.2: vector lengths below 2^30); the others are ours,
sized for chat groups and documented in ``docs/mls.md``.
"""

from __future__ import annotations

__all__ = ["LIMITS", "MlsLimits"]

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class MlsLimits:
    max_vector_bytes: int = 16 * 1024 * 1024
    """Largest ``<V>`` vector (the crypto plugin's 16 MiB PDU limit; §2.1.2 allows 2^30 - 1)."""
    max_depth: int = 16
    """Deepest nesting of vectors (MLS structures nest about 7 deep)."""
    max_vector_items: int = 65536
    """Default item count of a decoded vector."""
    max_tree_nodes: int = 1 << 17
    """Ratchet tree size: 65536 leaves."""
    max_extensions: int = 256
    max_certificates: int = 64
    max_capability_entries: int = 1024
    max_proposals_per_commit: int = 4096
    max_path_nodes: int = 32
    """UpdatePath length: the depth of a 2^32-leaf tree."""
    max_welcome_secrets: int = 65536
    max_psks: int = 256
    max_ref_bytes: int = 256
    """ProposalRef / KeyPackageRef: a hash output (64 bytes for SHA-512)."""
    max_forward_ratchet: int = 1024
    """Generations a receiver ratchets ahead for one PrivateMessage (§9.1)."""
    max_kept_keys: int = 1024
    """Out-of-order message keys kept per sender ratchet."""
    max_padding: int = 1 << 16
    max_cached_proposals: int = 4096
    max_past_epochs: int = 2
    """Past epochs whose application keys are kept for late messages (§14 allows this)."""
    max_resumption_epochs: int = 64
    """Past epochs whose resumption PSK is kept (§8.6)."""


LIMITS: Final = MlsLimits()
