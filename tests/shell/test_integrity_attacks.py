"""Attacks on load-time verification by someone who can write to site-packages but holds no
signing key (docs/trust-model.md threat model), and the verified import loader (ADR 0005)."""

from __future__ import annotations

import base64
import hashlib
import importlib
import os
import sys
import uuid
from importlib import metadata
from pathlib import Path

import pytest

from enkrypted_shell import errors
from enkrypted_shell._pipeline import importer
from enkrypted_shell._pipeline.integrity import content_digest, verify_distribution


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def install(site: Path, package: str, files: dict[str, bytes], extra_rows: list[str] = ()) -> metadata.Distribution:
    """A wheel-like install of ``package`` in ``site`` with pip's hash-less bytecode rows."""
    info = site / f"{package}-1.0.dist-info"
    info.mkdir(parents=True)
    files = {**files, f"{info.name}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n".encode()}
    rows = []
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
        rows.append(f"{rel},sha256={_b64(data)},{len(data)}")
    cache = site / package / "__pycache__"
    cache.mkdir(parents=True, exist_ok=True)
    for rel in files:
        if rel.startswith(f"{package}/") and rel.endswith(".py") and rel.count("/") == 1:
            pyc = f"{package}/__pycache__/{Path(rel).stem}.cpython-311.pyc"
            (site / pyc).write_bytes(b"compiled by the installer")
            rows.append(f"{pyc},,")
    rows += [f"{info.name}/RECORD,,", *extra_rows]
    (info / "RECORD").write_text("\n".join(rows) + "\n")
    return metadata.PathDistribution(info)


@pytest.fixture
def pkg() -> str:
    return f"vpkg_{uuid.uuid4().hex[:10]}"


BASE = {"__init__.py": b"", "plugin.py": b"WHO = 'genuine'\n"}


def _files(pkg: str, extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    return {f"{pkg}/{k}": v for k, v in {**BASE, **(extra or {})}.items()}


def test_genuine_install_verifies(tmp_path, pkg):
    dist = install(tmp_path, pkg, _files(pkg))
    report = verify_distribution(dist)
    assert report.top_level == (pkg,)
    assert set(report.sources) == {str((tmp_path / pkg / n).resolve()) for n in BASE}


def test_symlinked_folder_inside_a_package_is_refused(tmp_path, pkg):
    dist = install(tmp_path / "site", pkg, _files(pkg))
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "__init__.py").write_text("WHO = 'attacker'\n")
    (tmp_path / "site" / pkg / "plugin_dir").symlink_to(evil, target_is_directory=True)
    with pytest.raises(errors.IntegrityError, match="symlink"):
        verify_distribution(dist)


def test_bytecode_row_pointing_at_a_new_package_is_refused(tmp_path, pkg):
    site = tmp_path / "site"
    dist = install(site, pkg, _files(pkg))
    shadow = site / pkg / "plugin"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("WHO = 'attacker'\n")
    pyc = site / pkg / "__pycache__" / "plugin.cpython-311.pyc"
    pyc.unlink()
    pyc.symlink_to(shadow / "__init__.py")
    with pytest.raises(errors.IntegrityError) as info:
        verify_distribution(dist)
    assert "plugin/__init__.py" in str(info.value) or "symlink" in str(info.value)


@pytest.mark.parametrize("row_path", ["../site/{pkg}/plugin/__init__.py", "{pkg}/__pycache__/../plugin/__init__.py"])
def test_record_rows_that_escape_the_digest_are_refused(tmp_path, pkg, row_path):
    site = tmp_path / "site"
    evil = b"WHO = 'attacker'\n"
    row = f"{row_path.format(pkg=pkg)},sha256={_b64(evil)},{len(evil)}"
    dist = install(site, pkg, _files(pkg), extra_rows=[row])
    (site / pkg / "plugin").mkdir()
    (site / pkg / "plugin" / "__init__.py").write_bytes(evil)
    with pytest.raises(errors.IntegrityError, match="non-canonical|leads back"):
        verify_distribution(dist)


def test_hashed_non_bytecode_in_pycache_is_refused(tmp_path, pkg):
    data = b"x = 1\n"
    dist = install(tmp_path, pkg, _files(pkg), extra_rows=[f"{pkg}/__pycache__/x.py,sha256={_b64(data)},6"])
    (tmp_path / pkg / "__pycache__" / "x.py").write_bytes(data)
    with pytest.raises(errors.IntegrityError, match="not bytecode"):
        verify_distribution(dist)


