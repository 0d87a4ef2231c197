"""Crypto contract 2.1's group API (issue 12, items 6 and 7) through the contract.

The pyca service passes the shell's ``check_group_service``; the nacl service stays on 2.0 and
does not offer the feature. Hostile input — malformed and oversized structures, wrong epochs, bad
signatures and tags, replayed and reordered commits, a commit from a removed member, a Welcome
for another KeyPackage, kinds of message this API does not carry, credentials not bound to an
identity key — gives a :class:`GroupInputRejected` event (never an exception), and the member's
``export_state()`` is byte-for-byte what it was.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path

import pytest

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.errors import CryptoUsageError
from enkrypted_crypto.groups import MlsGroupSession
from enkrypted_crypto.limits import DEFAULT_LIMITS
from enkrypted_crypto.mls import (
    Group,
    GroupConfig,
    key_package_message,
    new_key_package_bundle,
    suite,
)
from enkrypted_crypto.mls._messages import Remove
from enkrypted_crypto.plugin import enkrypted_crypto_service as pyca_hook
from enkrypted_crypto.service import CascadeCryptoService, GroupCryptoService, service_from_settings
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_crypto_nacl.plugin import enkrypted_crypto_service as nacl_hook
from enkrypted_shell import contracts
from enkrypted_shell.contracts import (
    AppContext,
    GroupCommit,
    GroupCommitApplied,
    GroupEvent,
    GroupInputRejected,
    GroupJoined,
    GroupMessage,
    GroupSession,
    LocalMisuse,
    RemovedFromGroup,
    StateError,
    WireLimits,
    service_problems,
    supports,
)
from enkrypted_shell.testing import ConformanceError, FakeClock, check_group_service

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def _service() -> GroupCryptoService:
    return GroupCryptoService(PycaPrimitives())


# ------------------------------------------------------------------------------ conformance
def test_pyca_service_passes_the_group_conformance_check() -> None:
    check_group_service(_service)


def test_pyca_plugin_hook_is_crypto_2_2_with_groups_and_control_signatures(tmp_path: Path) -> None:
    context = AppContext(home=tmp_path, clock=FakeClock(5.0))
    service = pyca_hook(context)
    assert contracts.CONTRACT_VERSIONS["crypto"] == "2.2"
    assert service_problems("crypto", "2.2", service) == []
    assert supports(service, contracts.GroupCryptoService)
    check_group_service(lambda: pyca_hook(context), version="2.2")
    check_group_service(lambda: pyca_hook(context), version="2.1")  # 2.1's checks alone pass too
    manifest = (PLUGINS / "cryptography/src/enkrypted_crypto/enkrypted-plugin.toml").read_text()
    assert 'contract = "2.2"' in manifest


def test_a_control_signature_is_the_members_own_and_survives_epochs(tmp_path: Path) -> None:
    """Signed with the leaf key of the member's identity: it verifies after later commits,
    not once the signer is removed, and a removed member can no longer sign."""
    services = [_service() for _ in range(3)]
    ids = [s.new_identity() for s in services]
    fps = [s.fingerprint(i) for s, i in zip(services, ids, strict=True)]
    alice = services[0].create_group(ids[0])
    kps = [services[i].new_key_package(ids[i]) for i in (1, 2)]
    added = alice.add([kp.public for kp in kps])
    assert isinstance(added, contracts.GroupCommit) and added.welcome is not None
    joined = [services[i].join_group(ids[i], kps[i - 1].private, added.welcome) for i in (1, 2)]
    bob, carol = (j.session for j in joined if isinstance(j, contracts.GroupJoined))
    assert supports(bob, contracts.GroupControlSigner) and isinstance(bob, MlsGroupSession)
    assert isinstance(alice, MlsGroupSession) and isinstance(carol, MlsGroupSession)
    signature = carol.sign_control(b"ids")
    update = bob.update().commit
    for member in (alice, carol):
        assert isinstance(member.receive(update)[0], contracts.GroupCommitApplied)
    assert alice.epoch == 2 and alice.verify_control(fps[2], b"ids", signature)  # signed at 1
    removal = alice.remove([fps[2]]).commit
    assert not alice.verify_control(fps[2], b"ids", signature)  # no longer a member
    assert isinstance(carol.receive(removal)[0], contracts.RemovedFromGroup)
    with pytest.raises(contracts.LocalMisuse):
        carol.sign_control(b"ids")


def test_nacl_stays_on_2_0_without_the_group_feature(tmp_path: Path) -> None:
    """PyNaCl has no HPKE (no MLS suite): its service is 2.0, and callers feature-detect."""
    service = nacl_hook(AppContext(home=tmp_path))
    assert type(service) is CascadeCryptoService
    assert service_problems("crypto", "2.0", service) == []
    assert not supports(service, contracts.GroupCryptoService)
    missing = service_problems("crypto", "2.1", service)
    assert "missing method 'create_group'" in missing and "missing method 'join_group'" in missing
    manifest = (PLUGINS / "cryptography_nacl/src/enkrypted_crypto_nacl/enkrypted-plugin.toml").read_text()
    assert 'contract = "2.0"' in manifest
    with pytest.raises(CryptoUsageError, match="mls-suite-1"):
        GroupCryptoService(NaclPrimitives())
    assert type(service_from_settings(NaclPrimitives(), {})) is CascadeCryptoService


# ------------------------------------------------------------------------------ helpers
class Member:
    def __init__(self, service: GroupCryptoService) -> None:
        self.service = service
        self.identity = service.new_identity()
        self.fingerprint = service.fingerprint(self.identity)
        self.session: GroupSession | None = None

    @property
    def s(self) -> GroupSession:
        assert self.session is not None
        return self.session


def _group(n: int, service: GroupCryptoService | None = None) -> list[Member]:
    service = service or _service()
    members = [Member(service) for _ in range(n)]
    members[0].session = service.create_group(members[0].identity)
    if n > 1:
        kps = [service.new_key_package(m.identity) for m in members[1:]]
        out = members[0].s.add([kp.public for kp in kps])
        assert isinstance(out, GroupCommit) and out.welcome is not None
        for member, kp in zip(members[1:], kps, strict=True):
            joined = service.join_group(member.identity, kp.private, out.welcome)
            assert isinstance(joined, GroupJoined)
            member.session = joined.session
    return members


def _rejected(session: GroupSession, data: bytes) -> GroupInputRejected:
    before = session.export_state()
    events = session.receive(data)
    assert len(events) == 1 and isinstance(events[0], GroupInputRejected), events
    assert session.export_state() == before
    return events[0]


def _broadcast(data: bytes, members: list[Member]) -> list[list[GroupEvent]]:
    return [m.s.receive(data) for m in members]


# ------------------------------------------------------------------------------ behaviour
def test_membership_changes_report_added_and_removed() -> None:
    a, b, c = _group(3)
    service = a.service
    d = Member(service)
    kp = service.new_key_package(d.identity)
    out = b.s.add([kp.public])
    assert isinstance(out, GroupCommit) and out.welcome is not None
    for event in _broadcast(out.commit, [a, c]):
        assert event == [GroupCommitApplied(2, b.fingerprint, (a.fingerprint, b.fingerprint, c.fingerprint, d.fingerprint), (d.fingerprint,), ())]
    joined = service.join_group(d.identity, kp.private, out.welcome)
    assert isinstance(joined, GroupJoined)
    d.session = joined.session
    out2 = d.s.remove([a.fingerprint, c.fingerprint])
    assert out2.welcome is None
    assert b.s.receive(out2.commit) == [GroupCommitApplied(3, d.fingerprint, (b.fingerprint, d.fingerprint), (), (a.fingerprint, c.fingerprint))]
    for member in (a, c):
        assert member.s.receive(out2.commit) == [RemovedFromGroup(3, d.fingerprint)]
    assert b.s.epoch_authenticator == d.s.epoch_authenticator
    assert b.s.receive(d.s.seal(b"two of us")) == [GroupMessage(d.fingerprint, b"two of us")]


def test_local_misuse_raises() -> None:
    a, b = _group(2)
    for bad in ([], [a.fingerprint], ["00" * 32]):
        with pytest.raises(LocalMisuse):
            a.s.remove(bad)
    with pytest.raises(LocalMisuse):
        a.s.add([])
    with pytest.raises(LocalMisuse):
        a.service.create_group(a.identity, b"")
    other = Member(a.service)
    kp = a.service.new_key_package(other.identity)
    with pytest.raises(LocalMisuse):  # a key package of another identity
        a.service.join_group(b.identity, kp.private, b"")
    with pytest.raises(LocalMisuse):
        a.service.join_group(b.identity, kp.public, b"")


def test_late_application_messages_of_the_previous_epoch_are_read() -> None:
    a, b, c = _group(3)
    late = c.s.seal(b"sent before the update")
    commit = a.s.update().commit
    for member in (b, c):
        assert isinstance(member.s.receive(commit)[0], GroupCommitApplied)
    assert b.s.receive(late) == [GroupMessage(c.fingerprint, b"sent before the update")]
    _rejected(b.s, late)  # its key was used


def test_random_sequences_keep_members_in_agreement() -> None:
    rng = random.Random(1209)
    service = _service()
    members = _group(2, service)
    for _ in range(14):
        committer = rng.choice(members)
        action = rng.choice(["add", "remove", "update"] if len(members) > 2 else ["add", "update"])
        others = [m for m in members if m is not committer]
        if action == "add":
            new = Member(service)
            kp = service.new_key_package(new.identity)
            out = committer.s.add([kp.public])
            assert isinstance(out, GroupCommit) and out.welcome is not None
            for member in others:
                assert isinstance(member.s.receive(out.commit)[0], GroupCommitApplied)
            joined = service.join_group(new.identity, kp.private, out.welcome)
            assert isinstance(joined, GroupJoined)
            new.session = joined.session
            members.append(new)
        elif action == "remove":
            gone = rng.choice(others)
            out = committer.s.remove([gone.fingerprint])
            assert gone.s.receive(out.commit) == [RemovedFromGroup(committer.s.epoch, committer.fingerprint)]
            members.remove(gone)
            for member in members:
                if member is not committer:
                    assert isinstance(member.s.receive(out.commit)[0], GroupCommitApplied)
            _rejected(gone.s, committer.s.seal(b"not for you"))
        else:
            out = committer.s.update()
            for member in others:
                assert isinstance(member.s.receive(out.commit)[0], GroupCommitApplied)
        views = {(m.s.epoch, m.s.members, m.s.epoch_authenticator) for m in members}
        assert len(views) == 1
        sender = rng.choice(members)
        wire = sender.s.seal(b"round")
        for member in members:
            if member is not sender:
                assert member.s.receive(wire) == [GroupMessage(sender.fingerprint, b"round")]


# ------------------------------------------------------------------------------ hostile input
@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x00\x01", b"\x00\x01\x00\x01", b"\x00\x01\x00\x02" + b"\xff" * 40,
     b"\x00\x01\x00\x05" + b"\x00" * 10, b"\x40" * 100, bytes(range(256)), b"\xc0" * 16],
)  # fmt: skip
def test_malformed_structures_are_rejected(data: bytes) -> None:
    a, _b = _group(2)
    _rejected(a.s, data)


def test_every_truncation_and_bit_flip_of_a_commit_is_rejected() -> None:
    a, b, c = _group(3)
    commit = a.s.update().commit
    rng = random.Random(7)
    cuts = sorted(set(range(0, len(commit), 37)) | {len(commit) - 1})
    for cut in cuts:
        _rejected(b.s, commit[:cut])
    positions = rng.sample(range(len(commit)), 60) + list(range(len(commit) - 120, len(commit)))
    for pos in positions:  # header, content, signature, confirmation tag, membership tag
        bad = bytearray(commit)
        bad[pos] ^= 1 << rng.randrange(8)
        events = b.s.receive(bytes(bad))
        assert len(events) == 1
        if not isinstance(events[0], GroupInputRejected):  # a flip the encoding ignores
            pytest.fail(f"flipped byte {pos} of a commit was accepted: {events}")
    assert isinstance(b.s.receive(commit)[0], GroupCommitApplied)
    assert isinstance(c.s.receive(commit)[0], GroupCommitApplied)


def test_oversized_input_is_rejected_before_parsing() -> None:
    limits = replace(DEFAULT_LIMITS, wire=WireLimits(max_pdu_bytes=4096))
    service = GroupCryptoService(PycaPrimitives(), limits=limits)
    a, b = _group(2, service)
    _rejected(b.s, a.s.seal(b"x" * 100) + b"\x00" * 4096)
    assert "PDU cap" in _rejected(b.s, b"\x00" * 5000).reason
    with pytest.raises(LocalMisuse):
        a.s.seal(b"x" * 5000)
    big = service.new_key_package(Member(service).identity).public + b"\x00" * 5000
    before = a.s.export_state()
    assert isinstance(a.s.add([big]), GroupInputRejected) and a.s.export_state() == before
    kp = service.new_key_package(b.identity)
    assert isinstance(service.join_group(b.identity, kp.private, b"\x00" * 5000), GroupInputRejected)


def test_wrong_epoch_replayed_and_reordered_commits_are_rejected() -> None:
    a, b, c = _group(3)
    first = a.s.update().commit  # epoch 1 -> 2
    second = a.s.update().commit  # epoch 2 -> 3
    _rejected(b.s, second)  # reordered: from the future
    assert isinstance(b.s.receive(first)[0], GroupCommitApplied)
    _rejected(b.s, first)  # replayed: from the past
    assert isinstance(b.s.receive(second)[0], GroupCommitApplied)
    _rejected(b.s, second)
    for commit in (first, second):
        assert isinstance(c.s.receive(commit)[0], GroupCommitApplied)
    # two members commit in the same epoch: the first applied wins, the other is stale
    mine, theirs = b.s.update().commit, c.s.update().commit
    assert isinstance(a.s.receive(mine)[0], GroupCommitApplied)
    _rejected(a.s, theirs)
    _rejected(c.s, c.s.seal(b"reflected"))
    _rejected(b.s, mine)  # our own commit echoed back


def test_messages_of_another_group_are_rejected() -> None:
    _a, b = _group(2)
    x, _y = _group(2)
    _rejected(b.s, x.s.seal(b"elsewhere"))
    _rejected(b.s, x.s.update().commit)


def test_commit_from_a_removed_member_is_rejected() -> None:
    a, b, c = _group(3)
    c_before = c.s.export_state()
    removal = a.s.remove([c.fingerprint])
    assert isinstance(b.s.receive(removal.commit)[0], GroupCommitApplied)
    assert c.s.receive(removal.commit) == [RemovedFromGroup(2, a.fingerprint)]
    old_c = c.service.restore_group(c_before)  # the removed member acts on its old state
    for commit in (old_c.update().commit, old_c.remove([a.fingerprint]).commit):
        for member in (a, b):
            _rejected(member.s, commit)
    for member in (a, b):
        _rejected(member.s, old_c.seal(b"still here"))
    _rejected(c.s, a.s.seal(b"after removal"))
    with pytest.raises(LocalMisuse):
        c.s.update()


def test_welcome_for_another_key_package_is_rejected() -> None:
    a, _b = _group(2)
    service = a.service
    d, e = Member(service), Member(service)
    kp_d, kp_e = service.new_key_package(d.identity), service.new_key_package(e.identity)
    out = a.s.add([kp_d.public])
    assert isinstance(out, GroupCommit) and out.welcome is not None
    result = service.join_group(e.identity, kp_e.private, out.welcome)
    assert isinstance(result, GroupInputRejected)
    kp_d2 = service.new_key_package(d.identity)  # d's other, unused key package
    assert isinstance(service.join_group(d.identity, kp_d2.private, out.welcome), GroupInputRejected)
    assert isinstance(service.join_group(d.identity, kp_d.private, out.commit), GroupInputRejected)
    bad = bytearray(out.welcome)
    bad[-5] ^= 1
    assert isinstance(service.join_group(d.identity, kp_d.private, bytes(bad)), GroupInputRejected)
    assert isinstance(service.join_group(d.identity, kp_d.private, out.welcome), GroupJoined)


def test_bad_key_packages_are_rejected_by_add() -> None:
    a, b = _group(2)
    service = a.service
    application = b.s.seal(b"not a key package")
    before = a.s.export_state()
    dup = service.new_key_package(b.identity).public  # b is a member already
    cs = suite(1)
    priv, _ = cs.signature_keypair()
    unbound = key_package_message(new_key_package_bundle(1, b"mallory", priv, int(time.time())))
    wrong_suite_priv, _ = suite(3).signature_keypair()
    suite3 = key_package_message(new_key_package_bundle(3, b"x" * 64, wrong_suite_priv, int(time.time())))
    tampered = bytearray(service.new_key_package(Member(service).identity).public)
    tampered[-3] ^= 1
    for bad in (dup, unbound, suite3, bytes(tampered), application):
        assert isinstance(a.s.add([bad]), GroupInputRejected)
        assert a.s.export_state() == before


def _engine(session: GroupSession) -> Group:
    assert isinstance(session, MlsGroupSession)
    return session._group


def test_message_kinds_this_api_does_not_carry_are_rejected() -> None:
    """Standalone proposals, external commits, commits of other proposal types: valid MLS, but
    not this API's profile — refused before anything is applied or cached."""
    a, b = _group(2)
    _rejected(a.s, _engine(b.s).propose_update())
    _rejected(a.s, _engine(b.s).propose(Remove(0)))
    info = _engine(a.s).group_info()
    cs = suite(1)
    priv, _ = cs.signature_keypair()
    outsider_bundle = new_key_package_bundle(1, priv[:32] + b"\x00" * 32, priv, int(time.time()))
    _, external_commit = Group.join_external(info, outsider_bundle)
    _rejected(a.s, external_commit)
    _rejected(b.s, external_commit)


