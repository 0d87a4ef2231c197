"""The suite collects on a plain clone: test folders are not packages (rootdir import mode), so two
test modules with the same file name would shadow each other at collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def test_test_module_names_are_unique() -> None:
    tests = Path(__file__).parent
    names = Counter(p.name for p in tests.rglob("test_*.py") if "node_modules" not in p.parts)
    assert [name for name, count in names.items() if count > 1] == []
