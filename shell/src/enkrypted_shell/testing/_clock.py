"""A clock that moves only when the test says so."""

from __future__ import annotations

__all__ = ["FakeClock"]

from ..contracts import LocalMisuse


class FakeClock:
    """A :data:`~enkrypted_shell.contracts.Clock`: call it for ``now``; :meth:`advance` moves it."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (never backwards); returns the new time."""
        if seconds < 0:
            raise LocalMisuse("a monotonic clock does not go backwards")
        self._now += seconds
        return self._now
