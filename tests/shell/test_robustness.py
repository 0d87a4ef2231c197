"""Bad local or remote input gives the documented refusal (docs/errors.md), never a traceback:
non-UTF-8, wrongly typed, deeply nested or oversized HOME files, TUF roots, keys and metadata.  Pure functions and tmp_path files only: no wheels, no network."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from enkrypted_shell import errors
from enkrypted_shell._pipeline.lock import parse_lock
from enkrypted_shell._state.loadlog import GENESIS, LoadLog, verify_chain
from enkrypted_shell._state.provenance_store import ProvenanceStore, StoredProvenance
from enkrypted_shell._trust.policy import PublisherKey, TrustPolicy

DEEP_TOML = "x = " + "[" * 20000 + "]" * 20000 + "\n"


def _original_digest(record: dict[str, object]) -> str:
    """The load log's digest as released (before the fixes): existing logs must keep verifying."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# ----------------------------------------------------------------------------- load log (#6, #8)
@pytest.fixture
def log(tmp_path: Path) -> LoadLog:
    log = LoadLog(tmp_path / "load-log.jsonl")
    log.append("verified", plugin="p1")
    log.append("verified", plugin="p2")
    return log


@pytest.mark.parametrize(
    "last_line",
    [
        '{"seq": 1}',  # no hash
        "[1]",  # not an object
        "{}",  # falsy: must not silently restart the chain at GENESIS
        "0",
        "null",
        "false",
        '""',
        '{"seq": "2", "hash": "' + "a" * 64 + '"}',  # seq not an int
        '{"seq": true, "hash": "' + "a" * 64 + '"}',
        '{"seq": 2, "hash": "short"}',
        '{"seq": 2, "hash": 7}',
        '{"seq": 2, "hash": "' + "A" * 64 + '"}',  # not lowercase hex
        pytest.param("[" * 100000 + "]" * 100000, id="deep"),  # RecursionError in json
        "not json",
    ],
)
def test_append_refuses_a_damaged_last_record(log: LoadLog, last_line: str) -> None:
    with log.path.open("a", encoding="utf-8") as handle:
        handle.write(last_line + "\n")
    with pytest.raises(errors.LoadLogCorruptError) as caught:
        log.append("verified", plugin="p3")
    assert caught.value.exit_code == errors.ExitCode.LOG_CORRUPT == 18


def test_append_refuses_a_non_utf8_last_record(log: LoadLog) -> None:
    with log.path.open("ab") as handle:
        handle.write(b'{"seq": 3, "hash": "\xff"}\n')
    with pytest.raises(errors.LoadLogCorruptError):
        log.append("verified")


def test_blank_trailing_lines_do_not_hide_the_last_record(log: LoadLog) -> None:
    with log.path.open("a", encoding="utf-8") as handle:
        handle.write("   \n\n \t\n")
    record = log.append("verified", plugin="p3")
    assert record["seq"] == 3
    state = log.read()
    assert state.intact and [r["seq"] for r in state.records] == [1, 2, 3]


def test_empty_log_starts_at_genesis(tmp_path: Path) -> None:
    log = LoadLog(tmp_path / "load-log.jsonl")
    log.path.write_bytes(b"")
    first = log.append("verified")
    assert first["seq"] == 1 and first["prev"] == GENESIS


def test_read_reports_a_non_utf8_line_as_a_broken_chain(log: LoadLog) -> None:
    with log.path.open("ab") as handle:
        handle.write(b"\xff\n")
    state = log.read()
    assert not state.intact and state.problem == "line 3: not UTF-8"
    assert [r["seq"] for r in state.records] == [1, 2]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("[" * 100000 + "]" * 100000, id="deep"),
        "[1]",
        '"text"',
        '{"prev": "' + GENESIS + '", "x": "\\udcff", "hash": "' + "0" * 64 + '"}',
    ],
)
def test_verify_chain_reports_bad_lines_without_raising(line: str) -> None:
    state = verify_chain([line])
    assert not state.intact and state.problem is not None and state.problem.startswith("line 1:")
    assert not verify_chain([line.encode("utf-8", "surrogatepass")]).intact


