"""``enkrypted plugins install`` / ``refresh``: plugins from the private registry, verified twice.

This module runs the steps in order; each lives in its own module: TUF in :mod:`.tuf_client`, the
choice of release in :mod:`.release_choice`, download verification in :mod:`.wheels`, pip in
:mod:`.pip`. The decisions are the pure functions of :mod:`.._trust.provenance` (signature,
statement, slot policy) and :mod:`.._trust.policy` (``trust.toml``).

Install, for a registry at ``INDEX`` (its base URL; ``INDEX/tuf/`` holds TUF metadata and
``INDEX/plugins/<slot>/<wheel>`` the TUF targets):

1. **TUF refresh** with python-tuf's ngclient from the root pinned for this index in
   ``HOME/tuf/<sha256(INDEX)[:16]>/`` - given with ``--root`` or, on first use, fetched from
   ``INDEX/tuf/1.root.json`` (trust on first use, announced loudly).  Rollback, freeze,
   mix-and-match and bad signatures stop here.
2. **Choose the release** from the verified delegated role of each slot (the index pages are not
   read at all): the highest final version of the project whose wheel *and* ``.provenance`` are
   targets, or exactly ``NAME==VERSION``.  A revoked release is no longer a target, so it does not
   exist for the client.  Each candidate is confirmed with ``Updater.get_targetinfo``.
3. **Download** wheel and provenance with ``Updater.download_target`` (length and sha256 checked
   against the signed target).
4. **Verify the release** (:func:`.provenance.verify_release`) under ``HOME/trust.toml`` - which,
   when absent, is created from the TUF-verified top-level targets metadata (announced loudly) -
   for the slot of the target path, the wheel's filename and sha256: the DSSE provenance, and every
   Sigstore bundle it carries, fully verified offline (a slot listing Sigstore identities requires
   one); then compare every member of the wheel with the signed file list.
5. **pip** installs the verified files, hash-pinned (``--require-hashes --no-index --no-deps``,
   machine pip configuration ignored).  Third-party dependencies are installed only when a
   ``deps_index`` is given (a separate, not hash-pinned pip call); otherwise the shell's start-up
   skew check names what is missing.
6. Only after pip succeeded: a :class:`.provenance_store.StoredProvenance` record per plugin, the
   Sigstore verdicts (:class:`.provenance.SigstoreVerdicts`, so that load time need not import
   sigstore-python) and an ``installed`` record in the load log.

Any failure before step 5 installs nothing.  ``refresh`` re-runs step 1 for every index the stored
records name and marks a record revoked when its target is gone from (or changed in) the signed
metadata; it writes nothing unless every index refreshed cleanly.
"""

from __future__ import annotations

__all__ = [
    "InstalledPlugin",
    "RefreshReport",
    "RevokedRecord",
    "install",
    "metadata_dir",
    "normalize_index_url",
    "refresh",
]

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from packaging.version import Version

from .._state.files import write_atomic
from .._state.loadlog import LoadLog
from .._state.provenance_store import ProvenanceStore, StoredProvenance
from .._trust.policy import SigstoreIdentity, TrustPolicy
from .._trust.sigstore import SigstoreVerdicts
from ..contracts import SLOTS
from ..errors import ShellError, ShellUsageError
from .pip import check_ownership, install_dependencies, install_verified
from .release_choice import catalog, parse_request
from .tuf_client import (
    Fetcher,
    Notify,
    TufClient,
    connect,
    locked,
    metadata_dir,
    normalize_index_url,
)
from .wheels import VerifiedDownload, fetch_and_verify


# ------------------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class InstalledPlugin:
    """One plugin installed by :func:`install`."""

    distribution: str
    version: str
    slot: str
    plugin: str
    wheel_filename: str
    wheel_sha256: str
    target_path: str
    signer_keyid: str
    record_path: Path
    sigstore: tuple[SigstoreIdentity, ...] = ()  # Sigstore signers whose bundles verified


