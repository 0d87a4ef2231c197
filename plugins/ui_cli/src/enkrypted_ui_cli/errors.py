"""The exception root of enkrypted-ui-cli, split like the contracts' errors (STYLE.md §3)."""

from __future__ import annotations

__all__ = ["BadInvite", "ChatUnavailable", "UiError"]

from enkrypted_shell.contracts import ContractError, LocalMisuse


class UiError(ContractError):
    """Root of every error this distribution raises."""


class BadInvite(UiError, LocalMisuse):
    """What the user typed or pasted is neither a peer id nor an ``enkrypted://peer/`` link."""


class ChatUnavailable(UiError, LocalMisuse):
    """``enkrypted chat`` cannot start here: no unlocked profile, or a p2p plugin before 2.0."""
