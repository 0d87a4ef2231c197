"""HOME file primitives: durable atomic writes, reads that never block or follow a wrong kind of
path, the layout check (the CLI-level walk is tests/shell/test_home_robustness.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enkrypted_shell import errors
from enkrypted_shell._state import files
from enkrypted_shell._state.home import HOME_LAYOUT, check_home
from enkrypted_shell._state.loadlog import LoadLog


def test_write_atomic_syncs_the_file_then_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    target = tmp_path / "new" / "state.json"
    files.write_atomic(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert synced[0] == str(tmp_path)  # the new folder's entry in its parent
    assert synced[1].startswith(str(target.parent / ".tmp-"))  # the data, before the rename
    assert synced[2:] == [str(target.parent)]  # the rename
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]
    assert (target.parent.stat().st_mode & 0o777) == 0o700
    assert (target.stat().st_mode & 0o777) == 0o600
    target.chmod(0o644)  # e.g. a lock file shared on purpose: a rewrite keeps the mode
    files.write_atomic(target, b"[]")
    assert (target.stat().st_mode & 0o777) == 0o644 and target.read_bytes() == b"[]"


@pytest.mark.parametrize("obstacle", ["directory-at-target", "file-as-parent"])
def test_write_atomic_refuses_a_path_of_the_wrong_kind(tmp_path: Path, obstacle: str) -> None:
    if obstacle == "directory-at-target":
        target = tmp_path / "state.json"
        target.mkdir()
    else:
        (tmp_path / "cache").write_text("")
        target = tmp_path / "cache" / "state.json"
    with pytest.raises(errors.HomeError) as caught:
        files.write_atomic(target, b"{}")
    assert caught.value.exit_code == errors.ExitCode.USAGE
    assert not list(tmp_path.rglob(".tmp-*"))


def test_read_home_file_kinds(tmp_path: Path) -> None:
    assert files.read_home_file(tmp_path / "missing") is None
    (tmp_path / "file").write_bytes(b"data")
    assert files.read_home_file(tmp_path / "file") == b"data"
    (tmp_path / "link").symlink_to(tmp_path / "file")
    assert files.read_home_file(tmp_path / "link") == b"data"
    with pytest.raises(errors.HomeError, match="larger than 3 bytes"):
        files.read_home_file(tmp_path / "file", limit=3)
    os.mkfifo(tmp_path / "fifo")  # would block a plain open() forever
    (tmp_path / "dir").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to("loop")
    for name, needle in [
        ("fifo", "a FIFO"),
        ("dir", "a directory"),
        ("dangling", "symbolic link to a missing file"),
        ("loop", "too many levels of symbolic links"),
    ]:
        with pytest.raises(errors.HomeError, match=needle):
            files.read_home_file(tmp_path / name)


def test_check_tree_refuses_what_a_plain_open_would_wait_on(tmp_path: Path) -> None:
    (tmp_path / "root_history").mkdir()
    (tmp_path / "root_history" / "1.root.json").write_text("{}")
    (tmp_path / "root.json").symlink_to(tmp_path / "root_history" / "1.root.json")
    files.check_tree(tmp_path)
    os.mkfifo(tmp_path / "timestamp.json")
    with pytest.raises(errors.HomeError, match="FIFO"):
        files.check_tree(tmp_path)
    (tmp_path / "timestamp.json").unlink()
    (tmp_path / "snapshot.json").symlink_to(tmp_path / "nowhere")
    with pytest.raises(errors.HomeError):
        files.check_tree(tmp_path)


def test_load_log_of_the_wrong_kind_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "load-log.jsonl")
    with pytest.raises(errors.HomeError, match="not a regular file"):
        LoadLog(tmp_path / "load-log.jsonl").append("verified")
    with pytest.raises(errors.HomeError, match="FIFO"):
        LoadLog(tmp_path / "load-log.jsonl").read()


def test_check_home(tmp_path: Path) -> None:
    check_home(tmp_path / "not-yet")  # created on first write
    check_home(tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(errors.HomeError, match="is a file; a directory belongs there"):
        check_home(tmp_path / "afile")
    with pytest.raises(errors.HomeError, match="a file is in the way"):
        check_home(tmp_path / "afile" / "home")
    for entry in HOME_LAYOUT:
        home = tmp_path / f"home-{entry.name.replace('/', '-')}"
        (home / "cache").mkdir(parents=True)
        path = home / entry.name
        if entry.kind == "file":
            path.mkdir()
        else:
            if path.exists():
                path.rmdir()
            path.write_text("")
        with pytest.raises(errors.HomeError, match=f"a {entry.kind} belongs there"):
            check_home(home)


def test_an_unanticipated_io_error_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from enkrypted_shell._cli.main import main
    from enkrypted_shell._state import config

    def disk_gone(_home: Path) -> None:
        raise OSError(5, "Input/output error", str(tmp_path / "config.toml"))

    monkeypatch.setattr(config, "load_config", disk_gone)
    with pytest.raises(SystemExit) as caught:
        main(["--home", str(tmp_path), "plugins", "list"])
    assert caught.value.code == errors.ExitCode.FAILURE
    err = capsys.readouterr().err
    assert err.startswith("enkrypted: I/O error: [Errno 5] Input/output error") and "Traceback" not in err
