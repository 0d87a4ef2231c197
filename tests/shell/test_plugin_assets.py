"""A plugin's declared asset folder (``[plugin] assets``): the manifest rule, and the verified bytes
the integrity step keeps for it (what ``AppContext.assets`` hands the plugin; docs/hooks.md)."""

from __future__ import annotations

import base64
import hashlib
from importlib import metadata
from pathlib import Path

import pytest

from enkrypted_shell._pipeline.integrity import verify_distribution
from enkrypted_shell._pipeline.manifest import parse_manifest
from enkrypted_shell.contracts import AppContext
from enkrypted_shell.errors import IntegrityError, ManifestError

MANIFEST = b'[plugin]\nname = "ui-x"\nslot = "ui"\ncontract = "1.0"\nshell = ">=0.1"\n'


def test_the_manifest_names_one_folder_of_the_package_or_none() -> None:
    assert parse_manifest(MANIFEST, source="m").assets == ""
    assert parse_manifest(MANIFEST + b'assets = "static"\n', source="m").assets == "static"
    for bad in ('"../x"', '"a/b"', '"Static"', '""x', "3", '"."'):
        with pytest.raises(ManifestError):
            parse_manifest(MANIFEST + f"assets = {bad}\n".encode(), source="m")


def _row(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def _installed(tmp_path: Path, files: dict[str, bytes]) -> metadata.Distribution:
    info = tmp_path / "ui_x-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: ui-x\nVersion: 0.1\n")
    rows = [_row("ui_x-0.1.dist-info/METADATA", (info / "METADATA").read_bytes())]
    for rel, data in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append(_row(rel, data))
    (info / "RECORD").write_text("\n".join([*rows, "ui_x-0.1.dist-info/RECORD,,"]) + "\n")
    return metadata.PathDistribution(info)


def test_the_asset_folder_bytes_are_kept_as_verified_and_a_changed_one_refused(tmp_path: Path) -> None:
    dist = _installed(tmp_path, {"ui_x/__init__.py": b"", "ui_x/static/app.js": b"go()",
                                 "ui_x/static/sub/a.css": b"p{}", "ui_x/other.txt": b"no"})
    report = verify_distribution(dist, assets="ui_x/static/")
    assert dict(report.assets) == {"app.js": b"go()", "sub/a.css": b"p{}"}
    assert report.asset_digests() == {
        "app.js": "sha256:" + hashlib.sha256(b"go()").hexdigest(),
        "sub/a.css": "sha256:" + hashlib.sha256(b"p{}").hexdigest()}
    assert verify_distribution(dist).assets == {}
    assert AppContext(tmp_path).assets == {}  # nothing declared, nothing handed over
    (tmp_path / "ui_x/static/app.js").write_bytes(b"steal()")
    with pytest.raises(IntegrityError, match="ui_x/static/app.js was changed after install"):
        verify_distribution(dist, assets="ui_x/static/")
