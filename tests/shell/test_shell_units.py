"""Fast unit tests of the shell's pure parts (no environments, no wheels)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

import enkrypted_shell
from enkrypted_shell import errors
from enkrypted_shell._pipeline.discover import Candidate, Discovery
from enkrypted_shell._pipeline.integrity import content_digest, verify_distribution
from enkrypted_shell._pipeline.lock import Lock, LockEntry, check_locked, dump_lock, parse_lock
from enkrypted_shell._pipeline.manifest import ContractVersion, parse_manifest
from enkrypted_shell._pipeline.select import select
from enkrypted_shell._pipeline.skew import check_skew
from enkrypted_shell._state.loadlog import LoadLog, verify_chain

MANIFEST = b"""
[plugin]
name = "crypto-x"
slot = "crypto"
contract = "1.2"
shell = ">=0.1,<1"
commands = ["hello"]
[requires]
p2p = ">=1.0,<2"
[capabilities]
primitives = ["x25519"]
"""


def test_public_surface_is_pinned():
    assert sorted(enkrypted_shell.__all__) == sorted(
        ["CONTRACT_VERSIONS", "SLOTS", "AppContext", "ExitCode", "ShellError", "__version__", "hookimpl"]
    )


def test_exit_codes_are_distinct():
    codes = [e.value for e in errors.ExitCode]
    assert len(codes) == len(set(codes))


def test_manifest_parses():
    m = parse_manifest(MANIFEST, source="t")
    assert (m.name, m.slot, m.contract, m.commands) == ("crypto-x", "crypto", ContractVersion(1, 2), ("hello",))
    assert m.requires["p2p"] == SpecifierSet(">=1.0,<2")
    assert m.capabilities["primitives"] == frozenset({"x25519"})


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (('slot = "crypto"', 'slot = "storage"'), "plugin.slot"),
        (('contract = "1.2"', 'contract = "1"'), "MAJOR.MINOR"),
        (('shell = ">=0.1,<1"', 'shell = "newest"'), "PEP 440"),
        (('p2p = ">=1.0,<2"', 'crypto = ">=1"'), "only other slots"),
        (('name = "crypto-x"', 'name = "Crypto X"'), "lowercase"),
        (("[plugin]", "[plugins]"), "[plugin]"),
    ],
)
def test_manifest_rejects_bad_fields(edit, words):
    bad = MANIFEST.replace(edit[0].encode(), edit[1].encode())
    with pytest.raises(errors.ManifestError, match=None) as info:
        parse_manifest(bad, source="t")
    assert words in str(info.value)


def test_manifest_rejects_oversize_and_non_toml():
    with pytest.raises(errors.ManifestError):
        parse_manifest(b"x" * 70_000, source="t")
    with pytest.raises(errors.ManifestError):
        parse_manifest(b"[plugin\n", source="t")


def test_contract_rule_same_major_and_no_newer_minor():
    spoken = ContractVersion(1, 1)
    assert ContractVersion(1, 0).served_by(spoken) and ContractVersion(1, 1).served_by(spoken)
    assert not ContractVersion(1, 2).served_by(spoken)  # needs members this shell does not know
    assert not ContractVersion(0, 9).served_by(spoken) and not ContractVersion(2, 0).served_by(spoken)


# ------------------------------------------------------------------ fake candidates for pure rules
@dataclass
class FakeDist:
    name: str
    version: str
    requires: list[str] = field(default_factory=list)

    @property
    def metadata(self):
        return {"Name": self.name}


def cand(name, slot, contract="1.0", dist=None, version="0.1.0", requires=None, deps=()):
    text = f'[plugin]\nname="{name}"\nslot="{slot}"\ncontract="{contract}"\nshell=">=0.1"\n'
    if requires:
        text += "[requires]\n" + "".join(f'{k}="{v}"\n' for k, v in requires.items())
    manifest = parse_manifest(text.encode(), source=name)
    fake = FakeDist(dist or f"dist-{name}", version, list(deps))
    return Candidate(None, fake, manifest, False, fake.name, version, tuple(deps))  # type: ignore[arg-type]


ALL = Discovery((cand("c1", "crypto"), cand("c2", "crypto"), cand("p", "p2p"), cand("u", "ui")), ())


def test_select_single_choice_and_ambiguity():
    with pytest.raises(errors.AmbiguousPluginError) as info:
        select(ALL, ["crypto"], choices={})
    assert "c1" in str(info.value) and "c2" in str(info.value)
    plan = select(ALL, ["crypto", "p2p"], choices={"crypto": ("c2", "--crypto")})
    assert plan["crypto"].candidate.name == "c2" and plan["crypto"].reason == "chosen by --crypto"
    assert plan["p2p"].reason == "only candidate"
    plan = select(ALL, ["crypto"], choices={"crypto": ("dist-c1", "config")})
    assert plan["crypto"].candidate.name == "c1"
    with pytest.raises(errors.NoPluginError):
        select(ALL, ["crypto"], choices={"crypto": ("zz", "--crypto")})
    with pytest.raises(errors.NoPluginError):
        select(Discovery((), ()), ["ui"], choices={})


def test_select_from_lock_and_conflicting_choice():
    plan = select(ALL, ["crypto"], choices={}, locked={"crypto": "dist-c2"})
    assert plan["crypto"].candidate.name == "c2" and "lock" in plan["crypto"].reason
    with pytest.raises(errors.LockMismatchError):
        select(ALL, ["crypto"], choices={"crypto": ("c1", "--crypto")}, locked={"crypto": "dist-c2"})
    with pytest.raises(errors.LockMismatchError):
        select(ALL, ["ui"], choices={}, locked={"crypto": "dist-c2"})


def test_skew_rules_name_versions_and_fix():
    plan = {
        "crypto": cand("c", "crypto", contract="1.3", deps=["somelib>=2"]),
        "p2p": cand("p", "p2p", contract="2.0"),
        "ui": cand("u", "ui", requires={"crypto": ">=1.4"}),
    }
    with pytest.raises(errors.SkewError) as info:
        check_skew(plan, shell_version="0.1.0", contracts={"crypto": "1.3", "p2p": "1.0", "ui": "2.0"},
                   installed={"somelib": "1.9"}.get)
    text = str(info.value)
    assert "p (dist-p 0.1.0) implements p2p contract 2.0, the shell speaks 1.0" in text
    assert "install a newer enkrypted-shell that speaks p2p contract 2.0" in text
    assert "u (dist-u 0.1.0) implements ui contract 1.0, the shell speaks 2.0" in text
    assert "install a newer dist-u built for ui contract 2.x" in text
    assert "requires crypto contract >=1.4" in text and "implements 1.3" in text
    assert "requires somelib>=2, installed is somelib 1.9" in text
    assert info.value.exit_code == errors.ExitCode.SKEW


def test_skew_passes_and_skips_inapplicable_markers():
    plan = {"crypto": cand("c", "crypto", contract="1.0",
                           deps=["lib>=1", 'winonly>=9; sys_platform == "win32"', 'x; extra == "dev"'])}
    check_skew(plan, shell_version="0.1.0", contracts={"crypto": "1.1"}, installed={"lib": "1.0"}.get)
    with pytest.raises(errors.SkewError, match="not installed"):
        check_skew(plan, shell_version="0.1.0", contracts={"crypto": "1.0"}, installed={}.get)


def test_lock_round_trip_and_drift():
    entry = LockEntry("crypto", "c", "dist-c", "1.0", "sha256:aa", wheel_sha256="ff", index="http://x/simple/")
    lock = parse_lock(dump_lock(Lock({"crypto": entry}, "t")), source="t")
    assert lock.entries["crypto"] == entry
    same = {"wheel_sha256": "ff", "index": "http://x/simple/"}
    check_locked(entry, plugin="c", name="dist-c", version="1.0", digest="sha256:aa", **same)
    with pytest.raises(errors.LockMismatchError, match=r"version 1.1 \(locked 1.0\)"):
        check_locked(entry, plugin="c", name="dist-c", version="1.1", digest="sha256:aa", **same)
    with pytest.raises(errors.LockMismatchError, match=r"wheel sha256 none \(unsigned\) \(locked ff\)"):
        check_locked(entry, plugin="c", name="dist-c", version="1.0", digest="sha256:aa")
    pinned = LockEntry("crypto", "c", "dist-c", "1.0", "sha256:aa", dependencies=("base==1 sha256:bb",))
    assert parse_lock(dump_lock(Lock({"crypto": pinned})), source="t").entries["crypto"] == pinned
    with pytest.raises(errors.LockMismatchError, match="plugin dependencies"):
        check_locked(pinned, plugin="c", name="dist-c", version="1.0", digest="sha256:aa",
                     dependencies=("base==1 sha256:cc",))
    with pytest.raises(errors.ShellUsageError):
        parse_lock('lock-version = "9"', source="t")
    with pytest.raises(errors.ShellUsageError):
        parse_lock('lock-version = "2.0"\n[[packages]]\nslot = "crypto"\n', source="t")


def test_load_log_chain(tmp_path):
    log = LoadLog(tmp_path / "log.jsonl")
    for i in range(3):
        log.append("verified", plugin=f"p{i}")
    state = log.read()
    assert state.intact and [r["seq"] for r in state.records] == [1, 2, 3]
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert not verify_chain([lines[0], lines[2]]).intact  # a removed record
    forged = json.loads(lines[1])
    forged["plugin"] = "evil"
    bad = verify_chain([lines[0], json.dumps(forged), lines[2]])
    assert not bad.intact and bad.problem == "line 2: hash chain broken"
    (tmp_path / "log.jsonl").write_text("\n".join(lines) + "\nnot json\n")
    with pytest.raises(errors.LoadLogCorruptError):
        log.append("verified")


# ------------------------------------------------------------------ integrity on a synthetic install
def _b64(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_install(site: Path, files: dict[str, bytes]) -> metadata.Distribution:
    info = site / "demo_pkg-1.0.dist-info"
    info.mkdir(parents=True)
    files = {**files, "demo_pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n"}
    rows = []
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
        rows.append(f"{rel},sha256={_b64(data)},{len(data)}")
    rows += ["demo_pkg-1.0.dist-info/RECORD,,", "demo_pkg/__pycache__/a.cpython-311.pyc,,"]
    (site / "demo_pkg" / "__pycache__").mkdir()
    (site / "demo_pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"whatever")
    (info / "RECORD").write_text("\n".join(rows) + "\n")
    return metadata.PathDistribution(info)


def test_integrity_checks_every_file(tmp_path):
    dist = make_install(tmp_path, {"demo_pkg/__init__.py": b"", "demo_pkg/a.py": b"x = 1\n"})
    report = verify_distribution(dist)
    assert report.files_checked == 3
    assert report.content_digest == content_digest(
        [(str(f), f.hash.value) for f in dist.files if f.hash]
    )
    (tmp_path / "demo_pkg" / "a.py").write_bytes(b"x = 2\n")
    with pytest.raises(errors.IntegrityError, match="demo_pkg/a.py was changed"):
        verify_distribution(dist)
    (tmp_path / "demo_pkg" / "a.py").write_bytes(b"x = 1\n")
    (tmp_path / "demo_pkg" / "sub").mkdir()
    (tmp_path / "demo_pkg" / "sub" / "b.py").write_bytes(b"")
    with pytest.raises(errors.IntegrityError, match="demo_pkg/sub/b.py is not in the distribution's RECORD"):
        verify_distribution(dist)
    (tmp_path / "demo_pkg" / "sub" / "b.py").unlink()
    (tmp_path / "demo_pkg" / "a.pyc").write_bytes(b"sourceless bytecode is importable")
    with pytest.raises(errors.IntegrityError, match="a.pyc"):
        verify_distribution(dist)


def test_integrity_refuses_pth_and_missing_hash(tmp_path):
    dist = make_install(tmp_path / "one", {"demo_pkg/__init__.py": b"", "demo.pth": b"import os\n"})
    with pytest.raises(errors.IntegrityError, match=r"\.pth"):
        verify_distribution(dist)
    dist = make_install(tmp_path / "two", {"demo_pkg/__init__.py": b""})
    record = tmp_path / "two" / "demo_pkg-1.0.dist-info" / "RECORD"
    record.write_text(record.read_text() + "demo_pkg/extra.py,,\n")
    (tmp_path / "two" / "demo_pkg" / "extra.py").write_text("")
    with pytest.raises(errors.IntegrityError, match="no hash"):
        verify_distribution(dist)


def test_content_digest_ignores_installer_files():
    base = [("pkg/a.py", "h1"), ("pkg-1.dist-info/METADATA", "h2")]
    noise = [("pkg-1.dist-info/INSTALLER", "h3"), ("pkg-1.dist-info/direct_url.json", "h4"),
             ("../../../bin/tool", "h5"), ("pkg/__pycache__/a.cpython-311.pyc", "h6")]
    assert content_digest(base) == content_digest(list(reversed(base)) + noise)
    assert content_digest(base) != content_digest([("pkg/a.py", "h9"), base[1]])


def test_load_log_appends_read_only_the_tail_and_keep_the_chain(tmp_path):
    log = LoadLog(tmp_path / "log.jsonl")
    for i in range(120):  # records span many 4 KiB chunks
        log.append("verified", plugin=f"p{i}", padding="x" * (i % 97))
    state = log.read()
    assert state.intact and [r["seq"] for r in state.records] == list(range(1, 121))


# ------------------------------------------------------------------ skew verdicts (memo)
REQUIREMENT_LINES = [
    "cryptography>=45", "enkrypted-shell<1,>=0.3", "PyNaCl (>=1.5)", "a.b_c-d[x,y]>=1; python_version >= '3.11'",
    "  spaced >= 2", "x @ https://example.invalid/x.whl", 'winonly>=9; sys_platform == "win32"', "Z9",
]


@pytest.mark.parametrize("line", REQUIREMENT_LINES)
def test_requirement_name_matches_packaging(line):
    from packaging.requirements import Requirement

    from enkrypted_shell._pipeline.skew import requirement_name

    assert requirement_name(line) == Requirement(line).name


def test_skew_verdicts_are_keyed_by_every_input(tmp_path):
    from enkrypted_shell._pipeline.skew import SkewVerdicts

    plan = {"crypto": cand("c", "crypto", contract="1.0", deps=["lib>=1"])}
    contracts = {"crypto": "1.1"}
    installed = {"lib": "1.0"}
    checked = check_skew(plan, shell_version="0.1.0", contracts=contracts, installed=installed.get)
    assert checked == {"lib": "1.0"}
    verdicts = SkewVerdicts(tmp_path)
    key = SkewVerdicts.key(plan, {"crypto": "sha256:aa"}, shell_version="0.1.0", contracts=contracts)
    assert not verdicts.passed(key, installed.get)
    verdicts.remember(key, checked)
    assert verdicts.passed(key, installed.get)
    assert not verdicts.passed(key, {"lib": "0.9"}.get)  # the library changed since
    assert not verdicts.passed(key, {}.get)  # ... or is gone
    for other in (
        SkewVerdicts.key(plan, {"crypto": "sha256:bb"}, shell_version="0.1.0", contracts=contracts),
        SkewVerdicts.key(plan, {"crypto": "sha256:aa"}, shell_version="0.2.0", contracts=contracts),
        SkewVerdicts.key(plan, {"crypto": "sha256:aa"}, shell_version="0.1.0", contracts={"crypto": "1.2"}),
    ):
        assert other != key and not verdicts.passed(other, installed.get)
    for garbage in (b"", b"not json", b"[]", b'{"format": 1, "entries": []}', b"[" * 100000):
        verdicts.path.write_bytes(garbage)
        assert not verdicts.passed(key, installed.get)  # unreadable: a miss, never a pass
    verdicts.remember(key, checked)
    assert verdicts.passed(key, installed.get)


def test_bad_manifest_range_is_a_manifest_error_when_checked():
    plan = {"crypto": cand("c", "crypto", contract="1.1")}
    bad = plan["crypto"]._replace(manifest=plan["crypto"].manifest._replace(shell="not a range"))
    with pytest.raises(errors.ManifestError, match="not a PEP 440 specifier"):
        check_skew({"crypto": bad}, shell_version="0.1.0", contracts={"crypto": "1.0"}, installed={}.get)
    with pytest.raises(errors.ManifestError, match="not a PEP 440"):
        parse_manifest(b'[plugin]\nname="x"\nslot="ui"\ncontract="1.0"\nshell="nope"\n', source="m")


def test_every_bound_lives_in_the_limits_objects():
    """No module of the shell keeps its own MAX_* constant; the PDU cap is defined once."""
    import re
    from pathlib import Path

    import enkrypted_shell
    from enkrypted_shell.limits import LIMITS, WIRE_LIMITS

    root = Path(enkrypted_shell.__file__).parent
    own = [
        f"{path.relative_to(root)}: {line.strip()}"
        for path in root.rglob("*.py")
        for line in path.read_text().splitlines()
        if re.match(r"\s*_?MAX_[A-Z_]+\s*(:[^=]*)?=", line)
    ]
    assert own == []
    assert WIRE_LIMITS.max_pdu_bytes == 16 * 1024 * 1024
    assert LIMITS.manifest_bytes == 64 * 1024 and LIMITS._fields  # a NamedTuple: immutable
