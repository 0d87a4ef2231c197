"""enkrypted-p2p as a p2p 2.0 plugin: the WebRTCTransport service, its settings, and the p2p 2.0
conformance kit run on two real WebRTC endpoints through our broker on loopback."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import enkrypted_p2p.plugin as p2p_plugin
from enkrypted_p2p.errors import BrokerRefused, P2PUsageError, PeerUnavailable, SignalingError
from enkrypted_shell import contracts
from enkrypted_shell.contracts import AppContext, LocalMisuse, SignalingFailed, TransportServiceV2
from enkrypted_shell.testing import check_endpoint_pair, check_transport_service_v2
from tests.p2p.servers import SRC, Server, start_our_broker, stop

LOOPBACK = {"host_addresses": ["127.0.0.1"], "remote_networks": ["127.0.0.0/8", "::1/128"]}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_our_broker(tmp_path_factory.mktemp("broker"))
    yield server
    stop(server.proc)


def service(tmp_path: Path, **settings: object) -> p2p_plugin.WebRTCTransport:
    return p2p_plugin.enkrypted_transport_service(AppContext(tmp_path, settings=settings),
                                                  crypto=None)  # type: ignore[arg-type]


def run(coro: object, timeout: float = 90) -> object:
    return asyncio.run(asyncio.wait_for(coro, timeout))  # type: ignore[arg-type]


def test_the_plugin_errors_are_the_contract_errors() -> None:
    assert issubclass(PeerUnavailable, contracts.PeerUnavailable)
    assert issubclass(SignalingError, contracts.SignalingFailed)
    assert issubclass(BrokerRefused, contracts.SignalingFailed)  # ID-TAKEN, INVALID-KEY
    assert issubclass(P2PUsageError, contracts.LocalMisuse) and issubclass(P2PUsageError, ValueError)


def test_the_service_has_the_2_0_shape_and_its_hook_does_not_import_aiortc(tmp_path: Path) -> None:
    transport = service(tmp_path)
    assert isinstance(transport, TransportServiceV2) and transport.name == "webrtc"
    check_transport_service_v2(transport)
    code = ("import sys, pathlib; import enkrypted_p2p.plugin as p; "
            "from enkrypted_shell.contracts import AppContext; "
            "p.enkrypted_transport_service(AppContext(pathlib.Path('.')), None); "
            "sys.exit(1 if 'aiortc' in sys.modules else 0)")
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in SRC)}
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60,
                          env=environ).returncode == 0


@pytest.mark.parametrize(("settings", "message"), [
    ({"broker_url": "http://x/"}, "broker URL must be ws:// or wss://"),
    ({"connect_timeout": "soon"}, "bad p2p setting"),
    ({"connect_timeout": -1}, "must be positive"),
    ({"relay_only": True}, "relay_only needs a TURN server"),
    ({"ice_servers": [{"username": "u"}]}, "urls string"),
    ({"host_addresses": ["not-an-ip"]}, "not an IP address"),
    ({"brokerurl": "ws://x/"}, "unknown p2p setting"),
])
def test_a_bad_setting_is_one_line_local_misuse(tmp_path: Path, settings: dict[str, object],
                                                message: str) -> None:
    with pytest.raises(LocalMisuse, match=message) as info:
        service(tmp_path).settings(settings)
    assert "\n" not in str(info.value)


def test_overrides_merge_key_by_key_over_the_profile_table(tmp_path: Path) -> None:
    transport = service(tmp_path, broker_url="wss://broker.example:8443/chat/?key=k1",
                        connect_timeout=7, **LOOPBACK)
    merged = transport.settings({"connect_timeout": 3})
    assert (merged.signaling.host, merged.signaling.port, merged.signaling.path) == (
        "broker.example", 8443, "/chat/")
    assert merged.signaling.key == "k1" and merged.signaling.secure
    assert merged.connect_timeout == 3.0 and merged.host_addresses == ("127.0.0.1",)


@pytest.mark.slow
def test_two_webrtc_endpoints_pass_the_p2p_2_0_kit(broker: Server, tmp_path: Path) -> None:
    async def scenario() -> None:
        transport = service(tmp_path, broker_url=f"ws://127.0.0.1:{broker.port}/", **LOOPBACK)
        first = await transport.open_endpoint(peer_id="kit-alice")
        second = await transport.open_endpoint({"connect_timeout": 10})  # the broker assigns an id
        assert second.local_id and second.local_id != "kit-alice"
        await check_endpoint_pair(first, second, timeout=20)

    run(scenario())


@pytest.mark.slow
def test_an_id_taken_at_the_broker_is_signaling_failed(broker: Server, tmp_path: Path) -> None:
    async def scenario() -> None:
        transport = service(tmp_path, broker_url=f"ws://127.0.0.1:{broker.port}/", **LOOPBACK)
        alice = await transport.open_endpoint(peer_id="taken-alice")
        try:
            with pytest.raises(SignalingFailed):
                await transport.open_endpoint(peer_id="taken-alice")
        finally:
            await alice.aclose()

    run(scenario())


@pytest.mark.parametrize("package", ["enkrypted_p2p", "enkrypted_p2p_memory"])
def test_the_manifest_states_the_capabilities_the_service_has(package: str, tmp_path: Path) -> None:
    import importlib
    import tomllib

    plugin = importlib.import_module(f"{package}.plugin")
    manifest = tomllib.loads((Path(plugin.__file__).parent / "enkrypted-plugin.toml").read_text("utf-8"))
    service = plugin.enkrypted_transport_service(AppContext(tmp_path), crypto=None)
    assert manifest["plugin"]["contract"] == "2.2"
    assert frozenset(manifest["capabilities"]["transport"]) == service.capabilities
