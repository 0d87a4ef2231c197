"""Groups in the web chat in headless Chromium (DevTools protocol, tools/browser.py) on the
scripted group service (fake_groups.py): a group created from the page, members added by peer
id, a message with per-member receipts, the membership view (fingerprints, safety numbers), a
changed member key blocking sending until acknowledged, a fork with its re-join, leaving; a
hostile group name and text drawn as inert text, no CSP issue, every request to our origin."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from enkrypted_shell.contracts import GroupChatReceipt
from enkrypted_ui_web.server import WebServer
from tests.plugins.ui.fake_chat import BOB_FP, MALLORY_FP
from tests.plugins.webui.fake_groups import FakeGroupChatService
from tests.plugins.webui.harness import running
from tools.browser import CHROMIUM, Browser

pytestmark = pytest.mark.slow
CAROL_FP = "c4" * 32
HOSTILE_NAME = "<img src=x onerror=\"window.__pwned='name'\">\u202eevil\u2066"
HOSTILE_TEXT = "<script>window.__pwned = 'text'</script> invoice\u202egnp.exe bell\x07"
ROW = "#group-members tbody tr"


def in_browser(body: Callable[[WebServer, FakeGroupChatService, Browser], Awaitable[None]]) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run make test (tools/setup/system-packages.sh)")

    async def run() -> None:
        service = FakeGroupChatService(reachable={"bob": BOB_FP, "carol": CAROL_FP})
        async with running(service) as server, Browser() as browser:
            await browser.goto(server.access.url)
            await browser.wait_for("document.getElementById('me').textContent === 'alice-7f3k9q'")
            await browser.wait_for("!document.getElementById('groups-box').hidden")
            await body(server, service, browser)

    asyncio.run(asyncio.wait_for(run(), 150))


async def group_with_bob_and_carol(service: FakeGroupChatService, browser: Browser) -> str:
    """Connect bob (a 1:1 session: his safety number), create a group, add bob and carol."""
    await browser.click("open-connect")
    await browser.type_into("target", "bob")
    await browser.click("connect")
    await browser.wait_for("document.querySelector('#contacts li[data-state=ready]') !== null")
    await browser.click("open-new-group")
    await browser.type_into("new-group-name", "project x")
    await browser.click("group-create")
    await browser.wait_for("document.querySelector('#groups li.active') !== null")
    (gid,) = service.group_infos
    assert await browser.evaluate("document.getElementById('conv-title').textContent") == "project x"
    await browser.click("open-group")
    for peer in ("bob", "carol"):
        await browser.type_into("group-peer", peer)
        await browser.click("group-add")
        await browser.wait_for(f"document.querySelector('{ROW}[data-peer={peer}]') !== null")
    return gid


def texts(selector: str) -> str:
    return f"[...document.querySelectorAll({selector!r})].map(e => e.textContent)"


def test_a_group_created_members_added_messages_with_receipts_hostile_text_inert() -> None:
    async def body(server: WebServer, service: FakeGroupChatService, browser: Browser) -> None:
        gid = await group_with_bob_and_carol(service, browser)
        rows = await browser.evaluate(
            f"[...document.querySelectorAll('{ROW}')].map(r => [r.dataset.peer, r.dataset.crypto, "
            "r.children[1].textContent, r.children[2].textContent])")
        assert [r[:2] for r in rows] == [["alice-7f3k9q", "me"], ["bob", "unverified"],
                                         ["carol", "unverified"]]
        assert rows[1][2] == BOB_FP and rows[2][2] == CAROL_FP
        assert len(rows[1][3].split()) == 12  # bob's 1:1 safety number, in groups of five
        assert rows[2][3] == "no 1:1 session with this key"
        assert "3 members" in await browser.evaluate("document.getElementById('pg-state').textContent")
        await browser.evaluate("document.querySelector('#panel-group .close').click()")
        await browser.type_into("message", "kick-off at <b>10</b>")
        await browser.click("send")
        await browser.wait_for(f"{texts('#conversation li.out .rcpt')}.join() === '…bob,…carol'")
        assert service.group_sent == [(gid, "kick-off at <b>10</b>")]
        service.emit(GroupChatReceipt(gid, "g1", "bob", BOB_FP))
        await browser.wait_for(f"{texts('#conversation li.out .rcpt.done')}.join() === '✓bob'")
        service.member_says(gid, "carol", HOSTILE_TEXT, "c1")
        service.member_renames(gid, "carol", HOSTILE_NAME)
        await browser.wait_for(f"{texts('#conversation li.in .text')}.length === 1")
        shown = await browser.evaluate(f"{texts('#conversation li.in .text')}[0]")
        assert shown == ("<script>window.__pwned = 'text'</script> invoice⟨U+202E⟩gnp.exe "
                         "bell⟨U+0007⟩")
        assert await browser.evaluate(f"{texts('#conversation li.in .who')}[0]") == "carol:"
        name = "<img src=x onerror=\"window.__pwned='name'\">⟨U+202E⟩evil⟨U+2066⟩"
        await browser.wait_for(f"document.getElementById('conv-title').textContent === {name!r}")
        assert await browser.evaluate("document.querySelector('#groups li .label').textContent") == name
        assert await browser.evaluate(
            "document.querySelectorAll('#body script, #body img, #groups img').length") == 0
        await asyncio.sleep(0.3)
        assert await browser.evaluate("window.__pwned === undefined")
        # a 1:1 contact selected: the 1:1 conversation again; the group is one click away
        await browser.evaluate("document.querySelector('#contacts li button').click()")
        await browser.wait_for("document.getElementById('conv-title').textContent === 'bob'")
        service.member_says(gid, "bob", "are you there?", "b1")
        await browser.wait_for("document.querySelector('#groups li .unread')?.textContent === '1'")
        assert browser.csp_issues == [] and browser.exceptions == [], (browser.csp_issues, browser.exceptions)
        origin, ws = server.access.origin, server.access.origin.replace("http", "ws")
        assert all(u.startswith((origin + "/", ws + "/", f"blob:{origin}/")) for u in browser.requests), browser.requests

    in_browser(body)


def test_changed_member_key_fork_rename_remove_and_leave_are_shown() -> None:
    async def body(server: WebServer, service: FakeGroupChatService, browser: Browser) -> None:
        gid = await group_with_bob_and_carol(service, browser)
        service.member_key(gid, "bob", MALLORY_FP)  # bob's contact is pinned to BOB_FP
        await browser.wait_for(f"document.querySelector('{ROW}[data-peer=bob]').dataset.crypto === 'changed'")
        assert not await browser.evaluate("document.getElementById('pg-changed').hidden")
        assert await browser.evaluate("document.getElementById('send').disabled")
        assert "bob's identity key changed" in await browser.evaluate(
            "document.getElementById('banner').textContent")
        await browser.type_into("message", "who is this?")
        await browser.evaluate("document.getElementById('send').click()")
        await asyncio.sleep(0.3)
        assert service.group_sent == []
        await browser.evaluate(f"document.querySelector('{ROW}[data-peer=bob] button[data-action=acknowledge]').click()")
        await browser.wait_for(f"document.querySelector('{ROW}[data-peer=bob]').dataset.crypto === 'unverified'")
        assert not await browser.evaluate("document.getElementById('send').disabled")
        assert server.chat.model.store.group_keys(gid)["bob"] == MALLORY_FP  # kept in the profile
        service.fork(gid, "carol", "fork check differs at epoch 3")
        await browser.wait_for("document.querySelector('#groups li').dataset.state === 'rejoining'")
        assert "FORK at epoch 3, reported by carol" in await browser.evaluate(
            "document.getElementById('pg-fork').textContent")
        assert await browser.evaluate("document.getElementById('send').disabled")
        service.welcome(gid)
        await browser.wait_for("document.querySelector('#groups li').dataset.state === 'active'")
        assert await browser.evaluate("document.getElementById('pg-fork').hidden")
        await browser.type_into("group-name", "renamed")
        await browser.click("group-rename")
        await browser.wait_for("document.getElementById('pg-name').textContent === 'renamed'")
        await browser.evaluate(f"document.querySelector('{ROW}[data-peer=carol] button[data-action=remove]').click()")
        await browser.wait_for(f"document.querySelectorAll('{ROW}').length === 2")
        await browser.click("group-leave")
        await browser.wait_for("document.querySelector('#groups li').dataset.state === 'left'")
        assert "you left “renamed”: read-only" in await browser.evaluate("document.getElementById('pg-left').textContent")
        assert await browser.evaluate("document.getElementById('group-add').disabled")
        assert await browser.evaluate("document.getElementById('send').disabled")
        assert [c[0] for c in service.calls] == ["create", "invite", "invite", "rename", "remove",
                                                 "leave"]
        assert browser.csp_issues == [] and browser.exceptions == [], (browser.csp_issues, browser.exceptions)

    in_browser(body)
