"""RFC 9420 vectors: treekem.json (§7.4-§7.6 UpdatePath processing and creation)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.mls._envelopes import GroupContext
from enkrypted_crypto.mls._messages import SRC_COMMIT, LeafNode, UpdatePath, from_bytes, to_bytes
from enkrypted_crypto.mls._suite import CipherSuite, suite
from enkrypted_crypto.mls._tree import RatchetTree
from enkrypted_crypto.mls._treekem import (
    NodeKeys,
    _node_keys,
    apply_path_public,
    create_path,
    decrypt_path,
)


def _keys(cs: CipherSuite, private: dict[str, Any]) -> NodeKeys:
    priv = h(private["encryption_priv"])
    keys: NodeKeys = {2 * private["index"]: (cs.kem_public(priv), priv)}
    for ps in private["path_secrets"]:
        keys[ps["node"]] = _node_keys(cs, h(ps["path_secret"]))
    return keys


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    gid = h(e["group_id"])
    tree = RatchetTree.decode(cs, h(e["ratchet_tree"]))
    assert tree.parent_hashes_valid()

    def context(t: RatchetTree) -> bytes:
        cth = h(e["confirmed_transcript_hash"])
        return to_bytes(GroupContext(cs.suite_id, gid, e["epoch"], t.tree_hash(), cth, ()))

    for up in e["update_paths"]:
        sender = up["sender"]
        path = from_bytes(h(up["update_path"]), UpdatePath.decode)
        after = apply_path_public(tree, sender, path)
        assert after.tree_hash() == h(up["tree_hash_after"])
        assert after.parent_hashes_valid()
        for private in e["leaves_private"]:
            i = private["index"]
            if i == sender:
                continue
            first, _, commit_secret = decrypt_path(
                cs, after, sender, path, i, _keys(cs, private), context(after), set()
            )
            assert first == h(up["path_secrets"][i])
            assert commit_secret == h(up["commit_secret"])
    # Create a path from every leaf; every other leaf must decrypt the same commit secret.
    for private in e["leaves_private"]:
        i = private["index"]
        old = tree.leaf(i)
        assert old is not None
        sig = h(private["signature_priv"])

        def make_leaf(enc: bytes, parent_hash: bytes, old: LeafNode = old, i: int = i) -> LeafNode:
            leaf = dataclasses.replace(
                old, encryption_key=enc, leaf_node_source=SRC_COMMIT, lifetime=None,
                parent_hash=parent_hash, signature=b"",
            )  # fmt: skip
            return dataclasses.replace(
                leaf, signature=cs.sign_with_label(sig, b"LeafNodeTBS", leaf.tbs(gid, i))
            )

        created = create_path(cs, tree, i, make_leaf, context, set(), os.urandom)
        path = from_bytes(to_bytes(created.update_path), UpdatePath.decode)
        after = apply_path_public(tree, i, path)
        assert after.tree_hash() == created.tree.tree_hash()
        assert after.parent_hashes_valid() and after.leaf_signatures_valid(gid)
        for other in e["leaves_private"]:
            if other["index"] != i:
                _, _, secret = decrypt_path(
                    cs, after, i, path, other["index"], _keys(cs, other), context(after), set()
                )
                assert secret == created.commit_secret


def test_treekem_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "treekem", _check, expected_run=77)
