"""The encrypted profile database: SQLite (WAL) with every record sealed by AES-256-GCM.

Key hierarchy (docs/adr/0010-profile-store.md)::

    passphrase --Argon2id(salt, t, m, p)--> KEK --AES-GCM wraps--> DEK (random, 32 B, never changes)
    DEK --HKDF--> seal key (AES-256-GCM, per-record random nonce)  and  index key (HMAC-SHA256)

The key slot (``meta.keyslot``: parameters, salt, wrapped DEK) is **one row**, so ``passwd`` and the
Argon2 upgrade are single-row transactions: after a kill -9 the old or the new slot is there, whole.
Every record's associated data binds the format, its table, namespace and key id (records) or
namespace, stream id and sequence number (logs): a row swapped, moved to another key or namespace,
or edited is refused with one opaque :class:`StoreCorruptError`.  Record keys and stream names are
stored as keyed HMACs, never in clear.  Not detected: a row rolled back to an older sealed value of
the same slot, or the newest rows of a log deleted (docs/trust-model.md, "The profile store").
"""

from __future__ import annotations

__all__ = ["STORE_LIMITS", "StoreLimits", "Vault"]

import contextlib
import hashlib
import hmac
import json
import os
import re
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...errors import (
    HomeError,
    ShellUsageError,
    StoreBusyError,
    StoreCorruptError,
    WrongPassphraseError,
)
from ._kdf import KdfParams, derive_key, target_kdf, warn_if_weak

FORMAT: Final = b"enkrypted-store/1"
APPLICATION_ID: Final = 0x456E4B31  # "EnK1", SQLite header offset 68
SCHEMA_VERSION: Final = 1
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_NAME = re.compile(r"[a-z][a-z0-9._:-]{0,63}")
_CHECK: Final = b"enkrypted-store check value"

