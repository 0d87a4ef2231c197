"""Writes to a profile store until killed (driven by test_crash.py); prints what it committed.

    python crash_worker.py passwd STORE N change the passphrase pass-N -> pass-N+1 -> ... forever;
                                          prints N+k after the k-th commit
    python crash_worker.py hold STORE     write inside an open transaction, print "holding", wait
    python crash_worker.py history STORE  append message i with session state i (one transaction)
                                          forever; prints i after each commit
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from enkrypted_shell._state.store import INSECURE_TEST_KDF, Profile, Vault


def passphrase(n: int) -> bytes:
    return f"pass-{n}".encode()


def main(mode: str, path: Path) -> None:
    if mode == "passwd":
        current = int(sys.argv[3])
        with Vault.open(path, passphrase(current), upgrade_to=None) as vault:
            print("open", flush=True)
            while True:
                current += 1
                vault.change_passphrase(passphrase(current), kdf=INSECURE_TEST_KDF)
                print(current, flush=True)
    if mode == "hold":
        with Vault.open(path, passphrase(0), upgrade_to=None) as vault, vault.transaction():
            vault.put("t", "profile", b"k", b"uncommitted")
            print("holding", flush=True)
            time.sleep(60)
    with Vault.open(path, passphrase(0), upgrade_to=None) as vault:
        print("open", flush=True)
        profile = Profile(vault)
        i = len(profile.history("peer-1", limit=10_000))
        while True:
            i += 1
            profile.add_message("peer-1", "out", float(i), f"message {i}", "pending",
                                session_state=f"state {i}".encode())
            print(i, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
