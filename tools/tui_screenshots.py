"""Screenshots of the chat TUI for docs/tui.md (``make screenshots``).

Runs :class:`ChatApp` headless at 80x24 on the scripted ``FakeChatService`` of the tests (no
network, no profile), exports each screen as SVG (Textual) and converts it to PNG with Chromium
headless (tools/setup/system-packages.txt).  The wall clock is fixed and the zone is UTC, so the
images only change when the UI does.

    python tools/tui_screenshots.py docs/screenshots
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for part in ("shell/src", "plugins/ui_cli/src", ""):
    if str(ROOT / part) not in sys.path:
        sys.path.insert(0, str(ROOT / part))

from textual.pilot import Pilot  # noqa: E402

from enkrypted_shell.contracts import (  # noqa: E402
    ChatMessage,
    ChatReceipt,
    ChatTyping,
    FileCompleted,
    FileOffered,
    FileProgress,
    GroupChatForked,
    GroupChatMessage,
    GroupChatReceipt,
    GroupMember,
    PeerStateChanged,
    StoredFile,
)
from enkrypted_ui_cli.chatstore import ChatStore, Contact, MemoryProfileStore  # noqa: E402
from enkrypted_ui_cli.tui.app import ChatApp  # noqa: E402
from tests.plugins.ui.fake_chat import (  # noqa: E402
    BOB_FP,
    MALLORY_FP,
    FakeChatService,
    FakeGroupChatService,
)

T0 = 1_767_261_600.0  # 2026-01-01 10:00 UTC
CAROL_FP = "c4e1" * 16
DAVE_FP = "da7e" * 16
Shot = Callable[[str], None]


async def settle(pilot: Pilot[None]) -> None:
    for _ in range(4):
        await pilot.pause()


async def main_and_safety(
    app: ChatApp, pilot: Pilot[None], svc: FakeChatService, shot: Shot
) -> None:
    svc.emit(svc.established("bob", BOB_FP))
    svc.emit(svc.established("carol", CAROL_FP))
    svc.emit(PeerStateChanged("dave", "disconnected", "peer closed the link"))
    await settle(pilot)
    app.model.select("bob")
    for i, (who, text) in enumerate(
        [
            ("bob", "hi alice! did the invite link work?"),
            ("me", "it did: scanned the QR from your screen"),
            ("me", "safety number matches what you read out"),
            ("bob", "great, marking you verified on my side too"),
            ("me", "see you at 6 then"),
        ]
    ):
        app.wall = lambda i=i: T0 + 60 * i  # type: ignore[misc]
        if who == "bob":
            svc.emit(ChatMessage("bob", f"x{i}", text, T0 + 60 * i))
            await settle(pilot)
        else:
            message_id = await svc.send_text("bob", text)
            app.model.sent("bob", message_id, text, T0 + 60 * i)
            if i < 4:
                svc.emit(ChatReceipt("bob", message_id))
            await settle(pilot)
    app.model.mark_verified("bob")
    svc.emit(ChatMessage("carol", "c1", "are you free tomorrow?", T0 + 120))
    svc.emit(ChatMessage("carol", "c2", "ping", T0 + 180))
    svc.emit(ChatTyping("bob"))
    await settle(pilot)
    app.query_one("#message").value = "bringing the"  # type: ignore[attr-defined]
    app.refresh_view()
    await settle(pilot)
    shot("main")
    await pilot.press("f7")
    await pilot.press("f3")
    await settle(pilot)
    shot("safety")
    await pilot.press("escape")
    await pilot.press("f2")
    await settle(pilot)
    app.screen.query_one("#target").value = "enkrypted://peer/c4e1?id=carol"  # type: ignore[attr-defined]
    await pilot.press("enter")
    await settle(pilot)
    shot("connect")
    await pilot.press("escape")
    await pilot.press("f1")
    await settle(pilot)
    shot("help")


async def key_changed(app: ChatApp, pilot: Pilot[None], svc: FakeChatService, shot: Shot) -> None:
    svc.emit(svc.established("bob", MALLORY_FP))
    await settle(pilot)
    app.query_one("#message").value = "the door code is"  # type: ignore[attr-defined]
    await pilot.press("enter")
    await settle(pilot)
    shot("key-changed")
    await pilot.press("f3")
    await settle(pilot)
    shot("key-changed-safety")


async def files(app: ChatApp, pilot: Pilot[None], svc: FakeChatService, shot: Shot) -> None:
    """The files screen: an offer waiting, a fast transfer running, a verified one; the tree."""
    mib = 1024 * 1024
    svc.emit(svc.established("bob", BOB_FP))
    await settle(pilot)
    app.model.select("bob")
    app.model.file_sent("bob", "t1", "holiday.mkv", 700 * mib, True, T0 - 60)
    svc.emit(FileProgress("bob", "t1", True, 260 * mib, 700 * mib, 4.2 * mib, 105.0))
    app.model.file_sent("bob", "t2", "report.pdf", 3 * mib, False, T0 - 60)
    svc.emit(FileCompleted("bob", "t2", True, "report.pdf", 3 * mib, "5e" * 32, False))
    svc.emit(FileOffered("bob", "t9", "slides.odp", 12 * mib, "a7" * 32, False))
    await settle(pilot)
    shot("files-notice")
    await pilot.press("f4")
    await settle(pilot)
    shot("files")
    app.screen.query_one("#tabs").active = "tab-send"  # type: ignore[attr-defined]
    await settle(pilot)
    for _ in range(50):  # the tree lists its directory in a thread
        if len(app.screen.query_one("#tree").root.children) >= 3:  # type: ignore[attr-defined]
            break
        await pilot.pause(0.05)
    app.screen.query_one("#send-path").value = "~/Documents/report.pdf"  # type: ignore[attr-defined]
    await settle(pilot)
    shot("files-send")
    app.screen.query_one("#tabs").active = "tab-received"  # type: ignore[attr-defined]
    await settle(pilot)
    app.screen.query_one("#export-dest").value = "~/Downloads"  # type: ignore[attr-defined]
    await settle(pilot)
    shot("files-received")


async def group_chat(app: ChatApp, pilot: Pilot[None], svc: FakeGroupChatService) -> tuple[str, str]:
    """A group of four with receipts, a second group with unread messages, a group we left."""
    svc.reachable.update({"carol": CAROL_FP, "dave": DAVE_FP})
    for peer, fp in (("bob", BOB_FP), ("carol", CAROL_FP)):
        svc.emit(svc.established(peer, fp))
    await settle(pilot)
    app.model.mark_verified("bob")
    friends = await svc.create_group("friends")
    for peer in ("bob", "carol", "dave"):
        await svc.invite(friends, peer)
    club = await svc.create_group("book club")
    await svc.invite(club, "bob")
    old = await svc.create_group("old team")
    await svc.leave(old)
    await settle(pilot)
    app.model.select_group(friends)
    for i, (who, text) in enumerate([
        ("bob", "dinner on friday? I booked the usual place"),
        ("me", "yes! 7pm works for me"),
        ("carol", "count me in [bold]not markup[/bold]"),
        ("me", "dave, are you coming?"),
    ]):
        at = T0 + 60 * i
        if who == "me":
            message_id = await svc.send_group_text(friends, text)
            app.model.groups.sent(friends, message_id, text, at,
                                  app.model.groups.recipients(friends))
            for fp in (BOB_FP, CAROL_FP, DAVE_FP)[: 3 - i // 2]:
                peer = {BOB_FP: "bob", CAROL_FP: "carol", DAVE_FP: "dave"}[fp]
                svc.emit(GroupChatReceipt(friends, message_id, peer, fp))
        else:
            fp = {"bob": BOB_FP, "carol": CAROL_FP}[who]
            svc.emit(GroupChatMessage(friends, f"x{i}", who, fp, text, 3, at))
        await settle(pilot)
    svc.emit(GroupChatMessage(club, "c1", "bob", BOB_FP, "chapter 3 by sunday?", 1, T0))
    await settle(pilot)
    return friends, club


async def groups(app: ChatApp, pilot: Pilot[None], svc: FakeChatService, shot: Shot) -> None:
    """The group list and conversation; the group screen's tabs; a member whose key changed;
    a fork."""
    assert isinstance(svc, FakeGroupChatService)
    friends, club = await group_chat(app, pilot, svc)
    app.query_one("#message").value = "see you there"  # type: ignore[attr-defined]
    app.refresh_view()
    await settle(pilot)
    shot("groups")
    await pilot.press("f5")
    await settle(pilot)
    app.screen.query_one("#members").highlighted = 1  # type: ignore[attr-defined]
    await settle(pilot)
    shot("groups-members")
    app.screen.query_one("#group-tabs").active = "tab-receipts"  # type: ignore[attr-defined]
    await settle(pilot)
    shot("groups-receipts")
    app.screen.query_one("#group-tabs").active = "tab-manage"  # type: ignore[attr-defined]
    await settle(pilot)
    app.screen.query_one("#add-target").value = "erin"  # type: ignore[attr-defined]
    await settle(pilot)
    shot("groups-manage")
    await pilot.press("escape")
    info = svc.infos[friends]
    svc.commit(friends, tuple(GroupMember(m.peer_id, MALLORY_FP if m.peer_id == "dave"
                                          else m.fingerprint) for m in info.members))
    await settle(pilot)
    shot("groups-key-changed")
    await pilot.press("f5")
    await settle(pilot)
    app.screen.query_one("#members").highlighted = 3  # type: ignore[attr-defined]
    await settle(pilot)
    shot("groups-key-changed-members")
    await pilot.press("escape")
    app.model.select_group(club)
    svc.emit(GroupChatForked(club, 4, "bob", "another commit for epoch 4 won", rejoining=True))
    await settle(pilot)
    shot("groups-fork")


async def run(scenario: Callable[..., Awaitable[None]], store: ChatStore, out: Path) -> list[Path]:
    svc = FakeGroupChatService()
    svc.stored = [StoredFile("s1", "cat.jpg", 245_000, "c4" * 32, "bob", False)]
    root = out / "alice"
    for name in ("Documents", "Music", "Pictures"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "notes.txt").write_text("notes")
    app = ChatApp(svc, store, wall=lambda: T0 - 60, files_root=root)
    svgs: list[Path] = []

    def shot(name: str) -> None:
        svgs.append(Path(app.save_screenshot(f"{name}.svg", str(out))))

    async with app.run_test(size=(80, 24)) as pilot:
        await scenario(app, pilot, svc, shot)
        await svc.aclose()
    return svgs


def to_png(svg: Path, chromium: str, profile: str) -> Path:
    """``svg`` rendered at its own size by Chromium headless, next to it as PNG."""
    box = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg.read_text("utf-8"))
    assert box is not None, f"{svg}: no viewBox"
    width, height = (int(float(v) + 0.999) for v in box.groups())
    png = svg.with_suffix(".png")
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}",
         svg.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return png


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/screenshots").resolve()
    only = argv[1] if len(argv) > 1 else ""  # e.g. "groups": only the shots of that scenario
    chromium = next(
        (c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None
    )
    if chromium is None:
        print(
            "tui_screenshots: Chromium is needed for SVG -> PNG (make system-deps)", file=sys.stderr
        )
        return 1
    os.environ["TZ"] = "UTC"
    time.tzset()
    out.mkdir(parents=True, exist_ok=True)
    changed = ChatStore(MemoryProfileStore())
    changed.save_contact(Contact("bob", "", BOB_FP, True))
    with tempfile.TemporaryDirectory() as tmp:
        svgs = asyncio.run(run(main_and_safety, ChatStore(MemoryProfileStore()), Path(tmp)))
        svgs += asyncio.run(run(key_changed, changed, Path(tmp)))
        svgs += asyncio.run(run(files, ChatStore(MemoryProfileStore()), Path(tmp)))
        svgs += asyncio.run(run(groups, ChatStore(MemoryProfileStore()), Path(tmp)))
        for svg in svgs:
            if only and not svg.stem.startswith(only):
                continue
            png = to_png(svg, chromium, str(Path(tmp) / "chromium"))
            shutil.copyfile(png, out / png.name)
            print(f"wrote {out / png.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
