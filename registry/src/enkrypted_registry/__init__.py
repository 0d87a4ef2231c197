"""Enkrypted's private plugin index: simple API + TUF metadata + signed provenance."""

from __future__ import annotations

__all__ = [
    "PublishRefusedError",
    "RegistryError",
    "RegistryUsageError",
    "Repository",
    "WheelError",
    "__version__",
    "content_digest_from_wheel",
    "inspect_wheel",
    "publish",
    "revoke",
]

__version__ = "0.1.0"

from .errors import PublishRefusedError, RegistryError, RegistryUsageError, WheelError
from .publishing import publish, revoke
from .repository import Repository
from .wheel import content_digest_from_wheel, inspect_wheel
