"""Every bound the shell puts on untrusted input, in one frozen object (STYLE.md §2).

:data:`LIMITS` holds the shell's own bounds (manifests, RECORD, provenance, TUF metadata, wheels,
HOME files); the bounds on peer input that every slot shares are the spec's P8 numbers in
:class:`~enkrypted_shell.contracts.WireLimits`, re-exported here. A registry reads the wheel bounds
from here too, so publish and install refuse the same wheels.

A ``NamedTuple`` rather than a frozen dataclass: it is built on every start (docs/adr/0006).
"""

from __future__ import annotations

__all__ = ["LIMITS", "WIRE_LIMITS", "ShellLimits", "WireLimits"]

from typing import Final, NamedTuple

from .contracts import WIRE_LIMITS, WireLimits

KiB: Final = 1024
MiB: Final = 1024 * KiB


class ShellLimits(NamedTuple):
    """Sizes, counts and times the shell accepts from files and servers it does not control."""

    manifest_bytes: int = 64 * KiB
    """``enkrypted-plugin.toml``."""
    record_chars: int = 16 * MiB
    """A distribution's RECORD (~100,000 rows), checked before it is parsed."""
    installed_file_bytes: int = 256 * MiB
    """One installed file hashed at load time."""
    asset_bytes: int = 16 * MiB
    """All files of a plugin's declared asset folder together (kept in memory, served by it)."""
    provenance_bytes: int = 8 * MiB
    """A release's provenance object (DSSE envelopes and Sigstore bundles)."""
    provenance_envelopes: int = 16
    """DSSE envelopes, and separately Sigstore bundles, in one provenance object."""
    envelope_signatures: int = 16
    """Signatures on one DSSE envelope."""
    provenance_files: int = 20_000
    """Files listed in one provenance statement, and members of one wheel."""
    provenance_record_bytes: int = 16 * MiB
    """A stored provenance record in HOME."""
    policy_bytes: int = 256 * KiB
    """``trust.toml``."""
    root_metadata_bytes: int = 512 * KiB
    """TUF root metadata (python-tuf's default ``root_max_length``)."""
    targets_metadata_bytes: int = 5 * MiB
    """TUF targets metadata (python-tuf's default cap)."""
    wheel_uncompressed_bytes: int = 1024 * MiB
    """All members of one wheel, uncompressed."""
    sigstore_verdicts: int = 4096
    """Remembered Sigstore verifications in HOME (oldest dropped)."""
    sigstore_verdicts_bytes: int = 4 * MiB
    """The file holding them; a larger one counts as empty."""
    skew_verdicts: int = 32
    """Remembered skew verdicts in HOME (oldest dropped)."""
    network_timeout_s: float = 30.0
    """One request to an index or TUF repository."""
    pip_timeout_s: float = 900.0
    """One pip run of an install."""


LIMITS: Final = ShellLimits()
