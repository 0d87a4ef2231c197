"""No plaintext at the broker: every frame the broker receives while two of our peers signal a
session is recorded, while the same two peers chat through the real crypto and ui plugins; no
message plaintext and no application PDU (raw, hex or base64) appears in those frames.

Until the WebRTC transport lands the chat's PDUs travel over the in-memory link (the only transport
today), so this pins the separation - signaling carries SDP and candidates only - and will carry
over unchanged when the PDUs move to a data channel."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import enkrypted_ui_cli.plugin as ui_plugin
from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_p2p.signaling import (
    BrokerConfig,
    BrokerServer,
    ClientConfig,
    Signal,
    SignalingClient,
)
from enkrypted_p2p_memory.plugin import MemoryTransport
from enkrypted_shell.contracts import AppContext, Endpoint

PLAINTEXT = "meet me at the old mill at noon"


class RecordingLink:
    def __init__(self, inner: Any, sent: list[bytes]) -> None:
        self._inner, self._sent = inner, sent

    @property
    def peer_id(self) -> str:
        return str(self._inner.peer_id)

    async def send(self, pdu: bytes) -> None:
        self._sent.append(bytes(pdu))
        await self._inner.send(pdu)

    async def receive(self) -> bytes:
        return bytes(await self._inner.receive())

    async def close(self) -> None:
        await self._inner.close()


class RecordingEndpoint:
    def __init__(self, inner: Endpoint, sent: list[bytes]) -> None:
        self._inner, self._sent = inner, sent

    @property
    def local_id(self) -> str:
        return self._inner.local_id

    async def connect(self, peer_id: str, timeout: float | None = None) -> RecordingLink:
        return RecordingLink(await self._inner.connect(peer_id, timeout), self._sent)

    async def incoming(self) -> AsyncIterator[RecordingLink]:
        async for link in self._inner.incoming():
            yield RecordingLink(link, self._sent)

    async def aclose(self) -> None:
        await self._inner.aclose()


class RecordingTransport(MemoryTransport):
    """The in-memory p2p 2.0 transport, recording every PDU its links send."""

    def __init__(self) -> None:
        super().__init__()
        self.pdus: list[bytes] = []

    async def open_endpoint(self, settings: Mapping[str, object] | None = None, *,
                            peer_id: str | None = None) -> Endpoint:
        inner = await super().open_endpoint(settings, peer_id=peer_id)
        return RecordingEndpoint(inner, self.pdus)  # type: ignore[return-value]


def test_broker_sees_no_plaintext_and_no_pdu(tmp_path: Path) -> None:
    transport = RecordingTransport()
    ui = ui_plugin.plugin.enkrypted_ui_service(
        AppContext(tmp_path), CascadeCryptoService(PycaPrimitives()), transport)
    received: list[str] = []

    async def scenario() -> None:
        server = BrokerServer(BrokerConfig())
        original = server.core.frame

        def recording(conn: int, data: str | bytes, now: float) -> Any:
            received.append(data if isinstance(data, str) else data.decode("latin-1"))
            return original(conn, data, now)

        server.core.frame = recording  # type: ignore[method-assign]
        port = await server.start("127.0.0.1", 0)
        try:
            cfg = ClientConfig(port=port)
            async with SignalingClient(cfg, "alice") as alice, SignalingClient(cfg, "bob") as bob:
                chat = asyncio.create_task(asyncio.to_thread(ui.run, ["-m", PLAINTEXT]))
                cid = await alice.offer("bob", {"type": "offer", "sdp": "v=0\r\ns=-\r\n"})
                await bob.wait_for(Signal)
                await bob.answer("alice", cid, {"type": "answer", "sdp": "v=0\r\ns=-\r\n"})
                await alice.wait_for(Signal)
                await alice.candidate("bob", cid, {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host",
                                                   "sdpMid": "0", "sdpMLineIndex": 0})
                await bob.wait_for(Signal)
                assert await chat == 0
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    seen = "\n".join(received)
    assert len(received) >= 3 and transport.pdus  # the session was signaled, the chat happened
    assert PLAINTEXT not in seen
    for pdu in transport.pdus:
        for form in (pdu.decode("latin-1"), pdu.hex(), base64.b64encode(pdu).decode()):
            assert form[:32] not in seen
