"""``tests.p2p.chat_peer`` with its secrets written down, for test_no_plaintext.py: every identity
key pair the crypto service makes (private key included) and every PDU our data channels send or
receive are appended, hex, one JSON object a line, to RECORD.  The test then looks for each of
them in what the broker saw.

    python -m tests.p2p.recording_peer RECORD listen --broker ws://127.0.0.1:PORT/ --loopback
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from enkrypted_crypto import plugin as crypto_plugin
from enkrypted_p2p.webrtc import DataChannelLink
from enkrypted_shell.contracts import AppContext
from tests.p2p import chat_peer


def main(argv: list[str]) -> None:
    record = Path(argv[0]).open("a", encoding="utf-8")  # noqa: SIM115  # open for the whole run

    def note(kind: str, data: bytes) -> None:
        record.write(json.dumps({"kind": kind, "hex": data.hex()}) + "\n")
        record.flush()

    make_service = crypto_plugin.enkrypted_crypto_service

    def recording_service(context: AppContext) -> Any:
        service = make_service(context)
        new_identity = type(service).new_identity

        def recorded_identity(self: Any) -> bytes:
            identity: bytes = new_identity(self)
            note("identity", identity)
            return identity

        type(service).new_identity = recorded_identity  # type: ignore[method-assign]
        return service

    send, receive = DataChannelLink.send, DataChannelLink.receive

    async def recorded_send(self: DataChannelLink, pdu: bytes) -> None:
        note("pdu", bytes(pdu))
        await send(self, pdu)

    async def recorded_receive(self: DataChannelLink) -> bytes:
        pdu = await receive(self)
        note("pdu", bytes(pdu))
        return pdu

    chat_peer.enkrypted_crypto_service = recording_service  # type: ignore[attr-defined]
    DataChannelLink.send = recorded_send  # type: ignore[method-assign]
    DataChannelLink.receive = recorded_receive  # type: ignore[method-assign]
    try:
        chat_peer.main(argv[1:])
    finally:
        record.close()


if __name__ == "__main__":
    main(sys.argv[1:])
