"""The start-up plan: discover -> select -> verify -> skew-check -> (lock), importing nothing.

:func:`prepare` returns a :class:`Plan` of verified plugins; :mod:`.wiring` then imports and wires
them. Every decision is written to the load log, refusals included.
"""

from __future__ import annotations

__all__ = [
    "Plan",
    "PlannedPlugin",
    "StartOptions",
    "check_import_sources",
    "locked_libraries",
    "prepare",
]

import contextlib
import importlib.util
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from .._version import __version__

if TYPE_CHECKING:
    from .closure import LockedLibrary
    from .lock import Lock

from .._state.loadlog import LoadLog
from .._state.provenance_store import ProvenanceStore, StoredProvenance
from .._trust.policy import TrustPolicy
from .._trust.provenance import VerifiedProvenance, VerifiedRelease, claimed_paths, verify_release
from .._trust.sigstore import SigstoreVerdicts
from ..contracts import (
    CONTRACT_VERSIONS,
    SLOTS,
)
from ..errors import IntegrityError, LoadError, ProvenanceError, ShellError, ShellUsageError
from .discover import Candidate, Discovery, Ignored, discover
from .integrity import IntegrityReport, verify_distribution
from .select import select
from .skew import SkewVerdicts, check_skew, requirement_name


class StartOptions(NamedTuple):
    """Everything that decides what gets loaded."""

    home: Path
    choices: Mapping[str, tuple[str, str]] = MappingProxyType({})
    lock_path: Path | None = None  # set = enforce the lock (--locked)
    dev: bool = False
    allow_unsigned: bool = False  # explicit downgrade: load plugins without provenance (logged)
    settings: Mapping[str, Mapping[str, object]] = MappingProxyType({})

    @property
    def log(self) -> LoadLog:
        return LoadLog(self.home / "load-log.jsonl")

    @property
    def store(self) -> ProvenanceStore:
        return ProvenanceStore(self.home)

    def policy(self) -> TrustPolicy:
        """``HOME/trust.toml``; without one, no publisher is trusted for any slot."""
        path = self.home / "trust.toml"
        try:
            text = path.read_bytes()  # from_toml refuses non-UTF-8 with a usage error
        except FileNotFoundError:
            return TrustPolicy.from_toml("version = 1\n", source=str(path))
        except OSError as exc:
            raise ShellUsageError(f"cannot read {path}: {exc.strerror}") from exc
        return TrustPolicy.from_toml(text, source=str(path))


class PlannedPlugin(NamedTuple):
    """A selected plugin that passed verification (or was let in by dev mode)."""

    slot: str
    candidate: Candidate
    reason: str
    integrity: IntegrityReport | None  # None only for an editable install admitted by --dev
    verified_deps: tuple[IntegrityReport, ...]
    provenance: VerifiedProvenance | None = None  # None: dev, or unsigned admitted by downgrade
    stored: StoredProvenance | None = None
    sigstore_signers: tuple[str, ...] = ()  # "identity (issuer)" of each verified Sigstore bundle

    @property
    def digest(self) -> str | None:
        return self.integrity.content_digest if self.integrity else None

    @property
    def reports(self) -> tuple[IntegrityReport, ...]:
        """Every verified distribution whose code this plugin brings in: itself (unless admitted
        unverified by --dev) and the plugin distributions it uses."""
        own = (self.integrity,) if self.integrity is not None else ()
        return own + self.verified_deps

    @property
    def dependency_pins(self) -> tuple[str, ...]:
        """``name==version digest`` of each verified plugin distribution this one imports."""
        return tuple(
            sorted(f"{d.distribution}=={d.version} {d.content_digest}" for d in self.verified_deps)
        )


class Plan(NamedTuple):
    plugins: Mapping[str, PlannedPlugin]
    lock: Lock | None


