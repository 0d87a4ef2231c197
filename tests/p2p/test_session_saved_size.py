"""A saved session always fits one profile-store record (value at most 4 MiB, contracts/store.py):
if it did not, the store would refuse it and the process would go on with a session state newer
than the one on disk — after a restart the older state would reuse keys. What a peer sends and
our application has not taken yet (the inbox) must not push it over, whatever its characters."""

from __future__ import annotations

import pytest

from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_p2p.session import MessageReceived, SendPdu, SessionOutput, export_core
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


def test_the_windows_count_each_text_once_as_messages_come_and_go(
        crypto: CryptoService, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unacknowledged window and the inbox keep a running total of their saved sizes: a send
    or a delivery measures its own text only (summing the whole window on each one was quadratic
    in a bulk transfer: 64 KiB texts, 256 of them in flight), and the total stays exact as
    receipts, takes and evictions remove texts."""
    from enkrypted_p2p.session import _core, _framing

    sender, receiver = ready_pair(crypto)
    measured: list[int] = []
    real = _framing.saved_size

    def counted(text: str) -> int:
        measured.append(len(text))
        return real(text)

    monkeypatch.setattr(_framing, "saved_size", counted)
    monkeypatch.setattr(_core, "saved_size", counted)
    texts = [f"m{n}" + ("\x01" if n % 3 == 0 else "") * n + 'x"' * n for n in range(200)]
    outputs: list[list[SessionOutput]] = []
    for text in texts:
        outputs.append(sender.send_text(text)[1])
    assert len(measured) <= 2 * len(texts)  # each text measured at most once or twice
    assert sender.unacknowledged.saved_bytes == sum(map(real, texts))
    measured.clear()
    for out in outputs:
        for pdu in (o.pdu for o in out if isinstance(o, SendPdu)):
            receiver.pdu_received(pdu, 1.0)
    assert len(measured) <= len(texts)
    assert receiver.inbox.saved_bytes == sum(map(real, receiver.inbox.values()))
    for message_id in list(receiver.inbox)[::2]:
        assert receiver.taken(message_id)
    assert receiver.inbox.saved_bytes == sum(map(real, receiver.inbox.values()))
    first = next(iter(sender.unacknowledged))
    del sender.unacknowledged[first]
    sender.unacknowledged.pop(next(iter(sender.unacknowledged)))
    assert sender.unacknowledged.saved_bytes == sum(map(real, sender.unacknowledged.values()))
    sender.unacknowledged.clear()
    assert sender.unacknowledged.saved_bytes == 0 and not sender.unacknowledged


def test_a_text_set_again_keeps_its_place_and_is_counted_once() -> None:
    from enkrypted_p2p.session._framing import SavedTexts, saved_size

    texts = SavedTexts()
    texts["a"], texts["b"] = "one", "two"
    texts["a"] = "\x01" * 10
    assert list(texts) == ["a", "b"] and texts["a"] == "\x01" * 10
    assert texts.saved_bytes == saved_size("\x01" * 10) + saved_size("two")
    assert texts.pop_oldest() == ("a", "\x01" * 10) and texts.saved_bytes == saved_size("two")
