"""The p2p and ui plugins against the contracts, in process (their e2e runs are in tests/shell)."""

from __future__ import annotations

import asyncio

import pytest

import enkrypted_p2p
import enkrypted_p2p.plugin as p2p_plugin
import enkrypted_ui_cli
import enkrypted_ui_cli.plugin as ui_plugin
from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_p2p.memory import MAX_PDU_BYTES
from enkrypted_shell.contracts import (
    AppContext,
    CryptoService,
    LinkClosed,
    TransportService,
    UIService,
)


def test_public_surfaces_are_pinned():
    assert enkrypted_p2p.__all__ == ["__version__"] and enkrypted_ui_cli.__all__ == ["__version__"]
    assert sorted(p2p_plugin.__all__) == ["MemoryTransport", "enkrypted_transport_service"]
    assert sorted(ui_plugin.__all__) == ["CliUI", "plugin"]


def test_memory_links_are_ordered_bounded_and_close_both_ways(tmp_path):
    transport = p2p_plugin.enkrypted_transport_service(AppContext(tmp_path), crypto=None)  # type: ignore[arg-type]
    assert isinstance(transport, TransportService) and transport.capabilities == {"loopback"}

    async def scenario():
        a, b = await transport.loopback_pair("alice", "bob")
        assert (a.peer_id, b.peer_id) == ("bob", "alice")
        for i in range(5):
            await a.send(bytes([i]))
        assert [await b.receive() for _ in range(5)] == [bytes([i]) for i in range(5)]
        with pytest.raises(ValueError, match="cap"):
            await a.send(b"x" * (MAX_PDU_BYTES + 1))
        await a.close()
        await a.close()  # idempotent
        with pytest.raises(LinkClosed):
            await b.receive()
        with pytest.raises(LinkClosed):
            await a.send(b"late")

    asyncio.run(scenario())


def test_ui_service_runs_the_conversation_over_real_services(tmp_path, capsys):
    crypto = CascadeCryptoService(PycaPrimitives())
    assert isinstance(crypto, CryptoService)
    transport = p2p_plugin.MemoryTransport()
    ui = ui_plugin.plugin.enkrypted_ui_service(AppContext(tmp_path), crypto, transport)
    assert isinstance(ui, UIService)
    assert ui.run(["-m", "one more"]) == 0
    out = capsys.readouterr().out
    assert "alice -> bob: one more" in out and "4 messages delivered intact: True" in out
    commands = ui_plugin.plugin.enkrypted_cli_commands(AppContext(tmp_path))
    assert [c.name for c in commands] == ["demo"]
