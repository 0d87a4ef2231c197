"""RFC 9420 vectors: passive-client-welcome.json — a passive member joins from a Welcome (with and without the ratchet_tree extension, with external PSKs); its epoch_authenticator must match at every epoch."""

from __future__ import annotations

import pytest
from mls_passive_client import check_passive_client
from mls_vector_harness import assert_file


def test_passive_client_welcome_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "passive-client-welcome", check_passive_client, expected_run=56)
