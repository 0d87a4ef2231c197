"""AES-layer key rotation, ``rotation-timestamp-broadcast`` (docs/protocol.md §1.5, §3.3).

Both profiles and both backends: rotation in each direction and crossing, in-flight messages
under the previous key within and after the grace window, forged / replayed / older / skipped /
reflected / foreign / malformed PDUs (refused with the one opaque error, nothing changes), the key
schedule re-derived independently, the wire forms, and pyca <-> PyNaCl interop.  Profile-v0 runs
scrypt per message (~0.1 s each way), so its cases use few messages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peers import connect

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import CryptoUsageError, DecryptionFailed, MalformedInput
from enkrypted_crypto.limits import DEFAULT_LIMITS, Limits
from enkrypted_crypto.primitives import Primitives
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0
from enkrypted_crypto.rotation import (
    MAC_LABEL,
    MAX_TIMESTAMP_MS,
    ROTATION_TYPE,
    AesKeyRotation,
    RotationAnnouncement,
    rotation_mac,
)
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_crypto.session import CascadeSession
from enkrypted_crypto.session_layers import v0_rotated_password
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_shell.contracts import ControlApplied, Delivered, SecureSession

T0 = 1_717_000_000_000
SIGNAL_AES = ["Signal", "AES"]


class FakeClock:
    """The service clock, moved by hand: ``now`` is set in ms, the clock reads seconds."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now / 1000


def _rot(session: CascadeSession, ms: int | None = None) -> bytes:
    """``session.rotate(now)`` at ``ms`` (default: the session's clock); the PDU is never None
    here (every session in this module has the AES layer)."""
    now = session._clock() if ms is None else ms / 1000
    pdu = session.rotate(now)
    assert pdu is not None
    return pdu


CONTROL = ControlApplied(ROTATION_TYPE)


def _pair(
    prims_a: Primitives,
    prims_b: Primitives,
    profile: str,
    layers: list[str],
    *,
    limits: Limits = DEFAULT_LIMITS,
    clock: FakeClock | None = None,
) -> tuple[CascadeSession, CascadeSession]:
    clock = clock or FakeClock()

    def service(p: Primitives) -> CascadeCryptoService:
        return CascadeCryptoService(
            p, profiles=[profile], layers=layers, limits=limits, clock=clock
        )

    a, b = connect(service(prims_a), service(prims_b), profiles=[profile], layers=layers)
    assert isinstance(a, CascadeSession) and isinstance(b, CascadeSession)
    return a, b


def _fails(session: CascadeSession, pdu: bytes) -> None:
    """Refused through both entry points, with the one opaque error."""
    with pytest.raises(DecryptionFailed) as caught:
        session.receive_control(pdu)
    assert str(caught.value) == "decryption failed"
    with pytest.raises(DecryptionFailed):
        session.open(pdu)


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize(
    ("profile", "layers"),
    [(PROFILE_B1, SIGNAL_AES), (PROFILE_V0, SIGNAL_AES)],
)
def test_rotation_in_both_directions(prims: Primitives, profile: str, layers: list[str]) -> None:
    clock = FakeClock()
    a, b = _pair(prims, prims, profile, layers, clock=clock)
    assert isinstance(a, SecureSession)  # the contract is unchanged
    assert a.rotation_timestamps == b.rotation_timestamps == (0, 0)

    clock.now = T0 + 5
    pdu = _rot(a)
    assert a.is_control(pdu) and b.is_control(pdu)
    assert b.open(pdu) == CONTROL  # consumed through open(): no application plaintext
    assert a.rotation_timestamps == (T0 + 5, 0) and b.rotation_timestamps == (0, T0 + 5)
    assert b.open(a.seal(b"a1")) == Delivered(b"a1")  # a -> b under the new epoch
    assert a.open(b.seal(b"b1")) == Delivered(b"b1")  # b -> a still under epoch 0

    from_b = _rot(b)
    _fails(b, from_b)  # reflected: our own sending chain is not our receiving chain
    a.receive_control(from_b)
    assert a.open(b.seal(b"b2")) == Delivered(b"b2")
    assert b.open(a.seal(b"a2")) == Delivered(b"a2")
    assert a.rotation_timestamps == (T0 + 5, T0 + 5) and b.rotation_timestamps == (T0 + 5, T0 + 5)


