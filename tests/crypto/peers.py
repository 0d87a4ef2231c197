"""In-memory peers for handshake, fuzz and interop tests: pump PDUs until both are done."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_shell.contracts import Handshake, HandshakeEvent, HandshakeFailed, SecureSession

Tamper = Callable[[str, bytes], bytes]
"""``tamper(direction, pdu) -> pdu``; direction is ``"a->b"`` or ``"b->a"``."""

START = 0.0
"""``now`` the tests start handshakes at; PDUs are delivered at ``START + 1``."""


def pump(
    a: Handshake, b: Handshake, tamper: Tamper | None = None, rounds: int = 4
) -> list[HandshakeEvent]:
    """Deliver queued PDUs both ways; returns every event, in order.  A handshake that ended is
    fed no more (a driver hands the link to the session, or closes it)."""
    events: list[HandshakeEvent] = []
    for _ in range(rounds):
        for sender, receiver, direction in ((a, b, "a->b"), (b, a, "b->a")):
            for pdu in sender.data_to_send():
                if receiver.next_deadline() is None:
                    continue
                events += receiver.receive(tamper(direction, pdu) if tamper else pdu, START + 1)
    return events


def failure(events: Sequence[HandshakeEvent]) -> HandshakeFailed:
    """The first :class:`HandshakeFailed` among ``events`` (the test fails if there is none)."""
    failed = [e for e in events if isinstance(e, HandshakeFailed)]
    assert failed, f"no HandshakeFailed in {events}"
    return failed[0]


def start(
    sa: CascadeCryptoService,
    sb: CascadeCryptoService,
    *,
    profiles: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
) -> tuple[Handshake, Handshake]:
    a = sa.handshake(sa.new_identity(), initiator=True, now=START, profiles=profiles, layers=layers)
    b = sb.handshake(
        sb.new_identity(), initiator=False, now=START, profiles=profiles, layers=layers
    )
    return a, b


def connect(
    sa: CascadeCryptoService,
    sb: CascadeCryptoService,
    *,
    profiles: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
) -> tuple[SecureSession, SecureSession]:
    a, b = start(sa, sb, profiles=profiles, layers=layers)
    events = pump(a, b)
    assert a.complete and b.complete, events
    return a.session(), b.session()  # type: ignore[attr-defined]
