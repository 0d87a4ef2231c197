"""Cross-backend interop (pyca <-> PyNaCl) and the checked-in deterministic protocol vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import vector_primitives
from peers import connect

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import DecryptionFailed
from enkrypted_crypto.layers.mlkem import (
    EPOCH_MESSAGES,
    MlKemSessionKeys,
    MlKemSessionLayer,
    b1_session_secret,
)
from enkrypted_crypto.primitives import Primitives
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_shell.contracts import Delivered, HandshakeComplete

VECTORS = json.loads((Path(__file__).parent / "vectors" / "protocol-vectors.json").read_text())
BY_NAME = {v["name"]: v for v in VECTORS["vectors"]}
PYCA = CascadeCryptoService(PycaPrimitives())
NACL = CascadeCryptoService(NaclPrimitives())
BACKENDS_BY_NAME: dict[str, Primitives] = {"pyca": PycaPrimitives(), "nacl": NaclPrimitives()}


@pytest.mark.parametrize(
    ("profile", "layers"),
    [
        (PROFILE_B1, ["Signal", "AES"]),
        (PROFILE_B1, ["Signal"]),
        # (PROFILE_B1, ["AES"]) is refused: no replay protection (docs/protocol.md §2.2).
        (PROFILE_V0, ["Signal", "AES"]),
        (PROFILE_V0, ["Signal"]),
    ],
)
@pytest.mark.parametrize("nacl_first", [True, False], ids=["nacl-initiates", "pyca-initiates"])
def test_pyca_and_nacl_talk(profile: str, layers: list[str], nacl_first: bool) -> None:
    first, second = (NACL, PYCA) if nacl_first else (PYCA, NACL)
    a, b = connect(first, second, profiles=[profile], layers=layers)
    assert a.profile == b.profile == profile and a.layers == b.layers == tuple(layers)
    rounds = 2 if profile == PROFILE_V0 and "AES" in layers else 6
    for i in range(rounds):
        assert b.open(a.seal(b"a%d" % i)) == Delivered(b"a%d" % i)
        assert a.open(b.seal(b"b%d" % i)) == Delivered(b"b%d" % i)
    if profile == PROFILE_B1:
        big = bytes(range(256)) * 4096  # 1 MiB
        assert b.open(a.seal(big)) == Delivered(big)
    with pytest.raises(DecryptionFailed):
        b.open(a.seal(b"x")[:-1])


def test_default_services_negotiate_what_both_serve() -> None:
    """nacl's default set is Signal+AES; a pyca peer configured the same way agrees."""
    pyca_compatible = CascadeCryptoService(PycaPrimitives(), layers=list(NACL.default_layers))
    a, _ = connect(NACL, pyca_compatible)
    assert a.layers == ("Signal", "AES") and a.profile == PROFILE_B1


def _replay(vector: dict[str, object], backend: str, *, both: bool) -> None:
    name, profile, layers = vector["name"], vector["profile"], vector["layers"]
    mlkem = "ML-KEM" in layers  # type: ignore[operator]
    clock = vector["clock_ms"]

    def service(seed: str) -> CascadeCryptoService:
        prims = vector_primitives(backend, bytes.fromhex(seed), mlkem)
        return CascadeCryptoService(prims, clock=lambda: clock / 1000, layers=["Signal", "AES"])  # type: ignore[return-value,misc,operator]

    sb = service(vector["seed_b"])  # type: ignore[arg-type]
    b = sb.handshake(sb.new_identity(), initiator=False, now=0.0, profiles=[profile], layers=layers)  # type: ignore[list-item,arg-type]
    if both:
        sa = service(vector["seed_a"])  # type: ignore[arg-type]
        a = sa.handshake(
            sa.new_identity(), initiator=True, now=0.0, profiles=[profile], layers=layers
        )  # type: ignore[list-item,arg-type]
        assert [p.hex() for p in a.data_to_send()] == vector["a_to_b"][:1]  # type: ignore[index]
    a_to_b = [bytes.fromhex(h) for h in vector["a_to_b"]]  # type: ignore[attr-defined]
    assert b.receive(a_to_b[0], 1.0) == []
    assert [p.hex() for p in b.data_to_send()] == vector["b_to_a"], name
    events = [event for pdu in a_to_b[1:] for event in b.receive(pdu, 1.0)]
    assert b.complete
    (complete,) = events
    assert isinstance(complete, HandshakeComplete)
    session = complete.session
    for message in vector["messages"]:  # type: ignore[attr-defined]
        wire, plaintext = bytes.fromhex(message["wire"]), bytes.fromhex(message["plaintext"])
        if message["from"] == "a":
            assert session.open(wire) == Delivered(plaintext)
        else:  # same seed, same clock, same handshake: same bytes (b1 encapsulates per session)
            assert vector["responder_deterministic"] is True
            assert session.seal(plaintext) == wire


