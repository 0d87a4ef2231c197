"""One epoch's state and the pure steps between epochs (RFC 9420 §8, §12.2-§12.4).

:class:`Epoch` is immutable; :func:`apply_proposals` and :func:`next_epoch` compute the next one
without touching the current, so a rejected commit leaves the group as it was.
"""

from __future__ import annotations

__all__ = [
    "Epoch",
    "OwnPath",
    "ProposalSet",
    "apply_proposals",
    "committable",
    "next_epoch",
    "own_path",
    "receive_path",
]

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from enkrypted_crypto.errors import DecryptionFailed, MalformedInput
from enkrypted_crypto.mls._envelopes import (
    GroupContext,
    Sender,
)
from enkrypted_crypto.mls._keypackage import (
    CredentialValidator,
    required_capabilities_ok,
    validate_key_package,
    validate_leaf,
)
from enkrypted_crypto.mls._messages import (
    MEMBER,
    MLS10,
    SRC_COMMIT,
    SRC_UPDATE,
    Add,
    Extension,
    ExternalInit,
    GroupContextExtensions,
    LeafNode,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ReInit,
    Remove,
    Update,
    UpdatePath,
    to_bytes,
)
from enkrypted_crypto.mls._schedule import (
    EpochSecrets,
    confirmed_transcript_hash,
    derive_epoch,
    interim_transcript_hash,
)
from enkrypted_crypto.mls._suite import CipherSuite
from enkrypted_crypto.mls._tree import RatchetTree
from enkrypted_crypto.mls._treekem import (
    NodeKeys,
    apply_path_public,
    create_path,
    decrypt_path,
    prune_keys,
)


@dataclass(frozen=True, slots=True)
class Epoch:
    """What one member holds for one epoch."""

    cs: CipherSuite
    context: GroupContext
    tree: RatchetTree
    secrets: EpochSecrets
    interim_transcript_hash: bytes
    confirmation_tag: bytes
    my_leaf: int
    keys: NodeKeys = field(default_factory=dict)
    context_bytes: bytes = field(init=False, repr=False, compare=False)
    """The encoded ``context``, once per epoch: every message signs and verifies over it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "context_bytes", to_bytes(self.context))


@dataclass(frozen=True, slots=True)
class ProposalSet:
    """The tree and extensions after a commit's proposals (§12.3), before any UpdatePath."""

    tree: RatchetTree
    extensions: tuple[Extension, ...]
    added: tuple[int, ...]
    psks: tuple[PreSharedKeyID, ...]
    removed: tuple[int, ...]
    path_required: bool
    reinit: ReInit | None = None


def _check_kinds(items: list[tuple[Proposal, Sender]], external: bool) -> None:
    """ReInit is refused; ExternalInit only in an external commit, which holds exactly one
    and otherwise only Removes and PSKs (§12.2, §12.4.3.2)."""
    reinits = [p for p, _ in items if isinstance(p, ReInit)]
    if reinits and len(items) > 1:
        raise MalformedInput("a ReInit must be the only proposal of its commit")  # §12.2
    if reinits and reinits[0].version < MLS10:
        raise MalformedInput("ReInit to an older protocol version")
    inits = sum(isinstance(p, ExternalInit) for p, _ in items)
    if not external and inits:
        raise MalformedInput("ExternalInit in a member's commit")
    allowed = all(isinstance(p, (ExternalInit, Remove, PreSharedKey)) for p, _ in items)
    if external and (inits != 1 or not allowed):
        raise MalformedInput("external commit must hold one ExternalInit and only Remove/PSK")


def _check_list(items: list[tuple[Proposal, Sender]], committer: int, external: bool) -> None:
    """Commit-level proposal list rules (§12.2)."""
    _check_kinds(items, external)
    touched: set[int] = set()
    psk_ids: set[bytes] = set()
    gce = 0
    for prop, sender in items:
        if isinstance(prop, Update):
            if sender.sender_type != MEMBER or sender.index == committer:
                raise MalformedInput("Update from the committer or a non-member")
            target = sender.index
        elif isinstance(prop, Remove):
            if prop.removed == committer:
                raise MalformedInput("committer removes itself")
            target = prop.removed
        elif isinstance(prop, PreSharedKey):
            key = to_bytes(prop.psk)
            if key in psk_ids:
                raise MalformedInput("duplicate PSK proposal")
            psk_ids.add(key)
            continue
        else:
            gce += isinstance(prop, GroupContextExtensions)
            continue
        if target in touched:
            raise MalformedInput("two Update/Remove proposals for one leaf")
        touched.add(target)
    if gce > 1:
        raise MalformedInput("more than one GroupContextExtensions proposal")