def test_every_file_inside_the_package_is_in_the_content_digest(tmp_path, pkg):
    dist = install(tmp_path, pkg, _files(pkg, {"sub/deep.py": b"y = 2\n"}))
    report = verify_distribution(dist)
    rows = [r.split(",") for r in (tmp_path / f"{pkg}-1.0.dist-info" / "RECORD").read_text().splitlines()]
    wheel_rows = [(p, h.removeprefix("sha256=")) for p, h, _ in rows if h]
    assert report.content_digest == content_digest(wheel_rows)
    assert f"{pkg}/sub/deep.py" in {p for p, _ in wheel_rows}


def test_non_utf8_file_name_is_refused_with_a_message(tmp_path, pkg):
    dist = install(tmp_path, pkg, _files(pkg))
    name = os.fsdecode(b"bad\xff.py")
    (tmp_path / pkg / name).write_bytes(b"")
    with pytest.raises(errors.IntegrityError, match=r"bad\\udcff\.py|bad\\xff\.py") as info:
        verify_distribution(dist)
    str(info.value).encode("utf-8")  # safe to log


# --------------------------------------------------------------------------- verified imports
@pytest.fixture
def loaded(tmp_path, pkg, monkeypatch):
    """``pkg`` verified and importable from ``tmp_path/site`` through the verified importer."""
    site = tmp_path / "site"
    dist = install(site, pkg, _files(pkg, {"late.py": b"LATE = 'genuine'\n"}))
    report = verify_distribution(dist)
    monkeypatch.syspath_prepend(str(site))
    finder = importer.install([report], tmp_path / "bytecode")
    yield site, report
    sys.meta_path[:] = [f for f in sys.meta_path if f is not finder]
    for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
        del sys.modules[name]


def test_modules_are_compiled_from_the_verified_bytes(loaded, pkg):
    site, _ = loaded
    (site / pkg / "plugin.py").write_text("WHO = 'swapped after verification'\n")
    module = importlib.import_module(f"{pkg}.plugin")
    assert module.WHO == "genuine"
    assert module.__file__ == str(site / pkg / "plugin.py")


def test_a_lazy_import_after_a_swap_still_gets_the_verified_code(loaded, pkg):
    site, _ = loaded
    importlib.import_module(pkg)
    (site / pkg / "late.py").write_text("LATE = 'attacker'\n")
    assert importlib.import_module(f"{pkg}.late").LATE == "genuine"


def test_a_file_added_after_verification_is_not_imported(loaded, pkg):
    site, _ = loaded
    (site / pkg / "added.py").write_text("raise SystemExit('added')\n")
    with pytest.raises(ImportError, match="not verified"):
        importlib.import_module(f"{pkg}.added")


def test_a_shadowing_copy_is_not_imported(loaded, pkg, tmp_path, monkeypatch):
    shadow = tmp_path / "shadow"
    (shadow / pkg).mkdir(parents=True)
    (shadow / pkg / "__init__.py").write_text("raise SystemExit('shadow')\n")
    monkeypatch.syspath_prepend(str(shadow))
    importlib.invalidate_caches()
    with pytest.raises(ImportError, match="would load"):
        importlib.import_module(pkg)


def test_code_cache_is_content_addressed(loaded, pkg, tmp_path):
    importlib.import_module(f"{pkg}.plugin")
    entries = list((tmp_path / "bytecode").rglob("*.code"))
    assert entries, "compiled code is cached under HOME/bytecode"
    assert not any((tmp_path / "site" / pkg / "__pycache__").glob("plugin.*.pyc.new"))
    # A corrupt cache entry is ignored, never trusted as code.
    for entry in entries:
        entry.write_bytes(b"garbage")
    del sys.modules[f"{pkg}.plugin"]
    assert importlib.import_module(f"{pkg}.plugin").WHO == "genuine"


# ------------------------------------------- RECORD rows that escape the content digest or the walk
def test_hidden_first_component_rows_are_refused(tmp_path, pkg):
    site = tmp_path / "site"
    evil = b"WHO = 'attacker'\n"
    dist = install(site, pkg, _files(pkg), extra_rows=[f"..x/plugin/__init__.py,sha256={_b64(evil)},{len(evil)}"])
    (site / pkg / "plugin").mkdir()
    (site / pkg / "plugin" / "__init__.py").write_bytes(evil)
    (site / "..x").symlink_to(site / pkg, target_is_directory=True)
    with pytest.raises(errors.IntegrityError, match="hidden first component|is a symlink"):
        verify_distribution(dist)
    (site / "..x").unlink()
    (site / "..x" / "plugin").mkdir(parents=True)
    (site / "..x" / "plugin" / "__init__.py").write_bytes(evil)
    with pytest.raises(errors.IntegrityError, match="hidden first component"):
        verify_distribution(dist)


