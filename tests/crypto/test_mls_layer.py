"""The MLS cascade layer of 1:1 sessions (docs/protocol.md §1.3 MLS, §2.1): the full product
cascade in both profiles, tampering, export/restore, negotiation against a backend without MLS,
and hostile MLS handshake PDUs (always ``HandshakeFailed``, never an exception)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from peers import START, connect, failure, pump, start

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import CryptoUsageError, DecryptionFailed
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_crypto.session_mls import MlsCascadeLayer, mls_group_id
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_shell.contracts import CryptoFailure, Delivered, HandshakeFailed, SecureSession

PYCA = CascadeCryptoService(PycaPrimitives())
NACL = CascadeCryptoService(NaclPrimitives())
FULL = ("MLS", "Signal", "ML-KEM", "AES")


def _mls(session: SecureSession) -> MlsCascadeLayer:
    layer = session._manager.layers[0]  # type: ignore[attr-defined]
    assert isinstance(layer, MlsCascadeLayer)
    return layer


def _pdus(data: list[bytes]) -> list[dict[str, object]]:
    return [json.loads(p) for p in data]


# ----------------------------------------------------------------------- the full product cascade
@pytest.mark.parametrize("profile", [PROFILE_B1, PROFILE_V0])
def test_full_product_cascade_in_both_profiles(profile: str) -> None:
    a, b = connect(PYCA, PYCA, profiles=[profile])
    assert a.layers == b.layers == FULL and a.profile == b.profile == profile
    group_a, group_b = _mls(a).group, _mls(b).group
    assert group_a.group_id == group_b.group_id == mls_group_id(a._ids.session_id)  # type: ignore[attr-defined]
    assert group_a.epoch == group_b.epoch == 1
    assert group_a.epoch_authenticator == group_b.epoch_authenticator
    assert {c.identity for _, c in group_a.members()} == {a._ids.own, a._ids.peer}  # type: ignore[attr-defined]
    for i in range(3 if profile == PROFILE_V0 else 20):
        assert b.open(a.seal(b"a%d" % i)) == Delivered(b"a%d" % i)
        assert a.open(b.seal(b"b%d" % i)) == Delivered(b"b%d" % i)
    if profile == PROFILE_V0:
        wire = json.loads(a.seal(b"shape"))["cascadedPayload"]
        meta, params = wire["layers"][0], wire["layerParameters"][0]
        assert (meta["algorithm"], meta["version"]) == ("MLS", "1.0.0")
        assert meta["metadata"]["cipherSuite"] == "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
        assert meta["metadata"]["encoding"] == "base64" and meta["metadata"]["epoch"] == 1
        assert params == {"groupId": group_a.group_id.decode(), "timestamp": meta["timestamp"]}
    else:  # b1 layer table: MLS is id 1, innermost, with no parameters
        frame = a.seal(b"shape")
        assert frame[1] == 4 and frame[10:13] == bytes([1, 0, 0])


@pytest.mark.parametrize("profile", [PROFILE_B1, PROFILE_V0])
def test_mls_alone_is_replay_and_reflection_safe(profile: str) -> None:
    a, b = connect(PYCA, PYCA, profiles=[profile], layers=["MLS"])
    wire = a.seal(b"once")
    assert b.open(wire) == Delivered(b"once")
    with pytest.raises(DecryptionFailed):
        b.open(wire)  # its key was deleted (RFC 9420 §9.2)
    with pytest.raises(DecryptionFailed):
        a.open(a.seal(b"to myself"))  # our own message reflected back
    late, later = a.seal(b"late"), a.seal(b"later")
    assert b.open(later) == Delivered(b"later") and b.open(late) == Delivered(b"late")


# ----------------------------------------------------------------------------------- tampering
def _v0_mutations(wire: bytes) -> list[bytes]:
    """Every byte of ``finalCiphertext`` (the MLS PrivateMessage) changed, and the MLS layer's
    authenticated fields: its timestamp (in metadata and parameters) and group id."""
    doc = json.loads(wire)
    out = []

    def variant(change: Callable[[dict[str, object]], None]) -> bytes:
        copy = json.loads(wire)
        change(copy["cascadedPayload"])
        return json.dumps(copy, separators=(",", ":")).encode()

    for i in range(len(doc["cascadedPayload"]["finalCiphertext"])):
        out.append(variant(lambda p, i=i: p["finalCiphertext"].__setitem__(i, p["finalCiphertext"][i] ^ 4)))
    out.append(variant(lambda p: p["layers"][0].__setitem__("timestamp", 1)))
    out.append(variant(lambda p: p["layerParameters"][0].__setitem__("timestamp", 1)))
    out.append(variant(lambda p: p["layerParameters"][0].__setitem__("groupId", "x")))
    return out


@pytest.mark.parametrize("profile", [PROFILE_B1, PROFILE_V0])
def test_mls_layer_tampering_is_one_opaque_error_and_changes_nothing(profile: str) -> None:
    a, b = connect(PYCA, PYCA, profiles=[profile], layers=["MLS"])
    wire = a.seal(b"genuine")
    before = (_mls(b).group.snapshot(), b.export_state())
    if profile == PROFILE_B1:  # every byte of the frame
        bad = [wire[:i] + bytes([wire[i] ^ 4]) + wire[i + 1 :] for i in range(len(wire))]
    else:
        bad = _v0_mutations(wire)
    for message in bad:
        with pytest.raises(CryptoFailure) as refused:
            b.open(message)
        assert type(refused.value) is DecryptionFailed and str(refused.value) == "decryption failed"
        assert (_mls(b).group.snapshot(), b.export_state()) == before
    assert b.open(wire) == Delivered(b"genuine")


def test_inner_mls_failure_under_valid_outer_layers_commits_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Signal, ML-KEM and AES open fine; the MLS PrivateMessage inside is damaged: the one
    opaque error, and no layer of the receiver moves (its next genuine message opens)."""
    a, b = connect(PYCA, PYCA)
    assert b.open(a.seal(b"warm-up")) == Delivered(b"warm-up")
    group = _mls(a).group
    protect = group.protect

    def damaged(data: bytes, aad: bytes = b"") -> bytes:
        out = bytearray(protect(data, aad))
        out[-3] ^= 1
        return bytes(out)

    monkeypatch.setattr(group, "protect", damaged)
    bad = a.seal(b"damaged inside")
    monkeypatch.undo()
    before = b.export_state()
    with pytest.raises(DecryptionFailed):
        b.open(bad)
    assert b.export_state() == before
    assert b.open(a.seal(b"next")) == Delivered(b"next")
    assert a.open(b.seal(b"reply")) == Delivered(b"reply")


