"""Rules that keep hostile peers cheap and harmless (``docs/protocol.md``):

* the replay rule (§2.2): no session whose layers accept replayed or reflected messages, refused
  in configuration, by the responder and by the initiator;
* JSON bounds before parsing (§4, P8.4): Profile-v0 messages and handshake PDUs are refused on
  size, depth and container/string counts before ``json.loads`` allocates anything;
* a handshake never raises for the peer's fault (§2.2, crypto contract 2.0): a nested, reflected
  or unexpected PDU ends it with ``HandshakeFailed`` and a ``bad-pdu`` whose text is fixed, so
  what was wrong stays local."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from peers import START, connect, pump

import enkrypted_crypto.handshake as handshake_module
from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import CryptoUsageError, DecryptionFailed, MalformedInput
from enkrypted_crypto.handshake import CascadeHandshake, HandshakeConfig
from enkrypted_crypto.jsonbounds import check_json_bounds
from enkrypted_crypto.limits import DEFAULT_LIMITS
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0, V0Codec
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_crypto.session_layers import LayerRegistry, replay_protection_problem
from enkrypted_crypto.x3dh import IdentityKeyPair
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_shell.contracts import (
    Delivered,
    HandshakeEvent,
    HandshakeFailed,
    HandshakeMisuse,
    LocalMisuse,
)

PRIMS = PycaPrimitives()
PYCA = CascadeCryptoService(PRIMS)
NACL = CascadeCryptoService(NaclPrimitives())


def _raw(
    layers: tuple[str, ...], profiles: tuple[str, ...], *, initiator: bool
) -> CascadeHandshake:
    """A handshake built without the service's configuration check (an old or hostile peer)."""
    config = HandshakeConfig(PRIMS, profiles, layers, LayerRegistry())
    return CascadeHandshake(config, IdentityKeyPair.generate(PRIMS), initiator=initiator, now=START)


def _refused(events: Sequence[HandshakeEvent], match: str = "") -> HandshakeFailed:
    """Exactly one event, a HandshakeFailed whose local reason matches (never an exception)."""
    assert len(events) == 1 and isinstance(events[0], HandshakeFailed), events
    assert re.search(match, events[0].reason), events[0].reason
    return events[0]


def _error(pdus: list[bytes]) -> dict[str, object]:
    (pdu,) = pdus
    error = json.loads(pdu)
    assert error["type"] == "protocol-error"
    return error  # type: ignore[no-any-return]


# ------------------------------------------------------------------ replay rule (§2.2)
def test_replay_rule() -> None:
    for profile in (PROFILE_B1, PROFILE_V0):
        assert replay_protection_problem(["Signal"], profile) is None
        assert replay_protection_problem(["Signal", "ML-KEM", "AES"], profile) is None
        assert replay_protection_problem(["AES"], profile) is not None
    assert replay_protection_problem(["ML-KEM", "AES"], PROFILE_B1) is None  # replay window
    assert replay_protection_problem(["ML-KEM", "AES"], PROFILE_V0) is not None
    assert replay_protection_problem(["ML-KEM"], PROFILE_V0) is not None


def test_configuration_without_replay_protection_is_refused() -> None:
    with pytest.raises(CryptoUsageError, match="no replay protection"):
        CascadeCryptoService(PRIMS, layers=["AES"])
    with pytest.raises(CryptoUsageError, match="no replay protection"):
        CascadeCryptoService(NaclPrimitives(), layers=["AES"], profiles=[PROFILE_B1])
    with pytest.raises(CryptoUsageError, match="restrict profiles to Profile-b1"):
        CascadeCryptoService(PRIMS, layers=["ML-KEM", "AES"])  # default profiles include v0
    with pytest.raises(CryptoUsageError, match="no replay protection"):
        CascadeCryptoService(PRIMS, layers=["ML-KEM", "AES"], profiles=[PROFILE_V0])
    ok = CascadeCryptoService(PRIMS, layers=["ML-KEM", "AES"], profiles=[PROFILE_B1])
    assert ok.default_layers == ("ML-KEM", "AES")
    for profiles, layers in (([PROFILE_B1], ["AES"]), ([PROFILE_V0], ["ML-KEM", "AES"])):
        with pytest.raises(LocalMisuse, match="no replay protection"):
            PYCA.handshake(
                PYCA.new_identity(), initiator=True, now=START, profiles=profiles, layers=layers
            )


@pytest.mark.parametrize(
    ("profile", "layers"),
    [(PROFILE_B1, ["ML-KEM", "AES"]), (PROFILE_B1, ["Signal", "AES"]), (PROFILE_V0, ["Signal"])],
)
def test_accepted_layer_sets_refuse_replay_and_reflection(profile: str, layers: list[str]) -> None:
    a, b = connect(PYCA, PYCA, profiles=[profile], layers=layers)
    message = a.seal(b"transfer 100 EUR")
    assert b.open(message) == Delivered(b"transfer 100 EUR")
    with pytest.raises(DecryptionFailed):
        b.open(message)  # replay
    with pytest.raises(DecryptionFailed):
        a.open(message)  # reflection


