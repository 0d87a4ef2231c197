"""Real peers: aiortc WebRTC data channels signaled through the PeerJS-compatible broker.

The plugin's own API for now (p2p contract 1.0 is unchanged; the endpoint shape becomes p2p 2.0
once the shell publishes it): :class:`WebRTCEndpoint` (``open``, ``local_id``, ``connect``,
``incoming``, ``aclose``) and :class:`DataChannelLink` (a contract ``Link`` plus
``max_pdu_bytes`` and ``close_reason``); :class:`PeerJSLink` when the OFFER names peerjs's
``binary`` or ``json`` serialization (a browser peer).
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
