"""Plugin object of enkrypted-ui-web (slot ``ui``, contract 1.0): the ``chat`` command serves the
chat to a browser on 127.0.0.1 (:mod:`.command`); ``enkrypted run`` only says how to start it."""

from __future__ import annotations

__all__ = ["WebUI", "plugin"]

from collections.abc import Sequence

import click

from enkrypted_shell.contracts import AppContext, CryptoService, TransportService
from enkrypted_shell.hookspecs import hookimpl

from .command import web_commands


class WebUI:
    """The ui service: the web chat is a command; ``run`` points to it."""

    def __init__(self, crypto: CryptoService, transport: object) -> None:
        self.crypto = crypto
        self.transport = transport

    def run(self, argv: Sequence[str]) -> int:
        click.echo("ui-web is a browser chat: start it with `enkrypted --ui ui-web chat "
                   "--profile NAME`", err=bool(argv))
        return 2 if argv else 0


class UiWebPlugin:
    """Holds the service so the command it contributes can reach the transport."""

    def __init__(self) -> None:
        self.service: WebUI | None = None

    @hookimpl
    def enkrypted_ui_service(
        self, context: AppContext, crypto: CryptoService, transport: TransportService
    ) -> WebUI:
        self.service = WebUI(crypto, transport)
        return self.service

    @hookimpl
    def enkrypted_cli_commands(self, context: AppContext) -> list[click.Command]:
        return web_commands(context, lambda: None if self.service is None else self.service.transport)


plugin = UiWebPlugin()
