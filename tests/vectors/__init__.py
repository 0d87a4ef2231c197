"""The conformance vectors carried in ``tests/vectors/``: locate, integrity-check and load them.

Every file is checked against its folder's ``SHA256SUMS`` before it is read, so an altered or
missing vector is a loud failure (``pytest.fail``), never a skip.  Origin and licence of each
folder are in its README / NOTICE; see ``tests/vectors/README.md``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

VECTORS_DIR = Path(__file__).resolve().parent
FOLDERS = ("wycheproof", "cctv", "sigstore", "mls", "files")


@functools.cache
def checksums(folder: str) -> dict[str, str]:
    """``{relative path: sha256 hex}`` from ``FOLDER/SHA256SUMS``."""
    sums = VECTORS_DIR / folder / "SHA256SUMS"
    if not sums.is_file():
        pytest.fail(f"test vectors: {sums} is missing")
    table: dict[str, str] = {}
    for line in sums.read_text(encoding="ascii").splitlines():
        digest, _, name = line.partition("  ")
        table[name] = digest
    return table


@functools.cache
def _checked(folder: str, relative: str) -> Path:
    path = VECTORS_DIR / folder / relative
    expected = checksums(folder).get(relative)
    if expected is None:
        pytest.fail(f"test vectors: {folder}/{relative} is not listed in {folder}/SHA256SUMS")
    if not path.is_file():
        pytest.fail(f"test vectors: {path} is missing")
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        pytest.fail(f"test vectors: {folder}/{relative} does not match SHA256SUMS (altered?)")
    return path


def vectors_dir(*parts: str) -> Path:
    """A vector folder, or a checked file inside one (``vectors_dir("sigstore", "bundle.txt")``)."""
    if not parts or parts[0] not in FOLDERS:
        pytest.fail(f"test vectors: unknown folder {parts[:1]}; known: {FOLDERS}")
    if len(parts) == 1:
        checksums(parts[0])
        return VECTORS_DIR / parts[0]
    return _checked(parts[0], "/".join(parts[1:]))


def load_json(folder: str, name: str) -> Any:
    """Parsed ``FOLDER/NAME.json.gz`` (the large upstream JSON files are stored gzip'd)."""
    with gzip.open(_checked(folder, f"{name}.json.gz"), "rt", encoding="utf-8") as f:
        return json.load(f)


def wycheproof(name: str) -> dict[str, Any]:
    """Parsed ``wycheproof/<name>.json.gz``."""
    data: dict[str, Any] = load_json("wycheproof", name)
    return data


def wycheproof_cases(name: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every ``(group, test)`` pair of a Wycheproof file."""
    for group in wycheproof(name)["testGroups"]:
        for test in group["tests"]:
            yield group, test


def mls(name: str) -> list[dict[str, Any]]:
    """The entries of an RFC 9420 vector file, e.g. ``mls("tree-math")``."""
    data: list[dict[str, Any]] = load_json("mls", name)
    return data


def cctv_lines(*parts: str) -> list[bytes]:
    """Hex lines of a gzip'd CCTV text file, decoded."""
    with gzip.open(vectors_dir("cctv", *parts), "rt", encoding="ascii") as f:
        return [bytes.fromhex(line) for line in f.read().split()]
