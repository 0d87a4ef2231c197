"""Hook implementations for the ``ui-echo`` plugin (slot ``ui``, contract 1.0)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from enkrypted_shell.contracts import AppContext, CryptoService, TransportService
from enkrypted_shell.hookspecs import hookimpl


class EchoUI:
    """UI service: prints one line describing the loaded backend/transport and the args."""

    def __init__(self, crypto: CryptoService, transport: TransportService) -> None:
        self.crypto = crypto
        self.transport = transport

    def run(self, argv: Sequence[str]) -> int:
        args = " ".join(argv)
        print(
            f"echo-ui: backend={self.crypto.backend} "
            f"transport={self.transport.name} args={args}"
        )
        return 0


@hookimpl
def enkrypted_ui_service(
    context: AppContext, crypto: CryptoService, transport: TransportService
) -> EchoUI:
    return EchoUI(crypto, transport)


@click.command(name="echo-hello")
def echo_hello() -> None:
    """Print a greeting from the echo plugin."""
    click.echo("hello from echo")


@hookimpl
def enkrypted_cli_commands(context: AppContext) -> list[click.Command]:
    return [echo_hello]
