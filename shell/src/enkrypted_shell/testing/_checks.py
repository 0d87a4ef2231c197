"""One conformance check per slot contract, runnable from a plugin's own test suite.

Each check drives the service through the contract only (never its concrete class) and raises
:class:`ConformanceError` with the rule it broke. They cover behaviour a Protocol cannot express:
the handshake reaches a session on both sides, failures are events not exceptions, the 300 s
handshake timeout, one opaque error for tampered input, typed ``open`` results, state export.
"""

from __future__ import annotations

__all__ = ["ConformanceError", "check_crypto_service", "check_transport_service", "check_ui_service"]

import asyncio
from collections.abc import Callable

from ..contracts import (
    CONTRACT_VERSIONS,
    WIRE_LIMITS,
    ControlApplied,
    CryptoFailure,
    CryptoService,
    Delivered,
    Handshake,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeMisuse,
    LinkClosed,
    SecureSession,
    TransportService,
    service_problems,
)


class ConformanceError(AssertionError):
    """The implementation breaks a rule of its contract (the message names it)."""


def _require(condition: bool, rule: str) -> None:
    if not condition:
        raise ConformanceError(rule)


def _shape(slot: str, service: object, version: str | None) -> None:
    problems = service_problems(slot, version or CONTRACT_VERSIONS[slot], service)
    _require(not problems, f"{slot} contract: {'; '.join(problems)}")


# ------------------------------------------------------------------------------------------ crypto
def check_crypto_service(make: Callable[[], CryptoService], *, version: str | None = None) -> None:
    """Two services from ``make`` handshake, exchange, rotate, export/restore and fail as the
    crypto contract says."""
    alice, bob = make(), make()
    _shape("crypto", alice, version)
    a_id, b_id = alice.new_identity(), bob.new_identity()
    _require(alice.fingerprint(a_id) != bob.fingerprint(b_id), "distinct identities share a fingerprint")
    a_session, b_session = _handshake(alice, a_id, bob, b_id)
    _require(a_session.peer_fingerprint == bob.fingerprint(b_id), "peer_fingerprint is not the peer's fingerprint")
    _require(b_session.peer_fingerprint == alice.fingerprint(a_id), "peer_fingerprint is not the peer's fingerprint")
    _require(a_session.safety_number == b_session.safety_number, "the two sides compute different safety numbers")
    _require((a_session.profile, a_session.layers) == (b_session.profile, b_session.layers),
             "the two sides negotiated different profiles or layers")
    _exchange(a_session, b_session)
    _tampering_is_opaque(a_session, b_session)
    _rotation(a_session, b_session)
    _export_restore(bob, a_session, b_session)
    _handshake_failures(alice, a_id, bob, b_id)


def _pump(first: Handshake, second: Handshake, now: float) -> tuple[SecureSession | None, SecureSession | None]:
    sessions: list[SecureSession | None] = [None, None]
    sides = (first, second)
    for _ in range(16):  # every profile completes in a handful of round trips
        moved = False
        for i, (sender, receiver) in enumerate(((first, second), (second, first))):
            for pdu in sender.data_to_send():
                moved = True
                for event in receiver.receive(pdu, now):
                    _require(not isinstance(event, HandshakeFailed), f"handshake failed: {getattr(event, 'reason', '')}")
                    if isinstance(event, HandshakeComplete):
                        sessions[1 - i] = event.session
        if not moved:
            break
    _require(all(side.complete for side in sides), "the handshake did not complete on both sides")
    return sessions[0], sessions[1]


def _handshake(alice: CryptoService, a_id: bytes, bob: CryptoService, b_id: bytes) -> tuple[SecureSession, SecureSession]:
    a = alice.handshake(a_id, initiator=True, now=0.0)
    b = bob.handshake(b_id, initiator=False, now=0.0)
    a_session, b_session = _pump(a, b, 1.0)
    _require(a_session is not None and b_session is not None, "HandshakeComplete was not returned on both sides")
    assert a_session is not None and b_session is not None
    _require(a.next_deadline() is None and b.next_deadline() is None, "a finished handshake still has a deadline")
    return a_session, b_session


