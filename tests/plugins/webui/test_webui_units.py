"""The web ui's pure parts: inert text, the access rules, the asset checks, the snapshot, the
request handling, and the plugin's shape (docs/webui.md)."""

from __future__ import annotations

import asyncio
import json

import pytest

import enkrypted_ui_web
import enkrypted_ui_web.plugin as web_plugin
from enkrypted_shell.contracts import AppContext, ChatMessage, FileOffered
from enkrypted_shell.testing import check_ui_service
from enkrypted_ui_cli.chatstore import ChatStore, MemoryProfileStore
from enkrypted_ui_web.access import MAX_PAGES, PROTOCOL, Access, capability_from_protocols
from enkrypted_ui_web.assets import FOLDER, check_assets, sri
from enkrypted_ui_web.chat import WebChat
from enkrypted_ui_web.errors import AssetsRefused
from enkrypted_ui_web.text import inert, one_line
from enkrypted_ui_web.view import snapshot
from tests.plugins.ui.fake_chat import BOB_FP, FakeFileChatService
from tests.plugins.webui.harness import record_hash, source_assets
from tools.webui_assets import refreshed


# ------------------------------------------------------------------------------ inert text
def test_bidi_invisible_and_control_characters_become_visible_markers() -> None:
    assert inert("invoice\u202egnp.exe") == "invoice⟨U+202E⟩gnp.exe"
    assert inert("a\u2066b\u2069c\u200fd\u061c") == "a⟨U+2066⟩b⟨U+2069⟩c⟨U+200F⟩d⟨U+061C⟩"
    assert inert("bell\x07 esc\x1b[31m nul\x00 c1\x85") == (
        "bell⟨U+0007⟩ esc⟨U+001B⟩[31m nul⟨U+0000⟩ c1⟨U+0085⟩")
    assert inert("zw\u200bsp\ufeff\u00ad") == "zw⟨U+200B⟩sp⟨U+FEFF⟩⟨U+00AD⟩"
    assert inert("tag\U000e0041") == "tag⟨U+E0041⟩"


def test_markup_emoji_joiners_and_newlines_stay_as_they_are() -> None:
    text = "<script>alert(1)</script> 👩\u200d💻 ❤\ufe0f \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645\nline two\ttab"
    assert inert(text) == text  # the page draws it with textContent: markup is only text
    assert one_line("a\n b\t\tc", 10) == "a b c"
    assert len(inert("x" * 100_000)) == 65_536


# ------------------------------------------------------------------------------ access rules
def test_only_our_host_and_origin_get_in_and_changes_need_the_origin() -> None:
    access = Access(8123)
    me = "http://127.0.0.1:8123"
    ok = access.check("GET", "127.0.0.1:8123", None, cookie=None, capability=None,
                          needs_session=False)
    assert ok.allowed
    for host in ("evil.example:8123", "localhost:8123", "127.0.0.1:8124", None):
        verdict = access.check("GET", host, None, cookie=None, capability=None,
                          needs_session=False)
        assert (verdict.status, verdict.allowed) == (421, False), host
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null", "http://localhost:8123"):
        verdict = access.check("POST", "127.0.0.1:8123", origin, cookie=None, capability=None,
                          needs_session=False)
        assert verdict.status == 403, origin
    assert access.check("POST", "127.0.0.1:8123", None, cookie=None, capability=None,
                          needs_session=False).status == 403
    assert access.check("WEBSOCKET", "127.0.0.1:8123", None, cookie=None, capability=None,
                          needs_session=False).status == 403
    assert access.check("POST", "127.0.0.1:8123", me, cookie=None, capability=None,
                          needs_session=False).allowed


def test_the_secret_buys_a_session_and_a_page_capability_and_nothing_else_does() -> None:
    access = Access(8123)
    me = "http://127.0.0.1:8123"
    assert access.url == f"{me}/#s={access.secret}" and len(access.secret) >= 43
    assert access.exchange("wrong") is None and access.exchange("") is None
    grant = access.exchange(access.secret)
    assert grant is not None and access.secret not in (grant.session, grant.capability)
    assert grant.session != grant.capability and repr(grant) == "Grant()"  # kept out of logs

    def verdict(cookie: str | None, capability: str | None) -> int:
        return access.check("WEBSOCKET", "127.0.0.1:8123", me, cookie=cookie,
                            capability=capability, needs_session=True).status

    assert verdict(grant.session, grant.capability) == 200
    for cookie, capability in ((None, None), ("", grant.capability), (access.secret, grant.capability),
                               (grant.session + "x", grant.capability), (grant.capability, grant.session)):
        assert verdict(cookie, capability) == 401, (cookie, capability)
    tokens = [access.exchange(access.secret) for _ in range(20)]  # bounded: oldest forgotten
    assert tokens[-1] is not None
    assert not access.has_session(grant.session, grant.capability)
    assert access.has_session(tokens[-1].session, tokens[-1].capability)


