"""Exported session state and the safety number (``docs/protocol.md`` §6, §1.6).

``export_state()`` -> ``restore()`` continues a conversation in both directions with everything
outstanding (skipped ratchet keys, skipped b1 ML-KEM counters, an AES rotation in its grace
window) and keeps every refusal (replays stay replays).  Anything damaged, truncated, foreign or
from the other backend is ``StateError`` and nothing is restored (fail closed).
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest
from peers import connect

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import DecryptionFailed, SessionStateError
from enkrypted_crypto.limits import DEFAULT_LIMITS, Limits
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_crypto.session import STATE_MAGIC, CascadeSession, safety_number
from enkrypted_crypto.statecodec import StateReader, StateWriter
from enkrypted_crypto.x3dh import IdentityKeyPair
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_shell.contracts import ControlApplied, Delivered, SecureSession, StateError

PYCA = CascadeCryptoService(PycaPrimitives())
NACL = CascadeCryptoService(NaclPrimitives())
SAFETY = json.loads((Path(__file__).parent / "vectors" / "safety-number.json").read_text())

CASES = {
    "b1-pyca-full": (PYCA, PROFILE_B1, ["Signal", "ML-KEM", "AES"]),
    "b1-pyca-mlkem-aes": (PYCA, PROFILE_B1, ["ML-KEM", "AES"]),
    "b1-nacl": (NACL, PROFILE_B1, ["Signal", "AES"]),
    "v0-pyca-signal-mlkem": (PYCA, PROFILE_V0, ["Signal", "ML-KEM"]),
    "v0-nacl-full": (NACL, PROFILE_V0, ["Signal", "AES"]),
}


def _pair(case: str) -> tuple[CascadeCryptoService, SecureSession, SecureSession]:
    service, profile, layers = CASES[case]
    a, b = connect(service, service, profiles=[profile], layers=layers)
    return service, a, b


def _reseal(state: bytes) -> bytes:
    """Recompute the trailing checksum, as an attacker with write access to the store could."""
    body = state[:-32]
    return body + hashlib.sha256(body).digest()


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("case", sorted(CASES))
def test_restore_mid_conversation_with_skipped_keys_outstanding(case: str) -> None:
    service, a, b = _pair(case)
    v0 = CASES[case][1] == PROFILE_V0
    count = 3 if v0 else 6
    assert b.open(a.seal(b"warm-up")) == Delivered(b"warm-up")
    assert a.open(b.seal(b"reply")) == Delivered(b"reply")
    in_flight = [a.seal(b"m%d" % i) for i in range(count)]
    assert b.open(in_flight[-1]) == Delivered(b"m%d" % (count - 1))  # the others are skipped
    state = b.export_state()
    restored = service.restore(state)
    assert isinstance(restored, CascadeSession)
    assert (restored.profile, restored.layers) == (b.profile, b.layers)
    assert restored.peer_fingerprint == b.peer_fingerprint
    assert restored.safety_number == b.safety_number == a.safety_number
    assert restored.export_state() == state  # nothing lost, nothing added
    for i in reversed(range(count - 1)):  # the skipped ones, out of order
        assert restored.open(in_flight[i]) == Delivered(b"m%d" % i)
    with pytest.raises(DecryptionFailed):
        restored.open(in_flight[-1])  # opened before the export: still a replay
    assert restored.open(a.seal(b"after")) == Delivered(b"after")
    assert a.open(restored.seal(b"from restored")) == Delivered(b"from restored")


@pytest.mark.parametrize("case", ["b1-pyca-full", "v0-nacl-full"])
def test_restore_inside_a_rotation_grace_window(case: str) -> None:
    service, a, b = _pair(case)
    old = a.seal(b"sealed before the rotation")
    control = a.rotate(1.0)
    assert control is not None and b.open(control) == ControlApplied("rotation-timestamp-broadcast")
    restored = service.restore(b.export_state())
    assert restored.open(a.seal(b"new epoch")) == Delivered(b"new epoch")
    assert restored.open(old) == Delivered(b"sealed before the rotation")  # grace survived
    control = restored.rotate(2.0)
    assert control is not None and a.open(control) == ControlApplied("rotation-timestamp-broadcast")
    assert a.open(restored.seal(b"rotated back")) == Delivered(b"rotated back")


def test_restore_does_not_extend_the_grace_time() -> None:
    """A restored grace window ends no later than the restoring clock + rotation_grace_ms."""
    now = [100.0]
    limits = Limits(rotation_grace_ms=1000)
    service = CascadeCryptoService(
        PycaPrimitives(), layers=["Signal", "AES"], clock=lambda: now[0], limits=limits
    )
    a, b = connect(service, service)
    old = a.seal(b"old")
    b.open(a.rotate(now[0]))  # type: ignore[arg-type]
    state = b.export_state()
    now[0] = 0.5  # a new process: the monotonic clock restarted
    restored = service.restore(state)
    now[0] = 1.5  # 1 s after the restore
    with pytest.raises(DecryptionFailed):
        restored.open(old)


def test_original_and_other_instances_are_unaffected_by_a_refused_restore() -> None:
    service, a, b = _pair("b1-pyca-full")
    state = b.export_state()
    with pytest.raises(StateError):
        service.restore(state[:-1])
    assert b.open(a.seal(b"still here")) == Delivered(b"still here")
    other = CascadeCryptoService(PycaPrimitives())  # any service of the backend restores it
    assert other.restore(state).peer_fingerprint == b.peer_fingerprint


# ------------------------------------------------------------------------------ refusals
def test_damaged_state_is_refused_at_every_byte() -> None:
    service, _, b = _pair("b1-nacl")
    state = b.export_state()
    for pos in range(0, len(state), max(1, len(state) // 97)):
        damaged = state[:pos] + bytes([state[pos] ^ 0x01]) + state[pos + 1 :]
        with pytest.raises(SessionStateError):
            service.restore(damaged)


def test_truncated_and_extended_state_is_refused() -> None:
    service, _, b = _pair("b1-pyca-full")
    state = b.export_state()
    for cut in (0, 1, 4, 5, 40, len(state) // 2, len(state) - 33, len(state) - 1):
        with pytest.raises(StateError):
            service.restore(state[:cut])
    with pytest.raises(StateError):
        service.restore(state + b"\x00")
    with pytest.raises(StateError):
        service.restore(_reseal(state[:-32] + b"\x00" + bytes(32)))  # trailing byte, valid sum


def test_state_from_the_other_backend_is_refused() -> None:
    _, _, pyca_session = _pair("b1-pyca-full")
    _, _, nacl_session = _pair("b1-nacl")
    with pytest.raises(StateError, match="from backend 'pyca'"):
        NACL.restore(pyca_session.export_state())
    with pytest.raises(StateError, match="from backend 'pynacl'"):
        PYCA.restore(nacl_session.export_state())


@pytest.mark.parametrize(
    "blob",
    [b"", b"EKSS", b"EKDR\x01" + bytes(300), STATE_MAGIC + b"\x02" + bytes(64), bytes(4096)],
    ids=["empty", "magic-only", "ratchet-state", "future-version", "zeros"],
)
def test_foreign_blobs_are_refused(blob: bytes) -> None:
    with pytest.raises(StateError):
        PYCA.restore(_reseal(blob + bytes(32)) if blob.startswith(STATE_MAGIC) else blob)


def test_oversized_state_is_refused_before_parsing() -> None:
    service = CascadeCryptoService(PycaPrimitives(), limits=Limits(max_state_bytes=100))
    _, _, b = _pair("b1-pyca-full")
    with pytest.raises(StateError, match="max_state_bytes"):
        service.restore(b.export_state())
    with pytest.raises(StateError, match="max_state_bytes"):
        PYCA.restore(bytes(DEFAULT_LIMITS.max_state_bytes + 1))


def _layer_states(state: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Split an exported session into its header and (layer name, layer state) entries."""
    r = StateReader(state[4:-32], "test")
    w = StateWriter().fixed(STATE_MAGIC).u8(r.u8())
    w.text(r.text(64)).text(r.text(64)).text(r.text(64)).fixed(r.fixed(64)).fixed(r.fixed(64))
    entries = [(r.text(64), r.var(2**20)) for _ in range(r.u8())]
    r.done()
    return w.getvalue(), entries