@pytest.mark.parametrize(("profile", "layers"), [(PROFILE_B1, SIGNAL_AES)])
def test_b_rotates_too(prims: Primitives, profile: str, layers: list[str]) -> None:
    a, b = _pair(prims, prims, profile, layers)
    a.receive_control(_rot(b, T0 + 1))
    b.receive_control(_rot(a, T0 + 2))
    a.receive_control(_rot(b, T0 + 3))
    for i in range(3):
        assert b.open(a.seal(b"a%d" % i)) == Delivered(b"a%d" % i)
        assert a.open(b.seal(b"b%d" % i)) == Delivered(b"b%d" % i)
    assert a.rotation_timestamps == (T0 + 2, T0 + 3) and b.rotation_timestamps == (T0 + 3, T0 + 2)


def test_v0_both_directions_and_password_suffix(pyca: Primitives) -> None:
    """v0: a's then b's rotation; one message each way per epoch (scrypt is slow)."""
    a, b = _pair(pyca, pyca, PROFILE_V0, SIGNAL_AES)
    assert b.open(_rot(a, T0 + 1)) == CONTROL
    assert b.open(a.seal(b"a1")) == Delivered(b"a1")
    assert a.open(_rot(b, T0 + 2)) == CONTROL
    assert a.open(b.seal(b"b1")) == Delivered(b"b1")
    # The v0 password of an epoch is hex(key) || ":" || T (the spec's timestamp suffix).
    rot = a._rotation
    assert rot is not None
    password = rot.send_key.password
    assert len(password) == 64 + 1 + len(str(T0 + 1)) and password.endswith(f":{T0 + 1}")
    assert rot.receive_keys()[0].password.endswith(f":{T0 + 2}")


def test_b1_with_mlkem(pyca: Primitives) -> None:
    a, b = _pair(pyca, pyca, PROFILE_B1, ["Signal", "ML-KEM", "AES"])
    b.receive_control(_rot(a, T0 + 1))
    a.receive_control(_rot(b, T0 + 1))  # same T in the other direction: independent chains
    for i in range(3):
        assert b.open(a.seal(b"a%d" % i)) == Delivered(b"a%d" % i)
        assert a.open(b.seal(b"b%d" % i)) == Delivered(b"b%d" % i)


def test_crossing_rotations(prims: Primitives) -> None:
    """Both rotate at once and the PDUs cross: each direction has its own chain, no race."""
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES)
    from_a, from_b = _rot(a, T0 + 7), _rot(b, T0 + 3)
    msg_a, msg_b = a.seal(b"x"), b.seal(b"y")
    b.receive_control(from_a)
    a.receive_control(from_b)
    assert b.open(msg_a) == Delivered(b"x") and a.open(msg_b) == Delivered(b"y")


def test_timestamp_strictly_increases_when_the_clock_does_not(prims: Primitives) -> None:
    clock = FakeClock()
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES, clock=clock)
    first, second = _rot(a), _rot(a)  # same clock reading
    clock.now = T0 - 1000  # the clock steps back
    third = _rot(a)
    for pdu in (first, second, third):
        b.receive_control(pdu)
    assert b.rotation_timestamps == (0, T0 + 2)
    assert b.open(a.seal(b"ok")) == Delivered(b"ok")


def test_messages_after_rotation_need_the_pdu_first(prims: Primitives) -> None:
    """The sender drops its old key at once; the PDU must be delivered before newer messages.
    A message that arrives too early fails opaquely and changes nothing."""
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES)
    pdu = _rot(a, T0 + 1)
    early = a.seal(b"early")
    with pytest.raises(DecryptionFailed):
        b.open(early)
    b.receive_control(pdu)
    assert b.open(early) == Delivered(b"early")


def test_rotate_needs_an_aes_layer(prims: Primitives) -> None:
    a, b = _pair(prims, prims, PROFILE_B1, ["Signal"])
    assert a.rotate(T0 / 1000) is None  # contract 2.0: nothing to rotate, no PDU
    pdu = _rot(_pair(prims, prims, PROFILE_B1, SIGNAL_AES)[0], T0 + 1)
    _fails(b, pdu)
    assert b.rotation_timestamps == (0, 0)
    assert b.open(a.seal(b"still")) == Delivered(b"still")


# ------------------------------------------------------------------------------------ grace
def test_in_flight_messages_within_grace(prims: Primitives) -> None:
    """Sealed before the rotation, delivered after it (reordered): they still open."""
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES)
    old = [a.seal(b"old%d" % i) for i in range(3)]
    pdu = _rot(a, T0 + 1)
    new = a.seal(b"new")
    b.receive_control(pdu)
    assert b.open(new) == Delivered(b"new")
    assert [b.open(m) for m in reversed(old)] == [Delivered(b"old%d" % i) for i in (2, 1, 0)]


