"""Both crypto backends pass the shell's conformance kit for crypto contract 2.0
(``enkrypted_shell.testing.check_crypto_service``), with their default layers and restricted to
each wire profile, and through the plugin hooks as the shell calls them. The pyca plugin declares
2.2 (2.0 plus the group API and its control signatures, ``test_group_api.py``); the nacl plugin
stays on 2.0."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from enkrypted_crypto.backends.pyca import PycaPrimitives
from enkrypted_crypto.plugin import enkrypted_crypto_service as pyca_hook
from enkrypted_crypto.primitives import Primitives
from enkrypted_crypto.profiles import PROFILE_B1, PROFILE_V0
from enkrypted_crypto.service import CascadeCryptoService
from enkrypted_crypto_nacl import NaclPrimitives
from enkrypted_crypto_nacl.plugin import enkrypted_crypto_service as nacl_hook
from enkrypted_shell.contracts import CONTRACT_VERSIONS, AppContext, service_problems
from enkrypted_shell.testing import FakeClock, check_crypto_service

BACKENDS: dict[str, Callable[[], Primitives]] = {"pyca": PycaPrimitives, "nacl": NaclPrimitives}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_default_service_conforms(backend: str) -> None:
    """pyca negotiates MLS, Signal, ML-KEM, AES; nacl (no ML-KEM, no MLS) Signal, AES — both
    conform (per profile below: the full product cascade in v0 and b1 on pyca)."""
    check_crypto_service(lambda: CascadeCryptoService(BACKENDS[backend]()))


@pytest.mark.parametrize("profile", [PROFILE_B1, PROFILE_V0])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_each_wire_profile_conforms(backend: str, profile: str) -> None:
    check_crypto_service(lambda: CascadeCryptoService(BACKENDS[backend](), profiles=[profile]))


@pytest.mark.parametrize(
    ("profile", "layers"),
    [
        (PROFILE_B1, ["Signal"]),  # no AES layer: rotate() returns None
        (PROFILE_B1, ["ML-KEM", "AES"]),  # the b1 ML-KEM replay window instead of Signal
        (PROFILE_V0, ["Signal", "ML-KEM"]),  # v0 per-message encapsulation, exported keys
    ],
)
def test_restricted_layer_sets_conform(profile: str, layers: list[str]) -> None:
    check_crypto_service(
        lambda: CascadeCryptoService(PycaPrimitives(), profiles=[profile], layers=layers)
    )


MLS_SETS = [
    ["MLS", *rest]
    for rest in (
        [], ["Signal"], ["ML-KEM"], ["AES"], ["Signal", "ML-KEM"], ["Signal", "AES"],
        ["ML-KEM", "AES"], ["Signal", "ML-KEM", "AES"],
    )
]  # fmt: skip
"""Every layer set with MLS: all are allowed (MLS refuses replays itself), in both profiles."""


@pytest.mark.parametrize("profile", [PROFILE_B1, PROFILE_V0])
@pytest.mark.parametrize("layers", MLS_SETS, ids=["+".join(s) for s in MLS_SETS])
def test_every_mls_layer_set_conforms(profile: str, layers: list[str]) -> None:
    check_crypto_service(
        lambda: CascadeCryptoService(PycaPrimitives(), profiles=[profile], layers=layers)
    )


@pytest.mark.parametrize(
    ("hook", "declared"), [(pyca_hook, "2.2"), (nacl_hook, "2.0")], ids=["pyca", "nacl"]
)
def test_plugin_hooks_conform_with_the_shell_context(hook, declared: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    context = AppContext(home=tmp_path, clock=FakeClock(5.0))
    service = hook(context)
    assert service_problems("crypto", declared, service) == []
    assert CONTRACT_VERSIONS["crypto"] == "2.2"
    check_crypto_service(lambda: hook(context), version=declared)
