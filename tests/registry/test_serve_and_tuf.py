"""A served registry on loopback: stock pip installs from it, a python-tuf ngclient trusts it, and
the attacks TUF is for (tampered target, delegation abuse, rollback, freeze, mix-and-match,
revoked release) are detected."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Targets  # type: ignore[attr-defined]
from tuf.ngclient import Updater  # type: ignore[attr-defined]

from enkrypted_registry import Repository, inspect_wheel, publish, revoke
from enkrypted_shell._trust.policy import TrustPolicy
from enkrypted_shell._trust.provenance import verify_provenance
from enkrypted_shell.errors import ProvenanceError
from tests.registry.support import Server, Wheels, pip_env, start_process

CRYPTO_WHEEL = "plugins/crypto/demo_crypto-1.0.0-py3-none-any.whl"


def updater(repo: Repository, url: str, tmp: Path) -> Updater:
    """An ngclient Updater bootstrapped from the pinned version-1 root (trust on first use)."""
    meta, targets = tmp / "meta", tmp / "targets"
    meta.mkdir(parents=True, exist_ok=True)
    targets.mkdir(parents=True, exist_ok=True)
    return Updater(
        metadata_dir=str(meta),
        metadata_base_url=f"{url}tuf/",
        target_base_url=url,
        target_dir=str(targets),
        bootstrap=(repo.tuf_dir / "1.root.json").read_bytes(),
    )


def get(url: str, accept: str | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--isolated", "--no-deps"],
        check=False,
        capture_output=True,
        text=True,
        env=pip_env(),
        timeout=120,
    )


def test_pip_installs_from_served_registry(server: Server, tmp_path: Path) -> None:
    target = tmp_path / "site"
    result = pip(
        "install",
        "-q",
        "--index-url",
        f"{server.url}simple/",
        "demo-crypto==1.0.0",
        "--target",
        str(target),
    )
    assert result.returncode == 0, result.stderr
    assert (target / "demo_crypto" / "enkrypted-plugin.toml").is_file()
    result = pip(
        "download",
        "-q",
        "--index-url",
        f"{server.url}simple/",
        "demo-ui",
        "-d",
        str(tmp_path / "dl"),
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dl" / "demo_ui-1.0.0-py3-none-any.whl").is_file()


def test_pip_installs_from_plain_static_server(published: Repository, tmp_path: Path) -> None:
    """The same tree behind a server that knows nothing of PEP 691 (python -m http.server)."""
    proc, port = start_process(
        [
            sys.executable,
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(published.public),
        ],
        r"port (\d+)",
    )
    try:
        result = pip(
            "download",
            "-q",
            "--index-url",
            f"http://127.0.0.1:{port}/simple/",
            "demo-crypto==1.0.0",
            "-d",
            str(tmp_path),
        )
        assert result.returncode == 0, result.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_pep691_negotiation_and_static_safety(server: Server) -> None:
    status, ctype, body = get(
        f"{server.url}simple/demo-crypto/", "application/vnd.pypi.simple.v1+json"
    )
    assert status == 200 and ctype.startswith("application/vnd.pypi.simple.v1+json")
    doc = json.loads(body)
    assert doc["meta"]["api-version"] == "1.3" and doc["versions"] == ["1.0.0"]
    (entry,) = doc["files"]
    assert entry["yanked"] is False and entry["provenance"].endswith(".provenance")
    status, ctype, body = get(
        f"{server.url}simple/demo-crypto/", "application/vnd.pypi.simple.v1+json;q=0.1, text/html"
    )
    assert status == 200 and ctype.startswith("text/html") and b"data-provenance" in body
    assert b'<meta name="pypi:repository-version" content="1.3">' in body
    assert b"data-core-metadata=" in body and b"#sha256=" in body
    assert get(f"{server.url}simple/demo-crypto/", "application/xml")[0] == 406
    assert get(f"{server.url}simple/", None)[1].startswith("text/html")
    # PEP 658 metadata and the provenance are served next to the wheel.
    assert get(f"{server.url}{CRYPTO_WHEEL}.metadata")[2].startswith(b"Metadata-Version")
    assert json.loads(get(f"{server.url}{CRYPTO_WHEEL}.provenance")[2])["version"] == 1
    # Nothing outside the web root, no dot-files.
    assert get(f"{server.url}../registry.json")[0] == 404
    assert get(f"{server.url}%2e%2e/keys/root.pem")[0] == 404
    assert get(f"{server.url}tuf/.timestamp.json.tmp")[0] == 404


def test_ngclient_refreshes_and_downloads(
    server: Server, published: Repository, tmp_path: Path
) -> None:
    client = updater(published, server.url, tmp_path)
    client.refresh()
    info = client.get_targetinfo(CRYPTO_WHEEL)
    assert info is not None
    path = client.download_target(info)
    assert Path(path).read_bytes() == (published.public / CRYPTO_WHEEL).read_bytes()
    provenance = client.get_targetinfo(f"{CRYPTO_WHEEL}.provenance")
    assert provenance is not None
    assert client.get_targetinfo("plugins/ui/demo_ui-1.0.0-py3-none-any.whl") is not None


def test_altered_wheel_on_server_is_detected(
    server: Server, published: Repository, tmp_path: Path
) -> None:
    wheel = published.public / CRYPTO_WHEEL
    data = bytearray(wheel.read_bytes())
    data[100] ^= 0xFF  # same length, one byte changed
    wheel.write_bytes(bytes(data))
    client = updater(published, server.url, tmp_path)
    client.refresh()
    info = client.get_targetinfo(CRYPTO_WHEEL)
    assert info is not None
    with pytest.raises(tuf_errors.LengthOrHashMismatchError):
        client.download_target(info)


def test_ui_key_cannot_publish_crypto_targets(
    server: Server, published: Repository, wheels: Wheels, tmp_path: Path
) -> None:
    """An attacker holding the ui key lists a crypto wheel in ui.json and forges its provenance."""
    ui_key = published.key("ui")
    evil_path = "plugins/crypto/demo_crypto-1.1.0-py3-none-any.whl"
    shutil.copyfile(wheels.crypto11, published.public / evil_path)
    md = published.update_slot_targets("ui", ui_key, {evil_path: wheels.crypto11.read_bytes()})
    published.commit({"ui": md})
    client = updater(published, server.url, tmp_path)
    client.refresh()
    assert (
        evil_path
        in Metadata[Targets].from_bytes((published.tuf_dir / "ui.json").read_bytes()).signed.targets
    )
    # The ui role is not trusted for plugins/crypto/*: the target does not exist for the client.
    assert client.get_targetinfo(evil_path) is None
    # And a crypto provenance signed by the ui key fails verification under the slot policy.
    from enkrypted_registry.attestation import provenance_document

    forged = provenance_document(inspect_wheel(wheels.crypto11), ui_key.private, ui_key.keyid)
    policy = TrustPolicy.from_tuf_targets((published.tuf_dir / "targets.json").read_bytes())
    with pytest.raises(ProvenanceError, match="provenance for crypto plugin signed by the ui key"):
        verify_provenance(forged, policy=policy, slot="crypto")


def test_rollback_is_detected(
    server: Server, published: Repository, wheels: Wheels, tmp_path: Path
) -> None:
    old = {
        n: (published.tuf_dir / n).read_bytes()
        for n in ("timestamp.json", "snapshot.json", "crypto.json")
    }
    publish(published, [wheels.crypto11], published.key("crypto"))
    client = updater(published, server.url, tmp_path)
    client.refresh()
    assert client.get_targetinfo("plugins/crypto/demo_crypto-1.1.0-py3-none-any.whl")
    for name, data in old.items():  # the mirror replays an older, validly signed state
        (published.tuf_dir / name).write_bytes(data)
    with pytest.raises(tuf_errors.BadVersionNumberError):
        updater(published, server.url, tmp_path).refresh()


def test_expired_timestamp_freeze_is_detected(
    server: Server, published: Repository, tmp_path: Path
) -> None:
    past = Repository(published.root, now=lambda: datetime.now(UTC) - timedelta(days=30))
    past.refresh("timestamp")  # validly signed, but it expired 23 days ago
    with pytest.raises(tuf_errors.ExpiredMetadataError):
        updater(published, server.url, tmp_path).refresh()


def test_mix_and_match_is_detected(
    server: Server, published: Repository, wheels: Wheels, tmp_path: Path
) -> None:
    old_snapshot = (published.tuf_dir / "snapshot.json").read_bytes()
    old_crypto = (published.tuf_dir / "crypto.json").read_bytes()
    publish(published, [wheels.crypto11], published.key("crypto"))
    new_snapshot = (published.tuf_dir / "snapshot.json").read_bytes()
    # New timestamp with an old (validly signed) snapshot: timestamp pins snapshot's hash.
    (published.tuf_dir / "snapshot.json").write_bytes(old_snapshot)
    with pytest.raises(tuf_errors.LengthOrHashMismatchError):
        updater(published, server.url, tmp_path / "a").refresh()
    # New snapshot with an old (validly signed) crypto.json: snapshot pins its version.
    (published.tuf_dir / "snapshot.json").write_bytes(new_snapshot)
    (published.tuf_dir / "crypto.json").write_bytes(old_crypto)
    client = updater(published, server.url, tmp_path / "b")
    client.refresh()
    with pytest.raises(tuf_errors.BadVersionNumberError):
        client.get_targetinfo(CRYPTO_WHEEL)


def test_revoked_release_is_gone_for_tuf_and_yanked_for_pip(
    server: Server, published: Repository, tmp_path: Path
) -> None:
    client = updater(published, server.url, tmp_path / "a")
    client.refresh()
    assert client.get_targetinfo(CRYPTO_WHEEL) is not None
    assert revoke(published, "Demo_Crypto==1.0.0", reason="CVE-0000-1") == [
        "demo_crypto-1.0.0-py3-none-any.whl"
    ]
    client = updater(published, server.url, tmp_path / "a")
    client.refresh()
    assert client.get_targetinfo(CRYPTO_WHEEL) is None
    assert client.get_targetinfo(f"{CRYPTO_WHEEL}.provenance") is None
    html = get(f"{server.url}simple/demo-crypto/")[2]
    assert b'data-yanked="CVE-0000-1"' in html
    doc = json.loads(
        get(f"{server.url}simple/demo-crypto/", "application/vnd.pypi.simple.v1+json")[2]
    )
    assert doc["files"][0]["yanked"] == "CVE-0000-1"
    # PEP 592: an unpinned install no longer selects the yanked file.
    result = pip(
        "download",
        "-q",
        "--index-url",
        f"{server.url}simple/",
        "demo-crypto",
        "-d",
        str(tmp_path / "dl"),
    )
    assert result.returncode != 0
