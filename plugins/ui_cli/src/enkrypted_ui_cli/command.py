"""``enkrypted chat`` (the TUI) and ``enkrypted history`` (a conversation as text or JSON).

Both need an unlocked profile: ``AppContext.identity`` (the crypto identity) and
``AppContext.store`` (this slot's namespace of the profile store), read with ``getattr`` so the
plugin keeps loading on shells before them.  ``chat`` also needs a p2p 2.0 transport (detected
with :func:`supports`); it never imports p2p or crypto code, only the shell's contracts.
"""

from __future__ import annotations

__all__ = ["chat_commands", "chat_inputs", "run_chat"]

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import click

from enkrypted_shell.contracts import (
    AppContext,
    ContractError,
    ProfileStore,
    TransportServiceV2,
    supports,
)

from .chatstore import ChatStore
from .errors import ChatUnavailable, UiError
from .invite import Target, check_peer_id, parse_target

if TYPE_CHECKING:
    from .tui.app import ChatApp

NO_PROFILE = (
    "no unlocked profile: create one with `enkrypted profile create NAME`, "
    "then run `enkrypted --profile NAME {command}`"
)


def profile_store(context: AppContext, command: str) -> ChatStore:
    store = getattr(context, "store", None)
    if store is None or not supports(store, ProfileStore):
        raise ChatUnavailable(NO_PROFILE.format(command=command))
    return ChatStore(store)


def chat_inputs(
    context: AppContext, transport: object
) -> tuple[bytes, ChatStore, TransportServiceV2]:
    """What ``chat`` needs from the shell, or :class:`ChatUnavailable` saying what is missing."""
    identity = getattr(context, "identity", None)
    if not isinstance(identity, bytes) or not identity:
        raise ChatUnavailable(NO_PROFILE.format(command="chat"))
    store = profile_store(context, "chat")
    if not isinstance(transport, TransportServiceV2) or not supports(transport, TransportServiceV2):
        name = getattr(transport, "name", "?")
        raise ChatUnavailable(
            f"the selected p2p plugin ({name}) provides transport contract 1.0; "
            "`enkrypted chat` needs a p2p plugin with contract 2.0"
        )
    return identity, store, transport


def _run_app(app: ChatApp) -> Awaitable[object]:
    return app.run_async()


async def run_chat(
    transport: TransportServiceV2,
    identity: bytes,
    store: ChatStore,
    *,
    peer_id: str | None = None,
    target: Target | None = None,
    runner: Callable[[ChatApp], Awaitable[object]] = _run_app,
) -> None:
    """Open the chat service (resuming saved sessions), run the app, save sessions, close."""
    from .tui.app import ChatApp  # Textual loads only when the chat really starts

    service = await transport.open_chat(
        identity, None, peer_id=peer_id, saved=store.saved_sessions()
    )
    try:
        await runner(ChatApp(service, store, initial=target))
    finally:
        try:
            for peer in list(service.peers()):
                with contextlib.suppress(ContractError):  # one peer's state, not the others'
                    store.save_session(peer, service.export_state(peer))
        finally:
            await service.aclose()


def chat_commands(context: AppContext, transport: Callable[[], object]) -> list[click.Command]:
    """The ui plugin's commands for ``context``; ``transport()`` is the wired transport service."""

    @click.command("chat")
    @click.option(
        "--peer-id", default=None, help="Ask the broker for this id (else it assigns one)."
    )
    @click.option(
        "--connect",
        "dial",
        default=None,
        metavar="PEER|INVITE",
        help="Dial a peer id or invite at start.",
    )
    def chat(peer_id: str | None, dial: str | None) -> None:
        """Interactive encrypted chat (contacts, safety numbers, QR invite); F1 inside for help."""
        try:
            target = parse_target(dial) if dial is not None else None
            wanted = check_peer_id(peer_id) if peer_id is not None else None
            identity, store, service = chat_inputs(context, transport())
            asyncio.run(run_chat(service, identity, store, peer_id=wanted, target=target))
        except ContractError as exc:  # ours (UiError) and the transport's: one line
            raise click.ClickException(str(exc)) from exc

    @click.command("history")
    @click.argument("peer")
    @click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
    def history(peer: str, limit: int, as_json: bool) -> None:
        """The last messages with PEER (a peer id), from the profile's chat history."""
        try:
            lines = profile_store(context, f"history {peer}").history(check_peer_id(peer), limit)
        except UiError as exc:
            raise click.ClickException(str(exc)) from exc
        if as_json:
            rows = [
                {
                    "direction": x.direction,
                    "text": x.text,
                    "at": x.at,
                    "message_id": x.message_id,
                    "delivered": x.delivered,
                }
                for x in lines
            ]
            click.echo(json.dumps({"peer": peer, "messages": rows}, indent=2))
            return
        from .tui.render import clock

        for x in lines:
            who = "me" if x.direction == "out" else peer
            mark = (" ✓" if x.delivered else " …") if x.direction == "out" else ""
            click.echo(f"[{clock(x.at)}] {who}: {x.text}{mark}")
        if not lines:
            click.echo(f"no messages with {peer}")

    return [chat, history]
