"""The p2p and ui plugins against the contracts, in process (their e2e runs are in tests/shell);
the ui drives the crypto 2.0 handshake: events, the context's clock, the handshake timeout."""

from __future__ import annotations

import asyncio
import time

import pytest

import enkrypted_p2p
import enkrypted_p2p.plugin as p2p_plugin
import enkrypted_p2p_memory.plugin as memory_plugin
import enkrypted_ui_cli
import enkrypted_ui_cli.plugin as ui_plugin
from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_p2p_memory.memory import MAX_PDU_BYTES
from enkrypted_shell.contracts import (
    AppContext,
    CryptoService,
    Handshake,
    LinkBroken,
    LinkClosed,
    LinkClosedLocally,
    LocalMisuse,
    TransportService,
    TransportServiceV2,
    UIService,
    WireLimits,
)
from enkrypted_shell.testing import FakeClock


def test_public_surfaces_are_pinned():
    assert enkrypted_p2p.__all__ == ["__version__"] and enkrypted_ui_cli.__all__ == ["__version__"]
    assert sorted(p2p_plugin.__all__) == ["WebRTCTransport", "enkrypted_cli_commands", "enkrypted_transport_service"]
    assert sorted(memory_plugin.__all__) == ["MemoryTransport", "enkrypted_transport_service"]
    assert sorted(ui_plugin.__all__) == ["CliUI", "plugin"]


def test_memory_links_are_ordered_bounded_and_close_both_ways(tmp_path):
    transport = memory_plugin.enkrypted_transport_service(AppContext(tmp_path), crypto=None)  # type: ignore[arg-type]
    assert isinstance(transport, TransportServiceV2) and transport.capabilities == {"in-process"}

    async def scenario():
        alice = await transport.open_endpoint(peer_id="alice")
        bob = await transport.open_endpoint(peer_id="bob")
        a = await alice.connect("bob")
        b = await anext(bob.incoming())
        assert (a.peer_id, b.peer_id) == ("bob", "alice") and a.max_pdu_bytes == MAX_PDU_BYTES
        for i in range(5):
            await a.send(bytes([i]))
        assert [await b.receive() for _ in range(5)] == [bytes([i]) for i in range(5)]
        with pytest.raises(LocalMisuse, match="cap"):
            await a.send(b"x" * (MAX_PDU_BYTES + 1))
        await a.close()
        await a.close()  # idempotent
        with pytest.raises(LinkBroken):
            await b.receive()
        with pytest.raises(LinkClosedLocally):
            await a.send(b"late")
        assert isinstance(LinkBroken("x"), LinkClosed)
        await alice.aclose()
        await bob.aclose()

    asyncio.run(scenario())


def test_the_ui_refuses_a_1_0_transport_in_one_line(tmp_path, capsys):
    class OneDotOh:
        name, capabilities = "old", frozenset()

        async def loopback_pair(self, first, second):
            raise AssertionError("not reached")

    assert isinstance(OneDotOh(), TransportService)
    crypto = CascadeCryptoService(PycaPrimitives())
    ui = ui_plugin.plugin.enkrypted_ui_service(AppContext(tmp_path), crypto, OneDotOh())
    assert ui.run([]) == 1
    assert "speaks contract 1.0; this ui needs 2.0" in capsys.readouterr().err


def test_ui_service_runs_the_conversation_over_real_services(tmp_path, capsys):
    crypto = CascadeCryptoService(PycaPrimitives())
    assert isinstance(crypto, CryptoService)
    transport = memory_plugin.MemoryTransport()
    ui = ui_plugin.plugin.enkrypted_ui_service(AppContext(tmp_path), crypto, transport)
    assert isinstance(ui, UIService)
    assert ui.run(["-m", "one more"]) == 0
    out = capsys.readouterr().out
    assert "alice -> bob: one more" in out and "4 messages delivered intact: True" in out
    commands = ui_plugin.plugin.enkrypted_cli_commands(AppContext(tmp_path))
    assert [c.name for c in commands] == ["demo", "chat", "history"]


class _Split:
    """A crypto service whose two sides cannot agree (responder speaks only Profile-v0)."""

    def __init__(self, inner: CascadeCryptoService) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def handshake(self, identity: bytes, *, initiator: bool, now: float) -> Handshake:
        profiles = [PROFILE_B1] if initiator else [PROFILE_V0]
        return self._inner.handshake(identity, initiator=initiator, now=now, profiles=profiles)


class _Mute:
    """A handshake that never answers (a peer that went silent)."""

    def __init__(self, inner: Handshake) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def data_to_send(self) -> list[bytes]:
        self._inner.data_to_send()
        return []

    def receive(self, pdu: bytes, now: float) -> list[object]:
        return []


class _Silent(_Split):
    def handshake(self, identity: bytes, *, initiator: bool, now: float) -> Handshake:
        inner = self._inner.handshake(identity, initiator=initiator, now=now)
        return inner if initiator else _Mute(inner)  # type: ignore[return-value]


def test_conversation_reports_a_refused_handshake_on_both_sides(tmp_path, capsys):
    """The refusing side's protocol-error reaches the other side (no wait for the timeout)."""
    crypto = _Split(CascadeCryptoService(PycaPrimitives()))
    ui = ui_plugin.plugin.enkrypted_ui_service(
        AppContext(tmp_path), crypto, memory_plugin.MemoryTransport()
    )
    started = time.monotonic()
    assert ui.run([]) == 1
    assert time.monotonic() - started < 5
    assert "handshake failed" in capsys.readouterr().err


def test_conversation_times_out_on_a_silent_peer(tmp_path, capsys):
    limits = WireLimits(handshake_timeout_s=0.3)
    context = AppContext(tmp_path, limits=limits)
    crypto = _Silent(enkrypted_crypto_service(context))  # type: ignore[arg-type]
    ui = ui_plugin.plugin.enkrypted_ui_service(context, crypto, memory_plugin.MemoryTransport())
    started = time.monotonic()
    assert ui.run([]) == 1
    assert 0.25 < time.monotonic() - started < 5
    assert "not complete after 0.3 s" in capsys.readouterr().err


def test_conversation_takes_now_from_the_context_clock(tmp_path, capsys):
    clock = FakeClock(1000.0)
    crypto = CascadeCryptoService(PycaPrimitives(), clock=clock)
    ui = ui_plugin.plugin.enkrypted_ui_service(
        AppContext(tmp_path, clock=clock), crypto, memory_plugin.MemoryTransport()
    )
    assert ui.run([]) == 0
    out = capsys.readouterr().out
    assert "3 messages delivered intact: True" in out and "safety number" in out
