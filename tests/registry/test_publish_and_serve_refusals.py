"""Registry refusals: the plugin wheel layout rule at publish, malformed wheels refused as WheelError
(exit 3, never a traceback), a keys dir never inside the web root, absolute and NUL request paths 404."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

import enkrypted_registry.wheel as wheel_module
from enkrypted_registry import (
    RegistryUsageError,
    Repository,
    WheelError,
    inspect_wheel,
    publish,
)
from enkrypted_registry.cli import main
from enkrypted_registry.server import make_app
from tests.registry.support import Wheels

RECORD = "demo_crypto-1.0.0.dist-info/RECORD"
ENTRY_POINTS = "demo_crypto-1.0.0.dist-info/entry_points.txt"
METADATA = "demo_crypto-1.0.0.dist-info/METADATA"
MANIFEST = "demo_crypto/enkrypted-plugin.toml"


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _repack(
    src: Path,
    dst: Path,
    change: dict[str, bytes] | None = None,
    *,
    record: Callable[[dict[str, bytes]], bytes] | None = None,
    method: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Copy a wheel with members added/replaced and a RECORD that matches them (or ``record``)."""
    with zipfile.ZipFile(src) as old:
        members = {i.filename: old.read(i) for i in old.infolist() if i.filename != RECORD}
    members.update(change or {})
    text = (
        record(members)
        if record
        else (
            "".join(f"{p},{_digest(d)},{len(d)}\n" for p, d in members.items()) + f"{RECORD},,\n"
        ).encode()
    )
    dst.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dst, "w", method) as new:
        for name, data in members.items():
            new.writestr(name, data)
        new.writestr(RECORD, text)
    return dst


def _publish_cli(
    repo: Repository, wheel: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    code = main(["publish", str(repo.root), str(wheel), "--key", str(repo.key_path("crypto"))])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _untouched(repo: Repository) -> None:
    assert json.loads((repo.root / "releases.json").read_text())["projects"] == {}
    assert repo.load("crypto").signed.version == 1
    assert not (repo.public / "plugins").exists()


# -- the plugin wheel layout rule at publish (docs/hooks.md, wheel layout) -------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"zz_evil.pth": b"import os\n"}, r"zz_evil\.pth: \.pth files run code"),
        ({"demo_crypto/hook.pth": b"import os\n"}, r"demo_crypto/hook\.pth: \.pth files"),
        (
            {"enkrypted_shell/zz_marker.py": b"x = 1\n"},
            r"enkrypted_shell/zz_marker\.py: outside the plugin's package demo_crypto/",
        ),
        ({"evil.py": b"x = 1\n"}, r"evil\.py: outside the plugin's package"),
        ({"other_pkg/__init__.py": b""}, r"other_pkg/__init__\.py: outside"),
        (
            {"other_pkg/enkrypted-plugin.toml": b"[plugin]\n"},
            r"exactly one <package>/enkrypted-plugin\.toml \(found 2\)",
        ),
    ],
)
def test_publish_refuses_a_wheel_breaking_the_layout_rule(
    wheels: Wheels,
    repo: Repository,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: dict[str, bytes],
    message: str,
) -> None:
    bad = _repack(wheels.crypto10, tmp_path / "bad" / wheels.crypto10.name, extra)
    with pytest.raises(WheelError, match="breaks the plugin wheel layout rule: .*" + message):
        inspect_wheel(bad)
    with pytest.raises(WheelError):
        publish(repo, [bad], repo.key("crypto"))
    code, err = _publish_cli(repo, bad, capsys)
    assert code == WheelError.exit_code == 3
    assert "layout rule" in err
    _untouched(repo)


def test_a_shell_package_plugin_is_refused(
    wheels: Wheels, repo: Repository, tmp_path: Path
) -> None:
    """A plugin whose one package is the shell's own (entry point and manifest included)."""
    with zipfile.ZipFile(wheels.crypto10) as old:
        members = {
            i.filename.replace("demo_crypto/", "enkrypted_shell/"): old.read(i)
            for i in old.infolist()
            if i.filename != RECORD
        }
    members[ENTRY_POINTS] = members[ENTRY_POINTS].replace(b"demo_crypto.", b"enkrypted_shell.")
    src = tmp_path / "src" / wheels.crypto10.name
    src.parent.mkdir()
    with zipfile.ZipFile(src, "w") as new:
        for name, data in members.items():
            new.writestr(name, data)
        new.writestr(RECORD, b"")
    bad = _repack(src, tmp_path / "bad" / wheels.crypto10.name)
    with pytest.raises(WheelError, match="enkrypted_shell/ is the shell's package"):
        publish(repo, [bad], repo.key("crypto"))
    _untouched(repo)


