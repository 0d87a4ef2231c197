"""The chat TUI at 80x24 under Textual's pilot, on the scripted :class:`FakeChatService`:
every screen (main, connect, safety number, help) and the flows the issue lists — connect,
send, receive, verify a contact, a changed identity key blocking sending."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static

from enkrypted_shell.contracts import (
    ChatMessage,
    ChatReceipt,
    ChatService,
    ChatTyping,
    PeerStateChanged,
    SessionEstablished,
    implementation_problems,
)
from enkrypted_shell.errors import StoreBusyError
from enkrypted_ui_cli.chatstore import ChatStore, Contact, MemoryProfileStore
from enkrypted_ui_cli.invite import format_invite
from enkrypted_ui_cli.tui.app import ChatApp
from enkrypted_ui_cli.tui.render import qr_text
from enkrypted_ui_cli.tui.screens import ConnectScreen, HelpScreen, SafetyScreen
from tests.plugins.ui.fake_chat import ALICE_FP, BOB_FP, MALLORY_FP, FakeChatService

NOW = 1_700_000_000.0
Scenario = Callable[[ChatApp, Pilot[None], FakeChatService], Awaitable[None]]


def run(
    scenario: Scenario, service: FakeChatService | None = None, store: ChatStore | None = None
) -> ChatApp:
    """Run ``scenario`` against a fresh app at 80x24; bounded to 30 s."""
    service = service or FakeChatService()
    app = ChatApp(service, store or ChatStore(MemoryProfileStore()), wall=lambda: NOW)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await scenario(app, pilot, service)
            await service.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))
    return app


def text_of(app: ChatApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def settle(pilot: Pilot[None]) -> None:
    for _ in range(3):
        await pilot.pause()


async def type_line(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*("space" if c == " " else c for c in text))


async def connect_bob(app: ChatApp, pilot: Pilot[None]) -> None:
    await pilot.press("f2")
    await settle(pilot)
    await type_line(pilot, "bob")
    await pilot.press("enter")
    await settle(pilot)


def test_the_fake_service_meets_the_chat_service_contract() -> None:
    assert implementation_problems(FakeChatService(), ChatService) == []


def test_main_screen_fits_80x24_with_help_keys_and_status_bar() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        assert app.size == (80, 24)
        assert "online as alice-7f3k9q" in text_of(app, "#status")
        assert "F2 to connect" in text_of(app, "#lines")
        await settle(pilot)
        footer = [getattr(key, "description", "") for key in app.screen.query("FooterKey")]
        assert {"Help", "Connect", "Safety", "Files", "Hang up", "Quit"} <= set(footer)
        keys = list(app.screen.query("FooterKey"))
        # the whole key bar fits 80 columns (only the last key's right padding cell may not)
        assert max(key.region.right for key in keys) <= 81

    run(scenario)


def test_connect_flow_by_peer_id_shows_state_profile_and_layers() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await connect_bob(app, pilot)
        assert not isinstance(app.screen, ConnectScreen)
        status = text_of(app, "#status")
        assert "bob ready" in status and "B1" in status and "mls>signal>mlkem>aes" in status
        contacts = app.query_one("#contacts", OptionList)
        assert contacts.option_count == 1 and "bob" in str(contacts.get_option_at_index(0).prompt)
        assert "session established" in text_of(app, "#lines")

    run(scenario)


def test_connect_screen_shows_own_id_fingerprint_and_the_invite_qr_code() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await pilot.press("f2")
        await settle(pilot)
        assert isinstance(app.screen, ConnectScreen)
        invite = format_invite(ALICE_FP, "alice-7f3k9q")
        assert text_of(app, "#qr-code") == qr_text(invite)
        assert "alice-7f3k9q" in text_of(app, "#own-id")
        assert "a1a1 a1a1" in text_of(app, "#own-fingerprint")
        assert text_of(app, "#invite") == invite
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ConnectScreen)

    run(scenario)


def test_a_bad_invite_is_a_one_line_error_and_the_input_is_kept() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await pilot.press("f2")
        await settle(pilot)
        await type_line(pilot, "enkrypted://peer/zz?id=bob")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConnectScreen)
        error = text_of(app, "#connect-error")
        assert "64 lowercase hex" in error and "\n" not in error
        assert app.screen.query_one("#target", Input).value == "enkrypted://peer/zz?id=bob"

    run(scenario)


def test_an_invite_link_pins_its_fingerprint_and_a_mismatch_is_flagged() -> None:
    service = FakeChatService(reachable={"bob": MALLORY_FP})

    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await pilot.press("f2")
        await settle(pilot)
        app.screen.query_one("#target", Input).value = format_invite(BOB_FP, "bob")
        await pilot.press("enter")
        await settle(pilot)
        assert app.model.peers["bob"].key_changed
        assert "IDENTITY KEY CHANGED" in text_of(app, "#warning")

    run(scenario, service)


def test_an_unreachable_peer_is_reported_in_one_line() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await pilot.press("f2")
        await settle(pilot)
        await type_line(pilot, "nobody")
        await pilot.press("enter")
        await settle(pilot)
        assert (
            text_of(app, "#notice") == "could not connect: peer 'nobody' is not known to the broker"
        )

    run(scenario)


def test_send_shows_pending_then_delivered_and_recalls_history() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await connect_bob(app, pilot)
        await type_line(pilot, "hi bob")
        await pilot.press("enter")
        await settle(pilot)
        assert service.sent == [("bob", "hi bob")] and service.typing == ["bob"]
        assert "me: hi bob …" in text_of(app, "#lines")
        service.emit(ChatReceipt("bob", "m1"))
        await settle(pilot)
        assert "me: hi bob ✓" in text_of(app, "#lines")
        message = app.query_one("#message", Input)
        assert message.value == ""
        await pilot.press("up")
        assert message.value == "hi bob"
        await pilot.press("down")
        assert message.value == ""

    run(scenario)


def test_receive_shows_timestamps_unread_counts_and_typing() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await connect_bob(app, pilot)
        service.emit(ChatTyping("bob"))
        await settle(pilot)
        assert text_of(app, "#notice") == "bob is typing…"
        app.wall = lambda: NOW + 6  # the hint expires with the clock, no event needed
        app.refresh_notice()
        assert text_of(app, "#notice") != "bob is typing…"
        app.wall = lambda: NOW
        service.emit(ChatMessage("bob", "x1", "hello alice", NOW))
        service.emit(SessionEstablished("carol", "B1", ("aes",), MALLORY_FP, "2" * 60))
        service.emit(ChatMessage("carol", "c1", "psst", NOW))
        await settle(pilot)
        assert "bob: hello alice" in text_of(app, "#lines") and "[" in text_of(app, "#lines")
        contacts = app.query_one("#contacts", OptionList)
        assert "carol (1)" in str(contacts.get_option_at_index(1).prompt)
        await pilot.press("f7")  # next contact
        await settle(pilot)
        assert app.model.active == "carol" and "carol: psst" in text_of(app, "#lines")
        assert "(1)" not in str(contacts.get_option_at_index(1).prompt)

    run(scenario)


def test_verify_a_contact_on_the_safety_number_screen() -> None:
    store = ChatStore(MemoryProfileStore())

    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await connect_bob(app, pilot)
        await pilot.press("f3")
        await settle(pilot)
        assert isinstance(app.screen, SafetyScreen)
        assert text_of(app, "#safety-number").startswith("12345 12346 12347")
        assert "b0b0 b0b0" in text_of(app, "#peer-fingerprint")
        assert "not verified" in text_of(app, "#safety-state")
        await pilot.press("v")
        await settle(pilot)
        assert not isinstance(app.screen, SafetyScreen)
        assert "✓" in str(app.query_one("#contacts", OptionList).get_option_at_index(0).prompt)

    run(scenario, store=store)
    assert store.contacts() == [Contact("bob", "", BOB_FP, True)]


def test_a_changed_identity_key_blocks_sending_until_acknowledged() -> None:
    store = ChatStore(MemoryProfileStore())
    store.save_contact(Contact("bob", "", BOB_FP, True))
    service = FakeChatService(reachable={"bob": MALLORY_FP})

    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await connect_bob(app, pilot)
        assert app.query_one("#warning", Static).display
        assert "IDENTITY KEY CHANGED" in text_of(app, "#warning")
        assert "!" in str(app.query_one("#contacts", OptionList).get_option_at_index(0).prompt)
        await type_line(pilot, "secret")
        await pilot.press("enter")
        await settle(pilot)
        assert service.sent == [] and service.typing == []
        assert "identity key changed" in text_of(app, "#notice")
        assert app.query_one("#message", Input).value == "secret"  # nothing lost
        await pilot.press("f3")
        await settle(pilot)
        assert "IDENTITY KEY CHANGED" in text_of(app, "#safety-warning")
        assert "b0b0" in text_of(app, "#old-fingerprint") and "0bad" in text_of(
            app, "#peer-fingerprint"
        )
        await pilot.press("v")  # verifying is not offered past a changed key
        await settle(pilot)
        assert isinstance(app.screen, SafetyScreen)
        await pilot.press("a")
        await settle(pilot)
        assert not app.query_one("#warning", Static).display
        await pilot.press("enter")
        await settle(pilot)
        assert service.sent == [("bob", "secret")]

    run(scenario, service, store)
    assert store.contacts() == [Contact("bob", "", MALLORY_FP, False)]


def test_help_screen_lists_the_keys() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        assert "F3" in text_of(app, "#help") and "enkrypted://peer/" in text_of(app, "#help")
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, HelpScreen)

    run(scenario)


def test_a_slow_connect_never_blocks_the_ui() -> None:
    release = asyncio.Event()

    class SlowService(FakeChatService):
        async def connect(self, peer_id: str, timeout: float | None = None) -> SessionEstablished:
            self.emit(PeerStateChanged(peer_id, "connecting"))
            await release.wait()
            return await super().connect(peer_id, timeout)

    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await connect_bob(app, pilot)
        assert "bob connecting" in text_of(app, "#status")
        await pilot.press("f1")  # the UI answers while the connect is still waiting
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        release.set()
        await settle(pilot)
        assert "bob ready" in text_of(app, "#status")

    run(scenario, SlowService())


def test_history_and_contacts_are_shown_again_on_the_next_start() -> None:
    store = ChatStore(MemoryProfileStore())

    async def first(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await connect_bob(app, pilot)
        await type_line(pilot, "remember me")
        await pilot.press("enter")
        await settle(pilot)

    async def second(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        assert "me: remember me" in text_of(app, "#lines")
        assert "bob" in str(app.query_one("#contacts", OptionList).get_option_at_index(0).prompt)

    run(first, store=store)
    run(second, store=store)


def test_the_status_bar_says_offline_when_the_service_stops() -> None:
    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await service.aclose()
        await settle(pilot)
        assert "offline" in text_of(app, "#status")
        assert text_of(app, "#notice") == "the chat service stopped"

    run(scenario)


def test_a_store_that_refuses_a_write_is_a_notice_not_a_crash() -> None:
    class BusyStore(MemoryProfileStore):
        def append(self, stream: bytes, value: bytes) -> int:
            raise StoreBusyError("another process holds the profile store")

    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        await connect_bob(app, pilot)
        service.emit(ChatMessage("bob", "x1", "hello", NOW))
        await settle(pilot)
        assert "not saved to the profile: another process" in text_of(app, "#notice")
        service.emit(ChatMessage("bob", "x2", "still here", NOW))
        await settle(pilot)
        assert "bob: still here" in text_of(app, "#lines")

    run(scenario, store=ChatStore(BusyStore()))


def test_hang_up_and_peers_already_running_at_start() -> None:
    service = FakeChatService()
    service.states["carol"] = "reconnecting"  # e.g. resumed by open_chat before the app started

    async def scenario(app: ChatApp, pilot: Pilot[None], service: FakeChatService) -> None:
        assert app.model.peers["carol"].state == "reconnecting"
        await connect_bob(app, pilot)
        await pilot.press("f8")
        await settle(pilot)
        assert app.model.peers["bob"].state == "disconnected"
        assert "disconnected: closed by us" in text_of(app, "#lines")
        await type_line(pilot, "late")
        await pilot.press("enter")
        await settle(pilot)
        assert service.sent == [] and "bob is disconnected" in text_of(app, "#notice")

    run(scenario, service)