def test_grace_ends_after_n_messages(prims: Primitives) -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, rotation_grace_messages=2)
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES, limits=limits)
    old1, old2 = a.seal(b"old1"), a.seal(b"old2")
    b.receive_control(_rot(a, T0 + 1))
    assert b.open(old1) == Delivered(b"old1")  # grace message 1 of 2
    assert b.open(a.seal(b"new")) == Delivered(b"new")  # 2 of 2: the previous key is dropped now
    with pytest.raises(DecryptionFailed):
        b.open(old2)
    assert b.open(a.seal(b"after")) == Delivered(b"after")  # the failure changed nothing


def test_grace_ends_after_its_time(prims: Primitives) -> None:
    clock = FakeClock()
    limits = dataclasses.replace(DEFAULT_LIMITS, rotation_grace_ms=1000)
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES, limits=limits, clock=clock)
    old1, old2 = a.seal(b"old1"), a.seal(b"old2")
    b.receive_control(_rot(a))
    clock.now = T0 + 999  # last millisecond of grace
    assert b.open(old1) == Delivered(b"old1")
    clock.now = T0 + 1000
    with pytest.raises(DecryptionFailed):
        b.open(old2)
    clock.now = T0  # time going back does not revive a dropped key
    with pytest.raises(DecryptionFailed):
        b.open(old2)
    assert b.open(a.seal(b"new")) == Delivered(b"new")


def test_no_grace_when_configured_off(prims: Primitives) -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, rotation_grace_messages=0)
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES, limits=limits)
    old = a.seal(b"old")
    b.receive_control(_rot(a, T0 + 1))
    with pytest.raises(DecryptionFailed):
        b.open(old)


def test_a_second_rotation_drops_the_older_epoch_at_once(prims: Primitives) -> None:
    """Only one previous key is kept: epoch 0 messages fail once epoch 2 begins."""
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES)
    epoch0 = a.seal(b"e0")
    b.receive_control(_rot(a, T0 + 1))
    epoch1 = a.seal(b"e1")
    b.receive_control(_rot(a, T0 + 2))
    assert b.open(epoch1) == Delivered(b"e1")
    with pytest.raises(DecryptionFailed):
        b.open(epoch0)


def test_v0_grace_window(pyca: Primitives) -> None:
    """v0 (scrypt): an in-flight message opens under the previous password within grace, the
    next one after the window fails with the one opaque error."""
    limits = dataclasses.replace(DEFAULT_LIMITS, rotation_grace_messages=2)
    a, b = _pair(pyca, pyca, PROFILE_V0, SIGNAL_AES, limits=limits)
    old1, old2 = a.seal(b"old1"), a.seal(b"old2")
    assert b.open(_rot(a, T0 + 1)) == CONTROL
    assert b.open(a.seal(b"new")) == Delivered(b"new")
    assert b.open(old1) == Delivered(b"old1")
    with pytest.raises(DecryptionFailed):
        b.open(old2)


# ------------------------------------------------------------------- refused rotation PDUs
def test_forged_replayed_older_and_skipped_pdus_change_nothing(prims: Primitives) -> None:
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES)
    first = _rot(a, T0 + 10)
    in_flight = a.seal(b"epoch1")
    second = _rot(a, T0 + 20)
    stranger = _rot(_pair(prims, prims, PROFILE_B1, SIGNAL_AES)[0], T0 + 10)

    flipped_mac = first[:-1] + bytes([first[-1] ^ 1])
    later_t = first[:3] + struct.pack(">Q", T0 + 11) + first[11:]  # MAC over T0 + 10
    for bad in (flipped_mac, later_t, second, stranger):  # second: skipped (epoch 1 MAC)
        _fails(b, bad)
    assert b.rotation_timestamps == (0, 0)

    b.receive_control(first)
    _fails(b, first)  # replay
    b.receive_control(second)
    for bad in (first, second, flipped_mac):  # older, replay, forged
        _fails(b, bad)
    assert b.rotation_timestamps == (0, T0 + 20)
    assert b.open(in_flight) == Delivered(b"epoch1")  # grace survived the refused PDUs
    assert b.open(a.seal(b"epoch2")) == Delivered(b"epoch2")


def test_malformed_b1_frames(prims: Primitives) -> None:
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES)
    good = _rot(a, T0 + 10)
    assert len(good) == 43 and good[:3] == b"\xb1\x00\x01"
    assert struct.unpack(">Q", good[3:11]) == (T0 + 10,)
    mac = good[11:]
    frames = [
        good[:-1],
        good + b"\x00",
        b"\xb1\x00",
        b"\xb1\x00\x02" + good[3:],  # unknown control kind
        b"\xb1\x00\x01" + struct.pack(">Q", 0) + mac,
        b"\xb1\x00\x01" + struct.pack(">Q", MAX_TIMESTAMP_MS + 1) + mac,
        b"\xb2\x00\x01" + good[3:],  # not framed as control: treated as a (bad) message
        bytes(43),
    ]
    for bad in frames:
        with pytest.raises(DecryptionFailed):
            b.open(bad)
        with pytest.raises(DecryptionFailed):
            b.receive_control(bad)
    assert b.rotation_timestamps == (0, 0)
    b.receive_control(good)
    assert b.open(a.seal(b"ok")) == Delivered(b"ok")


