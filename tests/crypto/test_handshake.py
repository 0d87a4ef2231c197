"""Session handshake: negotiation (peer skew), refusals, transcript binding, contracts, hooks."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from peers import START, connect, failure, pump

import enkrypted_crypto.backends.pyca as pyca_backend
from enkrypted_crypto.backends import check_mlkem768_public
from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import CryptoUsageError
from enkrypted_crypto.plugin import enkrypted_crypto_service
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_crypto_nacl.plugin import enkrypted_crypto_service as nacl_service
from enkrypted_shell.contracts import (
    AppContext,
    CryptoService,
    Delivered,
    Handshake,
    HandshakeComplete,
    HandshakeEvent,
    HandshakeFailed,
    HandshakeMisuse,
    LocalMisuse,
    SecureSession,
    WireLimits,
)
from enkrypted_shell.testing import FakeClock
from tests.vectors import cctv_lines

PYCA = CascadeCryptoService(PycaPrimitives())
PYCA_NO_MLS = CascadeCryptoService(PycaPrimitives(), layers=["Signal", "ML-KEM", "AES"])
NACL = CascadeCryptoService(NaclPrimitives())


def _start(
    sa: CascadeCryptoService = PYCA,
    sb: CascadeCryptoService = PYCA,
    pa: list[str] | None = None,
    pb: list[str] | None = None,
    la: list[str] | None = None,
    lb: list[str] | None = None,
) -> tuple[Handshake, Handshake]:
    a = sa.handshake(sa.new_identity(), initiator=True, now=START, profiles=pa, layers=la)
    b = sb.handshake(sb.new_identity(), initiator=False, now=START, profiles=pb, layers=lb)
    return a, b


def _types(pdus: list[bytes]) -> list[str]:
    return [json.loads(p)["type"] for p in pdus]


def _refused(events: Sequence[HandshakeEvent], match: str = "") -> HandshakeFailed:
    """Exactly one event, a HandshakeFailed whose local reason matches (never an exception)."""
    assert len(events) == 1 and isinstance(events[0], HandshakeFailed), events
    assert re.search(match, events[0].reason), events[0].reason
    return events[0]


def _failed_with(events: Sequence[HandshakeEvent], match: str = "") -> HandshakeFailed:
    failed = failure(events)
    assert re.search(match, failed.reason), failed.reason
    return failed


def test_default_handshake_flights_and_result() -> None:
    ida, idb = PYCA.new_identity(), PYCA.new_identity()
    a = PYCA.handshake(ida, initiator=True, now=START)
    b = PYCA.handshake(idb, initiator=False, now=START)
    assert isinstance(a, Handshake) and not a.complete
    assert a.next_deadline() == b.next_deadline() == START + 300.0
    first = a.data_to_send()
    assert _types(first) == ["signal-key-exchange-request"]
    request = json.loads(first[0])
    assert request["profiles"] == [PROFILE_B1, PROFILE_V0]
    assert request["layers"] == ["MLS", "Signal", "ML-KEM", "AES"]
    assert request["versions"] == ["1"]
    assert b.receive(first[0], 1.0) == []
    second = b.data_to_send()
    assert _types(second) == [
        "mlkem-key-exchange", "mls-key-package-request", "signal-key-exchange-response"
    ]
    assert a.receive(second[0], 2.0) == [] and a.receive(second[1], 2.0) == []
    assert a.receive(second[2], 2.0) == []
    third = a.data_to_send()
    assert _types(third) == [
        "mlkem-key-exchange-response", "mls-key-package", "signal-session-complete"
    ]
    assert not a.complete and not b.complete
    assert b.receive(third[0], 3.0) == [] and b.receive(third[1], 3.0) == []
    assert b.receive(third[2], 3.0) == []
    fourth = b.data_to_send()
    assert _types(fourth) == ["mls-commit", "mls-welcome"]
    assert a.receive(fourth[0], 4.0) == []
    (done_a,) = a.receive(fourth[1], 4.0)
    fifth = a.data_to_send()
    assert _types(fifth) == ["mls-welcome-ack"]
    assert a.complete and not b.complete and a.next_deadline() is None
    (done_b,) = b.receive(fifth[0], 5.0)
    assert isinstance(done_a, HandshakeComplete) and isinstance(done_b, HandshakeComplete)
    sa, sb = done_a.session, done_b.session
    assert sa is a.session() and sb is b.session()  # type: ignore[attr-defined]
    assert isinstance(sa, SecureSession)
    assert sa.profile == sb.profile == PROFILE_B1
    assert sa.layers == sb.layers == ("MLS", "Signal", "ML-KEM", "AES")
    assert sa.peer_fingerprint == PYCA.fingerprint(idb)
    assert sb.peer_fingerprint == PYCA.fingerprint(ida)
    assert sa.safety_number == sb.safety_number and len(sa.safety_number) == 60
    assert sb.open(sa.seal(b"hi")) == Delivered(b"hi")


def test_responder_may_speak_first_after_handshake() -> None:
    sa, sb = connect(PYCA, PYCA, layers=["Signal"])
    assert sa.open(sb.seal(b"first")) == Delivered(b"first")


def test_layers_union_is_negotiated_never_downgraded() -> None:
    a, b = _start(la=["Signal", "AES"], lb=["Signal", "ML-KEM", "AES"])
    pump(a, b)
    assert a.session().layers == b.session().layers == ("Signal", "ML-KEM", "AES")


def test_initiator_profile_preference_wins() -> None:
    a, b = _start(pa=[PROFILE_V0, PROFILE_B1], pb=[PROFILE_B1, PROFILE_V0], la=["Signal"])
    pump(a, b)
    assert a.session().profile == b.session().profile == PROFILE_V0


def test_no_common_profile_is_a_mutual_protocol_error() -> None:
    a, b = _start(pa=[PROFILE_V0], pb=[PROFILE_B1])
    request = a.data_to_send()[0]
    refused = _refused(b.receive(request, 1.0), "no common wire profile")
    (error,) = b.data_to_send()
    assert refused.pdu_to_send == error
    assert json.loads(error)["type"] == "protocol-error"
    assert json.loads(error)["code"] == "no-common-profile"
    told = _refused(a.receive(error, 2.0), "peer refused the handshake: no common wire")
    assert told.pdu_to_send is None and a.data_to_send() == []  # no error about an error
    with pytest.raises(HandshakeMisuse):
        a.receive(error, 3.0)  # failed handshakes stay failed
    assert a.next_deadline() is None and a.handle_timeout(1000.0) == []


def test_peer_without_mlkem_cannot_be_forced_below_our_policy() -> None:
    a, b = _start(sa=PYCA_NO_MLS, sb=NACL)  # pyca requires ML-KEM; nacl cannot serve it
    request = a.data_to_send()[0]
    refused = _refused(b.receive(request, 1.0))
    assert "ml-kem-768" in refused.reason and "pyca" in refused.reason
    (error,) = b.data_to_send()
    _refused(a.receive(error, 2.0), "ml-kem-768")


def test_nacl_initiator_meets_pyca_requiring_mlkem() -> None:
    a, b = _start(sa=NACL, sb=PYCA_NO_MLS)
    _refused(b.receive(a.data_to_send()[0], 1.0), "peer backend 'pynacl' cannot serve")


def test_backend_refuses_layers_it_cannot_serve() -> None:
    with pytest.raises(LocalMisuse, match=r"ml-kem-768.*pyca"):
        NACL.handshake(
            NACL.new_identity(), initiator=True, now=START, layers=["Signal", "ML-KEM", "AES"]
        )
    with pytest.raises(CryptoUsageError, match="ml-kem-768"):
        CascadeCryptoService(NaclPrimitives(), layers=["ML-KEM"])
    assert NACL.default_layers == ("Signal", "AES")
    assert PYCA.default_layers == ("MLS", "Signal", "ML-KEM", "AES")


def _flip(obj: dict[str, list[int]], field: str, index: int) -> None:
    """Change one byte for sure (setting a constant is a no-op when the byte already has it)."""
    obj[field][index] ^= 1


def _tamper_field(direction: str, kind: str, edit):  # type: ignore[no-untyped-def]
    def tamper(d: str, pdu: bytes) -> bytes:
        obj = json.loads(pdu)
        if d == direction and obj["type"] == kind:
            edit(obj)
            return json.dumps(obj).encode()
        return pdu

    return tamper


@pytest.mark.parametrize(
    ("direction", "kind", "edit"),
    [
        ("a->b", "signal-key-exchange-request", lambda o: o.update(backend="evil")),
        ("a->b", "signal-key-exchange-request", lambda o: o["capabilities"].pop()),
        ("b->a", "signal-key-exchange-response", lambda o: o["offer"].update(backend="x")),
        ("b->a", "mlkem-key-exchange", lambda o: _flip(o, "publicKey", 0)),
        ("a->b", "mlkem-key-exchange-response", lambda o: _flip(o, "encapsulated", 5)),
        ("a->b", "signal-session-complete", lambda o: _flip(o, "ratchetMessage", 50)),
    ],
)
def test_tampering_anywhere_fails_confirmation(direction, kind, edit) -> None:  # type: ignore[no-untyped-def]
    a, b = _start()
    failure(pump(a, b, _tamper_field(direction, kind, edit)))
    assert not (a.complete and b.complete)


@pytest.mark.parametrize(
    ("direction", "kind", "edit"),
    [
        ("b->a", "mlkem-key-exchange", lambda o: _flip(o, "publicKey", 0)),
        ("a->b", "mlkem-key-exchange-response", lambda o: _flip(o, "publicKey", 5)),
    ],
)
def test_v0_mlkem_key_tampering_fails_confirmation(direction, kind, edit) -> None:  # type: ignore[no-untyped-def]
    a, b = _start(pa=[PROFILE_V0], pb=[PROFILE_V0], la=["Signal", "ML-KEM"])
    failure(pump(a, b, _tamper_field(direction, kind, edit)))
    assert not (a.complete and b.complete)


def _flights(
    profile: str, responder_layers: list[str] | None = None
) -> tuple[Handshake, Handshake, dict[str, dict[str, object]]]:
    kem = ["Signal", "ML-KEM"]
    lb = ["Signal", "ML-KEM", "AES"] if responder_layers is None else responder_layers
    a, b = _start(pa=[profile], pb=[profile], la=kem, lb=lb)
    seen: dict[str, dict[str, object]] = {}

    def record(direction: str, pdu: bytes) -> bytes:
        obj = json.loads(pdu)
        seen[obj["type"]] = obj
        return pdu

    pump(a, b, record)
    assert a.complete and b.complete
    return a, b, seen


def test_b1_mlkem_is_one_encapsulation_in_the_handshake() -> None:
    """b1: R sends a fresh key, I answers with one encapsulation to it (no key of its own);
    afterwards neither handshake holds ML-KEM key material, and messages carry no encapsulation."""
    a, b, seen = _flights(PROFILE_B1)
    assert len(seen["mlkem-key-exchange"]["publicKey"]) == 1184  # type: ignore[arg-type]
    answer = seen["mlkem-key-exchange-response"]
    assert set(answer) == {"type", "encapsulated"} and len(answer["encapsulated"]) == 1088  # type: ignore[arg-type]
    for handshake in (a, b):  # R dropped its decapsulation key once used; I never made one
        assert handshake._own_mlkem is None and handshake._peer_mlkem is None  # type: ignore[attr-defined]
    sa, sb = a.session(), b.session()  # type: ignore[attr-defined]
    assert sa.layers == ("Signal", "ML-KEM", "AES")  # R's policy adds AES
    overhead = 10 + (3 + 40) + (3 + 8) + (3 + 12) + 3 * 16  # docs/protocol.md §3.2: 127
    assert len(sa.seal(b"hello")) == len(sb.seal(b"hello")) == 5 + overhead
    for _ in range(3):
        assert sb.open(sa.seal(b"ping")) == Delivered(b"ping")
        assert sa.open(sb.seal(b"pong")) == Delivered(b"pong")


def test_v0_mlkem_still_encapsulates_per_message() -> None:
    """Profile-v0 is the spec's: both peers send a key, and every message encapsulates afresh."""
    a, b, seen = _flights(PROFILE_V0)
    assert len(seen["mlkem-key-exchange"]["publicKey"]) == 1184  # type: ignore[arg-type]
    assert set(seen["mlkem-key-exchange-response"]) == {"type", "publicKey"}
    sa, sb = a.session(), b.session()  # type: ignore[attr-defined]
    encapsulations = []
    for i in range(3):
        wire = sa.seal(b"m%d" % i)
        kem = json.loads(wire)["cascadedPayload"]["layerParameters"][1]
        assert set(kem) == {"iv", "salt", "encapsulated"} and len(kem["encapsulated"]) == 1088
        encapsulations.append(bytes(kem["encapsulated"]))
        assert sb.open(wire) == Delivered(b"m%d" % i)
    assert len(set(encapsulations)) == 3


