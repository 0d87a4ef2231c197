"""Wiring: import the verified plugins, register them with pluggy and create their services.

Runs only on a :class:`~.plan.Plan` that :func:`~.plan.prepare` returned. The services are created
in :data:`~enkrypted_shell.contracts.SLOTS` order following
:data:`~enkrypted_shell.contracts.SLOT_SERVICES` (which hook, given which earlier services), and
each is checked against the Protocol of exactly the contract version its plugin declares
(:func:`~enkrypted_shell.contracts.service_problems`), so a plugin built against an older MINOR
keeps loading when the shell adds members in a newer one.
"""

from __future__ import annotations

__all__ = ["Services", "load", "new_manager"]

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import pluggy

from .. import hookspecs
from .._state.provenance_store import ProvenanceStore
from .._trust.provenance import claimed_paths
from ..contracts import (
    CONTRACT_VERSIONS,
    SLOT_HOOKS,
    SLOT_SERVICES,
    SLOTS,
    AppContext,
    CryptoService,
    TransportService,
    TransportServiceV2,
    UIService,
    monotonic_clock,
    service_problems,
)
from ..errors import LoadError, ShellError
from . import importer
from .discover import discover
from .integrity import IntegrityReport, import_names, owned_names
from .plan import Plan, PlannedPlugin, StartOptions, check_import_sources

if TYPE_CHECKING:
    from .._state.store import PluginProfile


class Services(NamedTuple):
    """The wired services by slot, and the plugin manager that holds the plugins."""

    manager: pluggy.PluginManager
    context: AppContext
    by_slot: Mapping[str, object]
    contexts: Mapping[str, AppContext]
    """Each slot's own context (its store namespace); ``context`` is the ui slot's."""

    @property
    def crypto(self) -> CryptoService:
        service = self.by_slot["crypto"]
        assert isinstance(service, CryptoService)
        return service

    @property
    def transport(self) -> TransportService | TransportServiceV2:
        """The p2p service: a 1.0 ``TransportService`` or a 2.x ``TransportServiceV2`` (the
        version the plugin declared was checked at load; ``supports`` tells them apart)."""
        service = self.by_slot["p2p"]
        assert isinstance(service, TransportService | TransportServiceV2)
        return service

    @property
    def ui(self) -> UIService:
        service = self.by_slot["ui"]
        assert isinstance(service, UIService)
        return service


def new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def load(plan: Plan, options: StartOptions, *, profile: PluginProfile | None = None) -> Services:
    """Import the planned plugins, register them, check hooks and wire the services.

    With an unlocked ``profile``, each slot's context carries its own store namespace, and the p2p
    and ui contexts the profile's identity (made by the crypto service on first use)."""
    manager = new_manager()
    reports = _verified_reports(plan)
    check_import_sources(plan)  # again, right before the finder goes in: nothing changed since
    blocked = _unverified_names(plan, reports, options.store)
    importer.install(reports, options.home / "bytecode", blocked=blocked)
    for slot in SLOTS:
        _register(manager, plan.plugins[slot])
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise LoadError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from exc
    contexts: dict[str, AppContext] = {}
    services: dict[str, object] = {}
    identity: bytes | None = None
    for slot in SLOTS:
        contexts[slot] = AppContext(
            options.home, dict(options.settings.get(slot, {})), options.dev, monotonic_clock,
            store=profile.store(slot) if profile is not None else None, identity=identity,
            assets=_assets(plan.plugins[slot]),
        )
        services[slot] = _service(manager, plan.plugins[slot], contexts[slot], services)
        if slot == "crypto":
            _check_capabilities(plan.plugins[slot], services[slot])
            if profile is not None:
                crypto = services[slot]
                assert isinstance(crypto, CryptoService)
                identity = profile.identity(crypto)
    options.log.append("loaded", plugins={s: p.candidate.name for s, p in plan.plugins.items()})
    return Services(manager, contexts["ui"], services, contexts)


def _assets(planned: PlannedPlugin) -> Mapping[str, bytes]:
    """The verified bytes of the plugin's declared asset folder (none for a dev-mode plugin)."""
    return planned.integrity.assets if planned.integrity is not None else {}


