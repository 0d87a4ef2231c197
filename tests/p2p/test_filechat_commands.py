"""The file commands without a network: ``files list|export`` need the profile store (a one-line
error otherwise), list and export what the store holds, and the terminal progress bar of
``sendfile`` draws and stops (the two-process runs are in test_filechat_processes.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click
from click.testing import CliRunner

from enkrypted_p2p._wiring import Wiring
from enkrypted_p2p.chat import chat_commands
from enkrypted_p2p.chat._file_commands import _Bar
from enkrypted_p2p.files import FilesDirectory
from enkrypted_shell.contracts import AppContext
from tests.p2p.test_chat_service import DictStore


def files_group(context: AppContext) -> click.Command:
    commands = {c.name: c for c in chat_commands(lambda: Wiring(context, None))}  # type: ignore[arg-type]
    assert list(commands) == ["listen", "send", "chat-line", "sendfile", "files", "group"]
    return commands["files"]


def test_files_commands_need_the_profile_store(tmp_path: Path) -> None:
    result = CliRunner().invoke(files_group(AppContext(tmp_path)), ["list"])
    assert result.exit_code == 1 and "unlock one" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_files_list_and_export_read_the_store(tmp_path: Path) -> None:
    store = DictStore()
    context = AppContext(tmp_path, store=store)  # type: ignore[arg-type]
    data = b"hello file" * 1000
    sha = hashlib.sha256(data).hexdigest()
    directory = FilesDirectory(tmp_path / "files", store)
    tid = "ab" * 16
    sink = directory.open_sink(tid, name="../evil name.txt", size=len(data), chunk_size=4096,
                               sha256=sha, media_type="text/plain", peer_id="alice", fast=True)
    for i in range(0, len(data), 4096):
        sink.write(i // 4096, 0, data[i:i + 4096])
    sink.commit()
    group = files_group(context)
    listed = CliRunner().invoke(group, ["list"])
    assert listed.exit_code == 0, listed.output
    [entry] = [json.loads(line) for line in listed.output.splitlines()]
    assert (entry["id"], entry["name"], entry["sha256"], entry["peer"]) == (
        tid, "_evil name.txt", sha, "alice")
    assert entry["protection"].startswith("reduced")
    out = CliRunner().invoke(group, ["export", tid, str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert Path(json.loads(out.output)["path"]).read_bytes() == data
    again = CliRunner().invoke(group, ["export", tid, str(tmp_path / "_evil name.txt")])
    assert again.exit_code == 3 and json.loads(again.output)["event"] == "error"


def test_the_progress_bar_draws_and_stops() -> None:
    bar = _Bar("x.bin", 1000)
    bar.update(500)
    bar.update(1000)
    bar.stop()