def test_mls_v0_group_id_of_another_session_is_refused() -> None:
    a, b = connect(PYCA, PYCA, profiles=[PROFILE_V0], layers=["MLS"])
    doc = json.loads(a.seal(b"x"))
    doc["cascadedPayload"]["layerParameters"][0]["groupId"] = mls_group_id("0" * 32).decode()
    with pytest.raises(DecryptionFailed):
        b.open(json.dumps(doc, separators=(",", ":")).encode())


# ------------------------------------------------------------------------------ export / restore
@pytest.mark.parametrize("profile", [PROFILE_B1, PROFILE_V0])
def test_export_restore_mid_conversation_with_mls(profile: str) -> None:
    layers = list(FULL) if profile == PROFILE_B1 else ["MLS", "Signal", "ML-KEM"]
    a, b = connect(PYCA, PYCA, profiles=[profile], layers=layers)
    for i in range(3):
        assert b.open(a.seal(b"a%d" % i)) == Delivered(b"a%d" % i)
    held = [a.seal(b"held %d" % i) for i in range(3)]  # delivered after the restore
    assert b.open(a.seal(b"ahead")) == Delivered(b"ahead")
    state = b.export_state()
    restored = CascadeCryptoService(PycaPrimitives()).restore(state)
    assert restored.layers == tuple(layers) and restored.export_state() == state
    assert _mls(restored).group.epoch_authenticator == _mls(a).group.epoch_authenticator
    for i in (2, 0, 1):
        assert restored.open(held[i]) == Delivered(b"held %d" % i)
    assert a.open(restored.seal(b"from restored")) == Delivered(b"from restored")
    assert restored.open(a.seal(b"more")) == Delivered(b"more")
    with pytest.raises(DecryptionFailed):
        restored.open(held[0])  # consumed after the restore: a replay now


