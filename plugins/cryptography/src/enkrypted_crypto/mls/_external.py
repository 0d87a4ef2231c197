"""Non-member senders (RFC 9420 §6, §12.1.8, §12.4.3.2): external commits, external senders
and new-member proposals.

An external joiner derives the next epoch's init_secret by HPKE export to the group's external
public key (``external_pub`` GroupInfo extension); members recover it with the private key they
derive from ``external_secret``.  External senders are listed in the ``external_senders``
GroupContext extension and may only send proposals; a new member may propose its own Add.
"""

from __future__ import annotations

__all__ = [
    "EXTERNAL_INIT_LABEL",
    "external_proposal",
    "external_senders",
    "new_member_proposal",
    "place_external_joiner",
    "external_pub_extension",
    "join_external",
    "received_init_secret",
]

import dataclasses
from collections.abc import Callable

from enkrypted_crypto.errors import MalformedInput, MalformedKey
from enkrypted_crypto.mls._codec import Reader, Writer
from enkrypted_crypto.mls._envelopes import (
    FramedContent,
    GroupContext,
    GroupInfo,
    MLSMessage,
    Sender,
)
from enkrypted_crypto.mls._epoch import Epoch, ProposalSet, apply_proposals, next_epoch
from enkrypted_crypto.mls._framing import AuthenticatedContent, sign_content, to_public
from enkrypted_crypto.mls._keypackage import CredentialValidator, KeyPackageBundle, sign_leaf
from enkrypted_crypto.mls._limits import LIMITS
from enkrypted_crypto.mls._messages import (
    COMMIT,
    EXT_EXTERNAL_PUB,
    EXT_EXTERNAL_SENDERS,
    EXT_RATCHET_TREE,
    EXTERNAL,
    NEW_MEMBER_COMMIT,
    NEW_MEMBER_PROPOSAL,
    PROPOSAL,
    PUBLIC_MESSAGE,
    SRC_COMMIT,
    Add,
    Commit,
    Credential,
    Extension,
    ExternalInit,
    LeafNode,
    Proposal,
    ProposalOrRef,
    Remove,
    find_extension,
    to_bytes,
)
from enkrypted_crypto.mls._schedule import EpochSecrets, interim_transcript_hash, psk_secret
from enkrypted_crypto.mls._suite import CipherSuite, suite
from enkrypted_crypto.mls._tree import RatchetTree
from enkrypted_crypto.mls._treekem import create_path
from enkrypted_crypto.mls._welcome import validate_tree

EXTERNAL_INIT_LABEL = b"MLS 1.0 external init secret"


def external_pub_extension(cs: CipherSuite, secrets: EpochSecrets) -> Extension:
    """``ExternalPub { HPKEPublicKey external_pub; }`` for this epoch (§12.4.3.2)."""
    w = Writer()
    w.opaque(cs.derive_key_pair(secrets.external_secret)[1])
    return Extension(EXT_EXTERNAL_PUB, w.getvalue())


def received_init_secret(ep: Epoch, kem_output: bytes) -> bytes:
    """A member's side of ExternalInit (§8.3)."""
    cs = ep.cs
    external_priv, _ = cs.derive_key_pair(ep.secrets.external_secret)
    try:
        return cs.hpke_export_receiver(external_priv, kem_output, b"", EXTERNAL_INIT_LABEL, cs.n_h)
    except MalformedKey as exc:
        raise MalformedInput("bad ExternalInit kem_output") from exc


def _external_pub(cs: CipherSuite, info: GroupInfo) -> bytes:
    """The ExternalPub key.  RFC 9420 (and the WG vectors) length-prefix it inside the
    extension; ts-mls up to 1.6.4 writes the bare key (fixed upstream in ts-mls PR #449).  The
    two are told apart by length, and the key is covered by the GroupInfo signature either way,
    so both are accepted; we always write the RFC form."""
    data = find_extension(info.extensions, EXT_EXTERNAL_PUB)
    if data is None:
        raise MalformedInput("GroupInfo has no external_pub extension")
    if len(data) == cs.kem.n_pk:
        return data
    r = Reader(data)
    pub = r.opaque()
    r.expect_end()
    return pub