def _check_libraries(lock: Lock, path: Path) -> None:
    """Every library the lock pins, re-hashed - unless the launcher, in this process and for the
    same lock bytes, did that before any of them was imported (``plugins verify --locked``), or
    checked up front what an import cannot and guards every import of them since (a start:
    :mod:`.lazylock`)."""
    from .closure import check_libraries, verified_in_this_process
    from .lazylock import guarded_in_this_process

    try:
        data = path.read_bytes()
    except OSError:
        data = None
    if data is None or not (verified_in_this_process(data) or guarded_in_this_process(data)):
        check_libraries(lock.libraries)


def _read_lock(path: Path, home: Path) -> Lock:
    from .lock import parse_lock  # only --locked reads a lock

    try:
        text = path.read_bytes()  # parse_lock refuses non-UTF-8 with a usage error
    except OSError as exc:
        raise ShellUsageError(
            f"cannot read lock {path}: {exc.strerror}",
            fix="create one with `enkrypted plugins lock`",
        ) from exc
    return parse_lock(text, source=str(path), cache=home / "cache" / "locks")


def prepare(options: StartOptions, *, record: bool = True) -> Plan:
    """Select and verify; raises :class:`ShellError` on the first refusal.

    Decisions and refusals go to the load log unless ``record`` is false (read-only reports).
    """
    log = options.log
    try:
        return _prepare(options, log if record else None)
    except ShellError as exc:
        if record:
            log.append(
                "refused", plugin=exc.plugin, rule=exc.rule, reason=exc.message, dev=options.dev
            )
        raise


def _prepare(options: StartOptions, log: LoadLog | None) -> Plan:
    _check_startup_hooks(options, log)
    found = _without_claimants(discover(), options.store)
    if found.broken:
        raise found.broken[0]
    if log is not None:
        for item in found.ignored:
            log.append("ignored", plugin=item.plugin, distribution=item.distribution, reason=item.reason)
    lock = _read_lock(options.lock_path, options.home) if options.lock_path else None
    chosen = select(found, SLOTS, choices=options.choices, locked=lock.dists() if lock else None)
    policy = options.policy()
    plugins = {
        slot: _verify(slot, sel.candidate, sel.reason, options, policy, found.candidates)
        for slot, sel in chosen.items()
    }
    skew = _check_skew(plugins, options.home)
    if lock is not None:
        from .lock import check_locked

        for slot, planned in plugins.items():
            cand = planned.candidate
            check_locked(
                lock.entries[slot],
                plugin=cand.name,
                name=cand.dist_name,
                version=cand.version,
                digest=planned.digest or "unverified",
                wheel_sha256=planned.provenance.wheel_sha256 if planned.provenance else None,
                index=planned.stored.index if planned.stored else None,
                signer=planned.provenance.signer_keyid if planned.provenance else None,
                dependencies=planned.dependency_pins,
            )
    if lock is not None and options.lock_path is not None:
        _check_libraries(lock, options.lock_path)
    check_import_sources(Plan(plugins, lock))  # what run would import is the verified copy
    if log is not None:
        log.append_many(
            [
                _accept_record(p, locked=lock is not None, dev=options.dev, skew=skew)
                for p in plugins.values()
            ]
        )
    return Plan(plugins, lock)


def locked_libraries(plan: Plan) -> Mapping[str, LockedLibrary]:
    """What ``plugins lock`` pins beside the plugins: the shell and every third-party distribution
    in the ``Requires-Dist`` closure of the shell and of the planned plugins (:mod:`.closure`)."""
    from importlib import metadata

    from .closure import runtime_closure, snapshot

    plugins = {r.distribution for p in plan.plugins.values() for r in p.reports}
    plugins |= {p.candidate.dist_name for p in plan.plugins.values()}
    try:
        shell = metadata.distribution("enkrypted-shell")
    except metadata.PackageNotFoundError as exc:
        raise ShellUsageError(
            "cannot lock: enkrypted-shell is not installed here (a source checkout)",
            fix="install the enkrypted-shell wheel",
        ) from exc
    roots = ["enkrypted-shell", *sorted(plugins)]
    dists = [shell, *runtime_closure(roots, exclude=plugins, extras={"enkrypted-shell": frozenset({"sigstore"})})]
    return MappingProxyType({str(d.metadata["Name"]): snapshot(d) for d in dists})


