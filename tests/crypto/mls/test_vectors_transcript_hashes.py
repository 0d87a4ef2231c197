"""RFC 9420 vectors: transcript-hashes.json (§8.2)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.mls._framing import AuthenticatedContent
from enkrypted_crypto.mls._messages import from_bytes, to_bytes
from enkrypted_crypto.mls._schedule import confirmed_transcript_hash, interim_transcript_hash
from enkrypted_crypto.mls._suite import suite


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    ac = from_bytes(h(e["authenticated_content"]), AuthenticatedContent.decode)
    assert ac.to_bytes() == h(e["authenticated_content"])
    confirmed = confirmed_transcript_hash(
        cs,
        h(e["interim_transcript_hash_before"]),
        ac.wire_format,
        to_bytes(ac.content),
        ac.signature,
    )
    assert confirmed == h(e["confirmed_transcript_hash_after"])
    assert ac.confirmation_tag == cs.mac(h(e["confirmation_key"]), confirmed)
    assert interim_transcript_hash(cs, confirmed, ac.confirmation_tag) == h(
        e["interim_transcript_hash_after"]
    )


def test_transcript_hashes_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "transcript-hashes", _check, expected_run=7)
