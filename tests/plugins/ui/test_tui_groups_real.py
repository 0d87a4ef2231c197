"""The group screens on the real chat service (``EndpointChat``, p2p 2.2) over the p2p-memory
transport with the pyca crypto plugin: alice's TUI creates a group on F5, adds bob from the connect
screen (F2, Ctrl+G: key package, Add commit, Welcome), bob's message is shown, alice's message
goes out with bob's receipt counted, and bob's 1:1 safety number is on the Members tab."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList, Static

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.chat import EndpointChat
from enkrypted_p2p_memory.endpoint import Switchboard
from enkrypted_p2p_memory.plugin import MemoryTransport
from enkrypted_shell.contracts import (
    AppContext,
    CryptoService,
    GroupChatMembership,
    GroupChatService,
    supports,
)
from enkrypted_ui_cli.chatstore import ChatStore, MemoryProfileStore
from enkrypted_ui_cli.tui.app import ChatApp
from enkrypted_ui_cli.tui.group_screen import GroupScreen


class P2PStore(MemoryProfileStore):
    """The p2p slot's store (the chat service persists sessions and groups into it)."""

    def __init__(self) -> None:
        super().__init__("slot:p2p")


async def open_chat(board: Switchboard, name: str, crypto: CryptoService, home: Path
                    ) -> EndpointChat:
    endpoint = await MemoryTransport(switchboard=board).open_endpoint(peer_id=name)
    context = AppContext(home, store=P2PStore())  # type: ignore[arg-type]
    return await EndpointChat.open(endpoint, crypto, crypto.new_identity(), context=context)


async def until(pilot: Pilot[None], ok: Callable[[], bool], what: str, seconds: float = 60
                ) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not ok():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def text_of(app: ChatApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


@pytest.mark.slow
def test_a_group_made_and_used_from_the_tui_on_the_real_chat_service(tmp_path: Path) -> None:
    crypto = enkrypted_crypto_service(AppContext(tmp_path))

    async def main() -> None:
        board = Switchboard()
        alice = await open_chat(board, "alice", crypto, tmp_path / "alice")
        bob = await open_chat(board, "bob", crypto, tmp_path / "bob")
        bob_events: list[object] = []
        pump = asyncio.ensure_future(_collect(bob, bob_events))
        assert supports(alice, GroupChatService)
        app = ChatApp(alice, ChatStore(MemoryProfileStore()))
        try:
            async with app.run_test(size=(80, 24)) as pilot:
                await _scenario(app, pilot, bob, bob_events)
        finally:
            pump.cancel()
            await alice.aclose()
            await bob.aclose()

    asyncio.run(asyncio.wait_for(main(), 120))


async def _collect(chat: EndpointChat, into: list[object]) -> None:
    async for event in chat.events():
        into.append(event)


async def _scenario(app: ChatApp, pilot: Pilot[None], bob: EndpointChat,
                    bob_events: list[object]) -> None:
    await pilot.press("f5")
    await until(pilot, lambda: isinstance(app.screen, GroupScreen), "the group screen")
    await pilot.press(*"friends", "enter")
    await until(pilot, lambda: app.model.active_group is not None, "the new group")
    group_id = app.model.active_group
    assert group_id is not None
    await pilot.press("f2")
    await pilot.pause()
    await pilot.press("b", "o", "b", "ctrl+g")
    await until(pilot, lambda: len(app.model.groups.views[group_id].members) == 2, "bob added")
    await until(pilot, lambda: any(isinstance(e, GroupChatMembership) for e in bob_events),
                "bob's Welcome")
    await bob.send_group_text(group_id, "hi from bob [b]plain[/b]")
    await until(pilot, lambda: "bob: hi from bob [b]plain[/b]" in text_of(app, "#lines"),
                "bob's message")
    await pilot.press(*"hello", "enter")
    await until(pilot, lambda: "me: hello ✓ 1/1" in text_of(app, "#lines"), "bob's receipt")
    groups = app.query_one("#groups", OptionList)
    assert "friends 2 e1" in str(groups.get_option_at_index(0).prompt)
    await until(pilot, lambda: app.model.peers.get("bob") is not None
                and app.model.peers["bob"].safety_number != "", "the 1:1 session with bob")
    await pilot.press("f5")
    await until(pilot, lambda: isinstance(app.screen, GroupScreen), "the group screen")
    app.screen.query_one("#members", OptionList).highlighted = 1
    await pilot.pause()
    detail = text_of(app, "#member-text")
    assert "Peer id: bob" in detail and "Safety number" in detail
