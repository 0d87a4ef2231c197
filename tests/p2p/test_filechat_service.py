"""Files in the chat service (p2p contract 2.1, FileChatService) in one process, over the
in-memory switchboard: offer / accept / verified hash / export on both paths, the ask-first
default, reject, the no-store refusal, a killed link resumed, and hostile file frames that never
end the chat session (docs/protocol.md "File transfer")."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.files import FileUsageError
from enkrypted_shell.contracts import (
    AppContext,
    ChatMessage,
    CryptoService,
    FileChatService,
    FileCompleted,
    FileFailed,
    FileOffered,
    StoredFile,
    supports,
)
from tests.p2p.chat_switchboard import Switchboard
from tests.p2p.test_chat_service import DictStore, Peer, open_peer, until


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


def run(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 120))


async def pair(tmp_path: Path, crypto: CryptoService, **bob_kw: Any) -> tuple[Switchboard, Peer,
                                                                              Peer, DictStore]:
    board = Switchboard()
    store = DictStore()
    alice = await open_peer(board, "alice", crypto)
    bob_context = bob_kw.pop("context", None) or AppContext(tmp_path / "bob", store=store)  # type: ignore[arg-type]
    bob = await open_peer(board, "bob", crypto, context=bob_context, **bob_kw)
    await alice.chat.connect("bob")
    await until(lambda: bob.chat.peers().get("alice") == "ready")
    return board, alice, bob, store


def make_file(path: Path, size: int) -> str:
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
@pytest.mark.parametrize("size", [0, 1, 8191, 8192, 8193, 300_000])
def test_a_file_arrives_verified_and_exports(tmp_path: Path, crypto: CryptoService, size: int,
                                             fast: bool) -> None:
    async def scenario() -> None:
        _, alice, bob, _ = await pair(tmp_path, crypto, accept_files=True)
        assert supports(alice.chat, FileChatService) and isinstance(bob.chat, FileChatService)
        sha = make_file(tmp_path / "in.bin", size)
        tid = await alice.chat.send_file("bob", tmp_path / "in.bin", fast=fast)
        await until(lambda: bool(bob.of(FileCompleted)) and bool(alice.of(FileCompleted)))
        done = bob.of(FileCompleted)[0]
        assert (done.transfer_id, done.sha256, done.size, done.fast, done.outgoing) == (
            tid, sha, size, fast, False)
        assert alice.of(FileCompleted)[0].outgoing
        assert bob.chat.files() == [StoredFile(tid, "in.bin", size, sha, "alice", fast)]
        out = bob.chat.export_file(tid, tmp_path)
        assert out.name == "in (1).bin" or out.name == "in.bin"
        assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
        assert not list((tmp_path / "bob" / "files").glob("*.part"))
        for p in (alice, bob):
            await p.close()
    run(scenario)


def test_an_offer_waits_for_accept_or_reject(tmp_path: Path, crypto: CryptoService) -> None:
    async def scenario() -> None:
        _, alice, bob, _ = await pair(tmp_path, crypto)
        make_file(tmp_path / "a.txt", 5000)
        first = await alice.chat.send_file("bob", tmp_path / "a.txt")
        second = await alice.chat.send_file("bob", tmp_path / "a.txt", fast=True)
        await until(lambda: len(bob.of(FileOffered)) == 2)
        offers = {o.transfer_id: o for o in bob.of(FileOffered)}
        assert offers[first].name == "a.txt" and not offers[first].fast and offers[second].fast
        await bob.chat.reject_file("alice", first)
        await bob.chat.accept_file("alice", second)
        await until(lambda: bool(alice.of(FileFailed)) and bool(bob.of(FileCompleted)))
        assert alice.of(FileFailed)[0].transfer_id == first
        assert "declined" in alice.of(FileFailed)[0].reason
        with pytest.raises(FileUsageError):
            await bob.chat.accept_file("alice", first)
        for p in (alice, bob):
            await p.close()
    run(scenario)


def test_without_a_profile_store_files_are_refused_in_one_line(tmp_path: Path,
                                                               crypto: CryptoService) -> None:
    async def scenario() -> None:
        _, alice, bob, _ = await pair(tmp_path, crypto, context=AppContext(tmp_path / "b"),
                                      accept_files=True)
        make_file(tmp_path / "a.txt", 10)
        await alice.chat.send_file("bob", tmp_path / "a.txt")
        await until(lambda: bool(alice.of(FileFailed)) and bool(bob.of(FileFailed)))
        assert "profile store" in bob.of(FileFailed)[0].reason
        assert not (tmp_path / "b" / "files").exists() or not any((tmp_path / "b").rglob("*.part"))
        for p in (alice, bob):
            await p.close()
    run(scenario)


@pytest.mark.parametrize("fast", [False, True], ids=["standard", "fast"])
def test_a_killed_link_resumes_the_transfer_from_the_last_verified_chunk(
        tmp_path: Path, crypto: CryptoService, fast: bool) -> None:
    async def scenario() -> None:
        board, alice, bob, _ = await pair(tmp_path, crypto, accept_files=True)
        sha = make_file(tmp_path / "big.bin", 16 * 1024 * 1024)
        await alice.chat.send_file("bob", tmp_path / "big.bin", fast=fast)
        core = bob.chat._peers["alice"].core
        assert core is not None
        await until(lambda: core.files is not None and any(
            t.done_bytes > 1024 * 1024 for t in core.files.transfers()))
        assert board.kill_all() >= 1
        await until(lambda: bool(alice.chat._peers["bob"].core.resumed))  # type: ignore[union-attr]
        await until(lambda: bool(bob.of(FileCompleted)), 60)
        assert bob.of(FileCompleted)[0].sha256 == sha
        out = bob.chat.export_file(bob.of(FileCompleted)[0].transfer_id, tmp_path / "out.bin")
        assert hashlib.sha256(out.read_bytes()).hexdigest() == sha
        for p in (alice, bob):
            await p.close()
    run(scenario)


def test_hostile_file_frames_never_end_the_chat_session(tmp_path: Path,
                                                        crypto: CryptoService) -> None:
    async def scenario() -> None:
        _, alice, bob, _ = await pair(tmp_path, crypto)
        link = alice.chat._peers["bob"].session.link  # type: ignore[union-attr]
        for junk in (b"\x05", b"\x05" + os.urandom(300), b"\x06" + os.urandom(40),
                     b"\x06" + bytes(60), b"\x05" + bytes(70000)):
            await link.send(junk)
        await alice.chat.send_text("bob", "still here")
        await until(lambda: bool(bob.of(ChatMessage)))
        assert bob.chat.peers()["alice"] == "ready"
        dropped = bob.chat._peers["alice"].core.dropped  # type: ignore[union-attr]
        files_dropped = bob.chat._peers["alice"].core.files.dropped  # type: ignore[union-attr]
        assert sum(dropped.values()) + sum(files_dropped.values()) >= 5
        for p in (alice, bob):
            await p.close()
    run(scenario)


def test_the_accept_files_setting_accepts_without_asking(tmp_path: Path,
                                                         crypto: CryptoService) -> None:
    async def scenario() -> None:
        context = AppContext(tmp_path / "bob", settings={"accept_files": True},
                             store=DictStore())  # type: ignore[arg-type]
        _, alice, bob, _ = await pair(tmp_path, crypto, context=context)
        sha = make_file(tmp_path / "a.txt", 3000)
        await alice.chat.send_file("bob", tmp_path / "a.txt")
        await until(lambda: bool(bob.of(FileCompleted)))
        assert bob.of(FileOffered) == [] and bob.of(FileCompleted)[0].sha256 == sha
        for p in (alice, bob):
            await p.close()
    run(scenario)
