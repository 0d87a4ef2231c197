"""Real peers: aiortc WebRTC data channels signaled through the PeerJS-compatible broker.

p2p contract 2.0: :class:`WebRTCEndpoint` (``open``, ``local_id``, ``connect``, ``incoming``,
``aclose``) is the contract's ``Endpoint`` and :class:`DataChannelLink` its ``LinkV2``
(``max_pdu_bytes``, ``close_reason``); the plugin's ``WebRTCTransport.open_endpoint`` opens one.
:class:`PeerJSLink` serves a connection whose OFFER names peerjs's ``binary`` or ``json``
serialization (a browser peer).
"""

from typing import TYPE_CHECKING, Any

from ._config import IceServer, WebRTCSettings, client_config
from ._tuning import DEFAULT_TUNING, STOCK, AppliedTuning, Tuning, applied_tuning

if TYPE_CHECKING:
    from ._endpoint import WebRTCEndpoint
    from ._ice import CandidatePolicy, host_addresses
    from ._link import DataChannelLink
    from ._serialization import PeerJSLink

# aiortc, aioice and PyAV are imported on first use of these (settings need none of them)
_LAZY = {
    "WebRTCEndpoint": "._endpoint",
    "CandidatePolicy": "._ice",
    "host_addresses": "._ice",
    "DataChannelLink": "._link",
    "PeerJSLink": "._serialization",
}

__all__ = [
    "DEFAULT_TUNING",
    "STOCK",
    "AppliedTuning",
    "CandidatePolicy",
    "DataChannelLink",
    "IceServer",
    "PeerJSLink",
    "Tuning",
    "WebRTCEndpoint",
    "WebRTCSettings",
    "applied_tuning",
    "client_config",
    "host_addresses",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module, __name__), name)