def test_the_cookie_alone_is_not_enough_a_capability_works_only_with_its_own_session() -> None:
    access = Access(8123)
    first, other = access.exchange(access.secret), access.exchange(access.secret)
    assert first is not None and other is not None
    assert not access.has_session(first.session, None)  # the cookie another port received
    assert not access.has_session(first.session, "")
    assert not access.has_session(first.session, other.capability)  # another browser's page
    assert not access.has_session(None, first.capability)
    # a second tab of the same browser: same session, its own capability, the first still works
    tab = access.exchange(access.secret, first.session)
    assert tab is not None and tab.session == first.session and tab.capability != first.capability
    assert access.has_session(first.session, first.capability)
    assert access.has_session(first.session, tab.capability)
    tabs = [access.exchange(access.secret, first.session) for _ in range(MAX_PAGES)]
    assert not access.has_session(first.session, first.capability)  # bounded: oldest forgotten
    assert all(t is not None and access.has_session(first.session, t.capability) for t in tabs)
    assert access.exchange(access.secret, "not-a-session") not in (None, first)
    # undecodable header bytes (surrogate-escaped) and lone surrogates compare unequal, no error
    assert access.exchange("\ud800") is None and access.exchange(access.secret, "\udcff") is not None
    assert not access.has_session("\udcff\udcfe", first.capability)
    assert not access.has_session(first.session, "\ud800")


def test_the_websocket_capability_rides_in_the_subprotocol_list() -> None:
    assert capability_from_protocols(f"{PROTOCOL}, enkrypted.cap.abc_-9") == "abc_-9"
    assert capability_from_protocols(PROTOCOL) is None
    assert capability_from_protocols(None) is None and capability_from_protocols("") is None


# ------------------------------------------------------------------------------ assets
def test_the_committed_page_carries_current_integrity_and_passes_the_checks() -> None:
    given, record = source_assets()
    page = given["index.html"].decode()
    assert refreshed(page) == page, "run tools/webui_assets.py"
    assets = check_assets(given, record)
    assert sorted(assets.by_name) == ["app.js", "icon.svg", "index.html", "style.css"]
    assert assets.by_name["app.js"].integrity == sri(given["app.js"])
    assert assets.digests()["index.html"].startswith("sha256:")


def test_a_changed_missing_foreign_or_unintegral_asset_is_refused() -> None:
    given, record = source_assets()
    tampered = {**given, "app.js": given["app.js"] + b"\nfetch('https://evil.example')"}
    with pytest.raises(AssetsRefused, match="app.js does not match its RECORD hash"):
        check_assets(tampered, record)
    with pytest.raises(AssetsRefused, match="lack style.css"):
        check_assets({k: v for k, v in given.items() if k != "style.css"}, record)
    with pytest.raises(AssetsRefused, match="no verified page files"):
        check_assets({}, record)
    extra = {**given, "x.exe": b"MZ"}
    with pytest.raises(AssetsRefused, match="x.exe has a type"):
        check_assets(extra, {**record, FOLDER + "x.exe": record_hash(b"MZ")})
    page = given["index.html"].replace(b'src="/app.js" integrity="sha384-', b'src="/app.js" integrity="sha384-A')
    with pytest.raises(AssetsRefused, match="integrity of /app.js"):
        check_assets({**given, "index.html": page}, {**record, FOLDER + "index.html": record_hash(page)})
    inline = given["index.html"].replace(b"</head>", b"<script>alert(1)</script></head>")
    with pytest.raises(AssetsRefused, match="without a source"):
        check_assets({**given, "index.html": inline}, {**record, FOLDER + "index.html": record_hash(inline)})


# ------------------------------------------------------------------------------ snapshot, requests
def test_the_snapshot_carries_peer_text_inert_and_requests_are_checked() -> None:
    async def scenario() -> None:
        service = FakeFileChatService()
        chat = WebChat(service, ChatStore(MemoryProfileStore()), wall=lambda: 1000.0)
        chat.handle({"op": "connect", "target": "bob"})
        await asyncio.sleep(0.05)
        service.emit(service.established("bob", BOB_FP))
        service.emit(ChatMessage("bob", "m1", "<img src=x onerror=alert(1)>\u202e", 999.0))
        service.emit(FileOffered("bob", "t1", "cv\u202efdp.exe", 10, "ab" * 32, False))
        await service.aclose()  # the event stream ends after these
        await chat.pump()
        doc = snapshot(chat.model, now=1000.0, files=True)
        json.dumps(doc)  # plain data
        lines = doc["conversation"]["lines"]
        assert any(x["text"] == "<img src=x onerror=alert(1)>⟨U+202E⟩" for x in lines)
        assert doc["transfers"][0]["name"] == "cv⟨U+202E⟩fdp.exe"
        assert "(F" not in json.dumps(doc)  # the TUI's key hints are reworded
        chat.handle({"op": "nonsense"})
        assert "unknown request" in chat.model.notice
        chat.handle({"op": "send", "peer": "<b>", "text": "x"})
        assert "not a peer id" in chat.model.notice
        chat.handle({"op": "send", "peer": "bob", "text": 5})
        assert "text must be text" in chat.model.notice

    asyncio.run(scenario())


def test_the_plugin_has_the_ui_contract_shape_and_a_pinned_surface(tmp_path) -> None:
    assert enkrypted_ui_web.__all__ == ["__version__"]
    assert sorted(web_plugin.__all__) == ["WebUI", "plugin"]
    service = web_plugin.plugin.enkrypted_ui_service(AppContext(tmp_path), crypto=None, transport=None)  # type: ignore[arg-type]
    check_ui_service(service, version="1.0")
    assert service.run([]) == 0
    commands = web_plugin.plugin.enkrypted_cli_commands(AppContext(tmp_path))
    assert [c.name for c in commands] == ["chat"]