def unselected(plan: Plan, options: StartOptions) -> list[dict[str, str]]:
    """Every discovered candidate the plan did not select, and why: ``unsigned`` (no provenance
    record), ``refused`` (what verification would say), ``not chosen`` (another fills the slot),
    plus ``ignored`` foreign entry points. Runs the same verification as :func:`prepare` (files
    and signature), never imports a candidate."""
    found = _without_claimants(discover(), options.store)
    chosen = {slot: p.candidate for slot, p in plan.plugins.items()}
    policy = options.policy()
    rows = []
    for cand in found.candidates:
        if any(cand.dist_name == c.dist_name and cand.name == c.name for c in chosen.values()):
            continue
        status, why = _status(cand, options, policy, found.candidates, chosen.get(cand.slot))
        rows.append({"slot": cand.slot, "plugin": cand.name, "distribution": cand.dist_name,
                     "version": cand.version, "status": status, "why": why})
    rows.extend(
        {"slot": "?", "plugin": item.plugin, "distribution": item.distribution, "version": "",
         "status": "ignored", "why": item.reason}
        for item in found.ignored
    )
    return rows


def _status(
    cand: Candidate,
    options: StartOptions,
    policy: TrustPolicy,
    others: tuple[Candidate, ...],
    selected: Candidate | None,
) -> tuple[str, str]:
    if options.store.get(cand.dist_name) is None and not cand.editable:
        return "unsigned", "no signed provenance: not installed with `enkrypted plugins install`"
    try:
        _verify(cand.slot, cand, "", options._replace(allow_unsigned=False), policy, others)
    except ShellError as exc:
        return "refused", f"{exc.rule}: {exc.message}"
    if selected is None:
        return "not chosen", "nothing selects it"
    return "not chosen", f"{selected.label} fills slot {cand.slot}"


def _without_claimants(found: Discovery, store: ProvenanceStore) -> Discovery:
    """Candidates of different distributions that install the same top-level package: the one the
    profile installed from a registry (it has a provenance record whose signed file list holds the
    package) is kept, the others are ignored - never imported, reported - so a wheel that claims
    another plugin's package cannot deny service to it. Without exactly one such record nothing is
    dropped (verification then refuses what does not fit)."""
    by_package: dict[str, list[Candidate]] = {}
    for cand in found.candidates:
        by_package.setdefault(cand.entry_point.module.split(".")[0], []).append(cand)
    dropped: list[tuple[Candidate, Candidate]] = []
    for package, cands in by_package.items():
        if len({c.dist_name for c in cands}) < 2:
            continue
        signed = [c for c in cands if _signed_for(store, c, package)]
        if len(signed) == 1:
            dropped.extend((c, signed[0]) for c in cands if c.dist_name != signed[0].dist_name)
    if not dropped:
        return found
    gone = {id(c) for c, _ in dropped}
    ignored = tuple(
        Ignored(c.name, f"{c.dist_name} {c.version}",
                f"it installs {owner.dist_name}'s package {c.entry_point.module.split('.')[0]}")
        for c, owner in dropped
    )
    return Discovery(
        tuple(c for c in found.candidates if id(c) not in gone), found.broken, found.ignored + ignored
    )


def _signed_for(store: ProvenanceStore, cand: Candidate, package: str) -> bool:
    record = store.get(cand.dist_name)
    if record is None or record.version != cand.version:
        return False
    return any(path.startswith(f"{package}/") for path in claimed_paths(record.provenance))


