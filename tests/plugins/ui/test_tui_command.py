"""``enkrypted chat`` and ``enkrypted history`` as the ui plugin contributes them: one-line errors
without a profile or with a p2p 1.0 transport, the chat's lifetime (saved sessions resumed and
saved again, service closed), the history output, and the plugin's import boundary."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from enkrypted_shell.contracts import (
    AppContext,
    ChatReceipt,
    Endpoint,
    TransportServiceV2,
    implementation_problems,
)
from enkrypted_ui_cli.chatstore import ChatStore, Line, MemoryProfileStore
from enkrypted_ui_cli.command import chat_inputs, run_chat
from enkrypted_ui_cli.errors import ChatUnavailable
from enkrypted_ui_cli.invite import Target
from enkrypted_ui_cli.plugin import UiCliPlugin
from enkrypted_ui_cli.tui.app import ChatApp
from tests.plugins.ui.fake_chat import BOB_FP, FakeChatService

ROOT = Path(__file__).resolve().parents[3]
MANIFEST = ROOT / "plugins/ui_cli/src/enkrypted_ui_cli/enkrypted-plugin.toml"


class FakeTransportV2:
    """A p2p 2.0 transport whose ``open_chat`` hands out a :class:`FakeChatService`."""

    name = "fake"
    capabilities = frozenset({"chat"})

    def __init__(self) -> None:
        self.service = FakeChatService()
        self.opened: list[dict[str, Any]] = []

    async def open_endpoint(
        self, settings: Mapping[str, object] | None = None, *, peer_id: str | None = None
    ) -> Endpoint:
        raise NotImplementedError

    async def open_chat(
        self,
        identity: bytes,
        settings: Mapping[str, object] | None = None,
        *,
        peer_id: str | None = None,
        saved: Mapping[str, bytes] | None = None,
    ) -> FakeChatService:
        self.opened.append({"identity": identity, "peer_id": peer_id, "saved": dict(saved or {})})
        return self.service


class OldTransport:
    name = "memory"
    capabilities = frozenset({"loopback"})

    async def loopback_pair(self, first: str, second: str) -> tuple[object, object]:
        raise NotImplementedError


def context(**fields: object) -> AppContext:
    return SimpleNamespace(home=Path("."), settings={}, **fields)  # type: ignore[return-value]


def commands(ctx: AppContext, transport: object) -> dict[str, Any]:
    plugin = UiCliPlugin()
    plugin.service = SimpleNamespace(transport=transport)  # type: ignore[assignment]
    return {c.name: c for c in plugin.enkrypted_cli_commands(ctx)}


def test_the_manifest_declares_exactly_the_commands_the_plugin_provides() -> None:
    import tomllib

    declared = tomllib.loads(MANIFEST.read_text())["plugin"]["commands"]
    assert sorted(declared) == sorted(commands(context(), None)) == ["chat", "demo", "history"]


def test_the_fake_transport_is_a_2_0_transport() -> None:
    assert implementation_problems(FakeTransportV2(), TransportServiceV2) == []


@pytest.mark.parametrize(
    ("ctx", "transport", "says"),
    [
        (
            context(),
            FakeTransportV2(),
            "no unlocked profile: create one with `enkrypted profile create",
        ),
        (context(identity=b"k"), FakeTransportV2(), "no unlocked profile"),
        (context(store=MemoryProfileStore()), FakeTransportV2(), "no unlocked profile"),
        (
            context(identity=b"k", store=MemoryProfileStore()),
            OldTransport(),
            "provides transport contract 1.0",
        ),
    ],
)
def test_chat_refuses_in_one_line_without_a_profile_or_with_p2p_1_0(
    ctx: AppContext, transport: object, says: str
) -> None:
    with pytest.raises(ChatUnavailable, match=says):
        chat_inputs(ctx, transport)
    result = CliRunner().invoke(commands(ctx, transport)["chat"], [])
    assert result.exit_code == 1 and says in result.output
    assert result.output.count("\n") == 1


def test_chat_refuses_a_bad_connect_argument_in_one_line() -> None:
    ctx = context(identity=b"k", store=MemoryProfileStore())
    result = CliRunner().invoke(commands(ctx, FakeTransportV2())["chat"], ["--connect", "bob!"])
    assert result.exit_code == 1 and "is not a peer id" in result.output
    assert result.output.count("\n") == 1


def test_run_chat_resumes_saved_sessions_dials_the_target_and_saves_on_exit() -> None:
    transport = FakeTransportV2()
    store = ChatStore(MemoryProfileStore())
    store.save_session("carol", b"kept")

    async def drive(app: ChatApp) -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(5):
                await pilot.pause()
            assert app.model.peers["bob"].state == "ready"  # dialled at start (--connect)
            app.query_one("#message").value = "hi"  # type: ignore[attr-defined]
            await pilot.press("enter")
            for _ in range(3):
                await pilot.pause()
            transport.service.emit(ChatReceipt("bob", "m1"))
            for _ in range(3):
                await pilot.pause()

    asyncio.run(
        asyncio.wait_for(
            run_chat(
                transport, b"id", store, peer_id="alice", target=Target("bob", BOB_FP), runner=drive
            ),
            30,
        )
    )
    assert transport.opened == [
        {"identity": b"id", "peer_id": "alice", "saved": {"carol": b"kept"}}
    ]
    assert transport.service.sent == [("bob", "hi")] and transport.service.closed
    assert store.saved_sessions() == {"bob": b"state:bob", "carol": b"kept"}
    assert [(x.text, x.delivered) for x in store.history("bob")] == [("hi", True)]


def test_history_prints_text_and_json_and_needs_a_profile() -> None:
    backing = MemoryProfileStore()
    store = ChatStore(backing)
    store.append("bob", Line("out", "hi", 0.0, "m1"))
    store.append_receipt("bob", "m1")
    store.append("bob", Line("in", "hello", 60.0, "x1", True))
    history = commands(context(store=backing), None)["history"]
    text = CliRunner().invoke(history, ["bob"], env={"TZ": "UTC"})
    assert text.exit_code == 0
    assert text.output.splitlines()[0].endswith("me: hi ✓") and "bob: hello" in text.output
    doc = json.loads(CliRunner().invoke(history, ["bob", "--json"]).output)
    assert [m["text"] for m in doc["messages"]] == ["hi", "hello"] and doc["messages"][0][
        "delivered"
    ]
    bad = CliRunner().invoke(history, ["bob!"])
    assert bad.exit_code == 1 and "is not a peer id" in bad.output
    missing = CliRunner().invoke(commands(context(), None)["history"], ["bob"])
    assert missing.exit_code == 1 and "no unlocked profile" in missing.output


def test_the_ui_plugin_imports_no_p2p_or_crypto_code_and_textual_only_for_the_chat() -> None:
    probe = (
        "import sys, enkrypted_ui_cli.plugin as p; assert 'textual' not in sys.modules;"
        "import enkrypted_ui_cli.tui.app;"
        "print(sorted(m for m in sys.modules if m.startswith(('enkrypted_p2p', 'enkrypted_crypto'))))"
    )
    paths = [str(ROOT / "shell/src"), str(ROOT / "plugins/ui_cli/src")]
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": ":".join(paths)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]"
