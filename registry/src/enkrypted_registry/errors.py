"""The registry's exception root, split by who is at fault.

``RegistryUsageError``: the operator asked for something impossible (missing repository, wrong key).
``WheelError``: an input distribution is malformed or fails its own RECORD check.
``PublishRefusedError``: the request is well-formed but the trust rules forbid it (slot/key mismatch,
overwriting an immutable release).
"""

from __future__ import annotations

__all__ = ["PublishRefusedError", "RegistryError", "RegistryUsageError", "WheelError"]


class RegistryError(Exception):
    """Root of every error ``enkrypted-registry`` raises on purpose (exit code 1)."""

    exit_code = 1


class RegistryUsageError(RegistryError):
    """Bad arguments, missing repository or key files."""

    exit_code = 2


class WheelError(RegistryError):
    """A wheel is malformed: bad zip, bad RECORD, hash mismatch, missing or invalid manifest."""

    exit_code = 3


class PublishRefusedError(RegistryError):
    """Publishing is refused by policy (slot not delegated to this key, release already exists)."""

    exit_code = 4
