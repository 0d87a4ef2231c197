"""RFC 9420 vectors: passive-client-random.json — a passive member follows a long random sequence of adds, removes, updates and commits; its epoch_authenticator must match at every epoch."""

from __future__ import annotations

import pytest
from mls_passive_client import check_passive_client
from mls_vector_harness import assert_file


def test_passive_client_random_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "passive-client-random", check_passive_client, expected_run=1)
