"""RFC 9420 vectors: key-schedule.json (§8, §8.5 exporter, §12.4.3.2 external_pub)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.mls._envelopes import GroupContext
from enkrypted_crypto.mls._messages import to_bytes
from enkrypted_crypto.mls._schedule import derive_epoch, exporter
from enkrypted_crypto.mls._suite import suite

_SECRETS = (
    "joiner_secret", "welcome_secret", "sender_data_secret", "encryption_secret",
    "exporter_secret", "external_secret", "confirmation_key", "membership_key",
    "resumption_psk", "epoch_authenticator", "init_secret",
)  # fmt: skip


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    init = h(e["initial_init_secret"])
    for epoch, ep in enumerate(e["epochs"]):
        ctx = GroupContext(
            cs.suite_id, h(e["group_id"]), epoch, h(ep["tree_hash"]),
            h(ep["confirmed_transcript_hash"]), (),
        )  # fmt: skip
        assert to_bytes(ctx) == h(ep["group_context"])
        secrets = derive_epoch(
            cs, init_secret=init, commit_secret=h(ep["commit_secret"]),
            group_context=to_bytes(ctx), psk=h(ep["psk_secret"]),
        )  # fmt: skip
        for name in _SECRETS:
            assert getattr(secrets, name) == h(ep[name]), name
        assert cs.derive_key_pair(secrets.external_secret)[1] == h(ep["external_pub"])
        x = ep["exporter"]
        # The vector's exporter label is used as the ASCII text of its hex string.
        out = exporter(
            cs, secrets.exporter_secret, x["label"].encode(), h(x["context"]), x["length"]
        )
        assert out == h(x["secret"])
        init = secrets.init_secret


def test_key_schedule_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "key-schedule", _check, expected_run=7)