def test_a_symlinked_top_level_folder_is_refused(tmp_path, pkg):
    site = tmp_path / "site"
    real = tmp_path / "elsewhere" / pkg
    dist = install(tmp_path / "elsewhere", pkg, _files(pkg))
    site.mkdir()
    (site / pkg).symlink_to(real, target_is_directory=True)
    info = site / f"{pkg}-1.0.dist-info"
    info.mkdir()
    for f in (tmp_path / "elsewhere" / f"{pkg}-1.0.dist-info").iterdir():
        (info / f.name).write_bytes(f.read_bytes())
    with pytest.raises(errors.IntegrityError, match="is a symlink"):
        verify_distribution(metadata.PathDistribution(info))
    assert verify_distribution(dist).top_level == (pkg,)


def test_an_unlistable_folder_is_refused(tmp_path, pkg, monkeypatch):
    dist = install(tmp_path, pkg, _files(pkg, {"sub/__init__.py": b""}))
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("sub"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(errors.IntegrityError, match="cannot list"):
        verify_distribution(dist)


@pytest.fixture
def loaded_namespace(tmp_path, pkg, monkeypatch):
    """``pkg`` has no __init__.py at the top and a folder without one inside."""
    site = tmp_path / "site"
    files = {f"{pkg}/plugin.py": b"WHO = 'genuine'\n", f"{pkg}/nsub/mod.py": b"WHO = 'genuine nsub'\n"}
    info = site / f"{pkg}-1.0.dist-info"
    info.mkdir(parents=True)
    files[f"{info.name}/METADATA"] = f"Metadata-Version: 2.1\nName: {pkg}\nVersion: 1.0\n".encode()
    rows = []
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
        rows.append(f"{rel},sha256={_b64(data)},{len(data)}")
    (info / "RECORD").write_text("\n".join([*rows, f"{info.name}/RECORD,,"]) + "\n")
    report = verify_distribution(metadata.PathDistribution(info))
    monkeypatch.syspath_prepend(str(site))
    finder = importer.install([report], tmp_path / "bytecode")
    yield site, report
    sys.meta_path[:] = [f for f in sys.meta_path if f is not finder]
    for name in [m for m in sys.modules if m == pkg or m.startswith(pkg + ".")]:
        del sys.modules[name]


def test_namespace_packages_are_served_from_verified_folders_only(loaded_namespace, pkg, tmp_path, monkeypatch):
    site, report = loaded_namespace
    assert report.top_level == (pkg,)
    (site / pkg / "plugin.py").write_text("WHO = 'swapped'\n")
    assert importlib.import_module(f"{pkg}.plugin").WHO == "genuine"
    assert importlib.import_module(f"{pkg}.nsub.mod").WHO == "genuine nsub"
    assert list(sys.modules[pkg].__path__) == [str((site / pkg).resolve())]


def test_a_namespace_portion_elsewhere_on_sys_path_is_not_used(loaded_namespace, pkg, tmp_path, monkeypatch):
    other = tmp_path / "other"
    (other / pkg).mkdir(parents=True)
    (other / pkg / "extra.py").write_text("raise SystemExit('portion')\n")
    monkeypatch.syspath_prepend(str(other))
    importlib.invalidate_caches()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"{pkg}.extra")


def test_a_symlinked_module_is_not_imported(loaded, pkg):
    site, _ = loaded
    (site / pkg / "plugin.py").unlink()
    (site / pkg / "plugin.py").symlink_to(site / pkg / "late.py")
    with pytest.raises(ImportError, match="symlink"):
        importlib.import_module(f"{pkg}.plugin")


def test_a_hard_linked_file_of_another_plugin_is_never_read(tmp_path, pkg, monkeypatch):
    site = tmp_path / "site"
    other = f"{pkg}_other"
    mine = verify_distribution(install(site / "a", pkg, _files(pkg)))
    theirs = verify_distribution(install(site / "b", other, _files(other, {"plugin.py": b"WHO = 'other'\n"})))
    monkeypatch.syspath_prepend(str(site / "a"))
    finder = importer.install([mine, theirs], tmp_path / "bytecode")
    try:
        (site / "a" / pkg / "plugin.py").unlink()
        os.link(site / "b" / other / "plugin.py", site / "a" / pkg / "plugin.py")  # the other's file
        importlib.invalidate_caches()
        assert importlib.import_module(f"{pkg}.plugin").WHO == "genuine"  # compiled from its own bytes
    finally:
        sys.meta_path[:] = [f for f in sys.meta_path if f is not finder]
        for name in [m for m in sys.modules if m.startswith(pkg)]:
            del sys.modules[name]


