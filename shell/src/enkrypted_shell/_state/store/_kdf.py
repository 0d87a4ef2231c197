"""The passphrase key: Argon2id parameters, stored with the key slot and upgradeable.

Defaults are the measured ones (spec/dependencies-measured.md: t=3, m=64 MiB, p=4 in ~124 ms).
Tests may lower them with ``ENKRYPTED_INSECURE_TEST_KDF=1`` (t=1, m=8 MiB, p=1); the shell says so
on stderr every time, and the weaker parameters are upgraded on the next unlock without it.
"""

from __future__ import annotations

__all__ = ["DEFAULT_KDF", "INSECURE_TEST_KDF", "TEST_KDF_ENV", "KdfParams", "derive_key", "target_kdf",
           "warn_if_weak"]

import os
import sys
from dataclasses import dataclass
from typing import Final

from ...errors import StoreCorruptError

TEST_KDF_ENV: Final = "ENKRYPTED_INSECURE_TEST_KDF"


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id (RFC 9106) time cost, memory in KiB, lanes, and the 16-byte salt."""

    time_cost: int
    memory_kib: int
    lanes: int
    salt: bytes = b""

    def __post_init__(self) -> None:
        # bounds also protect against a damaged key slot asking for 2**40 KiB
        if not (1 <= self.time_cost <= 64 and 1 <= self.lanes <= 64):
            raise StoreCorruptError("the profile store's key slot has impossible Argon2 parameters")
        if not (8 * self.lanes <= self.memory_kib <= 4 * 1024 * 1024):
            raise StoreCorruptError("the profile store's key slot has impossible Argon2 parameters")

    def weaker_than(self, other: KdfParams) -> bool:
        return (
            self.time_cost < other.time_cost
            or self.memory_kib < other.memory_kib
            or self.lanes < other.lanes
        )

    def to_json(self) -> dict[str, object]:
        return {
            "alg": "argon2id",
            "t": self.time_cost,
            "m": self.memory_kib,
            "p": self.lanes,
            "salt": self.salt.hex(),
        }

    @classmethod
    def from_json(cls, doc: object) -> KdfParams:
        if not isinstance(doc, dict) or doc.get("alg") != "argon2id":
            raise StoreCorruptError("the profile store's key slot names an unknown key derivation")
        try:
            params = cls(int(doc["t"]), int(doc["m"]), int(doc["p"]), bytes.fromhex(doc["salt"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreCorruptError("the profile store's key slot is malformed") from exc
        if len(params.salt) != 16:
            raise StoreCorruptError("the profile store's key slot is malformed")
        return params


DEFAULT_KDF: Final = KdfParams(time_cost=3, memory_kib=64 * 1024, lanes=4)
INSECURE_TEST_KDF: Final = KdfParams(time_cost=1, memory_kib=8 * 1024, lanes=1)


def target_kdf() -> KdfParams:
    """Parameters for a new key slot: the defaults, unless the test-only override is set."""
    return INSECURE_TEST_KDF if os.environ.get(TEST_KDF_ENV) == "1" else DEFAULT_KDF


def warn_if_weak(params: KdfParams) -> None:
    """Say so on stderr whenever a key slot is written with less than the defaults."""
    if params.weaker_than(DEFAULT_KDF):
        print(
            f"enkrypted: WARNING: weak passphrase hashing (t={params.time_cost}, "
            f"m={params.memory_kib} KiB, p={params.lanes}; {TEST_KDF_ENV} is for tests only)",
            file=sys.stderr,
        )


def derive_key(passphrase: bytes, params: KdfParams) -> bytes:
    """The 32-byte key-encryption key (argon2-cffi's low-level ``hash_secret_raw``)."""
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(
        passphrase,
        params.salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.lanes,
        hash_len=32,
        type=Type.ID,
    )
