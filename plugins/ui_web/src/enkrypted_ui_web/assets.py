"""The page's files, exactly as the shell verified them, held in memory for serving.

The manifest names the asset folder (``plugin.assets = "static"``); at load the shell hashes every
file of it against the distribution's RECORD (whose digest the signed provenance covers) and hands
the plugin those very bytes in :attr:`AppContext.assets`.  :func:`check_assets` re-checks them at
start, fail-closed, before anything is served:

* each file's sha256 equals its RECORD row, and every RECORD row of the folder was handed over;
* only known file types (the ``Content-Type`` is ours, never guessed);
* ``index.html`` carries Subresource Integrity (sha384) for every script and stylesheet it loads,
  equal to the bytes held here, so the browser checks them too.

Nothing else is ever served: no directory, no file read at request time.
"""

from __future__ import annotations

__all__ = ["CONTENT_TYPES", "Asset", "VerifiedAssets", "check_assets", "record_rows", "sri"]

import base64
import csv
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from types import MappingProxyType
from typing import Final

from .errors import AssetsRefused

DISTRIBUTION: Final = "enkrypted-ui-web"
FOLDER: Final = "enkrypted_ui_web/static/"
INDEX: Final = "index.html"
CONTENT_TYPES: Final = MappingProxyType(
    {
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
        ".png": "image/png",
        ".woff2": "font/woff2",
    }
)
_TAG: Final = re.compile(r"<(script|link)\b([^>]*)>", re.IGNORECASE)
_ATTR: Final = re.compile(r'([a-z-]+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    content_type: str
    sha256: str
    """Lowercase hex."""
    integrity: str
    """The SRI value, ``sha384-<base64>``."""


@dataclass(frozen=True, slots=True)
class VerifiedAssets:
    by_name: Mapping[str, Asset]

    def digests(self) -> dict[str, str]:
        """``{name: "sha256:<hex>"}``, as the shell's load log and reports show them."""
        return {name: f"sha256:{a.sha256}" for name, a in sorted(self.by_name.items())}


def sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def record_rows() -> dict[str, str]:
    """``{path: "sha256=<urlsafe-b64>"}`` of the installed distribution's RECORD (empty when it is
    not installed, e.g. running from a source tree)."""
    try:
        text = metadata.distribution(DISTRIBUTION).read_text("RECORD") or ""
    except metadata.PackageNotFoundError:
        return {}
    return {row[0]: row[1] for row in csv.reader(text.splitlines()) if len(row) == 3}


def check_assets(given: Mapping[str, bytes], record: Mapping[str, str]) -> VerifiedAssets:
    """The assets, checked as the module docstring says; :class:`AssetsRefused` names the first
    problem and nothing is served."""
    if not given:
        raise AssetsRefused(
            "the shell handed over no verified page files: ui-web serves only bytes the shell "
            "verified (install its wheel; a --dev editable install cannot serve the web chat)"
        )
    listed = {p[len(FOLDER) :]: h for p, h in record.items() if p.startswith(FOLDER)}
    listed = {n: h for n, h in listed.items() if "__pycache__" not in n.split("/")}
    missing = sorted(set(listed) - set(given))
    if missing:
        raise AssetsRefused(f"the verified page files lack {missing[0]} (listed in RECORD)")
    by_name = {}
    for name, body in sorted(given.items()):
        expected = listed.get(name)
        if expected != f"sha256={_record_hash(body)}":
            raise AssetsRefused(
                f"page file {name} does not match its RECORD hash: refusing to serve it "
                "(reinstall enkrypted-ui-web from a trusted index)"
            )
        kind = CONTENT_TYPES.get(name[name.rfind(".") :] if "." in name else "")
        if kind is None:
            raise AssetsRefused(f"page file {name} has a type ui-web does not serve")
        digest = hashlib.sha256(body).hexdigest()
        by_name[name] = Asset(name, bytes(body), kind, digest, sri(body))
    if INDEX not in by_name:
        raise AssetsRefused(f"the verified page files have no {INDEX}")
    _check_integrity(by_name)
    return VerifiedAssets(MappingProxyType(by_name))


def _check_integrity(by_name: Mapping[str, Asset]) -> None:
    """Every ``<script src>`` / ``<link href>`` of index.html is one of ours with its SRI."""
    page = by_name[INDEX].body.decode("utf-8")
    for tag, attrs in _TAG.findall(page):
        values = dict(_ATTR.findall(attrs))
        target = values.get("src" if tag.lower() == "script" else "href")
        if target is None:
            raise AssetsRefused(f"{INDEX}: a <{tag}> without a source (no inline code is served)")
        asset = by_name.get(target.removeprefix("/"))
        if asset is None:
            raise AssetsRefused(f"{INDEX} loads {target}, which is not a verified page file")
        if values.get("rel") == "icon":
            continue  # browsers apply no SRI to icons; it is still served only from these bytes
        if values.get("integrity") != asset.integrity:
            raise AssetsRefused(
                f"{INDEX}: the integrity of {target} is not {asset.integrity} "
                "(run tools/webui_assets.py after editing a page file)"
            )