def join_external(
    cs: CipherSuite,
    info: GroupInfo,
    ratchet_tree: bytes | None,
    bundle: KeyPackageBundle,
    validate_credential: CredentialValidator,
    random: Callable[[int], bytes],
    resync_leaf: int | None = None,
) -> tuple[Epoch, bytes]:
    """Join by external commit: the new epoch and the commit MLSMessage to send (§12.4.3.2)."""
    tree_bytes = find_extension(info.extensions, EXT_RATCHET_TREE) or ratchet_tree
    if tree_bytes is None:
        raise MalformedInput("no ratchet tree in the GroupInfo and none supplied")
    tree = RatchetTree.decode(cs, tree_bytes)
    validate_tree(cs, tree, info, validate_credential)
    ctx = info.group_context
    kem_output, init_secret = cs.hpke_export_sender(
        _external_pub(cs, info), b"", EXTERNAL_INIT_LABEL, cs.n_h
    )
    interim = interim_transcript_hash(cs, ctx.confirmed_transcript_hash, info.confirmation_tag)
    prior = Epoch(cs, ctx, tree, EpochSecrets.unknown(), interim, info.confirmation_tag, -1, {})
    proposals: list[Proposal] = [ExternalInit(kem_output)]
    if resync_leaf is not None:
        proposals.append(Remove(resync_leaf))
    sender = Sender(NEW_MEMBER_COMMIT)
    items = [(p, sender) for p in proposals]
    pset = apply_proposals(prior, items, -1, validate_credential, None, external=True)
    kp_leaf = bundle.key_package.leaf_node
    grown, my_leaf = pset.tree.with_leaf_added(kp_leaf)

    def make_leaf(enc: bytes, parent_hash: bytes) -> LeafNode:
        unsigned = LeafNode(
            enc, kp_leaf.signature_key, kp_leaf.credential, kp_leaf.capabilities, SRC_COMMIT,
            None, parent_hash, kp_leaf.extensions, b"",
        )  # fmt: skip
        return sign_leaf(cs, unsigned, bundle.signature_priv, ctx.group_id, my_leaf)

    def context_for(final: RatchetTree) -> bytes:
        return to_bytes(
            GroupContext(
                cs.suite_id, ctx.group_id, ctx.epoch + 1, final.tree_hash(),
                ctx.confirmed_transcript_hash, pset.extensions,
            )
        )  # fmt: skip

    created = create_path(cs, grown, my_leaf, make_leaf, context_for, set(), random)
    commit = Commit(tuple(ProposalOrRef(proposal=p) for p in proposals), created.update_path)
    content = FramedContent(ctx.group_id, ctx.epoch, sender, b"", COMMIT, commit)
    signature = sign_content(cs, PUBLIC_MESSAGE, content, bundle.signature_priv, to_bytes(ctx))
    new = next_epoch(
        prior, tree=created.tree, extensions=pset.extensions,
        commit_secret=created.commit_secret, psk_secret=psk_secret(cs, []),
        wire_format=PUBLIC_MESSAGE, framed_content=to_bytes(content), signature=signature,
        confirmation_tag=None, my_leaf=my_leaf, keys=created.keys, init_secret=init_secret,
    )  # fmt: skip
    ac = AuthenticatedContent(PUBLIC_MESSAGE, content, signature, new.confirmation_tag)
    message = to_public(cs, ac, b"", to_bytes(ctx))
    return new, to_bytes(MLSMessage(PUBLIC_MESSAGE, message))


def external_senders(ctx: GroupContext) -> tuple[tuple[bytes, Credential], ...]:
    """``ExternalSender external_senders<V>`` from the GroupContext (§12.1.8.1)."""
    data = find_extension(ctx.extensions, EXT_EXTERNAL_SENDERS)
    if data is None:
        return ()

    def one(r: Reader) -> tuple[bytes, Credential]:
        return r.opaque(), Credential.decode(r)

    r = Reader(data)
    senders = r.vector(one, LIMITS.max_extensions)
    r.expect_end()
    return senders


def encode_external_senders(senders: list[tuple[bytes, Credential]]) -> Extension:
    w = Writer()

    def put(w2: Writer, item: tuple[bytes, Credential]) -> None:
        w2.opaque(item[0])
        item[1].encode(w2)

    w.vector(senders, put)
    return Extension(EXT_EXTERNAL_SENDERS, w.getvalue())


def place_external_joiner(
    pset: ProposalSet, leaf: LeafNode, items: list[tuple[Proposal, Sender]]
) -> tuple[ProposalSet, int]:
    """The external joiner takes the leaf an Add would give it (§12.4.3.2); any Remove in
    its commit has been applied already (resync of its old leaf)."""
    del items
    tree, index = pset.tree.with_leaf_added(leaf)
    return dataclasses.replace(pset, tree=tree), index


def _proposal_message(
    cs: CipherSuite, ctx: GroupContext, sender: Sender, proposal: Proposal, signature_priv: bytes
) -> bytes:
    content = FramedContent(ctx.group_id, ctx.epoch, sender, b"", PROPOSAL, proposal)
    signature = sign_content(cs, PUBLIC_MESSAGE, content, signature_priv, to_bytes(ctx))
    ac = AuthenticatedContent(PUBLIC_MESSAGE, content, signature, None)
    return to_bytes(MLSMessage(PUBLIC_MESSAGE, to_public(cs, ac, b"", to_bytes(ctx))))


def new_member_proposal(info: GroupInfo, bundle: KeyPackageBundle) -> bytes:
    """A would-be member's own Add proposal for the group of ``info`` (§12.1.8)."""
    cs = suite(info.group_context.cipher_suite)
    sender = Sender(NEW_MEMBER_PROPOSAL)
    return _proposal_message(
        cs, info.group_context, sender, Add(bundle.key_package), bundle.signature_priv
    )


def external_proposal(
    ctx: GroupContext, sender_index: int, proposal: Proposal, signature_priv: bytes
) -> bytes:
    """A proposal from the external sender at ``sender_index`` of ``external_senders``."""
    cs = suite(ctx.cipher_suite)
    return _proposal_message(cs, ctx, Sender(EXTERNAL, sender_index), proposal, signature_priv)
