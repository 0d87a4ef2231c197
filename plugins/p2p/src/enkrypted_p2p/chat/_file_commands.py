"""``enkrypted sendfile PEER PATH [--fast] [--json]`` and ``enkrypted files list|export``.

``sendfile`` connects, offers the file and waits until the peer verified it: a rich progress bar
on a terminal, JSON lines otherwise (or with ``--json``): ``ready``, ``offered`` (transferId,
name, size, sha256, protection), ``progress`` (bytes, total, rate, eta; at most 4 a second),
then ``file-sent`` (exit 0) or ``file-failed`` (exit 1).  ``--fast`` is the reduced-protection
fast path, stated as such in every ``protection`` field.

``files list`` prints the received files kept (encrypted) in the profile, ``files export ID DEST``
decrypts one (the SHA-256 is checked); both need the unlocked profile store.
"""

from __future__ import annotations

__all__ = ["file_commands"]

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from enkrypted_shell.contracts import FileCompleted, FileFailed, FileProgress

from .._wiring import Wiring
from ..errors import P2PError
from ..webrtc import WebRTCSettings
from ._commands import (
    _PLAIN,
    _emit,
    _open,
    _print_event,
    _ready_fields,
    _run,
    _settings,
    protection,
)
from ._files import FileDesk

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class _Bar:
    """A rich progress bar on a terminal (rich is imported only then)."""

    def __init__(self, name: str, size: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress("[progress.description]{task.description}", BarColumn(),
                                  DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                  transient=False)
        self._task = self._progress.add_task(name, total=size)
        self._progress.start()

    def update(self, done: int) -> None:
        self._progress.update(self._task, completed=done)

    def stop(self) -> None:
        self._progress.stop()


async def sendfile(wiring: Wiring, settings: WebRTCSettings, peer: str, path: Path, fast: bool,
                   as_json: bool, timeout: float) -> int:
    chat = await _open(wiring, settings)
    bar: _Bar | None = None
    try:
        _emit("ready", **_ready_fields(await chat.connect(peer)))
        tid = await chat.send_file(peer, path, fast=fast)
        size = path.stat().st_size
        _emit("offered", peer=peer, transferId=tid, name=path.name, size=size,
              protection=protection(fast))
        if not as_json:
            bar = _Bar(path.name, size)
        async with asyncio.timeout(timeout):
            async for event in chat.events():
                if isinstance(event, FileProgress) and event.transfer_id == tid:
                    if bar is not None:
                        bar.update(event.bytes)
                    else:
                        _emit("progress", transferId=tid, bytes=event.bytes, total=event.total,
                              rate=round(event.rate), eta=None if event.eta is None
                              else round(event.eta, 1))
                elif isinstance(event, FileCompleted) and event.transfer_id == tid:
                    if bar is not None:
                        bar.update(size)
                        bar.stop()
                        bar = None
                    _emit("file-sent", peer=peer, transferId=tid, sha256=event.sha256,
                          size=event.size, protection=protection(event.fast))
                    await asyncio.sleep(0.2)  # our last frames leave before the channel closes
                    return 0
                elif isinstance(event, FileFailed) and event.transfer_id == tid:
                    _print_event(event)
                    return 1
                else:
                    _print_event(event)
        return 1
    finally:
        if bar is not None:
            bar.stop()
        await chat.aclose()


def _desk(wiring: Wiring) -> FileDesk:
    store = getattr(wiring.context, "store", None)
    if store is None:
        raise click.ClickException("files are kept in the profile: unlock one (enkrypted "
                                   "--profile ...) to list or export them")

    async def nowhere(_: object) -> None:
        return None

    return FileDesk(wiring.context, store, nowhere, accept_files=False)


def file_commands(get_wiring: Callable[[], Wiring], broker_option: Decorator,
                  loopback_option: Decorator) -> list[click.Command]:
    @click.command(name="sendfile", help="Connect to PEER and send the file PATH encrypted; "
                                         "exit 0 once the peer verified its SHA-256.")
    @broker_option
    @loopback_option
    @click.option("--fast", is_flag=True,
                  help="Fast path: one AES-256-GCM layer keyed from the session (reduced "
                       "protection) instead of sealing every chunk through the whole session.")
    @click.option("--json", "as_json", is_flag=True,
                  help="JSON lines (the default when stdout is not a terminal).")
    @click.option("--timeout", type=float, default=3600.0, show_default=True,
                  help="Seconds to wait for the transfer.")
    @click.argument("peer")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True,
                                            path_type=Path))
    def sendfile_command(broker: str | None, loopback: bool, fast: bool, as_json: bool,
                         timeout: float, peer: str, path: Path) -> None:
        as_json = as_json or not sys.stdout.isatty()
        _PLAIN[0] = False
        wiring = get_wiring()
        settings = _settings(wiring, broker, loopback)
        sys.exit(_run(lambda: sendfile(wiring, settings, peer, path, fast, as_json, timeout)))

    @click.group(name="files", help="Received files kept encrypted in the profile.")
    def files_group() -> None:
        pass

    @files_group.command(name="list", help="One JSON line per received, verified file.")
    def list_command() -> None:
        for f in _desk(get_wiring()).files():
            _emit("file", id=f.id, name=f.name, size=f.size, sha256=f.sha256, peer=f.peer_id,
                  protection=protection(f.fast))

    @files_group.command(name="export", help="Decrypt file ID to DEST (a directory or a new "
                                             "file; never overwrites; the SHA-256 is checked).")
    @click.argument("file_id", metavar="ID")
    @click.argument("dest", type=click.Path(path_type=Path))
    def export_command(file_id: str, dest: Path) -> None:
        try:
            out = _desk(get_wiring()).export(file_id, dest)
        except (P2PError, OSError) as exc:
            _emit("error", error=type(exc).__name__, message=str(exc))
            sys.exit(3)
        _emit("exported", id=file_id, path=str(out))

    return [sendfile_command, files_group]
