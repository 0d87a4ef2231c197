"""Contract versioning as enforced (DESIGN.md §4, docs/hooks.md "Versioning").

A plugin's service is checked against the Protocol of exactly the contract version its manifest
declares: members, async-ness and call shape. A MINOR may add members without breaking plugins
built against the previous MINOR; a plugin missing a member of its own version is refused, named.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Protocol

import pluggy
import pytest

from enkrypted_shell import contracts, errors
from enkrypted_shell._pipeline import wiring
from enkrypted_shell._pipeline.manifest import ContractVersion
from enkrypted_shell.contracts import implementation_problems, service_problems, supports
from enkrypted_shell.hookspecs import hookimpl


class Greeter10(Protocol):
    @property
    def name(self) -> str: ...

    def greet(self, who: str, *, loud: bool = False) -> str: ...

    async def close(self) -> None: ...


class Greeter11(Greeter10, Protocol):
    def wave(self) -> str: ...


PUBLISHED = {"greeter": {"1.0": Greeter10, "1.1": Greeter11}}


class BuiltAgainst10:
    name = "old"

    def greet(self, who: str, *, loud: bool = False) -> str:
        return who

    async def close(self) -> None:
        return None


class BuiltAgainst11(BuiltAgainst10):
    def wave(self) -> str:
        return "~"


def test_a_plugin_built_against_x0_loads_on_a_shell_that_speaks_x1() -> None:
    assert ContractVersion(1, 0).served_by(ContractVersion(1, 1))
    assert service_problems("greeter", "1.0", BuiltAgainst10(), PUBLISHED) == []
    assert service_problems("greeter", "1.1", BuiltAgainst11(), PUBLISHED) == []


def test_a_plugin_missing_a_member_of_its_declared_version_is_refused_by_name() -> None:
    assert service_problems("greeter", "1.1", BuiltAgainst10(), PUBLISHED) == ["missing method 'wave'"]

    class NoName:
        def greet(self, who: str, *, loud: bool = False) -> str:
            return who

        async def close(self) -> None:
            return None

    assert service_problems("greeter", "1.0", NoName(), PUBLISHED) == ["missing property 'name'"]


def test_a_version_the_shell_does_not_speak_is_refused() -> None:
    problems = service_problems("greeter", "1.2", BuiltAgainst11(), PUBLISHED)
    assert problems == ["contract greeter 1.2 is not one this shell speaks (1.0, 1.1)"]


@pytest.mark.parametrize(
    ("method", "problem"),
    [
        ("def greet(self): return ''", "'greet' cannot be called as the contract calls it"),
        ("def greet(self, who, extra): return ''", "'greet' cannot be called as the contract calls it"),
        ("def greet(self, who): return ''", "'greet' cannot be called as the contract calls it"),  # no loud=
        ("async def greet(self, who, *, loud=False): return ''", "'greet' must not be async"),
    ],
)
def test_wrong_arity_or_async_ness_is_refused(method: str, problem: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"class Impl:\n    name = 'x'\n    {method}\n    async def close(self): return None\n", namespace)
    found = service_problems("greeter", "1.0", namespace["Impl"](), PUBLISHED)
    assert len(found) == 1 and found[0].startswith(problem)


def test_sync_where_async_is_required_is_refused() -> None:
    class SyncClose(BuiltAgainst10):
        def close(self) -> None:  # type: ignore[override]
            return None

    assert service_problems("greeter", "1.0", SyncClose(), PUBLISHED) == [
        "'close' must be async (the contract awaits it)"
    ]


def test_looser_implementations_still_fit() -> None:
    class Loose:
        name = "loose"

        def greet(self, *args: object, **kwargs: object) -> str:
            return ""

        async def close(self, timeout: float = 1.0) -> None:
            return None

    assert implementation_problems(Loose(), Greeter10) == []


def test_optional_features_are_detected_not_required() -> None:
    assert supports(BuiltAgainst11(), Greeter11) and not supports(BuiltAgainst10(), Greeter11)


def test_every_minor_of_the_current_major_keeps_its_protocol() -> None:
    """The shell serves every MINOR up to the newest of its MAJOR, so each needs its Protocol."""
    for slot, versions in contracts.PUBLISHED.items():
        newest = ContractVersion.parse(contracts.CONTRACT_VERSIONS[slot])
        expected = {f"{newest.major}.{minor}" for minor in range(newest.minor + 1)}
        assert expected <= set(versions), slot
        for protocol in versions.values():
            assert contracts.contract_members(protocol), slot


def _planned(slot: str, contract: str) -> SimpleNamespace:
    manifest = SimpleNamespace(contract=ContractVersion.parse(contract))
    candidate = SimpleNamespace(label="acme (acme-dist 1.0)", name="acme", manifest=manifest)
    return SimpleNamespace(candidate=candidate, slot=slot)


def test_wiring_refuses_a_service_that_does_not_fit_its_declared_version() -> None:
    class BadUI:
        async def run(self, argv: Sequence[str]) -> int:
            return 0

    class Plugin:
        @hookimpl
        def enkrypted_ui_service(self, context, crypto, transport):
            return BadUI()

    manager = wiring.new_manager()
    manager.register(Plugin())
    context = contracts.AppContext(home=Path("."))
    with pytest.raises(errors.LoadError) as info:
        wiring._service(manager, _planned("ui", "1.0"), context, {"crypto": object(), "p2p": object()})
    assert "does not implement the ui contract 1.0 it declares: 'run' must not be async" in str(info.value)
    assert info.value.plugin == "acme"


def test_wiring_passes_earlier_services_by_the_table() -> None:
    seen: dict[str, object] = {}

    class UI:
        def run(self, argv: Sequence[str]) -> int:
            return 0

    class Plugin:
        @hookimpl
        def enkrypted_ui_service(self, context, crypto, transport):
            seen.update(crypto=crypto, transport=transport)
            return UI()

    manager: pluggy.PluginManager = wiring.new_manager()
    manager.register(Plugin())
    crypto, transport = object(), object()
    context = contracts.AppContext(home=Path("."))
    wiring._service(manager, _planned("ui", "1.0"), context, {"crypto": crypto, "p2p": transport})
    assert seen == {"crypto": crypto, "transport": transport}


# ------------------------------------------------------------------ crypto 2.1 (the group API)
class Crypto20:
    """A crypto service built against 2.0: no group API."""

    backend = "test"
    capabilities = frozenset({"x25519"})
    profiles = ("p",)

    def new_identity(self) -> bytes:
        return b""

    def fingerprint(self, identity: bytes) -> str:
        return ""

    def handshake(self, identity: bytes, *, initiator: bool, now: float, profiles=None, layers=None):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def restore(self, state: bytes):  # type: ignore[no-untyped-def]
        raise NotImplementedError


class Crypto21(Crypto20):
    def new_key_package(self, identity: bytes):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def create_group(self, identity: bytes, group_id: bytes | None = None):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def join_group(self, identity: bytes, key_package: bytes, welcome: bytes):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    def restore_group(self, state: bytes):  # type: ignore[no-untyped-def]
        raise NotImplementedError


GROUP_MEMBERS = ["create_group", "join_group", "new_key_package", "restore_group"]


def test_crypto_2_0_keeps_its_protocol_and_2_1_only_adds_the_group_api() -> None:
    versions = contracts.PUBLISHED["crypto"]
    assert set(versions) == {"2.0", "2.1", "2.2"} and contracts.CONTRACT_VERSIONS["crypto"] == "2.2"
    assert versions["2.0"] is contracts.CryptoService
    v20 = {m.name: m for m in contracts.contract_members(versions["2.0"])}
    v21 = {m.name: m for m in contracts.contract_members(versions["2.1"])}
    assert sorted(v20) == ["backend", "capabilities", "fingerprint", "handshake", "new_identity", "profiles", "restore"]
    assert {name: v21[name] for name in v20} == v20  # nothing of 2.0 changed
    assert sorted(set(v21) - set(v20)) == GROUP_MEMBERS
    assert sorted(m.name for m in contracts.contract_members(contracts.GroupCryptoService)) == GROUP_MEMBERS


def test_crypto_2_2_adds_control_signatures_on_group_sessions_only() -> None:
    """2.2 changes no service method (a 2.1 service's shape fits it); its sessions sign."""
    versions = contracts.PUBLISHED["crypto"]
    v21 = {m.name: m for m in contracts.contract_members(versions["2.1"])}
    v22 = {m.name: m for m in contracts.contract_members(versions["2.2"])}
    assert v22 == v21
    signer = sorted(m.name for m in contracts.contract_members(contracts.GroupControlSigner))
    assert signer == ["sign_control", "verify_control"]


def test_a_crypto_2_0_plugin_loads_on_the_2_1_shell_without_the_group_feature() -> None:
    assert ContractVersion(2, 0).served_by(ContractVersion.parse(contracts.CONTRACT_VERSIONS["crypto"]))
    assert service_problems("crypto", "2.0", Crypto20()) == []
    assert not supports(Crypto20(), contracts.GroupCryptoService)
    assert service_problems("crypto", "2.1", Crypto20()) == [f"missing method {name!r}" for name in GROUP_MEMBERS]


def test_a_crypto_2_1_plugin_fits_both_and_is_detected() -> None:
    assert service_problems("crypto", "2.1", Crypto21()) == []
    assert service_problems("crypto", "2.0", Crypto21()) == []
    assert supports(Crypto21(), contracts.GroupCryptoService)


def test_wiring_checks_a_crypto_plugin_against_the_version_it_declares() -> None:
    class Plugin:
        def __init__(self, service: object) -> None:
            self.service = service

        @hookimpl
        def enkrypted_crypto_service(self, context):  # type: ignore[no-untyped-def]
            return self.service

    context = contracts.AppContext(home=Path("."))
    for service, declared in ((Crypto20(), "2.0"), (Crypto21(), "2.0"), (Crypto21(), "2.1")):
        manager = wiring.new_manager()
        manager.register(Plugin(service))
        assert wiring._service(manager, _planned("crypto", declared), context, {}) is service
    manager = wiring.new_manager()
    manager.register(Plugin(Crypto20()))
    with pytest.raises(errors.LoadError) as info:
        wiring._service(manager, _planned("crypto", "2.1"), context, {})
    assert "does not implement the crypto contract 2.1 it declares: missing method 'create_group'" in str(info.value)


# ------------------------------------------------------------------ p2p 2.0 (endpoints), 1.0 kept
class P2P10:
    """A p2p service built against 1.0: in-process links only."""

    name = "old-memory"
    capabilities = frozenset({"loopback"})

    async def loopback_pair(self, first: str, second: str):  # type: ignore[no-untyped-def]
        raise NotImplementedError


class P2P20:
    name = "new"
    capabilities = frozenset({"in-process"})

    async def open_endpoint(self, settings=None, *, peer_id=None):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    async def open_chat(self, identity, settings=None, *, peer_id=None, saved=None):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_p2p_publishes_2_0_to_2_2_and_keeps_1_0() -> None:
    versions = contracts.PUBLISHED["p2p"]
    assert set(versions) == {"1.0", "2.0", "2.1", "2.2"} and contracts.CONTRACT_VERSIONS["p2p"] == "2.2"
    assert versions["2.1"] is contracts.TransportServiceV21  # 2.0 + the FileChatService feature
    assert versions["2.2"] is contracts.TransportServiceV22  # 2.1 + the GroupChatService feature
    assert versions["1.0"] is contracts.TransportService and versions["2.0"] is contracts.TransportServiceV2
    v20 = sorted(m.name for m in contracts.contract_members(versions["2.0"]))
    assert v20 == ["capabilities", "name", "open_chat", "open_endpoint"]  # loopback_pair is gone
    assert sorted(m.name for m in contracts.contract_members(contracts.Endpoint)) == [
        "aclose", "connect", "incoming", "local_id"]
    link = sorted(m.name for m in contracts.contract_members(contracts.LinkV2))
    assert link == ["close", "close_reason", "max_pdu_bytes", "peer_id", "receive", "send"]


def test_a_p2p_1_0_plugin_still_loads_and_a_ui_tells_the_versions_apart() -> None:
    class Plugin:
        def __init__(self, service: object) -> None:
            self.service = service

        @hookimpl
        def enkrypted_transport_service(self, context, crypto):  # type: ignore[no-untyped-def]
            return self.service

    context = contracts.AppContext(home=Path("."))
    for service, declared in ((P2P10(), "1.0"), (P2P20(), "2.0")):
        manager = wiring.new_manager()
        manager.register(Plugin(service))
        assert wiring._service(manager, _planned("p2p", declared), context, {"crypto": object()}) is service
    assert not supports(P2P10(), contracts.TransportServiceV2) and supports(P2P20(), contracts.TransportServiceV2)
    manager = wiring.new_manager()
    manager.register(Plugin(P2P10()))
    with pytest.raises(errors.LoadError) as info:
        wiring._service(manager, _planned("p2p", "2.0"), context, {"crypto": object()})
    assert "does not implement the p2p contract 2.0 it declares: missing coroutine 'open_chat'" in str(info.value)


def test_the_shipped_p2p_plugins_declare_2_0_and_the_ui_requires_it() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    for manifest in ("plugins/p2p/src/enkrypted_p2p/enkrypted-plugin.toml",
                     "plugins/p2p_memory/src/enkrypted_p2p_memory/enkrypted-plugin.toml"):
        assert tomllib.loads((root / manifest).read_text("utf-8"))["plugin"]["contract"] == "2.2"
    ui = tomllib.loads((root / "plugins/ui_cli/src/enkrypted_ui_cli/enkrypted-plugin.toml").read_text("utf-8"))
    assert ui["requires"]["p2p"] == ">=2.0,<3"


def test_skew_serves_p2p_1_0_beside_2_0_but_no_other_major() -> None:
    from enkrypted_shell._pipeline.skew import check_skew
    from tests.shell.test_shell_units import cand

    for ok in ("1.0", "2.0", "2.1", "2.2"):
        plan = {"p2p": cand("p", "p2p", contract=ok)}
        check_skew(plan, shell_version="0.1.0", contracts=contracts.CONTRACT_VERSIONS, installed={}.get)
    for bad in ("1.1", "3.0"):
        plan = {"p2p": cand("p", "p2p", contract=bad)}
        with pytest.raises(errors.SkewError, match=f"implements p2p contract {bad}, the shell speaks 2.2"):
            check_skew(plan, shell_version="0.1.0", contracts=contracts.CONTRACT_VERSIONS, installed={}.get)


def test_loaded_services_hand_out_a_p2p_2_service_as_the_transport(tmp_path: Path) -> None:
    """``Services.transport`` serves whichever p2p contract the plugin declared (1.0 or 2.x)."""
    from enkrypted_p2p_memory.plugin import MemoryTransport
    from enkrypted_shell._pipeline.wiring import Services

    service = MemoryTransport()
    loaded = Services(manager=pluggy.PluginManager("enkrypted"), context=contracts.AppContext(tmp_path),
                      by_slot={"p2p": service}, contexts={})
    assert loaded.transport is service


def test_p2p_2_2_group_chat_is_an_optional_feature_of_the_file_chat_service() -> None:
    """2.2 only adds: ``GroupChatService`` extends ``FileChatService`` with the group members, a
    2.1 chat service is still a ``FileChatService`` and not a ``GroupChatService``, and every group
    event is a frozen dataclass in ``ChatEvent``."""
    import dataclasses
    import typing

    files = {m.name for m in contracts.contract_members(contracts.FileChatService)}
    groups = {m.name for m in contracts.contract_members(contracts.GroupChatService)}
    assert groups - files == {"create_group", "invite", "remove", "leave", "rename", "groups",
                              "send_group_text"}
    assert files < groups
    events = typing.get_args(contracts.GroupChatEvent)
    assert set(events) <= set(typing.get_args(contracts.ChatEvent)) and len(events) == 7
    for event in (*events, contracts.GroupInfo, contracts.GroupMember):
        assert dataclasses.is_dataclass(event) and event.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert contracts.GROUP_STATES == ("active", "rejoining", "left")
