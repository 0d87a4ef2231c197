"""Plugin object of enkrypted-p2p (slot ``p2p``, contract 1.0)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from enkrypted_shell.contracts import AppContext, CryptoService, Link
from enkrypted_shell.hookspecs import hookimpl

from .memory import memory_pair

if TYPE_CHECKING:
    import click

__all__ = ["MemoryTransport", "enkrypted_cli_commands", "enkrypted_transport_service"]


class MemoryTransport:
    """Transport service offering in-process links (the only transport of this release)."""

    name = "memory"
    capabilities = frozenset({"loopback"})

    async def loopback_pair(self, first: str, second: str) -> tuple[Link, Link]:
        return memory_pair(first, second)


@hookimpl
def enkrypted_transport_service(context: AppContext, crypto: CryptoService) -> MemoryTransport:
    return MemoryTransport()


@hookimpl
def enkrypted_cli_commands(context: AppContext) -> list[click.Command]:
    """``enkrypted broker`` (manifest ``commands``); imported only when the shell asks."""
    from .signaling import broker_command

    return [broker_command]
