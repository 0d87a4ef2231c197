"""The vendored conformance vectors are complete and unaltered (tests/vectors/*/SHA256SUMS).

A plain clone must carry every vector file the suite reads; each folder's checksum list covers
every file in it, and nothing in a folder is left unlisted.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.vectors import FOLDERS, VECTORS_DIR, checksums, mls, vectors_dir

MLS_FILES = (
    "tree-math", "crypto-basics", "secret-tree", "message-protection", "key-schedule",
    "psk_secret", "transcript-hashes", "welcome", "tree-operations", "tree-validation",
    "treekem", "messages", "deserialization", "passive-client-welcome",
    "passive-client-handling-commit", "passive-client-random",
)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_listed_file_matches_its_checksum(folder: str) -> None:
    for relative, expected in checksums(folder).items():
        data = (VECTORS_DIR / folder / relative).read_bytes()
        assert hashlib.sha256(data).hexdigest() == expected, f"{folder}/{relative}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_unlisted_file_and_provenance_present(folder: str) -> None:
    root = VECTORS_DIR / folder
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert present - {"SHA256SUMS"} == set(checksums(folder))
    assert "README.md" in present
    assert {"LICENSE", "NOTICE"} & present, f"{folder} carries no licence / notice"


@pytest.mark.parametrize("name", MLS_FILES)
def test_every_rfc9420_vector_file_is_carried(name: str) -> None:
    entries = mls(name)
    assert isinstance(entries, list) and entries


def test_altered_vector_file_fails_loudly(tmp_path, monkeypatch) -> None:
    import tests.vectors as v

    (tmp_path / "cctv").mkdir()
    (tmp_path / "cctv" / "SHA256SUMS").write_text("00" * 32 + "  x.txt.gz\n")
    (tmp_path / "cctv" / "x.txt.gz").write_bytes(b"not the listed bytes")
    monkeypatch.setattr(v, "VECTORS_DIR", tmp_path)
    v.checksums.cache_clear()
    v._checked.cache_clear()
    try:
        with pytest.raises(pytest.fail.Exception, match="does not match SHA256SUMS"):
            vectors_dir("cctv", "x.txt.gz")
        with pytest.raises(pytest.fail.Exception, match="not listed"):
            vectors_dir("cctv", "y.txt.gz")
    finally:
        v.checksums.cache_clear()
        v._checked.cache_clear()
