"""Slot ui (contract 1.0): ``run`` prints what each slot's context carried, as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click
from acme_vault_common import CRYPTO, commands, describe

from enkrypted_shell.contracts import AppContext, CryptoService, TransportService
from enkrypted_shell.hookspecs import hookimpl


class ProbeUI:
    def __init__(self, context: AppContext, transport: TransportService) -> None:
        self.context = context
        self.transport = transport

    def run(self, argv: Sequence[str]) -> int:
        seen = {"ui": describe("ui", self.context)}
        p2p_context = getattr(self.transport, "context", None)
        if isinstance(p2p_context, AppContext):
            seen["p2p"] = describe("p2p", p2p_context)
        print(json.dumps(seen, sort_keys=True))
        return 0


@hookimpl
def enkrypted_ui_service(
    context: AppContext, crypto: CryptoService, transport: TransportService
) -> ProbeUI:
    CRYPTO["ui"] = crypto
    return ProbeUI(context, transport)


@hookimpl
def enkrypted_cli_commands(context: AppContext) -> list[click.Command]:
    return [commands("ui-vault", "ui", context)]
