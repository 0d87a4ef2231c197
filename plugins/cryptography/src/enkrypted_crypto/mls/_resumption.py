"""Resumption PSKs for re-initialisation and branching (RFC 9420 §8.6, §11.2, §11.3).

A re-initialised or branched group is created by one member with a Welcome whose GroupSecrets
carry a resumption PSK (usage ``reinit`` or ``branch``) from the old group's current epoch;
joiners resolve it from their copy of the old group and check the new group fits.
"""

from __future__ import annotations

__all__ = [
    "BRANCH",
    "REINIT",
    "check_resumed_group",
    "resumption_psk_allowed",
    "resumption_psk_id",
]

from collections.abc import Callable
from typing import Final

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls._envelopes import GroupContext
from enkrypted_crypto.mls._messages import PreSharedKeyID, ReInit

APPLICATION: Final = 1
REINIT: Final = 2
BRANCH: Final = 3


def resumption_psk_allowed(psk: PreSharedKeyID, group_id: bytes, epoch: int) -> bool:
    """Application resumption PSKs come from this group; reinit and branch PSKs only enter the
    first commit of a new group, at epoch 0 (§8.6)."""
    if psk.psktype != 2:
        return False
    if psk.usage == APPLICATION:
        return psk.psk_group_id == group_id
    return psk.usage in (REINIT, BRANCH) and epoch == 0


def resumption_psk_id(
    old_group_id: bytes, old_epoch: int, usage: int, n_h: int, random: Callable[[int], bytes]
) -> PreSharedKeyID:
    return PreSharedKeyID(
        2, usage=usage, psk_group_id=old_group_id, psk_epoch=old_epoch, psk_nonce=random(n_h)
    )


def check_resumed_group(
    ctx: GroupContext,
    psks: tuple[PreSharedKeyID, ...],
    old: GroupContext,
    reinit: ReInit | None,
) -> None:
    """A joiner's checks when resuming from ``old`` (§11.2, §11.3): exactly one resumption PSK
    of the right usage from the old group's current epoch, and a new group that matches the
    ReInit proposal (re-init) or keeps the suite under a new group ID (branch)."""
    usage = REINIT if reinit is not None else BRANCH
    found = [p for p in psks if p.psktype == 2]
    if len(found) != 1 or (found[0].usage, found[0].psk_group_id, found[0].psk_epoch) != (
        usage,
        old.group_id,
        old.epoch,
    ):
        raise MalformedInput("Welcome lacks the resumption PSK of the old group")
    if ctx.epoch != 1:
        raise MalformedInput("a resumed group must start at epoch 1")
    if reinit is not None:
        wanted = (reinit.group_id, reinit.version, reinit.cipher_suite, reinit.extensions)
        if (ctx.group_id, ctx.version, ctx.cipher_suite, ctx.extensions) != wanted:
            raise MalformedInput("new group does not match the ReInit proposal")
    elif ctx.cipher_suite != old.cipher_suite or ctx.group_id == old.group_id:
        raise MalformedInput("a branch keeps the cipher suite under a new group ID")
