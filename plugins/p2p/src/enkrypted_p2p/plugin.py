"""Plugin object of enkrypted-p2p (slot ``p2p``, contract 1.0)."""

from __future__ import annotations

from enkrypted_shell.contracts import AppContext, CryptoService, Link
from enkrypted_shell.hookspecs import hookimpl

from .memory import memory_pair

__all__ = ["MemoryTransport", "enkrypted_transport_service"]


class MemoryTransport:
    """Transport service offering in-process links (the only transport of this release)."""

    name = "memory"
    capabilities = frozenset({"loopback"})

    async def loopback_pair(self, first: str, second: str) -> tuple[Link, Link]:
        return memory_pair(first, second)


@hookimpl
def enkrypted_transport_service(context: AppContext, crypto: CryptoService) -> MemoryTransport:
    return MemoryTransport()