def _invalid_mlkem_key() -> list[int]:
    return list(cctv_lines("ML-KEM-modulus", "ML-KEM-768.txt.gz")[0])


@pytest.mark.parametrize("profile", [PROFILE_B1, PROFILE_V0])
def test_unreduced_mlkem_key_from_responder_is_refused(profile: str) -> None:
    """FIPS 203 §7.2: a key with a coefficient >= q is refused when it arrives (CCTV vector)."""
    a, b = _start(pa=[profile], pb=[profile], la=["Signal", "ML-KEM"])
    bad = _tamper_field(
        "b->a", "mlkem-key-exchange", lambda o: o.update(publicKey=_invalid_mlkem_key())
    )
    refused = _failed_with(pump(a, b, bad), "not reduced modulo q")
    assert refused.pdu_to_send is not None
    error = json.loads(refused.pdu_to_send)
    assert error["type"] == "protocol-error" and error["code"] == "bad-pdu"


def test_unreduced_mlkem_key_from_initiator_is_refused_in_v0() -> None:
    a, b = _start(pa=[PROFILE_V0], pb=[PROFILE_V0], la=["Signal", "ML-KEM"])
    bad = _tamper_field(
        "a->b", "mlkem-key-exchange-response", lambda o: o.update(publicKey=_invalid_mlkem_key())
    )
    _failed_with(pump(a, b, bad), "not reduced modulo q")


