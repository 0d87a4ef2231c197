"""The exception root of enkrypted-ui-web, split like the contracts' errors (STYLE.md §3)."""

from __future__ import annotations

__all__ = ["AssetsRefused", "WebUiError", "WebUnavailable"]

from enkrypted_shell.contracts import ContractError, LocalMisuse


class WebUiError(ContractError):
    """Root of every error this distribution raises."""


class AssetsRefused(WebUiError, LocalMisuse):
    """The page's files are not exactly the verified ones: nothing is served."""


class WebUnavailable(WebUiError, LocalMisuse):
    """The web chat cannot start here (no unlocked profile, a p2p plugin before 2.0, no port)."""
