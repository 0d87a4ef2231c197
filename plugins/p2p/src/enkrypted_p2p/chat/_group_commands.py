"""``enkrypted group create|add|remove|leave|rename|list|send`` (p2p contract 2.2 groups).

Each command opens the unlocked profile and asks the profile's running peer (``enkrypted listen
--id ID`` of the same profile) to do it, through its control endpoint (:mod:`._control`: one JSON
request, one JSON answer): a group's MLS state lives in exactly one process.  The answer is
printed as one JSON line (``--plain``: a line for people) — ``group-created`` (group), ``groups``
(each group's id, name, epoch, state, members), ``group-invited``, ``group-remove-asked``,
``group-leave-asked``, ``group-rename-sent``, ``group-sent`` (messageId) — or ``error`` (exit 3;
exit 2 when no peer of this profile runs).  What follows (the membership change once committed,
the messages, the receipts) shows on the running ``listen``'s output as ``group-*`` lines.

``group list`` works without a running peer too: it reads the groups kept in the profile.
"""

from __future__ import annotations

__all__ = ["group_commands"]

import asyncio
import sys
from collections.abc import Callable
from typing import Any, cast

import click

from enkrypted_shell.contracts import GroupCryptoService, GroupInfo, GroupMember, ProfileStore

from .._wiring import Wiring
from ..errors import P2PUsageError
from ..groups import GroupCore
from ._commands import _PLAIN, _emit
from ._control import NoRunningPeer, control_call, group_fields
from ._groups import DRIVER_CONFIG, GROUPS_TABLE

_NO_STORE = "group commands need an unlocked profile (--profile NAME): groups are kept in it"


def _store(wiring: Wiring) -> ProfileStore:
    store = getattr(wiring.context, "store", None)
    if store is None:
        _emit("error", error="P2PUsageError", message=_NO_STORE)
        sys.exit(2)
    return cast(ProfileStore, store)


def _call(wiring: Wiring, request: dict[str, Any], timeout: float) -> None:
    try:
        answer = asyncio.run(control_call(_store(wiring), request, timeout))
    except NoRunningPeer as exc:
        _emit("error", error=type(exc).__name__, message=str(exc))
        sys.exit(2)
    event = str(answer.pop("event", "error"))
    _emit(event, **answer)
    if event == "error":
        sys.exit(3)


def _offline_groups(wiring: Wiring) -> list[GroupInfo]:
    """The groups kept in the profile, read without joining the network."""
    store, identity = _store(wiring), getattr(wiring.context, "identity", None)
    if not isinstance(identity, bytes):
        return []
    service = cast(GroupCryptoService, wiring.crypto)
    infos = []
    for key, data in store.items(GROUPS_TABLE):
        try:
            core = GroupCore.restore(service, identity, data, DRIVER_CONFIG)
        except P2PUsageError as exc:
            _emit("problem", group=key.hex(), kind="local", message=str(exc))
            continue
        roster = core.roster
        members = tuple(GroupMember(roster.get(fp, ""), fp) for fp in core.members)
        state = "left" if not core.active else "rejoining" if core.rejoining else "active"
        infos.append(GroupInfo(key.hex(), core.name, core.epoch, members, state))
    return infos


def group_commands(get_wiring: Callable[[], Wiring]) -> list[click.Command]:
    json_option = click.option("--json/--plain", "as_json", default=True, show_default=True,
                               help="A JSON line for scripts (default), or a line for people.")
    timeout_option = click.option("--timeout", type=float, default=30.0, show_default=True,
                                  help="Seconds to wait for the running peer's answer.")

    @click.group(name="group", help="Group chat through this profile's running peer "
                                    "(`enkrypted listen --id ID`); JSON lines.")
    def group() -> None:
        pass

    def simple(name: str, help_text: str, *params: str) -> None:
        def command(ctx: click.Context, as_json: bool, timeout: float, **kwargs: str) -> None:
            _PLAIN[0] = not as_json
            _call(get_wiring(), {"op": ctx.command.name, **kwargs}, timeout)

        decorated: Any = command
        for param in reversed(params):
            decorated = click.argument(param)(decorated)
        decorated = timeout_option(json_option(click.pass_context(decorated)))
        group.command(name=name, help=help_text)(decorated)

    simple("create", "Create a group named NAME (we are its only member); prints its id.",
           "name")
    simple("add", "Invite PEER (a peer id) into GROUP: its key package, then an Add commit and "
                  "its Welcome.", "group", "peer")
    simple("remove", "Remove the member at PEER from GROUP.", "group", "peer")
    simple("leave", "Leave GROUP (another member commits our removal).", "group")
    simple("rename", "Rename GROUP to NAME for every member.", "group", "name")
    simple("send", "Send TEXT to every member of GROUP; prints its messageId.", "group", "text")

    @group.command(name="list", help="Our groups: id, name, epoch, state and members.")
    @json_option
    @timeout_option
    def list_command(as_json: bool, timeout: float) -> None:
        _PLAIN[0] = not as_json
        wiring = get_wiring()
        try:
            answer = asyncio.run(control_call(_store(wiring), {"op": "list"}, timeout))
            infos = answer.get("groups", [])
        except NoRunningPeer:
            infos = [group_fields(g) for g in _offline_groups(wiring)]
        for info in infos:
            _emit("group", **info)

    return [group]