def test_welcome_with_unbound_credentials_is_rejected() -> None:
    """A group built by someone whose credential is not bound to its signing key (an identity
    that is not an ``Encode(IK)`` signed by its ``IKs``) cannot be joined."""
    service = _service()
    d = Member(service)
    kp = service.new_key_package(d.identity)
    cs = suite(1)
    priv, _ = cs.signature_keypair()
    mallory = Group.create(1, b"mallory's", new_key_package_bundle(1, b"m" * 64, priv, 0), GroupConfig())
    out = mallory.add([kp.public])
    assert out.welcome is not None
    assert isinstance(service.join_group(d.identity, kp.private, out.welcome), GroupInputRejected)


def test_damaged_state_is_a_state_error() -> None:
    a, _b = _group(2)
    state = a.s.export_state()
    for bad in (b"", state[:40], state[:-1], b"EnkryptedChat-group-state-v1\x00" + b"\x00" * 50):
        with pytest.raises(StateError):
            a.service.restore_group(bad)
    restored = a.service.restore_group(state)
    assert restored.export_state() == state


# ------------------------------------------------------------------------------ the kit itself
def test_the_group_kit_refuses_a_2_0_service() -> None:
    with pytest.raises(ConformanceError, match="missing method 'create_group'"):
        check_group_service(lambda: CascadeCryptoService(NaclPrimitives()))