def test_b1_answer_in_v0_form_is_refused() -> None:
    a, b = _start(la=["Signal", "ML-KEM"])

    def v0_form(o):  # type: ignore[no-untyped-def]
        del o["encapsulated"]
        o["publicKey"] = [0] * 1184

    refused = _failed_with(
        pump(a, b, _tamper_field("a->b", "mlkem-key-exchange-response", v0_form)), "encapsulated"
    )
    assert refused.pdu_to_send is not None
    assert json.loads(refused.pdu_to_send)["code"] == "bad-pdu"


@pytest.mark.parametrize("profile", [PROFILE_B1, PROFILE_V0])
def test_modulus_check_runs_once_per_received_key(
    profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def counting(public: bytes) -> None:
        calls.append(len(public))
        check_mlkem768_public(public)

    monkeypatch.setattr(pyca_backend, "check_mlkem768_public", counting)
    a, b, _ = _flights(profile, ["Signal", "ML-KEM"])  # no AES: no per-message scrypt in v0
    sa, sb = a.session(), b.session()  # type: ignore[attr-defined]
    for i in range(4):
        assert sb.open(sa.seal(b"%d" % i)) == Delivered(b"%d" % i)
        assert sa.open(sb.seal(b"%d" % i)) == Delivered(b"%d" % i)
    # b1: I checks R's key; v0: each side checks the other's key.  Never per message.
    assert calls == [1184] * (1 if profile == PROFILE_B1 else 2)


def test_response_choice_below_initiator_policy_is_refused() -> None:
    a, b = _start(lb=["Signal", "AES"])

    def strip(o):  # type: ignore[no-untyped-def]
        o["layers"] = ["Signal", "AES"]

    _failed_with(
        pump(a, b, _tamper_field("b->a", "signal-key-exchange-response", strip)),
        "peer chose layers",
    )


@pytest.mark.parametrize(
    "pdu",
    [
        b"not json",
        b"[]",
        b'{"type": 1}',
        b'{"type": "signal-session-complete", "ratchetMessage": []}',
        b'{"type": "mls-key-package-request"}',
        b'{"type": "signal-key-exchange-request"}',
        b"{" + b" " * 70000 + b"}",
    ],
)
def test_bad_pdus_fail_with_a_protocol_error(pdu: bytes) -> None:
    _, b = _start()
    refused = _refused(b.receive(pdu, 1.0))
    assert _types(b.data_to_send()) == ["protocol-error"] == _types([refused.pdu_to_send or b""])


def test_session_before_completion_and_pdus_after_completion() -> None:
    a, b = _start(la=["Signal"])
    with pytest.raises(HandshakeMisuse):
        a.session()  # type: ignore[attr-defined]
    pump(a, b)
    with pytest.raises(HandshakeMisuse):
        a.receive(b'{"type": "signal-key-exchange-response"}', 2.0)
    assert a.handle_timeout(START + 1000) == []  # a finished handshake has no timer


def test_plugin_hooks_return_contract_services(tmp_path: Path) -> None:
    pyca = enkrypted_crypto_service(AppContext(home=tmp_path))
    nacl = nacl_service(AppContext(home=tmp_path, settings={"profiles": [PROFILE_B1]}))
    assert isinstance(pyca, CryptoService) and isinstance(nacl, CryptoService)
    assert pyca.backend == "pyca" and "ml-kem-768" in pyca.capabilities
    assert nacl.backend == "pynacl" and "ml-kem-768" not in nacl.capabilities
    assert pyca.profiles == (PROFILE_B1, PROFILE_V0) and nacl.profiles == (PROFILE_B1,)
    settings: dict[str, object] = {"layers": ["ML-KEM", "AES"], "profiles": [PROFILE_B1]}
    custom = enkrypted_crypto_service(AppContext(home=tmp_path, settings=settings))
    a, _ = connect(custom, custom)  # type: ignore[arg-type]
    assert a.layers == ("ML-KEM", "AES")
    with pytest.raises(CryptoUsageError, match="no replay protection"):  # §2.2 replay rule
        enkrypted_crypto_service(AppContext(home=tmp_path, settings={"layers": ["AES"]}))
    mls_only = enkrypted_crypto_service(AppContext(home=tmp_path, settings={"layers": ["MLS"]}))
    assert connect(mls_only, mls_only)[0].layers == ("MLS",)  # type: ignore[arg-type]
    with pytest.raises(CryptoUsageError, match=r"MLS needs primitive\(s\) mls-suite-1"):
        nacl_service(AppContext(home=tmp_path, settings={"layers": ["MLS", "Signal"]}))
    with pytest.raises(CryptoUsageError):
        enkrypted_crypto_service(AppContext(home=tmp_path, settings={"layers": "Signal"}))


# ------------------------------------------------------------------ timers (P8.6, contract 2.0)
def test_handshake_times_out_300_s_after_it_started() -> None:
    a, b = _start()
    assert a.next_deadline() == b.next_deadline() == START + 300.0
    assert a.handle_timeout(START + 299.999) == []  # not yet
    (timed_out,) = a.handle_timeout(START + 300.0)
    assert isinstance(timed_out, HandshakeFailed) and "300 s" in timed_out.reason
    assert timed_out.pdu_to_send is None  # a local timeout tells the peer nothing
    assert a.next_deadline() is None and a.handle_timeout(START + 301) == []
    request = [p for p in a.data_to_send() if json.loads(p)["type"] != "protocol-error"]
    assert _types(request) == ["signal-key-exchange-request"]  # queued before, nothing after
    with pytest.raises(HandshakeMisuse):
        a.receive(b"{}", START + 302)


def test_a_pdu_after_the_deadline_fails_the_handshake_instead() -> None:
    a, b = _start()
    late = _refused(b.receive(a.data_to_send()[0], START + 300.0), "not complete after 300 s")
    assert late.pdu_to_send is None and b.data_to_send() == []


def test_timeout_follows_the_context_limits_and_start_time(tmp_path: Path) -> None:
    limits = WireLimits(handshake_timeout_s=5.0)
    service = enkrypted_crypto_service(AppContext(home=tmp_path, limits=limits))
    handshake = service.handshake(service.new_identity(), initiator=True, now=1000.0)
    assert handshake.next_deadline() == 1005.0
    assert len(handshake.handle_timeout(1005.0)) == 1


def test_sessions_read_time_from_the_context_clock(tmp_path: Path) -> None:
    clock = FakeClock(1_717_000_000.0)
    service = nacl_service(
        AppContext(home=tmp_path, clock=clock, settings={"profiles": [PROFILE_V0]})
    )
    a, _ = connect(service, service, layers=["Signal", "AES"])  # type: ignore[arg-type]
    wire = json.loads(a.seal(b"when"))
    assert wire["cascadedPayload"]["timestamp"] == 1_717_000_000_000  # seconds -> ms
    clock.advance(2.5)
    assert json.loads(a.seal(b"later"))["cascadedPayload"]["timestamp"] == 1_717_000_002_500
