"""The encrypted profile store: round trips, passphrases, tampering, damaged files, concurrency.

Argon2 runs with :data:`INSECURE_TEST_KDF` here (the test-only parameters); one test checks the
defaults are the measured, strong ones and that weak slots are upgraded.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from enkrypted_shell import errors
from enkrypted_shell._state.store import (
    DEFAULT_KDF,
    INSECURE_TEST_KDF,
    Contact,
    KdfParams,
    Profile,
    SlotStore,
    StoreLimits,
    Vault,
    _kdf,
    _vault,
)

WEAK = INSECURE_TEST_KDF
PW = b"correct horse"


@pytest.fixture(autouse=True)
def _weak_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_kdf.TEST_KDF_ENV, "1")


def _new(tmp_path: Path, pw: bytes = PW) -> Vault:
    return Vault.create(tmp_path / "store.sqlite", pw, kdf=WEAK)


def _files_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_round_trip_records_and_logs(tmp_path: Path) -> None:
    with _new(tmp_path) as v:
        v.put("contacts", "profile", b"peer-1", b"alice")
        v.put("contacts", "profile", b"peer-2", b"bob")
        assert v.append("profile", b"history:peer-1", b"hello") == 1
        assert v.append("profile", b"history:peer-1", b"again") == 2
        v.replace_entry("profile", b"history:peer-1", 1, b"hello (read)")
    with Vault.open(tmp_path / "store.sqlite", PW) as v:
        assert v.get("contacts", "profile", b"peer-1") == b"alice"
        assert v.get("contacts", "profile", b"nobody") is None
        assert v.items("contacts", "profile") == [(b"peer-1", b"alice"), (b"peer-2", b"bob")]
        assert v.read_log("profile", b"history:peer-1") == [(1, b"hello (read)"), (2, b"again")]
        assert v.read_log("profile", b"history:peer-1", after=1) == [(2, b"again")]
        assert v.delete("contacts", "profile", b"peer-2") and not v.delete("contacts", "profile", b"x")
        assert v.items("contacts", "profile") == [(b"peer-1", b"alice")]


def test_nothing_is_stored_in_clear(tmp_path: Path) -> None:
    with _new(tmp_path) as v:
        v.put("contacts", "profile", b"peer-secret-id", b"Alice Secretname")
        v.append("profile", b"history:peer-secret-id", b"the secret message")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for needle in (b"peer-secret-id", b"Secretname", b"secret message", PW):
        assert needle not in raw


def test_profile_records_round_trip(tmp_path: Path) -> None:
    with _new(tmp_path) as v:
        prof = Profile(v)
        prof.set_identity("pyca", b"\x01" * 64)
        prof.save_contact(Contact("Alice", "peer-1", "ab:cd"))
        seq = prof.add_message("peer-1", "out", 1.5, "hi", "pending", session_state=b"ratchet-1")
        prof.set_receipt("peer-1", seq, "delivered")
        assert prof.identity() == ("pyca", b"\x01" * 64)
        assert prof.contact("Alice") == prof.contact("peer-1") == Contact("Alice", "peer-1", "ab:cd")
        assert prof.session("peer-1") == b"ratchet-1"
        [entry] = prof.history("peer-1")
        assert (entry.seq, entry.direction, entry.text, entry.receipt) == (1, "out", "hi", "delivered")
        prof.remove_contact(prof.contact("peer-1"))
        assert prof.contacts() == [] and prof.session("peer-1") is None and prof.history("peer-1") == []


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    with _new(tmp_path) as v:
        prof = Profile(v)
        with pytest.raises(RuntimeError), v.transaction():
            prof.save_session("peer-1", b"state-2")
            v.append("profile", b"history:peer-1", b"message")
            raise RuntimeError("crash between the two writes")
        assert prof.session("peer-1") is None
        assert v.read_log("profile", b"history:peer-1") == []


def test_wrong_passphrase_is_one_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    _new(tmp_path).close()
    before = _files_digest(tmp_path)
    with pytest.raises(errors.WrongPassphraseError) as caught:
        Vault.open(tmp_path / "store.sqlite", b"wrong")
    assert caught.value.exit_code == 20
    assert "wrong passphrase" in caught.value.message and "\n" not in caught.value.message
    assert _files_digest(tmp_path) == before


def test_passwd_rewraps_and_the_old_passphrase_stops_working(tmp_path: Path) -> None:
    with _new(tmp_path) as v:
        v.put("t", "profile", b"k", b"v")
        v.change_passphrase(b"new one", kdf=WEAK)
    with pytest.raises(errors.WrongPassphraseError):
        Vault.open(tmp_path / "store.sqlite", PW)
    with Vault.open(tmp_path / "store.sqlite", b"new one") as v:
        assert v.get("t", "profile", b"k") == b"v"


def test_defaults_are_the_measured_strong_parameters() -> None:
    assert (DEFAULT_KDF.time_cost, DEFAULT_KDF.memory_kib, DEFAULT_KDF.lanes) == (3, 65536, 4)
    assert INSECURE_TEST_KDF.weaker_than(DEFAULT_KDF)


def test_weak_argon2_parameters_are_upgraded_on_unlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _new(tmp_path) as v:
        v.put("t", "profile", b"k", b"v")
    assert "weak passphrase hashing" in capsys.readouterr().err
    stronger = KdfParams(time_cost=2, memory_kib=16 * 1024, lanes=2)
    with Vault.open(tmp_path / "store.sqlite", PW, upgrade_to=stronger) as v:
        assert (v.kdf.time_cost, v.kdf.memory_kib, v.kdf.lanes) == (2, 16384, 2)
    conn = sqlite3.connect(tmp_path / "store.sqlite")
    (slot,) = conn.execute("SELECT value FROM meta WHERE name='keyslot'").fetchone()
    conn.close()
    assert b'"t": 2' in slot and b'"m": 16384' in slot
    with Vault.open(tmp_path / "store.sqlite", PW, upgrade_to=None) as v:  # same passphrase
        assert v.get("t", "profile", b"k") == b"v" and v.kdf.time_cost == 2
    monkeypatch.delenv(_kdf.TEST_KDF_ENV)  # without the override, the target is the default
    assert _kdf.target_kdf() == DEFAULT_KDF


def _rows(path: Path, table: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        conn.close()


def _sql(path: Path, statement: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(statement, args)
    conn.close()


@pytest.fixture
def two_contacts(tmp_path: Path) -> Path:
    with _new(tmp_path) as v:
        v.put("contacts", "profile", b"peer-1", b"alice")
        v.put("contacts", "profile", b"peer-2", b"bob")
        v.append("profile", b"history:peer-1", b"one")
        v.append("profile", b"history:peer-1", b"two")
    return tmp_path / "store.sqlite"


def _assert_refused(path: Path, read: object) -> None:
    with Vault.open(path, PW) as v, pytest.raises(errors.StoreCorruptError) as caught:
        read(v)  # type: ignore[operator]
    assert caught.value.exit_code == 21
    assert "failed authentication; nothing was returned" in caught.value.message


def test_an_edited_record_is_refused(two_contacts: Path) -> None:
    (_, _, kid, sealed) = _rows(two_contacts, "records")[0]
    flipped = bytes(sealed[:-1]) + bytes([sealed[-1] ^ 1])
    _sql(two_contacts, "UPDATE records SET sealed=? WHERE kid=?", flipped, kid)
    _assert_refused(two_contacts, lambda v: v.items("contacts", "profile"))


def test_swapped_records_are_refused(two_contacts: Path) -> None:
    (a, b) = _rows(two_contacts, "records")
    _sql(two_contacts, "UPDATE records SET sealed=? WHERE kid=?", b[3], a[2])
    _assert_refused(two_contacts, lambda v: v.items("contacts", "profile"))
    _assert_refused(two_contacts, lambda v: [v.get("contacts", "profile", k) for k in (b"peer-1", b"peer-2")])


@pytest.mark.parametrize("column,value", [("tbl", "sessions"), ("ns", "slot:ui")])
def test_a_record_moved_to_another_table_or_namespace_is_refused(
    two_contacts: Path, column: str, value: str
) -> None:
    _sql(two_contacts, f"UPDATE records SET {column}=?", value)
    table, ns = ("sessions", "profile") if column == "tbl" else ("contacts", "slot:ui")
    _assert_refused(two_contacts, lambda v: v.items(table, ns))


def test_a_log_entry_moved_or_reordered_is_refused(two_contacts: Path) -> None:
    _sql(two_contacts, "UPDATE log SET seq = seq + 10")  # swap entries 1 and 2
    _sql(two_contacts, "UPDATE log SET seq = 13 - seq")
    _assert_refused(two_contacts, lambda v: v.read_log("profile", b"history:peer-1"))


def test_a_record_from_another_store_is_refused(two_contacts: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    with Vault.create(other / "store.sqlite", PW, kdf=WEAK) as v:  # same passphrase, other key
        v.put("contacts", "profile", b"peer-1", b"mallory")
    [(_, _, _, foreign)] = _rows(other / "store.sqlite", "records")
    _sql(two_contacts, "UPDATE records SET sealed=?", foreign)
    _assert_refused(two_contacts, lambda v: v.get("contacts", "profile", b"peer-1"))


def test_a_swapped_check_value_is_refused(two_contacts: Path) -> None:
    _sql(two_contacts, "UPDATE meta SET value=zeroblob(40) WHERE name='check'")
    with pytest.raises(errors.StoreCorruptError):
        Vault.open(two_contacts, PW)


@pytest.mark.parametrize("size", [0, 50, 4096, 8192])
def test_a_truncated_store_is_a_clear_error(two_contacts: Path, size: int) -> None:
    with Vault.open(two_contacts, PW) as v:  # enough rows to span several pages
        for i in range(300):
            v.put("files", "profile", str(i).encode(), b"x" * 200)
    whole = two_contacts.stat().st_size
    assert whole > 3 * 4096
    with open(two_contacts, "r+b") as fh:
        fh.truncate(size)
    with pytest.raises(errors.StoreCorruptError) as caught, Vault.open(two_contacts, PW) as v:
        v.items("files", "profile")
    assert caught.value.exit_code == 21 and "\n" not in caught.value.message


@pytest.mark.parametrize(
    "content",
    [b"not a database at all" * 10, "sqlite"],
    ids=["random-bytes", "another-sqlite-db"],
)
def test_a_foreign_file_is_a_clear_error_and_untouched(tmp_path: Path, content: object) -> None:
    path = tmp_path / "store.sqlite"
    if content == "sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t(x)")
        conn.commit()
        conn.close()
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    before = _files_digest(tmp_path)
    with pytest.raises(errors.StoreCorruptError, match="not an Enkrypted profile store"):
        Vault.open(path, PW)
    assert _files_digest(tmp_path) == before


def test_create_never_replaces_a_store(two_contacts: Path) -> None:
    with pytest.raises(errors.ShellUsageError, match="already exists"):
        Vault.create(two_contacts, b"other", kdf=WEAK)
    with Vault.open(two_contacts, PW) as v:
        assert v.get("contacts", "profile", b"peer-1") == b"alice"
    assert [p.name for p in two_contacts.parent.iterdir() if p.name.startswith(".")] == []


def test_sizes_and_names_are_bounded(tmp_path: Path) -> None:
    limits = StoreLimits(key_bytes=8, value_bytes=16, log_page=2)
    Vault.create(tmp_path / "store.sqlite", PW, kdf=WEAK).close()
    with Vault.open(tmp_path / "store.sqlite", PW, limits=limits) as v:
        for bad in (
            lambda: v.put("t", "profile", b"123456789", b""),
            lambda: v.put("t", "profile", b"k", b"x" * 17),
            lambda: v.append("profile", b"s", b"x" * 17),
            lambda: v.put("Bad Table", "profile", b"k", b""),
            lambda: v.put("t", "../x", b"k", b""),
        ):
            with pytest.raises(errors.ShellUsageError):
                bad()
        for _ in range(5):
            v.append("profile", b"s", b"x")
        assert [s for s, _ in v.read_log("profile", b"s", limit=100)] == [1, 2]
    with pytest.raises(errors.ShellUsageError, match="passphrase longer"):
        Vault.open(tmp_path / "store.sqlite", b"x" * 1025)


def test_each_slot_sees_only_its_own_namespace(tmp_path: Path) -> None:
    with _new(tmp_path) as v:
        ui, p2p = SlotStore(v, "ui"), SlotStore(v, "p2p")
        ui.put("prefs", b"theme", b"dark")
        assert ui.append(b"drafts", b"hello") == 1
        assert p2p.get("prefs", b"theme") is None and p2p.items("prefs") == []
        assert p2p.read(b"drafts") == []
        assert ui.items("prefs") == [(b"theme", b"dark")] and ui.read(b"drafts") == [(1, b"hello")]
        Profile(v).save_contact(Contact("Alice", "peer-1", ""))
        assert ui.items("contacts") == []  # the shell's records are not in any slot's namespace


def test_two_openers_share_the_store(tmp_path: Path) -> None:
    """WAL: a reader sees every commit of another connection; a writer waits for the other's
    write lock, and gives up with StoreBusyError (exit 22) past its wait, nothing half-written."""
    _new(tmp_path).close()
    path = tmp_path / "store.sqlite"
    a = Vault.open(path, PW)
    b = Vault.open(path, PW, limits=StoreLimits(busy_timeout_s=0.2))
    try:
        a.put("t", "profile", b"k", b"from a")
        assert b.get("t", "profile", b"k") == b"from a"
        with a.transaction():
            a.put("t", "profile", b"k", b"a's uncommitted write")
            assert b.get("t", "profile", b"k") == b"from a"  # readers are not blocked
            started = time.monotonic()
            with pytest.raises(errors.StoreBusyError) as caught:
                b.put("t", "profile", b"k2", b"from b")
            assert caught.value.exit_code == 22 and time.monotonic() - started >= 0.15
        assert b.get("t", "profile", b"k") == b"a's uncommitted write"
        assert b.get("t", "profile", b"k2") is None
        # a writer that waits long enough gets in after the other commits
        done = threading.Event()
        with a.transaction():
            a.put("t", "profile", b"k3", b"a")

            def wait_and_write() -> None:
                with Vault.open(path, PW) as waiter:
                    waiter.put("t", "profile", b"k3", b"waiter")
                done.set()

            thread = threading.Thread(target=wait_and_write)
            thread.start()
            time.sleep(0.2)
            assert not done.is_set()
        thread.join(5)
        assert done.is_set() and a.get("t", "profile", b"k3") == b"waiter"
        # passwd on one connection: the other keeps working (the data key did not change)
        a.change_passphrase(b"new", kdf=WEAK)
        b.put("t", "profile", b"after", b"passwd")
        assert a.get("t", "profile", b"after") == b"passwd"
    finally:
        a.close()
        b.close()
    with pytest.raises(errors.WrongPassphraseError):
        Vault.open(path, PW)


def test_the_slot_store_implements_the_published_store_contract(tmp_path: Path) -> None:
    from enkrypted_shell import contracts

    assert contracts.STORE_CONTRACT == "1.0"
    assert contracts.AppContext(home=tmp_path).store is None  # existing callers unchanged
    with _new(tmp_path) as v:
        slot = SlotStore(v, "ui")
        assert contracts.implementation_problems(slot, contracts.ProfileStore) == []
        assert contracts.supports(slot, contracts.ProfileStore)
        context = contracts.AppContext(home=tmp_path, store=slot)
        assert context.store is slot and slot.namespace == "slot:ui"



def test_an_upgrade_that_cannot_write_leaves_the_store_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-only media or another writer: the unlock succeeds, the upgrade waits for later."""
    with _new(tmp_path) as v:
        v.put("t", "profile", b"k", b"v")

    def cannot_write(self: Vault, new: bytes, *, kdf: KdfParams | None = None) -> None:
        raise _vault._db_error(self.path, sqlite3.OperationalError("attempt to write a readonly database"))

    monkeypatch.setattr(Vault, "change_passphrase", cannot_write)
    stronger = KdfParams(time_cost=2, memory_kib=16 * 1024, lanes=1)
    with Vault.open(tmp_path / "store.sqlite", PW, upgrade_to=stronger) as v:
        assert v.get("t", "profile", b"k") == b"v" and v.kdf.time_cost == 1
    err = _vault._db_error(tmp_path, sqlite3.OperationalError("attempt to write a readonly database"))
    assert isinstance(err, errors.HomeError) and err.exit_code == 2
