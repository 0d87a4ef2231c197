"""Plugin object of enkrypted-p2p-memory (slot ``p2p``, contract 2.0): the in-process transport.

``open_endpoint`` registers on the process-wide switchboard (setting ``network``, default
``"default"``); ``open_chat`` runs enkrypted-p2p's chat service (:mod:`enkrypted_p2p.chat`) on
such an endpoint, imported only then.  The settings keys of the WebRTC transport are accepted and
ignored, so a profile can swap ``p2p-webrtc`` for ``p2p-memory`` without editing its table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from enkrypted_shell.contracts import AppContext, ChatService, CryptoService, Endpoint
from enkrypted_shell.hookspecs import hookimpl

from .endpoint import SWITCHBOARD, MemoryEndpoint, Switchboard, check_id
from .errors import MemoryUsageError

__all__ = ["MemoryTransport", "enkrypted_transport_service"]

DEFAULT_NETWORK: Final = "default"
SETTING_KEYS: Final = frozenset(
    {"network", "broker_url", "ice_servers", "relay_only", "host_addresses", "remote_networks",
     "connect_timeout"}
)
"""``network`` is ours; the others are the WebRTC transport's (accepted, ignored here)."""


class MemoryTransport:
    """The p2p 2.0 service of this plugin."""

    name = "memory"
    capabilities = frozenset({"in-process"})

    def __init__(self, context: AppContext | None = None, crypto: CryptoService | None = None,
                 *, switchboard: Switchboard = SWITCHBOARD) -> None:
        self._context = context
        self._crypto = crypto
        self._board = switchboard

    def network(self, overrides: Mapping[str, object] | None = None) -> str:
        """The network ``overrides`` (merged over the context's ``[settings.p2p]``) names."""
        unknown = sorted(set(overrides or {}) - SETTING_KEYS)
        if unknown:
            raise MemoryUsageError(f"unknown p2p setting(s) {', '.join(unknown)} "
                                   f"(known: {', '.join(sorted(SETTING_KEYS))})")
        base = self._context.settings if self._context is not None else {}
        merged = {**base, **(overrides or {})}
        return check_id(merged.get("network", DEFAULT_NETWORK), "setting network")

    async def open_endpoint(
        self, settings: Mapping[str, object] | None = None, *, peer_id: str | None = None
    ) -> Endpoint:
        """Register on the switchboard as ``peer_id`` (else a fresh ``peer-…`` id); ``Refused``
        (the contract's ``SignalingFailed``) if the id is taken on that network."""
        endpoint: MemoryEndpoint = self._board.register(self.network(settings), peer_id)
        return endpoint

    async def open_chat(
        self,
        identity: bytes,
        settings: Mapping[str, object] | None = None,
        *,
        peer_id: str | None = None,
        saved: Mapping[str, bytes] | None = None,
    ) -> ChatService:
        """enkrypted-p2p's chat service for ``identity`` on a fresh endpoint of ours."""
        if self._context is None or self._crypto is None:
            raise MemoryUsageError("open_chat needs the context and crypto service of a load")
        from enkrypted_p2p.chat import EndpointChat  # imported only when a chat opens

        endpoint = await self.open_endpoint(settings, peer_id=peer_id)
        try:
            chat: ChatService = await EndpointChat.open(
                endpoint, self._crypto, identity, context=self._context, saved=saved
            )
        except BaseException:
            await endpoint.aclose()
            raise
        return chat


@hookimpl
def enkrypted_transport_service(context: AppContext, crypto: CryptoService) -> MemoryTransport:
    return MemoryTransport(context, crypto)