def test_restore_refuses_an_mls_group_of_another_session() -> None:
    _, b = connect(PYCA, PYCA, layers=["MLS"])
    _, d = connect(PYCA, PYCA, layers=["MLS"])
    mine, other = b.export_state(), d.export_state()
    # Splice d's group state into b's container (and fix the checksum): wrong group, members.
    from enkrypted_crypto.session import STATE_MAGIC
    from enkrypted_crypto.statecodec import StateReader, StateWriter

    r = StateReader(mine[len(STATE_MAGIC) : -32], "test")
    head = StateWriter().fixed(STATE_MAGIC).u8(r.u8())
    head.text(r.text(64)).text(r.text(64)).text(r.text(64)).fixed(r.fixed(64)).fixed(r.fixed(64))
    r.u8(), r.text(64), r.var(1 << 20)
    foreign = StateReader(other[len(STATE_MAGIC) : -32], "test")
    foreign.u8(), foreign.text(64), foreign.text(64), foreign.text(64)
    foreign.fixed(64), foreign.fixed(64), foreign.u8(), foreign.text(64)
    body = head.u8(1).text("MLS").var(foreign.var(1 << 20)).getvalue()
    spliced = body + PycaPrimitives().hash("sha256", body)
    from enkrypted_crypto.errors import SessionStateError

    with pytest.raises(SessionStateError, match="MLS layer state of another session"):
        PYCA.restore(spliced)
    assert PYCA.restore(mine).layers == ("MLS",)


# ------------------------------------------------------------------ negotiation, backends
def test_nacl_does_not_offer_mls_and_refuses_it_in_configuration() -> None:
    hs = NACL.handshake(NACL.new_identity(), initiator=True, now=START)
    request = json.loads(hs.data_to_send()[0])
    assert "MLS" not in request["supportedLayers"] and "MLS" not in request["layers"]
    assert "mls-suite-1" not in NACL.capabilities and "mls-suite-1" in PYCA.capabilities
    with pytest.raises(CryptoUsageError, match="mls-suite-1.*pyca"):
        CascadeCryptoService(NaclPrimitives(), layers=["MLS", "Signal"])


@pytest.mark.parametrize("pyca_initiates", [True, False])
def test_peer_requiring_mls_vs_peer_without_it_fails_on_both_sides(pyca_initiates: bool) -> None:
    pyca = CascadeCryptoService(PycaPrimitives(), layers=["MLS", "Signal", "AES"])
    a, b = start(pyca, NACL) if pyca_initiates else start(NACL, pyca)
    events_a, events_b = [], []
    for _ in range(3):
        for pdu in a.data_to_send():
            if b.next_deadline() is not None:
                events_b += b.receive(pdu, START + 1)
        for pdu in b.data_to_send():
            if a.next_deadline() is not None:
                events_a += a.receive(pdu, START + 1)
    refusing, told = failure(events_b), failure(events_a)  # the responder decides
    assert "MLS" in refusing.reason and refusing.pdu_to_send is not None
    assert told.reason.startswith("no-common-layers: peer refused the handshake")
    if pyca_initiates:  # the nacl responder names what it lacks and the alternative
        assert "mls-suite-1" in refusing.reason and "pyca" in refusing.reason
    else:  # the pyca responder names the peer's backend
        assert "peer backend 'pynacl' cannot serve it" in refusing.reason
    assert not a.complete and not b.complete


