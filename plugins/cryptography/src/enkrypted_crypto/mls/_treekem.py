"""TreeKEM update paths (RFC 9420 §7.4-§7.6): create, apply and decrypt.

Private keys are kept as ``{node index: (public, private)}``; :func:`prune_keys` drops those whose
node was blanked or replaced, which is what gives forward secrecy and post-compromise security.
"""

from __future__ import annotations

__all__ = ["CreatedPath", "NodeKeys", "create_path", "decrypt_path", "prune_keys"]

from collections.abc import Callable
from dataclasses import dataclass

from enkrypted_crypto.errors import DecryptionFailed, MalformedInput
from enkrypted_crypto.mls import _tree_math as tm
from enkrypted_crypto.mls._messages import (
    LeafNode,
    UpdatePath,
    UpdatePathNode,
)
from enkrypted_crypto.mls._suite import CipherSuite
from enkrypted_crypto.mls._tree import RatchetTree

NodeKeys = dict[int, tuple[bytes, bytes]]
"""``{node index: (public key, private key)}`` of the nodes a member can decrypt for."""


def prune_keys(tree: RatchetTree, keys: NodeKeys) -> NodeKeys:
    """Keep only keys whose node still carries the same public key."""
    out: NodeKeys = {}
    for x, (pub, priv) in keys.items():
        node = tree.nodes[x] if x < len(tree.nodes) else None
        if node is not None and node.encryption_key == pub:
            out[x] = (pub, priv)
    return out


def _node_keys(cs: CipherSuite, path_secret: bytes) -> tuple[bytes, bytes]:
    """(public, private) of a path node from its path secret (§7.4)."""
    priv, pub = cs.derive_key_pair(cs.derive_secret(path_secret, b"node"))
    return pub, priv


def _copath_child(p: int, leaf_index: int) -> int:
    return tm.right(p) if 2 * leaf_index < p else tm.left(p)


@dataclass(frozen=True, slots=True)
class CreatedPath:
    update_path: UpdatePath
    tree: RatchetTree
    keys: NodeKeys
    commit_secret: bytes
    path_secrets: dict[int, bytes]
    """``{filtered-direct-path node: path secret}``, for GroupSecrets of joiners."""


def create_path(
    cs: CipherSuite,
    tree: RatchetTree,
    leaf_index: int,
    make_leaf: Callable[[bytes, bytes], LeafNode],
    context_for: Callable[[RatchetTree], bytes],
    exclude: set[int],
    random: Callable[[int], bytes],
) -> CreatedPath:
    """Generate an UpdatePath from ``leaf_index`` (§7.5).

    ``make_leaf(encryption_key, parent_hash)`` builds and signs the committer's new leaf;
    ``context_for(tree)`` is the encoded provisional GroupContext for the final tree; ``exclude``
    holds the leaves added by this commit (§12.4.2: not encrypted to).
    """
    fdp = tree.filtered_direct_path(leaf_index)
    secrets = [random(cs.n_h)]
    for _ in fdp:
        secrets.append(cs.derive_secret(secrets[-1], b"path"))
    node_keys = [_node_keys(cs, s) for s in secrets[: len(fdp)]]
    leaf_priv, leaf_pub = cs.kem_keypair()
    shaped = tree.with_path(leaf_index, None, [pub for pub, _ in node_keys])
    leaf = make_leaf(leaf_pub, shaped.leaf_parent_hash(leaf_index))
    final = shaped.with_path(leaf_index, leaf, [pub for pub, _ in node_keys])
    context = context_for(final)
    nodes = []
    for i, p in enumerate(fdp):
        targets = [
            x
            for x in final.resolution(_copath_child(p, leaf_index))
            if x // 2 not in exclude or x % 2
        ]
        cts = tuple(
            cs.encrypt_with_label(_public_of(final, x), b"UpdatePathNode", context, secrets[i])
            for x in targets
        )
        nodes.append(UpdatePathNode(node_keys[i][0], cts))
    keys: NodeKeys = {2 * leaf_index: (leaf_pub, leaf_priv)}
    keys.update({p: node_keys[i] for i, p in enumerate(fdp)})
    return CreatedPath(
        UpdatePath(leaf, tuple(nodes)),
        final,
        keys,
        secrets[len(fdp)],
        {p: secrets[i] for i, p in enumerate(fdp)},
    )


def _public_of(tree: RatchetTree, x: int) -> bytes:
    node = tree.nodes[x]
    assert node is not None
    return node.encryption_key


def apply_path_public(tree: RatchetTree, sender: int, path: UpdatePath) -> RatchetTree:
    """Merge a received UpdatePath's public keys and check the leaf's parent hash (§7.5, §7.9)."""
    keys = [n.encryption_key for n in path.nodes]
    shaped = tree.with_path(sender, path.leaf_node, keys)
    if path.leaf_node.parent_hash != shaped.leaf_parent_hash(sender):
        raise MalformedInput("UpdatePath leaf parent hash does not match")
    return shaped


def decrypt_path(
    cs: CipherSuite,
    tree: RatchetTree,
    sender: int,
    path: UpdatePath,
    my_leaf: int,
    keys: NodeKeys,
    context: bytes,
    exclude: set[int],
) -> tuple[bytes, NodeKeys, bytes]:
    """Decrypt our path secret from a path already merged into ``tree``.

    Returns (the path secret at the first common ancestor, the new node keys, commit_secret).
    """
    fdp = tree.filtered_direct_path(sender)
    mine = set(tm.direct_path(2 * my_leaf, tree.n_leaves))
    i = next((k for k, p in enumerate(fdp) if p in mine), None)
    if i is None:
        raise MalformedInput("no common ancestor with the committer")
    targets = [
        x for x in tree.resolution(_copath_child(fdp[i], sender)) if x // 2 not in exclude or x % 2
    ]
    j = next((k for k, x in enumerate(targets) if x in keys), None)
    cts = path.nodes[i].encrypted_path_secret
    if j is None or len(cts) != len(targets):
        raise DecryptionFailed
    secret = cs.decrypt_with_label(keys[targets[j]][1], b"UpdatePathNode", context, cts[j])
    first = secret
    new_keys: NodeKeys = {}
    for k in range(i, len(fdp)):
        pub, priv = _node_keys(cs, secret)
        if pub != path.nodes[k].encryption_key:
            raise MalformedInput("UpdatePath public key does not match its path secret")
        new_keys[fdp[k]] = (pub, priv)
        secret = cs.derive_secret(secret, b"path")
    return first, new_keys, secret


def keys_from_path_secret(
    cs: CipherSuite, tree: RatchetTree, sender: int, node: int, path_secret: bytes
) -> tuple[NodeKeys, bytes]:
    """A joiner's keys from the path secret a Welcome gives for ``node`` (§12.4.3.1)."""
    fdp = tree.filtered_direct_path(sender)
    if node not in fdp:
        raise MalformedInput("path secret node is not on the committer's path")
    keys: NodeKeys = {}
    secret = path_secret
    for p in fdp[fdp.index(node) :]:
        pub, priv = _node_keys(cs, secret)
        if pub != _public_of(tree, p):
            raise MalformedInput("path secret does not match the tree")
        keys[p] = (pub, priv)
        secret = cs.derive_secret(secret, b"path")
    return keys, secret
