"""Slot p2p (contract 2.0): a transport that carries nothing and keeps its context for the probe."""

from __future__ import annotations

from collections.abc import Mapping

import click
from acme_vault_common import CRYPTO, commands

from enkrypted_shell.contracts import AppContext, ChatService, CryptoService, Endpoint, LocalMisuse
from enkrypted_shell.hookspecs import hookimpl


class ProbeTransport:
    """Only there to fill the slot and keep its context for ``ProbeUI.run``."""

    name = "vault-probe"
    capabilities = frozenset({"loopback"})

    def __init__(self, context: AppContext) -> None:
        self.context = context

    async def open_endpoint(
        self, settings: Mapping[str, object] | None = None, *, peer_id: str | None = None
    ) -> Endpoint:
        raise LocalMisuse("the vault probe reaches no peers")

    async def open_chat(
        self,
        identity: bytes,
        settings: Mapping[str, object] | None = None,
        *,
        peer_id: str | None = None,
        saved: Mapping[str, bytes] | None = None,
    ) -> ChatService:
        raise LocalMisuse("the vault probe reaches no peers")


@hookimpl
def enkrypted_transport_service(context: AppContext, crypto: CryptoService) -> ProbeTransport:
    CRYPTO["p2p"] = crypto
    return ProbeTransport(context)


@hookimpl
def enkrypted_cli_commands(context: AppContext) -> list[click.Command]:
    return [commands("p2p-vault", "p2p", context)]
