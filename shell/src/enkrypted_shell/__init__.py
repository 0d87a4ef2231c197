"""enkrypted-shell: discovers, verifies, skew-checks and only then loads the Enkrypted plugins.

Plugin authors use :mod:`enkrypted_shell.hookspecs` (``hookimpl``) and
:mod:`enkrypted_shell.contracts`; see ``docs/hooks.md``.
"""

from ._version import __version__
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
