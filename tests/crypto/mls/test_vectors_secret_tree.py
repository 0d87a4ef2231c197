"""RFC 9420 vectors: secret-tree.json (§6.3.2 sender data, §9 secret tree)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.errors import DecryptionFailed
from enkrypted_crypto.mls._schedule import SecretTree
from enkrypted_crypto.mls._suite import suite


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    sd = e["sender_data"]
    sample = h(sd["ciphertext"])[: cs.n_h]
    secret = h(sd["sender_data_secret"])
    assert cs.expand_with_label(secret, b"key", sample, cs.n_k) == h(sd["key"])
    assert cs.expand_with_label(secret, b"nonce", sample, cs.n_n) == h(sd["nonce"])
    tree = SecretTree(cs, h(e["encryption_secret"]), len(e["leaves"]))
    for leaf, generations in enumerate(e["leaves"]):
        for g in generations:
            n = g["generation"]
            app = (h(g["application_key"]), h(g["application_nonce"]))
            hs = (h(g["handshake_key"]), h(g["handshake_nonce"]))
            assert tree.key_nonce(leaf, "application", n) == app
            assert tree.key_nonce(leaf, "handshake", n) == hs
            with pytest.raises(DecryptionFailed):  # each key is handed out once (§9.2)
                tree.key_nonce(leaf, "application", n)


def test_secret_tree_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "secret-tree", _check, expected_run=21)
