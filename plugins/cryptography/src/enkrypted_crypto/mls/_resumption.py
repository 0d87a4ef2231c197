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
    "group_psk_secret",
    "resumption_psk_allowed",
    "resumption_psk_id",
    "welcome_psk_lookup",
]

from collections.abc import Callable, Mapping
from typing import Final

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls._envelopes import GroupContext
from enkrypted_crypto.mls._messages import PreSharedKeyID, ReInit, to_bytes
from enkrypted_crypto.mls._schedule import psk_secret
from enkrypted_crypto.mls._suite import CipherSuite

APPLICATION: Final = 1
REINIT: Final = 2
BRANCH: Final = 3


def welcome_psk_lookup(
    external: Mapping[bytes, bytes], known: Mapping[tuple[bytes, int], bytes], resuming: bool
) -> Callable[[PreSharedKeyID], bytes]:
    """How a joiner finds the PSKs a Welcome names: external ones by ID, resumption ones from
    the old group it resumes (§12.4.3.1 step 3)."""

    def lookup(psk: PreSharedKeyID) -> bytes:
        if psk.psktype == 1 and psk.psk_id in external:
            return external[psk.psk_id]
        if psk.psktype == 2 and (psk.psk_group_id, psk.psk_epoch) in known:
            return known[(psk.psk_group_id, psk.psk_epoch)]
        if psk.psktype == 2 and not resuming:
            raise MalformedInput("Welcome resumes a group; pass the old group as resuming")
        raise MalformedInput("unknown PSK in Welcome")

    return lookup


def resumption_psk_allowed(psk: PreSharedKeyID, group_id: bytes, epoch: int) -> bool:
    """Application resumption PSKs come from this group; reinit and branch PSKs only enter the
    first commit of a new group, at epoch 0 (§8.6)."""
    if psk.psktype != 2:
        return False
    if psk.usage == APPLICATION:
        return psk.psk_group_id == group_id
    return psk.usage in (REINIT, BRANCH) and epoch == 0


def group_psk_secret(
    cs: CipherSuite,
    psks: tuple[PreSharedKeyID, ...],
    external: Mapping[bytes, bytes],
    resumption: Mapping[tuple[bytes, int], bytes],
    group_id: bytes,
    epoch: int,
) -> bytes:
    """psk_secret (§8.4) of a commit's PSK proposals, each resolved or refused."""
    values: list[tuple[bytes, bytes]] = []
    for psk in psks:
        if len(psk.psk_nonce) != cs.n_h:
            raise MalformedInput("PSK nonce has the wrong length")  # §8.4
        if psk.psktype == 1:
            value = external.get(psk.psk_id)
        elif resumption_psk_allowed(psk, group_id, epoch):
            value = resumption.get((psk.psk_group_id, psk.psk_epoch))
        else:
            value = None
        if value is None:
            raise MalformedInput("unknown or unsupported PSK")
        values.append((to_bytes(psk), value))
    return psk_secret(cs, values)


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