def _check_startup_hooks(options: StartOptions, log: LoadLog | None) -> None:
    """Refuse an environment with a start-up hook (.pth, sitecustomize, usercustomize) that no
    installed distribution records (:mod:`.environment`); ``--dev`` admits it loudly, logged."""
    from .._boot import site_folders
    from .environment import unrecorded_hooks

    hooks = unrecorded_hooks(site_folders())
    if not hooks:
        return
    names = ", ".join(hook.path for hook in hooks)
    ran = "ran in this process" if not sys.flags.no_site else "did not run in the shell's process"
    if options.dev:
        sys.stderr.write(f"WARNING: dev mode: unrecorded start-up hooks admitted: {names}\n")
        if log is not None:
            log.append("admitted-startup-hooks-dev", hooks=[hook.path for hook in hooks])
        return
    raise IntegrityError(
        f"start-up hook(s) no installed distribution records: {names} ({ran}, but Python runs "
        "them in every normal start of this environment, the enkrypted launcher included): "
        "this environment is compromised",
        fix="remove them and treat what they could reach as exposed; --dev admits them (logged)",
    )


def _verify(
    slot: str,
    cand: Candidate,
    reason: str,
    options: StartOptions,
    policy: TrustPolicy,
    others: tuple[Candidate, ...],
) -> PlannedPlugin:
    if cand.editable:
        if not options.dev:
            raise IntegrityError(
                f"{cand.label} is an editable install; its files cannot be verified",
                plugin=cand.name,
                fix="install the wheel, or pass --dev (ENKRYPTED_DEV=1) to load it unverified",
            )
        # Its own files are not verifiable, but the installed plugin distributions it uses are.
        deps = _verify_plugin_deps(cand, others, options.store)
        _verify_dep_signatures(deps, others, options, policy, SigstoreVerdicts(options.home))
        return PlannedPlugin(slot, cand, reason, None, deps)
    package = cand.entry_point.module.split(".")[0]
    report = verify_distribution(
        cand.distribution,
        name=cand.dist_name,
        version=cand.version,
        record=cand.record,
        assets=f"{package}/{cand.manifest.assets}/" if cand.manifest.assets else None,
    )
    deps = _verify_plugin_deps(cand, others, options.store)
    stored = options.store.get(cand.dist_name)
    verdicts = SigstoreVerdicts(options.home)  # read only if a release carries a Sigstore bundle
    release = _verify_signed(slot, cand, report, stored, policy, options.allow_unsigned, verdicts)
    _verify_dep_signatures(deps, others, options, policy, verdicts)
    return PlannedPlugin(
        slot,
        cand,
        reason,
        report,
        deps,
        release.provenance if release else None,
        stored,
        tuple(f"{v.signer.identity} ({v.signer.issuer})" for v in release.sigstore)
        if release
        else (),
    )


def _verify_dep_signatures(
    deps: tuple[IntegrityReport, ...],
    others: tuple[Candidate, ...],
    options: StartOptions,
    policy: TrustPolicy,
    verdicts: SigstoreVerdicts,
) -> None:
    """Code imported on behalf of a plugin needs signed provenance too."""
    for dep in deps:
        dep_cand = next(o for o in others if o.dist_name == dep.distribution)
        _verify_signed(
            dep_cand.slot,
            dep_cand,
            dep,
            options.store.get(dep.distribution),
            policy,
            options.allow_unsigned,
            verdicts,
        )