def committable(cached: list[tuple[bytes, Proposal, Sender]], me: int) -> list[bytes]:
    """References of the cached proposals a committer includes (§12.2): not its own Updates or
    Removes of itself, not ReInit/ExternalInit, and not any that conflict with an earlier one
    (second Update/Remove of a leaf, repeated PSK or signature key, second GCE).  Each was
    validated on receipt, so what is left applies together."""
    refs, seen = [], set()
    for ref, p, sender in cached:
        if isinstance(p, Update):
            key: object = ("leaf", sender.index) if sender.index != me else None
        elif isinstance(p, Remove):
            key = ("leaf", p.removed) if p.removed != me else None
        elif isinstance(p, Add):
            key = ("sig", p.key_package.leaf_node.signature_key)
        elif isinstance(p, PreSharedKey):
            key = ("psk", to_bytes(p.psk))
        else:
            key = "gce" if isinstance(p, GroupContextExtensions) else None
        if key is not None and key not in seen:
            seen.add(key)
            refs.append(ref)
    return refs


def apply_proposals(
    ep: Epoch,
    items: list[tuple[Proposal, Sender]],
    committer: int,
    validate_credential: CredentialValidator,
    now: int | None,
    external: bool = False,
) -> ProposalSet:
    """Validate and apply proposals in §12.3 order: GCE, Update, Remove, Add, PSK.

    ``external`` marks an external commit (§12.4.3.2), whose committer is not yet a member.
    """
    cs, tree = ep.cs, ep.tree
    _check_list(items, committer, external)
    gid = ep.context.group_id
    exts = ep.context.extensions
    for prop, _ in items:
        if isinstance(prop, GroupContextExtensions):
            exts = prop.extensions
    for prop, sender in items:
        if isinstance(prop, Update):
            validate_leaf(
                cs,
                prop.leaf_node,
                source=SRC_UPDATE,
                group_id=gid,
                leaf_index=sender.index,
                tree=tree,
                validate_credential=validate_credential,
                now=now,
                replacing=sender.index,
            )
            tree = tree.with_leaf_updated(sender.index, prop.leaf_node)
    removed: list[int] = []
    for prop, _ in items:
        if isinstance(prop, Remove):
            if tree.leaf(prop.removed) is None:
                raise MalformedInput("Remove of a blank leaf")
            removed.append(prop.removed)
            tree = tree.with_leaf_removed(prop.removed)
    added: list[int] = []
    for prop, _ in items:
        if isinstance(prop, Add):
            validate_key_package(
                cs, prop.key_package, tree=tree, validate_credential=validate_credential, now=now
            )
            if not required_capabilities_ok(prop.key_package.leaf_node, exts):
                raise MalformedInput("added member lacks required capabilities")
            tree, index = tree.with_leaf_added(prop.key_package.leaf_node)
            added.append(index)
    has_gce = any(isinstance(p, GroupContextExtensions) for p, _ in items)
    if has_gce and not all(required_capabilities_ok(leaf, exts) for _, leaf in tree.leaves()):
        raise MalformedInput("a member lacks the new required capabilities")
    psks = tuple(p.psk for p, _ in items if isinstance(p, PreSharedKey))
    path_required = not items or any(
        isinstance(p, (Update, Remove, ExternalInit, GroupContextExtensions)) for p, _ in items
    )
    reinit = next((p for p, _ in items if isinstance(p, ReInit)), None)
    return ProposalSet(tree, exts, tuple(added), psks, tuple(removed), path_required, reinit)


