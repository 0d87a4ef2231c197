"""A scripted two-peer conversation over the contracts: both peers in one process, the bytes
between them going through the p2p plugin's link and the crypto plugin's handshake and session."""

from __future__ import annotations

__all__ = ["Transcript", "converse"]

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from enkrypted_shell.contracts import (
    CryptoService,
    Handshake,
    Link,
    SecureSession,
    TransportService,
)

HANDSHAKE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Transcript:
    profile: str
    layers: tuple[str, ...]
    alice_sees_bob: str
    bob_sees_alice: str
    delivered: tuple[tuple[str, str], ...]
    wire_bytes: int


async def _drive(handshake: Handshake, link: Link) -> SecureSession:
    for pdu in handshake.data_to_send():
        await link.send(pdu)
    while not handshake.complete:
        handshake.receive(await link.receive())
        for pdu in handshake.data_to_send():
            await link.send(pdu)
    return handshake.session()


async def converse(
    crypto: CryptoService,
    transport: TransportService,
    lines: Sequence[tuple[str, str]],
    show: Callable[[str], None],
) -> Transcript:
    """Handshake alice and bob, then deliver ``lines`` of (sender, text) through seal/open."""
    to_bob, to_alice = await transport.loopback_pair("alice", "bob")
    alice_hs = crypto.handshake(crypto.new_identity(), initiator=True)
    bob_hs = crypto.handshake(crypto.new_identity(), initiator=False)
    alice, bob = await asyncio.wait_for(
        asyncio.gather(_drive(alice_hs, to_bob), _drive(bob_hs, to_alice)), HANDSHAKE_TIMEOUT_S
    )
    show(f"handshake complete: profile {alice.profile}, layers {' -> '.join(alice.layers)}")
    show(f"alice sees bob as {alice.peer_fingerprint}; bob sees alice as {bob.peer_fingerprint}")
    ends = {"alice": (alice, to_bob, bob, to_alice), "bob": (bob, to_alice, alice, to_bob)}
    delivered, wire = [], 0
    for sender, text in lines:
        mine, out_link, theirs, in_link = ends[sender]
        sealed = mine.seal(text.encode("utf-8"))
        wire += len(sealed)
        await out_link.send(sealed)
        received = theirs.open(await in_link.receive()).decode("utf-8")
        delivered.append((sender, received))
        show(
            f"{sender} -> {'bob' if sender == 'alice' else 'alice'}: {received}  "
            f"[{len(sealed)} bytes on the wire]"
        )
    await to_bob.close()
    await to_alice.close()
    return Transcript(
        alice.profile,
        alice.layers,
        alice.peer_fingerprint,
        bob.peer_fingerprint,
        tuple(delivered),
        wire,
    )
