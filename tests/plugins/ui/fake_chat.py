"""A scripted :class:`ChatService` for the TUI tests and screenshots (contract p2p 2.0),
:class:`FakeFileChatService`, the same with the p2p 2.1 file feature (``FileChatService``), and
:class:`FakeGroupChatService`, with the p2p 2.2 groups (``GroupChatService``) too.

Events are pushed by the test (:meth:`FakeChatService.emit`); ``connect`` answers from a table of
scripted peers; ``send_text`` records what was sent and returns ``m1``, ``m2``, ...
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from enkrypted_shell.contracts import (
    ChatEvent,
    FileFailed,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatRenamed,
    GroupInfo,
    GroupMember,
    LinkClosedLocally,
    LocalMisuse,
    PeerStateChanged,
    PeerUnavailable,
    SessionEstablished,
    StoredFile,
)

ALICE_FP = "a1" * 32
BOB_FP = "b0b0" * 16
MALLORY_FP = "0bad" * 16
LAYERS = ("mls", "signal", "mlkem", "aes")


@dataclass
class FakeChatService:
    local_id: str = "alice-7f3k9q"
    fingerprint: str = ALICE_FP
    reachable: dict[str, str] = field(default_factory=lambda: {"bob": BOB_FP})
    sent: list[tuple[str, str]] = field(default_factory=list)
    typing: list[str] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)
    closed: bool = False

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[ChatEvent | None] = asyncio.Queue()

    def emit(self, event: ChatEvent) -> None:
        if isinstance(event, PeerStateChanged):
            self.states[event.peer_id] = event.state
        elif isinstance(event, SessionEstablished):
            self.states[event.peer_id] = "ready"
        self.queue.put_nowait(event)

    def established(
        self, peer_id: str, fingerprint: str, *, resumed: bool = False
    ) -> SessionEstablished:
        return SessionEstablished(
            peer_id,
            "B1",
            LAYERS,
            fingerprint,
            "".join(f"{i:05d}" for i in range(12345, 12357)),
            resumed,
        )

    async def connect(self, peer_id: str, timeout: float | None = None) -> SessionEstablished:
        if self.closed:
            raise LinkClosedLocally("closed")
        if peer_id not in self.reachable:
            raise PeerUnavailable(f"peer {peer_id!r} is not known to the broker")
        self.emit(PeerStateChanged(peer_id, "connecting"))
        event = self.established(peer_id, self.reachable[peer_id])
        self.emit(event)
        return event

    async def send_text(self, peer_id: str, text: str) -> str:
        if self.states.get(peer_id) not in ("ready", "reconnecting"):
            raise LinkClosedLocally(f"{peer_id} is not connected")
        self.sent.append((peer_id, text))
        return f"m{len(self.sent)}"

    async def send_typing(self, peer_id: str) -> None:
        self.typing.append(peer_id)

    async def events(self) -> AsyncIterator[ChatEvent]:
        while (event := await self.queue.get()) is not None:
            yield event

    def peers(self) -> Mapping[str, str]:
        return dict(self.states)

    async def disconnect(self, peer_id: str) -> None:
        if self.states.get(peer_id, "disconnected") != "disconnected":
            self.emit(PeerStateChanged(peer_id, "disconnected", "closed by us"))

    def export_state(self, peer_id: str) -> bytes | None:
        return f"state:{peer_id}".encode() if peer_id in self.states else None

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


@dataclass
class FakeFileChatService(FakeChatService):
    """The fake with p2p 2.1 files: ``send_file`` returns ``t1``, ``t2``, ... and records the call;
    the test drives progress with :meth:`emit`; ``stored`` is what ``files()`` lists and
    ``export_file`` writes ``contents[id]`` into a directory (never over a file)."""

    offered: list[tuple[str, Path, bool]] = field(default_factory=list)
    answers: list[tuple[str, str, str]] = field(default_factory=list)
    stored: list[StoredFile] = field(default_factory=list)
    contents: dict[str, bytes] = field(default_factory=dict)

    async def send_file(self, peer_id: str, path: Path, *, fast: bool = False) -> str:
        if self.states.get(peer_id) not in ("ready", "reconnecting"):
            raise LocalMisuse(f"{peer_id} is not connected")
        self.offered.append((peer_id, path, fast))
        return f"t{len(self.offered)}"

    async def accept_file(self, peer_id: str, transfer_id: str) -> None:
        self.answers.append(("accept", peer_id, transfer_id))

    async def reject_file(self, peer_id: str, transfer_id: str) -> None:
        self.answers.append(("reject", peer_id, transfer_id))
        self.emit(FileFailed(peer_id, transfer_id, False, "declined"))

    async def cancel_file(self, peer_id: str, transfer_id: str) -> None:
        self.answers.append(("cancel", peer_id, transfer_id))
        self.emit(FileFailed(peer_id, transfer_id, True, "cancelled"))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.thread = threading.get_ident()

    def _same_thread(self) -> None:
        """Like the real service, whose profile store is an SQLite connection of one thread."""
        if threading.get_ident() != self.thread:
            raise AssertionError("the profile store was used from another thread")

    def files(self) -> Sequence[StoredFile]:
        self._same_thread()
        return list(self.stored)

    def export_file(self, file_id: str, destination: Path) -> Path:
        self._same_thread()
        stored = next((f for f in self.stored if f.id == file_id), None)
        if stored is None:
            raise LocalMisuse(f"no stored file {file_id!r}")
        if not destination.is_dir():
            raise LocalMisuse(f"not a directory: {destination}")
        target = destination / stored.name
        if target.exists():
            raise LocalMisuse(f"already exists: {target}")
        target.write_bytes(self.contents.get(file_id, b""))
        return target


@dataclass
class FakeGroupChatService(FakeFileChatService):
    """The fake with p2p 2.2 groups: ``create_group`` returns ``"0a" * 16``, ``"0b" * 16``, ...
    with us as the only member; ``invite`` of a reachable peer commits at once (a
    :class:`GroupChatMembership` listing it, its key from ``reachable``); ``remove`` and
    ``rename`` commit at once; ``leave`` emits :class:`GroupChatLeft`; ``send_group_text``
    records the text and returns ``g1``, ``g2``, ...  Every call is recorded in ``ops``."""

    infos: dict[str, GroupInfo] = field(default_factory=dict)
    group_sent: list[tuple[str, str]] = field(default_factory=list)
    ops: list[tuple[str, ...]] = field(default_factory=list)

    def _info(self, group_id: str) -> GroupInfo:
        info = self.infos.get(group_id)
        if info is None:
            raise LocalMisuse(f"no group {group_id!r}")
        if info.state == "left":
            raise LocalMisuse(f"we left the group {group_id!r}")
        return info

    def commit(self, group_id: str, members: tuple[GroupMember, ...], *, name: str | None = None,
               added: tuple[str, ...] = (), removed: tuple[str, ...] = ()) -> None:
        """A new epoch of ``group_id`` with ``members`` (and its membership event)."""
        old = self.infos[group_id]
        info = GroupInfo(group_id, name or old.name, old.epoch + 1, members, "active")
        self.infos[group_id] = info
        self.emit(GroupChatMembership(group_id, info.name, info.epoch, members, added, removed,
                                      self.fingerprint))

    async def create_group(self, name: str) -> str:
        group_id = f"{10 + len(self.infos):02x}" * 16
        self.ops.append(("create", name))
        me = GroupMember(self.local_id, self.fingerprint)
        self.infos[group_id] = GroupInfo(group_id, name, 0, (me,), "active")
        self.emit(GroupChatMembership(group_id, name, 0, (me,), (), (), self.fingerprint))
        return group_id

    async def invite(self, group_id: str, peer_id: str) -> None:
        info = self._info(group_id)
        self.ops.append(("invite", group_id, peer_id))
        if peer_id not in self.reachable:
            raise PeerUnavailable(f"peer {peer_id!r} is not known to the broker")
        member = GroupMember(peer_id, self.reachable[peer_id])
        self.commit(group_id, (*info.members, member), added=(member.fingerprint,))

    async def remove(self, group_id: str, peer_id: str) -> None:
        info = self._info(group_id)
        self.ops.append(("remove", group_id, peer_id))
        gone = tuple(m.fingerprint for m in info.members if m.peer_id == peer_id)
        if not gone:
            raise LocalMisuse(f"{peer_id!r} is not a member")
        self.commit(group_id, tuple(m for m in info.members if m.peer_id != peer_id),
                    removed=gone)

    async def leave(self, group_id: str) -> None:
        info = self._info(group_id)
        self.ops.append(("leave", group_id))
        self.infos[group_id] = GroupInfo(group_id, info.name, info.epoch + 1, info.members,
                                         "left")
        self.emit(GroupChatLeft(group_id, info.epoch + 1, self.fingerprint))

    async def rename(self, group_id: str, name: str) -> None:
        info = self._info(group_id)
        self.ops.append(("rename", group_id, name))
        self.infos[group_id] = GroupInfo(group_id, name, info.epoch, info.members, info.state)
        self.emit(GroupChatRenamed(group_id, name, self.fingerprint))

    def groups(self) -> Sequence[GroupInfo]:
        return list(self.infos.values())

    async def send_group_text(self, group_id: str, text: str) -> str:
        self._info(group_id)
        self.group_sent.append((group_id, text))
        return f"g{len(self.group_sent)}"
