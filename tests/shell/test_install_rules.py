"""Install-path rules (docs/trust-model.md "Install"): the plugin wheel layout rule, wheels from the
dependency index, one spelling per index URL, first-use pins, packages owned by another distribution."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from enkrypted_shell import errors
from enkrypted_shell._install import pip as installer
from enkrypted_shell._install import tuf_client
from enkrypted_shell._pipeline.integrity import wheel_layout_problems

GOOD = ["p/__init__.py", "p/enkrypted-plugin.toml", "p-1.0.dist-info/METADATA", "p-1.0.dist-info/RECORD"]


def test_plugin_wheel_layout():
    assert wheel_layout_problems(GOOD) == []
    assert any(".pth" in p for p in wheel_layout_problems([*GOOD, "zz.pth"]))
    assert any(".pth" in p for p in wheel_layout_problems([*GOOD, "p/inner.pth"]))
    assert any("enkrypted_shell/x.py" in p for p in wheel_layout_problems([*GOOD, "enkrypted_shell/x.py"]))
    assert any("top.py" in p for p in wheel_layout_problems([*GOOD, "top.py"]))
    assert any(".data" in p for p in wheel_layout_problems([*GOOD, "p-1.0.data/scripts/x"]))
    shell = ["enkrypted_shell/__init__.py", "enkrypted_shell/enkrypted-plugin.toml", "x-1.dist-info/METADATA"]
    assert any("shell's package" in p for p in wheel_layout_problems(shell))
    assert any("exactly one" in p for p in wheel_layout_problems(["p/__init__.py", "p-1.0.dist-info/METADATA"]))


def _wheel(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


@pytest.mark.parametrize(
    ("filename", "members", "words"),
    [
        ("enkrypted_crypto-0.1.5-py3-none-any.whl", {"enkrypted_crypto/__init__.py": b""}, "plugin project"),
        ("lib-1.0-py3-none-any.whl", {"lib/__init__.py": b"", "zz.pth": b"import os"}, "zz.pth"),
        ("lib-1.0-py3-none-any.whl", {"lib/__init__.py": b"", "lib-1.0.dist-info/entry_points.txt":
                                      b"[enkrypted.plugins]\nx = lib\n"}, "entry point"),
        ("lib-1.0-py3-none-any.whl", {"lib/__init__.py": b"", "p/evil.py": b""}, "p/evil.py"),
        ("lib-1.0-py3-none-any.whl", {"enkrypted_shell/evil.py": b""}, "enkrypted_shell/evil.py"),
        ("not-a-wheel.zip", {"x": b""}, "not a wheel"),
    ],
)
def test_dependency_index_wheels_that_pose_as_plugin_code_are_refused(tmp_path, filename, members, words):
    wheel = _wheel(tmp_path, filename, members)
    with pytest.raises(errors.ProvenanceError, match=words):
        installer._check_dependency_wheel(
            wheel, {"enkrypted-crypto"}, {"p", "enkrypted_shell"}, "http://127.0.0.1:1/simple/"
        )


def test_a_plain_dependency_wheel_passes(tmp_path):
    wheel = _wheel(tmp_path, "lib-1.0-py3-none-any.whl", {"lib/__init__.py": b"", "lib-1.0.dist-info/METADATA": b""})
    installer._check_dependency_wheel(wheel, {"enkrypted-crypto"}, {"p"}, "http://127.0.0.1:1/simple/")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://LOCALHOST:8080/simple/", "http://localhost:8080/"),
        ("http://localhost:80/x", "http://localhost/x/"),
        ("https://Index.Example:443/", "https://index.example/"),
        ("HTTP://127.0.0.1:8080", "http://127.0.0.1:8080/"),
        ("http://[::1]:8080/", "http://[::1]:8080/"),
        ("http://index.example./", "http://index.example/"),
    ],
)
def test_index_urls_have_one_spelling(url, expected):
    assert tuf_client.normalize_index_url(url) == expected


@pytest.mark.parametrize("url", ["http://user:pw@index.example/", "http://index.example:99999/", "ftp://x/"])
def test_bad_index_urls_are_usage_errors(url):
    with pytest.raises(errors.ShellUsageError):
        tuf_client.normalize_index_url(url)


def test_a_root_pinned_for_another_url_is_not_pinned_again(tmp_path, monkeypatch):
    root = b'{"signed": "the same root"}'
    known = tuf_client.metadata_dir(tmp_path, "http://127.0.0.1:8080/")
    (known / "root_history").mkdir(parents=True)
    (known / "root_history" / "1.root.json").write_bytes(root)
    (known / "index-url").write_text("http://127.0.0.1:8080/\n")
    monkeypatch.setattr(tuf_client, "_fetch_first_root", lambda index, fetcher: root)
    monkeypatch.setattr(tuf_client, "_root_keyids", lambda data: ["k" * 64])
    with pytest.raises(errors.ProvenanceError, match=r"already pinned for http://127\.0\.0\.1:8080/"):
        tuf_client.connect("http://localhost:8080/", tmp_path, None, tmp_path / "t", print, pinned_only=False)
    assert not tuf_client.metadata_dir(tmp_path, "http://localhost:8080/").exists()


def test_a_package_owned_by_another_distribution_is_not_overwritten(tmp_path, monkeypatch):
    import sys
    import sysconfig
    from types import SimpleNamespace

    site = tmp_path / "site"
    (site / "victim_pkg").mkdir(parents=True)
    (site / "victim_pkg" / "__init__.py").write_text("")
    info = site / "victim-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: victim\nVersion: 1.0\n")
    (info / "RECORD").write_text("victim_pkg/__init__.py,,\nvictim-1.0.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"purelib": str(site), "platlib": str(site)})
    assert installer._owners_here({"victim_pkg", "absent_pkg"}) == {"victim_pkg": ["victim"]}

    def item(dist):
        files = (("victim_pkg/enkrypted-plugin.toml", "0" * 64),)
        proof = SimpleNamespace(files=files, distribution=dist, plugin="x")
        return SimpleNamespace(proof=proof, candidate=SimpleNamespace(filename=f"{dist}-1-py3-none-any.whl"))

    with pytest.raises(errors.ProvenanceError, match="already installed by victim"):
        installer.check_ownership(sys.executable, [item("attacker")])
    installer.check_ownership(sys.executable, [item("victim")])  # an upgrade of the same project
