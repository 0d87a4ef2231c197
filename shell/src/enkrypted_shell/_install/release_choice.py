"""Choosing a release from the registry's TUF-verified delegated roles (step 2 of an install).

The index pages are not read at all: only wheels whose wheel *and* ``.provenance`` are targets of
the slot's role exist for the client. Pure over the verified target list, apart from one
``get_targetinfo`` confirmation per candidate (through the :class:`~.tuf_client.TufClient`).
"""

from __future__ import annotations

__all__ = ["ReleaseCandidate", "catalog", "choose", "parse_request"]

import functools
import re
from dataclasses import dataclass
from typing import Any

from packaging.tags import Tag, sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..contracts import SLOTS
from ..errors import ProvenanceError, ShellUsageError
from .tuf_client import TufClient

_NAME_RE = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?:==([A-Za-z0-9.!+_-]+))?$")

def parse_request(text: str) -> tuple[str, Version | None]:
    match = _NAME_RE.match(text.strip())
    if not match:
        raise ShellUsageError(
            f"{text!r} is not NAME or NAME==VERSION",
            fix="e.g. `enkrypted plugins install enkrypted-crypto==0.1.0 --index URL`",
        )
    name, version = match.group(1), match.group(2)
    try:
        return canonicalize_name(name), Version(version) if version else None
    except InvalidVersion as exc:
        raise ShellUsageError(f"{text!r}: {version!r} is not a PEP 440 version") from exc


@dataclass(frozen=True, slots=True)
class ReleaseCandidate:
    slot: str
    path: str
    filename: str
    version: Version


def catalog(client: TufClient) -> dict[str, list[ReleaseCandidate]]:
    """Every wheel target per canonical project name, from the verified slot roles."""
    out: dict[str, list[ReleaseCandidate]] = {}
    for slot in SLOTS:
        for path in client.slot_wheels(slot):
            filename = path.rsplit("/", 1)[1]
            try:
                name, version, _build, _tags = parse_wheel_filename(filename)
            except (InvalidWheelFilename, InvalidVersion):
                continue
            out.setdefault(str(name), []).append(ReleaseCandidate(slot, path, filename, version))
    return out


def _one_slot(
    name: str,
    confirmed: list[tuple[ReleaseCandidate, Any, Any]],
    pinned: Version | None,
    slot: str | None,
) -> list[tuple[ReleaseCandidate, Any, Any]]:
    """A release belongs to one slot. A release listed by several slot roles is dropped, never
    installed, so the holder of another slot's key cannot take it over; what remains must come
    from one role: the one it was installed from before, or the only one listing the wanted
    version. Listings by other roles are refused naming which role lists what."""
    roles: dict[str, set[str]] = {}
    for cand, _, _ in confirmed:
        roles.setdefault(cand.filename, set()).add(cand.slot)
    ambiguous = {f for f, slots in roles.items() if len(slots) > 1}
    usable = [c for c in confirmed if c[0].filename not in ambiguous]
    if slot is not None:
        usable = [c for c in usable if c[0].slot == slot]
    if pinned is not None:
        usable = [c for c in usable if c[0].version == pinned]
    slots = {c[0].slot for c in usable}
    if len(slots) > 1 or (not usable and ambiguous):
        listing = "; ".join(
            f"{f} by role{'s' if len(s) > 1 else ''} {', '.join(sorted(s))}" for f, s in sorted(roles.items())
        )
        raise ProvenanceError(
            f"{name}: a release belongs to one slot, but {listing}",
            plugin=name,
            fix="pin the version your slot's role publishes (NAME==VERSION), and tell the registry "
            "operator: one slot key listed another slot's project",
        )
    return usable


@functools.cache
def _supported_tags() -> frozenset[Tag]:
    """This interpreter's wheel tags (computing them takes ~10 ms; they cannot change in-process)."""
    return frozenset(sys_tags())


def _compatible(filename: str) -> bool:
    tags = parse_wheel_filename(filename)[3]
    supported = _supported_tags()
    return any(tag in supported for tag in tags)


def choose(
    client: TufClient,
    catalog: dict[str, list[ReleaseCandidate]],
    name: str,
    pinned: Version | None,
    slot: str | None = None,
) -> tuple[ReleaseCandidate, Any, Any]:
    """The release to install, with the TUF target infos of its wheel and provenance.

    ``slot``: the slot the project was installed from before (its provenance record), if any.
    """
    listed = catalog.get(name, [])
    confirmed: list[tuple[ReleaseCandidate, Any, Any]] = []
    for cand in listed:
        wheel = client.targetinfo(cand.path)
        prov = client.targetinfo(f"{cand.path}.provenance")
        if wheel is not None and prov is not None:
            confirmed.append((cand, wheel, prov))
    confirmed = _one_slot(name, confirmed, pinned, slot)
    want = f"{name}=={pinned}" if pinned else name
    if not confirmed:
        raise ProvenanceError(
            f"no signed release of {name} in {client.index}: no wheel with a .provenance is a "
            f"target of the registry's TUF metadata (slots {', '.join(SLOTS)})",
            plugin=name,
            fix="it was never published with `enkrypted-registry publish`, was revoked, or the "
            "index lists an unsigned file; ask the registry operator",
        )
    if pinned is not None:
        matching = [c for c in confirmed if c[0].version == pinned]
        if not matching:
            have = ", ".join(sorted({str(c.version) for c, _, _ in confirmed}, key=Version))
            raise ProvenanceError(
                f"{want} is not a signed target of {client.index} (revoked or never published); "
                f"signed versions: {have}",
                plugin=name,
            )
    else:
        matching = [c for c in confirmed if not c[0].version.is_prerelease]
        if not matching:
            raise ProvenanceError(
                f"{name} has only pre-releases in {client.index}; pin one with NAME==VERSION",
                plugin=name,
            )
    usable = [c for c in matching if _compatible(c[0].filename)]
    if not usable:
        raise ShellUsageError(
            f"no signed wheel of {want} is compatible with this interpreter: "
            + ", ".join(c.filename for c, _, _ in matching)
        )
    return max(usable, key=lambda c: (c[0].version, c[0].filename))
