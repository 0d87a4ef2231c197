"""Settings of a WebRTC endpoint, with every bound in one place (STYLE.md principle 2)."""

from __future__ import annotations

__all__ = ["IceServer", "WebRTCSettings"]

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from ..errors import P2PUsageError
from ..signaling import ClientConfig
from ._tuning import DEFAULT_TUNING, STOCK, Tuning

LOOPBACK: Final = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN or TURN server (``stun:host:port``, ``turn:host:port?transport=udp``)."""

    urls: str
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class WebRTCSettings:
    """Everything an endpoint needs: the broker, ICE, and the data-channel bounds.

    ``ice_servers`` is empty by default: aiortc would otherwise use a public Google STUN server,
    and nothing leaves the machine unless the user configures it. ``host_addresses`` pins the
    local addresses ICE gathers on (``None``: aioice's choice, which never includes loopback);
    ``remote_networks`` are the remote candidate addresses accepted (empty: any IP; mDNS names
    are never accepted).
    """

    signaling: ClientConfig = field(default_factory=ClientConfig)
    ice_servers: tuple[IceServer, ...] = ()
    relay_only: bool = False
    host_addresses: tuple[str, ...] | None = None
    remote_networks: tuple[str, ...] = ()
    connect_timeout: float = 15.0
    """OFFER sent to data channel open."""
    high_water: int = 8 * 1024 * 1024
    """P8.1 / digest §3.3: ``send`` waits while the channel buffers more than this."""
    low_water: int = 1024 * 1024
    """...and resumes once it drained to this (``bufferedamountlow``)."""
    max_pdu_bytes: int = 256 * 1024
    """One data-channel message: aiortc's and browsers' ``max-message-size`` (262144)."""
    max_receive_backlog: int = 32 * 1024 * 1024
    """Received bytes not yet read by the application; past this the peer floods us and the
    link is broken (the data channel cannot be paused on receive)."""
    tuning: Tuning = DEFAULT_TUNING
    """SCTP/UDP knobs applied to each connection (``_tuning.STOCK``: aiortc as it ships)."""

    def __post_init__(self) -> None:
        if not 0 < self.low_water < self.high_water:
            raise P2PUsageError("need 0 < low_water < high_water")
        if self.connect_timeout <= 0 or self.max_pdu_bytes <= 0:
            raise P2PUsageError("connect_timeout and max_pdu_bytes must be positive")
        for address in self.host_addresses or ():
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise P2PUsageError(f"host address {address!r} is not an IP address") from exc
        for network in self.remote_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise P2PUsageError(f"remote network {network!r} is not a network") from exc
        if self.relay_only and not any(s.urls.startswith("turn") for s in self.ice_servers):
            raise P2PUsageError("relay_only needs a TURN server in ice_servers")

    @classmethod
    def loopback(cls, broker_url: str, **overrides: object) -> WebRTCSettings:
        """ICE on 127.0.0.1 only, remote candidates from loopback only (tests, one machine)."""
        values: dict[str, object] = {"signaling": client_config(broker_url),
                                     "host_addresses": ("127.0.0.1",),
                                     "remote_networks": LOOPBACK}
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls, settings: Mapping[str, object]) -> WebRTCSettings:
        """From the ``[plugins.p2p]`` table: ``broker_url``, ``ice_servers`` (list of tables with
        ``urls``, ``username``, ``credential``), ``relay_only``, ``host_addresses``,
        ``remote_networks``, ``connect_timeout``, ``transport_tuning`` (bool, default true)."""
        url = settings.get("broker_url", "ws://127.0.0.1:9000/")
        if not isinstance(url, str):
            raise P2PUsageError("broker_url must be a string")
        servers = []
        raw_servers = settings.get("ice_servers", [])
        if not isinstance(raw_servers, list):
            raise P2PUsageError("ice_servers must be a list of tables")
        for entry in raw_servers:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("urls"), str):
                raise P2PUsageError("each ice_servers entry needs a urls string")
            servers.append(IceServer(str(entry["urls"]), _opt_str(entry, "username"),
                                     _opt_str(entry, "credential")))
        hosts = settings.get("host_addresses")
        return cls(
            signaling=client_config(url),
            ice_servers=tuple(servers),
            relay_only=bool(settings.get("relay_only", False)),
            host_addresses=None if hosts is None else tuple(_strings(hosts, "host_addresses")),
            remote_networks=tuple(_strings(settings.get("remote_networks", []), "remote_networks")),
            connect_timeout=float(str(settings.get("connect_timeout", 15.0))),
            tuning=DEFAULT_TUNING if settings.get("transport_tuning", True) is not False else STOCK,
        )


def client_config(url: str) -> ClientConfig:
    """``ws[s]://host:port/path?key=K`` -> the signaling client's settings."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise P2PUsageError(f"broker URL must be ws:// or wss://host:port/path, not {url!r}")
    path = parts.path or "/"
    if path.rstrip("/").endswith("/peerjs") or path == "/peerjs":
        path = path.rstrip("/")[: -len("peerjs")] or "/"
    key = "peerjs"
    for item in parts.query.split("&"):
        name, _, value = item.partition("=")
        if name == "key" and value:
            key = value
    secure = parts.scheme == "wss"
    return ClientConfig(host=parts.hostname, port=parts.port or (443 if secure else 80),
                        path=path, key=key, secure=secure)


def _opt_str(entry: Mapping[str, object], name: str) -> str | None:
    value = entry.get(name)
    return None if value is None else str(value)


def _strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise P2PUsageError(f"{name} must be a list of strings")
    return list(value)
