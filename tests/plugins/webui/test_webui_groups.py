"""Groups in the web chat (p2p 2.2 ``GroupChatService``), without a browser: the view-model (the
presenter's, ``ChatModel.groups``, shared with the TUI) as the web drives it, the group part of
the snapshot, the ``group-*`` requests over the scripted group service, acknowledged keys kept in
the profile, and the HTTP surface (docs/webui.md, "Groups")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

from aiohttp import ClientSession, CookieJar

from enkrypted_shell.contracts import (
    GroupChatForked,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatProblem,
    GroupChatReceipt,
    GroupInfo,
    GroupMember,
)
from enkrypted_ui_cli.chatstore import ChatStore, Contact, MemoryProfileStore
from enkrypted_ui_cli.tui.groups import MAX_GROUPS, MAX_LINES
from enkrypted_ui_cli.tui.model import ChatModel
from enkrypted_ui_web.access import PROTOCOL
from enkrypted_ui_web.chat import WebChat
from enkrypted_ui_web.view import snapshot
from tests.plugins.ui.fake_chat import BOB_FP, MALLORY_FP, FakeFileChatService
from tests.plugins.webui.fake_groups import ALICE_FP, FakeGroupChatService
from tests.plugins.webui.harness import running

CAROL_FP = "c4" * 32
GID = "ab" * 16
ME = GroupMember("alice-7f3k9q", ALICE_FP)
BOB = GroupMember("bob", BOB_FP)
CAROL = GroupMember("carol", CAROL_FP)


def model(pins: dict[str, str] | None = None, store: ChatStore | None = None) -> ChatModel:
    """The presenter as the web chat makes it; ``pins``: contacts pinned to a fingerprint."""
    store = store or ChatStore(MemoryProfileStore())
    for peer, fp in (pins or {}).items():
        store.save_contact(Contact(peer, pinned=fp))
    return ChatModel(store, local_id="alice-7f3k9q", fingerprint=ALICE_FP)


# ------------------------------------------------------------------------------ view-model
def test_membership_receipts_per_member_and_unread_follow_the_events() -> None:
    m = model()
    m.apply(GroupChatMembership(GID, "friends", 1, (ME, BOB), (BOB_FP,), (), ALICE_FP), 10.0)
    m.apply(GroupChatMembership(GID, "friends", 2, (ME, BOB, CAROL), (CAROL_FP,)), 11.0)
    view = m.groups.views[GID]
    assert (view.name, view.epoch, [x.peer_id for x in view.members]) == (
        "friends", 2, ["alice-7f3k9q", "bob", "carol"])
    notes = [x.text for x in view.lines if x.direction == "note"]
    assert notes == ["joined “friends” at epoch 1: 2 members", "bob joined (epoch 1)",
                     "carol joined (epoch 2)"]
    m.apply(GroupChatReceipt(GID, "g1", "bob", BOB_FP), 12.0)  # before send_group_text returned
    m.groups.sent(GID, "g1", "hi both", 12.0, m.groups.recipients(GID))
    m.apply(GroupChatReceipt(GID, "g1", "carol", CAROL_FP), 13.0)
    m.apply(GroupChatReceipt(GID, "g1", "mallory", MALLORY_FP), 13.0)  # not a recipient
    out = view.lines[-1]
    assert out.recipients == (BOB_FP, CAROL_FP) and out.received == {BOB_FP, CAROL_FP}
    m.apply(GroupChatMessage(GID, "x1", "bob", BOB_FP, "hello", 2, 14.0), 14.0)
    assert view.unread == 1
    m.select_group(GID)
    assert view.unread == 0 and m.active_group == GID
    m.apply(GroupChatMessage(GID, "x2", "bob", BOB_FP, "again", 2, 15.0), 15.0)
    assert view.unread == 0  # the open group


def test_a_member_key_other_than_the_pinned_one_blocks_sending_until_acknowledged() -> None:
    m = model({"bob": BOB_FP})  # bob is a contact pinned to BOB_FP
    m.apply(GroupChatMembership(GID, "g", 1, (ME, GroupMember("bob", MALLORY_FP))), 1.0)
    assert m.groups.views[GID].changed == {"bob": MALLORY_FP}
    assert "bob's identity key changed" in (m.groups.send_blocked(GID) or "")
    m.groups.acknowledge(GID, "bob", 2.0)
    assert m.groups.send_blocked(GID) is None and m.groups.views[GID].keys["bob"] == MALLORY_FP
    # a first-seen key (no contact) is pinned for the group; a later change is caught too
    m.apply(GroupChatMembership(GID, "g", 2, (ME, GroupMember("bob", MALLORY_FP), CAROL)), 3.0)
    m.apply(GroupChatMembership(GID, "g", 3, (ME, GroupMember("bob", MALLORY_FP),
                                              GroupMember("carol", BOB_FP))), 4.0)
    assert m.groups.views[GID].changed == {"carol": BOB_FP}


def test_fork_rejoin_left_and_problems_are_shown_and_block_sending() -> None:
    m = model()
    m.apply(GroupChatMembership(GID, "g", 4, (ME, BOB)), 1.0)
    m.apply(GroupChatForked(GID, 4, "bob", "fork check differs", rejoining=True), 2.0)
    view = m.groups.views[GID]
    assert view.state == "rejoining" and view.fork is not None
    assert "re-joining" in (m.groups.send_blocked(GID) or "")
    assert "FORK at epoch 4: bob" in view.lines[-1].text
    m.select_group(GID)
    doc = snapshot(m, now=2.0, files=False, groups=m.groups)["group"]
    assert "FORK at epoch 4, reported by bob: fork check differs" in doc["fork"]
    assert "re-joining" in doc["blocked"]
    m.apply(GroupChatMembership(GID, "g", 6, (ME, BOB)), 3.0)  # the Welcome came
    assert view.state == "active" and view.fork is None and m.groups.send_blocked(GID) is None
    m.apply(GroupChatLeft(GID, 7, BOB_FP), 4.0)
    assert view.state == "left" and "bob removed you" in view.lines[-1].text
    assert "read-only" in (m.groups.send_blocked(GID) or "")
    m.apply(GroupChatProblem("", "local", "saved groups: damaged"), 5.0)
    assert "damaged" in m.notice and "" not in m.groups.views


def test_the_book_is_bounded() -> None:
    m = model()
    for i in range(MAX_GROUPS + 5):
        m.groups.load([GroupInfo(f"{i:04x}", "g", 0, (ME,), "active")], 1.0)
    assert len(m.groups.views) == MAX_GROUPS and f"at most {MAX_GROUPS} groups" in m.notice
    first = next(iter(m.groups.views))
    for i in range(MAX_LINES + 20):
        m.groups.note(m.groups.views[first], f"n{i}", 1.0)
    assert len(m.groups.views[first].lines) == MAX_LINES


# ------------------------------------------------------------------------------ requests, snapshot
async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


def chat_on(service: FakeFileChatService, store: ChatStore | None = None) -> WebChat:
    return WebChat(service, store or ChatStore(MemoryProfileStore()), wall=lambda: 1000.0)


def scenario(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 30))


def test_group_requests_drive_the_service_and_hostile_names_and_texts_stay_inert() -> None:
    async def body() -> None:
        service = FakeGroupChatService(reachable={"bob": BOB_FP, "carol": CAROL_FP})
        store = ChatStore(MemoryProfileStore())
        store.save_contact(Contact("bob", pinned=BOB_FP, verified=True))
        chat = chat_on(service, store)
        pump = asyncio.ensure_future(chat.pump())
        chat.handle({"op": "group-create", "name": "  team \n  alpha "})
        await settle()
        (gid, info), = service.group_infos.items()
        assert info.name == "team alpha" and chat.groups is not None and chat.model.active_group == gid
        for peer in ("bob", "carol"):
            chat.handle({"op": "group-add", "group": gid, "peer": peer})
        await settle()
        assert [m.peer_id for m in service.group_infos[gid].members] == [
            "alice-7f3k9q", "bob", "carol"]
        chat.handle({"op": "group-send", "group": gid, "text": "<b>hi</b>"})
        await settle()
        service.emit(GroupChatReceipt(gid, "g1", "bob", BOB_FP))
        service.member_says(gid, "carol", "<img src=x onerror=alert(1)>\u202egnp.exe", "c1")
        service.member_renames(gid, "carol", "evil\u202e\u2066name\x1b[2J")
        await settle()
        doc = snapshot(chat.model, now=1000.0, files=True, groups=chat.groups)
        json.dumps(doc)
        assert doc["groups_supported"] and doc["active_group"] == gid
        group = doc["group"]
        assert group["label"] == "evil⟨U+202E⟩⟨U+2066⟩name⟨U+001B⟩[2J"
        assert doc["groups"][0]["label"] == group["label"] and doc["groups"][0]["members"] == 3
        out = next(x for x in group["lines"] if x["dir"] == "out")
        assert (out["text"], out["got"], out["of"]) == ("<b>hi</b>", 1, 2)
        assert out["receipts"] == [{"who": "bob", "done": True}, {"who": "carol", "done": False}]
        got = next(x for x in group["lines"] if x["dir"] == "in")
        assert got == {"dir": "in", "sender": "carol", "at": 1.0,
                       "text": "<img src=x onerror=alert(1)>⟨U+202E⟩gnp.exe"}
        assert any("renamed the group to “evil⟨U+202E⟩" in x["text"] for x in group["lines"])
        members = {m["peer_id"]: m for m in group["members"]}
        assert members["alice-7f3k9q"]["me"] and members["alice-7f3k9q"]["sequencer"]
        assert members["bob"]["crypto"] == "verified" and members["carol"]["crypto"] == "unverified"
        chat.handle({"op": "group-rename", "group": gid, "name": "crew"})
        chat.handle({"op": "group-remove", "group": gid, "peer": "carol"})
        chat.handle({"op": "group-leave", "group": gid})
        await settle()
        assert [c[0] for c in service.calls] == [
            "create", "invite", "invite", "rename", "remove", "leave"]
        assert chat.groups.views[gid].state == "left"
        chat.handle({"op": "group-send", "group": gid, "text": "still here?"})
        assert "read-only" in chat.model.notice and len(service.group_sent) == 1
        await service.aclose()
        await pump

    scenario(body)


def test_bad_group_requests_are_one_line_notices_and_change_nothing() -> None:
    async def body() -> None:
        service = FakeGroupChatService()
        chat = chat_on(service)
        for request, says in [
            ({"op": "group-send", "group": "nope", "text": "x"}, "no group 'nope'"),
            ({"op": "group-create", "name": ""}, "a group name is 1 to 128"),
            ({"op": "group-create", "name": "x" * 200}, "a group name is 1 to 128"),
            ({"op": "group-create", "name": 5}, "name must be text"),
            ({"op": "group-select", "group": None}, "group must be text"),
        ]:
            chat.handle(request)
            assert says in chat.model.notice, (request, chat.model.notice)
        chat.handle({"op": "group-create", "name": "ok\u202e"})  # the service refuses it
        await settle()
        assert "could not create the group: a group name" in chat.model.notice
        gid = await service.create_group("g")
        chat.sync_groups()
        chat.handle({"op": "group-add", "group": gid, "peer": "<script>"})
        assert "not a peer id" in chat.model.notice
        chat.handle({"op": "group-add", "group": gid, "peer": "nobody"})
        await settle()
        assert "could not add nobody" in chat.model.notice
        assert service.group_infos[gid].members == (GroupMember("alice-7f3k9q", ALICE_FP),)
        # a service without groups: the page is told, requests refused
        plain = chat_on(FakeFileChatService())
        assert snapshot(plain.model, now=1.0, files=True, groups=plain.groups)[
            "groups_supported"] is False
        plain.handle({"op": "group-create", "name": "g"})
        assert "no group chat" in plain.model.notice

    scenario(body)


def test_group_changes_go_only_over_the_websocket_with_the_session() -> None:
    async def body() -> None:
        service = FakeGroupChatService()
        async with running(service) as server, ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
            origin = server.access.origin
            for path in ("/api/group?op=group-create&name=x", "/ws?op=group-create&name=x",
                         "/?op=group-create&name=x"):
                async with http.get(origin + path, headers={"Origin": origin}) as res:
                    assert res.status in (200, 401, 404), (path, res.status)  # 200: the page
            assert service.calls == [] and service.group_infos == {}
            async with http.post(origin + "/api/session", json={"secret": server.access.secret},
                                 headers={"Origin": origin}) as res:
                assert res.status == 200
                capability = (await res.json())["capability"]
            async with http.ws_connect(origin.replace("http", "ws") + "/ws", headers={"Origin": origin},
                                       protocols=(PROTOCOL, f"enkrypted.cap.{capability}")) as ws:
                first = json.loads((await ws.receive()).data)
                assert first["groups_supported"] is True and first["groups"] == []
                await ws.send_json({"op": "group-create", "name": "over ws"})
                for _ in range(50):
                    doc = json.loads((await ws.receive(timeout=10)).data)
                    if doc["groups"]:
                        break
                assert doc["groups"][0]["label"] == "over ws" and doc["group"]["members"][0]["me"]
        assert service.calls == [("create", "over ws")]

    scenario(body)


def test_group_history_is_kept_in_the_profile_and_shown_after_a_restart() -> None:
    async def body() -> None:
        store = ChatStore(MemoryProfileStore())
        service = FakeGroupChatService(reachable={"bob": BOB_FP})
        chat = chat_on(service, store)
        pump = asyncio.ensure_future(chat.pump())
        chat.handle({"op": "group-create", "name": "kept"})
        await settle()
        (gid,) = service.group_infos
        chat.handle({"op": "group-add", "group": gid, "peer": "bob"})
        await settle()
        chat.handle({"op": "group-send", "group": gid, "text": "ours"})
        await settle()
        service.emit(GroupChatReceipt(gid, "g1", "bob", BOB_FP))
        service.member_says(gid, "bob", "theirs", "b1")
        await settle()
        await service.aclose()
        await pump
        # the next run: the same profile, the service restores the group
        again = FakeGroupChatService(reachable={"bob": BOB_FP}, group_infos=service.group_infos)
        later = chat_on(again, store)
        assert later.groups is not None
        later.model.select_group(gid)
        lines = snapshot(later.model, now=1.0, files=True, groups=later.groups)["group"]["lines"]
        said = [(x["dir"], x["text"]) for x in lines if x["dir"] != "note"]
        assert said == [("out", "ours"), ("in", "theirs")]
        assert next(x for x in lines if x["dir"] == "out")["receipts"] == [
            {"who": "bob", "done": True}]

    scenario(body)


def test_a_key_acknowledged_in_the_web_is_kept_in_the_profile_for_the_next_run_and_the_tui() -> None:
    async def body() -> None:
        store = ChatStore(MemoryProfileStore())
        service = FakeGroupChatService(reachable={"bob": BOB_FP})
        chat = chat_on(service, store)
        pump = asyncio.ensure_future(chat.pump())
        gid = await service.create_group("keys")
        chat.sync_groups()
        chat.handle({"op": "group-add", "group": gid, "peer": "bob"})
        await settle()
        service.member_key(gid, "bob", MALLORY_FP)
        await settle()
        chat.handle({"op": "group-send", "group": gid, "text": "blocked?"})
        assert "identity key changed" in chat.model.notice and service.group_sent == []
        chat.handle({"op": "group-acknowledge", "group": gid, "peer": "carol"})
        assert "carol's key did not change" in chat.model.notice
        chat.handle({"op": "group-acknowledge", "group": gid, "peer": "bob"})
        assert store.group_keys(gid) == {"bob": MALLORY_FP}  # saved, not only shown
        chat.handle({"op": "group-send", "group": gid, "text": "now"})
        await settle()
        assert service.group_sent == [(gid, "now")]
        await service.aclose()
        await pump
        again = FakeGroupChatService(reachable={"bob": BOB_FP}, group_infos=service.group_infos)
        later = chat_on(again, store)  # the next web run
        assert later.model.groups.send_blocked(gid) is None
        tui = ChatModel(store, local_id="alice-7f3k9q", fingerprint=ALICE_FP)  # or the TUI
        tui.groups.load(again.groups(), 1.0)
        assert tui.groups.views[gid].changed == {} and tui.groups.send_blocked(gid) is None

    scenario(body)


def test_sending_waits_while_re_joining_after_a_fork() -> None:
    async def body() -> None:
        service = FakeGroupChatService(reachable={"bob": BOB_FP})
        chat = chat_on(service)
        pump = asyncio.ensure_future(chat.pump())
        gid = await service.create_group("forked")
        chat.sync_groups()
        chat.handle({"op": "group-add", "group": gid, "peer": "bob"})
        await settle()
        service.fork(gid, "bob", "another commit won")
        await settle()
        chat.handle({"op": "group-send", "group": gid, "text": "lost?"})
        assert "re-joining" in chat.model.notice and service.group_sent == []
        service.welcome(gid)
        await settle()
        chat.handle({"op": "group-send", "group": gid, "text": "back"})
        await settle()
        assert service.group_sent == [(gid, "back")]
        await service.aclose()
        await pump

    scenario(body)