def test_responder_refuses_to_negotiate_an_unprotected_set() -> None:
    a = _raw(("AES",), (PROFILE_B1,), initiator=True)
    b = _raw(("AES",), (PROFILE_B1,), initiator=False)
    _refused(b.receive(a.data_to_send()[0], 1.0), "no replay protection")
    error = _error(b.data_to_send())
    assert error["code"] == "no-common-layers"
    _refused(a.receive(json.dumps(error).encode(), 2.0), "peer refused")


def test_responder_with_signal_adds_it_for_a_peer_without() -> None:
    a = _raw(("AES",), (PROFILE_B1,), initiator=True)
    b = PYCA.handshake(PYCA.new_identity(), initiator=False, now=START, layers=["Signal", "AES"])
    pump(a, b)
    assert a.session().layers == b.session().layers == ("Signal", "AES")


def test_initiator_refuses_an_unprotected_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _raw(("ML-KEM", "AES"), (PROFILE_B1, PROFILE_V0), initiator=True)
    b = _raw(("ML-KEM", "AES"), (PROFILE_V0,), initiator=False)
    with monkeypatch.context() as patch:  # a responder that does not apply the rule
        patch.setattr(handshake_module, "replay_protection_problem", lambda *_: None)
        assert b.receive(a.data_to_send()[0], 1.0) == []
    events = [event for pdu in b.data_to_send() for event in a.receive(pdu, 2.0)]
    _refused(events, "no replay protection")
    assert _error(a.data_to_send())["code"] == "no-common-layers"


def test_aes_only_offer_is_raised_to_signal_by_the_responder() -> None:
    a = _raw(("AES",), (PROFILE_B1,), initiator=True)
    b = NACL.handshake(NACL.new_identity(), initiator=False, now=START)  # Signal, AES
    pump(a, b)
    assert b.session().layers == ("Signal", "AES")


# ------------------------------------------------------------------ JSON bounds (§4, P8.4)
@pytest.fixture(scope="module")
def v0_pair() -> tuple[object, object]:
    return connect(PYCA, PYCA, profiles=[PROFILE_V0], layers=["Signal"])


