"""Shared test vectors (``/work/shared/vectors``, next to the repository): locate and load them.

Missing vectors are a broken checkout, not an optional extra: every helper fails loudly and
never skips.  Provenance of each folder is in its README / SHA256SUMS.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

VECTORS_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "vectors"


def vectors_dir(*parts: str) -> Path:
    """The vectors folder (or a file/subfolder in it); ``pytest.fail`` if it is missing."""
    path = VECTORS_DIR.joinpath(*parts).resolve()
    if not path.exists():
        pytest.fail(f"test vectors missing: {path} (expected the shared vectors checkout)")
    return path


def wycheproof(name: str) -> dict[str, Any]:
    """Parsed ``wycheproof/<name>.json``."""
    with vectors_dir("wycheproof", f"{name}.json").open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def wycheproof_cases(name: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every ``(group, test)`` pair of a Wycheproof file."""
    for group in wycheproof(name)["testGroups"]:
        for test in group["tests"]:
            yield group, test


def cctv_lines(*parts: str) -> list[bytes]:
    """Hex lines of a gzip'd CCTV text file, decoded."""
    with gzip.open(vectors_dir("cctv", *parts), "rt", encoding="ascii") as f:
        return [bytes.fromhex(line) for line in f.read().split()]
