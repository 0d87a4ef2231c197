"""The web chat in headless Chromium (DevTools protocol, tools/browser.py) on the scripted chat
service: the flows of the TUI (connect, messages with receipts, the changed-key block, safety
number, files with progress) and the security checks the issue lists - peer markup and bidi or
control characters render as text, the browser reports no CSP violation and no request leaves
127.0.0.1, an inline script is refused, and a page of another local origin cannot open the
WebSocket or post even though the browser holds the session cookie."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from enkrypted_shell.contracts import (
    ChatMessage,
    ChatReceipt,
    FileCompleted,
    FileOffered,
    FileProgress,
    StoredFile,
)
from enkrypted_ui_web.server import WebServer
from tests.plugins.ui.fake_chat import BOB_FP, MALLORY_FP, FakeFileChatService
from tests.plugins.webui.harness import running
from tools.browser import CHROMIUM, Browser
from tools.loopback import free_port

pytestmark = pytest.mark.slow
HOSTILE = [
    "<script>window.__pwned = 'script'</script>",
    "<img src=x onerror=\"window.__pwned = 'img'\">",
    "invoice\u202egnp.exe \u2066isolated\u2069 bell\x07 esc\x1b[2J",
]


def in_browser(body: Callable[[WebServer, FakeFileChatService, Browser], Awaitable[None]]) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run make test (tools/setup/system-packages.sh)")

    async def run() -> None:
        service = FakeFileChatService()
        async with running(service) as server, Browser() as browser:
            await browser.goto(server.access.url)
            await browser.wait_for("document.getElementById('me').textContent === 'alice-7f3k9q'")
            await body(server, service, browser)

    asyncio.run(asyncio.wait_for(run(), 120))


async def connect_bob(service: FakeFileChatService, browser: Browser) -> None:
    await browser.click("open-connect")
    await browser.type_into("target", "bob")
    await browser.click("connect")
    await browser.wait_for("document.querySelector('#contacts li[data-state=ready]') !== null")


def lines(kind: str) -> str:
    return f"[...document.querySelectorAll('#conversation li.{kind} .text')].map(e => e.textContent)"


def test_chat_and_receipts_with_hostile_text_inert_no_csp_violation_only_loopback() -> None:
    async def body(server: WebServer, service: FakeFileChatService, browser: Browser) -> None:
        assert "#s=" not in await browser.evaluate("location.href")  # the secret left the URL
        await connect_bob(service, browser)
        for i, text in enumerate(HOSTILE):
            service.emit(ChatMessage("bob", f"in{i}", text, 1.0))
        shown = await browser.wait_for(f"{lines('in')}.length === 3 && {lines('in')}")
        assert shown[0] == HOSTILE[0] and shown[1] == HOSTILE[1]
        assert shown[2] == ("invoice⟨U+202E⟩gnp.exe ⟨U+2066⟩isolated⟨U+2069⟩ bell⟨U+0007⟩ "
                            "esc⟨U+001B⟩[2J")
        assert await browser.evaluate(
            "document.querySelectorAll('#conversation script, #conversation img').length") == 0
        await browser.type_into("message", "hello bob <b>bold?</b>")
        await browser.click("send")
        await browser.wait_for(f"{lines('out')}.length === 1")
        assert service.sent == [("bob", "hello bob <b>bold?</b>")]
        assert await browser.evaluate("document.querySelector('#conversation li.out .mark').textContent") == "…"
        service.emit(ChatReceipt("bob", "m1"))
        await browser.wait_for("document.querySelector('#conversation li.out .mark').textContent === '✓'")
        await asyncio.sleep(0.3)
        assert await browser.evaluate("window.__pwned === undefined")
        assert browser.csp_issues == [] and browser.exceptions == [], (browser.csp_issues, browser.exceptions)
        assert not [c for c in browser.console if "Refused" in c or "error" in c.lower()], browser.console
        origin, ws = server.access.origin, server.access.origin.replace("http", "ws")
        assert browser.requests and all(
            u.startswith((origin + "/", ws + "/", f"blob:{origin}/")) for u in browser.requests
        ), browser.requests  # blob: our own QR code and downloads, made in the page
        # the CSP is enforced, not just sent: an inline script is refused and reported
        with pytest.raises(Exception, match="TrustedScript|Trusted"):
            await browser.evaluate("const s = document.createElement('script'); "
                                   "s.textContent = 'window.__inline = 1'; document.body.append(s)")
        await browser.evaluate("document.body.append(Object.assign(document.createElement('img'), "
                               "{src: 'http://127.0.0.2:9/x.png'}))")  # loopback, not ours
        for _ in range(50):
            if browser.csp_issues and browser.blocked:
                break
            await asyncio.sleep(0.1)
        assert browser.csp_issues, "the browser reported no CSP issue for a blocked image"
        assert browser.blocked == [("http://127.0.0.2:9/x.png", "csp")]

    in_browser(body)


def test_a_changed_key_blocks_sending_until_acknowledged_then_verify_marks_it() -> None:
    async def body(server: WebServer, service: FakeFileChatService, browser: Browser) -> None:
        await connect_bob(service, browser)
        await browser.click("open-safety")
        number = await browser.wait_for("document.getElementById('safety-number').textContent")
        assert len(number.split()) == 12  # 60 digits in groups of five
        await browser.click("verify")
        await browser.wait_for("document.querySelector('#contacts li').dataset.crypto === 'verified'")
        service.emit(service.established("bob", MALLORY_FP))
        await browser.wait_for("!document.getElementById('banner').hidden")
        assert await browser.evaluate("document.querySelector('#contacts li').dataset.crypto") == "changed"
        assert await browser.evaluate("document.getElementById('send').disabled")
        assert not await browser.evaluate("document.getElementById('key-changed').hidden")
        assert await browser.evaluate("document.getElementById('kc-old').textContent") == BOB_FP
        assert await browser.evaluate("document.getElementById('kc-new').textContent") == MALLORY_FP
        assert await browser.evaluate("document.getElementById('verify').disabled")
        await browser.type_into("message", "are you really bob?")
        await browser.evaluate("document.getElementById('send').click()")
        await asyncio.sleep(0.3)
        assert service.sent == []  # blocked: nothing went out
        await browser.click("acknowledge")
        await browser.wait_for("document.getElementById('banner').hidden")
        assert await browser.evaluate("document.querySelector('#contacts li').dataset.crypto") == "unverified"
        assert not await browser.evaluate("document.getElementById('send').disabled")

    in_browser(body)


def test_files_offer_accept_progress_receive_download_and_send(tmp_path: Path) -> None:
    async def body(server: WebServer, service: FakeFileChatService, browser: Browser) -> None:
        await connect_bob(service, browser)
        await browser.click("open-files")
        data = b"report contents\n" * 1000
        digest = hashlib.sha256(data).hexdigest()
        service.emit(FileOffered("bob", "t9", "report\u202efdp.exe", len(data), digest, False))
        row = "document.querySelector('#transfers tbody tr')"
        await browser.wait_for(f"{row} && {row}.dataset.state === 'offered'")
        assert await browser.evaluate(f"{row}.querySelector('.name').textContent") == "report⟨U+202E⟩fdp.exe"
        await browser.evaluate(f"{row}.querySelector('button[data-action=accept]').click()")
        for _ in range(50):
            if service.answers:
                break
            await asyncio.sleep(0.1)
        assert service.answers == [("accept", "bob", "t9")]
        service.emit(FileProgress("bob", "t9", False, len(data) // 2, len(data), 1e6, 1.0))
        await browser.wait_for(f"{row}.querySelector('progress').value === 0.5")
        service.stored.append(StoredFile("t9", "report.pdf", len(data), digest, "bob", False))
        service.contents["t9"] = data
        service.emit(FileCompleted("bob", "t9", False, "report.pdf", len(data), digest, False))
        await browser.wait_for(f"{row}.dataset.state === 'done'")
        await browser.wait_for("document.querySelectorAll('#received button').length === 1")
        got = await browser.evaluate(
            "receivedFile(0).then(b => b.arrayBuffer())"
            ".then(b => crypto.subtle.digest('SHA-256', b)).then(h => [...new Uint8Array(h)]"
            ".map(x => x.toString(16).padStart(2, '0')).join(''))", await_promise=True)
        assert got == digest
        await browser.evaluate("document.querySelector('#received button').click()")  # the page's way
        upload = tmp_path / "notes.txt"
        upload.write_bytes(b"x" * 300_000)
        await browser.set_file("file-pick", upload)
        await browser.click("file-fast")
        await browser.click("file-send")
        await browser.wait_for("document.getElementById('file-status').textContent.includes('offered')")
        (peer, path, fast), = service.offered
        assert (peer, path.name, fast, path.read_bytes()) == ("bob", "notes.txt", True, upload.read_bytes())
        await browser.wait_for("document.querySelectorAll('#transfers tbody tr').length === 2")
        assert "FAST" in await browser.evaluate(f"{row}.textContent")
        assert browser.csp_issues == [] and browser.exceptions == []

    in_browser(body)


EVIL = """<!doctype html><meta charset="utf-8"><script>
const target = new URLSearchParams(location.search).get("t");
const report = {ws: "pending"};
const ws = new WebSocket(`ws://${target}/ws`);
ws.onopen = () => { report.ws = "open"; };
ws.onerror = () => { report.ws = "error"; };
fetch(`http://${target}/api/upload?peer=bob&name=evil.txt`, {method: "POST", body: "x",
  credentials: "include", mode: "no-cors"}).then(() => { report.post = "sent"; },
  () => { report.post = "failed"; });