def _join(header: bytes, entries: list[tuple[str, bytes]]) -> bytes:
    w = StateWriter().fixed(header).u8(len(entries))
    for name, state in entries:
        w.text(name).var(state)
    return _reseal(w.getvalue() + bytes(32))


def test_split_and_join_round_trip() -> None:
    _, _, b = _pair("b1-pyca-full")
    state = b.export_state()
    assert _join(*_layer_states(state)) == state


@pytest.mark.parametrize(
    "edit",
    [
        "rename-layer",
        "swap-layers",
        "unprotected-set",
        "mlkem-counter-gap",
        "mlkem-truncated",
        "ratchet-garbage",
        "ratchet-of-another-session",
        "rotation-version",
        "rotation-grace-overlong",
    ],
)
def test_consistent_looking_but_wrong_state_is_refused(edit: str) -> None:
    """Checksums re-sealed, so only the structural and consistency checks can refuse these."""
    _, a, b = _pair("b1-pyca-full")
    b.open(a.rotate(5.0))  # type: ignore[arg-type]
    header, entries = _layer_states(b.export_state())
    names = [n for n, _ in entries]
    assert names == ["Signal", "ML-KEM", "AES"]
    signal, mlkem, aes = (s for _, s in entries)
    if edit == "rename-layer":
        entries[0] = ("MLS", signal)
    elif edit == "swap-layers":
        entries = [entries[1], entries[0], entries[2]]
    elif edit == "unprotected-set":
        entries = [entries[2]]
    elif edit == "mlkem-counter-gap":  # recv_next moved without its keys
        offset = 1 + 8 + 32 + 1  # version, send counter, send chain, no send key (b sent none)
        entries[1] = ("ML-KEM", mlkem[:offset] + struct.pack(">Q", 500) + mlkem[offset + 8 :])
    elif edit == "mlkem-truncated":
        entries[1] = ("ML-KEM", mlkem[:-1])
    elif edit == "ratchet-garbage":
        entries[0] = ("Signal", signal[:5] + bytes(len(signal) - 5))
    elif edit == "ratchet-of-another-session":  # a spliced Signal layer state
        _, _, other = _pair("b1-pyca-full")
        entries[0] = ("Signal", _layer_states(other.export_state())[1][0][1])
    elif edit == "rotation-version":
        entries[2] = ("AES", b"\x07" + aes[1:])
    elif edit == "rotation-grace-overlong":  # grace_left beyond rotation_grace_messages
        entries[2] = ("AES", aes[:-12] + struct.pack(">I", 10_000) + aes[-8:])
    with pytest.raises(StateError) as refused:
        PYCA.restore(_join(header, entries))
    assert "checksum" not in str(refused.value)