def test_lone_surrogates_are_logged_as_escapes(tmp_path: Path) -> None:
    log = LoadLog(tmp_path / "load-log.jsonl")
    name = b"pkg/x\xff.txt".decode("utf-8", "surrogateescape")  # what os.fsdecode gives
    record = log.append(
        "refused",
        reason=f"{name} is not in the distribution's RECORD",
        files=[name, (name,)],
        detail={name: {"nested": [name]}},
    )
    assert record["reason"] == "pkg/x\\udcff.txt is not in the distribution's RECORD"
    assert record["files"] == ["pkg/x\\udcff.txt", ("pkg/x\\udcff.txt",)]
    assert record["detail"] == {"pkg/x\\udcff.txt": {"nested": ["pkg/x\\udcff.txt"]}}
    log.path.read_bytes().decode("utf-8")  # the file stays valid UTF-8
    state = log.read()
    assert state.intact and state.records[0]["reason"] == record["reason"]
    assert log.append("verified")["seq"] == 2


def test_valid_strings_keep_the_released_digest(tmp_path: Path) -> None:
    log = LoadLog(tmp_path / "load-log.jsonl")
    text = "é ☃ \U0001f512 line\u2028separator \x85 nel"
    record = log.append("verified", plugin=text, items=["a", text], meta={"k": text})
    unhashed = {k: v for k, v in record.items() if k != "hash"}
    assert record["hash"] == _original_digest(unhashed)
    assert record["plugin"] == text
    # U+2028 / U+0085 are written raw (ensure_ascii=False): they must not split the record
    state = log.read()
    assert state.intact and len(state.records) == 1 and state.records[0]["plugin"] == text


def test_a_log_written_before_the_fix_still_verifies(tmp_path: Path) -> None:
    prev, lines = GENESIS, []
    for seq in (1, 2):
        record: dict[str, object] = {"seq": seq, "time": 1.5, "prev": prev, "event": "verified",
                                     "plugin": "crypto-ü"}
        record["hash"] = prev = _original_digest(record)
        lines.append(json.dumps(record, sort_keys=True, ensure_ascii=False))
    path = tmp_path / "load-log.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = LoadLog(path)
    assert log.read().intact
    assert log.append("verified")["prev"] == prev
    assert log.read().intact


# ------------------------------------------------------------------------ provenance store (#9)
def _record(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "format": 1,
        "distribution": "enkrypted-p2p",
        "version": "0.1.0",
        "slot": "p2p",
        "wheel_filename": "enkrypted_p2p-0.1.0-py3-none-any.whl",
        "wheel_sha256": "ab" * 32,
        "index": "http://127.0.0.1:8080/",
        "tuf_role": "p2p",
        "target_path": "plugins/p2p/enkrypted_p2p-0.1.0-py3-none-any.whl",
        "installed_at": "2026-11-25T12:00:00Z",
        "revoked": None,
        "provenance": {"version": 1, "attestation_bundles": []},
    }
    doc.update(changes)
    return doc


def _store(tmp_path: Path, doc: object) -> ProvenanceStore:
    store = ProvenanceStore(tmp_path)
    store.root.mkdir()
    (store.root / "enkrypted-p2p.json").write_text(json.dumps(doc), encoding="utf-8")
    return store


def test_a_good_record_round_trips(tmp_path: Path) -> None:
    store = ProvenanceStore(tmp_path)
    good = _record(revoked={"at": "2026-11-26T00:00:00Z", "reason": "gone"})
    del good["format"]
    record = StoredProvenance(**good)  # type: ignore[arg-type]
    store.put(record)
    assert store.get("Enkrypted_P2P") == record
    assert store.all() == [record]


