"""One conformance check per slot contract, runnable from a plugin's own test suite.

Each check drives the service through the contract only (never its concrete class) and raises
:class:`ConformanceError` with the rule it broke. They cover behaviour a Protocol cannot express:
the handshake reaches a session on both sides, failures are events not exceptions, the 300 s
handshake timeout, one opaque error for tampered input, typed ``open`` results, state export; and
for crypto 2.1's group API, three members through adds, messages, a removal, hostile input and
state export (:func:`check_group_service`).
"""

from __future__ import annotations

__all__ = [
    "ConformanceError",
    "check_crypto_service",
    "check_group_service",
    "check_transport_service",
    "check_ui_service",
]

import asyncio
from collections.abc import Callable

from ..contracts import (
    CONTRACT_VERSIONS,
    WIRE_LIMITS,
    ControlApplied,
    CryptoFailure,
    CryptoService,
    CryptoServiceV21,
    Delivered,
    GroupCommit,
    GroupCommitApplied,
    GroupControlSigner,
    GroupCryptoService,
    GroupEvent,
    GroupInputRejected,
    GroupJoined,
    GroupMessage,
    GroupSession,
    Handshake,
    HandshakeComplete,
    HandshakeFailed,
    HandshakeMisuse,
    LinkClosed,
    LocalMisuse,
    RemovedFromGroup,
    SecureSession,
    StateError,
    TransportService,
    service_problems,
    supports,
)


class ConformanceError(AssertionError):
    """The implementation breaks a rule of its contract (the message names it)."""


def _require(condition: bool, rule: str) -> None:
    if not condition:
        raise ConformanceError(rule)


def _shape(slot: str, service: object, version: str | None) -> None:
    problems = service_problems(slot, version or CONTRACT_VERSIONS[slot], service)
    _require(not problems, f"{slot} contract: {'; '.join(problems)}")


# ------------------------------------------------------------------------------------------ crypto
def check_crypto_service(make: Callable[[], CryptoService], *, version: str | None = None) -> None:
    """Two services from ``make`` handshake, exchange, rotate, export/restore and fail as the
    crypto contract says. The shape is checked against ``version`` (your manifest's; ``None``:
    2.0, the version whose members this check drives — :func:`check_group_service` drives 2.1's)."""
    alice, bob = make(), make()
    _shape("crypto", alice, version or "2.0")
    a_id, b_id = alice.new_identity(), bob.new_identity()
    _require(alice.fingerprint(a_id) != bob.fingerprint(b_id), "distinct identities share a fingerprint")
    a_session, b_session = _handshake(alice, a_id, bob, b_id)
    _require(a_session.peer_fingerprint == bob.fingerprint(b_id), "peer_fingerprint is not the peer's fingerprint")
    _require(b_session.peer_fingerprint == alice.fingerprint(a_id), "peer_fingerprint is not the peer's fingerprint")
    _require(a_session.safety_number == b_session.safety_number, "the two sides compute different safety numbers")
    _require((a_session.profile, a_session.layers) == (b_session.profile, b_session.layers),
             "the two sides negotiated different profiles or layers")
    _exchange(a_session, b_session)
    _tampering_is_opaque(a_session, b_session)
    _rotation(a_session, b_session)
    _export_restore(bob, a_session, b_session)
    _handshake_failures(alice, a_id, bob, b_id)


def _pump(first: Handshake, second: Handshake, now: float) -> tuple[SecureSession | None, SecureSession | None]:
    sessions: list[SecureSession | None] = [None, None]
    sides = (first, second)
    for _ in range(16):  # every profile completes in a handful of round trips
        moved = False
        for i, (sender, receiver) in enumerate(((first, second), (second, first))):
            for pdu in sender.data_to_send():
                moved = True
                for event in receiver.receive(pdu, now):
                    _require(not isinstance(event, HandshakeFailed), f"handshake failed: {getattr(event, 'reason', '')}")
                    if isinstance(event, HandshakeComplete):
                        sessions[1 - i] = event.session
        if not moved:
            break
    _require(all(side.complete for side in sides), "the handshake did not complete on both sides")
    return sessions[0], sessions[1]


def _handshake(alice: CryptoService, a_id: bytes, bob: CryptoService, b_id: bytes) -> tuple[SecureSession, SecureSession]:
    a = alice.handshake(a_id, initiator=True, now=0.0)
    b = bob.handshake(b_id, initiator=False, now=0.0)
    a_session, b_session = _pump(a, b, 1.0)
    _require(a_session is not None and b_session is not None, "HandshakeComplete was not returned on both sides")
    assert a_session is not None and b_session is not None
    _require(a.next_deadline() is None and b.next_deadline() is None, "a finished handshake still has a deadline")
    return a_session, b_session


