"""Plugin object of enkrypted-p2p (slot ``p2p``, contract 1.0).

The service it returns is still the in-process transport of contract 1.0; the WebRTC endpoint
(:mod:`enkrypted_p2p.webrtc`) is the plugin's own API until the shell publishes p2p 2.0. The
crypto service the shell passes to :func:`enkrypted_transport_service` is kept for the chat
commands (``listen``, ``send``), which the shell runs after the same verified load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from enkrypted_shell.contracts import AppContext, CryptoService, Link
from enkrypted_shell.hookspecs import hookimpl

from ._wiring import Wiring
from .memory import memory_pair

if TYPE_CHECKING:
    import click

__all__ = ["MemoryTransport", "enkrypted_cli_commands", "enkrypted_transport_service"]

_WIRED: list[Wiring] = []  # at most one: what the last load handed us


class MemoryTransport:
    """Transport service offering in-process links (the p2p 1.0 service of this release)."""

    name = "memory"
    capabilities = frozenset({"loopback"})

    async def loopback_pair(self, first: str, second: str) -> tuple[Link, Link]:
        return memory_pair(first, second)


def wiring() -> Wiring | None:
    """The context and crypto service of the last load (``None`` before any)."""
    return _WIRED[-1] if _WIRED else None


@hookimpl
def enkrypted_transport_service(context: AppContext, crypto: CryptoService) -> MemoryTransport:
    _WIRED[:] = [Wiring(context, crypto)]
    return MemoryTransport()


@hookimpl
def enkrypted_cli_commands(context: AppContext) -> list[click.Command]:
    """``enkrypted broker``, ``listen``, ``send`` (manifest ``commands``); imported only when the
    shell asks."""
    from .chat import chat_commands
    from .signaling import broker_command

    return [broker_command, *chat_commands(wiring)]