@pytest.mark.parametrize(
    "changes",
    [
        {"revoked": "CVE-1"},
        {"revoked": {}},
        {"revoked": {"reason": 7}},
        {"revoked": ["x"]},
        {"wheel_sha256": 7},
        {"wheel_sha256": None},
        {"wheel_sha256": "AB" * 32},
        {"wheel_sha256": "ab" * 31},
        {"wheel_sha256": "zz" * 32},
        {"wheel_filename": None},
        {"wheel_filename": ""},
        {"distribution": None},
        {"version": 1},
        {"slot": ""},
        {"index": ["x"]},
        {"tuf_role": None},
        {"target_path": {}},
        {"installed_at": 0},
        {"provenance": None},
        {"provenance": []},
        {"provenance": "{}"},
        {"distribution": "enkrypted-crypto"},  # a record moved to another dist's file
        {"extra": 1},
    ],
)
def test_malformed_records_are_refused(tmp_path: Path, changes: dict[str, object]) -> None:
    store = _store(tmp_path, _record(**changes))
    with pytest.raises(errors.ShellUsageError, match=r"enkrypted-p2p\.json"):
        store.get("enkrypted-p2p")


@pytest.mark.parametrize("field", ["wheel_sha256", "wheel_filename", "provenance", "slot"])
def test_missing_fields_are_refused(tmp_path: Path, field: str) -> None:
    doc = _record()
    del doc[field]
    with pytest.raises(errors.ShellUsageError, match=field):
        _store(tmp_path, doc).get("enkrypted-p2p")


def test_missing_revoked_means_not_revoked(tmp_path: Path) -> None:
    doc = _record()
    del doc["revoked"]
    record = _store(tmp_path, doc).get("enkrypted-p2p")
    assert record is not None and record.revoked is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"[" * 100000 + b"]" * 100000, id="deep"),  # RecursionError
        b'{"format": 1, "distribution": "\xff"}',  # not UTF-8
        b"not json",
        b"[]",
    ],
)
def test_unreadable_records_are_refused(tmp_path: Path, data: bytes) -> None:
    store = ProvenanceStore(tmp_path)
    store.root.mkdir()
    (store.root / "enkrypted-p2p.json").write_bytes(data)
    with pytest.raises(errors.ShellUsageError, match=r"enkrypted-p2p\.json"):
        store.get("enkrypted-p2p")


def test_names_outside_the_store_have_no_record(tmp_path: Path) -> None:
    store = ProvenanceStore(tmp_path)
    store.root.mkdir()
    (store.root / ".tmp-abc.json").write_text("{}")  # a crashed writer's temp file
    assert store.get("a/b") is None
    assert store.all() == []


# ------------------------------------------------------------------------------ trust.toml (#10)
def test_trust_policy_deeply_nested() -> None:
    with pytest.raises(errors.ShellUsageError, match="nested too deeply"):
        TrustPolicy.from_toml(DEEP_TOML, source="t.toml")


def test_trust_policy_not_utf8() -> None:
    with pytest.raises(errors.ShellUsageError, match="t.toml: not UTF-8"):
        TrustPolicy.from_toml(b"version = 1\n\xff\n", source="t.toml")
    with pytest.raises(errors.ShellUsageError, match="not UTF-8"):
        TrustPolicy.from_toml("x = '\udcff'\n", source="t.toml")
    assert TrustPolicy.from_toml(b"version = 1\n").slots == {}


def test_pem_key_of_unknown_algorithm() -> None:
    # SubjectPublicKeyInfo with algorithm OID 1.2.3.4: cryptography raises UnsupportedAlgorithm
    der = bytes([0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2A, 0x03, 0x04, 0x03, 0x21, 0x00])
    der += b"\x01" * 32
    pem = "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PUBLIC KEY-----\n"
    with pytest.raises(errors.ShellUsageError, match="neither 64 hex chars nor a PEM public key"):
        PublisherKey.from_text(pem, source="t.toml")


