"""Review 5 regressions: replay-safe layer sets (F1), v0 JSON bounds before parsing (F2),
nested handshake PDUs (F3), reflected handshakes (F4), generic protocol-error text (F5)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from peers import connect, pump

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
from enkrypted_shell.contracts import HandshakeFailure

PRIMS = PycaPrimitives()
PYCA = CascadeCryptoService(PRIMS)
NACL = CascadeCryptoService(NaclPrimitives())


def _raw(
    layers: tuple[str, ...], profiles: tuple[str, ...], *, initiator: bool
) -> CascadeHandshake:
    """A handshake built without the service's configuration check (an old or hostile peer)."""
    config = HandshakeConfig(PRIMS, profiles, layers, LayerRegistry())
    return CascadeHandshake(config, IdentityKeyPair.generate(PRIMS), initiator=initiator)


def _error(pdus: list[bytes]) -> dict[str, object]:
    (pdu,) = pdus
    error = json.loads(pdu)
    assert error["type"] == "protocol-error"
    return error  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ F1
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
        with pytest.raises(HandshakeFailure, match="no replay protection"):
            PYCA.handshake(PYCA.new_identity(), initiator=True, profiles=profiles, layers=layers)


@pytest.mark.parametrize(
    ("profile", "layers"),
    [(PROFILE_B1, ["ML-KEM", "AES"]), (PROFILE_B1, ["Signal", "AES"]), (PROFILE_V0, ["Signal"])],
)
def test_accepted_layer_sets_refuse_replay_and_reflection(profile: str, layers: list[str]) -> None:
    a, b = connect(PYCA, PYCA, profiles=[profile], layers=layers)
    message = a.seal(b"transfer 100 EUR")
    assert b.open(message) == b"transfer 100 EUR"
    with pytest.raises(DecryptionFailed):
        b.open(message)  # replay
    with pytest.raises(DecryptionFailed):
        a.open(message)  # reflection


def test_responder_refuses_to_negotiate_an_unprotected_set() -> None:
    a = _raw(("AES",), (PROFILE_B1,), initiator=True)
    b = _raw(("AES",), (PROFILE_B1,), initiator=False)
    with pytest.raises(HandshakeFailure, match="no replay protection"):
        b.receive(a.data_to_send()[0])
    error = _error(b.data_to_send())
    assert error["code"] == "no-common-layers"
    with pytest.raises(HandshakeFailure, match="peer refused"):
        a.receive(json.dumps(error).encode())


def test_responder_with_signal_adds_it_for_a_peer_without() -> None:
    a = _raw(("AES",), (PROFILE_B1,), initiator=True)
    b = PYCA.handshake(PYCA.new_identity(), initiator=False, layers=["Signal", "AES"])
    pump(a, b)
    assert a.session().layers == b.session().layers == ("Signal", "AES")


def test_initiator_refuses_an_unprotected_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    a = _raw(("ML-KEM", "AES"), (PROFILE_B1, PROFILE_V0), initiator=True)
    b = _raw(("ML-KEM", "AES"), (PROFILE_V0,), initiator=False)
    with monkeypatch.context() as patch:  # a responder that does not apply the rule
        patch.setattr(handshake_module, "replay_protection_problem", lambda *_: None)
        b.receive(a.data_to_send()[0])
    with pytest.raises(HandshakeFailure, match="no replay protection"):
        for pdu in b.data_to_send():
            a.receive(pdu)
    assert _error(a.data_to_send())["code"] == "no-common-layers"


def test_aes_only_offer_is_raised_to_signal_by_the_responder() -> None:
    a = _raw(("AES",), (PROFILE_B1,), initiator=True)
    b = NACL.handshake(NACL.new_identity(), initiator=False)  # Signal, AES
    pump(a, b)
    assert b.session().layers == ("Signal", "AES")


# ------------------------------------------------------------------------------ F2
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
    assert b.open(json.dumps(good).encode()) == b"hi"  # type: ignore[attr-defined]


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


# ------------------------------------------------------------------------------ F3
def test_deeply_nested_handshake_pdu_fails_the_handshake() -> None:
    a = PYCA.handshake(PYCA.new_identity(), initiator=True)
    b = PYCA.handshake(PYCA.new_identity(), initiator=False)
    (request,) = a.data_to_send()
    for depth in (17, 995):
        b = PYCA.handshake(PYCA.new_identity(), initiator=False)
        nested = request[:-1] + b',"zz":' + b"[" * depth + b"]" * depth + b"}"
        with pytest.raises(HandshakeFailure, match="bad-pdu"):
            b.receive(nested)
        assert _error(b.data_to_send())["code"] == "bad-pdu"
        with pytest.raises(HandshakeFailure, match="already failed"):
            b.receive(request)


def test_unexpected_exception_is_a_bad_pdu(monkeypatch: pytest.MonkeyPatch) -> None:
    a = PYCA.handshake(PYCA.new_identity(), initiator=True)
    b = PYCA.handshake(PYCA.new_identity(), initiator=False)

    def boom(self: object, obj: object) -> None:
        raise RecursionError("simulated")

    monkeypatch.setattr(CascadeHandshake, "_on_request", boom)
    with pytest.raises(HandshakeFailure, match="bad-pdu"):
        b.receive(a.data_to_send()[0])
    assert _error(b.data_to_send()) == {
        "type": "protocol-error",
        "code": "bad-pdu",
        "message": "handshake PDU rejected",
    }
    with pytest.raises(HandshakeFailure, match="already failed"):
        b.receive(b"{}")


# ------------------------------------------------------------------------------ F4
def test_reflected_handshake_is_refused_by_the_responder() -> None:
    identity = PYCA.new_identity()
    a = PYCA.handshake(identity, initiator=True)
    b = PYCA.handshake(identity, initiator=False)
    with pytest.raises(HandshakeFailure, match="our own identity"):
        b.receive(a.data_to_send()[0])
    assert _error(b.data_to_send())["code"] == "bad-pdu"


def test_reflected_handshake_is_refused_by_the_initiator() -> None:
    identity = PYCA.new_identity()
    a = PYCA.handshake(identity, initiator=True)
    b = PYCA.handshake(identity, initiator=False)
    b._refuse_own_identity = lambda peer: None  # type: ignore[attr-defined]  # a blind responder
    b.receive(a.data_to_send()[0])
    with pytest.raises(HandshakeFailure, match="our own identity"):
        for pdu in b.data_to_send():
            a.receive(pdu)
    assert _error(a.data_to_send())["code"] == "bad-pdu"
    assert not a.complete


# ------------------------------------------------------------------------------ F5
def test_bad_pdu_detail_stays_local() -> None:
    a = PYCA.handshake(PYCA.new_identity(), initiator=True)
    b = PYCA.handshake(PYCA.new_identity(), initiator=False)
    request = json.loads(a.data_to_send()[0])
    request["identitySignature"][0] ^= 1
    with pytest.raises(HandshakeFailure, match="signature does not verify"):
        b.receive(json.dumps(request).encode())
    assert _error(b.data_to_send())["message"] == "handshake PDU rejected"