def test_names_of_unverified_plugin_distributions_are_refused(tmp_path, pkg, monkeypatch):
    site = tmp_path / "site"
    install(site, pkg, _files(pkg))
    monkeypatch.syspath_prepend(str(site))
    finder = importer.install([], tmp_path / "bytecode", blocked={pkg: f"{pkg} 1.0"})
    try:
        with pytest.raises(ImportError, match="not verified in this start"):
            importlib.import_module(pkg)
    finally:
        sys.meta_path[:] = [f for f in sys.meta_path if f is not finder]


def test_plugin_dependencies_are_verified_transitively(tmp_path, pkg):
    from enkrypted_shell._pipeline.discover import Candidate
    from enkrypted_shell._pipeline.manifest import parse_manifest
    from enkrypted_shell._pipeline.plan import _verify_plugin_deps

    manifest = parse_manifest(b'[plugin]\nname="x"\nslot="crypto"\ncontract="1.0"\nshell=">=0"\n', source="m")
    names = [f"{pkg}_a", f"{pkg}_b", f"{pkg}_c"]
    cands = []
    for i, name in enumerate(names):
        dist = install(tmp_path / name, name, _files(name))
        requires = (f"{names[i + 1].replace('_', '-')}>=1.0",) if i + 1 < len(names) else ()
        record = (tmp_path / name / f"{name}-1.0.dist-info" / "RECORD").read_text()
        cands.append(Candidate(None, dist, manifest, False, name, "1.0", requires, record))  # type: ignore[arg-type]
    reports = _verify_plugin_deps(cands[0], tuple(cands))
    assert [r.distribution for r in reports] == names[1:]
    (tmp_path / names[2] / names[2] / "plugin.py").write_text("WHO = 'attacker'\n")
    with pytest.raises(errors.IntegrityError, match=f"{names[2]}/plugin.py was changed"):
        _verify_plugin_deps(cands[0], tuple(cands))


# ------------------------------------- namespace packages, dependency plugins, oversized RECORD
def test_resources_of_a_verified_namespace_package(loaded_namespace, pkg):
    import importlib.resources

    importlib.import_module(f"{pkg}.nsub")
    assert importlib.resources.files(f"{pkg}.nsub").joinpath("mod.py").read_bytes() == b"WHO = 'genuine nsub'\n"
    assert importlib.resources.files(pkg).joinpath("plugin.py").is_file()


def test_a_plugin_distribution_that_stopped_being_a_plugin_is_refused_as_a_dependency(tmp_path, pkg):
    from enkrypted_shell._pipeline.discover import Candidate
    from enkrypted_shell._pipeline.manifest import parse_manifest
    from enkrypted_shell._pipeline.plan import _verify_plugin_deps
    from enkrypted_shell._state.provenance_store import ProvenanceStore, StoredProvenance

    manifest = parse_manifest(b'[plugin]\nname="x"\nslot="crypto"\ncontract="1.0"\nshell=">=0"\n', source="m")
    dist = install(tmp_path / "a", pkg, _files(pkg))
    record = (tmp_path / "a" / f"{pkg}-1.0.dist-info" / "RECORD").read_text()
    leaf = f"{pkg}-leaf"
    cand = Candidate(None, dist, manifest, False, pkg, "1.0", (f"{leaf}>=1",), record)  # type: ignore[arg-type]
    store = ProvenanceStore(tmp_path / "home")
    assert _verify_plugin_deps(cand, (cand,), store) == ()  # not a plugin anyone installed: a library
    store.put(StoredProvenance(
        distribution=leaf, version="1.0", slot="crypto", wheel_filename=f"{leaf.replace('-', '_')}-1.0-py3-none-any.whl",
        wheel_sha256="a" * 64, index="http://127.0.0.1:1/simple/", tuf_role="crypto",
        target_path=f"plugins/crypto/{leaf}.whl", installed_at="2026-11-26T00:00:00Z", provenance={"version": 1},
    ))
    with pytest.raises(errors.IntegrityError, match="no longer a verifiable installed plugin"):
        _verify_plugin_deps(cand, (cand,), store)


def test_import_names_and_claimed_paths():
    from enkrypted_shell._pipeline.integrity import import_names
    from enkrypted_shell._trust.provenance import claimed_paths

    paths = ["a/__init__.py", "ns/x.py", "mod.py", "a-1.0.dist-info/METADATA", "a-1.0.data/scripts/t", "../bin/t"]
    assert import_names(paths) == ("a", "mod", "ns")
    assert claimed_paths({"version": 1, "attestation_bundles": []}) == ()
    assert claimed_paths("garbage") == ()


def test_an_implausibly_large_record_is_refused_before_parsing():
    from enkrypted_shell._pipeline.integrity import parse_record
    from enkrypted_shell.limits import LIMITS

    with pytest.raises(errors.IntegrityError, match="implausibly large"):
        parse_record("a,b,c\n" * (LIMITS.record_chars // 6 + 1), where="x", name="x")