def test_mls_is_chosen_only_when_required_and_then_never_dropped() -> None:
    without = CascadeCryptoService(PycaPrimitives(), layers=["Signal", "AES"])
    assert connect(without, NACL)[0].layers == ("Signal", "AES")  # nobody requires MLS
    assert connect(without, without)[0].layers == ("Signal", "AES")
    assert connect(without, PYCA)[0].layers == FULL  # union of what each requires
    assert connect(PYCA, without)[0].layers == FULL


# --------------------------------------------------------------------- hostile handshake PDUs
Edit = Callable[[dict[str, object]], object]


def _run(tamper: Callable[[str, bytes], bytes | None]) -> tuple[list[object], list[object]]:
    """Full default handshake with ``tamper(direction, pdu)`` (``None`` drops the PDU);
    returns each side's events.  Nothing may raise."""
    a, b = start(PYCA, PYCA)
    events: tuple[list[object], list[object]] = ([], [])
    for _ in range(6):
        for sender, receiver, direction, sink in ((a, b, "a->b", 1), (b, a, "b->a", 0)):
            for pdu in sender.data_to_send():
                changed = tamper(direction, pdu)
                if changed is None or receiver.next_deadline() is None:
                    continue
                events[sink].extend(receiver.receive(changed, START + 1))
    return events


def _edit(kind: str, edit: Edit) -> Callable[[str, bytes], bytes | None]:
    def tamper(direction: str, pdu: bytes) -> bytes | None:
        obj = json.loads(pdu)
        if obj["type"] != kind:
            return pdu
        result = edit(obj)
        return None if result is False else json.dumps(obj).encode()

    return tamper


def _flip(field: str, index: int) -> Edit:
    def edit(obj: dict[str, object]) -> None:
        data = obj[field]
        assert isinstance(data, list)
        data[index] ^= 1

    return edit


def _both_fail(events: tuple[list[object], list[object]], match: str) -> None:
    a_events, b_events = events
    reasons = [e.reason for e in (*a_events, *b_events) if isinstance(e, HandshakeFailed)]
    # The refusing side and the side its protocol-error tells — unless the initiator had
    # already completed (it does on the Welcome), as when the responder refuses the ack.
    told = 1 if "acknowledgement" in match else 2
    assert len(reasons) == told, (reasons, events)
    assert any(match in r for r in reasons), reasons


def _other_key_package() -> bytes:
    """A valid KeyPackage of another identity (from a second handshake's flights)."""
    found: list[bytes] = []

    def grab(direction: str, pdu: bytes) -> bytes:
        if json.loads(pdu)["type"] == "mls-key-package":
            found.append(pdu)
        return pdu

    a2, b2 = start(PYCA, PYCA)
    pump(a2, b2, grab)
    return found[0]


@pytest.mark.parametrize(
    ("kind", "edit", "match"),
    [
        ("mls-key-package", _flip("keyPackage", 40), "handshake PDU rejected"),  # signature
        ("mls-key-package", lambda o: o.update(keyPackage=[0] * 5000), "at most 2048"),
        ("mls-key-package", lambda o: o.update(keyPackage=[1, 2, 3]), "handshake PDU rejected"),
        ("mls-key-package-request", lambda o: o.update(cipherSuite=2), "cipher suite"),
        ("mls-key-package-request", lambda o: o.update(cipherSuite="1"), "cipherSuite"),
        ("mls-key-package-request", lambda o: False, "disagree"),  # dropped, MLS still chosen
        ("mls-commit", _flip("commit", 30), "handshake PDU rejected"),  # content or signature
        ("mls-commit", lambda o: o["commit"].pop(), "handshake PDU rejected"),  # truncated
        ("mls-welcome", _flip("welcome", 60), "handshake PDU rejected"),
        ("mls-welcome-ack", _flip("confirmation", 0), "MLS welcome acknowledgement failed"),
    ],
)
def test_hostile_mls_pdus_fail_the_handshake(kind: str, edit: Edit, match: str) -> None:
    _both_fail(_run(_edit(kind, edit)), match)