def _verify_signed(
    slot: str,
    cand: Candidate,
    report: IntegrityReport,
    stored: StoredProvenance | None,
    policy: TrustPolicy,
    allow_unsigned: bool,
    verdicts: SigstoreVerdicts,
) -> VerifiedRelease | None:
    """The signature step (DESIGN.md §6): provenance signed by a key the policy accepts for the
    slot, for exactly the installed version and files; revoked releases refused.

    Sigstore bundles (:func:`.provenance.verify_release`): each must sign the recorded wheel sha256
    and, for an identity the current ``trust.toml`` lists for the slot, have a verdict of a full
    offline verification of exactly that bundle under the installed sigstore-python trust root
    (``HOME/sigstore-verified.json``, written at install). Without one - a record from before,
    a changed policy entry, a new sigstore-python - it is fully verified here (offline; ~0.6 s to
    import sigstore-python) and the verdict recorded."""
    if stored is None:
        if allow_unsigned:
            return None
        raise ProvenanceError(
            f"{cand.label} has no signed provenance (it was not installed with "
            "`enkrypted plugins install`)",
            plugin=cand.name,
            fix="install it from a registry with `enkrypted plugins install NAME --index URL`, "
            "or pass --allow-unsigned to load it anyway (recorded in the load log)",
        )
    if stored.version != cand.version:
        raise ProvenanceError(
            f"{cand.label}: the stored provenance is for version {stored.version}",
            plugin=cand.name,
            fix=f"reinstall it with `enkrypted plugins install {cand.dist_name}=={cand.version}`",
        )
    if stored.revoked:
        raise ProvenanceError(
            f"{cand.label} was revoked by its registry ({stored.revoked.get('reason', '')}, "
            f"{stored.revoked.get('at', '')})",
            plugin=cand.name,
            fix="install another release: `enkrypted plugins install NAME --index URL`",
        )
    try:
        release = verify_release(
            stored.provenance_bytes(),
            policy=policy,
            slot=slot,
            wheel_sha256=stored.wheel_sha256,
            content_digest=report.content_digest,
            wheel_filename=stored.wheel_filename,
            offline=True,
            sigstore_verified=verdicts,
        )
    except ProvenanceError as exc:
        raise ProvenanceError(
            f"{cand.label}: {exc.message}", plugin=cand.name, fix=exc.fix
        ) from exc
    # A verdict only saves time at the next load; the verification itself has passed.
    with contextlib.suppress(OSError):
        verdicts.remember(release.sigstore)
    return release


def _verify_plugin_deps(
    cand: Candidate, others: tuple[Candidate, ...], store: ProvenanceStore | None = None
) -> tuple[IntegrityReport, ...]:
    """A plugin may depend on another plugin distribution's code (e.g. a second crypto backend on
    the protocol code of the first), which may depend on a third...: every plugin distribution
    reachable through ``Requires-Dist`` gets imported on its behalf, so every one is verified.

    A required distribution the profile installed as a plugin (it has a provenance record) but
    that is no longer a discoverable, non-editable plugin - its entry point or metadata edited
    away - is refused: it would otherwise be imported unverified."""
    from packaging.utils import canonicalize_name

    by_name = {canonicalize_name(o.dist_name): o for o in others}
    seen = {canonicalize_name(cand.dist_name)}
    pending, found = [cand], []
    while pending:
        for line in pending.pop().requires:
            name = requirement_name(line)  # an invalid line is refused by the skew check
            key = canonicalize_name(name) if name is not None else None
            if key is None or key in seen:
                continue
            seen.add(key)
            dep = by_name.get(key)
            if dep is not None and not dep.editable:
                found.append(dep)
                pending.append(dep)
            elif store is not None and (record := store.get(key)) is not None:
                raise IntegrityError(
                    f"{cand.label} requires {record.distribution}, a plugin distribution installed "
                    f"from {record.index}, which is no longer a verifiable installed plugin "
                    "(its entry point, metadata or RECORD changed, or it is an editable install)",
                    plugin=cand.name,
                    fix=f"reinstall it: `enkrypted plugins install {record.distribution}"
                    f"=={record.version} --index {record.index}`",
                )
            elif dep is not None:  # an editable plugin distribution: unverifiable code
                raise IntegrityError(
                    f"{cand.label} requires {dep.label}, an editable install whose files cannot "
                    "be verified",
                    plugin=cand.name,
                    fix=f"install {dep.dist_name} from a wheel",
                )
    return tuple(
        verify_distribution(d.distribution, name=d.dist_name, version=d.version, record=d.record)
        for d in sorted(found, key=lambda c: c.dist_name)
    )