@pytest.mark.parametrize("backend", ["pyca", "nacl"])
@pytest.mark.parametrize("name", ["b1-signal-aes", "v0-signal-aes"])
def test_deterministic_vectors_are_identical_on_every_backend(backend: str, name: str) -> None:
    vector = BY_NAME[name]
    assert vector["deterministic"] is True
    _replay(vector, backend, both=True)


def test_mlkem_vector_replays_into_seeded_responder() -> None:
    """The initiator's one encapsulation is random inside the backend, so its side is recorded;
    the seeded responder must reproduce its PDUs and, byte for byte, its sealed messages."""
    vector = BY_NAME["b1-signal-mlkem-aes"]
    assert vector["deterministic"] is False and vector["responder_deterministic"] is True
    _replay(vector, "pyca", both=True)
    answer = json.loads(bytes.fromhex(vector["a_to_b"][1]))
    assert answer["type"] == "mlkem-key-exchange-response"
    assert set(answer) == {"type", "encapsulated"} and len(answer["encapsulated"]) == 1088
    for message in vector["messages"]:  # no per-message encapsulation: 127 bytes of overhead
        assert len(message["wire"]) // 2 - len(message["plaintext"]) // 2 == 127


LAYER_VECTOR = json.loads((Path(__file__).parent / "vectors" / "b1-mlkem-layer.json").read_text())


@pytest.mark.parametrize("backend", ["pyca", "nacl"])
def test_b1_mlkem_layer_vector_is_identical_on_every_backend(backend: str) -> None:
    """The b1 ML-KEM layer needs only HKDF-SHA256 and AES-256-GCM per message, so both backends
    must seal the vector's bytes and open each other's (the handshake part needs pyca)."""
    prims = BACKENDS_BY_NAME[backend]
    v = LAYER_VECTOR
    secret = b1_session_secret(
        prims, bytes.fromhex(v["shared_secret"]), bytes.fromhex(v["transcript_hash"])
    )
    assert secret.hex() == v["session_secret"] and v["epoch_messages"] == EPOCH_MESSAGES
    aad = bytes.fromhex(v["aad"])
    for initiator, label in ((True, "i->r"), (False, "r->i")):
        direction = v["directions"][label]
        keys = MlKemSessionKeys.derive(prims, secret, initiator=initiator)
        assert keys.send_chain.hex() == direction["chain"]
        sender = MlKemSessionLayer(prims, keys)
        receiver = MlKemSessionLayer(
            prims, MlKemSessionKeys.derive(prims, secret, initiator=not initiator)
        )
        expected = {m["counter"]: m for m in direction["messages"]}
        for counter in range(max(expected) + 1):
            plaintext = b"ML-KEM layer message %d" % counter
            sealed, params = sender.encrypt(plaintext, aad)
            assert params.counter == counter
            if counter in expected:
                m = expected[counter]
                assert (params.to_bytes().hex(), plaintext.hex()) == (
                    m["parameters"],
                    m["plaintext"],
                )
                assert sealed.hex() == m["ciphertext"]
            opened, commit = receiver.decrypt(sealed, params, aad)
            assert opened == plaintext
            commit()


def test_vectors_carry_provenance() -> None:
    assert "make_vectors.py" in VECTORS["provenance"]
    assert {v["name"] for v in VECTORS["vectors"]} == {
        "b1-signal-aes",
        "v0-signal-aes",
        "b1-signal-mlkem-aes",
    }