def _exchange(a: SecureSession, b: SecureSession) -> None:
    for sender, receiver in ((a, b), (b, a), (a, b)):
        for text in (b"hello", b"", bytes(range(256)) * 40):
            result = receiver.open(sender.seal(text))
            _require(result == Delivered(text), "open did not return Delivered(plaintext) for a sealed message")


def _tampering_is_opaque(a: SecureSession, b: SecureSession) -> None:
    wire = a.seal(b"genuine")
    for bad in (wire[:-1] + bytes([wire[-1] ^ 1]), wire[: len(wire) // 2], b"", b"\x00" * 64):
        try:
            b.open(bad)
        except CryptoFailure:
            continue
        raise ConformanceError("a tampered or truncated message was not refused with CryptoFailure")
    _require(b.open(wire) == Delivered(b"genuine"), "a refused message changed the session state")


def _rotation(a: SecureSession, b: SecureSession) -> None:
    control = a.rotate(10.0)
    if control is not None:
        _require(isinstance(b.open(control), ControlApplied), "a rotation PDU did not open as ControlApplied")
    _require(b.open(a.seal(b"after rotation")) == Delivered(b"after rotation"), "messages after a rotation fail")


def _export_restore(bob: CryptoService, a: SecureSession, b: SecureSession) -> None:
    restored = bob.restore(b.export_state())
    _require((restored.profile, restored.layers, restored.peer_fingerprint) == (b.profile, b.layers, b.peer_fingerprint),
             "a restored session differs from the exported one")
    _require(restored.open(a.seal(b"resumed")) == Delivered(b"resumed"), "a restored session cannot open new messages")
    _require(a.open(restored.seal(b"reply")) == Delivered(b"reply"), "a restored session cannot seal")


def _handshake_failures(alice: CryptoService, a_id: bytes, bob: CryptoService, b_id: bytes) -> None:
    b = bob.handshake(b_id, initiator=False, now=0.0)
    events = b.receive(b"\xff not a handshake PDU", 1.0)
    _require(len(events) == 1 and isinstance(events[0], HandshakeFailed), "a malformed PDU did not give HandshakeFailed")
    failed = events[0]
    assert isinstance(failed, HandshakeFailed)
    _require(failed.pdu_to_send is not None, "the peer is not told why the handshake failed (protocol-error)")
    try:
        b.receive(b"{}", 2.0)
    except HandshakeMisuse:
        pass
    else:
        raise ConformanceError("receive after the handshake ended did not raise HandshakeMisuse")
    a = alice.handshake(a_id, initiator=True, now=100.0)
    deadline = a.next_deadline()
    _require(deadline is not None and deadline <= 100.0 + WIRE_LIMITS.handshake_timeout_s,
             "the handshake deadline is missing or later than the 300 s handshake timeout")
    assert deadline is not None
    _require(a.handle_timeout(deadline - 1.0) == [], "a timer fired before its deadline")
    timed_out = a.handle_timeout(deadline)
    _require(len(timed_out) == 1 and isinstance(timed_out[0], HandshakeFailed), "the handshake timeout did not fail the handshake")


# ------------------------------------------------------------------------------------------ groups
def check_group_service(make: Callable[[], CryptoService], *, version: str | None = None) -> None:
    """Crypto 2.1's group API: three services from ``make`` — one creates a group and adds two by
    key package and Welcome; messages go every way; an update, a removal (the removed member can
    no longer read, even from its state before the removal); tampered, replayed, foreign and
    malformed input gives :class:`GroupInputRejected` with ``export_state()`` unchanged; export /
    restore continue the group; from 2.2, control signatures (made by one member, verified by
    the others, refused when altered, of another member, group or length). ``version``: your
    manifest's (``None``: 2.1, the version that brought groups — a 2.1 plugin keeps passing)."""
    version = version or "2.1"
    services = [make(), make(), make()]
    _shape("crypto", services[0], version)
    _require(supports(services[0], GroupCryptoService), "the service does not support GroupCryptoService")
    svc = [s for s in services if isinstance(s, CryptoServiceV21)]
    ids = [s.new_identity() for s in svc]
    fps = [s.fingerprint(i) for s, i in zip(svc, ids, strict=True)]
    alice = svc[0].create_group(ids[0])
    _require((alice.epoch, alice.members, alice.own_fingerprint) == (0, (fps[0],), fps[0]),
             "a new group is not at epoch 0 with its creator as the only member")
    kps = [svc[i].new_key_package(ids[i]) for i in (1, 2)]
    out = alice.add([kp.public for kp in kps])
    _require(isinstance(out, GroupCommit) and out.welcome is not None, "add did not return a commit and a Welcome")
    assert isinstance(out, GroupCommit) and out.welcome is not None
    bob, carol = (_joined(svc[i], ids[i], kps[i - 1].private, out.welcome) for i in (1, 2))
    group = [alice, bob, carol]
    _agree(group, 1, fps)
    if tuple(map(int, version.split("."))) >= (2, 2):
        _group_control_signatures(group, fps, svc[0].create_group(ids[0]))
    _group_messages(group, fps)
    _group_hostile(svc[1], ids[1], group, fps)
    commit = bob.update().commit
    for member in (alice, carol):
        _applied(member.receive(commit), bob.epoch, fps[1], fps)
    _agree(group, bob.epoch, fps)
    _group_removal(svc[2], group, fps)
    _group_export_restore(svc[1], alice, bob)


def _group_control_signatures(group: list[GroupSession], fps: list[str], other: GroupSession) -> None:
    signers = [m for m in [*group, other] if isinstance(m, GroupControlSigner)]
    _require(len(signers) == 4, "a 2.2 group session does not implement GroupControlSigner")
    alice, bob, carol, elsewhere = signers
    signature = alice.sign_control(b"receipt 1")
    for member in (bob, carol, alice):
        _require(member.verify_control(fps[0], b"receipt 1", signature), "a member's control signature did not verify")
    for fp, content, sig in ((fps[0], b"receipt 2", signature), (fps[1], b"receipt 1", signature),
                             ("not-a-member", b"receipt 1", signature), (fps[0], b"receipt 1", signature[:-1]),
                             (fps[0], b"receipt 1", b""), (fps[0], b"receipt 1", signature * 100)):
        _require(not bob.verify_control(fp, content, sig), "an altered or misattributed control signature verified")
    _require(not elsewhere.verify_control(fps[0], b"receipt 1", signature), "a control signature verified in another group")


def _joined(service: GroupCryptoService, identity: bytes, key_package: bytes, welcome: bytes) -> GroupSession:
    result = service.join_group(identity, key_package, welcome)
    _require(isinstance(result, GroupJoined), f"join_group did not return GroupJoined: {result}")
    assert isinstance(result, GroupJoined)
    return result.session


def _agree(group: list[GroupSession], epoch: int, members: list[str]) -> None:
    for member in group:
        _require(member.epoch == epoch, "members are not at the same epoch")
        _require(member.members == tuple(members), "members disagree on the member list")
        _require(member.epoch_authenticator == group[0].epoch_authenticator, "members disagree on the epoch authenticator")
        _require(member.group_id == group[0].group_id, "members disagree on the group id")


def _applied(events: list[GroupEvent], epoch: int, committer: str, members: list[str]) -> GroupCommitApplied:
    _require(len(events) == 1 and isinstance(events[0], GroupCommitApplied), f"a commit did not give GroupCommitApplied: {events}")
    event = events[0]
    assert isinstance(event, GroupCommitApplied)
    _require((event.epoch, event.committer, event.members) == (epoch, committer, tuple(members)),
             "GroupCommitApplied does not give the new epoch, the committer and the members")
    return event


def _delivered(receiver: GroupSession, wire: bytes, sender: str, text: bytes) -> None:
    _require(receiver.receive(wire) == [GroupMessage(sender, text)], "a sealed message did not give GroupMessage(sender, plaintext)")


def _group_messages(group: list[GroupSession], fps: list[str]) -> None:
    for i, sender in enumerate(group):
        for text in (b"hello", b"", bytes(range(256)) * 40):
            wire = sender.seal(text)
            for j, receiver in enumerate(group):
                if j != i:
                    _delivered(receiver, wire, fps[i], text)


def _rejected_unchanged(member: GroupSession, data: bytes, rule: str) -> None:
    before = member.export_state()
    try:
        events = member.receive(data)
    except Exception as exc:  # the rule under test: a peer's fault is an event
        raise ConformanceError(f"{rule} raised {type(exc).__name__} instead of GroupInputRejected") from exc
    _require(len(events) == 1 and isinstance(events[0], GroupInputRejected), f"{rule} did not give GroupInputRejected: {events}")
    _require(member.export_state() == before, f"{rule} changed the group state")


def _group_hostile(service: CryptoServiceV21, identity: bytes, group: list[GroupSession], fps: list[str]) -> None:
    alice, bob, carol = group
    wire = alice.seal(b"genuine")
    for bad in (wire[:-1] + bytes([wire[-1] ^ 1]), wire[: len(wire) // 2], b"", b"\xff" * 64):
        _rejected_unchanged(bob, bad, "a tampered or truncated message")
    _delivered(bob, wire, fps[0], b"genuine")
    _rejected_unchanged(bob, wire, "a replayed application message")
    _rejected_unchanged(alice, alice.seal(b"mine"), "our own message reflected back")
    before = alice.export_state()
    rejected = alice.add([b"\x00\x01 not a key package"])
    _require(isinstance(rejected, GroupInputRejected) and alice.export_state() == before,
             "a malformed key package was not a GroupInputRejected leaving the group unchanged")
    commit = carol.update().commit
    for bad in (commit[:-1] + bytes([commit[-1] ^ 1]), commit[: len(commit) - 40]):
        for member in (alice, bob):
            _rejected_unchanged(member, bad, "a tampered commit")
    for member in (alice, bob):
        _applied(member.receive(commit), carol.epoch, fps[2], fps)
        _rejected_unchanged(member, commit, "a replayed commit")
    other = service.new_key_package(identity)
    elsewhere = service.create_group(service.new_identity())
    foreign = elsewhere.add([service.new_key_package(service.new_identity()).public])
    assert isinstance(foreign, GroupCommit) and foreign.welcome is not None
    for bad_welcome in (foreign.welcome, b"", b"\x00\x01\x00\x03garbage"):
        result = service.join_group(identity, other.private, bad_welcome)
        _require(isinstance(result, GroupInputRejected), "a Welcome for another key package or a malformed one was not rejected")
    for member in group:  # back in step at one epoch for what follows
        _require(member.epoch == group[0].epoch, "members fell out of step")


def _group_removal(service: GroupCryptoService, group: list[GroupSession], fps: list[str]) -> None:
    alice, bob, carol = group
    carol_before = carol.export_state()
    out = alice.remove([fps[2]])
    event = _applied(bob.receive(out.commit), alice.epoch, fps[0], fps[:2])
    _require(event.removed == (fps[2],), "GroupCommitApplied does not name the removed member")
    removed = carol.receive(out.commit)
    _require(len(removed) == 1 and isinstance(removed[0], RemovedFromGroup), "the removed member did not get RemovedFromGroup")
    after = alice.seal(b"without carol")
    _delivered(bob, after, fps[0], b"without carol")
    _rejected_unchanged(carol, after, "a message of an epoch after our removal")
    _rejected_unchanged(service.restore_group(carol_before), after,
                        "a message after our removal, read with our state from before it")
    try:
        carol.seal(b"still here?")
    except LocalMisuse:
        pass
    else:
        raise ConformanceError("seal after RemovedFromGroup did not raise LocalMisuse")


def _group_export_restore(service: GroupCryptoService, alice: GroupSession, bob: GroupSession) -> None:
    restored = service.restore_group(bob.export_state())
    _require((restored.group_id, restored.epoch, restored.members, restored.epoch_authenticator)
             == (bob.group_id, bob.epoch, bob.members, bob.epoch_authenticator),
             "a restored group differs from the exported one")
    _delivered(restored, alice.seal(b"resumed"), alice.own_fingerprint, b"resumed")
    _delivered(alice, restored.seal(b"reply"), bob.own_fingerprint, b"reply")
    for bad in (b"", b"\x00" * 64, bob.export_state()[:-9]):
        try:
            service.restore_group(bad)
        except StateError:
            continue
        raise ConformanceError("damaged group state was not refused with StateError")


# ------------------------------------------------------------------------------------------ p2p / ui
def check_transport_service(service: TransportService, *, version: str | None = None) -> None:
    """A p2p 1.0 transport's links are ordered, carry bytes unchanged and end with
    :class:`LinkClosed`. The shape is checked against ``version`` (``None``: 1.0, whose
    ``loopback_pair`` this check drives); p2p 2.0 has :func:`check_endpoint_pair`."""
    _shape("p2p", service, version or "1.0")

    async def run() -> None:
        first, second = await service.loopback_pair("alice", "bob")
        _require((first.peer_id, second.peer_id) == ("bob", "alice"), "peer_id is not the remote end")
        for i in range(50):
            await first.send(b"%d" % i)
        got = [await second.receive() for _ in range(50)]
        _require(got == [b"%d" % i for i in range(50)], "a link reordered or changed PDUs")
        await first.close()
        await first.close()  # idempotent
        for end in (first, second):
            try:
                await asyncio.wait_for(end.send(b"x") if end is first else end.receive(), 5)
            except LinkClosed:
                continue
            raise ConformanceError("a closed link did not raise LinkClosed")

    asyncio.run(run())


def check_ui_service(service: object, *, version: str | None = None) -> None:
    """The ui service has the shape of its contract (behaviour is the ui's own to test)."""
    _shape("ui", service, version)
