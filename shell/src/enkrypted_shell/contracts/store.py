"""The profile store as plugins see it: contract ``store`` 1.0 (docs/hooks.md §4, "The store").

The shell owns one encrypted, crash-safe database per profile (docs/adr/0010-profile-store.md) and
hands each slot's service hook ``AppContext.store``: a :class:`ProfileStore` scoped to that slot's
own namespace (``slot:<slot>``), or ``None`` when no profile is unlocked in this process.  Every
value is sealed with AES-256-GCM bound to its table, namespace and key; each call is one
transaction.  A plugin feature-detects it, so it keeps loading on shells that predate it::

    store = getattr(context, "store", None)
    if store is not None and supports(store, ProfileStore):
        store.put("sessions", peer_id.encode(), session.export_state())

Errors: ``enkrypted_shell.errors.StoreCorruptError`` for a record that fails authentication (one
opaque error, nothing returned), ``StoreBusyError`` when another process holds the write lock,
``ShellUsageError`` for a table name, key or value outside the bounds (key 1 KiB, value 4 MiB).
"""

from __future__ import annotations

__all__ = ["STORE_CONTRACT", "ProfileStore"]

from typing import Final, Protocol, runtime_checkable

STORE_CONTRACT: Final = "1.0"
"""Version of :class:`ProfileStore`; a MINOR only adds members (feature-detect them)."""


@runtime_checkable
class ProfileStore(Protocol):
    """One slot's namespace in the unlocked profile store (contract ``store`` 1.0)."""

    @property
    def namespace(self) -> str:
        """``slot:<slot>``: the only namespace this object reads or writes."""
        ...

    def get(self, table: str, key: bytes) -> bytes | None:
        """The value at ``key`` in ``table`` (a name ``[a-z][a-z0-9._:-]{0,63}``), or ``None``."""
        ...

    def put(self, table: str, key: bytes, value: bytes) -> None:
        """Set ``key`` to ``value``, durably, in one transaction (committed when it returns)."""
        ...

    def delete(self, table: str, key: bytes) -> bool:
        """Remove ``key``; whether it was there."""
        ...

    def items(self, table: str) -> list[tuple[bytes, bytes]]:
        """Every ``(key, value)`` of ``table``, sorted by key."""
        ...

    def append(self, stream: bytes, value: bytes) -> int:
        """Append ``value`` to the ordered log ``stream``; its sequence number (1, 2, ...)."""
        ...

    def read(self, stream: bytes, *, after: int = 0, limit: int | None = None) -> list[tuple[int, bytes]]:
        """Entries of ``stream`` with a sequence number above ``after``, oldest first (at most
        ``limit``, and never more than 10,000)."""
        ...
