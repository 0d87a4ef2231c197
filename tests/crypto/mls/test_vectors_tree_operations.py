"""RFC 9420 vectors: tree-operations.json (§12.1 Add/Update/Remove applied to a tree)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.mls._messages import Add, Remove, Update, decode_proposal, from_bytes
from enkrypted_crypto.mls._suite import suite
from enkrypted_crypto.mls._tree import RatchetTree


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    tree = RatchetTree.decode(cs, h(e["tree_before"]))
    assert tree.tree_hash() == h(e["tree_hash_before"])
    proposal = from_bytes(h(e["proposal"]), decode_proposal)
    if isinstance(proposal, Add):
        tree, _ = tree.with_leaf_added(proposal.key_package.leaf_node)
    elif isinstance(proposal, Update):
        tree = tree.with_leaf_updated(e["proposal_sender"], proposal.leaf_node)
    elif isinstance(proposal, Remove):
        tree = tree.with_leaf_removed(proposal.removed)
    else:
        raise AssertionError(f"unexpected proposal {proposal!r}")
    assert tree.encode() == h(e["tree_after"])
    assert tree.tree_hash() == h(e["tree_hash_after"])


def test_tree_operations_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "tree-operations", _check, expected_run=5)
