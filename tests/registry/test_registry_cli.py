"""The enkrypted-registry CLI and repository operations: init, publish refusals, wheel checks,
status, rotation (root signed by old + new keys, accepted by ngclient), refresh, revoke."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, Root  # type: ignore[attr-defined]
from tuf.ngclient import Updater  # type: ignore[attr-defined]

from enkrypted_registry import (
    PublishRefusedError,
    Repository,
    WheelError,
    content_digest_from_wheel,
    inspect_wheel,
    publish,
)
from enkrypted_registry.cli import main
from enkrypted_registry.wheel import SLOTS
from tests.registry.support import Server, Wheels, pip_env


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enkrypted_registry", *args],
        check=False,
        capture_output=True,
        text=True,
        env=pip_env(),
        timeout=60,
    )


def test_init_layout_and_key_permissions(tmp_path: Path) -> None:
    keys = tmp_path / "secrets"
    result = cli(
        "init", str(tmp_path / "reg"), "--keys-dir", str(keys), "--expires-days", "timestamp=2"
    )
    assert result.returncode == 0, result.stderr
    reg = tmp_path / "reg"
    for role in ("root", "targets", "snapshot", "timestamp", *SLOTS):
        mode = stat.S_IMODE((keys / f"{role}.pem").stat().st_mode)
        assert mode == 0o600, role
    assert not (reg / "keys").exists()
    names = sorted(p.name for p in (reg / "public" / "tuf").iterdir())
    assert names == [
        "1.root.json",
        "crypto.json",
        "p2p.json",
        "root.json",
        "snapshot.json",
        "targets.json",
        "timestamp.json",
        "ui.json",
    ]
    targets = json.loads((reg / "public" / "tuf" / "targets.json").read_text())["signed"]
    roles = {r["name"]: r for r in targets["delegations"]["roles"]}
    assert {n: r["paths"] for n, r in roles.items()} == {s: [f"plugins/{s}/*"] for s in SLOTS}
    assert all(r["terminating"] and r["threshold"] == 1 for r in roles.values())
    assert len({r["keyids"][0] for r in roles.values()}) == 3
    status = json.loads(cli("status", str(reg), "--json").stdout)
    assert status["roles"]["timestamp"]["version"] == 1
    assert not any(r["expired"] for r in status["roles"].values())
    assert cli("init", str(reg)).returncode == 2  # refuses to overwrite


def test_cli_publish_with_wrong_slot_key_is_refused(tmp_path: Path, wheels: Wheels) -> None:
    reg = tmp_path / "reg"
    assert main(["init", str(reg)]) == 0
    result = cli("publish", str(reg), str(wheels.crypto10), "--key", str(reg / "keys" / "ui.pem"))
    assert result.returncode == 4
    assert "is a crypto plugin (demo-crypto) but the key given is the ui key" in result.stderr
    assert not (reg / "public" / "plugins").exists()
    result = cli(
        "publish", str(reg), str(wheels.crypto10), "--key", str(reg / "keys" / "crypto.pem")
    )
    assert result.returncode == 0, result.stderr
    assert "published: demo_crypto-1.0.0-py3-none-any.whl" in result.stdout
    # Root/targets keys are not publisher keys either.
    result = cli(
        "publish", str(reg), str(wheels.crypto11), "--key", str(reg / "keys" / "targets.pem")
    )
    assert result.returncode == 4 and "not the delegated publisher key" in result.stderr
    text = cli("status", str(reg)).stdout
    assert "crypto    v2" in text and "targets=2" in text
    assert "[crypto] demo-crypto 1.0.0: demo_crypto-1.0.0-py3-none-any.whl live" in text


def test_publish_is_idempotent_and_releases_immutable(
    repo: Repository, wheels: Wheels, tmp_path: Path
) -> None:
    key = repo.key("crypto")
    assert not publish(repo, [wheels.crypto10], key)[0].skipped
    version = repo.load("timestamp").signed.version
    assert publish(repo, [wheels.crypto10], key)[0].skipped
    assert repo.load("timestamp").signed.version == version
    # Same filename, different bytes: refused.
    other = tmp_path / wheels.crypto10.name
    shutil.copyfile(wheels.crypto10, other)
    with zipfile.ZipFile(other, "a") as archive:
        archive.comment = b"rebuilt"
    with pytest.raises(PublishRefusedError, match="immutable"):
        publish(repo, [other], key)


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> Path:
    with zipfile.ZipFile(src) as old, zipfile.ZipFile(dst, "w") as new:
        for item in old.infolist():
            if item.filename in change:
                data = change[item.filename]
                if data is not None:
                    new.writestr(item, data)
            else:
                new.writestr(item, old.read(item.filename))
        for name, data in change.items():
            if name not in old.namelist() and data is not None:
                new.writestr(name, data)
    return dst


def test_wheel_checks(wheels: Wheels, tmp_path: Path) -> None:
    info = inspect_wheel(wheels.crypto10)
    assert (info.slot, info.plugin, info.version) == ("crypto", "demo-crypto", "1.0.0")
    assert info.manifest_path == "demo_crypto/enkrypted-plugin.toml"
    assert content_digest_from_wheel(wheels.crypto10) == info.content_digest
    name = wheels.crypto10.name
    cases: dict[str, dict[str, bytes | None]] = {
        "does not match its RECORD sha256": {"demo_crypto/plugin.py": b"EVIL = 1\n"},
        "is not listed in RECORD": {"demo_crypto/extra.py": b"x = 1\n"},
        "is deprecated \\(PEP 815\\)": {"demo_crypto-1.0.0.dist-info/RECORD.jws": b"{}"},
        "manifest demo_crypto/enkrypted-plugin.toml is missing": {
            "demo_crypto/enkrypted-plugin.toml": None
        },
    }
    for number, (message, change) in enumerate(cases.items()):
        bad = tmp_path / str(number) / name
        bad.parent.mkdir()
        _rewrite(wheels.crypto10, bad, change)
        if message.startswith("manifest"):
            # Keep RECORD consistent so only the manifest rule fires.
            record = "demo_crypto-1.0.0.dist-info/RECORD"
            with zipfile.ZipFile(wheels.crypto10) as z:
                lines = z.read(record).decode().splitlines(keepends=True)
            kept = "".join(x for x in lines if "enkrypted-plugin.toml" not in x).encode()
            _rewrite(wheels.crypto10, bad, {**change, record: kept})
        with pytest.raises(WheelError, match=message):
            inspect_wheel(bad)
    notzip = tmp_path / name
    notzip.write_bytes(b"not a zip")
    with pytest.raises(WheelError, match="not a zip"):
        inspect_wheel(notzip)


def _root_versions(repo: Repository) -> list[int]:
    return sorted(int(p.name.split(".")[0]) for p in repo.tuf_dir.glob("*.root.json"))


def test_rotate_root_and_online_keys_ngclient_follows(
    server: Server, published: Repository, tmp_path: Path
) -> None:
    meta = tmp_path / "meta"
    meta.mkdir()
    bootstrap = (published.tuf_dir / "1.root.json").read_bytes()

    def fresh_client() -> Updater:
        return Updater(
            str(meta), f"{server.url}tuf/", str(tmp_path), server.url, bootstrap=bootstrap
        )

    fresh_client().refresh()
    old_root_keyid = published.key("root").keyid
    published.rotate("root")
    v2 = Metadata[Root].from_bytes((published.tuf_dir / "2.root.json").read_bytes())
    assert {s for s in v2.signatures} == {old_root_keyid, published.key("root").keyid}
    published.rotate("timestamp")
    published.rotate("snapshot")
    published.rotate("targets")
    published.rotate("crypto")
    assert _root_versions(published) == [1, 2, 3, 4, 5]
    client = fresh_client()  # persisted metadata from the first refresh, same pinned v1 root
    client.refresh()
    assert client.get_targetinfo("plugins/crypto/demo_crypto-1.0.0-py3-none-any.whl")
    retired = sorted(p.name.split("-")[0] for p in (published.keys_dir / "retired").iterdir())
    assert retired == ["crypto", "root", "snapshot", "targets", "timestamp"]
    # The rotated crypto key publishes; the retired one no longer can.
    old_crypto = (
        published.keys_dir
        / "retired"
        / next(
            p.name
            for p in (published.keys_dir / "retired").iterdir()
            if p.name.startswith("crypto")
        )
    )
    result = cli("publish", str(published.root), str(Path(__file__)), "--key", str(old_crypto))
    assert result.returncode != 0


def test_refresh_and_revoke_cli(published: Repository) -> None:
    before = published.load("timestamp").signed.version
    assert cli("refresh", str(published.root)).returncode == 0
    assert published.load("timestamp").signed.version == before + 1
    result = cli(
        "revoke",
        str(published.root),
        "demo-crypto==1.0.0",
        "--reason",
        "bad build",
        "--delete-files",
    )
    assert result.returncode == 0, result.stderr
    assert not (published.public / "plugins/crypto/demo_crypto-1.0.0-py3-none-any.whl").exists()
    assert not (published.public / "simple" / "demo-crypto").exists()
    assert published.load("crypto").signed.targets == {}
    result = cli("yank", str(published.root), "demo-crypto==1.0.0")
    assert result.returncode == 2 and "not published" in result.stderr
    result = cli(
        "revoke", str(published.root), "demo-ui==1.0.0", "--key", str(published.key_path("crypto"))
    )
    assert result.returncode == 4 and "revoke it with the ui key" in result.stderr