def test_malformed_v0_pdus(pyca: Primitives) -> None:
    """Parsing only: no message is sealed, so no scrypt runs."""
    a, b = _pair(pyca, pyca, PROFILE_V0, SIGNAL_AES)
    good = _rot(a, T0 + 10)
    doc = json.loads(good)
    assert list(doc) == ["type", "timestamp", "mac"]
    assert doc["type"] == ROTATION_TYPE and doc["timestamp"] == T0 + 10 and len(doc["mac"]) == 32

    def variant(**changes: object) -> bytes:
        body = {**doc, **changes}
        return json.dumps({k: v for k, v in body.items() if v is not None}).encode()

    one_mac = [1 if i == 0 else b for i, b in enumerate(doc["mac"])]
    bools = [True if b == 1 else b for b in one_mac]
    bad = [
        variant(mac=None),
        variant(timestamp=None),
        variant(extra=1),
        variant(mac=doc["mac"][:31]),
        variant(mac=[*doc["mac"], 0]),
        variant(mac=[256, *doc["mac"][1:]]),
        variant(mac=bools),  # true standing in for 1
        variant(timestamp=float(T0 + 10)),
        variant(timestamp=str(T0 + 10)),
        variant(timestamp=True),
        variant(timestamp=0),
        variant(timestamp=MAX_TIMESTAMP_MS + 1),
        variant(type="rotation-timestamp"),
        variant(mac=doc["mac"], padding="x" * 2000),  # over the control PDU size limit
        b"[]",
        b"{",
        bytes(43),
    ]
    for pdu in bad:
        _fails(b, pdu)
    assert b.rotation_timestamps == (0, 0)
    assert not b.is_control(variant(type="message")) and not b.is_control(bytes(43))
    # A b1 frame sent into a v0 session (and back) is refused.
    b1_pdu = _rot(_pair(pyca, pyca, PROFILE_B1, SIGNAL_AES)[0], T0 + 10)
    _fails(b, b1_pdu)
    b.receive_control(json.dumps(doc, indent=1).encode())  # any JSON layout of the same PDU
    assert b.rotation_timestamps == (0, T0 + 10)


def test_sealed_messages_are_not_control(prims: Primitives) -> None:
    a, b = _pair(prims, prims, PROFILE_B1, SIGNAL_AES)
    message = a.seal(b"")
    assert not b.is_control(message)
    with pytest.raises(DecryptionFailed):
        b.receive_control(message)  # a message is not a rotation and changes nothing
    assert b.open(message) == Delivered(b"")  # an empty message, told apart from a control PDU


FUZZ = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=st.binary(max_size=80), timestamp=st.integers(1, MAX_TIMESTAMP_MS))
def test_fuzzed_pdus_are_refused(data: bytes, timestamp: int) -> None:
    _, b = _fuzz_pair()
    frame = b"\xb1\x00\x01" + struct.pack(">Q", timestamp) + data[:32].ljust(32, b"\x00")
    for pdu in (data, frame):
        _fails(b, pdu)
    assert b.rotation_timestamps == (0, 0)


_FUZZ_PAIR: list[tuple[CascadeSession, CascadeSession]] = []


def _fuzz_pair() -> tuple[CascadeSession, CascadeSession]:
    if not _FUZZ_PAIR:
        _FUZZ_PAIR.append(_pair(PycaPrimitives(), PycaPrimitives(), PROFILE_B1, SIGNAL_AES))
    return _FUZZ_PAIR[0]


# ----------------------------------------------------------------------- key schedule (KAT)
def _hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with the standard library only (independent of both backends)."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