@dataclass(frozen=True, slots=True)
class RevokedRecord:
    distribution: str
    version: str
    index: str
    reason: str


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What :func:`refresh` found."""

    indexes: tuple[str, ...]
    checked: int
    newly_revoked: tuple[RevokedRecord, ...]
    already_revoked: tuple[RevokedRecord, ...]


# ------------------------------------------------------------------------------------- helpers
def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quiet(_message: str) -> None:
    return None


# ---------------------------------------------------------------------------------- trust.toml
def _policy(home: Path, client: TufClient, say: Notify) -> TrustPolicy:
    path = home / "trust.toml"
    try:
        return TrustPolicy.from_toml(path.read_text("utf-8"), source=str(path))
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise ShellUsageError(f"cannot read {path}: {exc}") from exc
    policy = TrustPolicy.from_tuf_targets(client.verified_bytes("targets"))
    doc: dict[str, Any] = {
        "version": 1,
        "slots": {
            slot: {"keys": [key.raw.hex() for key in policy.slots[slot].keys]}
            for slot in SLOTS
            if slot in policy.slots
        },
    }
    text = (
        f"# Created by `enkrypted plugins install` from the TUF-verified targets metadata of\n"
        f"# {client.index} on {_now()} (trust on first use of that registry's slot keys).\n"
        "# Edit to narrow or widen who may publish each slot; keys are raw Ed25519 public keys.\n"
        + tomli_w.dumps(doc)
    )
    TrustPolicy.from_toml(text, source=str(path))  # what we write must parse back
    write_atomic(path, text.encode("utf-8"))
    lines = [
        f"!!   [{slot}] " + ", ".join(k.keyid[:16] + "…" for k in policy.slots[slot].keys)
        for slot in SLOTS
        if slot in policy.slots
    ]
    say(
        "!" * 78
        + f"\n!! CREATED {path} from the registry's delegated slot keys (trust on first use):\n"
        + "\n".join(lines)
        + "\n!! Only these keys may publish plugins of each slot. Review the file.\n"
        + "!" * 78
    )
    return policy


# ------------------------------------------------------------------------------------- install
def install(
    names: Sequence[str],
    *,
    index_url: str,
    home: Path,
    root: Path | None = None,
    python: str = sys.executable,
    deps_index: str | None = None,
    notify: Notify | None = None,
    fetcher: Fetcher | None = None,
) -> list[InstalledPlugin]:
    """Install plugins from the registry at ``index_url`` (see the module docstring).

    Raises :class:`ProvenanceError` for anything TUF or provenance refuses, :class:`ShellUsageError`
    for bad arguments and :class:`ShellError` when the registry cannot be reached or pip fails.
    """
    say = notify or _quiet
    log = LoadLog(home / "load-log.jsonl")
    try:
        return _install(names, index_url, home, root, python, deps_index, say, log, fetcher)
    except ShellError as exc:
        log.append(
            "install-refused",
            plugin=exc.plugin,
            requested=list(names),
            index=index_url,
            rule=exc.rule,
            reason=exc.message,
        )
        raise


def _install(
    names: Sequence[str],
    index_url: str,
    home: Path,
    root: Path | None,
    python: str,
    deps_index: str | None,
    say: Notify,
    log: LoadLog,
    fetcher: Fetcher | None,
) -> list[InstalledPlugin]:
    requests, python, index = _checked_request(names, python, deps_index, index_url)
    store = ProvenanceStore(home)
    with (
        locked(metadata_dir(home, index).with_suffix(".lock")),
        tempfile.TemporaryDirectory(prefix="enkrypted-install-") as tmpdir,
    ):
        tmp = Path(tmpdir)
        client = connect(
            index, home, root, tmp / "targets", say, pinned_only=False, fetcher=fetcher
        )
        policy = _policy(home, client, say)
        releases = catalog(client)
        verified = [
            fetch_and_verify(client, releases, name, pinned, policy, tmp, _installed_slot(store, name))
            for name, pinned in requests
        ]
        check_ownership(python, verified)
        if deps_index is not None:
            known = set(releases) | {n for n, _ in requests} | set(store.names())
            install_dependencies(python, deps_index, verified, known, tmp, say)
        install_verified(python, verified, tmp)
        _remember_sigstore(home, verified, say)
        installed_at = _now()
        return [_record(item, index, installed_at, python, store, log) for item in verified]


def _installed_slot(store: ProvenanceStore, name: str) -> str | None:
    """The slot a project was installed from before: a later listing elsewhere is not it."""
    record = store.get(name)
    return record.slot if record is not None else None


def _checked_request(
    names: Sequence[str], python: str, deps_index: str | None, index_url: str
) -> tuple[list[tuple[str, Version | None]], str, str]:
    """The parsed requests, the interpreter's path and the normalised index URL, or a usage error
    before anything touches the network."""
    if not names:
        raise ShellUsageError("name at least one plugin distribution to install")
    requests = [parse_request(n) for n in names]
    dupes = sorted({n for n, _ in requests if [m for m, _ in requests].count(n) > 1})
    if dupes:
        raise ShellUsageError(f"requested more than once: {', '.join(dupes)}")
    if os.sep not in python:
        python = shutil.which(python) or python
    if not Path(python).is_file() or not os.access(python, os.X_OK):
        raise ShellUsageError(f"--python {python}: not an executable file")
    if deps_index is not None:
        normalize_index_url(deps_index)  # same URL rules
    return requests, python, normalize_index_url(index_url)


def _remember_sigstore(home: Path, verified: list[VerifiedDownload], say: Notify) -> None:
    verdicts = SigstoreVerdicts(home)
    try:
        verdicts.remember(s for item in verified for s in item.release.sigstore)
    except OSError as exc:  # only costs a full verification at the next load
        say(f"note: could not record Sigstore verdicts in {verdicts.path}: {exc}")


def _record(
    item: VerifiedDownload,
    index: str,
    installed_at: str,
    python: str,
    store: ProvenanceStore,
    log: LoadLog,
) -> InstalledPlugin:
    """After pip succeeded: the provenance record load time verifies against, and the log entry."""
    proof, cand = item.proof, item.candidate
    record = StoredProvenance(
        distribution=proof.distribution,
        version=proof.version,
        slot=cand.slot,
        wheel_filename=cand.filename,
        wheel_sha256=item.sha256,
        index=index,
        tuf_role=cand.slot,
        target_path=cand.path,
        installed_at=installed_at,
        provenance=item.provenance,
        revoked=None,
    )
    path = store.put(record)
    log.append(
        "installed",
        slot=cand.slot,
        plugin=proof.plugin,
        distribution=proof.distribution,
        version=proof.version,
        wheel_sha256=item.sha256,
        content_digest=proof.content_digest,
        signer=proof.signer_keyid,
        sigstore=[str(s.signer) for s in item.release.sigstore],
        index=index,
        target_path=cand.path,
        python=python,
    )
    return InstalledPlugin(
        proof.distribution,
        proof.version,
        cand.slot,
        proof.plugin,
        cand.filename,
        item.sha256,
        cand.path,
        proof.signer_keyid,
        path,
        tuple(s.signer for s in item.release.sigstore),
    )


# ------------------------------------------------------------------------------------- refresh
def refresh(
    home: Path, *, notify: Notify | None = None, fetcher: Fetcher | None = None
) -> RefreshReport:
    """Refresh TUF metadata of every index the stored records name; mark records revoked whose
    target (wheel or provenance) is gone from, or changed in, the signed metadata.

    All indexes are refreshed and checked before any record is written: a TUF failure raises
    :class:`ProvenanceError` and changes nothing.
    """
    say = notify or _quiet
    store = ProvenanceStore(home)
    records = store.all()
    by_index: dict[str, list[StoredProvenance]] = {}
    for record in records:
        by_index.setdefault(normalize_index_url(record.index), []).append(record)
    updates: list[StoredProvenance] = []
    already: list[RevokedRecord] = []
    when = _now()
    for index, group in sorted(by_index.items()):
        with (
            locked(metadata_dir(home, index).with_suffix(".lock")),
            tempfile.TemporaryDirectory(prefix="enkrypted-refresh-") as tmpdir,
        ):
            client = connect(
                index, home, None, Path(tmpdir), say, pinned_only=True, fetcher=fetcher
            )
            for record in group:
                if record.revoked:
                    already.append(
                        RevokedRecord(
                            record.distribution,
                            record.version,
                            index,
                            record.revoked.get("reason", ""),
                        )
                    )
                    continue
                reason = _still_signed(client, record)
                if reason is not None:
                    updates.append(replace(record, revoked={"at": when, "reason": reason}))
    log = LoadLog(home / "load-log.jsonl")
    newly = []
    for record in updates:
        store.put(record)
        assert record.revoked is not None
        log.append(
            "revoked",
            slot=record.slot,
            distribution=record.distribution,
            version=record.version,
            index=record.index,
            target_path=record.target_path,
            reason=record.revoked["reason"],
        )
        newly.append(
            RevokedRecord(
                record.distribution, record.version, record.index, record.revoked["reason"]
            )
        )
    return RefreshReport(tuple(sorted(by_index)), len(records), tuple(newly), tuple(already))


def _still_signed(client: TufClient, record: StoredProvenance) -> str | None:
    """None if the record's wheel and provenance are still the same signed targets, else why not."""
    role = record.tuf_role
    wheel = client.targetinfo(record.target_path)
    prov = client.targetinfo(f"{record.target_path}.provenance")
    if wheel is None:
        return f"target {record.target_path} removed from {role} metadata"
    if prov is None:
        return f"target {record.target_path}.provenance removed from {role} metadata"
    signed = wheel.hashes.get("sha256")
    if signed != record.wheel_sha256:
        return (
            f"target {record.target_path} changed in {role} metadata (sha256 {signed}, "
            f"installed {record.wheel_sha256})"
        )
    return None