# ------------------------------------------------------------------------------ safety number
def _by_hand(first: bytes, second: bytes) -> str:
    """docs/protocol.md §1.6 with hashlib only."""

    def half(identity: bytes) -> str:
        digest = hashlib.sha512(b"\x00\x00EnkryptedChat-safety-number-v1" + identity).digest()
        for _ in range(5200):
            digest = hashlib.sha512(digest + identity).digest()
        chunks = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
        return "".join(f"{c:05d}" for c in chunks)

    return "".join(sorted((half(first), half(second))))


@pytest.mark.parametrize("backend", ["pyca", "nacl"])
def test_safety_number_vector(backend: str) -> None:
    prims = PycaPrimitives() if backend == "pyca" else NaclPrimitives()
    encoded = []
    for identity in SAFETY["identities"]:
        keys = IdentityKeyPair.from_secrets(
            prims, bytes.fromhex(identity["signing_seed"]), bytes.fromhex(identity["dh_private"])
        )
        assert keys.public.encode().hex() == identity["encoded"]
        encoded.append(keys.public.encode())
    number = SAFETY["safety_number"]
    assert len(number) == 60 and number.isdigit()
    assert safety_number(prims, *encoded) == safety_number(prims, *reversed(encoded)) == number
    assert _by_hand(*encoded) == number


def test_sessions_show_the_safety_number_of_their_two_identities() -> None:
    ida, idb = PYCA.new_identity(), PYCA.new_identity()
    a = PYCA.handshake(ida, initiator=True, now=0.0)
    b = PYCA.handshake(idb, initiator=False, now=0.0)
    for _ in range(3):
        for pdu in a.data_to_send():
            b.receive(pdu, 1.0)
        for pdu in b.data_to_send():
            a.receive(pdu, 1.0)
    sa, sb = a.session(), b.session()  # type: ignore[attr-defined]
    prims = PycaPrimitives()
    pa = IdentityKeyPair.from_bytes(prims, ida).public.encode()
    pb = IdentityKeyPair.from_bytes(prims, idb).public.encode()
    assert sa.safety_number == sb.safety_number == _by_hand(pa, pb)
    assert sa.peer_fingerprint == PYCA.fingerprint(idb) == hashlib.sha256(pb).hexdigest()
    _, third = connect(PYCA, PYCA)
    assert third.safety_number != sa.safety_number