def _service(
    manager: pluggy.PluginManager,
    planned: PlannedPlugin,
    context: AppContext,
    created: Mapping[str, object],
) -> object:
    """Call the slot's service hook with the services it needs, and check what comes back against
    the contract version the plugin's manifest declares."""
    cand, slot = planned.candidate, planned.slot
    wiring = SLOT_SERVICES[slot]
    given = {keyword: created[source] for keyword, source in wiring.needs.items()}
    try:
        result = getattr(manager.hook, wiring.hook)(context=context, **given)
    except ShellError:
        raise
    except Exception as exc:
        raise LoadError(
            f"{cand.label} failed to create its {slot} service: {exc}", plugin=cand.name
        ) from exc
    declared = str(cand.manifest.contract)
    if result is None:
        problems = [f"its {wiring.hook} hook returned nothing"]
    else:
        problems = service_problems(slot, declared, result)
    if problems:
        raise LoadError(
            f"{cand.label} does not implement the {slot} contract {declared} it declares: "
            + "; ".join(problems),
            plugin=cand.name,
            fix=f"implement every member of the {slot} contract {declared} (docs/hooks.md); "
            f"this shell speaks {slot} {CONTRACT_VERSIONS[slot]}",
        )
    return result


def _verified_reports(plan: Plan) -> list[IntegrityReport]:
    """Every verified distribution whose code may be imported: the selected plugins and the plugin
    distributions they use (those of a dev-mode editable plugin included)."""
    return [report for planned in plan.plugins.values() for report in planned.reports]


def _unverified_names(
    plan: Plan, reports: list[IntegrityReport], store: ProvenanceStore
) -> dict[str, str]:
    """Import names of plugin distributions that are neither verified nor admitted by dev mode
    this start: importing them (an undeclared dependency) is refused.  Plugin distributions are
    the discovered candidates (names from RECORD, else the entry point's package) and everything
    the profile installed from a registry (names from the stored provenance's file list, which
    edits to site-packages cannot shrink)."""
    admitted = {r.distribution for r in reports} | {
        p.candidate.dist_name for p in plan.plugins.values() if p.integrity is None
    }
    blocked: dict[str, str] = {}
    for cand in discover().candidates:
        if cand.dist_name not in admitted:
            names = owned_names(cand.record) or (cand.entry_point.module.split(".")[0],)
            blocked.update((top, f"{cand.dist_name} {cand.version}") for top in names)
    from packaging.utils import canonicalize_name

    verified = {canonicalize_name(name) for name in admitted}
    for stored in store.names():
        record = store.get(stored) if stored not in verified else None
        if record is not None:
            names = import_names(claimed_paths(record.provenance))
            blocked.update((top, f"{record.distribution} {record.version}") for top in names)
    dev = {
        p.candidate.entry_point.module.split(".")[0]
        for p in plan.plugins.values()
        if p.integrity is None  # an editable plugin admitted by --dev keeps its own package
    }
    return {
        top: label for top, label in blocked.items() if top not in sys.modules and top not in dev
    }


def _register(manager: pluggy.PluginManager, planned: PlannedPlugin) -> None:
    cand = planned.candidate
    try:
        obj = cand.entry_point.load()
        manager.register(obj, name=cand.name)
    except Exception as exc:
        raise LoadError(
            f"{cand.label} failed to import or register: {type(exc).__name__}: {exc}",
            plugin=cand.name,
        ) from exc
    hooks = {caller.name for caller in manager.get_hookcallers(obj) or []}
    foreign = hooks - SLOT_HOOKS[planned.slot]
    if foreign:
        manager.unregister(obj)
        raise LoadError(
            f"{cand.label} is a {planned.slot} plugin but implements {', '.join(sorted(foreign))}",
            plugin=cand.name,
            fix=f"a {planned.slot} plugin may implement only {', '.join(sorted(SLOT_HOOKS[planned.slot]))}",
        )


def _check_capabilities(planned: PlannedPlugin, service: object) -> None:
    """Everything the manifest declares must really be there (e.g. AES-GCM needs CPU support)."""
    provided: frozenset[str] = getattr(service, "capabilities", frozenset())
    declared = planned.candidate.manifest.capabilities.get("primitives", frozenset())
    missing = declared - provided
    if missing:
        raise LoadError(
            f"{planned.candidate.label} declares primitives it cannot provide here: "
            f"{', '.join(sorted(missing))}",
            plugin=planned.candidate.name,
            fix="select another crypto backend with --crypto NAME (see `enkrypted plugins list`)",
        )
