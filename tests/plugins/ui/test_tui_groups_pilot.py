"""Groups in the chat TUI at 80x24 under Textual's pilot, on :class:`FakeGroupChatService` (p2p 2.2
``GroupChatService``): the group list beside the contacts, a group conversation with per-member
receipts, the group screen (F5: members with fingerprints and safety numbers, receipts, create /
add / rename / leave / remove), add and remove from the connect screen (F2), a changed member key
blocking sends, left and forked states, peer names drawn as text, history kept; and a 2.1 service
without groups (one line)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets import Button, Input, OptionList, Static, TabbedContent

from enkrypted_shell.contracts import (
    GroupChatForked,
    GroupChatMessage,
    GroupChatReceipt,
    GroupChatRenamed,
    GroupChatService,
    GroupMember,
    implementation_problems,
    supports,
)
from enkrypted_ui_cli.chatstore import ChatStore, MemoryProfileStore
from enkrypted_ui_cli.tui.app import ChatApp
from enkrypted_ui_cli.tui.group_screen import GroupScreen
from enkrypted_ui_cli.tui.screens import ConnectScreen
from tests.plugins.ui.fake_chat import (
    BOB_FP,
    MALLORY_FP,
    FakeChatService,
    FakeFileChatService,
    FakeGroupChatService,
)

NOW = 1_700_000_000.0
CAROL_FP = "c4e1" * 16
Scenario = Callable[[ChatApp, Pilot[None], FakeGroupChatService], Awaitable[None]]


def run(scenario: Scenario, service: FakeChatService | None = None,
        store: ChatStore | None = None) -> ChatApp:
    """Run ``scenario`` at 80x24; bounded to 30 s."""
    svc = service or FakeGroupChatService(reachable={"bob": BOB_FP, "carol": CAROL_FP})
    app = ChatApp(svc, store or ChatStore(MemoryProfileStore()), wall=lambda: NOW)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await scenario(app, pilot, svc)  # type: ignore[arg-type]
            await svc.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))
    return app


async def settle(pilot: Pilot[None], rounds: int = 4) -> None:
    for _ in range(rounds):
        await pilot.pause()


async def until(pilot: Pilot[None], ok: Callable[[], bool], what: str) -> None:
    """Wait (bounded: 100 pauses) for a screen to open or a worker to land."""
    for _ in range(100):
        if ok():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def text_of(app: ChatApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def group_rows(app: ChatApp) -> list[str]:
    groups = app.query_one("#groups", OptionList)
    return [str(groups.get_option_at_index(i).prompt) for i in range(groups.option_count)]


async def type_in(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*("space" if c == " " else c for c in text))


async def friends_with_bob(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> str:
    """bob connected (a 1:1 session), a group "friends" with bob, opened."""
    svc.emit(svc.established("bob", BOB_FP))
    group_id = await svc.create_group("friends")
    await svc.invite(group_id, "bob")
    await settle(pilot)
    app.model.select_group(group_id)
    app.refresh_view()
    await settle(pilot)
    return group_id


def test_the_fake_group_service_meets_the_group_chat_service_contract() -> None:
    assert implementation_problems(FakeGroupChatService(), GroupChatService) == []
    assert supports(FakeGroupChatService(), GroupChatService)
    assert not supports(FakeFileChatService(), GroupChatService)


def test_without_group_chat_there_is_no_group_list_and_f5_is_one_line() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        try:
            app.query_one("#groups", OptionList)
            raise AssertionError("a group list without GroupChatService")
        except NoMatches:
            pass
        await pilot.press("f5")
        await settle(pilot)
        assert not isinstance(app.screen, GroupScreen)
        assert text_of(app, "#notice") == "this p2p plugin has no group chat"

    run(scenario, FakeFileChatService())


def test_create_a_group_on_the_group_screen_and_it_is_listed_and_opened() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        await pilot.press("f5")
        await settle(pilot)
        assert isinstance(app.screen, GroupScreen)
        assert "no group open" in text_of(app, "#group-title")
        assert app.screen.query_one("#group-tabs", TabbedContent).active == "tab-manage"
        await type_in(pilot, "book club")
        await pilot.press("enter")
        await settle(pilot)
        assert svc.ops == [("create", "book club")]
        assert not isinstance(app.screen, GroupScreen)
        assert group_rows(app) == ["● book club 1 e0"]
        assert app.model.active_group == "0a" * 16
        assert "book club │ 1 member │ epoch 0 │ active" in text_of(app, "#status")

    run(scenario)


def test_a_group_message_shows_receipts_per_member_received_by_n_of_m() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        await svc.invite(group_id, "carol")
        await settle(pilot)
        await type_in(pilot, "dinner at 7")
        await pilot.press("enter")
        await settle(pilot)
        assert svc.group_sent == [(group_id, "dinner at 7")] and svc.sent == []
        assert "me: dinner at 7 … 0/2" in text_of(app, "#lines")
        svc.emit(GroupChatReceipt(group_id, "g1", "bob", BOB_FP))
        await settle(pilot)
        assert "me: dinner at 7 ✓ 1/2" in text_of(app, "#lines")
        await pilot.press("f5")
        await settle(pilot)
        app.screen.query_one("#group-tabs", TabbedContent).active = "tab-receipts"
        await settle(pilot)
        receipts = text_of(app, "#receipts")
        assert "received by 1/2" in receipts and "✓ bob" in receipts and "… carol" in receipts

    run(scenario)


def test_incoming_group_messages_raise_the_unread_count_of_a_group_not_open() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        app.model.select("bob")
        svc.emit(GroupChatMessage(group_id, "x1", "bob", BOB_FP, "psst", 1, NOW))
        await settle(pilot)
        assert group_rows(app) == ["● friends 2 e1 (1)"]
        await pilot.press("f7")  # from the contact to the group
        await settle(pilot)
        assert app.model.active_group == group_id and "bob: psst" in text_of(app, "#lines")
        assert group_rows(app) == ["● friends 2 e1"]

    run(scenario)


def test_members_show_peer_id_fingerprint_and_the_1to1_safety_number() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        await svc.invite(group_id, "carol")  # no 1:1 session with carol
        await settle(pilot)
        await pilot.press("f5")
        await settle(pilot)
        members = app.screen.query_one("#members", OptionList)
        rows = [str(members.get_option_at_index(i).prompt) for i in range(members.option_count)]
        assert "alice-7f3k9q" in rows[0] and "you" in rows[0]
        assert "bob" in rows[1] and "b0b0 b0b0" in rows[1] and "not verified" in rows[1]
        members.highlighted = 1
        await settle(pilot)
        detail = text_of(app, "#member-text")
        assert "Peer id: bob" in detail and "b0b0 b0b0 b0b0" in detail
        assert "12345 12346 12347" in detail  # the 1:1 session's safety number
        members.highlighted = 2
        await settle(pilot)
        assert "No 1:1 session with this member yet" in text_of(app, "#member-text")

    run(scenario)


def test_add_and_remove_a_member_from_the_connect_screen() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        await pilot.press("f2")
        await until(pilot, lambda: isinstance(app.screen, ConnectScreen), "the connect screen")
        assert "Ctrl+G: add to friends" in text_of(app, "#connect-group")
        await type_in(pilot, "carol")
        await pilot.press("ctrl+g")
        await until(pilot, lambda: "carol joined" in text_of(app, "#lines"), "carol joining")
        assert ("invite", group_id, "carol") in svc.ops
        assert group_rows(app) == ["● friends 3 e2"]
        await pilot.press("f2")
        await until(pilot, lambda: isinstance(app.screen, ConnectScreen), "the connect screen")
        await type_in(pilot, "carol")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "carol left or" in text_of(app, "#lines"), "carol removed")
        assert ("remove", group_id, "carol") in svc.ops

    run(scenario)


def test_add_rename_and_remove_on_the_group_screen_typing_a_is_text_not_a_key() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        await pilot.press("f5")
        await settle(pilot)
        app.screen.query_one("#group-tabs", TabbedContent).active = "tab-manage"
        await settle(pilot)
        app.screen.query_one("#add-target", Input).focus()
        await type_in(pilot, "carol")
        await pilot.press("enter")
        await settle(pilot)
        assert ("invite", group_id, "carol") in svc.ops
        app.screen.query_one("#rename-to", Input).focus()
        await type_in(pilot, "a team")
        assert app.screen.query_one("#rename-to", Input).value == "a team"
        await pilot.press("enter")
        await settle(pilot)
        assert ("rename", group_id, "a team") in svc.ops
        assert "a team" in text_of(app, "#group-title")
        app.screen.query_one("#group-tabs", TabbedContent).active = "tab-members"
        await settle(pilot)
        app.screen.query_one("#members", OptionList).highlighted = 2
        await settle(pilot)
        app.screen.query_one("#remove", Button).press()
        await settle(pilot)
        assert ("remove", group_id, "carol") in svc.ops
        assert len(app.model.groups.views[group_id].members) == 2

    run(scenario)


def test_a_changed_member_key_blocks_group_sends_until_acknowledged() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        info = svc.infos[group_id]
        svc.commit(group_id, (info.members[0], GroupMember("bob", MALLORY_FP)))
        await settle(pilot)
        assert "bob's IDENTITY KEY CHANGED in this group" in text_of(app, "#warning")
        assert group_rows(app)[0].startswith("!")
        await type_in(pilot, "secret")
        await pilot.press("enter")
        await settle(pilot)
        assert svc.group_sent == [] and "identity key changed" in text_of(app, "#notice")
        assert app.query_one("#message", Input).value == "secret"  # nothing lost
        await pilot.press("f5")
        await settle(pilot)
        app.screen.query_one("#members", OptionList).highlighted = 1
        await settle(pilot)
        detail = text_of(app, "#member-text")
        assert "IDENTITY KEY CHANGED" in detail and "b0b0" in detail and "0bad" in detail
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert not app.query_one("#warning", Static).display
        await pilot.press("enter")
        await settle(pilot)
        assert svc.group_sent == [(group_id, "secret")]

    run(scenario)


def test_leave_needs_a_second_press_and_a_left_group_is_read_only() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        await pilot.press("f5")
        await settle(pilot)
        app.screen.query_one("#group-tabs", TabbedContent).active = "tab-manage"
        await settle(pilot)
        app.screen.query_one("#leave", Button).press()
        await settle(pilot)
        assert svc.ops[-1] != ("leave", group_id) and "again" in text_of(app, "#group-error")
        app.screen.query_one("#leave", Button).press()
        await settle(pilot)
        assert svc.ops[-1] == ("leave", group_id)
        assert group_rows(app) == ["✕ friends left"]
        assert "you left “friends”: read-only" in text_of(app, "#warning")
        await type_in(pilot, "hello?")
        await pilot.press("enter")
        await settle(pilot)
        assert svc.group_sent == [] and "no longer in" in text_of(app, "#notice")

    run(scenario)


def test_a_fork_is_shown_in_the_list_banner_and_conversation() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        svc.emit(GroupChatForked(group_id, 1, "bob", "another commit won", rejoining=True))
        await settle(pilot)
        assert group_rows(app)[0].startswith("!")
        assert "FORK at epoch 1" in text_of(app, "#warning")
        assert "re-joining" in text_of(app, "#warning")
        assert "rejoining" in text_of(app, "#status")
        assert "bob is on another branch" in text_of(app, "#lines")
        await type_in(pilot, "still there?")  # re-joining: the shared model holds it back
        await pilot.press("enter")
        await settle(pilot)
        assert svc.group_sent == [] and "re-joining" in text_of(app, "#notice")

    run(scenario)


def test_a_peer_supplied_group_name_is_drawn_as_text_not_markup() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        svc.emit(GroupChatRenamed(group_id, "[b]x[/b]\n[@click=app.quit]y[/]", BOB_FP))
        await settle(pilot)
        assert "[b]x[/b] [@click=app.quit]y[/]" in text_of(app, "#status")
        assert "[b]x[/b]" in group_rows(app)[0]
        assert "renamed the group to “[b]x[/b] [@click=app.quit]y[/]”" in text_of(app, "#notice")
        assert app.is_running

    run(scenario)


def test_group_history_is_shown_again_on_the_next_start() -> None:
    store = ChatStore(MemoryProfileStore())
    svc = FakeGroupChatService()

    async def first(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        group_id = await friends_with_bob(app, pilot, svc)
        svc.emit(GroupChatMessage(group_id, "x1", "bob", BOB_FP, "remember this", 1, NOW))
        await type_in(pilot, "me too")
        await pilot.press("enter")
        await settle(pilot)

    async def second(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        assert group_rows(app) == ["● friends 2 e1"]
        await pilot.press("f7")
        await settle(pilot)
        lines = text_of(app, "#lines")
        assert "bob: remember this" in lines and "me: me too … 0/1" in lines

    run(first, svc, store)
    again = FakeGroupChatService(infos=dict(svc.infos))
    run(second, again, store)


def test_the_key_bar_fits_80_columns_with_the_group_key() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> None:
        await settle(pilot)
        keys = list(app.screen.query("FooterKey"))
        assert "Group" in [getattr(key, "description", "") for key in keys]
        assert max(key.region.right for key in keys) <= 81

    run(scenario)
