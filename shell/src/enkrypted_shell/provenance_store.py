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
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from .errors import ShellUsageError

FORMAT = 1
MAX_RECORD_BYTES = 16 * 1024 * 1024


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
        return self.root / f"{canonicalize_name(distribution)}.json"

    def get(self, distribution: str) -> StoredProvenance | None:
        path = self._path(distribution)
        try:
            if path.stat().st_size > MAX_RECORD_BYTES:
                raise ShellUsageError(f"{path}: provenance record too large")
            doc = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ShellUsageError(f"{path}: unreadable provenance record ({exc})") from exc
        if not isinstance(doc, dict) or doc.pop("format", None) != FORMAT:
            raise ShellUsageError(f"{path}: unknown provenance record format")
        try:
            return StoredProvenance(**doc)
        except TypeError as exc:
            raise ShellUsageError(f"{path}: malformed provenance record ({exc})") from exc

    def put(self, record: StoredProvenance) -> Path:
        """Write atomically (temp file + rename) so a crash never leaves half a record."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(record.distribution)
        data = json.dumps({"format": FORMAT, **asdict(record)}, indent=2, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return path

    def all(self) -> list[StoredProvenance]:
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.glob("*.json")):
            record = self.get(path.stem)
            if record is not None:
                out.append(record)
        return out