@pytest.mark.parametrize("unit", [b"[],", b"{},", b'"ab",'])
def test_v0_many_values_are_refused_before_parsing(
    v0_pair: tuple[object, object], unit: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, b = v0_pair
    body = b"[" + unit * 300_000 + b"[]]"
    message = b'{"encrypted":true,"cascaded":true,"cascadedPayload":{"finalCiphertext":'
    message += body + b"}}"

    def no_parse(*_: object, **__: object) -> object:
        raise AssertionError("json.loads reached")

    monkeypatch.setattr(json, "loads", no_parse)
    with pytest.raises(DecryptionFailed) as caught:
        b.open(message)  # type: ignore[attr-defined]
    assert str(caught.value) == "decryption failed"


def test_v0_depth_and_params_bounds(v0_pair: tuple[object, object]) -> None:
    a, b = v0_pair
    codec = V0Codec()
    layers = b._manager.layers  # type: ignore[attr-defined]
    good = json.loads(a.seal(b"hi"))  # type: ignore[attr-defined]

    deep = json.loads(json.dumps(good))
    deep["cascadedPayload"]["layers"][0]["metadata"] = {"x": json.loads("[" * 12 + "]" * 12)}
    with pytest.raises(MalformedInput, match="deeper than 16"):
        codec.decode(json.dumps(deep).encode(), layers)

    many = json.loads(json.dumps(good))
    many["cascadedPayload"]["layerParameters"][0].update({f"k{i}": 0 for i in range(5)})
    with pytest.raises(MalformedInput, match="too many layer parameters"):
        codec.decode(json.dumps(many).encode(), layers)
    tight = V0Codec(dataclasses.replace(DEFAULT_LIMITS, max_json_containers=5))
    with pytest.raises(MalformedInput, match="too many arrays"):
        tight.decode(json.dumps(good).encode(), layers)
    assert b.open(json.dumps(good).encode()) == Delivered(b"hi")  # type: ignore[attr-defined]


def test_json_bounds_scan() -> None:
    check_json_bounds(b'{"a":"[[[[[[[[[[","b":[1]}', max_depth=2)  # brackets in strings
    check_json_bounds(b'{"a":"\\"[[[[[[[[","b":"\\\\"}', max_depth=1)  # escaped quotes
    with pytest.raises(MalformedInput):
        check_json_bounds(b'{"a":"\\\\",[[[]]]}', max_depth=3)  # \\ ends the escape
    with pytest.raises(MalformedInput):
        check_json_bounds(b"[" * 17 + b"]" * 17, max_depth=16)
    with pytest.raises(MalformedInput):
        check_json_bounds(b'["a","b","c"]', max_depth=4, max_strings=2)
    check_json_bounds(b"[" * 16 + b"]" * 16, max_depth=16, max_containers=16)


# ------------------------------------------- hostile handshake PDUs: events, never raises (§2.2)
def _pair(identity: bytes | None = None) -> tuple[CascadeHandshake, CascadeHandshake]:
    a_id = identity or PYCA.new_identity()
    b_id = identity or PYCA.new_identity()
    a = PYCA.handshake(a_id, initiator=True, now=START)
    b = PYCA.handshake(b_id, initiator=False, now=START)
    assert isinstance(a, CascadeHandshake) and isinstance(b, CascadeHandshake)
    return a, b


def test_deeply_nested_handshake_pdu_fails_the_handshake() -> None:
    a, _ = _pair()
    (request,) = a.data_to_send()
    for depth in (17, 995):
        _, b = _pair()
        nested = request[:-1] + b',"zz":' + b"[" * depth + b"]" * depth + b"}"
        _refused(b.receive(nested, 1.0), "bad-pdu")
        assert _error(b.data_to_send())["code"] == "bad-pdu"
        with pytest.raises(HandshakeMisuse, match="already failed"):
            b.receive(request, 2.0)


def test_unexpected_exception_is_a_bad_pdu(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _pair()

    def boom(self: object, obj: object) -> None:
        raise RecursionError("simulated")

    monkeypatch.setattr(CascadeHandshake, "_on_request", boom)
    _refused(b.receive(a.data_to_send()[0], 1.0), "bad-pdu")
    assert _error(b.data_to_send()) == {
        "type": "protocol-error",
        "code": "bad-pdu",
        "message": "handshake PDU rejected",
    }
    with pytest.raises(HandshakeMisuse, match="already failed"):
        b.receive(b"{}", 2.0)


def test_reflected_handshake_is_refused_by_the_responder() -> None:
    a, b = _pair(PYCA.new_identity())
    _refused(b.receive(a.data_to_send()[0], 1.0), "our own identity")
    assert _error(b.data_to_send())["code"] == "bad-pdu"


def test_reflected_handshake_is_refused_by_the_initiator() -> None:
    a, b = _pair(PYCA.new_identity())
    b._refuse_own_identity = lambda peer: None  # type: ignore[method-assign]  # a blind responder
    assert b.receive(a.data_to_send()[0], 1.0) == []
    events = [event for pdu in b.data_to_send() for event in a.receive(pdu, 2.0)]
    _refused(events, "our own identity")
    assert _error(a.data_to_send())["code"] == "bad-pdu"
    assert not a.complete


def test_own_pdus_echoed_back_are_refused() -> None:
    """A PDU reflected to its sender (wrong state for it) fails the handshake, never raises."""
    a, _ = _pair()
    (request,) = a.data_to_send()
    refused = _refused(a.receive(request, 1.0), "unexpected")
    assert refused.pdu_to_send is not None
    assert json.loads(refused.pdu_to_send)["code"] == "unexpected-pdu"


def test_bad_pdu_detail_stays_local() -> None:
    a, b = _pair()
    request = json.loads(a.data_to_send()[0])
    request["identitySignature"][0] ^= 1
    _refused(b.receive(json.dumps(request).encode(), 1.0), "signature does not verify")
    assert _error(b.data_to_send())["message"] == "handshake PDU rejected"


_PDU_TYPES = [
    "signal-key-exchange-request",
    "signal-key-exchange-response",
    "mlkem-key-exchange",
    "mlkem-key-exchange-response",
    "signal-session-complete",
    "protocol-error",
    "mls-welcome",
]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=120, deadline=None)
@given(
    pdu=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda kind, extra: json.dumps({**extra, "type": kind}).encode(),
            st.sampled_from(_PDU_TYPES),
            st.dictionaries(st.text(max_size=20), _JSON, max_size=6),
        ),
    ),
    side=st.sampled_from(["initiator", "responder", "responder-after-request"]),
)
def test_no_peer_input_makes_receive_raise(pdu: bytes, side: str) -> None:
    """Crypto contract 2.0: whatever the peer sends, in whatever state, ``receive`` returns
    events: a PDU the handshake cannot use ends it with one HandshakeFailed, never an exception."""
    a, b = _pair()
    request = a.data_to_send()[0]
    target = a if side == "initiator" else b
    if side == "responder-after-request":
        assert b.receive(request, 1.0) == []
        b.data_to_send()
    events = target.receive(pdu, 2.0)
    assert len(events) == 1 and isinstance(events[0], HandshakeFailed), events
    assert target.next_deadline() is None
    with pytest.raises(HandshakeMisuse):
        target.receive(request, 3.0)
