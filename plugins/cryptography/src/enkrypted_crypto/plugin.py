"""Entry point of ``enkrypted-crypto``: the crypto slot over the pyca/cryptography backend."""

from __future__ import annotations

__all__ = ["enkrypted_crypto_service"]

from enkrypted_shell.contracts import AppContext, CryptoService
from enkrypted_shell.hookspecs import hookimpl

from .backends.pyca import PycaPrimitives
from .service import service_from_context


@hookimpl
def enkrypted_crypto_service(context: AppContext) -> CryptoService:
    """Slot ``crypto`` 2.1: the cascade service with the group API over :class:`PycaPrimitives`."""
    return service_from_context(PycaPrimitives(), context)