class _Raising(MlsGroupSession):
    """A session that breaks the rule: it raises for a peer's fault instead of an event."""

    def receive(self, message: bytes) -> list[GroupEvent]:
        events = super().receive(message)
        if events and isinstance(events[0], GroupInputRejected):
            raise contracts.RemoteInputError(events[0].reason)
        return events


class _Leaky(MlsGroupSession):
    """A session whose rejected input still changes its state."""

    def receive(self, message: bytes) -> list[GroupEvent]:
        events = super().receive(message)
        if events and isinstance(events[0], GroupInputRejected):
            self._max_pdu -= 1
        return events

    def export_state(self) -> bytes:
        return super().export_state() + self._max_pdu.to_bytes(8, "big")


@pytest.mark.parametrize(("session", "rule"), [(_Raising, "raised RemoteInputError instead of GroupInputRejected"), (_Leaky, "changed the group state")])
def test_the_group_kit_catches_rule_breakers(session: type[MlsGroupSession], rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from enkrypted_crypto import groups

    monkeypatch.setattr(groups, "MlsGroupSession", session)
    with pytest.raises(ConformanceError, match=rule):
        check_group_service(_service)


# ------------------------------------------------------------------------------ mutation fuzzing
def _mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        b = bytearray(data)
        kind = rng.randrange(6)
        pos = rng.randrange(len(b))
        if kind == 0:
            b[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            b[pos] = rng.choice([0x00, 0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xC0, 0xFF])
        elif kind == 2:
            del b[pos:]
        elif kind == 3:
            b[pos:pos] = rng.randbytes(rng.randrange(1, 9))
        elif kind == 4:
            del b[pos : pos + rng.randrange(1, 9)]
        else:  # a 2-byte field (version, wire format, suite, sender type, epoch low bytes)
            b[pos : pos + 2] = rng.randrange(0, 12).to_bytes(2, "big")
        out.append(bytes(b))
    return out


def test_mutated_group_messages_never_raise_and_leave_the_state_unchanged() -> None:
    """Through the contract, every mutation of a commit (with and without adds), an application
    message, a Welcome and a key package is an event, never an exception."""
    rng = random.Random(20261206)
    a, b, c = _group(3)
    service = a.service
    d = Member(service)
    kp_d = service.new_key_package(d.identity)
    add = a.s.add([kp_d.public])
    assert isinstance(add, GroupCommit) and add.welcome is not None
    samples = {
        "add-commit": add.commit,
        "update-commit": _fresh_commit(c),
        "application": a.s.seal(b"fuzz me" * 10),
    }
    b_state = b.s.export_state()
    for name, data in samples.items():
        for bad in _mutations(data, rng, 150):
            events = b.s.receive(bad)
            assert len(events) == 1, (name, events)
            if isinstance(events[0], GroupInputRejected):
                assert b.s.export_state() == b_state, name
            else:  # a mutation the encoding tolerates: start over from the saved state
                b.session = service.restore_group(b_state)
    for bad in _mutations(add.welcome, rng, 150):
        result = service.join_group(d.identity, kp_d.private, bad)
        assert isinstance(result, GroupInputRejected | GroupJoined)
    before = a.s.export_state()
    for bad in _mutations(service.new_key_package(Member(service).identity).public, rng, 100):
        result = a.s.add([bad])
        if isinstance(result, GroupInputRejected):
            assert a.s.export_state() == before
        else:
            a.session = service.restore_group(before)


def _fresh_commit(member: Member) -> bytes:
    """A commit of ``member`` that the others have not seen (its own state is left behind)."""
    state = member.s.export_state()
    commit = member.s.update().commit
    member.session = member.service.restore_group(state)
    return commit


@pytest.mark.parametrize("suite_id", [2, 3, 99, 0xFFFF])
def test_welcome_of_another_or_unknown_suite_is_an_event(suite_id: int) -> None:
    """The engine refuses an unknown suite as a local error; a peer's Welcome naming one is the
    peer's fault, so the API checks the suite first."""
    a, _b = _group(2)
    service = a.service
    d = Member(service)
    kp = service.new_key_package(d.identity)
    out = a.s.add([kp.public])
    assert isinstance(out, GroupCommit) and out.welcome is not None
    welcome = bytearray(out.welcome)
    welcome[4:6] = suite_id.to_bytes(2, "big")  # MLSMessage version, wire format, then the suite
    assert isinstance(service.join_group(d.identity, kp.private, bytes(welcome)), GroupInputRejected)
