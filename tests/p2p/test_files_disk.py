"""Files on disk: ≥ 50 MB on both paths streamed from a file into the encrypted files directory
with peak memory independent of the size, nothing in plaintext at rest, export under a safe
unique name and never over a file, tamper detection, resume of a partial file after a restart,
and the size / free-disk checks before accepting."""

from __future__ import annotations

import gc
import os
import shutil
import tracemalloc
from collections import namedtuple
from pathlib import Path

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.files import (
    FileLimits,
    FilesDirectory,
    FileSource,
    FileTransfers,
    InsufficientSpace,
    OfferReceived,
    StoredFileDamaged,
    TransferComplete,
    hash_file,
)
from enkrypted_shell.contracts import AppContext, CryptoService
from tests.p2p.files_pipe import Pipe, core_pair, sealing

MB = 1024 * 1024


class DictStore:
    """The ``files`` table of a profile store (contract store 1.0), in memory."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, bytes], bytes] = {}

    def get(self, table: str, key: bytes) -> bytes | None:
        return self.rows.get((table, key))

    def put(self, table: str, key: bytes, value: bytes) -> None:
        assert len(value) <= 4 * MB  # the profile store's value bound
        self.rows[(table, key)] = value

    def delete(self, table: str, key: bytes) -> bool:
        return self.rows.pop((table, key), None) is not None


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        for off in range(0, size, MB):
            f.write(os.urandom(min(MB, size - off)))
    return path


def send_file(a: FileTransfers, b: FileTransfers, directory: FilesDirectory, path: Path, *,
              fast: bool, pipe: Pipe | None = None, stop_after: int | None = None) -> tuple[str, Pipe]:
    size, digest = hash_file(path)
    tid = a.offer(FileSource(path), name=path.name, size=size, sha256=digest, fast=fast)
    pipe = pipe or Pipe(a, b)
    pipe.run()
    o = next(e for e in pipe.events_b if isinstance(e, OfferReceived) and e.transfer_id == tid)
    sink = directory.open_sink(tid, name=o.name, size=o.size, chunk_size=o.chunk_size,
                               sha256=o.sha256, media_type=o.media_type)
    b.accept(tid, sink, 1.0)
    if stop_after is None:
        pipe.run()
    else:
        pipe.run(stop=lambda: b.progress(tid)[0] >= stop_after)
    return tid, pipe


def peak_while_sending(crypto: CryptoService, tmp_path: Path, size: int, fast: bool) -> int:
    a, b, _ = core_pair(crypto)
    directory = FilesDirectory(tmp_path / f"recv-{size}-{fast}", DictStore())
    path = random_file(tmp_path / f"src-{size}.bin", size)
    gc.collect()
    tracemalloc.start()
    try:
        tid, pipe = send_file(a, b, directory, path, fast=fast)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert TransferComplete(tid, False) in pipe.events_b
    out = directory.export(tid, tmp_path)
    assert hash_file(out) == hash_file(path)
    path.unlink()
    out.unlink()
    return peak


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_50_mb_streams_through_with_memory_independent_of_size(crypto: CryptoService,
                                                               tmp_path: Path, fast: bool) -> None:
    small = peak_while_sending(crypto, tmp_path, 4 * MB, fast)
    large = peak_while_sending(crypto, tmp_path, 50 * MB, fast)
    # the window (32 x 64 KiB) bounds what is in flight; the file is never held whole
    print(f"peak traced memory ({'fast' if fast else 'standard'}): 4 MB file {small} B, "
          f"50 MB file {large} B")
    assert large < 8 * MB, large
    assert large < small + 2 * MB, (small, large)


def test_received_file_is_encrypted_at_rest_and_exported_safely(crypto: CryptoService,
                                                                tmp_path: Path) -> None:
    a, b, _ = core_pair(crypto)
    store = DictStore()
    directory = FilesDirectory(tmp_path / "files", store)
    path = random_file(tmp_path / "..\\..\u202eexe.txt", 300_000)
    data = path.read_bytes()
    tid, _ = send_file(a, b, directory, path, fast=True)
    stored = sorted(p.name for p in directory.root.iterdir())
    assert stored == [f"{tid}.enkf"]  # named by the transfer id, never by the peer
    at_rest = (directory.root / stored[0]).read_bytes()
    assert all(data[i:i + 32] not in at_rest for i in range(0, len(data), 50_000))
    info = directory.info(tid)
    assert info.complete and info.name == "_..exe.txt"  # no separator, no bidi override
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    first, second = directory.export(tid, out_dir), directory.export(tid, out_dir)
    assert first.parent == out_dir and second.parent == out_dir and first != second
    assert first.read_bytes() == data == second.read_bytes()
    with pytest.raises(FileExistsError):
        directory.export(tid, first)  # never over an existing file
    assert first.read_bytes() == data


def test_tampered_file_at_rest_fails_export_and_leaves_nothing(crypto: CryptoService,
                                                               tmp_path: Path) -> None:
    a, b, _ = core_pair(crypto)
    directory = FilesDirectory(tmp_path / "files", DictStore())
    tid, _ = send_file(a, b, directory, random_file(tmp_path / "f.bin", 200_000), fast=False)
    container = directory.root / f"{tid}.enkf"
    raw = bytearray(container.read_bytes())
    raw[70_000] ^= 1
    container.write_bytes(bytes(raw))
    with pytest.raises(StoredFileDamaged):
        directory.export(tid, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_receiver_restart_resumes_the_partial_file_on_disk(crypto: CryptoService, tmp_path: Path,
                                                           fast: bool) -> None:
    limits = FileLimits(chunk_bytes=8192, window_chunks=8)
    a, b, (_, sb) = core_pair(crypto, limits)
    store = DictStore()
    directory = FilesDirectory(tmp_path / "files", store, limits)
    path = random_file(tmp_path / "f.bin", 100 * 8192 + 3)
    tid, pipe = send_file(a, b, directory, path, fast=fast, stop_after=41)
    state_b = b.export_state()
    pipe.run(stop=lambda: b.progress(tid)[0] >= 50)  # written after the export: cut back
    a.link_lost()  # the receiving process dies here: b is never used again
    b2 = FileTransfers.restore(state_b, *sealing(sb), sources=_none, limits=limits,
                               sinks=lambda d, n: FilesDirectory(
                                   tmp_path / "files", store, limits).reopen_sink(d, n))
    assert b2.progress(tid) == (41, 101)
    a.link_restored(3.0)
    b2.link_restored(3.0)
    pipe = Pipe(a, b2)
    pipe.run()
    assert TransferComplete(tid, True) in pipe.events_a
    assert hash_file(directory.export(tid, tmp_path / "out.bin")) == hash_file(path)


def _none(descriptor: str) -> FileSource:
    raise AssertionError("no source on the receiving side")


def test_size_limit_and_free_disk_are_checked_before_accepting(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    directory = FilesDirectory(tmp_path, DictStore(), FileLimits(max_file_bytes=10 * MB))
    with pytest.raises(InsufficientSpace, match="above the limit"):
        directory.check_space(11 * MB)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(100 * MB, 0, 66 * MB))
    directory.check_space(1 * MB)
    with pytest.raises(InsufficientSpace, match="free on the disk"):
        directory.check_space(5 * MB)
    with pytest.raises(InsufficientSpace):
        directory.open_sink("00" * 16, name="x", size=5 * MB, chunk_size=65536,
                            sha256="00" * 32, media_type="")
    assert list(tmp_path.iterdir()) == []  # nothing created, no key kept
