"""Group chat in the chat service (p2p contract 2.2, ``GroupChatService``), in one process over
the p2p-memory transport: the driver (``chat/_groups.py``) carries the group node's frames over
the 1:1 sessions (``0x07`` / ``0x08``), dials members, persists groups and resumes them, and lets
only members (with the fingerprint the session authenticated) reach a group
(docs/protocol.md "Group chat")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.chat import EndpointChat
from enkrypted_p2p.chat._control import (
    CONTROL_KEY,
    CONTROL_TABLE,
    ControlServer,
    NoRunningPeer,
    control_call,
)
from enkrypted_p2p.chat._groups import GROUPS_TABLE
from enkrypted_p2p.errors import P2PUsageError
from enkrypted_p2p.groups import GroupConfig, GroupPdu, Kind
from enkrypted_p2p_memory.endpoint import Switchboard
from enkrypted_p2p_memory.plugin import MemoryTransport
from enkrypted_shell.contracts import (
    AppContext,
    ChatEvent,
    CryptoService,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatReceipt,
    GroupChatRenamed,
    GroupChatService,
    supports,
)
from tests.p2p.test_chat_service import FAST, DictStore

CONFIG = GroupConfig(retry_s=0.3, heartbeat_s=0.5)


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


class Member:
    """One peer: its chat service, store, identity, and every event it emitted."""

    def __init__(self, board: Switchboard, name: str, crypto: CryptoService, home: Path) -> None:
        self.board, self.name, self.crypto, self.home = board, name, crypto, home
        self.store = DictStore()
        self.identity = crypto.new_identity()
        self.events: list[ChatEvent] = []
        self.chat: EndpointChat | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Member:
        transport = MemoryTransport(switchboard=self.board)
        endpoint = await transport.open_endpoint(peer_id=self.name)
        context = AppContext(self.home, store=self.store)  # type: ignore[arg-type]
        self.chat = await EndpointChat.open(endpoint, self.crypto, self.identity, context=context,
                                            reconnect=FAST, group_config=CONFIG)
        self._task = asyncio.ensure_future(self._collect(self.chat))
        return self

    async def _collect(self, chat: EndpointChat) -> None:
        async for event in chat.events():
            self.events.append(event)

    async def stop(self) -> None:
        assert self.chat is not None
        await self.chat.aclose()

    @property
    def fingerprint(self) -> str:
        return self.crypto.fingerprint(self.identity)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def texts(self, group_id: str) -> list[str]:
        return [m.text for m in self.of(GroupChatMessage) if m.group_id == group_id]

    def members(self, group_id: str) -> set[str]:
        assert self.chat is not None
        info = next(g for g in self.chat.groups() if g.group_id == group_id)
        return {m.peer_id for m in info.members}

    def epoch(self, group_id: str) -> int:
        assert self.chat is not None
        return next(g.epoch for g in self.chat.groups() if g.group_id == group_id)


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def run(scenario: Any) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 120))


async def form(crypto: CryptoService, tmp_path: Path, names: list[str]
               ) -> tuple[list[Member], str]:
    board = Switchboard()
    peers = [await Member(board, n, crypto, tmp_path / n).start() for n in names]
    first = peers[0].chat
    assert first is not None
    group_id = await first.create_group("friends")
    for peer in peers[1:]:
        await first.invite(group_id, peer.name)
        await until(lambda p=peer: p.name in peers[0].members(group_id))
    await until(lambda: all(p.chat is not None and any(g.group_id == group_id for g in p.chat.groups())
                            and p.members(group_id) == set(names) for p in peers))
    return peers, group_id


def test_a_group_forms_by_invites_and_every_member_gets_each_message_once(
        crypto: CryptoService, tmp_path: Path) -> None:
    async def scenario() -> None:
        peers, gid = await form(crypto, tmp_path, ["alice", "bob", "carol"])
        alice, bob, carol = peers
        assert alice.chat is not None and bob.chat is not None
        assert supports(alice.chat, GroupChatService)
        assert {p.epoch(gid) for p in peers} == {2}
        message_id = await alice.chat.send_group_text(gid, "hello group")
        await bob.chat.send_group_text(gid, "hi from bob")
        await until(lambda: all(sorted(p.texts(gid)) == (
            ["hello group", "hi from bob"] if p is carol else
            ["hi from bob"] if p is alice else ["hello group"]) for p in peers))
        await until(lambda: len([r for r in alice.of(GroupChatReceipt)
                                 if r.message_id == message_id]) == 2)
        got = carol.of(GroupChatMessage)[0]
        assert (got.peer_id, got.fingerprint) in {("alice", alice.fingerprint),
                                                  ("bob", bob.fingerprint)}
        joined = [m for m in carol.of(GroupChatMembership) if m.group_id == gid]
        assert joined and {m.fingerprint for m in joined[-1].members} == {
            p.fingerprint for p in peers}
        big = "x" * 30_000  # sealed above 8192 bytes: 0x08 chunks, reassembled
        await carol.chat.send_group_text(gid, big)
        await until(lambda: big in alice.texts(gid) and big in bob.texts(gid))
        await bob.chat.rename(gid, "best friends")
        await until(lambda: [r.name for r in carol.of(GroupChatRenamed)] == ["best friends"])
        assert alice.store.tables[GROUPS_TABLE].keys() == {bytes.fromhex(gid)}  # persisted
        assert all(p.texts(gid).count(t) <= 1 for p in peers for t in p.texts(gid))
        for peer in peers:
            await peer.stop()

    run(scenario)


def test_a_removed_member_cannot_read_later_messages_and_is_told(
        crypto: CryptoService, tmp_path: Path) -> None:
    async def scenario() -> None:
        peers, gid = await form(crypto, tmp_path, ["alice", "bob", "carol"])
        alice, bob, carol = peers
        assert bob.chat is not None and carol.chat is not None
        await bob.chat.remove(gid, "carol")  # bob is not the sequencer: an intent to alice
        await until(lambda: carol.of(GroupChatLeft) != [] and alice.members(gid) == {"alice", "bob"})
        assert carol.of(GroupChatLeft)[0].group_id == gid
        assert next(g.state for g in carol.chat.groups() if g.group_id == gid) == "left"
        await bob.chat.send_group_text(gid, "after carol")
        await until(lambda: alice.texts(gid) == ["after carol"])
        await asyncio.sleep(0.5)
        assert "after carol" not in carol.texts(gid)
        with pytest.raises(P2PUsageError, match="no longer a member"):
            await carol.chat.send_group_text(gid, "let me in")
        for peer in peers:
            await peer.stop()

    run(scenario)


def test_a_restarted_member_resumes_its_groups_from_the_store_and_catches_up(
        crypto: CryptoService, tmp_path: Path) -> None:
    async def scenario() -> None:
        peers, gid = await form(crypto, tmp_path, ["alice", "bob", "carol"])
        alice, bob, carol = peers
        assert alice.chat is not None
        await carol.stop()
        await alice.chat.send_group_text(gid, "while carol was away")
        await until(lambda: bob.texts(gid) == ["while carol was away"])
        await carol.start()  # same identity, store and peer id
        assert carol.members(gid) == {"alice", "bob", "carol"}
        await until(lambda: carol.texts(gid) == ["while carol was away"])
        assert carol.chat is not None
        await carol.chat.send_group_text(gid, "back")
        await until(lambda: alice.texts(gid) == ["back"] and bob.texts(gid)[-1] == "back")
        for peer in peers:
            await peer.stop()

    run(scenario)


def test_group_frames_from_strangers_and_unknown_groups_are_dropped_and_counted(
        crypto: CryptoService, tmp_path: Path) -> None:
    async def scenario() -> None:
        peers, gid = await form(crypto, tmp_path, ["alice", "bob"])
        alice = peers[0]
        mallory = await Member(alice.board, "mallory", crypto, tmp_path / "m").start()
        assert alice.chat is not None and mallory.chat is not None and alice.chat._groups
        await mallory.chat.connect("alice")
        session = mallory.chat._peers["alice"].session
        assert session is not None
        desk = alice.chat._groups
        forged = GroupPdu(Kind.APPLICATION, bytes.fromhex(gid), 2, bytes(16), "mallory", b"x")
        await session.send_group(forged.encode())
        unknown = GroupPdu(Kind.COMMIT, bytes(16), 1, bytes(16), "mallory", b"x")
        await session.send_group(unknown.encode())
        await session.send_group(b"not an envelope")
        await until(lambda: desk.dropped["not-a-member"] == 1 and desk.dropped["unknown-group"] == 1
                    and desk.dropped["malformed"] == 1)
        # a member's peer id answered by another identity key is not that member
        await desk.frame_received("bob", GroupPdu(Kind.RECEIPT, bytes.fromhex(gid), 2, bytes(16),
                                                  "bob", b"{}").encode(), mallory.fingerprint)
        assert desk.dropped["identity-mismatch"] == 1
        assert alice.texts(gid) == [] and alice.members(gid) == {"alice", "bob"}
        with pytest.raises(P2PUsageError, match="no group"):
            await alice.chat.send_group_text("00" * 16, "x")
        with pytest.raises(P2PUsageError, match="not a member"):
            await alice.chat.remove(gid, "mallory")
        for peer in (*peers, mallory):
            await peer.stop()

    run(scenario)


def test_the_control_endpoint_serves_its_profile_s_token_only(crypto: CryptoService,
                                                              tmp_path: Path) -> None:
    async def scenario() -> None:
        alice = await Member(Switchboard(), "alice", crypto, tmp_path / "a").start()
        assert alice.chat is not None
        with pytest.raises(NoRunningPeer, match="no running peer"):
            await control_call(alice.store, {"op": "list"})  # type: ignore[arg-type]
        server = ControlServer(alice.chat, alice.store)  # type: ignore[arg-type]
        port = await server.start()
        created = await control_call(alice.store, {"op": "create", "name": "g"})  # type: ignore[arg-type]
        assert created["event"] == "group-created"
        listed = await control_call(alice.store, {"op": "list"})  # type: ignore[arg-type]
        assert [g["group"] for g in listed["groups"]] == [created["group"]]
        sent = await control_call(alice.store, {"op": "send", "group": created["group"],  # type: ignore[arg-type]
                                                "text": "only me"})
        assert sent["event"] == "group-sent" and len(sent["messageId"]) == 32
        refused = await control_call(alice.store, {"op": "leave", "group": "00"})  # type: ignore[arg-type]
        assert refused == {"event": "error", "error": "P2PUsageError", "message": "no group '00'"}
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b'{"hello": "' + b"11" * 32 + b'"}\n')
        challenge = json.loads(await reader.readline())
        assert set(challenge) == {"nonce", "proof"}  # the token itself never crosses the socket
        writer.write(b'{"proof": "' + b"00" * 32 + b'", "op": "list"}\n')
        answer = json.loads(await reader.readline())
        writer.close()
        assert answer["message"] == "wrong control token"
        await server.aclose()
        assert CONTROL_KEY not in alice.store.tables.get(CONTROL_TABLE, {})
        await alice.stop()

    run(scenario)


def test_a_command_sends_nothing_to_a_process_that_took_a_dead_peer_s_control_port(
        crypto: CryptoService, tmp_path: Path) -> None:
    """A crashed ``listen`` leaves its record; whoever binds that port next must not receive the
    request (a group message, say) — it cannot prove it holds the profile's control token."""
    async def scenario() -> None:
        alice = await Member(Switchboard(), "alice", crypto, tmp_path / "a").start()
        received: list[bytes] = []

        async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            received.append(await reader.readline())
            writer.write(b'{"nonce": "' + b"22" * 32 + b'", "proof": "' + b"33" * 32 + b'"}\n')
            await writer.drain()
            received.append(await reader.readline())
            writer.close()

        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        record = {"port": port, "token": "44" * 32, "pid": 1}
        alice.store.put(CONTROL_TABLE, CONTROL_KEY, json.dumps(record).encode())
        with pytest.raises(NoRunningPeer, match="could not prove"):
            await control_call(alice.store, {"op": "send", "group": "00", "text": "secret plan"})  # type: ignore[arg-type]
        server.close()
        assert b"secret plan" not in b"".join(received) and b"44" * 32 not in b"".join(received)
        await alice.stop()

    run(scenario)
