"""enkrypted-shell: discovers, verifies, skew-checks and only then loads the Enkrypted plugins.

Plugin authors use :mod:`enkrypted_shell.hookspecs` (``hookimpl``) and
:mod:`enkrypted_shell.contracts`; see ``docs/hooks.md``.

The names below are loaded on first use (PEP 562): importing the package runs no third-party code,
so the ``enkrypted`` launcher (:mod:`._boot`) can isolate the process before pluggy or click load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .contracts import CONTRACT_VERSIONS, SLOTS, AppContext
    from .errors import ExitCode, ShellError
    from .hookspecs import hookimpl

__all__ = [
    "CONTRACT_VERSIONS",
    "SLOTS",
    "AppContext",
    "ExitCode",
    "ShellError",
    "__version__",
    "hookimpl",
]

_LAZY = {
    "CONTRACT_VERSIONS": "contracts",
    "SLOTS": "contracts",
    "AppContext": "contracts",
    "ExitCode": "errors",
    "ShellError": "errors",
    "hookimpl": "hookspecs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'enkrypted_shell' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
