"""RFC 9420 vectors: tree-math.json (§4.2, Appendix C)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_vector_harness import assert_file

from enkrypted_crypto.mls import _tree_math as tm


def _check(e: dict[str, Any]) -> None:
    n = e["n_leaves"]
    assert tm.node_count(n) == e["n_nodes"]
    assert tm.root(n) == e["root"]
    for x in range(e["n_nodes"]):
        leaf = tm.is_leaf(x)
        assert (None if leaf else tm.left(x)) == e["left"][x]
        assert (None if leaf else tm.right(x)) == e["right"][x]
        is_root = x == tm.root(n)
        assert (None if is_root else tm.parent(x, n)) == e["parent"][x]
        assert (None if is_root else tm.sibling(x, n)) == e["sibling"][x]


def test_tree_math_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "tree-math", _check, expected_run=10)
