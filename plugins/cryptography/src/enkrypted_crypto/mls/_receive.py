"""Another member's commit, from one epoch to the next (RFC 9420 §12.4.2).

Pure: it reads the current :class:`~enkrypted_crypto.mls._epoch.Epoch` and returns the next one
(or says we were removed); the :class:`~enkrypted_crypto.mls.Group` enters it only if nothing
raised, so a rejected commit leaves the group as it was.
"""

from __future__ import annotations

__all__ = ["ReceivedCommit", "receive_commit"]

from collections.abc import Callable
from dataclasses import dataclass

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls._envelopes import Sender
from enkrypted_crypto.mls._epoch import Epoch, apply_proposals, next_epoch, receive_path
from enkrypted_crypto.mls._events import GroupConfig
from enkrypted_crypto.mls._external import place_external_joiner, received_init_secret
from enkrypted_crypto.mls._framing import AuthenticatedContent
from enkrypted_crypto.mls._messages import (
    NEW_MEMBER_COMMIT,
    Commit,
    ExternalInit,
    PreSharedKeyID,
    Proposal,
    ReInit,
    to_bytes,
)
from enkrypted_crypto.mls._treekem import prune_keys


@dataclass(frozen=True, slots=True)
class ReceivedCommit:
    """The epoch a commit leads to (``None``: it removed us), its committer and ReInit."""

    epoch: Epoch | None
    committer: int
    reinit: ReInit | None


def receive_commit(
    ep: Epoch,
    ac: AuthenticatedContent,
    commit: Commit,
    items: list[tuple[Proposal, Sender]],
    config: GroupConfig,
    pending_leaf_keys: dict[bytes, bytes],
    psk_secret: Callable[[tuple[PreSharedKeyID, ...]], bytes],
) -> ReceivedCommit:
    """§12.4.2 for a commit by another member; ``items`` are its proposals, resolved."""
    cs, cfg = ep.cs, config
    external = ac.content.sender.sender_type == NEW_MEMBER_COMMIT
    committer = -1 if external else ac.content.sender.index
    pset = apply_proposals(ep, items, committer, cfg.validate_credential, cfg.now, external)
    if pset.path_required and commit.path is None:
        raise MalformedInput("commit needs an UpdatePath")
    init_secret = None
    if external:
        assert commit.path is not None
        pset, committer = place_external_joiner(pset, commit.path.leaf_node, items)
        kem_output = next(p.kem_output for p, _ in items if isinstance(p, ExternalInit))
        init_secret = received_init_secret(ep, kem_output)
    if ep.my_leaf in pset.removed:
        return ReceivedCommit(None, committer, None)
    keys = dict(ep.keys)
    own = pset.tree.leaf(ep.my_leaf)
    if own is not None and own.encryption_key in pending_leaf_keys:
        keys[2 * ep.my_leaf] = (own.encryption_key, pending_leaf_keys[own.encryption_key])
    keys = prune_keys(pset.tree, keys)
    tree, commit_secret = pset.tree, bytes(cs.n_h)
    if commit.path is not None:
        tree, commit_secret, keys = receive_path(
            ep, pset, committer, commit.path, keys, cfg.validate_credential, cfg.now
        )
    new = next_epoch(
        ep,
        tree=tree,
        extensions=pset.extensions,
        commit_secret=commit_secret,
        psk_secret=psk_secret(pset.psks),
        wire_format=ac.wire_format,
        framed_content=to_bytes(ac.content),
        signature=ac.signature,
        confirmation_tag=ac.confirmation_tag,
        my_leaf=ep.my_leaf,
        keys=keys,
        init_secret=init_secret,
    )
    return ReceivedCommit(new, committer, pset.reinit)
