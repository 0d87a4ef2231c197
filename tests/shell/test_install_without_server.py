"""The install client's steps over a python-tuf FetcherInterface that serves a registry directory:
TUF refresh, release choice and download verification run with no HTTP server at all.

The seam is the fetcher ``connect`` / ``install`` take (``_install/tuf_client.py``); every byte of an
install goes through it, the first-use root included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_errors
from tuf.ngclient import FetcherInterface

from enkrypted_registry import Repository, publish
from enkrypted_shell import errors
from enkrypted_shell._install import release_choice, tuf_client, wheels
from enkrypted_shell._install.installer import _policy
from tests.registry.support import build_demo_wheels

INDEX = "https://registry.invalid/"


@pytest.fixture(scope="module")
def demo_wheels(tmp_path_factory: pytest.TempPathFactory):
    return build_demo_wheels(tmp_path_factory)


@pytest.fixture
def published(tmp_path: Path, demo_wheels) -> Repository:
    repo = Repository.init(tmp_path / "registry")
    publish(repo, [demo_wheels.crypto10], repo.key("crypto"))
    publish(repo, [demo_wheels.ui10], repo.key("ui"))
    return repo


class DirectoryFetcher(FetcherInterface):
    """Serves ``INDEX``-relative paths from the registry's public folder; records what was asked."""

    def __init__(self, public: Path) -> None:
        self.public = public
        self.requested: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.requested.append(url)
        if not url.startswith(INDEX):
            raise tuf_errors.DownloadHTTPError(f"not ours: {url}", 404)
        path = self.public / url[len(INDEX):]
        if not path.is_file():
            raise tuf_errors.DownloadHTTPError(f"{url} not found", 404)
        return iter([path.read_bytes()])


class DownFetcher(FetcherInterface):
    def _fetch(self, url: str) -> Iterator[bytes]:
        raise ConnectionRefusedError(111, "Connection refused")


def _client(home: Path, fetcher: FetcherInterface) -> tuf_client.TufClient:
    said: list[str] = []
    client = tuf_client.connect(INDEX, home, None, home / "targets", said.append, pinned_only=False, fetcher=fetcher)
    assert any("PINNED the TUF root" in line for line in said)  # first use is announced
    return client


def test_refresh_choose_and_verify_a_release_without_a_server(tmp_path: Path, published: Repository) -> None:
    fetcher = DirectoryFetcher(published.public)
    client = _client(tmp_path / "home", fetcher)
    catalog = release_choice.catalog(client)
    assert "demo-crypto" in catalog and "demo-ui" in catalog
    policy = _policy(tmp_path / "home", client, lambda _m: None)  # trust.toml from TUF targets
    download = wheels.fetch_and_verify(client, catalog, "demo-crypto", None, policy, tmp_path)
    assert download.proof.distribution == "demo-crypto" and download.proof.version == "1.0.0"
    assert download.candidate.slot == "crypto"
    assert all(url.startswith(INDEX) for url in fetcher.requested)
    assert f"{INDEX}tuf/1.root.json" in fetcher.requested  # the first-use root came through the seam


def test_a_wheel_changed_on_the_server_is_refused_by_tuf(tmp_path: Path, published: Repository) -> None:
    client = _client(tmp_path / "home", DirectoryFetcher(published.public))
    catalog = release_choice.catalog(client)
    wheel = next(published.public.rglob("demo_crypto-1.0.0-py3-none-any.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    policy = _policy(tmp_path / "home", client, lambda _m: None)
    with pytest.raises(errors.ProvenanceError, match="TUF refused"):
        wheels.fetch_and_verify(client, catalog, "demo-crypto", None, policy, tmp_path)


def test_an_unreachable_registry_is_a_network_error(tmp_path: Path) -> None:
    with pytest.raises(errors.NetworkError, match="cannot reach the registry") as info:
        tuf_client.connect(INDEX, tmp_path, None, tmp_path / "t", print, pinned_only=False, fetcher=DownFetcher())
    assert info.value.exit_code == errors.ExitCode.NETWORK == 19
    assert not tuf_client.metadata_dir(tmp_path, INDEX).exists()  # nothing pinned


def test_a_registry_without_a_root_is_a_provenance_error(tmp_path: Path) -> None:
    empty = tmp_path / "public"
    empty.mkdir()
    with pytest.raises(errors.ProvenanceError, match="serves no TUF root"):
        tuf_client.connect(INDEX, tmp_path, None, tmp_path / "t", print, pinned_only=False, fetcher=DirectoryFetcher(empty))
