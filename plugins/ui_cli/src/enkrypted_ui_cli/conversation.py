"""A scripted two-peer conversation over the contracts: both peers in one process, the bytes
between them going through the p2p plugin's link and the crypto plugin's handshake and session.

The link comes from p2p contract 2.0: two endpoints (``alice`` and ``bob``), alice dials bob and
bob accepts from ``incoming()``.  A p2p plugin of contract 1.0 is detected (it has no
``open_endpoint``) and refused with one line.

The handshake is driven as crypto contract 2.0 says: PDUs and ``now`` (from the shell's clock) in,
events out; its own timer (``next_deadline`` / ``handle_timeout``, the 300 s handshake timeout)
bounds the wait for the peer, and a :class:`HandshakeFailed` ends the conversation after its
``protocol-error`` was sent to the peer."""

from __future__ import annotations

__all__ = ["ConversationFailed", "Transcript", "converse"]

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from enkrypted_shell.contracts import (
    Clock,
    ContractError,
    CryptoService,
    Delivered,
    Endpoint,
    Handshake,
    HandshakeComplete,
    HandshakeEvent,
    HandshakeFailed,
    Link,
    SecureSession,
    TransportService,
    TransportServiceV2,
    monotonic_clock,
    supports,
)

CONNECT_TIMEOUT_S = 30.0
"""Dialling and accepting the link, at most (the memory transport needs no time at all)."""


class ConversationFailed(Exception):
    """The handshake failed or timed out; the message is the local reason."""


@dataclass(frozen=True, slots=True)
class Transcript:
    profile: str
    layers: tuple[str, ...]
    alice_sees_bob: str
    bob_sees_alice: str
    delivered: tuple[tuple[str, str], ...]
    wire_bytes: int


async def _flush(handshake: Handshake, link: Link) -> None:
    for pdu in handshake.data_to_send():
        await link.send(pdu)


def _outcome(events: list[HandshakeEvent]) -> SecureSession | None:
    for event in events:
        if isinstance(event, HandshakeFailed):
            raise ConversationFailed(event.reason)
        if isinstance(event, HandshakeComplete):
            return event.session
    return None


async def _drive(handshake: Handshake, link: Link, clock: Clock) -> SecureSession:
    """Run one side: send what is queued, feed each PDU with ``now``, fire the timer."""
    await _flush(handshake, link)
    while True:
        deadline = handshake.next_deadline()
        if deadline is None:
            raise ConversationFailed("the handshake ended without a session")
        try:
            pdu = await asyncio.wait_for(link.receive(), max(deadline - clock(), 0.0))
        except TimeoutError:
            events = handshake.handle_timeout(clock())
        else:
            events = handshake.receive(pdu, clock())
        await _flush(handshake, link)  # a protocol-error reaches the peer too
        session = _outcome(events)
        if session is not None:
            return session


async def converse(
    crypto: CryptoService,
    transport: TransportService | TransportServiceV2,
    lines: Sequence[tuple[str, str]],
    show: Callable[[str], None],
    clock: Clock = monotonic_clock,
) -> Transcript:
    """Handshake alice and bob, then deliver ``lines`` of (sender, text) through seal/open."""
    if not supports(transport, TransportServiceV2):
        raise ConversationFailed("the p2p plugin speaks contract 1.0; this ui needs 2.0 (open_endpoint)")
    assert isinstance(transport, TransportServiceV2)
    try:
        alice_end = await transport.open_endpoint(peer_id="alice")
    except ContractError as exc:
        raise ConversationFailed(f"cannot open alice's endpoint: {exc}") from exc
    try:
        bob_end = await transport.open_endpoint(peer_id="bob")
    except ContractError as exc:
        await alice_end.aclose()
        raise ConversationFailed(f"cannot open bob's endpoint: {exc}") from exc
    try:
        return await _over_endpoints(crypto, alice_end, bob_end, lines, show, clock)
    finally:
        await alice_end.aclose()
        await bob_end.aclose()


async def _link(alice_end: Endpoint, bob_end: Endpoint) -> tuple[Link, Link]:
    """Alice dials bob by id; bob's end comes from ``incoming()``."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            accepted = asyncio.ensure_future(anext(bob_end.incoming()))
            try:
                to_bob = await alice_end.connect(bob_end.local_id, CONNECT_TIMEOUT_S)
                return to_bob, await accepted
            finally:
                accepted.cancel()
    except (ContractError, TimeoutError, StopAsyncIteration) as exc:
        raise ConversationFailed(f"no link from alice to bob: {exc or type(exc).__name__}") from exc


async def _over_endpoints(
    crypto: CryptoService,
    alice_end: Endpoint,
    bob_end: Endpoint,
    lines: Sequence[tuple[str, str]],
    show: Callable[[str], None],
    clock: Clock,
) -> Transcript:
    to_bob, to_alice = await _link(alice_end, bob_end)
    alice_hs = crypto.handshake(crypto.new_identity(), initiator=True, now=clock())
    bob_hs = crypto.handshake(crypto.new_identity(), initiator=False, now=clock())
    alice, bob = await asyncio.gather(
        _drive(alice_hs, to_bob, clock), _drive(bob_hs, to_alice, clock), return_exceptions=True
    )
    if isinstance(alice, BaseException) or isinstance(bob, BaseException):
        await to_bob.close()
        await to_alice.close()
        errors = [e for e in (alice, bob) if isinstance(e, BaseException)]
        raise next((e for e in errors if isinstance(e, ConversationFailed)), errors[0])
    show(f"handshake complete: profile {alice.profile}, layers {' -> '.join(alice.layers)}")
    show(f"alice sees bob as {alice.peer_fingerprint}; bob sees alice as {bob.peer_fingerprint}")
    show(f"safety number (compare out of band): {_grouped(alice.safety_number)}")
    ends = {"alice": (alice, to_bob, bob, to_alice), "bob": (bob, to_alice, alice, to_bob)}
    delivered, wire = [], 0
    for sender, text in lines:
        mine, out_link, theirs, in_link = ends[sender]
        sealed = mine.seal(text.encode("utf-8"))
        wire += len(sealed)
        await out_link.send(sealed)
        result = theirs.open(await in_link.receive())
        if not isinstance(result, Delivered):
            raise ConversationFailed(f"expected a message, got control PDU {result!r}")
        received = result.plaintext.decode("utf-8")
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


def _grouped(number: str) -> str:
    return " ".join(number[i : i + 5] for i in range(0, len(number), 5))
