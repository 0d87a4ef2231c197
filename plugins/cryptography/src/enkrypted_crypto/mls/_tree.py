"""The ratchet tree (RFC 9420 §4, §7): resolution, tree hash, parent hash, validation, edits.

:class:`RatchetTree` is a value: every edit returns a new tree (node objects are frozen and
shared), so a failed commit leaves the caller's tree untouched.  Tree hashes are memoised per
instance.
"""

from __future__ import annotations

__all__ = ["RatchetTree"]

from collections.abc import Callable, Iterator

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls import _tree_math as tm
from enkrypted_crypto.mls._codec import Writer
from enkrypted_crypto.mls._limits import LIMITS
from enkrypted_crypto.mls._messages import (
    SRC_COMMIT,
    LeafNode,
    Node,
    ParentNode,
    decode_tree,
    encode_tree,
)
from enkrypted_crypto.mls._suite import CipherSuite


def _put_leaf(w: Writer, leaf: LeafNode) -> None:
    leaf.encode(w)


def _put_parent(w: Writer, node: ParentNode) -> None:
    node.encode(w)


class RatchetTree:
    """An array of optional nodes whose length is ``2 * n_leaves - 1`` (a full tree)."""

    __slots__ = ("_hashes", "cs", "nodes")

    def __init__(self, cs: CipherSuite, nodes: list[Node | None]) -> None:
        if len(nodes) > LIMITS.max_tree_nodes:
            raise MalformedInput("ratchet tree too large")
        n_leaves = 1
        while tm.node_count(n_leaves) < len(nodes):
            n_leaves *= 2
        self.cs = cs
        self.nodes: list[Node | None] = list(nodes) + [None] * (
            tm.node_count(n_leaves) - len(nodes)
        )
        for i, node in enumerate(self.nodes):
            if node is not None and isinstance(node, LeafNode) != tm.is_leaf(i):
                raise MalformedInput("ratchet tree node of the wrong type at its position")
        self._hashes: dict[int, bytes] = {}

    @staticmethod
    def decode(cs: CipherSuite, data: bytes) -> RatchetTree:
        nodes = decode_tree(data)
        if not nodes or nodes[-1] is None:
            raise MalformedInput("ratchet tree is empty or ends in a blank node")
        return RatchetTree(cs, nodes)

    def encode(self) -> bytes:
        return encode_tree(self.nodes)

    def copy(self) -> RatchetTree:
        """A tree to edit; it keeps the hash memo, which every edit below invalidates for the
        changed node and its ancestors (so a commit rehashes O(log n) nodes, not the tree)."""
        out = RatchetTree.__new__(RatchetTree)  # the nodes were checked when self was built
        out.cs, out.nodes, out._hashes = self.cs, list(self.nodes), dict(self._hashes)
        return out

    def _changed(self, x: int) -> None:
        """Node ``x`` was edited: drop the memoised hashes of ``x`` and of its ancestors."""
        self._hashes.pop(x, None)
        for p in tm.direct_path(x, self.n_leaves):
            self._hashes.pop(p, None)

    # -- access ---------------------------------------------------------------------------------
    @property
    def n_leaves(self) -> int:
        return (len(self.nodes) + 1) // 2

    def leaf(self, index: int) -> LeafNode | None:
        if index < 0 or index >= self.n_leaves:
            return None
        node = self.nodes[2 * index]
        assert node is None or isinstance(node, LeafNode)
        return node

    def parent(self, node_index: int) -> ParentNode | None:
        node = self.nodes[node_index]
        assert node is None or isinstance(node, ParentNode)
        return node

    def leaves(self) -> Iterator[tuple[int, LeafNode]]:
        for i in range(self.n_leaves):
            leaf = self.leaf(i)
            if leaf is not None:
                yield i, leaf

    def resolution(self, x: int) -> list[int]:
        """§4.1.1."""
        node = self.nodes[x]
        if node is not None:
            if isinstance(node, ParentNode):
                return [x, *(2 * u for u in node.unmerged_leaves)]
            return [x]
        if tm.is_leaf(x):
            return []
        return self.resolution(tm.left(x)) + self.resolution(tm.right(x))

    def filtered_direct_path(self, leaf_index: int) -> list[int]:
        """§4.1.2: the direct path minus nodes whose copath child has an empty resolution."""
        x = 2 * leaf_index
        out: list[int] = []
        for p in tm.direct_path(x, self.n_leaves):
            child = tm.left(p) if x > p else tm.right(p)
            if self.resolution(child):
                out.append(p)
            x = p
        return out

    # -- hashes (§7.8, §7.9) -------------------------------------------------------------------
    def tree_hash(self, x: int | None = None) -> bytes:
        """TreeHash of the subtree at ``x`` (the root by default), memoised (§7.8)."""
        if x is None:
            x = tm.root(self.n_leaves)
        return self._hash(x, frozenset())

    def _hash(self, x: int, drop: frozenset[int]) -> bytes:
        """TreeHash at ``x`` with the leaves in ``drop`` blanked and dropped from unmerged lists
        (§7.9 "original sibling tree hash").  Subtrees holding none of them use the memo, so
        parent-hash checks cost O(|drop| log n) hashes rather than a tree copy each."""
        span = 1 << tm.level(x)
        first = (x + 1 - span) // 2  # leftmost leaf under x
        drop = frozenset(u for u in drop if first <= u < first + span)
        if not drop:
            cached = self._hashes.get(x)
            if cached is not None:
                return cached
        w = Writer()
        node = self.nodes[x]
        if tm.is_leaf(x):
            w.u8(1)
            w.u32(x // 2)
            leaf = node if isinstance(node, LeafNode) and x // 2 not in drop else None
            w.optional(leaf, _put_leaf)
        else:
            parent = node if isinstance(node, ParentNode) else None
            if parent is not None and drop & set(parent.unmerged_leaves):
                kept = tuple(u for u in parent.unmerged_leaves if u not in drop)
                parent = ParentNode(parent.encryption_key, parent.parent_hash, kept)
            w.u8(2)
            w.optional(parent, _put_parent)
            w.opaque(self._hash(tm.left(x), drop))
            w.opaque(self._hash(tm.right(x), drop))
        out = self.cs.hash(w.getvalue())
        if not drop:
            self._hashes[x] = out
        return out

    def parent_hash_of(self, p: int, sibling: int) -> bytes:
        """ParentHash of node ``p`` as seen from the child opposite ``sibling`` (§7.9)."""
        node = self.parent(p)
        assert node is not None
        w = Writer()
        w.opaque(node.encryption_key)
        w.opaque(node.parent_hash)
        w.opaque(self._hash(sibling, frozenset(node.unmerged_leaves)))
        return self.cs.hash(w.getvalue())

    def parent_hashes_valid(self) -> bool:
        """§7.9.2: every non-blank parent is covered by exactly one parent-hash chain."""
        coverage: dict[int, int] = {}
        root = tm.root(self.n_leaves)
        for leaf_index, _leaf in self.leaves():
            x = 2 * leaf_index
            while x != root:
                node = self.nodes[x]
                assert node is not None
                stated = node.parent_hash if isinstance(node, (ParentNode, LeafNode)) else b""
                if isinstance(node, LeafNode) and node.leaf_node_source != SRC_COMMIT:
                    break
                p = next(
                    (a for a in tm.direct_path(x, self.n_leaves) if self.nodes[a] is not None),
                    None,
                )
                if p is None:
                    break
                sibling = tm.right(p) if x < p else tm.left(p)
                if stated != self.parent_hash_of(p, sibling):
                    break
                coverage[p] = coverage.get(p, 0) + 1
                x = p
        parents = [i for i, n in enumerate(self.nodes) if isinstance(n, ParentNode)]
        return all(coverage.get(p, 0) == 1 for p in parents)

    # -- structural validation (§7.9.2, §12.4.3.1) ----------------------------------------------
    def structure_errors(self) -> str | None:
        """Unmerged-leaf consistency and key uniqueness; ``None`` if the tree is sound."""
        seen_keys: set[bytes] = set()
        for i, node in enumerate(self.nodes):
            if node is None:
                continue
            if node.encryption_key in seen_keys:
                return "duplicate encryption key"
            seen_keys.add(node.encryption_key)
            if isinstance(node, ParentNode):
                for u in node.unmerged_leaves:
                    path = tm.direct_path(2 * u, self.n_leaves)
                    if i not in path or self.leaf(u) is None:
                        return "unmerged leaf is not a non-blank descendant"
                    for a in path[: path.index(i)]:
                        below = self.nodes[a]
                        if isinstance(below, ParentNode) and u not in below.unmerged_leaves:
                            return "unmerged leaf missing below its parent"
        sig_keys = [leaf.signature_key for _, leaf in self.leaves()]
        if len(set(sig_keys)) != len(sig_keys):
            return "duplicate signature key"
        return None

    def leaf_signatures_valid(self, group_id: bytes) -> bool:
        return all(
            self.cs.verify_with_label(
                leaf.signature_key, b"LeafNodeTBS", leaf.tbs(group_id, i), leaf.signature
            )
            for i, leaf in self.leaves()
        )

    # -- edits (§12.1, §7.5-7.7) ----------------------------------------------------------------
    def _blank_direct_path(self, leaf_index: int) -> None:
        for p in tm.direct_path(2 * leaf_index, self.n_leaves):
            self.nodes[p] = None
        self._changed(2 * leaf_index)

    def with_leaf_updated(self, leaf_index: int, leaf: LeafNode) -> RatchetTree:
        """Update (§12.1.2): replace the leaf, blank its direct path."""
        out = self.copy()
        out.nodes[2 * leaf_index] = leaf
        out._blank_direct_path(leaf_index)
        return out

    def with_leaf_removed(self, leaf_index: int) -> RatchetTree:
        """Remove (§12.1.3): blank the leaf and its direct path, then truncate (§7.7)."""
        out = self.copy()
        out.nodes[2 * leaf_index] = None
        out._blank_direct_path(leaf_index)
        while out.n_leaves > 1 and all(n is None for n in out.nodes[out.n_leaves - 1 :]):
            out.nodes = out.nodes[: out.n_leaves - 1]
            out._hashes.clear()  # another root: rare, rehash
        return out

    def with_leaf_added(self, leaf: LeafNode) -> tuple[RatchetTree, int]:
        """Add (§12.1.1): leftmost blank leaf, extending the tree if none (§7.7)."""
        out = self.copy()
        index = next((i for i in range(out.n_leaves) if out.leaf(i) is None), None)
        if index is None:
            index = out.n_leaves
            if 2 * len(out.nodes) + 1 > LIMITS.max_tree_nodes:
                raise MalformedInput("ratchet tree too large")
            out.nodes += [None] * (len(out.nodes) + 1)
        out.nodes[2 * index] = leaf
        out._changed(2 * index)
        for p in tm.direct_path(2 * index, out.n_leaves):
            node = out.parent(p)
            if node is not None:
                out.nodes[p] = ParentNode(
                    node.encryption_key, node.parent_hash, (*node.unmerged_leaves, index)
                )
        return out, index

    def with_path(self, leaf_index: int, leaf: LeafNode | None, keys: list[bytes]) -> RatchetTree:
        """Blank the direct path, set ``keys`` on the filtered direct path, compute parent hashes.

        Returns the new tree; its leaf's parent hash is whatever ``leaf`` says (the caller
        compares it with :meth:`leaf_parent_hash` of the result, or builds the leaf from it).
        """
        fdp = self.filtered_direct_path(leaf_index)
        if len(keys) != len(fdp):
            raise MalformedInput("UpdatePath length does not match the filtered direct path")
        out = self.copy()
        out._blank_direct_path(leaf_index)
        if leaf is not None:
            out.nodes[2 * leaf_index] = leaf
        parent_hash = b""
        for i in range(len(fdp) - 1, -1, -1):  # only copath subtrees are hashed: memo valid
            out.nodes[fdp[i]] = ParentNode(keys[i], parent_hash, ())
            child_side = fdp[i - 1] if i > 0 else 2 * leaf_index
            parent_hash = out._hash_for_child(fdp[i], child_side)
        return out

    def _hash_for_child(self, p: int, descendant: int) -> bytes:
        sibling = tm.right(p) if descendant < p else tm.left(p)
        return self.parent_hash_of(p, sibling)

    def leaf_parent_hash(self, leaf_index: int) -> bytes:
        """The parent hash a committing leaf must carry, given the tree after :meth:`with_path`."""
        fdp = self.filtered_direct_path(leaf_index)
        if not fdp:
            return b""
        return self._hash_for_child(fdp[0], 2 * leaf_index)

    def find_leaf(self, match: Callable[[LeafNode], bool]) -> int | None:
        return next((i for i, leaf in self.leaves() if match(leaf)), None)
