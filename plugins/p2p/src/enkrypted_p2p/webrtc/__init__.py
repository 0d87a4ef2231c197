"""Real peers: aiortc WebRTC data channels signaled through the PeerJS-compatible broker.

p2p contract 2.0: :class:`WebRTCEndpoint` (``open``, ``local_id``, ``connect``, ``incoming``,
``aclose``) is the contract's ``Endpoint`` and :class:`DataChannelLink` its ``LinkV2``
(``max_pdu_bytes``, ``close_reason``); the plugin's ``WebRTCTransport.open_endpoint`` opens one.
:class:`PeerJSLink` serves a connection whose OFFER names peerjs's ``binary`` or ``json``
serialization (a browser peer).
"""

from ._config import IceServer, WebRTCSettings, client_config
from ._endpoint import WebRTCEndpoint
from ._ice import CandidatePolicy, host_addresses
from ._link import DataChannelLink
from ._serialization import PeerJSLink
from ._tuning import DEFAULT_TUNING, STOCK, AppliedTuning, Tuning, applied_tuning

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