fetch(`http://${target}/api/qr.svg`, {credentials: "include"}).then(
  (r) => { report.read = r.status; }, () => { report.read = "blocked"; });
setTimeout(() => { document.title = JSON.stringify(report); }, 1500);
</script>"""


def test_a_page_of_another_local_origin_cannot_open_the_websocket_or_post() -> None:
    async def body(server: WebServer, service: FakeFileChatService, browser: Browser) -> None:
        await connect_bob(service, browser)  # signed in: the browser holds the session cookie
        async def evil(_: web.Request) -> web.Response:
            return web.Response(text=EVIL, content_type="text/html")

        app = web.Application()
        app.router.add_get("/", evil)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await browser.goto(f"http://127.0.0.1:{port}/?t=127.0.0.1:{server.access.port}")
            title = await browser.wait_for("document.title.startsWith('{') && document.title", 20)
        finally:
            await runner.cleanup()
        report = json.loads(title)
        assert report["ws"] == "error", report
        assert report["read"] == "blocked", report  # no CORS: the page cannot read our answers
        assert service.offered == [] and len(server.sockets) == 0

    in_browser(body)


def test_the_page_keeps_its_capability_out_of_cookies_and_the_cookie_alone_opens_nothing() -> None:
    async def body(server: WebServer, service: FakeFileChatService, browser: Browser) -> None:
        capability = await browser.evaluate("sessionStorage.getItem('enkrypted-capability')")
        assert capability and await browser.evaluate("document.cookie") == ""  # HttpOnly cookie
        cookies = (await browser.call("Network.getCookies"))["cookies"]
        assert [c["name"] for c in cookies] == ["enkrypted-web"]
        assert capability not in {c["value"] for c in cookies}
        await browser.click("open-connect")  # the QR code: read with the capability, drawn as blob:
        await browser.wait_for("document.getElementById('qr').naturalWidth > 0")
        assert browser.csp_issues == [] and browser.exceptions == []
        await browser.call("Page.reload")  # same tab: the capability survives in sessionStorage
        await browser.wait_for("!document.getElementById('body').hidden && "
                               "document.getElementById('me').textContent === 'alice-7f3k9q'")
        # a fresh page of the same origin with the cookie but without the capability: the gate
        await browser.evaluate("sessionStorage.clear()")
        await browser.call("Page.reload")
        await browser.wait_for("!document.getElementById('gate').hidden")
        status = await browser.evaluate(
            "fetch('/api/qr.svg', {credentials: 'same-origin'}).then(r => r.status)", await_promise=True)
        assert status == 401
        await asyncio.sleep(0.5)
        assert len(server.sockets) == 0

    in_browser(body)