def _exchange(a: SecureSession, b: SecureSession) -> None:
    for sender, receiver in ((a, b), (b, a), (a, b)):
        for text in (b"hello", b"", bytes(range(256)) * 40):
            result = receiver.open(sender.seal(text))
            _require(result == Delivered(text), "open did not return Delivered(plaintext) for a sealed message")


def _tampering_is_opaque(a: SecureSession, b: SecureSession) -> None:
    wire = a.seal(b"genuine")
    for bad in (wire[:-1] + bytes([wire[-1] ^ 1]), wire[: len(wire) // 2], b"", b"\x00" * 64):
        try:
            b.open(bad)
        except CryptoFailure:
            continue
        raise ConformanceError("a tampered or truncated message was not refused with CryptoFailure")
    _require(b.open(wire) == Delivered(b"genuine"), "a refused message changed the session state")


def _rotation(a: SecureSession, b: SecureSession) -> None:
    control = a.rotate(10.0)
    if control is not None:
        _require(isinstance(b.open(control), ControlApplied), "a rotation PDU did not open as ControlApplied")
    _require(b.open(a.seal(b"after rotation")) == Delivered(b"after rotation"), "messages after a rotation fail")


def _export_restore(bob: CryptoService, a: SecureSession, b: SecureSession) -> None:
    restored = bob.restore(b.export_state())
    _require((restored.profile, restored.layers, restored.peer_fingerprint) == (b.profile, b.layers, b.peer_fingerprint),
             "a restored session differs from the exported one")
    _require(restored.open(a.seal(b"resumed")) == Delivered(b"resumed"), "a restored session cannot open new messages")
    _require(a.open(restored.seal(b"reply")) == Delivered(b"reply"), "a restored session cannot seal")


def _handshake_failures(alice: CryptoService, a_id: bytes, bob: CryptoService, b_id: bytes) -> None:
    b = bob.handshake(b_id, initiator=False, now=0.0)
    events = b.receive(b"\xff not a handshake PDU", 1.0)
    _require(len(events) == 1 and isinstance(events[0], HandshakeFailed), "a malformed PDU did not give HandshakeFailed")
    failed = events[0]
    assert isinstance(failed, HandshakeFailed)
    _require(failed.pdu_to_send is not None, "the peer is not told why the handshake failed (protocol-error)")
    try:
        b.receive(b"{}", 2.0)
    except HandshakeMisuse:
        pass
    else:
        raise ConformanceError("receive after the handshake ended did not raise HandshakeMisuse")
    a = alice.handshake(a_id, initiator=True, now=100.0)
    deadline = a.next_deadline()
    _require(deadline is not None and deadline <= 100.0 + WIRE_LIMITS.handshake_timeout_s,
             "the handshake deadline is missing or later than the 300 s handshake timeout")
    assert deadline is not None
    _require(a.handle_timeout(deadline - 1.0) == [], "a timer fired before its deadline")
    timed_out = a.handle_timeout(deadline)
    _require(len(timed_out) == 1 and isinstance(timed_out[0], HandshakeFailed), "the handshake timeout did not fail the handshake")


# ------------------------------------------------------------------------------------------ p2p / ui
def check_transport_service(service: TransportService, *, version: str | None = None) -> None:
    """The transport's links are ordered, carry bytes unchanged and end with :class:`LinkClosed`."""
    _shape("p2p", service, version)

    async def run() -> None:
        first, second = await service.loopback_pair("alice", "bob")
        _require((first.peer_id, second.peer_id) == ("bob", "alice"), "peer_id is not the remote end")
        for i in range(50):
            await first.send(b"%d" % i)
        got = [await second.receive() for _ in range(50)]
        _require(got == [b"%d" % i for i in range(50)], "a link reordered or changed PDUs")
        await first.close()
        await first.close()  # idempotent
        for end in (first, second):
            try:
                await asyncio.wait_for(end.send(b"x") if end is first else end.receive(), 5)
            except LinkClosed:
                continue
            raise ConformanceError("a closed link did not raise LinkClosed")

    asyncio.run(run())


def check_ui_service(service: object, *, version: str | None = None) -> None:
    """The ui service has the shape of its contract (behaviour is the ui's own to test)."""
    _shape("ui", service, version)
