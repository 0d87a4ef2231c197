"""Generate ``vectors/protocol-vectors.json``: seeded handshakes and messages (docs/protocol.md).

Run from the repository root:  ``.venv/bin/python tests/crypto/make_vectors.py``.
Randomness is :class:`SeededRandom` (SHA-256 counter stream), the clock is fixed, so every vector
without ML-KEM is byte-for-byte reproducible on every backend.  ML-KEM encapsulation uses the
backend's internal RNG (pyca does not accept FIPS 203's ``m``), so for ML-KEM vectors only the
responder side is reproducible: tests replay the initiator's recorded PDUs (which carry the one
encapsulation of a b1 session) and messages into a seeded responder and check its PDUs, the
plaintexts, and — b1 encapsulates nothing per message — the bytes of its own sealed messages.

``vectors/b1-mlkem-layer.json`` pins the Profile-b1 ML-KEM layer alone: from a fixed ML-KEM
shared secret and transcript hash, the session secret, direction chains, epoch keys and sealed
messages across an epoch boundary, identical on pyca and PyNaCl (the layer's per-message work is
HKDF-SHA256 and AES-256-GCM only).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for src in ("shell/src", "plugins/cryptography/src", "plugins/cryptography_nacl/src"):
    sys.path.insert(0, str(ROOT / src))
sys.path.insert(0, str(HERE))

from conftest import BACKENDS, vector_primitives  # noqa: E402

from enkrypted_crypto.layers.mlkem import (  # noqa: E402
    EPOCH_MESSAGES,
    MlKemSessionKeys,
    MlKemSessionLayer,
    b1_session_secret,
)
from enkrypted_crypto.primitives import Primitives  # noqa: E402
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0  # noqa: E402
from enkrypted_crypto.service import CascadeCryptoService  # noqa: E402
from enkrypted_crypto.session import safety_number  # noqa: E402
from enkrypted_crypto.x3dh import IdentityKeyPair  # noqa: E402
from enkrypted_shell.contracts import Delivered, HandshakeFailed  # noqa: E402

CLOCK_MS = 1717000000000
SPECS = [  # name, profile, layers, deterministic (both sides, every backend)
    ("b1-signal-aes", PROFILE_B1, ["Signal", "AES"], True),
    ("v0-signal-aes", PROFILE_V0, ["Signal", "AES"], True),
    ("b1-signal-mlkem-aes", PROFILE_B1, ["Signal", "ML-KEM", "AES"], False),
]
LAYER_COUNTERS = (0, 1, EPOCH_MESSAGES - 1, EPOCH_MESSAGES, EPOCH_MESSAGES + 1)
"""Messages of the b1 ML-KEM layer vector that are recorded (every one up to the last is sealed)."""
LAYER_AAD = b"EnkryptedChat-cascade-v1|vector" + (1717000000000).to_bytes(8, "big")
MESSAGES = [("a", b"Hi"), ("a", bytes(range(40))), ("b", b"reply from b")]


def service(backend: str, seed: bytes, mlkem: bool) -> CascadeCryptoService:
    """Seeded backend advertising the fixed ``vector`` offer (conftest.Advertised)."""
    prims = vector_primitives(backend, seed, mlkem)
    return CascadeCryptoService(prims, clock=lambda: CLOCK_MS / 1000, layers=["Signal", "AES"])


def run(backend: str, name: str, profile: str, layers: list[str]) -> dict[str, object]:
    mlkem = "ML-KEM" in layers
    sa = service(backend, b"A:" + name.encode(), mlkem)
    sb = service(backend, b"B:" + name.encode(), mlkem)
    a = sa.handshake(sa.new_identity(), initiator=True, now=0.0, profiles=[profile], layers=layers)
    b = sb.handshake(sb.new_identity(), initiator=False, now=0.0, profiles=[profile], layers=layers)
    a_to_b: list[str] = []
    b_to_a: list[str] = []
    for _ in range(3):
        for pdu in a.data_to_send():
            a_to_b.append(pdu.hex())
            assert not any(isinstance(e, HandshakeFailed) for e in b.receive(pdu, 1.0))
        for pdu in b.data_to_send():
            b_to_a.append(pdu.hex())
            assert not any(isinstance(e, HandshakeFailed) for e in a.receive(pdu, 1.0))
    sessions = {"a": (a.session(), b.session()), "b": (b.session(), a.session())}
    messages = []
    for sender, plaintext in MESSAGES:
        mine, theirs = sessions[sender]
        wire = mine.seal(plaintext)
        assert theirs.open(wire) == Delivered(plaintext)
        messages.append({"from": sender, "plaintext": plaintext.hex(), "wire": wire.hex()})
    return {
        "name": name,
        "profile": profile,
        "layers": layers,
        "seed_a": ("A:" + name).encode().hex(),
        "seed_b": ("B:" + name).encode().hex(),
        "clock_ms": CLOCK_MS,
        "a_to_b": a_to_b,
        "b_to_a": b_to_a,
        "messages": messages,
    }


def layer_plaintext(counter: int) -> bytes:
    return b"ML-KEM layer message %d" % counter


def mlkem_layer_vector(p: Primitives) -> dict[str, object]:
    """The b1 ML-KEM layer from a fixed shared secret: key schedule and sealed messages."""
    shared = hashlib.sha256(b"vector ML-KEM-768 shared secret").digest()
    transcript = hashlib.sha256(b"vector handshake transcript").digest()
    secret = b1_session_secret(p, shared, transcript)
    keys = {role: MlKemSessionKeys.derive(p, secret, initiator=role) for role in (True, False)}
    directions: dict[str, object] = {}
    for initiator, label in ((True, "i->r"), (False, "r->i")):
        layer = MlKemSessionLayer(p, keys[initiator])
        sealed = [
            layer.encrypt(layer_plaintext(c), LAYER_AAD) for c in range(max(LAYER_COUNTERS) + 1)
        ]
        directions[label] = {
            "chain": keys[initiator].send_chain.hex(),
            "messages": [
                {
                    "counter": c,
                    "parameters": sealed[c][1].to_bytes().hex(),
                    "plaintext": layer_plaintext(c).hex(),
                    "ciphertext": sealed[c][0].hex(),
                }
                for c in LAYER_COUNTERS
            ],
        }
    return {
        "shared_secret": shared.hex(),
        "transcript_hash": transcript.hex(),
        "session_secret": secret.hex(),
        "epoch_messages": EPOCH_MESSAGES,
        "aad": LAYER_AAD.hex(),
        "directions": directions,
    }


SAFETY_LABEL = b"EnkryptedChat-safety-number-v1"


def safety_number_by_hand(first: bytes, second: bytes) -> str:
    """docs/protocol.md §1.6 with hashlib only (independent of the plugin's code)."""

    def half(identity: bytes) -> str:
        digest = hashlib.sha512(b"\x00\x00" + SAFETY_LABEL + identity).digest()
        for _ in range(5200):
            digest = hashlib.sha512(digest + identity).digest()
        return "".join(
            f"{int.from_bytes(digest[i : i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5)
        )

    return "".join(sorted((half(first), half(second))))


def safety_number_vector() -> dict[str, object]:
    """Two identities from fixed secrets, their ``Encode(IK)`` and the safety number."""
    identities = []
    for name in (b"alice", b"bob"):
        seeds = (hashlib.sha256(b"vector identity signing " + name).digest(),
                 hashlib.sha256(b"vector identity dh " + name).digest())  # fmt: skip
        encodings = {
            backend: IdentityKeyPair.from_secrets(make(), *seeds).public.encode()
            for backend, make in BACKENDS.items()
        }
        assert len(set(encodings.values())) == 1, "backends disagree"
        identities.append({"signing_seed": seeds[0].hex(), "dh_private": seeds[1].hex(),
                           "encoded": encodings["pyca"].hex()})  # fmt: skip
    first, second = (bytes.fromhex(str(i["encoded"])) for i in identities)
    number = safety_number_by_hand(first, second)
    for make in BACKENDS.values():
        assert (
            safety_number(make(), first, second) == number == safety_number(make(), second, first)
        )
    return {
        "provenance": "generated by tests/crypto/make_vectors.py; safety number of two fixed "
        "identities (docs/protocol.md §1.6), computed with hashlib and checked against both "
        "backends",
        "identities": identities,
        "safety_number": number,
    }


def main() -> None:
    vectors = []
    for name, profile, layers, deterministic in SPECS:
        vector = run("pyca", name, profile, layers)
        if deterministic:
            assert run("nacl", name, profile, layers) == vector, "backends disagree"
        vector["deterministic"] = deterministic
        vector["responder_deterministic"] = True  # responder PDUs and sealed messages
        vectors.append(vector)
    out = {
        "provenance": "generated by tests/crypto/make_vectors.py; seeded SHA-256 counter RNG "
        "(seed_a/seed_b), fixed clock; identical on the pyca and pynacl backends where "
        "deterministic is true",
        "vectors": vectors,
    }
    path = HERE / "vectors" / "protocol-vectors.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({len(vectors)} vectors)")

    layer = mlkem_layer_vector(BACKENDS["pyca"]())
    assert mlkem_layer_vector(BACKENDS["nacl"]()) == layer, "backends disagree"
    layer = {
        "provenance": "generated by tests/crypto/make_vectors.py; Profile-b1 ML-KEM layer "
        "(docs/protocol.md §1.3) from a fixed ML-KEM shared secret and transcript hash; "
        "identical on the pyca and pynacl backends",
        **layer,
    }
    path = HERE / "vectors" / "b1-mlkem-layer.json"
    path.write_text(json.dumps(layer, indent=1) + "\n")
    print(f"wrote {path}")

    path = HERE / "vectors" / "safety-number.json"
    path.write_text(json.dumps(safety_number_vector(), indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
