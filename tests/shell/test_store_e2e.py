"""The profile store through the installed ``enkrypted`` (real wheels, argon2-cffi from the
wheelhouse): ``enkrypted id`` makes the identity with the verified crypto plugin on first use and
shows its fingerprint from the crypto contract's ``fingerprint()``."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

STORE_ENV = {"ENKRYPTED_PASSPHRASE": "pw", "ENKRYPTED_INSECURE_TEST_KDF": "1"}


def test_id_creates_the_identity_once_and_shows_its_fingerprint(shell_env):
    sh = shell_env()
    res = sh.run("id", extra_env=STORE_ENV)
    assert res.code == 2 and "no profile 'default'" in res.err  # nothing unlocked, nothing made
    assert sh.run("profile", "create", extra_env=STORE_ENV).code == 0
    first = sh.run("id", "--json", extra_env=STORE_ENV)
    assert first.code == 0, first.err
    shown = json.loads(first.out)
    assert shown["profile"] == "default" and shown["backend"] and len(shown["fingerprint"]) >= 16
    again = sh.run("id", "--json", extra_env=STORE_ENV)
    assert json.loads(again.out) == shown  # the stored identity, not a new one
    wrong = sh.run("id", extra_env={**STORE_ENV, "ENKRYPTED_PASSPHRASE": "nope"})
    assert wrong.code == 20 and "wrong passphrase" in wrong.err
