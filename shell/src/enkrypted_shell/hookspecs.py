"""Hook specifications: the plugin author's manual in code (``docs/hooks.md`` is the prose).

A plugin is a module (or object) named by an entry point in group ``enkrypted.plugins``; it
implements some of the hooks below with ``@hookimpl``.  The shell registers it only after its
manifest, integrity, provenance and version skew have been checked, and refuses a plugin that
implements a hook outside its slot (:data:`enkrypted_shell.contracts.SLOT_HOOKS`).

Services are created once, in wiring order: crypto, then p2p (given crypto), then ui (given both).
"""

from __future__ import annotations

__all__ = ["PROJECT", "hookimpl", "hookspec"]

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from .contracts import AppContext, CryptoService, TransportService, UIService

PROJECT = "enkrypted"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def enkrypted_crypto_service(context: AppContext) -> CryptoService:  # type: ignore[empty-body]
    """Slot ``crypto`` (contract 1.x): return the crypto service.

    Called once after load.  The returned object must satisfy
    :class:`~enkrypted_shell.contracts.CryptoService`; its ``capabilities`` must equal what the
    manifest declares (the shell checks).
    """


@hookspec(firstresult=True)
def enkrypted_transport_service(  # type: ignore[empty-body]
    context: AppContext, crypto: CryptoService
) -> TransportService:
    """Slot ``p2p`` (contract 1.x): return the transport service, given the crypto service."""


@hookspec(firstresult=True)
def enkrypted_ui_service(  # type: ignore[empty-body]
    context: AppContext, crypto: CryptoService, transport: TransportService
) -> UIService:
    """Slot ``ui`` (contract 1.x): return the UI service, given the crypto and transport services."""


@hookspec
def enkrypted_cli_commands(context: AppContext) -> list[click.Command]:  # type: ignore[empty-body]
    """Any slot: return click commands to add under ``enkrypted``.

    Each command's name must be listed in the plugin manifest's ``commands`` so the shell can show
    it in ``--help`` without importing the plugin; the shell owns the tree and refuses a name that
    collides with a built-in or another plugin's command.
    """
