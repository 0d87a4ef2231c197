"""A saved session always fits one profile-store record (value at most 4 MiB, contracts/store.py):
if it did not, the store would refuse it and the process would go on with a session state newer
than the one on disk — after a restart the older state would reuse keys. What a peer sends and
our application has not taken yet (the inbox) must not push it over, whatever its characters."""

from __future__ import annotations

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.session import MessageReceived, SendPdu, export_core
from enkrypted_shell.contracts import AppContext, CryptoService
from tests.p2p.test_session_core import ready_pair

STORE_VALUE_CAP = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> CryptoService:
    return enkrypted_crypto_service(AppContext(tmp_path_factory.mktemp("crypto")))


def test_a_saved_session_fits_one_store_record_whatever_the_peer_sends(
        crypto: CryptoService) -> None:
    sender, receiver = ready_pair(crypto)
    handed_up = 0
    for n in range(4):  # never taken by the application: every one stays in the inbox
        text = chr(1 + n) * (1024 * 1024 - 64)  # control characters: six bytes each in JSON
        out = sender._seal({"type": "message", "messageId": f"m{n}", "text": text}, acks=True)
        for pdu in (o.pdu for o in out if isinstance(o, SendPdu)):
            handed_up += sum(isinstance(e, MessageReceived)
                             for e in receiver.pdu_received(pdu, 1.0))
    assert handed_up == 4
    saved = export_core(receiver)
    assert saved is not None and len(saved) <= STORE_VALUE_CAP


def test_a_peer_text_with_a_lone_surrogate_is_handed_up_and_saved(crypto: CryptoService) -> None:
    """JSON lets a peer send ``\\ud800`` (not encodable as UTF-8): peer input never raises."""
    sender, receiver = ready_pair(crypto)
    out = sender._seal({"type": "message", "messageId": "m1", "text": "a\ud800b"}, acks=True)
    events = [e for o in out if isinstance(o, SendPdu) for e in receiver.pdu_received(o.pdu, 1.0)]
    assert MessageReceived("m1", "a\ud800b") in events
    assert export_core(receiver) is not None
