"""``enkrypted broker``: run the PeerJS-compatible broker (contributed by the p2p plugin).

Defaults are npm ``peer``'s CLI (``alive_timeout`` 60 s there, 90 s in its library); the broker
listens on loopback unless told otherwise.  The first stdout line is ``listening on URL`` (tests
and scripts read the port from it when ``--port 0``).
"""

from __future__ import annotations

__all__ = ["broker_command", "run_broker"]

import asyncio
import contextlib
import logging
import signal
import ssl
import sys
import uuid
from pathlib import Path

import click

from ..errors import P2PUsageError
from ._config import BrokerConfig, queue_limits
from ._store import MemoryStore, SignalingStore


def _tls(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise P2PUsageError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def _store(config: BrokerConfig, redis_url: str | None) -> SignalingStore:
    if redis_url is None:
        return MemoryStore(queue_limits(config))
    from ._redis import RedisStore  # only brokers that scale out import redis

    return RedisStore(redis_url, queue_limits(config), node=uuid.uuid4().hex[:12],
                      presence_ttl=config.presence_ttl, cache_ttl=config.presence_cache_ttl)


async def run_broker(config: BrokerConfig, host: str, port: int, tls: ssl.SSLContext | None,
                     redis_url: str | None) -> None:
    """Serve until SIGTERM or SIGINT."""
    from ._server import BrokerServer  # websockets is loaded by the broker only

    server = BrokerServer(config, _store(config, redis_url))
    bound = await server.start(host, port, tls)
    scheme = "wss" if tls else "ws"
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"listening on {scheme}://{shown}:{bound}{config.base_path}peerjs", nl=True)
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


@click.command(name="broker", help="Run the PeerJS-compatible signaling broker.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9000, show_default=True, type=int, help="0 picks a free port.")
@click.option("--path", default="/", show_default=True, help="Mount path (peerjs: path).")
@click.option("--key", default="peerjs", show_default=True, help="API key clients must send.")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--allow-discovery", is_flag=True, help="Serve GET {path}{key}/peers.")
@click.option("--redis", "redis_url", default=None, help="Share ids with other brokers: redis://...")
@click.option("--alive-timeout", default=60.0, show_default=True, type=float,
              help="Seconds without HEARTBEAT before a client is dropped.")
@click.option("--expire-timeout", default=5.0, show_default=True, type=float,
              help="Seconds a message waits for an absent id before EXPIRE.")
@click.option("--concurrent-limit", default=5000, show_default=True, type=int)
@click.option("--max-frame-bytes", default=65536, show_default=True, type=int)
@click.option("--rate", "rate_per_s", default=100.0, show_default=True, type=float,
              help="Frames per second per connection (sustained).")
@click.option("--burst", "rate_burst", default=200, show_default=True, type=int)
@click.option("--presence-ttl", default=30.0, show_default=True, type=float,
              help="With --redis: seconds until a dead broker's ids are freed.")
@click.option("--max-conns-per-ip", default=64, show_default=True, type=int,
              help="Concurrent sockets per client address (loopback too).")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDR[/BITS]",
              help="A reverse proxy whose X-Forwarded-For names the client (repeatable).")
@click.option("--id-fail-burst", default=10, show_default=True, type=int,
              help="ID-TAKEN answers per id before attempts on it are refused for a while.")
@click.option("--id-fail-rate", default=0.2, show_default=True, type=float,
              help="Failed attempts per second per id allowed in the long run.")
@click.option("--ip-fail-burst", default=30, show_default=True, type=int,
              help="Failed attempts per address before its attempts are refused for a while.")
@click.option("--ip-fail-rate", default=1.0, show_default=True, type=float,
              help="Failed attempts per second per address allowed in the long run.")
@click.option("--presence-cache-ttl", default=None, type=float,
              help="With --redis: seconds a broker trusts where an id lives [min(5, ttl/3)].")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
def broker_command(host: str, port: int, path: str, key: str, tls_cert: Path | None,
                   tls_key: Path | None, allow_discovery: bool, redis_url: str | None,
                   alive_timeout: float, expire_timeout: float, concurrent_limit: int,
                   max_frame_bytes: int, rate_per_s: float, rate_burst: int,
                   presence_ttl: float, max_conns_per_ip: int, trusted_proxies: tuple[str, ...],
                   id_fail_burst: int, id_fail_rate: float, ip_fail_burst: int,
                   ip_fail_rate: float, presence_cache_ttl: float | None, log_level: str) -> None:
    try:
        config = BrokerConfig(
            key=key, path=path, alive_timeout=alive_timeout, expire_timeout=expire_timeout,
            concurrent_limit=concurrent_limit, allow_discovery=allow_discovery,
            max_frame_bytes=max_frame_bytes, rate_per_s=rate_per_s, rate_burst=rate_burst,
            presence_ttl=presence_ttl, presence_refresh=min(10.0, presence_ttl / 3),
            presence_cache_ttl=(presence_cache_ttl if presence_cache_ttl is not None
                                else min(5.0, presence_ttl / 3)),
            max_conns_per_ip=max_conns_per_ip, trusted_proxies=trusted_proxies,
            id_fail_burst=id_fail_burst, id_fail_rate=id_fail_rate, ip_fail_burst=ip_fail_burst,
            ip_fail_rate=ip_fail_rate,
        )
        tls = _tls(tls_cert, tls_key)
    except (P2PUsageError, OSError, ssl.SSLError) as exc:
        raise click.UsageError(str(exc)) from exc
    logging.basicConfig(level=log_level, stream=sys.stderr, format="%(message)s")
    asyncio.run(run_broker(config, host, port, tls, redis_url))
