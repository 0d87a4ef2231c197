"""A kit for plugin authors' own tests: a fake clock, in-memory links and one conformance check per
slot contract (in the spirit of ``trio.testing``).

    from enkrypted_shell.testing import check_crypto_service
    def test_my_backend_conforms():
        check_crypto_service(lambda: MyCryptoService())

p2p 2.0 transports run :func:`check_endpoint_pair` (async) on two endpoints of theirs and
:func:`check_transport_service_v2` on the service.  A check raises :class:`ConformanceError`
naming the first rule the implementation breaks.
"""

from __future__ import annotations

__all__ = [
    "ConformanceError",
    "FakeClock",
    "MemoryLink",
    "check_crypto_service",
    "check_endpoint_pair",
    "check_group_service",
    "check_transport_service",
    "check_transport_service_v2",
    "check_ui_service",
    "memory_link_pair",
]

from ._checks import (
    ConformanceError,
    check_crypto_service,
    check_group_service,
    check_transport_service,
    check_ui_service,
)
from ._clock import FakeClock
from ._endpoints import check_endpoint_pair, check_transport_service_v2
from ._links import MemoryLink, memory_link_pair
