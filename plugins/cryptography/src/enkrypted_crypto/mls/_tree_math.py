"""Array-based left-balanced binary tree arithmetic (RFC 9420 §4.2, Appendix C).

Node indices: leaves are even (leaf ``i`` is node ``2i``), parents odd.  The tree always has
``2^d`` leaves (§7.1: it is extended and truncated by powers of two).
"""

from __future__ import annotations

__all__ = [
    "copath",
    "direct_path",
    "is_leaf",
    "left",
    "level",
    "node_count",
    "node_leaf",
    "parent",
    "right",
    "root",
    "sibling",
]

from enkrypted_crypto.errors import CryptoUsageError


def level(x: int) -> int:
    """Number of trailing one bits: 0 for leaves."""
    k = 0
    while (x >> k) & 1:
        k += 1
    return k


def is_leaf(x: int) -> bool:
    return x % 2 == 0


def node_leaf(x: int) -> int:
    return x // 2


def node_count(n_leaves: int) -> int:
    return 0 if n_leaves == 0 else 2 * (n_leaves - 1) + 1


def root(n_leaves: int) -> int:
    w = node_count(n_leaves)
    return (1 << (w.bit_length() - 1)) - 1


def left(x: int) -> int:
    k = level(x)
    if k == 0:
        raise CryptoUsageError("leaf has no children")
    return x ^ (0x01 << (k - 1))


def right(x: int) -> int:
    k = level(x)
    if k == 0:
        raise CryptoUsageError("leaf has no children")
    return x ^ (0x03 << (k - 1))


def parent(x: int, n_leaves: int) -> int:
    if x == root(n_leaves):
        raise CryptoUsageError("root has no parent")
    k = level(x)
    b = (x >> (k + 1)) & 0x01
    return (x | (1 << k)) ^ (b << (k + 1))


def sibling(x: int, n_leaves: int) -> int:
    p = parent(x, n_leaves)
    return right(p) if x < p else left(p)


def direct_path(x: int, n_leaves: int) -> list[int]:
    """Parents of ``x`` up to and including the root (empty for the root)."""
    r = root(n_leaves)
    path: list[int] = []
    while x != r:
        x = parent(x, n_leaves)
        path.append(x)
    return path


def copath(x: int, n_leaves: int) -> list[int]:
    """Siblings of ``x`` and of each node on its direct path except the root."""
    r = root(n_leaves)
    if x == r:
        return []
    nodes = [x, *direct_path(x, n_leaves)]
    nodes.pop()
    return [sibling(y, n_leaves) for y in nodes]
