"""RFC 9420 vectors: tree-validation.json (§4.1.1 resolution, §7.8 tree hash, §7.9 parent hash)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.mls._messages import LeafNode, ParentNode
from enkrypted_crypto.mls._suite import suite
from enkrypted_crypto.mls._tree import RatchetTree


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    tree = RatchetTree.decode(cs, h(e["tree"]))
    assert len(tree.nodes) == len(e["tree_hashes"])
    for x, (tree_hash, resolution) in enumerate(
        zip(e["tree_hashes"], e["resolutions"], strict=True)
    ):
        assert tree.tree_hash(x) == h(tree_hash)
        assert tree.resolution(x) == resolution
    assert tree.parent_hashes_valid()
    assert tree.leaf_signatures_valid(h(e["group_id"]))
    assert tree.structure_errors() is None
    # Negative: tampering with any parent's parent hash must break parent-hash validity.
    parents = [x for x, n in enumerate(tree.nodes) if isinstance(n, ParentNode)]
    if parents:
        node = tree.nodes[parents[0]]
        assert isinstance(node, ParentNode)
        nodes = list(tree.nodes)
        nodes[parents[0]] = dataclasses.replace(node, parent_hash=node.parent_hash + b"\x00")
        assert not RatchetTree(cs, nodes).parent_hashes_valid()
    _, leaf = next(iter(tree.leaves()))
    assert isinstance(leaf, LeafNode)


def test_tree_validation_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "tree-validation", _check, expected_run=98)
