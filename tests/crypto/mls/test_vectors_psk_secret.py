"""RFC 9420 vectors: psk_secret.json (§8.4)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.mls._messages import PreSharedKeyID, to_bytes
from enkrypted_crypto.mls._schedule import psk_secret
from enkrypted_crypto.mls._suite import suite


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    psks = [
        (
            to_bytes(PreSharedKeyID(1, psk_id=h(p["psk_id"]), psk_nonce=h(p["psk_nonce"]))),
            h(p["psk"]),
        )
        for p in e["psks"]
    ]
    assert psk_secret(cs, psks) == h(e["psk_secret"])


def test_psk_secret_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "psk_secret", _check, expected_run=77)
