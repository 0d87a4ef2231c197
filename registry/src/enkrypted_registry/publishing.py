"""Publishing and revoking plugin releases.

Publish = verify the wheel (RECORD, manifest) → check the key is the delegated key of the wheel's
slot → (with a Sigstore bundle: check it signs the wheel's sha256, read its signer) → copy wheel,
PEP 658 ``.metadata`` and signed ``.provenance`` (carrying the Sigstore bundle, if any) under
``public/plugins/<slot>/`` → add wheel and provenance as TUF targets of the slot's role → snapshot →
timestamp → regenerate index.

Revoke (alias yank) = mark every file of ``NAME==VERSION`` yanked with a reason (PEP 592) and remove
its targets from the slot's TUF role, so a TUF client's next refresh no longer finds it: our client
refuses to install it and the shell refuses to load it at its next refresh. Stock pip still sees the
yanked file (pip installs a yanked file only when pinned with ``==``); ``--delete-files`` removes it.
"""

from __future__ import annotations

__all__ = ["PublishResult", "publish", "revoke"]

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .attestation import SIGSTORE_KIND, SigstoreBundle, provenance_document, read_sigstore_bundle
from .errors import PublishRefusedError, RegistryUsageError
from .index import ReleaseStore, write_index
from .keys import RoleKey
from .repository import Repository
from .wheel import WheelInfo, inspect_wheel, normalize_name


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What one publish call did for one wheel."""

    filename: str
    slot: str
    target_path: str
    provenance_path: str
    skipped: bool  # identical file already published
    sigstore_identity: str | None = None  # signer of the Sigstore bundle published with it


def _check_slot(repo: Repository, key: RoleKey, info: WheelInfo) -> None:
    key_slot = repo.slot_of_key(key.keyid)
    if key_slot is None:
        raise PublishRefusedError(
            f"key {key.keyid[:16]}… is not the delegated publisher key of any slot in this registry"
        )
    if key_slot != info.slot:
        raise PublishRefusedError(
            f"{info.filename} is a {info.slot} plugin ({info.plugin}) but the key given is the "
            f"{key_slot} key ({key.keyid[:16]}…); only the {info.slot} key may publish "
            f"plugins/{info.slot}/* - publish with --key {repo.key_path(info.slot)}"
        )


def _check_store(store: ReleaseStore, info: WheelInfo) -> bool:
    """Return True if the identical file is already published; refuse conflicting uploads."""
    project = store.projects.get(info.normalized_name)
    if project is None:
        return False
    if project["slot"] != info.slot:
        raise PublishRefusedError(
            f"project {info.normalized_name} belongs to slot {project['slot']}; "
            f"{info.filename} declares slot {info.slot}"
        )
    existing = project["files"].get(info.filename)
    if existing is None:
        return False
    if existing["sha256"] != info.sha256:
        raise PublishRefusedError(
            f"{info.filename} is already published with a different sha256; releases are "
            "immutable - bump the version"
        )
    if existing.get("yanked") is not None:
        raise PublishRefusedError(
            f"{info.filename} was revoked ({existing['yanked']}); publish a new version instead"
        )
    return True


def _store_entry(
    info: WheelInfo, metadata_sha256: str, keyid: str, now: datetime
) -> dict[str, Any]:
    return {
        "filename": info.filename,
        "version": info.version,
        "slot": info.slot,
        "plugin": info.plugin,
        "sha256": info.sha256,
        "size": info.size,
        "requires_python": info.requires_python,
        "metadata_sha256": metadata_sha256,
        "content_digest": info.content_digest,
        "publisher": keyid,
        "upload_time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "yanked": None,
    }


def _sigstore_of(infos: list[WheelInfo], given: Mapping[str, bytes]) -> dict[str, SigstoreBundle]:
    """Each given bundle (keyed by wheel filename), checked against its wheel."""
    by_name = {info.filename: info for info in infos}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise RegistryUsageError(
            f"Sigstore bundle given for {', '.join(unknown)}, which is not among the wheels "
            f"published ({', '.join(sorted(by_name))})"
        )
    return {
        name: read_sigstore_bundle(data, by_name[name], source=f"Sigstore bundle for {name}")
        for name, data in given.items()
    }


def _published_sigstore(path: Path) -> list[Any]:
    """The Sigstore bundles in an already published provenance file."""
    try:
        document = json.loads(path.read_bytes())
        return [
            attestation
            for entry in document["attestation_bundles"]
            if entry["publisher"]["kind"] == SIGSTORE_KIND
            for attestation in entry["attestations"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def publish(
    repo: Repository,
    wheels: list[Path],
    key: RoleKey,
    *,
    sigstore_bundles: Mapping[str, bytes] | None = None,
) -> list[PublishResult]:
    """Publish wheels of one slot signed by that slot's delegated key (all-or-nothing checks first).

    ``sigstore_bundles`` maps a wheel's filename to its Sigstore bundle (JSON bytes); each is placed
    in that wheel's provenance object as a ``sigstore`` attestation bundle.
    """
    infos = [inspect_wheel(path) for path in wheels]
    for info in infos:
        _check_slot(repo, key, info)
    sigstore = _sigstore_of(infos, sigstore_bundles or {})
    store = ReleaseStore(repo.root / "releases.json")
    for info in infos:  # before anything is written
        bundle = sigstore.get(info.filename)
        if bundle is None or not _check_store(store, info):
            continue
        published = repo.public / "plugins" / info.slot / f"{info.filename}.provenance"
        if bundle.bundle not in _published_sigstore(published):
            raise PublishRefusedError(
                f"{info.filename} is already published without this Sigstore bundle; its "
                "provenance is immutable - bump the version to publish it with the bundle"
            )
    now = repo.now().astimezone(UTC)
    results: list[PublishResult] = []
    targets: dict[str, bytes] = {}
    for path, info in zip(wheels, infos, strict=True):
        base = f"plugins/{info.slot}/{info.filename}"
        bundle = sigstore.get(info.filename)
        if _check_store(store, info):
            results.append(
                PublishResult(info.filename, info.slot, base, f"{base}.provenance", True)
            )
            continue
        folder = repo.public / "plugins" / info.slot
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / info.filename)
        (folder / f"{info.filename}.metadata").write_bytes(info.core_metadata)
        provenance = provenance_document(info, key.private, key.keyid, now=now, sigstore=bundle)
        (folder / f"{info.filename}.provenance").write_bytes(provenance)
        targets[base] = (folder / info.filename).read_bytes()
        targets[f"{base}.provenance"] = provenance
        project = store.projects.setdefault(
            info.normalized_name, {"name": info.name, "slot": info.slot, "files": {}}
        )
        metadata_sha256 = hashlib.sha256(info.core_metadata).hexdigest()
        project["files"][info.filename] = _store_entry(info, metadata_sha256, key.keyid, now)
        results.append(
            PublishResult(
                info.filename,
                info.slot,
                base,
                f"{base}.provenance",
                False,
                bundle.identity if bundle else None,
            )
        )
    if targets:
        slot = infos[0].slot
        slot_md = repo.update_slot_targets(slot, key, targets)
        repo.commit({slot: slot_md})
        store.save()
        write_index(repo.public, store)
    return results


def _parse_requirement(requirement: str) -> tuple[str, str]:
    name, sep, version = requirement.partition("==")
    if not sep or not name.strip() or not version.strip():
        raise RegistryUsageError(f"expected NAME==VERSION, got {requirement!r}")
    try:
        Version(version.strip())
    except InvalidVersion as exc:
        raise RegistryUsageError(f"{version!r} is not a PEP 440 version") from exc
    return normalize_name(name.strip()), version.strip()


def revoke(
    repo: Repository,
    requirement: str,
    *,
    reason: str,
    key: RoleKey | None = None,
    delete_files: bool = False,
) -> list[str]:
    """Yank ``NAME==VERSION`` and drop its TUF targets; return the affected filenames."""
    name, version = _parse_requirement(requirement)
    store = ReleaseStore(repo.root / "releases.json")
    project = store.projects.get(name)
    entries = [
        e
        for e in (project or {}).get("files", {}).values()
        if Version(e["version"]) == Version(version)
    ]
    if project is None or not entries:
        raise RegistryUsageError(f"{name}=={version} is not published in {repo.root}")
    slot = project["slot"]
    key = key or repo.key(slot)
    if repo.slot_of_key(key.keyid) != slot:
        raise PublishRefusedError(f"{name} is a {slot} plugin; revoke it with the {slot} key")
    removed: list[str] = []
    for entry in entries:
        base = f"plugins/{slot}/{entry['filename']}"
        removed.extend([base, f"{base}.provenance"])
        entry["yanked"] = reason or "revoked"
        if delete_files:
            for suffix in ("", ".metadata", ".provenance"):
                (repo.public / f"{base}{suffix}").unlink(missing_ok=True)
            del project["files"][entry["filename"]]
    if not project["files"]:
        del store.projects[name]
    slot_md = repo.update_slot_targets(slot, key, {}, remove=removed)
    repo.commit({slot: slot_md})
    store.save()
    write_index(repo.public, store)
    return [e["filename"] for e in entries]
