"""Where the shell keeps what it verified at install time, for load-time verification.

``HOME/provenance/<canonical distribution name>.json`` (one record per installed distribution)::

    {
      "format": 1,
      "distribution": "enkrypted-p2p",
      "version": "0.1.0",
      "slot": "p2p",
      "wheel_filename": "enkrypted_p2p-0.1.0-py3-none-any.whl",
      "wheel_sha256": "<hex>",
      "index": "http://127.0.0.1:8080/simple/",
      "tuf_role": "p2p",
      "target_path": "plugins/p2p/enkrypted_p2p-0.1.0-py3-none-any.whl",
      "installed_at": "2026-11-25T12:00:00Z",
      "revoked": null,                       # or {"at": "...", "reason": "..."} after a refresh
      "provenance": { ...the PEP 740 provenance object exactly as served... }
    }

The record is *not* trusted by itself: at load time the shell re-verifies ``provenance`` with the
trust policy and compares it with the installed files.  A record marked revoked refuses the load.
"""

from __future__ import annotations

__all__ = ["StoredProvenance", "ProvenanceStore"]

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from ..errors import ShellUsageError
from ..limits import LIMITS
from .files import read_home_file, write_atomic

FORMAT = 1
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CANONICAL_NAME_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class StoredProvenance:
    distribution: str
    version: str
    slot: str
    wheel_filename: str
    wheel_sha256: str
    index: str
    tuf_role: str
    target_path: str
    installed_at: str
    provenance: dict[str, Any]
    revoked: dict[str, str] | None = None

    def provenance_bytes(self) -> bytes:
        return json.dumps(self.provenance, sort_keys=True).encode("utf-8")


class ProvenanceStore:
    """The per-profile store of install-time provenance records."""

    def __init__(self, home: Path) -> None:
        self.root = home / "provenance"

    def _path(self, distribution: str) -> Path:
        name = canonicalize_name(distribution)
        if not _CANONICAL_NAME_RE.fullmatch(name):  # e.g. "a/b": stay inside the store
            raise ShellUsageError(f"{distribution!r} is not a valid distribution name")
        return self.root / f"{name}.json"

    def get(self, distribution: str) -> StoredProvenance | None:
        if not _CANONICAL_NAME_RE.fullmatch(canonicalize_name(distribution)):
            return None  # put() never stores such a name: no record (unsigned, fail closed)
        path = self._path(distribution)
        data = read_home_file(path, limit=LIMITS.provenance_record_bytes)  # HomeError: wrong kind
        if data is None:
            return None
        try:
            doc = json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ShellUsageError(
                f"{path}: unreadable provenance record ({type(exc).__name__}: {exc})"
            ) from exc
        if not isinstance(doc, dict) or doc.pop("format", None) != FORMAT:
            raise ShellUsageError(f"{path}: unknown provenance record format")
        problem = _record_problem(doc)
        if problem is None and canonicalize_name(doc["distribution"]) != path.stem:
            problem = f"it is the record of {doc['distribution']!r}"
        if problem is not None:
            raise ShellUsageError(
                f"{path}: malformed provenance record ({problem})",
                fix="reinstall the plugin with `enkrypted plugins install NAME --index URL`",
            )
        return StoredProvenance(**doc)

    def put(self, record: StoredProvenance) -> Path:
        """Write atomically and durably (:func:`.files.write_atomic`): a crash never leaves half a
        record."""
        path = self._path(record.distribution)
        data = json.dumps({"format": FORMAT, **asdict(record)}, indent=2, sort_keys=True)
        write_atomic(path, data.encode("utf-8"))
        return path

    def names(self) -> list[str]:
        """Canonical names of the distributions with a record (no record is read)."""
        if not self.root.is_dir():
            return []
        return sorted(
            path.stem
            for path in self.root.glob("*.json")
            if _CANONICAL_NAME_RE.fullmatch(path.stem)  # not e.g. a crashed writer's .tmp-*.json
        )

    def all(self) -> list[StoredProvenance]:
        return [record for name in self.names() if (record := self.get(name)) is not None]


_STRING_FIELDS = tuple(
    f.name for f in fields(StoredProvenance) if f.name not in {"provenance", "revoked"}
)
_FIELDS = frozenset(f.name for f in fields(StoredProvenance))


def _record_problem(doc: dict[str, Any]) -> str | None:
    """Why ``doc`` (a record without ``format``) is not a :class:`StoredProvenance`, or None.

    Every field is checked: a null or missing value must never quietly skip a load-time check.
    """
    return next(_record_problems(doc), None)


def _record_problems(doc: dict[str, Any]) -> Iterator[str]:
    missing = _FIELDS - {"revoked"} - set(doc)
    unknown = set(doc) - _FIELDS
    if missing or unknown:
        yield f"missing {sorted(missing)}, unknown {sorted(unknown)} fields"
        return
    for name in _STRING_FIELDS:
        value = doc[name]
        if not isinstance(value, str) or not value:
            yield f"{name} must be a non-empty string"
            return
    if not _SHA256_RE.fullmatch(doc["wheel_sha256"]):
        yield "wheel_sha256 must be 64 lowercase hex characters"
    if not isinstance(doc["provenance"], dict):
        yield "provenance must be an object"
    revoked = doc.get("revoked")
    if revoked is not None and (
        not isinstance(revoked, dict)
        or not revoked
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in revoked.items())
    ):
        yield "revoked must be null or a non-empty object of strings"