def _check_skew(plugins: Mapping[str, PlannedPlugin], home: Path) -> str:
    """The skew check, or the remembered verdict for exactly these verified inputs
    (:class:`.skew.SkewVerdicts`); returns how it passed, for the load log."""
    plan = {slot: p.candidate for slot, p in plugins.items()}
    digests = {slot: p.digest for slot, p in plugins.items() if p.digest is not None}
    if len(digests) != len(plan):  # a dev-mode plugin has no verified digest: always check
        check_skew(plan, shell_version=__version__, contracts=CONTRACT_VERSIONS)
        return "checked"
    verdicts = SkewVerdicts(home)
    key = SkewVerdicts.key(plan, digests, shell_version=__version__, contracts=CONTRACT_VERSIONS)
    if verdicts.passed(key):
        return "verdict"
    checked = check_skew(plan, shell_version=__version__, contracts=CONTRACT_VERSIONS)
    verdicts.remember(key, checked)
    return "checked"


def _accept_record(
    planned: PlannedPlugin, *, locked: bool, dev: bool, skew: str = "checked"
) -> tuple[str, dict[str, object]]:
    cand = planned.candidate
    if planned.integrity is None:
        event = "admitted-unverified-dev"
    elif planned.provenance is None:
        event = "admitted-unsigned-downgrade"
    else:
        event = "verified"
    proof = planned.provenance
    return event, dict(
        slot=planned.slot,
        plugin=cand.name,
        distribution=cand.dist_name,
        version=cand.version,
        contract=str(cand.manifest.contract),
        content_digest=planned.digest,
        files=planned.integrity.files_checked if planned.integrity else 0,
        deps=[f"{d.distribution} {d.version} {d.content_digest}" for d in planned.verified_deps],
        selected_because=planned.reason,
        wheel_sha256=proof.wheel_sha256 if proof else None,
        signer=proof.signer_keyid if proof else None,
        sigstore_signers=list(planned.sigstore_signers),
        tuf_role=planned.stored.tuf_role if planned.stored else None,
        index=planned.stored.index if planned.stored else None,
        skew=skew,
        locked=locked,
        dev=dev,
        **_assets_record(planned),
    )


def _assets_record(planned: PlannedPlugin) -> dict[str, object]:
    """The digests of the asset bytes handed to the plugin (what a ui plugin serves), if any."""
    report = planned.integrity
    return {"assets": report.asset_digests()} if report is not None and report.assets else {}


def check_import_sources(plan: Plan) -> None:
    """Before anything is imported: the modules Python would import under each verified
    distribution's top-level names must be its verified files - not a same-named copy earlier on
    ``sys.path`` (PYTHONPATH, the working directory of ``python -m``), and not already imported by
    someone before verification.  Locating a top-level module runs none of its code."""
    reports = [report for planned in plan.plugins.values() for report in planned.reports]
    owners = {
        report.distribution: planned.candidate
        for planned in plan.plugins.values()
        for report in planned.reports
    }
    for report in reports:
        cand = owners[report.distribution]
        for top in report.top_level:
            if top in sys.modules:
                raise LoadError(
                    f"{cand.label}: {top!r} was imported before verification",
                    plugin=cand.name,
                    fix="start the shell in a fresh process (`enkrypted run`)",
                )
            spec = importlib.util.find_spec(top)
            if spec is not None and spec.origin is None and spec.submodule_search_locations:
                portions = {os.path.realpath(p) for p in spec.submodule_search_locations}
                if portions & set(report.roots):  # a namespace package with a verified folder
                    continue
            found = os.path.realpath(spec.origin) if spec and spec.origin else None
            if found is None or found not in report.sources:
                raise IntegrityError(
                    f"{cand.label}: importing {top!r} would load {found or 'nothing'}, not the "
                    f"verified copy of {report.distribution} {report.version}",
                    plugin=cand.name,
                    fix="remove the shadowing copy from sys.path (PYTHONPATH, current directory)",
                )
