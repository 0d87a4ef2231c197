"""Property tests: whatever is written reads back; any one-byte change of any sealed value, and any
sealed value put in another row's place, is refused and returns nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enkrypted_shell import errors
from enkrypted_shell._state.store import INSECURE_TEST_KDF, Vault

PW = b"pw"
keys = st.binary(min_size=0, max_size=64)
values = st.binary(min_size=0, max_size=512)


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vault]:
    path = tmp_path_factory.mktemp("props") / "store.sqlite"
    with Vault.create(path, PW, kdf=INSECURE_TEST_KDF) as opened:
        yield opened


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.dictionaries(keys, values, max_size=12), table=st.sampled_from(["a", "b.c", "d:e"]))
def test_records_round_trip(vault: Vault, records: dict[bytes, bytes], table: str) -> None:
    with vault.transaction():
        for key, _ in vault.items(table, "profile"):
            vault.delete(table, "profile", key)
        for key, value in records.items():
            vault.put(table, "profile", key, value)
    assert vault.items(table, "profile") == sorted(records.items())
    for key, value in records.items():
        assert vault.get(table, "profile", key) == value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values, position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_is_refused(vault: Vault, value: bytes, position: int, bit: int) -> None:
    vault.put("flip", "profile", b"k", value)
    conn = sqlite3.connect(vault.path)
    (sealed,) = conn.execute("SELECT sealed FROM records WHERE tbl='flip'").fetchone()
    i = position % len(sealed)
    damaged = sealed[:i] + bytes([sealed[i] ^ (1 << bit)]) + sealed[i + 1 :]
    with conn:
        conn.execute("UPDATE records SET sealed=? WHERE tbl='flip'", (damaged,))
    conn.close()
    with pytest.raises(errors.StoreCorruptError):
        vault.get("flip", "profile", b"k")
    with pytest.raises(errors.StoreCorruptError):
        vault.items("flip", "profile")
