"""Screenshots of the web chat for docs/webui.md (``make screenshots``).

Serves the page from the source tree's page files (checked as the plugin checks the shell's
verified bytes) on the tests' scripted chat service (tests/plugins/ui/fake_chat.py: no network,
no profile), drives headless Chromium over the DevTools protocol (tools/browser.py) and saves
PNGs.  The wall clock is fixed and the browser's zone is UTC, so the images change only when the
UI does.

    python tools/webui_screenshots.py docs/screenshots
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for part in ("shell/src", "plugins/ui_cli/src", "plugins/ui_web/src", ""):
    if str(ROOT / part) not in sys.path:
        sys.path.insert(0, str(ROOT / part))

from enkrypted_shell.contracts import (  # noqa: E402
    ChatMessage,
    ChatReceipt,
    FileCompleted,
    FileOffered,
    FileProgress,
    GroupChatReceipt,
    PeerStateChanged,
    StoredFile,
)
from tests.plugins.ui.fake_chat import BOB_FP, MALLORY_FP  # noqa: E402
from tests.plugins.webui.fake_groups import FakeGroupChatService  # noqa: E402
from tests.plugins.webui.harness import running  # noqa: E402
from tools.browser import Browser  # noqa: E402

WALL = 1_767_225_600.0 + 9 * 3600 + 41 * 60  # 2026-01-01 09:41 UTC
CAROL_FP = "c4" * 32
DAVE_FP = "da7e" * 16


async def settle(browser: Browser) -> None:
    await asyncio.sleep(0.4)  # the server coalesces pushes every 0.1 s
    await browser.wait_for("document.readyState === 'complete'")


async def shoot(out: Path) -> list[Path]:
    service = FakeGroupChatService(reachable={"bob": BOB_FP, "carol": CAROL_FP, "dave": DAVE_FP})
    saved: list[Path] = []
    async with running(service, wall=lambda: WALL) as server, Browser((1100, 680)) as b:
        await b.call("Emulation.setTimezoneOverride", timezoneId="UTC")
        await b.call("Emulation.setDeviceMetricsOverride", width=1100, height=680,
                     deviceScaleFactor=1, mobile=False)
        await b.goto(server.access.url)
        await b.wait_for("document.getElementById('me').textContent !== ''")

        async def save(name: str) -> None:
            await settle(b)
            path = out / f"web-{name}.png"
            await b.screenshot(path)
            saved.append(path)

        for peer in ("carol", "bob"):
            await b.click("open-connect")
            await b.type_into("target", peer)
            await b.click("connect")
            await b.wait_for(f"document.querySelector('#contacts li[data-peer={peer}][data-state=ready]') !== null")
        service.emit(ChatMessage("carol", "c1", "see you at 10", WALL - 300))
        service.emit(ChatMessage("bob", "b1", "hi alice! did the report arrive?", WALL - 120))
        await b.evaluate("document.querySelector('#contacts li[data-peer=bob] button').click()")
        await b.type_into("message", "yes, verified end to end ✓ thanks")
        await b.click("send")
        await settle(b)
        service.emit(ChatReceipt("bob", "m1"))
        service.emit(ChatMessage("bob", "b2", "<script>alert('not code')</script> \u202egnp.exe", WALL))
        service.emit(PeerStateChanged("carol", "reconnecting"))
        await save("main")
        await b.click("open-connect")
        await b.wait_for("document.getElementById('qr').complete")
        await save("connect")
        await b.click("open-safety")
        await save("safety")
        await b.evaluate("document.querySelector('#panel-safety .close').click()")
        service.stored.append(StoredFile("f1", "report.pdf", 3 * 1024 * 1024, "5e" * 32, "bob", False))
        service.emit(FileOffered("bob", "t1", "photo.jpg", 2 * 1024 * 1024, "ab" * 32, False))
        service.emit(FileCompleted("bob", "f1", False, "report.pdf", 3 * 1024 * 1024, "5e" * 32, False))
        service.emit(FileProgress("bob", "t2", True, 6 * 1024 * 1024, 10 * 1024 * 1024, 4.2e6, 1.0))
        await b.click("open-files")
        await save("files")
        await b.evaluate("document.querySelector('#panel-files .close').click()")
        await shoot_groups(service, b, save)
        await b.evaluate("document.querySelector('#contacts li[data-peer=bob] button').click()")
        service.emit(service.established("bob", MALLORY_FP))
        await save("key-changed")
        await b.click("open-safety")
        await save("key-changed-safety")
    return saved


async def shoot_groups(service: FakeGroupChatService, b: Browser, save: Any) -> None:
    """A group made from the page with bob, carol and dave; messages with per-member receipts;
    the members panel; a fork being re-joined."""
    await b.click("open-new-group")
    await b.type_into("new-group-name", "project x")
    await b.click("group-create")
    await b.wait_for("document.querySelector('#groups li.active') !== null")
    (gid,) = service.group_infos
    await b.click("open-group")
    for peer in ("bob", "carol", "dave"):
        await b.type_into("group-peer", peer)
        await b.click("group-add")
        await b.wait_for(f"document.querySelector('#group-members tr[data-peer={peer}]') !== null")
    await b.evaluate("document.querySelector('#panel-group .close').click()")
    service.member_says(gid, "carol", "draft is in the shared folder", "c1", WALL - 240)
    service.member_says(gid, "bob", "<b>reviewing now</b> \u202egnp.exe", "b1", WALL - 60)
    await b.type_into("message", "thanks both, let's ship on friday")
    await b.click("send")
    await settle(b)
    service.emit(GroupChatReceipt(gid, "g1", "bob", BOB_FP))
    service.emit(GroupChatReceipt(gid, "g1", "carol", CAROL_FP))
    await save("group")
    await b.click("open-group")
    await save("group-members")
    await b.evaluate("document.querySelector('#panel-group .close').click()")
    service.fork(gid, "dave", "fork check differs at epoch 3")
    await save("group-fork")
    service.welcome(gid)
    await settle(b)


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(asyncio.wait_for(shoot(out), 180)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
