"""What the shell hands plugins of an unlocked profile, in process: each slot's ``SlotStore``
fixed to ``slot:<slot>``, the identity made once by the crypto backend (a backend mismatch is the
same usage error as ``enkrypted id``), an ``AppContext`` that never shows the identity, and the
invite link of ``enkrypted id`` (docs/hooks.md, "Invite links")."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from enkrypted_shell import errors
from enkrypted_shell._cli.profile import invite_link
from enkrypted_shell._state.store import INSECURE_TEST_KDF, PluginProfile, Profile, Vault, _kdf
from enkrypted_shell.contracts import AppContext, ProfileStore, supports

FP = "ab" * 32


@pytest.fixture(autouse=True)
def _weak_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_kdf.TEST_KDF_ENV, "1")


@pytest.fixture
def unlocked(tmp_path: Path) -> PluginProfile:
    vault = Vault.create(tmp_path / "store.sqlite", b"pw", kdf=INSECURE_TEST_KDF)
    yield PluginProfile(Profile(vault))
    vault.close()


class FakeCrypto:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.made = 0

    def new_identity(self) -> bytes:
        self.made += 1
        return bytes([self.made]) * 32


def test_each_slot_store_is_its_own_namespace_and_cannot_be_pointed_elsewhere(unlocked) -> None:
    stores = {slot: unlocked.store(slot) for slot in ("crypto", "p2p", "ui")}
    assert {s: st.namespace for s, st in stores.items()} == {
        "crypto": "slot:crypto", "p2p": "slot:p2p", "ui": "slot:ui"}
    assert all(supports(st, ProfileStore) for st in stores.values())
    stores["p2p"].put("t", b"k", b"p2p's")
    assert stores["ui"].get("t", b"k") is None and stores["crypto"].items("t") == []
    with pytest.raises(AttributeError):
        stores["ui"].namespace = "profile"  # type: ignore[misc]  # read-only
    with pytest.raises(AttributeError):
        stores["ui"].other = 1  # type: ignore[attr-defined]  # __slots__: nothing to add
    assert unlocked.profile.vault.items("t", "profile") == []


def test_the_identity_is_made_once_by_the_backend_and_a_mismatch_is_refused(unlocked) -> None:
    pyca = FakeCrypto("pyca")
    first = unlocked.identity(pyca)  # type: ignore[arg-type]
    assert unlocked.identity(pyca) == first and pyca.made == 1  # stored, not made again
    assert unlocked.profile.identity() == ("pyca", first)
    nacl = FakeCrypto("nacl")
    with pytest.raises(errors.ShellUsageError, match="made by the pyca backend, not nacl"):
        unlocked.identity(nacl)  # type: ignore[arg-type]
    assert nacl.made == 0 and unlocked.profile.identity() == ("pyca", first)


def test_the_context_never_shows_the_identity(tmp_path: Path) -> None:
    secret = bytes(range(32))
    context = AppContext(tmp_path, identity=secret)
    assert secret.hex() not in repr(context) and "identity" not in repr(context)
    assert getattr(context, "identity", None) == secret
    assert dataclasses.replace(context).identity == secret
    assert AppContext(tmp_path).identity is None and AppContext(tmp_path).store is None


def test_invite_link_format() -> None:
    assert invite_link(FP) == f"enkrypted://peer/{FP}"
    assert invite_link(FP, "alice-1") == f"enkrypted://peer/{FP}?id=alice-1"
    assert invite_link(FP, "my peer_2") == f"enkrypted://peer/{FP}?id=my%20peer_2"


@pytest.mark.parametrize("peer_id", ["", "-x", "a--b", "a/b", "a?b", "é", "a" * 65, "x&id=y"])
def test_invite_link_refuses_a_peer_id_peerjs_would_refuse(peer_id: str) -> None:
    with pytest.raises(errors.ShellUsageError, match="bad peer id"):
        invite_link(FP, peer_id)


@pytest.mark.parametrize("fingerprint", ["", "AB" * 32, "ab:cd" * 8, "ab" * 65, "zz" * 32])
def test_invite_link_refuses_a_fingerprint_that_is_not_lowercase_hex(fingerprint: str) -> None:
    with pytest.raises(errors.ShellUsageError, match="not lowercase hex"):
        invite_link(fingerprint)