def test_the_repos_plugin_wheels_satisfy_the_layout_rule(wheels: Wheels) -> None:
    for wheel in (wheels.crypto10, wheels.crypto11, wheels.ui10):
        assert inspect_wheel(wheel).files


# -- malformed wheels are WheelError (exit 3), never a traceback ----------------------------


def _method99(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(signature)
        data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


def _encrypted_flag(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        data[at + offset] |= 0x1
    path.write_bytes(bytes(data))
    return path


def _corrupt_member(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x03\x04")
    name_len = int.from_bytes(data[at + 26 : at + 28], "little")
    extra_len = int.from_bytes(data[at + 28 : at + 30], "little")
    start = at + 30 + name_len + extra_len
    data[start : start + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    return path


def _rows(members: dict[str, bytes], digest: Callable[[bytes], str]) -> bytes:
    return (
        "".join(f"{p},{digest(d)},{len(d)}\n" for p, d in members.items()) + f"{RECORD},,\n"
    ).encode()


BAD_WHEELS: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "record-bad-base64": (
        lambda s, d: _repack(s, d, record=lambda m: _rows(m, lambda _: "sha256=a")),
        r"has a malformed sha256 digest 'a'",
    ),
    "record-non-alphabet": (
        lambda s, d: _repack(s, d, record=lambda m: _rows(m, lambda _: "sha256=" + "!" * 43)),
        r"has a malformed sha256 digest",
    ),
    "record-short-digest": (
        lambda s, d: _repack(s, d, record=lambda m: _rows(m, lambda _: "sha256=AAAA")),
        r"sha256 digest of 3 bytes, not 32",
    ),
    "record-not-utf8": (
        lambda s, d: _repack(s, d, record=lambda m: b"\xff\xfe,,\n"),
        r"RECORD is not UTF-8",
    ),
    "record-nul": (
        lambda s, d: _repack(s, d, record=lambda m: b"a\x00b,sha256=x,1\n"),
        r"unsafe member path 'a\\x00b'",
    ),
    "entry-points-not-utf8": (
        lambda s, d: _repack(s, d, {ENTRY_POINTS: b"[enkrypted.plugins]\ndemo = \xff\n"}),
        r"entry_points\.txt is not UTF-8",
    ),
    "metadata-not-utf8": (
        lambda s, d: _repack(
            s,
            d,
            {
                METADATA: b"Metadata-Version: 2.1\nName: demo-crypto\nVersion: 1.0.0\nSummary: \xff\n"
            },
        ),
        r"METADATA is not UTF-8",
    ),
    "manifest-nested-too-deeply": (
        lambda s, d: _repack(s, d, {MANIFEST: b"x = " + b"[" * 20_000}),
        r"nested too deeply|not valid TOML",
    ),
    "compression-method-99": (
        lambda s, d: _method99(_repack(s, d, method=zipfile.ZIP_STORED)),
        r"malformed wheel \(NotImplementedError: .*compression",
    ),
    "encrypted-member": (
        lambda s, d: _encrypted_flag(_repack(s, d, method=zipfile.ZIP_STORED)),
        r"malformed wheel \(RuntimeError: .*encrypted",
    ),
    "corrupt-deflate": (
        lambda s, d: _corrupt_member(_repack(s, d)),
        r"malformed wheel \((error|BadZipFile|zlib)",
    ),
    "corrupt-bzip2": (
        lambda s, d: _corrupt_member(_repack(s, d, method=zipfile.ZIP_BZIP2)),
        r"malformed wheel \(",
    ),
    "truncated": (
        lambda s, d: d.write_bytes(s.read_bytes()[:-40]) and d,
        r"not a zip archive",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_WHEELS))
def test_publish_refuses_malformed_wheels_with_wheel_error(
    case: str,
    wheels: Wheels,
    repo: Repository,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    build, message = BAD_WHEELS[case]
    dst = tmp_path / case / wheels.crypto10.name
    dst.parent.mkdir(parents=True)
    bad = build(wheels.crypto10, dst)
    with pytest.raises(WheelError, match=message):
        inspect_wheel(bad)
    code, err = _publish_cli(repo, bad, capsys)
    assert code == 3
    assert err.startswith("enkrypted-registry: error: ")
    _untouched(repo)


def test_recursion_error_while_reading_a_wheel_is_a_wheel_error(
    wheels: Wheels, monkeypatch: pytest.MonkeyPatch
) -> None:
    def deep(*_: object) -> list[str]:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(wheel_module, "wheel_layout_problems", deep)
    with pytest.raises(WheelError, match=r"malformed wheel \(RecursionError: maximum recursion"):
        inspect_wheel(wheels.crypto10)


def test_publish_of_a_missing_wheel_is_a_usage_error(
    repo: Repository, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _publish_cli(repo, tmp_path / "demo_crypto-1.0.0-py3-none-any.whl", capsys)
    assert code == RegistryUsageError.exit_code == 2
    assert "cannot read" in err


# -- the keys dir is never inside the web root (docs/operations.md) ----------------------------------------------


@pytest.mark.parametrize("where", ["public/keys", "public", "public/a/b", "."])
def test_init_refuses_a_keys_dir_inside_or_containing_public(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "reg"
    with pytest.raises(
        RegistryUsageError, match="keys dir .* (inside|contains) the served web root"
    ):
        Repository.init(root, keys_dir=root / where)
    assert not (root / "registry.json").exists()
    assert not list(tmp_path.rglob("*.pem"))
    assert main(["init", str(root), "--keys-dir", str(root / where)]) == 2
    assert "web root" in capsys.readouterr().err
    assert not (root / "registry.json").exists()


def test_init_refuses_a_keys_dir_reached_through_a_symlink_into_public(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    (root / "public" / "k").mkdir(parents=True)
    (tmp_path / "keys").symlink_to(root / "public" / "k")
    with pytest.raises(RegistryUsageError, match="inside the served web root"):
        Repository.init(root, keys_dir=tmp_path / "keys")
    assert not list((root / "public" / "k").iterdir())


def test_init_accepts_a_keys_dir_outside_public(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "reg", keys_dir=tmp_path / "secure")
    assert repo.key_path("root").is_file()
    assert Repository(repo.root).keys_dir == (tmp_path / "secure").resolve()


def test_a_registry_with_its_keys_moved_into_public_is_refused_and_not_served(
    repo: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    moved = repo.public / "keys"
    os.rename(repo.keys_dir, moved)
    config = json.loads((repo.root / "registry.json").read_text())
    config["keys_dir"] = str(moved)
    (repo.root / "registry.json").write_text(json.dumps(config))
    with pytest.raises(RegistryUsageError, match="inside the served web root"):
        Repository(repo.root)
    for command in (["serve", str(repo.root), "--port", "0"], ["status", str(repo.root)]):
        assert main(command) == 2  # refused before anything binds
        assert "inside the served web root" in capsys.readouterr().err
    with pytest.raises(RegistryUsageError, match="inside the served web root"):
        make_app(repo.public, keys_dir=moved)


def test_the_server_never_serves_pem_files(repo: Repository) -> None:
    (repo.public / "stray.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (repo.public / "sub").mkdir()
    (repo.public / "sub" / "k.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    statuses = asyncio.run(
        _raw_statuses(repo.public, ["/stray.pem", "/sub/k.pem", "/tuf/root.json"])
    )
    assert statuses == [404, 404, 200]


# -- absolute and NUL request paths get 404 ------------------------------------------------


async def _raw_statuses(public: Path, paths: list[str]) -> list[int]:
    """Send each request target verbatim (no client-side normalisation) and return the statuses."""
    server = TestServer(make_app(public), host="127.0.0.1")
    await server.start_server()
    statuses: list[int] = []
    try:
        for target in paths:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await reader.readline()
            await reader.read()
            writer.close()
            statuses.append(int(status_line.split()[1]))
    finally:
        await server.close()
    return statuses


def test_absolute_and_nul_request_paths_get_404(repo: Repository) -> None:
    public = str(repo.public.resolve())
    targets = [
        "/tuf/root.json",  # control: served
        f"/{public}/simple",  # "//abs/…/simple": was a 301 to a protocol-relative URL
        f"/{public}/simple/",
        f"/{public}/tuf/root.json",
        f"/%2F{public.lstrip('/')}/tuf/root.json",
        "/%00",
        "/simple%00/",
        "/tuf/root.json%00",
        "/" + "a" * 5000,  # a name too long for the file system
    ]
    statuses = asyncio.run(_raw_statuses(repo.public, targets))
    assert statuses == [200] + [404] * (len(targets) - 1)