def test_tuf_targets_with_bad_shapes() -> None:
    for data in (
        b"[" * 100000 + b"]" * 100000,
        json.dumps({"signed": {"delegations": {"keys": {"k": {"keytype": "ed25519",
                   "keyval": {"public": "ab"}}}, "roles": [{"name": "p2p", "keyids": ["k"]}]}}}).encode(),
        json.dumps({"signed": {"delegations": {"keys": [], "roles": 5}}}).encode(),
    ):
        with pytest.raises(errors.ShellUsageError, match="targets metadata is malformed"):
            TrustPolicy.from_tuf_targets(data)


# ------------------------------------------------------------------------------------ lock (#10)
@pytest.mark.parametrize(
    "text",
    [
        'lock-version = "2.0"\npackages = 5\n',
        'lock-version = "2.0"\npackages = "crypto"\n',
        'lock-version = "2.0"\npackages = {slot = "crypto"}\n',
        'lock-version = "2.0"\npackages = [5]\n',
        'lock-version = "2.0"\ncreated-by = 3\n',
        pytest.param('lock-version = "2.0"\n' + DEEP_TOML, id="deep"),
        'lock-version = "2.0"\nlibraries = 5\n',
        'lock-version = "2.0"\n[[libraries]]\nname = "x"\n',
        'lock-version = "2.0"\n[[libraries]]\nname = "x"\nversion = "1"\nfiles-digest = "sha256:00"\n[libraries.files]\n"x/__init__.py" = "abc"\n',
        'lock-version = "2.0"\n[[libraries]]\nname = "x"\nversion = "1"\nfiles-digest = "sha256:00"\nfiles = {"x.py" = 5}\n',
        'lock-version = "1.0"\n',
        b'lock-version = "2.0"\n\xff\n',
    ],
)
def test_malformed_locks_are_usage_errors(text: str | bytes) -> None:
    with pytest.raises(errors.ShellUsageError, match="l.toml"):
        parse_lock(text, source="l.toml")


def test_lock_accepts_bytes() -> None:
    assert parse_lock(b'lock-version = "2.0"\n', source="l.toml").entries == {}


# ------------------------------------------------------------------------------------- TUF (#10)
@pytest.mark.parametrize(
    "root",
    [b"not json", b"{}", b'{"signed": {"_type": "root"}}', pytest.param(b"[" * 100000, id="deep")],
)
def test_first_use_root_that_is_not_tuf_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: bytes
) -> None:
    from enkrypted_shell._install import tuf_client

    monkeypatch.setattr(tuf_client, "_fetch_first_root", lambda index, fetcher: root)
    said: list[str] = []
    with pytest.raises(errors.ProvenanceError, match="first-use TUF root") as caught:
        tuf_client.connect("http://127.0.0.1:9/", tmp_path, None, tmp_path / "t", said.append,
                           pinned_only=False)
    assert caught.value.exit_code == 16
    assert said == []
    assert not (tmp_path / "tuf").exists()  # nothing pinned


# ------------------------------------------------------------------------------ report (#10)
def test_graph_report_shows_an_unparsable_requires_dist() -> None:
    from enkrypted_shell._cli.report import graph_report
    from enkrypted_shell._pipeline.plan import Plan

    manifest = SimpleNamespace(contract="1.0", requires={}, shell="", capabilities={})
    cand = SimpleNamespace(
        name="p2p-x", dist_name="enkrypted-p2p", version="0.1.0", manifest=manifest,
        label="p2p-x 0.1.0", requires=("foo (((", "packaging>=20", "bar; os_name == 'nt'"),
    )
    planned = SimpleNamespace(
        candidate=cand, digest="sha256:00", integrity=None, reason="only candidate",
        provenance=None, stored=None, sigstore_signers=(), dependency_pins=(),
    )
    data, text = graph_report(Plan({"p2p": planned}, None))  # type: ignore[dict-item]
    shared = data["slots"]["p2p"]["shared"]
    assert shared[0] == {"requirement": "foo (((", "installed": None, "unparsable": True}
    assert shared[1]["requirement"] == "packaging>=20" and shared[1]["installed"]
    assert len(shared) == 2
    assert "shared 'foo (((': UNPARSABLE Requires-Dist" in text
