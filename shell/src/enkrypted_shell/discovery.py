"""Find plugin candidates from entry points and read their manifests, importing nothing.

One scan of group ``enkrypted.plugins`` per process (DESIGN.md §3 step 1): each entry point leads to
its distribution (``EntryPoint.dist``), whose RECORD locates the manifest data file.
"""

from __future__ import annotations

__all__ = ["ENTRY_POINT_GROUP", "Candidate", "Discovery", "discover"]

import importlib.util
import json
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from .errors import ManifestError
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


class Discovery(NamedTuple):
    """The result of one scan: readable candidates and the entry points that were not."""

    candidates: tuple[Candidate, ...]
    broken: tuple[ManifestError, ...]

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
    broken: list[ManifestError] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            candidates.append(_candidate(ep))
        except ManifestError as exc:
            broken.append(exc)
    return Discovery(tuple(candidates), tuple(broken))


def _candidate(ep: metadata.EntryPoint) -> Candidate:
    dist = ep.dist
    if dist is None:
        raise ManifestError(f"entry point {ep.name!r} has no distribution", plugin=ep.name)
    meta = dist.metadata  # parsed once: name, version and Requires-Dist come from here
    dist_name, version = str(meta["Name"]), str(meta["Version"])
    requires = tuple(meta.get_all("Requires-Dist") or ())
    where = f"{dist_name} {version}"
    package = ep.module.split(".")[0]
    wanted = f"{package}/{MANIFEST_FILENAME}"
    editable = _is_editable(dist)
    data = _editable_manifest(package) if editable else _recorded_manifest(dist, wanted)
    if data is None:
        raise ManifestError(
            f"{where}: entry point {ep.name!r} has no {wanted}"
            + ("" if editable else " in its RECORD"),
            plugin=ep.name,
            fix="the plugin's wheel must ship its manifest next to its package's __init__.py",
        )
    manifest = parse_manifest(data, source=f"{where}: {wanted}")
    if manifest.name != ep.name:
        raise ManifestError(
            f"{where}: manifest names the plugin {manifest.name!r} but its entry point is {ep.name!r}",
            plugin=ep.name,
        )
    return Candidate(ep, dist, manifest, editable, dist_name, version, requires)


def _recorded_manifest(dist: metadata.Distribution, wanted: str) -> bytes | None:
    files = dist.files
    if files is None or not any(str(f) == wanted for f in files):
        return None
    try:
        return Path(str(dist.locate_file(wanted))).read_bytes()
    except OSError:
        return None


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
    except ValueError:
        return False
    return bool(isinstance(info, dict) and info.get("dir_info", {}).get("editable"))
