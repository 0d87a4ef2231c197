"""Entry point of ``enkrypted-crypto-nacl``: the same protocols over the PyNaCl backend.

libsodium has no ML-KEM and no HPKE (so no MLS cipher suite), so this service's default layers
are ``Signal`` and ``AES``: it neither requires nor offers ``ML-KEM`` or ``MLS``.  Asking for
either fails at start-up with a message naming the primitive and the pyca alternative, and a
peer that requires one gets a ``protocol-error`` (``no-common-layers``), never a downgrade.

For the same reason it stays on crypto contract 2.0: 2.1 adds the MLS group API, which it cannot
serve. The shell (speaking 2.1) loads it checked against 2.0, and callers feature-detect groups
with ``supports(service, contracts.GroupCryptoService)``, which is false here.
"""

from __future__ import annotations

__all__ = ["enkrypted_crypto_service"]

from enkrypted_crypto.service import service_from_context
from enkrypted_shell.contracts import AppContext, CryptoService
from enkrypted_shell.hookspecs import hookimpl

from .backend import NaclPrimitives


@hookimpl
def enkrypted_crypto_service(context: AppContext) -> CryptoService:
    """Slot ``crypto`` 2.0: the cascade service over :class:`NaclPrimitives`."""
    return service_from_context(NaclPrimitives(), context)
