"""The encrypted, crash-safe profile store (docs/adr/0010-profile-store.md).

Private to the shell: plugins reach it only through ``AppContext.store`` (one namespace per slot).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_KDF",
    "INSECURE_TEST_KDF",
    "STORE_LIMITS",
    "TEST_KDF_ENV",
    "Contact",
    "HistoryEntry",
    "KdfParams",
    "PluginProfile",
    "Profile",
    "ReceivedFile",
    "SlotStore",
    "StoreLimits",
    "Vault",
    "delete_profile",
    "profile_dir",
    "profile_names",
    "store_path",
]

from ._kdf import DEFAULT_KDF, INSECURE_TEST_KDF, TEST_KDF_ENV, KdfParams
from ._profile import (
    Contact,
    HistoryEntry,
    PluginProfile,
    Profile,
    ReceivedFile,
    SlotStore,
    delete_profile,
    profile_dir,
    profile_names,
    store_path,
)
from ._vault import STORE_LIMITS, StoreLimits, Vault
