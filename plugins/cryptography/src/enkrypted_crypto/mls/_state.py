"""Saving and restoring one member's group state (our own format, not an RFC 9420 structure).

The bytes hold every secret of the member's current epoch (signature key, node keys, epoch
secrets, secret tree): the caller must encrypt them at rest.  They are versioned and parsed with
the same bounded codec as wire input, so a corrupted file fails as ``MalformedInput``.
"""

from __future__ import annotations

__all__ = ["GroupParts", "decode_parts", "encode_parts"]

import dataclasses
from dataclasses import dataclass

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls._codec import Reader, Writer, decode_all
from enkrypted_crypto.mls._envelopes import GroupContext, Sender
from enkrypted_crypto.mls._epoch import Epoch
from enkrypted_crypto.mls._limits import LIMITS
from enkrypted_crypto.mls._messages import (
    Proposal,
    ReInit,
    decode_proposal,
    encode_proposal,
)
from enkrypted_crypto.mls._schedule import EpochSecrets, SecretTree
from enkrypted_crypto.mls._suite import suite
from enkrypted_crypto.mls._tree import RatchetTree

STATE_VERSION = 1
_SECRET_FIELDS = tuple(f.name for f in dataclasses.fields(EpochSecrets))


@dataclass(frozen=True, slots=True)
class GroupParts:
    """Everything a :class:`~enkrypted_crypto.mls.Group` holds, as plain values."""

    epoch: Epoch
    signature_priv: bytes
    secret_tree: SecretTree
    proposals: tuple[tuple[bytes, Proposal, Sender], ...]
    pending_leaf_keys: tuple[tuple[bytes, bytes], ...]
    past: tuple[tuple[int, Epoch, SecretTree], ...]
    resumption: tuple[tuple[bytes, int, bytes], ...]
    pending: tuple[Epoch, ReInit | None, bytes] | None
    active: bool
    reinit: ReInit | None


def _put_epoch(w: Writer, ep: Epoch) -> None:
    w.u16(ep.cs.suite_id)
    ep.context.encode(w)
    w.opaque(ep.tree.encode())
    for name in _SECRET_FIELDS:
        w.opaque(getattr(ep.secrets, name))
    w.opaque(ep.interim_transcript_hash)
    w.opaque(ep.confirmation_tag)
    w.u32(ep.my_leaf)

    def put_key(w2: Writer, item: tuple[int, tuple[bytes, bytes]]) -> None:
        w2.u32(item[0])
        w2.opaque(item[1][0])
        w2.opaque(item[1][1])

    w.vector(sorted(ep.keys.items()), put_key)


def _get_epoch(r: Reader) -> Epoch:
    cs = suite(r.u16())
    ctx = GroupContext.decode(r)
    tree = RatchetTree.decode(cs, r.opaque())
    secrets = EpochSecrets(*(r.opaque() for _ in _SECRET_FIELDS))
    interim, tag, my_leaf = r.opaque(), r.opaque(), r.u32()
    keys = r.vector(lambda x: (x.u32(), (x.opaque(), x.opaque())), LIMITS.max_tree_nodes)
    return Epoch(cs, ctx, tree, secrets, interim, tag, my_leaf, dict(keys))


def _put_reinit(w: Writer, reinit: ReInit) -> None:
    encode_proposal(w, reinit)


def _get_reinit(r: Reader) -> ReInit:
    proposal = decode_proposal(r)
    if not isinstance(proposal, ReInit):
        raise MalformedInput("saved state: expected a ReInit")
    return proposal


def _put_pair(w: Writer, pair: tuple[bytes, bytes]) -> None:
    w.opaque(pair[0])
    w.opaque(pair[1])


def _get_pair(r: Reader) -> tuple[bytes, bytes]:
    return r.opaque(), r.opaque()


def _get_proposal(r: Reader) -> tuple[bytes, Proposal, Sender]:
    ref, sender = r.opaque(), Sender.decode(r)
    return ref, decode_proposal(r), sender


def encode_parts(parts: GroupParts) -> bytes:
    w = Writer()
    w.u16(STATE_VERSION)
    _put_epoch(w, parts.epoch)
    w.opaque(parts.signature_priv)
    parts.secret_tree.encode(w)

    def put_proposal(w2: Writer, item: tuple[bytes, Proposal, Sender]) -> None:
        w2.opaque(item[0])
        item[2].encode(w2)
        encode_proposal(w2, item[1])

    def put_past(w2: Writer, item: tuple[int, Epoch, SecretTree]) -> None:
        w2.u64(item[0])
        _put_epoch(w2, item[1])
        item[2].encode(w2)

    def put_resumption(w2: Writer, item: tuple[bytes, int, bytes]) -> None:
        w2.opaque(item[0])
        w2.u64(item[1])
        w2.opaque(item[2])

    def put_pending(w2: Writer, item: tuple[Epoch, ReInit | None, bytes]) -> None:
        _put_epoch(w2, item[0])
        w2.optional(item[1], _put_reinit)
        w2.opaque(item[2])

    w.vector(parts.proposals, put_proposal)
    w.vector(parts.pending_leaf_keys, _put_pair)
    w.vector(parts.past, put_past)
    w.vector(parts.resumption, put_resumption)
    w.optional(parts.pending, put_pending)
    w.u8(1 if parts.active else 0)
    w.optional(parts.reinit, _put_reinit)
    return w.getvalue()


def _get_parts(r: Reader) -> GroupParts:
    if r.u16() != STATE_VERSION:
        raise MalformedInput("unknown saved-state version")
    epoch = _get_epoch(r)
    sig = r.opaque()
    tree = SecretTree.decode(epoch.cs, r)
    proposals = r.vector(_get_proposal, LIMITS.max_cached_proposals)
    pending_keys = r.vector(_get_pair, LIMITS.max_cached_proposals)
    past = r.vector(
        lambda x: (x.u64(), ep := _get_epoch(x), SecretTree.decode(ep.cs, x)),
        LIMITS.max_past_epochs,
    )
    resumption = r.vector(
        lambda x: (x.opaque(), x.u64(), x.opaque()), 2 * LIMITS.max_resumption_epochs
    )
    pending = r.optional(lambda x: (_get_epoch(x), x.optional(_get_reinit), x.opaque()))
    active = r.boolean()
    reinit = r.optional(_get_reinit)
    return GroupParts(
        epoch, sig, tree, proposals, pending_keys, past, resumption, pending, active, reinit
    )


def decode_parts(data: bytes) -> GroupParts:
    return decode_all(data, _get_parts)