@pytest.mark.parametrize("profile", [PROFILE_V0, PROFILE_B1])
def test_key_schedule_rederived(prims: Primitives, profile: str) -> None:
    secret = bytes(range(32))
    ts1, ts2 = T0 + 1, T0 + 2

    def make(material: bytes, timestamp: int) -> bytes:
        return material

    def rotation(initiator: bool) -> AesKeyRotation[bytes]:
        return AesKeyRotation(
            prims, secret, profile=profile, initiator=initiator, make_key=make,
            send_material=b"send0", receive_material=b"recv0",
        )  # fmt: skip

    alice, bob = rotation(True), rotation(False)
    first, second = alice.announce(ts1), alice.announce(ts2)
    root = _hkdf(
        secret, b"", b"EnkryptedChat-aes-rotation-v1/root/" + profile.encode() + b"/i->r", 32
    )
    chain, expected_macs, expected_keys = root, [], []
    for ts in (ts1, ts2):
        mac_key = _hkdf(chain, b"", b"EnkryptedChat-aes-rotation-v1/mac", 32)
        expected_macs.append(
            hmac.new(mac_key, MAC_LABEL + ts.to_bytes(8, "big"), hashlib.sha256).digest()
        )
        out = _hkdf(chain, ts.to_bytes(8, "big"), b"EnkryptedChat-aes-rotation-v1/step", 64)
        chain = out[:32]
        expected_keys.append(out[32:])
    assert [first.mac, second.mac] == expected_macs
    assert alice.send_key == expected_keys[1]
    bob.accept(first, 0)
    bob.accept(second, 0)
    assert bob.receive_keys() == (expected_keys[1], expected_keys[0])
    # The other direction is a different chain.
    assert bob.announce(ts1).mac != first.mac
    assert v0_rotated_password(expected_keys[0], ts1).password == f"{expected_keys[0].hex()}:{ts1}"


def test_non_increasing_timestamp_is_refused_even_with_a_valid_mac(prims: Primitives) -> None:
    """Defence in depth: a peer holding the MAC key still cannot go back to (or repeat) a time."""

    def rotation(initiator: bool) -> AesKeyRotation[bytes]:
        return AesKeyRotation(
            prims, bytes(32), profile=PROFILE_B1, initiator=initiator,
            make_key=lambda m, t: m, send_material=b"s", receive_material=b"r",
        )  # fmt: skip

    alice, bob = rotation(True), rotation(False)
    bob.accept(alice.announce(T0 + 5), T0)
    mac_key = alice._send.mac_key  # the key bob checks the next PDU with
    for ts in (T0 + 5, T0 + 4):
        with pytest.raises(DecryptionFailed):
            bob.accept(RotationAnnouncement(ts, rotation_mac(prims, mac_key, ts)), T0)
    assert bob.receive_timestamp_ms == T0 + 5 and bob.in_grace
    forged_by_peer = RotationAnnouncement(T0 + 6, rotation_mac(prims, mac_key, T0 + 6))
    bob.accept(forged_by_peer, T0)
    assert alice.announce(T0 + 6) == forged_by_peer and bob.receive_keys()[0] == alice.send_key


def test_announcement_and_rotation_validate() -> None:
    with pytest.raises(MalformedInput):
        RotationAnnouncement(0, bytes(32))
    with pytest.raises(MalformedInput):
        RotationAnnouncement(T0, bytes(31))
    with pytest.raises(CryptoUsageError):
        AesKeyRotation(
            PycaPrimitives(), bytes(16), profile=PROFILE_B1, initiator=True,
            make_key=lambda m, t: m, send_material=b"", receive_material=b"",
        )  # fmt: skip
    rot = AesKeyRotation(
        PycaPrimitives(), bytes(32), profile=PROFILE_B1, initiator=True,
        make_key=lambda m, t: m, send_material=b"", receive_material=b"",
    )  # fmt: skip
    rot.announce(MAX_TIMESTAMP_MS)
    with pytest.raises(CryptoUsageError):
        rot.announce(MAX_TIMESTAMP_MS)  # would have to go beyond 2**53-1
    assert "send=" in repr(rot) and "chain" not in repr(rot)


# ---------------------------------------------------------------------------------- interop
@pytest.mark.parametrize("profile", [PROFILE_B1, PROFILE_V0])
@pytest.mark.parametrize("nacl_first", [True, False], ids=["nacl-initiates", "pyca-initiates"])
def test_pyca_and_nacl_rotate_together(profile: str, nacl_first: bool) -> None:
    nacl, pyca = NaclPrimitives(), PycaPrimitives()
    first, second = (nacl, pyca) if nacl_first else (pyca, nacl)
    a, b = _pair(first, second, profile, SIGNAL_AES)
    old = a.seal(b"old")
    assert b.open(_rot(a, T0 + 1)) == CONTROL
    assert a.open(_rot(b, T0 + 2)) == CONTROL
    assert b.open(a.seal(b"a1")) == Delivered(b"a1")
    assert a.open(b.seal(b"b1")) == Delivered(b"b1")
    assert b.open(old) == Delivered(b"old")  # grace, across backends