_SCHEMA: Final = (
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE records(tbl TEXT NOT NULL, ns TEXT NOT NULL, kid BLOB NOT NULL,"
    " sealed BLOB NOT NULL, PRIMARY KEY(tbl, ns, kid)) WITHOUT ROWID",
    "CREATE TABLE log(ns TEXT NOT NULL, stream BLOB NOT NULL, seq INTEGER NOT NULL,"
    " sealed BLOB NOT NULL, PRIMARY KEY(ns, stream, seq)) WITHOUT ROWID",
)


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """Bounds on what the store accepts and returns (STYLE.md §2)."""

    key_bytes: int = 1024
    """A record key or a log stream name."""
    value_bytes: int = 4 * 1024 * 1024
    """One record or log entry, before sealing (an MLS group state fits)."""
    passphrase_bytes: int = 1024
    """A passphrase, from any source."""
    log_page: int = 10_000
    """Log entries returned by one read."""
    busy_timeout_s: float = 10.0
    """How long a writer waits for another process's write lock before :class:`StoreBusyError`."""


STORE_LIMITS: Final = StoreLimits()


def _frame(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _corrupt() -> StoreCorruptError:
    # one opaque message for any authentication failure (STYLE.md §4)
    return StoreCorruptError(
        "a record in the profile store failed authentication; nothing was returned",
        fix="restore the profile from a backup (docs/operations.md, 'Profiles')",
    )


class _Keys:
    """The subkeys of the data-encryption key."""

    def __init__(self, dek: bytes) -> None:
        okm = HKDF(hashes.SHA256(), 64, salt=None, info=FORMAT + b" subkeys").derive(dek)
        self.aead = AESGCM(okm[:32])
        self.index = okm[32:]

    def kid(self, label: bytes, *parts: bytes) -> bytes:
        return hmac.new(self.index, _frame(label, *parts), hashlib.sha256).digest()

    def seal(self, plaintext: bytes, ad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self.aead.encrypt(nonce, plaintext, FORMAT + ad)

    def open(self, sealed: bytes, ad: bytes) -> bytes:
        if len(sealed) < 28:
            raise _corrupt()
        try:
            return self.aead.decrypt(sealed[:12], sealed[12:], FORMAT + ad)
        except InvalidTag:
            raise _corrupt() from None


def _keyslot_ad(params: KdfParams) -> bytes:
    return FORMAT + b" keyslot " + json.dumps(params.to_json(), sort_keys=True).encode()


def _wrap(passphrase: bytes, dek: bytes, params: KdfParams) -> bytes:
    warn_if_weak(params)
    kek = derive_key(passphrase, params)
    nonce = os.urandom(12)
    wrapped = AESGCM(kek).encrypt(nonce, dek, _keyslot_ad(params))
    return json.dumps({"kdf": params.to_json(), "nonce": nonce.hex(), "wrapped": wrapped.hex()},
                      sort_keys=True).encode()


def _unwrap(passphrase: bytes, slot: bytes) -> tuple[bytes, KdfParams]:
    try:
        doc = json.loads(slot)
        params = KdfParams.from_json(doc["kdf"])
        nonce, wrapped = bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["wrapped"])
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreCorruptError("the profile store's key slot is malformed") from exc
    try:
        dek = AESGCM(derive_key(passphrase, params)).decrypt(nonce, wrapped, _keyslot_ad(params))
    except (InvalidTag, ValueError):
        raise WrongPassphraseError(
            "wrong passphrase for this profile; nothing was changed",
            fix="try again, or pick the profile with --profile NAME (enkrypted profile list)",
        ) from None
    return dek, params


def check_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ShellUsageError(f"bad store {kind} name {name!r} (want [a-z][a-z0-9._:-]{{0,63}})")
    return name


def _check_file(path: Path) -> None:
    """Refuse a file that is not one of our databases before SQLite touches it."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except FileNotFoundError:
        raise ShellUsageError(
            f"no profile store at {path}", fix="create it: enkrypted profile create"
        ) from None
    except OSError as exc:
        raise HomeError(f"cannot read the profile store {path}: {exc.strerror}") from exc
    if len(head) < 100:
        raise StoreCorruptError(f"the profile store {path} is truncated ({len(head)} bytes)")
    if head[:16] != _SQLITE_MAGIC or struct.unpack(">I", head[68:72])[0] != APPLICATION_ID:
        raise StoreCorruptError(f"{path} is not an Enkrypted profile store (a foreign file)")


def _connect(path: Path, limits: StoreLimits) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=limits.busy_timeout_s, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a returned commit survives power loss too
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA trusted_schema=OFF")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


class Vault:
    """An unlocked profile database.  Every write method is one transaction unless it runs inside
    :meth:`transaction`, which makes the writes in its block one transaction."""

    def __init__(self, conn: sqlite3.Connection, keys: _Keys, dek: bytes, path: Path,
                 params: KdfParams, limits: StoreLimits) -> None:
        self._conn, self._keys, self._dek = conn, keys, dek
        self.path, self.kdf, self.limits = path, params, limits
        self._depth = 0

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, passphrase: bytes, *, kdf: KdfParams | None = None,
               limits: StoreLimits = STORE_LIMITS) -> Vault:
        """A new store at ``path`` (which must not exist), built beside it and linked into place,
        so a crash leaves either no store or a whole one."""
        params = kdf or target_kdf()
        params = KdfParams(params.time_cost, params.memory_kib, params.lanes, os.urandom(16))
        dek = os.urandom(32)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("BEGIN")
            for statement in _SCHEMA:
                conn.execute(statement)
            keys = _Keys(dek)
            conn.executemany("INSERT INTO meta VALUES(?, ?)", [
                ("format", FORMAT),
                ("keyslot", _wrap(passphrase, dek, params)),
                ("check", keys.seal(_CHECK, _frame(b"check"))),
            ])
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.chmod(tmp, 0o600)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # never replaces an existing store
        except FileExistsError:
            raise ShellUsageError(f"a profile store already exists at {path}") from None
        finally:
            tmp.unlink()
        from ..files import fsync_dir

        fsync_dir(path.parent)
        return cls.open(path, passphrase, limits=limits, upgrade_to=None)

    @classmethod
    def open(cls, path: Path, passphrase: bytes, *, limits: StoreLimits = STORE_LIMITS,
             upgrade_to: KdfParams | bool | None = True) -> Vault:
        """Unlock the store; :class:`WrongPassphraseError` (nothing written) or
        :class:`StoreCorruptError`.  Weaker Argon2 parameters than ``upgrade_to`` (default: the
        current target) are replaced by them, in one single-row transaction."""
        _check_file(path)
        try:
            conn = _connect(path, limits)
        except sqlite3.Error as exc:
            raise _db_error(path, exc) from exc
        try:
            vault = cls._unlock(conn, path, passphrase, limits)
        except BaseException:
            conn.close()
            raise
        target = target_kdf() if upgrade_to is True else upgrade_to or None
        if target is not None and vault.kdf.weaker_than(target):
            # busy or read-only: keep the old slot, upgrade at a later unlock
            with contextlib.suppress(StoreBusyError, HomeError):
                vault.change_passphrase(passphrase, kdf=target)
        return vault

    @classmethod
    def _unlock(cls, conn: sqlite3.Connection, path: Path, passphrase: bytes,
                limits: StoreLimits) -> Vault:
        try:
            (check,) = conn.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise StoreCorruptError(f"the profile store {path} is damaged ({check})")
            meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise _db_error(path, exc) from exc
        if meta.get("format") != FORMAT or not {"keyslot", "check"} <= meta.keys():
            raise StoreCorruptError(f"{path} is not an Enkrypted profile store (unknown format)")
        if len(passphrase) > limits.passphrase_bytes:
            raise ShellUsageError(f"passphrase longer than {limits.passphrase_bytes} bytes")
        dek, params = _unwrap(passphrase, meta["keyslot"])
        keys = _Keys(dek)
        if keys.open(meta["check"], _frame(b"check")) != _CHECK:
            raise _corrupt()
        return cls(conn, keys, dek, path, params, limits)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """The writes in this block commit together, or not at all."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._sql("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self._sql("COMMIT")

    def _sql(self, statement: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(statement, args)
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # misuse of the connection: a bug here, not a damaged store
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusyError(
                    f"another process is writing the profile store {self.path}",
                    fix="close the other enkrypted process, or retry",
                ) from exc
            raise _db_error(self.path, exc) from exc
        except sqlite3.DatabaseError as exc:  # malformed pages; ProgrammingError stays a bug
            raise _db_error(self.path, exc) from exc

    # -- passphrase -----------------------------------------------------------------------------

    def change_passphrase(self, new: bytes, *, kdf: KdfParams | None = None) -> None:
        """Re-wrap the data key under ``new`` (and ``kdf``): one row, one transaction."""
        if len(new) > self.limits.passphrase_bytes:
            raise ShellUsageError(f"passphrase longer than {self.limits.passphrase_bytes} bytes")
        base = kdf or target_kdf()
        params = KdfParams(base.time_cost, base.memory_kib, base.lanes, os.urandom(16))
        slot = _wrap(new, self._dek, params)
        with self.transaction():
            self._sql("UPDATE meta SET value=? WHERE name='keyslot'", (slot,))
        self.kdf = params

    # -- records: (table, namespace, key) -> bytes ----------------------------------------------

    def _record_kid(self, table: str, ns: str, key: bytes) -> bytes:
        check_name("table", table)
        check_name("namespace", ns)
        if len(key) > self.limits.key_bytes:
            raise ShellUsageError(f"store key longer than {self.limits.key_bytes} bytes")
        return self._keys.kid(b"record", table.encode(), ns.encode(), key)

    def put(self, table: str, ns: str, key: bytes, value: bytes) -> None:
        kid = self._record_kid(table, ns, key)
        if len(value) > self.limits.value_bytes:
            raise ShellUsageError(f"store value larger than {self.limits.value_bytes} bytes")
        sealed = self._keys.seal(_frame(key, value), _frame(b"record", table.encode(), ns.encode(), kid))
        with self.transaction():
            self._sql("INSERT OR REPLACE INTO records VALUES(?, ?, ?, ?)", (table, ns, kid, sealed))

    def get(self, table: str, ns: str, key: bytes) -> bytes | None:
        kid = self._record_kid(table, ns, key)
        row = self._sql(
            "SELECT sealed FROM records WHERE tbl=? AND ns=? AND kid=?", (table, ns, kid)
        ).fetchone()
        if row is None:
            return None
        stored, value = self._open_record(table, ns, kid, row[0])
        if stored != key:
            raise _corrupt()
        return value

    def delete(self, table: str, ns: str, key: bytes) -> bool:
        kid = self._record_kid(table, ns, key)
        with self.transaction():
            cur = self._sql("DELETE FROM records WHERE tbl=? AND ns=? AND kid=?", (table, ns, kid))
        return cur.rowcount > 0

    def items(self, table: str, ns: str) -> list[tuple[bytes, bytes]]:
        """Every record of ``table`` in ``ns``, sorted by key; all authenticated or none returned."""
        check_name("table", table)
        check_name("namespace", ns)
        rows = self._sql("SELECT kid, sealed FROM records WHERE tbl=? AND ns=?", (table, ns))
        out = []
        for kid, sealed in rows.fetchall():
            key, value = self._open_record(table, ns, kid, sealed)
            if self._keys.kid(b"record", table.encode(), ns.encode(), key) != kid:
                raise _corrupt()
            out.append((key, value))
        return sorted(out)

    def _open_record(self, table: str, ns: str, kid: bytes, sealed: bytes) -> tuple[bytes, bytes]:
        plain = self._keys.open(sealed, _frame(b"record", table.encode(), ns.encode(), kid))
        (klen,) = struct.unpack(">I", plain[:4])
        key = plain[4 : 4 + klen]
        (vlen,) = struct.unpack(">I", plain[4 + klen : 8 + klen])
        return key, plain[8 + klen : 8 + klen + vlen]

    # -- logs: append-only, ordered (history) ------------------------------------------------------

    def _stream_id(self, ns: str, stream: bytes) -> bytes:
        check_name("namespace", ns)
        if len(stream) > self.limits.key_bytes:
            raise ShellUsageError(f"store stream name longer than {self.limits.key_bytes} bytes")
        return self._keys.kid(b"log", ns.encode(), stream)

    def append(self, ns: str, stream: bytes, value: bytes) -> int:
        """Add ``value`` after the last entry of ``stream``; its sequence number (from 1)."""
        sid = self._stream_id(ns, stream)
        if len(value) > self.limits.value_bytes:
            raise ShellUsageError(f"store value larger than {self.limits.value_bytes} bytes")
        with self.transaction():
            (last,) = self._sql(
                "SELECT COALESCE(MAX(seq), 0) FROM log WHERE ns=? AND stream=?", (ns, sid)
            ).fetchone()
            seq = int(last) + 1
            sealed = self._keys.seal(value, _frame(b"log", ns.encode(), sid, struct.pack(">Q", seq)))
            self._sql("INSERT INTO log VALUES(?, ?, ?, ?)", (ns, sid, seq, sealed))
        return seq

    def replace_entry(self, ns: str, stream: bytes, seq: int, value: bytes) -> None:
        """Rewrite entry ``seq`` (e.g. a delivery receipt arrived)."""
        sid = self._stream_id(ns, stream)
        sealed = self._keys.seal(value, _frame(b"log", ns.encode(), sid, struct.pack(">Q", seq)))
        with self.transaction():
            cur = self._sql(
                "UPDATE log SET sealed=? WHERE ns=? AND stream=? AND seq=?", (sealed, ns, sid, seq)
            )
        if cur.rowcount != 1:
            raise ShellUsageError(f"no log entry {seq}")

    def read_log(self, ns: str, stream: bytes, *, after: int = 0,
                 limit: int | None = None) -> list[tuple[int, bytes]]:
        sid = self._stream_id(ns, stream)
        page = min(limit or self.limits.log_page, self.limits.log_page)
        rows = self._sql(
            "SELECT seq, sealed FROM log WHERE ns=? AND stream=? AND seq>? ORDER BY seq LIMIT ?",
            (ns, sid, after, page),
        ).fetchall()
        return [
            (seq, self._keys.open(sealed, _frame(b"log", ns.encode(), sid, struct.pack(">Q", seq))))
            for seq, sealed in rows
        ]

    def drop_log(self, ns: str, stream: bytes) -> int:
        sid = self._stream_id(ns, stream)
        with self.transaction():
            cur = self._sql("DELETE FROM log WHERE ns=? AND stream=?", (ns, sid))
        return cur.rowcount


def _db_error(path: Path, exc: sqlite3.Error) -> StoreCorruptError | StoreBusyError | HomeError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreBusyError(f"another process holds the profile store {path}: {text}")
    if "readonly" in text or "unable to open" in text or "disk I/O" in text or "full" in text:
        return HomeError(f"cannot use the profile store {path}: {text}")
    return StoreCorruptError(
        f"the profile store {path} is damaged or not a store ({text})",
        fix="restore it from a backup, or move it aside (docs/operations.md, 'Profiles')",
    )
