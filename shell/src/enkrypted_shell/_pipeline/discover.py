"""Find plugin candidates from entry points and read their manifests, importing nothing.

One scan of group ``enkrypted.plugins`` per process (DESIGN.md §3 step 1): each entry point leads to
its distribution (``EntryPoint.dist``), whose RECORD locates the manifest data file.
"""

from __future__ import annotations

__all__ = ["ENTRY_POINT_GROUP", "Candidate", "Discovery", "discover"]

import email.parser
import importlib.util
import json
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from ..errors import IntegrityError, ManifestError, ShellError
from .integrity import parse_record, read_recorded
from .manifest import MANIFEST_FILENAME, PluginManifest, parse_manifest

ENTRY_POINT_GROUP = "enkrypted.plugins"


class Candidate(NamedTuple):
    """An installed plugin: its entry point, distribution and manifest."""

    entry_point: metadata.EntryPoint
    distribution: metadata.Distribution
    manifest: PluginManifest
    editable: bool
    dist_name: str  # these three from one parse of the distribution's METADATA
    version: str
    requires: tuple[str, ...]  # Requires-Dist lines
    record: str | None = None  # the RECORD text read once here; verification uses the same text

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def slot(self) -> str:
        return self.manifest.slot

    @property
    def label(self) -> str:
        """``name (dist version)`` for messages."""
        return f"{self.name} ({self.dist_name} {self.version})"


class Ignored(NamedTuple):
    """An entry point that is never imported, and why (shown by ``plugins verify``)."""

    plugin: str
    distribution: str
    reason: str


class Discovery(NamedTuple):
    """The result of one scan: readable candidates, the entry points that were not, and foreign
    entry points ignored so that one bad distribution cannot deny service to the rest."""

    candidates: tuple[Candidate, ...]
    broken: tuple[ShellError, ...]  # ManifestError, or IntegrityError for a changed manifest/METADATA
    ignored: tuple[Ignored, ...] = ()

    def for_slot(self, slot: str) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.slot == slot)


_cache: Discovery | None = None


def discover(*, refresh: bool = False) -> Discovery:
    """Scan entry points once per process (``refresh`` forces a new scan, for tests)."""
    global _cache  # noqa: PLW0603 - the one process-wide scan cache
    if _cache is None or refresh:
        _cache = _scan()
    return _cache


def _scan() -> Discovery:
    candidates: list[Candidate] = []
    broken: list[ShellError] = []
    ignored: list[Ignored] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            candidates.append(_candidate(ep))
        except (ManifestError, IntegrityError) as exc:
            foreign = _foreign_owner(ep)
            if foreign is None:
                broken.append(exc)
            else:
                ignored.append(Ignored(ep.name, _dist_label(ep), f"its entry point {ep.value} points into "
                                       f"{foreign}'s package, which it does not install"))
        except Exception as exc:  # any other bad input (RecursionError too) of this entry point only
            broken.append(
                ManifestError(
                    f"entry point {ep.name!r} ({ep.value}) is unreadable: "
                    f"{type(exc).__name__}: {exc}",
                    plugin=ep.name,
                    fix="reinstall or uninstall the distribution that declares it",
                )
            )
    return Discovery(tuple(candidates), tuple(broken), tuple(ignored))


def _dist_label(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def _foreign_owner(ep: metadata.EntryPoint) -> str | None:
    """The distribution that installs the entry point's package, when that is not the entry
    point's own distribution (an unrelated wheel pointing into another plugin's package)."""
    package = ep.module.split(".")[0]
    owners = metadata.packages_distributions().get(package, [])
    own = ep.dist.name if ep.dist is not None else None
    others = [o for o in owners if own is None or o.lower().replace("_", "-") != own.lower().replace("_", "-")]
    return others[0] if others and (own is None or own not in owners) else None


def _candidate(ep: metadata.EntryPoint) -> Candidate:
    """Everything read here is read once and, for an installed wheel, checked against its RECORD
    hash as it is read (the manifest and METADATA): what selection and the skew checks see is what
    verification later vouches for."""
    dist = ep.dist
    if dist is None:
        raise ManifestError(f"entry point {ep.name!r} has no distribution", plugin=ep.name)
    record = dist.read_text("RECORD")
    package = ep.module.split(".")[0]
    wanted = f"{package}/{MANIFEST_FILENAME}"
    rows = parse_record(record, where=f"entry point {ep.name!r}", name=ep.name) if record else []
    paths = {path for path, _ in rows}
    meta_path = next(
        (p for p in sorted(paths) if p.count("/") == 1 and p.endswith(".dist-info/METADATA")), None
    )
    if meta_path is not None:
        raw = read_recorded(dist, rows, meta_path, where=f"entry point {ep.name!r}", name=ep.name)
        meta = email.parser.BytesHeaderParser().parsebytes(raw)
    else:  # no RECORD (not installed by an installer): verification refuses it later
        meta = dist.metadata  # type: ignore[assignment]
    dist_name, version = str(meta["Name"]), str(meta["Version"])
    requires = tuple(str(r) for r in meta.get_all("Requires-Dist") or ())
    where = f"{dist_name} {version}"
    # Editable only if pip says so AND its RECORD lists none of the package's files (an editable
    # install records just a finder/.pth): a flipped direct_url.json on a wheel install changes
    # nothing, the wheel is still verified, --dev or not.
    editable = _is_editable(dist) and not any(p.startswith(f"{package}/") for p in paths)
    if editable:
        data = _editable_manifest(package)
        if data is None:  # its sources are reached through a .pth, which the isolated start skips
            raise IntegrityError(
                f"{where} is an editable install (found through a .pth file, which the shell does "
                "not run); its files cannot be verified",
                plugin=ep.name,
                fix="install the wheel, or pass --dev (ENKRYPTED_DEV=1) to load it unverified",
            )
    elif wanted in paths:
        data = read_recorded(dist, rows, wanted, where=where, name=ep.name)
    else:
        data = None
    if data is None:
        raise ManifestError(
            f"{where}: entry point {ep.name!r} has no {wanted}"
            + ("" if editable else " in its RECORD"),
            plugin=ep.name,
            fix="the plugin's wheel must ship its manifest next to its package's __init__.py",
        )
    manifest = parse_manifest(data, source=f"{where}: {wanted}", ranges=False)  # see check_ranges
    if manifest.name != ep.name:
        raise ManifestError(
            f"{where}: manifest names the plugin {manifest.name!r} but its entry point is {ep.name!r}",
            plugin=ep.name,
        )
    return Candidate(ep, dist, manifest, editable, dist_name, version, requires, record)


def _editable_manifest(package: str) -> bytes | None:
    """An editable install's RECORD does not list its sources; locate the package (find_spec of a
    top-level package runs none of its code) and read the manifest from the source tree."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MANIFEST_FILENAME
    return path.read_bytes() if path.is_file() else None


def _is_editable(dist: metadata.Distribution) -> bool:
    text = dist.read_text("direct_url.json")
    if not text:
        return False
    try:
        info = json.loads(text)
    except (ValueError, RecursionError):
        return False
    dir_info = info.get("dir_info") if isinstance(info, dict) else None
    return isinstance(dir_info, dict) and dir_info.get("editable") is True
