"""What the shell gave this plugin at load, kept for the chat commands (a light module: the service
hook runs on every start and must not import aiortc)."""

from __future__ import annotations

__all__ = ["Wiring"]

from dataclasses import dataclass

from enkrypted_shell.contracts import AppContext, CryptoService


@dataclass(frozen=True, slots=True)
class Wiring:
    """What the shell gave this plugin at load: its context and the crypto service."""

    context: AppContext
    crypto: CryptoService
