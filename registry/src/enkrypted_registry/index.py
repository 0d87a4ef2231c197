"""The simple repository API, generated as static files from ``releases.json``.

* PEP 503 HTML (``simple/index.html``, ``simple/<normalized>/index.html``) with ``#sha256=`` fragments,
  ``data-requires-python`` (HTML-escaped), PEP 592 ``data-yanked``, PEP 658/714
  ``data-core-metadata`` + legacy ``data-dist-info-metadata``, PEP 740 ``data-provenance`` and the
  PEP 629 ``pypi:repository-version`` meta tag.
* PEP 691 JSON beside each page as ``index.json`` (API 1.3: ``versions``, ``size``, ``upload-time``
  from PEP 700, ``provenance`` from PEP 740). Static hosts serve the HTML; ``enkrypted-registry serve``
  (or an nginx ``map`` on ``Accept``) negotiates ``application/vnd.pypi.simple.v1+json``.

File URLs are relative (``../../plugins/<slot>/<file>``) so the tree can be mounted under any prefix.
"""

from __future__ import annotations

__all__ = ["API_VERSION", "ReleaseStore", "write_index"]

import html
import json
import os
import shutil
from pathlib import Path
from typing import Any

from packaging.version import Version

API_VERSION = "1.3"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class ReleaseStore:
    """``releases.json``: per normalized project, its slot and files (with yank state)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text("utf-8"))

    @property
    def projects(self) -> dict[str, Any]:
        projects: dict[str, Any] = self.data["projects"]
        return projects

    def save(self) -> None:
        _write_atomic(self.path, json.dumps(self.data, indent=1, sort_keys=True).encode() + b"\n")


def _file_url(entry: dict[str, Any]) -> str:
    return f"../../plugins/{entry['slot']}/{entry['filename']}"


def _html_page(title: str, body: list[str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>{html.escape(title)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>{html.escape(title)}</h1>",
        *(f"    {line}" for line in body),
        "  </body>",
        "</html>",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def _anchor(entry: dict[str, Any]) -> str:
    url = _file_url(entry)
    attrs = [f'href="{html.escape(url)}#sha256={entry["sha256"]}"']
    if entry.get("requires_python"):
        attrs.append(f'data-requires-python="{html.escape(entry["requires_python"])}"')
    metadata = f"sha256={entry['metadata_sha256']}"
    attrs.append(f'data-dist-info-metadata="{metadata}"')
    attrs.append(f'data-core-metadata="{metadata}"')
    attrs.append(f'data-provenance="{html.escape(url)}.provenance"')
    if entry.get("yanked") is not None:
        attrs.append(f'data-yanked="{html.escape(entry["yanked"])}"')
    return f"<a {' '.join(attrs)}>{html.escape(entry['filename'])}</a><br>"


def _json_file(entry: dict[str, Any]) -> dict[str, Any]:
    url = _file_url(entry)
    yanked = entry.get("yanked")
    return {
        "filename": entry["filename"],
        "url": url,
        "hashes": {"sha256": entry["sha256"]},
        "requires-python": entry.get("requires_python"),
        "core-metadata": {"sha256": entry["metadata_sha256"]},
        "dist-info-metadata": {"sha256": entry["metadata_sha256"]},
        "yanked": yanked if yanked is not None else False,
        "size": entry["size"],
        "upload-time": entry["upload_time"],
        "provenance": f"{url}.provenance",
    }


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=True).encode("utf-8") + b"\n"


def write_index(public: Path, store: ReleaseStore) -> None:
    """Regenerate ``public/simple/`` entirely from the release store."""
    simple = public / "simple"
    projects = store.projects
    for name, project in sorted(projects.items()):
        files = sorted(
            project["files"].values(), key=lambda e: (Version(e["version"]), e["filename"])
        )
        page = _html_page(f"Links for {name}", [_anchor(e) for e in files])
        _write_atomic(simple / name / "index.html", page)
        doc = {
            "meta": {"api-version": API_VERSION},
            "name": name,
            "versions": sorted({e["version"] for e in files}, key=Version),
            "files": [_json_file(e) for e in files],
        }
        _write_atomic(simple / name / "index.json", _dump(doc))
    # Drop pages of projects that no longer exist (all files deleted).
    if simple.exists():
        for child in simple.iterdir():
            if child.is_dir() and child.name not in projects:
                shutil.rmtree(child)
    body = [f'<a href="{html.escape(n)}/">{html.escape(n)}</a><br>' for n in sorted(projects)]
    _write_atomic(simple / "index.html", _html_page("Simple index", body))
    root_doc = {
        "meta": {"api-version": API_VERSION},
        "projects": [{"name": n} for n in sorted(projects)],
    }
    _write_atomic(simple / "index.json", _dump(root_doc))