def test_a_lost_welcome_ends_in_the_handshake_timeout_on_both_sides() -> None:
    a, b = start(PYCA, PYCA)
    drop = _edit("mls-welcome", lambda o: False)
    for _ in range(4):
        for pdu in a.data_to_send():
            assert b.receive(pdu, START + 1) == []
        for pdu in b.data_to_send():
            kept = drop("b->a", pdu)
            if kept is not None:
                assert a.receive(kept, START + 1) == []
    assert not a.complete and not b.complete  # I waits for the Welcome, R for the ack
    for side in (a, b):
        deadline = side.next_deadline()
        assert deadline == START + 300.0
        (timed_out,) = side.handle_timeout(deadline)
        assert isinstance(timed_out, HandshakeFailed) and timed_out.reason.startswith("timeout")


def test_key_package_of_another_identity_is_refused() -> None:
    other = _other_key_package()

    def swap(direction: str, pdu: bytes) -> bytes:
        return other if json.loads(pdu)["type"] == "mls-key-package" else pdu

    _both_fail(_run(swap), "handshake PDU rejected")


def test_welcome_for_another_key_package_is_refused() -> None:
    """Commit and Welcome of a parallel handshake (another KeyPackage, another group)."""
    found: dict[str, bytes] = {}

    def grab(direction: str, pdu: bytes) -> bytes:
        found.setdefault(json.loads(pdu)["type"], pdu)
        return pdu

    pump(*start(PYCA, PYCA), grab)

    def swap_welcome(direction: str, pdu: bytes) -> bytes:
        return found["mls-welcome"] if json.loads(pdu)["type"] == "mls-welcome" else pdu

    _both_fail(_run(swap_welcome), "handshake PDU rejected")

    def swap_commit(direction: str, pdu: bytes) -> bytes:
        return found["mls-commit"] if json.loads(pdu)["type"] == "mls-commit" else pdu

    _both_fail(_run(swap_commit), "handshake PDU rejected")


def test_replayed_commit_is_refused() -> None:
    seen: list[bytes] = []

    def replay(direction: str, pdu: bytes) -> bytes:
        kind = json.loads(pdu)["type"]
        if kind == "mls-commit":
            seen.append(pdu)
        return seen[0] if kind == "mls-welcome" else pdu  # the commit again, for the Welcome

    _both_fail(_run(replay), "unexpected 'mls-commit'")


def test_mls_request_when_mls_was_not_chosen_is_refused() -> None:
    a, b = start(PYCA, PYCA, layers=["Signal"])
    request = a.data_to_send()
    assert b.receive(request[0], START + 1) == []
    flight = b.data_to_send()
    ask = json.dumps({"type": "mls-key-package-request", "cipherSuite": 1}).encode()
    injected = [ask, *flight]
    events = [e for pdu in injected for e in a.receive(pdu, START + 1)]
    assert "disagree" in failure(events).reason


@pytest.mark.parametrize(
    "pdu",
    [
        {"type": "mls-commit", "commit": [0] * 9000},
        {"type": "mls-welcome", "welcome": "not bytes"},
        {"type": "mls-welcome-ack", "confirmation": [0] * 31},
        {"type": "mls-key-package", "keyPackage": [256]},
    ],
)
def test_malformed_mls_pdus_at_any_point_never_raise(pdu: dict[str, object]) -> None:
    data = json.dumps(pdu).encode()
    for role in (True, False):
        hs = PYCA.handshake(PYCA.new_identity(), initiator=role, now=START)
        events = hs.receive(data, START + 1)
        assert len(events) == 1 and isinstance(events[0], HandshakeFailed)
