"""File transfers as the files screen shows them (pure, no Textual, no I/O).

:class:`FileBook` folds the p2p 2.1 file events (:class:`FileOffered`, :class:`FileProgress`,
:class:`FileCompleted`, :class:`FileFailed`) and the ui's own sends into one bounded table of
:class:`Transfer` rows: ``offered`` (incoming, waiting for the user), ``waiting`` (outgoing, the
peer has not accepted yet), ``active`` (bytes / total / rate / ETA), ``done`` (the receiver
verified the SHA-256) or ``failed`` (one-line reason).  Each row has a small serial number
(``key``) the screen uses for widget ids: transfer ids come from the service and are not
trusted to be valid identifiers.
"""

from __future__ import annotations

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_STORED_SHOWN",
    "MAX_TRANSFERS",
    "FileBook",
    "Transfer",
    "eta_text",
    "file_line",
    "human_size",
    "protection",
]

from dataclasses import dataclass
from typing import Final, Literal

from enkrypted_shell.contracts import (
    FileCompleted,
    FileFailed,
    FileOffered,
    FileProgress,
    StoredFile,
)

State = Literal["offered", "waiting", "active", "done", "failed"]
FileEvent = FileOffered | FileProgress | FileCompleted | FileFailed
MAX_TRANSFERS: Final = 200
"""Rows kept; the oldest finished ones go first."""
MAX_STORED_SHOWN: Final = 500
MAX_NAME_CHARS: Final = 120
MAX_REASON_CHARS: Final = 200
FINISHED: Final = ("done", "failed")


@dataclass(slots=True)
class Transfer:
    """One transfer, either direction."""

    key: int
    peer_id: str
    transfer_id: str
    outgoing: bool
    name: str = ""
    size: int = 0
    fast: bool = False
    state: State = "waiting"
    bytes: int = 0
    rate: float = 0.0
    eta: float | None = None
    sha256: str = ""
    reason: str = ""

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        return min(1.0, self.bytes / self.size) if self.size > 0 else 0.0

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def human_size(n: float) -> str:
    """``3.0 MiB``: binary units, one decimal above bytes."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def eta_text(eta: float | None) -> str:
    if eta is None or eta < 0:
        return "ETA ?"
    seconds = int(min(eta, 99 * 3600 + 3599))
    hours, rest = divmod(seconds, 3600)
    return (
        f"ETA {hours}:{rest // 60:02d}:{rest % 60:02d}"
        if hours
        else f"ETA {rest // 60}:{rest % 60:02d}"
    )


def protection(fast: bool) -> str:
    return "FAST: reduced protection" if fast else "standard protection"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line, whatever the service sent
    return text if len(text) <= limit else text[: limit - 1] + "…"


def file_line(t: Transfer, who: str = "the peer") -> str:
    """The transfer as one conversation/notice line: name, size, protection, state."""
    arrow = "sending" if t.outgoing else "receiving"
    what = f"{t.name or t.transfer_id} ({human_size(t.size)}, {protection(t.fast)})"
    head = f"file {what}"
    if t.state == "offered":
        return f"{who} offers {what}: F4 to accept or reject"
    if t.state == "waiting":
        return f"{head} offered, waiting for the peer"
    if t.state == "done":
        who = "the peer" if t.outgoing else "we"
        return f"{head} ✓ {who} verified sha256 {t.sha256[:16]}…"
    if t.state == "failed":
        return f"{head} {arrow} failed: {t.reason}"
    return f"{head} {arrow}"


class FileBook:
    """Every transfer of this run, bounded; the received files from the service's store."""

    def __init__(self, limit: int = MAX_TRANSFERS) -> None:
        self.limit = limit
        self.rows: dict[tuple[str, str], Transfer] = {}
        self.stored: list[StoredFile] = []
        self._serial = 0

    def get(self, peer_id: str, transfer_id: str) -> Transfer | None:
        return self.rows.get((peer_id, transfer_id))

    def by_key(self, key: int) -> Transfer | None:
        return next((t for t in self.rows.values() if t.key == key), None)

    def for_peer(self, peer_id: str | None) -> list[Transfer]:
        """``peer_id``'s transfers (all peers' if ``None``), newest first."""
        rows = [t for t in self.rows.values() if peer_id is None or t.peer_id == peer_id]
        return rows[::-1]

    def offers(self) -> list[Transfer]:
        return [t for t in self.rows.values() if t.state == "offered"]

    def _row(self, peer_id: str, transfer_id: str, outgoing: bool) -> Transfer:
        row = self.rows.get((peer_id, transfer_id))
        if row is not None:
            return row
        if len(self.rows) >= self.limit:
            old = next((k for k, t in self.rows.items() if t.finished), None)
            if old is None:
                raise OverflowError(f"at most {self.limit} transfers at once")
            del self.rows[old]
        self._serial += 1
        row = Transfer(self._serial, peer_id, transfer_id, outgoing)
        self.rows[(peer_id, transfer_id)] = row
        return row

    def sent(self, peer_id: str, transfer_id: str, name: str, size: int, fast: bool) -> Transfer:
        """We offered a file (``send_file`` returned ``transfer_id``); events may have come first."""
        row = self._row(peer_id, transfer_id, True)
        row.name, row.size, row.fast = _clip(name, MAX_NAME_CHARS), max(0, size), fast
        return row

    def apply(self, event: FileEvent) -> Transfer:
        """Fold one file event in; the row it changed.  Raises :class:`OverflowError` when the
        table is full of unfinished transfers."""
        if isinstance(event, FileOffered):
            row = self._row(event.peer_id, event.transfer_id, False)
            row.name, row.size = _clip(event.name, MAX_NAME_CHARS), max(0, event.size)
            row.sha256, row.fast, row.state = event.sha256[:64], event.fast, "offered"
        elif isinstance(event, FileProgress):
            row = self._row(event.peer_id, event.transfer_id, event.outgoing)
            if not row.finished:
                row.state = "active"
                row.size = max(0, event.total) or row.size
                row.bytes = max(0, min(event.bytes, row.size or event.bytes))
                row.rate, row.eta = max(0.0, event.rate), event.eta
        elif isinstance(event, FileCompleted):
            row = self._row(event.peer_id, event.transfer_id, event.outgoing)
            row.name, row.size = _clip(event.name, MAX_NAME_CHARS), max(0, event.size)
            row.sha256, row.fast, row.state = event.sha256[:64], event.fast, "done"
            row.bytes, row.eta = row.size, 0.0
        else:
            row = self._row(event.peer_id, event.transfer_id, event.outgoing)
            row.state, row.reason = "failed", _clip(event.reason, MAX_REASON_CHARS)
        return row

    def set_stored(self, files: list[StoredFile]) -> None:
        """The service's received files (``files()``), newest last, bounded."""
        self.stored = list(files[-MAX_STORED_SHOWN:])