def next_epoch(
    ep: Epoch,
    *,
    tree: RatchetTree,
    extensions: tuple[Extension, ...],
    commit_secret: bytes,
    psk_secret: bytes,
    wire_format: int,
    framed_content: bytes,
    signature: bytes,
    confirmation_tag: bytes | None,
    my_leaf: int,
    keys: NodeKeys,
    init_secret: bytes | None = None,
) -> Epoch:
    """Transcript hashes, key schedule and confirmation tag of the next epoch (§8, §12.4.2).

    ``confirmation_tag`` is checked when given (a received commit) and computed otherwise;
    ``init_secret`` replaces the epoch's own for an external commit (§8.3).
    """
    cs = ep.cs
    confirmed = confirmed_transcript_hash(
        cs, ep.interim_transcript_hash, wire_format, framed_content, signature
    )
    ctx = GroupContext(
        cs.suite_id,
        ep.context.group_id,
        ep.context.epoch + 1,
        tree.tree_hash(),
        confirmed,
        extensions,
    )
    secrets = derive_epoch(
        cs,
        init_secret=ep.secrets.init_secret if init_secret is None else init_secret,
        commit_secret=commit_secret,
        group_context=to_bytes(ctx),
        psk=psk_secret,
    )
    tag = cs.mac(secrets.confirmation_key, confirmed)
    if confirmation_tag is not None and not hmac.compare_digest(tag, confirmation_tag):
        raise DecryptionFailed
    interim = interim_transcript_hash(cs, confirmed, tag)
    return Epoch(cs, ctx, tree, secrets, interim, tag, my_leaf, keys)


def joined_epoch(
    cs: CipherSuite,
    ctx: GroupContext,
    tree: RatchetTree,
    secrets: EpochSecrets,
    confirmation_tag: bytes,
    my_leaf: int,
    keys: NodeKeys,
) -> Epoch:
    """The epoch a joiner starts in, after checking the GroupInfo's confirmation tag (§12.4.3.1)."""
    tag = cs.mac(secrets.confirmation_key, ctx.confirmed_transcript_hash)
    if not hmac.compare_digest(tag, confirmation_tag):
        raise DecryptionFailed
    interim = interim_transcript_hash(cs, ctx.confirmed_transcript_hash, tag)
    return Epoch(cs, ctx, tree, secrets, interim, tag, my_leaf, keys)


def receive_path(
    ep: Epoch,
    pset: ProposalSet,
    committer: int,
    path: UpdatePath,
    keys: NodeKeys,
    validate_credential: CredentialValidator,
    now: int | None,
) -> tuple[RatchetTree, bytes, NodeKeys]:
    """Validate, merge and decrypt another member's UpdatePath (§12.4.2 steps on the path):
    returns the new tree, the commit secret and our pruned node keys."""
    cs = ep.cs
    validate_leaf(
        cs, path.leaf_node, source=SRC_COMMIT, group_id=ep.context.group_id,
        leaf_index=committer, tree=pset.tree, validate_credential=validate_credential, now=now,
        replacing=committer,
    )  # fmt: skip
    tree = apply_path_public(pset.tree, committer, path)
    ctx = GroupContext(
        cs.suite_id, ep.context.group_id, ep.context.epoch + 1, tree.tree_hash(),
        ep.context.confirmed_transcript_hash, pset.extensions,
    )  # fmt: skip
    _, new_keys, commit_secret = decrypt_path(
        cs, tree, committer, path, ep.my_leaf, keys, to_bytes(ctx), set(pset.added)
    )
    return tree, commit_secret, prune_keys(tree, {**keys, **new_keys})


@dataclass(frozen=True, slots=True)
class OwnPath:
    """A committer's UpdatePath (or none) and what it leads to."""

    path: UpdatePath | None
    tree: RatchetTree
    commit_secret: bytes
    keys: NodeKeys
    path_secrets: dict[int, bytes]


def own_path(
    ep: Epoch,
    pset: ProposalSet,
    with_path: bool,
    make_leaf: Callable[[bytes, bytes], LeafNode],
    random: Callable[[int], bytes],
) -> OwnPath:
    """The committer's side of §12.4.1: a fresh UpdatePath over the tree after proposals,
    encrypted under the provisional GroupContext; without a path the commit secret is zero."""
    cs = ep.cs
    keys = prune_keys(pset.tree, ep.keys)
    if not with_path:
        return OwnPath(None, pset.tree, bytes(cs.n_h), keys, {})

    def context_for(final: RatchetTree) -> bytes:
        ctx = ep.context
        return to_bytes(
            GroupContext(
                cs.suite_id, ctx.group_id, ctx.epoch + 1, final.tree_hash(),
                ctx.confirmed_transcript_hash, pset.extensions,
            )
        )  # fmt: skip

    created = create_path(
        cs, pset.tree, ep.my_leaf, make_leaf, context_for, set(pset.added), random
    )
    keys = prune_keys(created.tree, {**keys, **created.keys})
    return OwnPath(
        created.update_path, created.tree, created.commit_secret, keys, created.path_secrets
    )
