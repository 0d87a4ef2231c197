"""``enkrypted broker`` as the plugin contributes it: manifest, hook, options, TLS, logs."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import enkrypted_p2p.plugin as p2p_plugin
import enkrypted_p2p.signaling as signaling
from enkrypted_p2p.signaling import ClientConfig, Signal, SignalingClient
from enkrypted_shell.contracts import AppContext
from tests.p2p.servers import SRC, start_our_broker, stop

MANIFEST = Path(p2p_plugin.__file__).parent / "enkrypted-plugin.toml"


def test_manifest_and_hook_declare_the_broker_command(tmp_path: Path) -> None:
    manifest = tomllib.loads(MANIFEST.read_text())
    declared = ["broker", "listen", "send", "chat-line", "sendfile", "files", "group"]
    assert manifest["plugin"]["commands"] == declared  # the shell finds a command by its manifest
    commands = p2p_plugin.enkrypted_cli_commands(AppContext(tmp_path))
    assert [c.name for c in commands] == declared
    options = {p.name for p in commands[0].params}
    assert {"host", "port", "path", "key", "tls_cert", "tls_key", "allow_discovery",
            "redis_url"} <= options


def test_public_surface_is_pinned() -> None:
    assert sorted(signaling.__all__) == sorted([
        "CHUNKED_MTU", "BinaryPackError", "BrokerConfig", "BrokerCore", "BrokerServer",
        "ClientConfig", "ClientCore", "CloseRequested", "DataCodec", "DataMessage",
        "Disconnected", "Expired", "Frame", "GaveUp", "MemoryStore", "MessageType", "OfferInfo",
        "Opened", "PeerLeft", "ReassemblyLimits", "Refused", "Serialization", "Signal",
        "SignalingClient", "SignalingStore", "broker_command", "pack", "unpack"])


def test_help_and_usage_errors() -> None:
    env = {"PYTHONPATH": ":".join(map(str, SRC))}
    out = subprocess.run([sys.executable, "-m", "enkrypted_p2p.signaling", "--help"],
                         capture_output=True, text=True, env=env, timeout=30, check=True).stdout
    assert "--allow-discovery" in out and "--tls-cert" in out and "--redis" in out
    bad = subprocess.run([sys.executable, "-m", "enkrypted_p2p.signaling", "--path", "x"],
                         capture_output=True, text=True, env=env, timeout=30, check=False)
    assert bad.returncode == 2 and "path must start with '/'" in bad.stderr


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_and_structured_logs_without_payloads(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server = start_our_broker(tmp_path, extra=("--tls-cert", str(cert), "--tls-key", str(key)))
    context = ssl.create_default_context(cafile=str(cert))
    secret_sdp = "v=0 o=- 4242 SECRET-SDP-BODY"

    async def scenario() -> None:
        cfg = ClientConfig(port=server.port, secure=True)
        async with SignalingClient(cfg, "alice", ssl_context=context) as alice, \
                SignalingClient(cfg, "bob", ssl_context=context) as bob:
            await alice.offer("bob", {"type": "offer", "sdp": secret_sdp})
            assert (await bob.wait_for(Signal)).offer.sdp["sdp"] == secret_sdp  # type: ignore[union-attr]
            tokens = (alice.token, bob.token)
        return tokens

    try:
        tokens = asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        stop(server.proc)
    log = server.log.read_text()
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert {"broker.listening", "client.open", "client.closed"} <= {e["event"] for e in events}
    assert next(e for e in events if e["event"] == "broker.listening")["tls"] is True
    assert secret_sdp not in log and "SECRET" not in log
    assert all(token not in log for token in tokens)
