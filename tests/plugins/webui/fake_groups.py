"""A scripted :class:`GroupChatService` (p2p 2.2) for the web ui's tests and screenshots: the
file-capable fake of tests/plugins/ui/fake_chat.py plus groups held in a dict.

``create_group`` returns ``9a00…01``, ``9a00…02``, ...; ``invite`` adds a reachable peer at once
(as if the sequencer committed) and emits the membership; ``remove``, ``leave`` and ``rename``
emit what the real service emits; ``send_group_text`` records the text and returns ``g1``,
``g2``, ... The test drives the rest (messages, receipts, forks, changed keys) with :meth:`emit`
and the ``member_*`` helpers, which keep ``groups()`` consistent with the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from enkrypted_shell.contracts import (
    GroupChatForked,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatRenamed,
    GroupInfo,
    GroupMember,
    LocalMisuse,
)
from tests.plugins.ui.fake_chat import ALICE_FP, FakeFileChatService


@dataclass
class FakeGroupChatService(FakeFileChatService):
    group_infos: dict[str, GroupInfo] = field(default_factory=dict)
    group_sent: list[tuple[str, str]] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def _info(self, group_id: str) -> GroupInfo:
        info = self.group_infos.get(group_id)
        if info is None:
            raise LocalMisuse(f"no group {group_id[:64]!r}")
        if info.state == "left":
            raise LocalMisuse("we are no longer a member of that group")
        return info

    def _commit(self, info: GroupInfo, members: tuple[GroupMember, ...], *,
                added: tuple[str, ...] = (), removed: tuple[str, ...] = ()) -> None:
        new = replace(info, epoch=info.epoch + 1, members=members)
        self.group_infos[info.group_id] = new
        self.emit(GroupChatMembership(new.group_id, new.name, new.epoch, members, added, removed,
                                      self.fingerprint))

    async def create_group(self, name: str) -> str:
        if not 0 < len(name) <= 128 or not name.isprintable():
            raise LocalMisuse("a group name is 1 to 128 printable characters")
        group_id = f"9a{len(self.group_infos) + 1:030x}"
        me = GroupMember(self.local_id, self.fingerprint)
        self.group_infos[group_id] = GroupInfo(group_id, name, 0, (me,), "active")
        self.calls.append(("create", name))
        return group_id

    async def invite(self, group_id: str, peer_id: str) -> None:
        info = self._info(group_id)
        self.calls.append(("invite", group_id, peer_id))
        if peer_id not in self.reachable:
            raise LocalMisuse(f"peer {peer_id!r} is not known to the broker")
        member = GroupMember(peer_id, self.reachable[peer_id])
        self._commit(info, (*info.members, member), added=(member.fingerprint,))

    async def remove(self, group_id: str, peer_id: str) -> None:
        info = self._info(group_id)
        self.calls.append(("remove", group_id, peer_id))
        gone = tuple(m for m in info.members if m.peer_id == peer_id)
        if not gone:
            raise LocalMisuse(f"{peer_id!r} is not a member of that group")
        self._commit(info, tuple(m for m in info.members if m.peer_id != peer_id),
                     removed=tuple(m.fingerprint for m in gone))

    async def leave(self, group_id: str) -> None:
        info = self._info(group_id)
        self.calls.append(("leave", group_id))
        self.group_infos[group_id] = replace(info, state="left")
        self.emit(GroupChatLeft(group_id, info.epoch, self.fingerprint))

    async def rename(self, group_id: str, name: str) -> None:
        info = self._info(group_id)
        self.calls.append(("rename", group_id, name))
        self.group_infos[group_id] = replace(info, name=name)
        self.emit(GroupChatRenamed(group_id, name, self.fingerprint))

    def groups(self) -> Sequence[GroupInfo]:
        return list(self.group_infos.values())

    async def send_group_text(self, group_id: str, text: str) -> str:
        self._info(group_id)
        self.group_sent.append((group_id, text))
        return f"g{len(self.group_sent)}"

    # ------------------------------------------------------------------- the test's side
    def member_says(self, group_id: str, peer_id: str, text: str, message_id: str,
                    at: float = 1.0) -> None:
        info = self.group_infos[group_id]
        fp = next(m.fingerprint for m in info.members if m.peer_id == peer_id)
        self.emit(GroupChatMessage(group_id, message_id, peer_id, fp, text, info.epoch, at))

    def member_renames(self, group_id: str, peer_id: str, name: str) -> None:
        info = self.group_infos[group_id]
        fp = next(m.fingerprint for m in info.members if m.peer_id == peer_id)
        self.group_infos[group_id] = replace(info, name=name)
        self.emit(GroupChatRenamed(group_id, name, fp))

    def fork(self, group_id: str, peer_id: str, reason: str) -> None:
        """``peer_id`` reports another branch and we are on the losing one: re-joining."""
        info = self.group_infos[group_id]
        self.group_infos[group_id] = replace(info, state="rejoining")
        self.emit(GroupChatForked(group_id, info.epoch, peer_id, reason, rejoining=True))

    def welcome(self, group_id: str) -> None:
        """The re-join's Welcome: active again, two epochs on."""
        info = self.group_infos[group_id]
        new = replace(info, state="active", epoch=info.epoch + 2)
        self.group_infos[group_id] = new
        self.emit(GroupChatMembership(group_id, new.name, new.epoch, new.members))

    def member_key(self, group_id: str, peer_id: str, fingerprint: str) -> None:
        """A commit lists ``peer_id`` with another identity key."""
        info = self.group_infos[group_id]
        members = tuple(GroupMember(m.peer_id, fingerprint) if m.peer_id == peer_id else m
                        for m in info.members)
        new = replace(info, epoch=info.epoch + 1, members=members)
        self.group_infos[group_id] = new
        self.emit(GroupChatMembership(group_id, new.name, new.epoch, members))


__all__ = ["ALICE_FP", "FakeGroupChatService"]
