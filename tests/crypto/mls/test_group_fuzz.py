"""Mutated group messages: only the package's own errors come out, and the state is unchanged.

Valid messages of every kind (commit with path, add commit, proposal, application, external
commit; PublicMessage and PrivateMessage) are flipped, truncated, extended and spliced; the
receiving member must raise a ``CryptoError`` (never an ``IndexError``, ``AssertionError``, ...)
and stay exactly as it was, or accept a mutation that kept the message valid.
"""

from __future__ import annotations

import contextlib
import functools
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enkrypted_crypto.errors import CryptoError
from enkrypted_crypto.mls import (
    Group,
    GroupConfig,
    KeyPackageBundle,
    key_package_message,
    new_key_package_bundle,
    suite,
)
from enkrypted_crypto.mls._messages import PRIVATE_MESSAGE, PUBLIC_MESSAGE


def _bundle(suite_id: int, name: bytes) -> KeyPackageBundle:
    priv, _ = suite(suite_id).signature_keypair()
    return new_key_package_bundle(suite_id, name, priv, int(time.time()))


MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("append"), st.integers(1, 64), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
)


def _mutate(data: bytes, kind: str, a: int, b: int) -> bytes:
    if kind == "flip":
        i = a % len(data)
        return data[:i] + bytes([data[i] ^ b]) + data[i + 1 :]
    if kind == "truncate":
        return data[: a % len(data)]
    if kind == "append":
        return data + bytes([b]) * a
    i = a % len(data)
    return data[:i] + bytes([b]) + data[i:]


class _Scenario:
    """Bob right after joining, plus alice's next messages, rebuilt per wire format."""

    def __init__(self, wire_format: int) -> None:
        config = GroupConfig(handshake_wire_format=wire_format)
        alice = Group.create(1, b"fuzz", _bundle(1, b"alice"), config)
        bob_b, carol_b = _bundle(1, b"bob"), _bundle(1, b"carol")
        out = alice.add([key_package_message(bob_b), key_package_message(carol_b)])
        assert out.welcome is not None
        self.welcome, self.bob_bundle, self.config = out.welcome, bob_b, config
        proposal = alice.propose_update()
        self.messages = [alice.protect(b"application data" * 3), proposal]
        self.messages.append(alice.commit().commit)
        self.group_info = alice.group_info()
        self.messages.append(Group.join_external(self.group_info, _bundle(1, b"dave"))[1])

    def bob(self) -> Group:
        return Group.join(self.welcome, self.bob_bundle, self.config)


@functools.cache
def _scenario(wire_format: int) -> _Scenario:
    return _Scenario(wire_format)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    wire_format=st.sampled_from([PUBLIC_MESSAGE, PRIVATE_MESSAGE]),
    which=st.integers(0, 3),
    mutations=st.lists(MUTATION, min_size=1, max_size=3),
)
def test_mutated_messages_raise_only_crypto_errors(
    wire_format: int, which: int, mutations: list[tuple[str, int, int]]
) -> None:
    scenario = _scenario(wire_format)
    bob = scenario.bob()
    data = scenario.messages[which]
    # A commit needs the proposal it references; the external commit follows that commit.
    for earlier in scenario.messages[1:which] if which >= 2 else []:
        bob.process(earlier)
    for kind, a, b in mutations:
        data = _mutate(data, kind, a, b) or b"\x00"
    before = bob.snapshot()
    try:
        bob.process(data)
    except CryptoError:
        assert bob.snapshot() == before


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(MUTATION, min_size=1, max_size=3),
    target=st.sampled_from(["welcome", "group_info"]),
)
def test_mutated_welcome_and_group_info_raise_only_crypto_errors(
    mutations: list[tuple[str, int, int]], target: str
) -> None:
    scenario = _scenario(PUBLIC_MESSAGE)
    data = scenario.welcome if target == "welcome" else scenario.group_info
    for kind, a, b in mutations:
        data = _mutate(data, kind, a, b) or b"\x00"
    try:
        if target == "welcome":
            Group.join(data, scenario.bob_bundle, scenario.config)
        else:
            Group.join_external(data, _bundle(1, b"erin"))
    except CryptoError:
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_saved_state_raises_only_crypto_errors(
    mutations: list[tuple[str, int, int]],
) -> None:
    scenario = _scenario(PRIVATE_MESSAGE)
    data = scenario.bob().export_state()
    for kind, a, b in mutations:
        data = _mutate(data, kind, a, b) or b"\x00"
    with contextlib.suppress(CryptoError):
        Group.restore_state(data, scenario.config)


def test_a_saved_secret_tree_without_leaves_is_refused_as_malformed() -> None:
    """A saved state whose secret tree claims 0 leaves (every group has at least its own) is a
    crypto error, not an arithmetic one (the fuzz test above found ``negative shift count``)."""
    from enkrypted_crypto.errors import MalformedInput
    from enkrypted_crypto.mls._codec import Reader
    from enkrypted_crypto.mls._schedule import SecretTree
    from enkrypted_crypto.mls._suite import suite

    with pytest.raises(MalformedInput):
        SecretTree.decode(suite(1), Reader(bytes(4) + bytes(8)))
