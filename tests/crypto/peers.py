"""In-memory peers for handshake, fuzz and interop tests: pump PDUs until both are done."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_shell.contracts import Handshake, SecureSession

Tamper = Callable[[str, bytes], bytes]
"""``tamper(direction, pdu) -> pdu``; direction is ``"a->b"`` or ``"b->a"``."""


def pump(a: Handshake, b: Handshake, tamper: Tamper | None = None, rounds: int = 4) -> None:
    for _ in range(rounds):
        for pdu in a.data_to_send():
            b.receive(tamper("a->b", pdu) if tamper else pdu)
        for pdu in b.data_to_send():
            a.receive(tamper("b->a", pdu) if tamper else pdu)


def connect(
    sa: CascadeCryptoService,
    sb: CascadeCryptoService,
    *,
    profiles: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
) -> tuple[SecureSession, SecureSession]:
    a = sa.handshake(sa.new_identity(), initiator=True, profiles=profiles, layers=layers)
    b = sb.handshake(sb.new_identity(), initiator=False, profiles=profiles, layers=layers)
    pump(a, b)
    assert a.complete and b.complete
    return a.session(), b.session()
