"""Slot ``ui``, contract 1.0: the user interface that takes over the process after a verified load."""

from __future__ import annotations

__all__ = ["UIService"]

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class UIService(Protocol):
    """What a ui plugin provides."""

    def run(self, argv: Sequence[str]) -> int:
        """Take over the process after a verified load; returns the exit code."""
        ...
