"""RFC 9420 vectors: crypto-basics.json (§5.1, §5.2, §8)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.errors import DecryptionFailed
from enkrypted_crypto.mls._suite import HpkeCiphertext, suite


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    r = e["ref_hash"]
    assert cs.ref_hash(r["label"].encode(), h(r["value"])) == h(r["out"])
    x = e["expand_with_label"]
    out = cs.expand_with_label(h(x["secret"]), x["label"].encode(), h(x["context"]), x["length"])
    assert out == h(x["out"])
    x = e["derive_secret"]
    assert cs.derive_secret(h(x["secret"]), x["label"].encode()) == h(x["out"])
    x = e["derive_tree_secret"]
    out = cs.derive_tree_secret(h(x["secret"]), x["label"].encode(), x["generation"], x["length"])
    assert out == h(x["out"])
    x = e["sign_with_label"]
    label, content = x["label"].encode(), h(x["content"])
    assert cs.verify_with_label(h(x["pub"]), label, content, h(x["signature"]))
    assert not cs.verify_with_label(h(x["pub"]), label, content + b"x", h(x["signature"]))
    assert cs.signature_public(h(x["priv"])) == h(x["pub"])
    ours = cs.sign_with_label(h(x["priv"]), label, content)
    assert cs.verify_with_label(h(x["pub"]), label, content, ours)
    x = e["encrypt_with_label"]
    label, context = x["label"].encode(), h(x["context"])
    ct = HpkeCiphertext(h(x["kem_output"]), h(x["ciphertext"]))
    assert cs.decrypt_with_label(h(x["priv"]), label, context, ct) == h(x["plaintext"])
    with pytest.raises(DecryptionFailed):
        cs.decrypt_with_label(h(x["priv"]), label, context + b"x", ct)
    mine = cs.encrypt_with_label(h(x["pub"]), label, context, h(x["plaintext"]))
    assert cs.decrypt_with_label(h(x["priv"]), label, context, mine) == h(x["plaintext"])


def test_crypto_basics_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "crypto-basics", _check, expected_run=7)
