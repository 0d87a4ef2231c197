"""The shell's exception root and its documented exit codes.

Every refusal the shell makes is a :class:`ShellError` subclass carrying an exit code
(``docs/errors.md``), the plugin it concerns, the rule that failed and the fix.
"""

from __future__ import annotations

__all__ = [
    "AmbiguousPluginError",
    "ExitCode",
    "IntegrityError",
    "LoadError",
    "LockMismatchError",
    "ManifestError",
    "NoPluginError",
    "ProvenanceError",
    "SelectionError",
    "ShellError",
    "ShellUsageError",
    "SkewError",
]

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes of ``enkrypted`` (documented in ``docs/errors.md``)."""

    OK = 0
    FAILURE = 1  # a plugin's own command failed
    USAGE = 2  # click's usage errors share this code
    INTEGRITY = 10
    SKEW = 11
    LOCK_MISMATCH = 12
    NO_PLUGIN = 13
    AMBIGUOUS_PLUGIN = 14
    MANIFEST = 15
    PROVENANCE = 16
    LOAD = 17
    LOG_CORRUPT = 18
    NETWORK = 19  # a registry or index could not be reached (connection, TLS, timeout)
    WRONG_PASSPHRASE = 20  # the profile store did not open with this passphrase; nothing changed
    STORE_CORRUPT = 21  # the profile store is truncated, foreign, or a record failed authentication
    STORE_BUSY = 22  # another process holds the profile store's write lock past the wait


class ShellError(Exception):
    """Root of every error the shell raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, plugin: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.plugin = plugin
        self.fix = fix

    def __str__(self) -> str:
        text = self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text

    @property
    def rule(self) -> str:
        """Short rule name recorded in the load log."""
        return type(self).__name__


class ShellUsageError(ShellError):
    """The caller asked for something that cannot mean anything (bad flag value, bad file)."""

    exit_code = ExitCode.USAGE


class ManifestError(ShellError):
    """A plugin's static manifest is missing, unreadable or inconsistent with its entry point."""

    exit_code = ExitCode.MANIFEST


class SelectionError(ShellError):
    """Root of plugin selection failures."""


class NoPluginError(SelectionError):
    """No candidate for a slot, or the requested one is not installed."""

    exit_code = ExitCode.NO_PLUGIN


class AmbiguousPluginError(SelectionError):
    """Two or more candidates for a slot and nothing says which one."""

    exit_code = ExitCode.AMBIGUOUS_PLUGIN


class IntegrityError(ShellError):
    """An installed file differs from what the distribution recorded (changed, missing, added)."""

    exit_code = ExitCode.INTEGRITY


class ProvenanceError(ShellError):
    """Signed provenance missing, invalid or not accepted by the trust policy."""

    exit_code = ExitCode.PROVENANCE


class SkewError(ShellError):
    """Contract, shell or shared-library versions do not fit together."""

    exit_code = ExitCode.SKEW


class LockMismatchError(ShellError):
    """The selected set differs from the pinned lock."""

    exit_code = ExitCode.LOCK_MISMATCH


class LoadError(ShellError):
    """A verified plugin failed while being imported or registered."""

    exit_code = ExitCode.LOAD


class LoadLogCorruptError(ShellError):
    """The hash chain of the load log is broken."""

    exit_code = ExitCode.LOG_CORRUPT


class NetworkError(ShellError):
    """A registry or index could not be reached: connection refused, DNS, TLS, timeout.

    Nothing was installed or changed; retrying later may succeed (unlike a refusal)."""

    exit_code = ExitCode.NETWORK


class HomeError(ShellUsageError):
    """A path in the profile home (or the home itself) cannot be used: a directory where a file
    belongs or the reverse, a FIFO, a dangling symbolic link, no permission, no space.

    Exit 2 like the other local problems the user fixes by hand (docs/errors.md)."""


class StoreError(ShellError):
    """Root of the profile store's errors (docs/adr/0010-profile-store.md)."""


class WrongPassphraseError(StoreError):
    """The passphrase does not unlock the profile store.  Nothing was read or written."""

    exit_code = ExitCode.WRONG_PASSPHRASE


class StoreCorruptError(StoreError):
    """The profile store cannot be trusted: not a store, truncated, or a record failed
    authentication (one opaque message: which check failed is not said)."""

    exit_code = ExitCode.STORE_CORRUPT


class StoreBusyError(StoreError):
    """Another process kept the store's write lock longer than the store waits."""

    exit_code = ExitCode.STORE_BUSY


__all__ += [
    "HomeError",
    "LoadLogCorruptError",
    "NetworkError",
    "StoreBusyError",
    "StoreCorruptError",
    "StoreError",
    "WrongPassphraseError",
]
