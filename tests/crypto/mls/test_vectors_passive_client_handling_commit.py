"""RFC 9420 vectors: passive-client-handling-commit.json — a passive member processes commits of every kind (proposals by value and reference, PSKs, GroupContextExtensions, with and without path); its epoch_authenticator must match at every epoch."""

from __future__ import annotations

import pytest
from mls_passive_client import check_passive_client
from mls_vector_harness import assert_file


def test_passive_client_handling_commit_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "passive-client-handling-commit", check_passive_client, expected_run=91)
