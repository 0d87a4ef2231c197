"""RFC 9420 vectors: welcome.json (§12.4.3.1 steps without a ratchet tree)."""

from __future__ import annotations

from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.mls._envelopes import MLSMessage, Welcome
from enkrypted_crypto.mls._messages import KeyPackage, from_bytes, to_bytes
from enkrypted_crypto.mls._schedule import derive_epoch
from enkrypted_crypto.mls._suite import suite
from enkrypted_crypto.mls._welcome import decrypt_welcome


def _no_psk(psk: object) -> bytes:
    raise AssertionError("welcome vectors carry no PSKs")


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    kp = from_bytes(h(e["key_package"]), MLSMessage.decode).body
    welcome = from_bytes(h(e["welcome"]), MLSMessage.decode).body
    assert isinstance(kp, KeyPackage) and isinstance(welcome, Welcome)
    gs, info, psk = decrypt_welcome(cs, welcome, kp, h(e["init_priv"]), _no_psk)
    assert cs.verify_with_label(h(e["signer_pub"]), b"GroupInfoTBS", info.tbs(), info.signature)
    secrets = derive_epoch(
        cs, init_secret=None, commit_secret=b"", group_context=to_bytes(info.group_context),
        psk=psk, joiner_secret=gs.joiner_secret,
    )  # fmt: skip
    tag = cs.mac(secrets.confirmation_key, info.group_context.confirmed_transcript_hash)
    assert tag == info.confirmation_tag


def test_welcome_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "welcome", _check, expected_run=7)
