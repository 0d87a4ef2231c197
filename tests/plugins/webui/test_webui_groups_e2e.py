"""Groups in the web chat end to end with real peers: the page in headless Chromium on a real chat
service (the p2p plugin's, over aiortc on loopback, in this process, peer id ``web``) and two
``listen`` peer processes (``p1``, ``p2``; tests.p2p.group_peer) driven by ``group ...``
commands, all through our broker.  From the page: a group created, both added by peer id, a
message whose per-member receipts come back; from p1's command line: a message with markup and
a rename with markup, drawn as text; from the page again: p2 removed (it is told), then the page
leaves and p1 takes over (the page shows the group left, read-only).  Every process is stopped
by its PID; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_shell.contracts import AppContext, GroupChatService, supports
from enkrypted_ui_cli.chatstore import ChatStore, MemoryProfileStore
from tests.p2p.group_peer import profile
from tests.p2p.servers import Server, start_our_broker, stop
from tests.p2p.test_groups_processes import Peer, until
from tests.plugins.webui.harness import running
from tools.browser import CHROMIUM, Browser

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROW = "#group-members tbody tr"
MARKUP = "<img src=x onerror=\"window.__pwned = 1\"> from p1"
NAME = "<b>renamed</b> by p1"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Server, list[Peer]]]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run make test (tools/setup/system-packages.sh)")
    broker = start_our_broker(tmp_path)
    url = f"ws://127.0.0.1:{broker.port}/"
    peers = [Peer(tmp_path / name, name, url) for name in ("p1", "p2")]
    try:
        for peer in peers:
            peer.start()
        until(lambda: all(p.of("listening") for p in peers), "both peers listening", 120)
        yield broker, peers
    finally:
        for peer in peers:
            peer.stop()
        stop(broker.proc)


def test_the_web_ui_runs_a_group_with_two_listen_peers(world: tuple[Server, list[Peer]],
                                                        tmp_path: Path) -> None:
    broker, peers = world
    asyncio.run(asyncio.wait_for(_scenario(broker, peers, tmp_path / "web"), 480))


async def _web_service(broker: Server, home: Path) -> GroupChatService:
    from enkrypted_p2p import plugin as p2p

    context = profile(home)  # identity and a file-backed store: groups are saved there
    crypto = enkrypted_crypto_service(AppContext(home))
    transport = p2p.enkrypted_transport_service(context, crypto)
    settings = {"broker_url": f"ws://127.0.0.1:{broker.port}/",
                "host_addresses": ["127.0.0.1"], "remote_networks": ["127.0.0.0/8"]}
    assert isinstance(context.identity, bytes)
    service = await transport.open_chat(context.identity, settings, peer_id="web")
    assert supports(service, GroupChatService)
    return service  # type: ignore[return-value]


async def _wait(check: object, what: str, timeout: float = 120) -> None:
    await asyncio.to_thread(until, check, what, timeout)  # type: ignore[arg-type]


async def _scenario(broker: Server, peers: list[Peer], home: Path) -> None:
    p1, p2 = peers
    service = await _web_service(broker, home)
    try:
        async with running(service, ChatStore(MemoryProfileStore())) as server, Browser() as b:
            await b.goto(server.access.url)
            await b.wait_for("document.getElementById('me').textContent === 'web'", 60)
            await b.click("open-new-group")
            await b.type_into("new-group-name", "e2e group")
            await b.click("group-create")
            await b.wait_for("document.querySelector('#groups li.active') !== null", 30)
            gid = await b.evaluate("document.querySelector('#groups li.active').dataset.group")
            await b.click("open-group")
            for peer in ("p1", "p2"):
                await b.type_into("group-peer", peer)
                await b.click("group-add")
                await b.wait_for(f"document.querySelector('{ROW}[data-peer={peer}]') !== null", 180)
            fingerprints = await b.evaluate(
                f"[...document.querySelectorAll('{ROW}')].map(r => r.children[1].textContent)")
            assert len(set(fingerprints)) == 3 and all(len(f) == 64 for f in fingerprints)
            await _wait(lambda: all(p.view(gid)[1] == frozenset({"web", "p1", "p2"})
                                    for p in peers), "p1 and p2 see all three members")
            await b.evaluate("document.querySelector('#panel-group .close').click()")
            await b.type_into("message", "hello group, from the browser")
            await b.click("send")
            await b.wait_for("document.querySelectorAll('#conversation li.out .rcpt.done').length === 2", 180)
            for peer in peers:
                assert peer.texts()["hello group, from the browser"] == 1
            await asyncio.to_thread(p1.cli, "send", gid, MARKUP)
            shown = "[...document.querySelectorAll('#conversation li.in .text')].map(e => e.textContent)"
            assert await b.wait_for(f"{shown}.length === 1 && {shown}", 180) == [MARKUP]
            await asyncio.to_thread(p1.cli, "rename", gid, NAME)
            await b.wait_for(f"document.getElementById('conv-title').textContent === {NAME!r}", 180)
            await b.click("open-group")
            await b.evaluate(f"document.querySelector('{ROW}[data-peer=p2] button[data-action=remove]').click()")
            await b.wait_for(f"document.querySelectorAll('{ROW}').length === 2", 180)
            await _wait(lambda: bool(p2.of("group-left")), "p2 told it was removed")
            await b.click("group-leave")  # the page is the sequencer: p1 commits our removal
            await b.wait_for("document.querySelector('#groups li').dataset.state === 'left'", 180)
            await _wait(lambda: p1.view(gid)[1] == frozenset({"p1"}), "p1 alone in the group")
            assert await b.evaluate("document.getElementById('send').disabled")
            assert await b.evaluate("window.__pwned === undefined")
            assert b.csp_issues == [] and b.exceptions == [], (b.csp_issues, b.exceptions)
            origin = server.access.origin
            ws = origin.replace("http", "ws")
            assert all(u.startswith((origin + "/", ws + "/", f"blob:{origin}/")) for u in b.requests), b.requests
    finally:
        with contextlib.suppress(Exception):
            await service.aclose()
