"""Plugin object of enkrypted-ui-cli (slot ``ui``, contract 1.0; drives crypto contract 2.0).

Commands: ``demo`` (the scripted conversation), ``chat`` (the Textual TUI on a p2p 2.0
:class:`ChatService`) and ``history`` (:mod:`.command`)."""

from __future__ import annotations

__all__ = ["CliUI", "plugin"]

import asyncio
from collections.abc import Sequence

import click

from enkrypted_shell.contracts import (
    AppContext,
    Clock,
    CryptoService,
    TransportService,
    monotonic_clock,
)
from enkrypted_shell.hookspecs import hookimpl

from .command import chat_commands
from .conversation import ConversationFailed, converse

DEMO_LINES = (
    ("alice", "hello bob, this is alice"),
    ("bob", "hi alice - the cascade works both ways"),
    ("alice", "ünïcødé and emoji 🔐 survive too"),
)


class CliUI:
    """The terminal UI service: today the scripted demo conversation."""

    def __init__(
        self, crypto: CryptoService, transport: TransportService, clock: Clock = monotonic_clock
    ) -> None:
        self.crypto = crypto
        self.transport = transport
        self.clock = clock

    def run(self, argv: Sequence[str]) -> int:
        return (
            demo_command.main(
                args=list(argv), prog_name="enkrypted run", standalone_mode=False, obj=self
            )
            or 0
        )


@click.command("demo")
@click.option("-m", "--message", "messages", multiple=True, help="Extra line alice sends to bob.")
@click.pass_obj
def demo_command(ui: CliUI, messages: tuple[str, ...]) -> int:
    """Scripted two-peer session: handshake, then messages both ways, all through the plugins."""
    click.echo(f"crypto backend: {ui.crypto.backend}; transport: {ui.transport.name}")
    lines = list(DEMO_LINES) + [("alice", m) for m in messages]
    try:
        transcript = asyncio.run(converse(ui.crypto, ui.transport, lines, click.echo, ui.clock))
    except ConversationFailed as exc:
        click.echo(f"handshake failed: {exc}", err=True)
        return 1
    ok = [text for _, text in transcript.delivered] == [text for _, text in lines]
    click.echo(f"{len(transcript.delivered)} messages delivered intact: {ok}")
    return 0 if ok else 1


class UiCliPlugin:
    """Holds the service so the CLI command it contributes can use it."""

    def __init__(self) -> None:
        self.service: CliUI | None = None

    @hookimpl
    def enkrypted_ui_service(
        self, context: AppContext, crypto: CryptoService, transport: TransportService
    ) -> CliUI:
        self.service = CliUI(crypto, transport, context.clock)
        return self.service

    @hookimpl
    def enkrypted_cli_commands(self, context: AppContext) -> list[click.Command]:
        service = self.service

        @click.command("demo", help=demo_command.help)
        @click.option("-m", "--message", "messages", multiple=True)
        def demo(messages: tuple[str, ...]) -> None:
            assert service is not None
            argv = [a for m in messages for a in ("-m", m)]
            raise SystemExit(service.run(argv))

        return [demo, *chat_commands(context, lambda: None if service is None else service.transport)]


plugin = UiCliPlugin()
