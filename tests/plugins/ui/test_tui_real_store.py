"""The chat store on the shell's real encrypted profile store (``SlotStore`` of ``slot:ui``):
what the TUI writes survives closing and reopening the vault, and the app runs on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from enkrypted_shell._state.store import INSECURE_TEST_KDF, SlotStore, Vault
from enkrypted_shell.contracts import ChatReceipt, ProfileStore, implementation_problems
from enkrypted_ui_cli.chatstore import ChatStore, Contact
from enkrypted_ui_cli.tui.app import ChatApp
from tests.plugins.ui.fake_chat import BOB_FP, FakeChatService

PW = b"correct horse"


def test_the_chat_survives_reopening_the_encrypted_profile_store(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    vault = Vault.create(path, PW, kdf=INSECURE_TEST_KDF)
    slot = SlotStore(vault, "ui")
    assert implementation_problems(slot, ProfileStore) == []
    service = FakeChatService()
    app = ChatApp(service, ChatStore(slot), wall=lambda: 1_700_000_000.0)

    async def main() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("f2")
            await pilot.pause()
            await pilot.press("b", "o", "b", "enter")
            for _ in range(3):
                await pilot.pause()
            await pilot.press("h", "i", "enter")
            for _ in range(3):
                await pilot.pause()
            service.emit(ChatReceipt("bob", "m1"))
            for _ in range(3):
                await pilot.pause()
            await pilot.press("f3")
            await pilot.pause()
            await pilot.press("v")
            await pilot.pause()
            await service.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))
    ChatStore(slot).save_session("bob", b"state")
    vault.close()
    with Vault.open(path, PW, upgrade_to=None) as reopened:
        store = ChatStore(SlotStore(reopened, "ui"))
        assert store.contacts() == [Contact("bob", "", BOB_FP, True)]
        assert [(x.direction, x.text, x.delivered) for x in store.history("bob")] == [
            ("out", "hi", True)
        ]
        assert store.saved_sessions() == {"bob": b"state"}
        assert SlotStore(reopened, "p2p").items("contacts") == []  # another slot sees none of it
