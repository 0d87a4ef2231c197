"""Verifying a downloaded release before pip sees it (steps 3-4 of an install).

Wheel and provenance come through TUF (length and sha256 checked against the signed target); the
release is verified under ``trust.toml`` for the slot of its target path, and every wheel member is
compared with the signed file list and the plugin wheel layout rule.
"""

from __future__ import annotations

__all__ = ["VerifiedDownload", "check_members", "fetch_and_verify", "sha256_file"]

import hashlib
import json
import zipfile
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from .._pipeline.integrity import wheel_layout_problems
from .._trust.policy import TrustPolicy
from .._trust.provenance import VerifiedProvenance, VerifiedRelease, verify_release
from ..errors import ProvenanceError
from ..limits import LIMITS
from .release_choice import ReleaseCandidate, choose
from .tuf_client import TufClient


@dataclass(frozen=True, slots=True)
class VerifiedDownload:
    candidate: ReleaseCandidate
    wheel: Path
    sha256: str
    provenance: dict[str, Any]
    release: VerifiedRelease
    requires: tuple[str, ...]

    @property
    def proof(self) -> VerifiedProvenance:
        return self.release.provenance


def check_members(wheel: Path, proof: VerifiedProvenance) -> tuple[str, ...]:
    """Every member of the wheel is in the signed file list with the same sha256, and vice versa.

    Returns the wheel's ``Requires-Dist`` lines (for the optional dependency step)."""
    signed = dict(proof.files)
    problems = wheel_layout_problems(signed)
    if problems:
        raise ProvenanceError(
            f"{wheel.name}: not a plugin wheel layout: " + "; ".join(problems[:5]),
            plugin=proof.plugin,
            fix="a plugin wheel contains only its package and its .dist-info (docs/hooks.md)",
        )
    try:
        with zipfile.ZipFile(wheel) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            if len(infos) > LIMITS.provenance_files:
                raise ProvenanceError(f"{wheel.name}: more than {LIMITS.provenance_files} members")
            if sum(i.file_size for i in infos) > LIMITS.wheel_uncompressed_bytes:
                raise ProvenanceError(f"{wheel.name}: uncompressed size too large")
            seen: set[str] = set()
            metadata = b""
            for info in infos:
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "RECORD":
                    continue
                digest = hashlib.sha256()
                with archive.open(info) as member:
                    while chunk := member.read(1 << 20):
                        digest.update(chunk)
                if signed.get(info.filename) != digest.hexdigest():
                    raise ProvenanceError(
                        f"{wheel.name}: {info.filename} is not in the signed file list with this "
                        "sha256",
                        plugin=proof.plugin,
                    )
                seen.add(info.filename)
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    metadata = archive.read(info)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ProvenanceError(f"{wheel.name}: not a readable wheel ({exc})") from exc
    missing = sorted(set(signed) - seen)
    if missing:
        raise ProvenanceError(
            f"{wheel.name}: signed files missing from the wheel: {', '.join(missing[:5])}",
            plugin=proof.plugin,
        )
    headers = BytesHeaderParser().parsebytes(metadata)
    return tuple(str(v) for v in headers.get_all("Requires-Dist") or [])


def fetch_and_verify(
    client: TufClient,
    catalog: dict[str, list[ReleaseCandidate]],
    name: str,
    pinned: Version | None,
    policy: TrustPolicy,
    tmp: Path,
    slot: str | None = None,
) -> VerifiedDownload:
    cand, wheel_info, prov_info = choose(client, catalog, name, pinned, slot)
    folder = tmp / cand.slot
    folder.mkdir(exist_ok=True)
    wheel_path = folder / cand.filename
    wheel_bytes = client.download(wheel_info, wheel_path)
    prov_bytes = client.download(prov_info, folder / f"{cand.filename}.provenance")
    sha256 = hashlib.sha256(wheel_bytes).hexdigest()
    # No verdicts passed in: install always runs the full Sigstore verification.
    release = verify_release(
        prov_bytes,
        policy=policy,
        slot=cand.slot,
        wheel_sha256=sha256,
        wheel_filename=cand.filename,
        offline=True,
    )
    proof = release.provenance
    if canonicalize_name(proof.distribution) != name or Version(proof.version) != cand.version:
        raise ProvenanceError(
            f"provenance of {cand.path} is for {proof.distribution} {proof.version}",
            plugin=proof.plugin,
        )
    requires = check_members(wheel_path, proof)
    try:
        document = json.loads(prov_bytes)
    except ValueError as exc:  # verify_provenance parsed it already; defensive
        raise ProvenanceError(f"{cand.path}.provenance is not JSON") from exc
    return VerifiedDownload(cand, wheel_path, sha256, document, release, requires)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
