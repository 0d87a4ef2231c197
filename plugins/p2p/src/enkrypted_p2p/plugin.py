"""Plugin object of enkrypted-p2p (slot ``p2p``, contract 2.0): the WebRTC transport.

:func:`enkrypted_transport_service` returns a :class:`WebRTCTransport`: ``open_endpoint`` registers
a :class:`~enkrypted_p2p.webrtc.WebRTCEndpoint` at the broker, ``open_chat`` runs the chat service
(:mod:`enkrypted_p2p.chat`) on one.  The crypto service the shell passes to the hook is kept (in
:class:`Wiring`) for ``open_chat`` and the chat commands (``listen``, ``send``), which the shell
runs after the same verified load.

This module stays light: the hook runs on every start, so aiortc (and the chat package) are
imported only when an endpoint or a chat is really opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from enkrypted_shell.contracts import AppContext, ChatService, CryptoService, Endpoint
from enkrypted_shell.hookspecs import hookimpl

from ._wiring import Wiring
from .errors import P2PUsageError

if TYPE_CHECKING:
    import click

    from .webrtc import WebRTCSettings

__all__ = ["WebRTCTransport", "enkrypted_cli_commands", "enkrypted_transport_service"]

_WIRED: list[Wiring] = []  # at most one: what the last load handed us

SETTING_KEYS: Final = frozenset(
    {"broker_url", "ice_servers", "relay_only", "host_addresses", "remote_networks",
     "connect_timeout"}
)
"""The keys of ``[plugins.p2p]`` this transport reads (docs/hooks.md, "p2p settings")."""


class WebRTCTransport:
    """The p2p 2.0 service: endpoints on a PeerJS-compatible broker, links over data channels."""

    name = "webrtc"
    capabilities = frozenset({"webrtc-datachannel", "peerjs-broker", "stun", "turn", "relay-only"})

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring

    def settings(self, overrides: Mapping[str, object] | None = None) -> WebRTCSettings:
        """``overrides`` merged key by key over the ``[plugins.p2p]`` table, parsed.  A bad value
        (or an unknown key in ``overrides``) is one :class:`P2PUsageError` line."""
        from .webrtc import WebRTCSettings

        unknown = sorted(set(overrides or {}) - SETTING_KEYS)
        if unknown:
            raise P2PUsageError(f"unknown p2p setting(s) {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(SETTING_KEYS))})")
        merged = {**self._wiring.context.settings, **(overrides or {})}
        try:
            return WebRTCSettings.from_mapping(merged)
        except P2PUsageError as exc:
            raise P2PUsageError(f"bad p2p setting: {exc}") from exc
        except (ValueError, TypeError) as exc:  # e.g. connect_timeout = "soon"
            raise P2PUsageError(f"bad p2p setting: {exc}") from exc

    async def open_endpoint(
        self, settings: Mapping[str, object] | None = None, *, peer_id: str | None = None
    ) -> Endpoint:
        """Register at the broker (under ``peer_id``, else an id it assigns).  Raises
        :class:`~enkrypted_p2p.errors.SignalingError` (the contract's ``SignalingFailed``)."""
        from .webrtc import WebRTCEndpoint

        return await WebRTCEndpoint.open(self.settings(settings), peer_id)

    async def open_chat(
        self,
        identity: bytes,
        settings: Mapping[str, object] | None = None,
        *,
        peer_id: str | None = None,
        saved: Mapping[str, bytes] | None = None,
    ) -> ChatService:
        """The chat service for ``identity`` on a fresh endpoint (closed again if it fails)."""
        from .chat import EndpointChat  # the chat package: imported only when a chat opens

        endpoint = await self.open_endpoint(settings, peer_id=peer_id)
        try:
            chat: ChatService = await EndpointChat.open(
                endpoint, self._wiring.crypto, identity, context=self._wiring.context, saved=saved
            )
        except BaseException:
            await endpoint.aclose()
            raise
        return chat


def wiring() -> Wiring | None:
    """The context and crypto service of the last load (``None`` before any)."""
    return _WIRED[-1] if _WIRED else None


@hookimpl
def enkrypted_transport_service(context: AppContext, crypto: CryptoService) -> WebRTCTransport:
    wired = Wiring(context, crypto)
    _WIRED[:] = [wired]
    return WebRTCTransport(wired)


@hookimpl
def enkrypted_cli_commands(context: AppContext) -> list[click.Command]:
    """``enkrypted broker``, ``listen``, ``send``, ..., ``group`` (manifest ``commands``: the shell
    finds a plugin's command by it); imported only when the shell asks."""
    from .chat import chat_commands
    from .signaling import broker_command

    return [broker_command, *chat_commands(wiring)]
