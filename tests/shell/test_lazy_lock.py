"""``run --locked`` checks locked library files as they are imported (docs/trust-model.md, "What a
start verifies"): the import guard of ``_pipeline.lazylock`` on a small locked library built here
(a package, a submodule, an extension module, a bundled shared library, a data file), in process.

Every refusal happens in ``find_spec``, before the module's code runs: the edited files carry a
marker that would be written if they ran.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from enkrypted_shell._pipeline import lazylock
from enkrypted_shell._pipeline.closure import LockedLibrary, check_libraries, snapshot
from enkrypted_shell._pipeline.integrity import record_hash
from enkrypted_shell._pipeline.lazylock import (
    LockedImportGuard,
    guard_imports,
    guarded_in_this_process,
)
from enkrypted_shell.errors import LockMismatchError


def _extension() -> Path | None:
    """A stdlib extension module that can be loaded again under another package (its file)."""
    import importlib.machinery

    for name in ("_bisect", "_heapq", "_json", "_random"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        origin = getattr(module, "__file__", None)
        if origin and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            return Path(origin)
    return None


EXTENSION = _extension()


def _marker_source(marker: Path) -> str:
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"


class Library:
    """``fakelib 1.0`` installed into ``site`` with a RECORD, and its lock entry."""

    def __init__(self, root: Path) -> None:
        self.site = root / "site"
        self.pkg = self.site / "fakelib"
        self.pkg.mkdir(parents=True)
        (self.pkg / "__init__.py").write_text("VALUE = 1\n")
        (self.pkg / "core.py").write_text("def answer():\n    return 42\n")
        (self.pkg / "data.txt").write_text("a data file read without import\n")
        self.ext = None
        if EXTENSION is not None:
            self.ext = self.pkg / (EXTENSION.stem.split(".")[0] + "".join(EXTENSION.suffixes))
            shutil.copyfile(EXTENSION, self.ext)
        libs = self.site / "fakelib.libs"
        libs.mkdir()
        self.shared = libs / "libfake-1a2b.so.1"
        self.shared.write_bytes(b"\x7fELF not really, but dlopen-ed by the extension")
        info = self.site / "fakelib-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakelib\nVersion: 1.0\n")
        rows = [
            f"{p.relative_to(self.site).as_posix()},sha256={record_hash(p.read_bytes())},{p.stat().st_size}"
            for p in sorted(self.site.rglob("*"))
            if p.is_file()
        ]
        (info / "RECORD").write_text("\n".join([*rows, "fakelib-1.0.dist-info/RECORD,,"]) + "\n")
        self.locked = {"fakelib": snapshot(metadata.Distribution.at(info))}

    @property
    def entry(self) -> LockedLibrary:
        return self.locked["fakelib"]

    def guard(self) -> LockedImportGuard:
        return guard_imports(self.locked, b"lock bytes", None)


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[Library]:
    library = Library(tmp_path)
    saved_path, saved_meta = list(sys.path), list(sys.meta_path)
    sys.path.insert(0, str(library.site))
    importlib.invalidate_caches()
    try:
        yield library
    finally:
        sys.path[:], sys.meta_path[:] = saved_path, saved_meta
        for name in [n for n in sys.modules if n == "fakelib" or n.startswith("fakelib.")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def _refused(name: str, *expected: str) -> LockMismatchError:
    importlib.invalidate_caches()
    with pytest.raises(LockMismatchError) as caught:
        importlib.import_module(name)
    message = str(caught.value)
    assert "library fakelib 1.0 drifted from the lock" in message
    for text in expected:
        assert text in message
    return caught.value


def test_an_unchanged_library_imports_and_its_files_are_hashed_as_they_are_imported(lib):
    guard = lib.guard()
    assert guarded_in_this_process(b"lock bytes") and not guarded_in_this_process(b"other bytes")
    assert guard.stats.up_front_files == 2  # METADATA and data.txt: not code an import checks later
    assert guard.stats.imported_files == 0 and guard.stats.shared_files == 0
    core = importlib.import_module("fakelib.core")
    assert core.answer() == 42
    assert guard.stats.imported_files == 2  # fakelib/__init__.py, fakelib/core.py
    assert guard.stats.shared_files == 1  # the bundled library, before fakelib's first module ran
    if lib.ext is not None:
        importlib.import_module(f"fakelib.{lib.ext.name.split('.')[0]}")
        assert guard.stats.imported_files == 3
    importlib.import_module("json")  # not a locked library's name: untouched


def test_an_edited_source_is_refused_when_imported_before_it_runs(lib, tmp_path):
    lib.guard()
    marker = tmp_path / "core-ran"
    (lib.pkg / "core.py").write_text(_marker_source(marker) + "def answer():\n    return 42\n")
    _refused("fakelib.core", "file fakelib/core.py changed", "before it ran")
    assert not marker.exists()


def test_an_edit_before_the_start_is_deferred_to_the_import_and_the_audit_sees_it(lib, tmp_path):
    """Lazy: the start does not hash a module it has not imported; `plugins verify --locked`
    (check_libraries) still re-hashes everything."""
    marker = tmp_path / "core-ran"
    (lib.pkg / "core.py").write_text(_marker_source(marker) + "def answer():\n    return 42\n")
    with pytest.raises(LockMismatchError, match="fakelib/core.py"):
        check_libraries(lib.locked)
    lib.guard()
    assert importlib.import_module("fakelib").VALUE == 1
    _refused("fakelib.core", "fakelib/core.py")
    assert not marker.exists()


def test_an_edited_package_init_is_refused(lib, tmp_path):
    lib.guard()
    marker = tmp_path / "init-ran"
    (lib.pkg / "__init__.py").write_text(_marker_source(marker) + "VALUE = 1\n")
    _refused("fakelib", "file fakelib/__init__.py changed")
    assert not marker.exists()


def test_a_module_planted_after_the_start_is_refused_on_import(lib, tmp_path):
    lib.guard()
    marker = tmp_path / "planted-ran"
    (lib.pkg / "planted.py").write_text(_marker_source(marker))
    _refused("fakelib.planted", "fakelib/planted.py", "a file the lock does not list")
    assert not marker.exists()


def test_a_module_planted_before_the_start_is_refused_up_front(lib):
    (lib.pkg / "planted.py").write_text("X = 1\n")
    with pytest.raises(LockMismatchError, match="has a file the lock does not list: fakelib/planted.py"):
        lib.guard()


def test_a_shadowing_copy_earlier_on_sys_path_is_refused(lib, tmp_path):
    lib.guard()
    marker = tmp_path / "shadow-ran"
    shadow = tmp_path / "shadow" / "fakelib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(_marker_source(marker))
    sys.path.insert(0, str(shadow.parent))
    _refused("fakelib", str(shadow / "__init__.py"), "a file the lock does not list")
    assert not marker.exists()


def test_a_symlinked_module_is_refused(lib, tmp_path):
    lib.guard()
    target = tmp_path / "elsewhere.py"
    target.write_text((lib.pkg / "core.py").read_text())
    (lib.pkg / "core.py").unlink()
    (lib.pkg / "core.py").symlink_to(target)
    _refused("fakelib.core", "fakelib/core.py, a symlink")


@pytest.mark.skipif(EXTENSION is None, reason="no stdlib extension module file to copy here")
def test_an_edited_extension_module_is_refused_before_it_is_loaded(lib):
    lib.guard()
    assert lib.ext is not None
    lib.ext.write_bytes(lib.ext.read_bytes() + b"\0")
    name = lib.ext.name.split(".")[0]
    _refused(f"fakelib.{name}", f"file fakelib/{lib.ext.name} changed")
    assert f"fakelib.{name}" not in sys.modules


def test_an_edited_bundled_shared_library_is_refused_before_the_first_module_of_its_distribution(lib, tmp_path):
    lib.guard()
    marker = tmp_path / "init-ran"
    (lib.pkg / "__init__.py").write_text(_marker_source(marker) + "VALUE = 1\n")
    lib.shared.write_bytes(lib.shared.read_bytes() + b"patched")
    _refused("fakelib", "file fakelib.libs/libfake-1a2b.so.1 changed", "before the first module of fakelib")
    assert not marker.exists()


def test_data_files_and_metadata_are_checked_up_front(lib):
    (lib.pkg / "data.txt").write_text("swapped trust root\n")
    with pytest.raises(LockMismatchError, match="file fakelib/data.txt changed"):
        lib.guard()


def test_a_missing_file_is_refused_up_front(lib):
    (lib.pkg / "core.py").unlink()
    with pytest.raises(LockMismatchError, match="file fakelib/core.py is missing"):
        lib.guard()


def test_another_installed_version_is_refused_up_front(lib):
    info = lib.site / "fakelib-1.0.dist-info"
    info.rename(lib.site / "fakelib-2.0.dist-info")
    with pytest.raises(LockMismatchError, match=r"is now version 2\.0"):
        lib.guard()


def test_an_uninstalled_library_is_refused_up_front(lib):
    shutil.rmtree(lib.site / "fakelib-1.0.dist-info")
    with pytest.raises(LockMismatchError, match="is no longer installed"):
        lib.guard()


def test_a_module_imported_before_the_guard_is_hashed_up_front(lib):
    importlib.import_module("fakelib")  # like the shell modules the launcher runs before the check
    (lib.pkg / "__init__.py").write_text("VALUE = 2\n")
    with pytest.raises(LockMismatchError, match=r"fakelib/__init__.py changed \(fakelib was imported before"):
        lib.guard()


def test_a_drift_at_import_reaches_the_launchers_handler(lib):
    seen: list[LockMismatchError] = []
    guard_imports(lib.locked, b"lock bytes", None, on_drift=seen.append)
    (lib.pkg / "core.py").write_text("EVIL = 1\n")
    _refused("fakelib.core")
    assert len(seen) == 1 and "fakelib/core.py" in str(seen[0])


def test_sources_are_compiled_from_the_hashed_bytes_through_the_code_cache(lib, tmp_path):
    """A locked source is compiled from the bytes that were hashed, cached content-addressed under
    HOME/bytecode (as plugins are: ADR 0005), never from a .pyc beside it."""
    guard_imports(lib.locked, b"lock bytes", tmp_path / "bytecode")
    module = importlib.import_module("fakelib.core")
    assert type(module.__spec__.loader).__name__ == "VerifiedLoader"
    assert list((tmp_path / "bytecode").glob("*/*.code"))


def test_module_name_rules():
    assert lazylock._module_name("pkg/sub/mod.py") == "pkg.sub.mod"
    assert lazylock._module_name("pkg/__init__.py") == "pkg"
    assert lazylock._module_name("_cffi_backend.cpython-311-x86_64-linux-gnu.so") == "_cffi_backend"
    assert lazylock._module_name("pkg/_rust.abi3.so") == "pkg._rust"
    assert lazylock._module_name("pkg/py.typed") is None
    assert lazylock._module_name("pkg/tests-data/x.py") is None  # not importable: checked up front
    assert lazylock._module_name("pkg/__pycache__/x.cpython-311.pyc") is None
    assert lazylock._is_shared_library("av.libs/libavcodec-1a2b.so.61.3.100", None)
    assert lazylock._is_shared_library("pkg/.dylibs/libssl.3.dylib", None)
    assert not lazylock._is_shared_library("pkg/_rust.abi3.so", "pkg._rust")


def test_the_parsed_lock_is_cached_by_the_sha256_of_its_bytes_and_checked_the_same(tmp_path):
    import hashlib

    from enkrypted_shell._pipeline import lock as lockmod
    from enkrypted_shell.errors import ShellUsageError

    files = {"pkg/__init__.py": "abc"}
    library = LockedLibrary("pkg", "1.0", files)
    text = (
        'lock-version = "2.0"\ncreated-by = "test"\npackages = []\n\n[[libraries]]\nname = "pkg"\n'
        f'version = "1.0"\nfiles-digest = "{library.files_digest}"\n[libraries.files]\n"pkg/__init__.py" = "abc"\n'
    ).encode()
    cache = tmp_path / "locks"
    entry = cache / f"{hashlib.sha256(text).hexdigest()}.json"
    lockmod._PARSED.clear()
    first = lockmod.parse_lock(text, source="lock", cache=cache)
    assert entry.exists() and first.libraries["pkg"].files == files
    lockmod._PARSED.clear()
    assert lockmod.parse_lock(text, source="lock", cache=cache).libraries["pkg"].version == "1.0"
    entry.write_text("{not json")  # a damaged entry is a miss, never an error
    lockmod._PARSED.clear()
    assert lockmod.parse_lock(text, source="lock", cache=cache).libraries["pkg"].version == "1.0"
    bad = text.replace(b'"abc"', b'"abd"')  # the files-digest check runs on every parse
    lockmod._PARSED.clear()
    with pytest.raises(ShellUsageError, match="files-digest does not match"):
        lockmod.parse_lock(bad, source="lock", cache=cache)
    lockmod._PARSED.clear()


def test_a_namespace_package_is_checked_only_in_the_locked_distributions_folders(tmp_path):
    """A top-level folder without ``__init__.py`` (a namespace package) may hold other
    distributions' portions: theirs import as usual, the locked one's modules are checked."""
    site, other = tmp_path / "site", tmp_path / "other"
    (site / "nsfake" / "locked").mkdir(parents=True)
    (site / "nsfake" / "locked" / "__init__.py").write_text("X = 1\n")
    (site / "nsfake" / "locked" / "mod.py").write_text("Y = 2\n")
    (other / "nsfake" / "theirs").mkdir(parents=True)
    (other / "nsfake" / "theirs" / "__init__.py").write_text("Z = 3\n")
    info = site / "nsfake-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nsfake\nVersion: 1.0\n")
    rows = [f"{p.relative_to(site).as_posix()},sha256={record_hash(p.read_bytes())},1"
            for p in sorted(site.rglob("*")) if p.is_file()]
    (info / "RECORD").write_text("\n".join(rows) + "\n")
    locked = {"nsfake": snapshot(metadata.Distribution.at(info))}
    saved_path, saved_meta = list(sys.path), list(sys.meta_path)
    sys.path[:0] = [str(site), str(other)]
    importlib.invalidate_caches()
    try:
        guard = guard_imports(locked, b"ns lock", None)
        assert importlib.import_module("nsfake.theirs").Z == 3  # another distribution's portion
        assert importlib.import_module("nsfake.locked").X == 1
        (site / "nsfake" / "locked" / "mod.py").write_text("Y = 'edited'\n")
        importlib.invalidate_caches()
        with pytest.raises(LockMismatchError, match="library nsfake 1.0 drifted.*nsfake/locked/mod.py changed"):
            importlib.import_module("nsfake.locked.mod")
        assert guard.stats.imported_files == 1
    finally:
        sys.path[:], sys.meta_path[:] = saved_path, saved_meta
        for name in [n for n in sys.modules if n == "nsfake" or n.startswith("nsfake.")]:
            del sys.modules[name]
        importlib.invalidate_caches()


@pytest.mark.parametrize("planted", ["optdep.py", "optdep/__init__.py", "optdep/mod.py"])
def test_a_locked_start_refuses_an_importable_entry_of_a_site_folder_no_distribution_lists(lib, tmp_path, planted):
    """A top-level module, package or namespace folder in site-packages that no locked library and
    no installed distribution's RECORD lists (what a locked library's optional ``import optdep``
    would run) is refused: up front if it is there at the start, on import if planted since, and
    its code never runs. An optional dependency that is simply absent still raises ImportError."""
    marker = tmp_path / "planted-ran"
    target = lib.site / planted
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_marker_source(marker))
    with pytest.raises(LockMismatchError, match=f"site-packages holds {lib.site / 'optdep'}") as caught:
        lib.guard()
    assert "no locked or installed distribution lists" in str(caught.value)
    (lib.site / "optdep.py").unlink(missing_ok=True)
    shutil.rmtree(lib.site / "optdep", ignore_errors=True)
    lib.guard()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("optdep")  # absent: the optional import falls back as usual
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_marker_source(marker))
    importlib.invalidate_caches()
    try:
        with pytest.raises(LockMismatchError, match="site-packages holds .*optdep"):
            importlib.import_module("optdep.mod" if planted == "optdep/mod.py" else "optdep")
    finally:
        for name in [n for n in sys.modules if n == "optdep" or n.startswith("optdep.")]:
            del sys.modules[name]
    assert not marker.exists()


def test_a_locked_start_admits_top_level_entries_another_distribution_records(lib, tmp_path):
    """What an installed distribution's RECORD lists (a plugin, pip) is not refused by the
    listing; an extension module or bytecode file no one lists is."""
    (lib.site / "other.py").write_text("OTHER = 1\n")
    info = lib.site / "other-2.0.dist-info"
    info.mkdir()
    (info / "RECORD").write_text("other.py,sha256=x,10\nother-2.0.dist-info/RECORD,,\n")
    lib.guard()
    importlib.invalidate_caches()
    try:
        assert importlib.import_module("other").OTHER == 1
    finally:
        sys.modules.pop("other", None)
    for name in ("evil.cpython-311-x86_64-linux-gnu.so", "evil.pyc"):
        (lib.site / name).write_bytes(b"not loaded")
        with pytest.raises(LockMismatchError, match=f"site-packages holds .*{name}"):
            lib.guard()
        (lib.site / name).unlink()
    (lib.site / "not-a-module.txt").write_text("data\n")
    (lib.site / "zz.pth").write_text("# start-up hooks: environment.py's check (exit 10)\n")
    lib.guard()


def _namespace_library(site: Path) -> dict[str, LockedLibrary]:
    (site / "nsfake" / "locked").mkdir(parents=True)
    (site / "nsfake" / "locked" / "__init__.py").write_text("X = 1\n")
    info = site / "nsfake-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nsfake\nVersion: 1.0\n")
    rows = [f"{p.relative_to(site).as_posix()},sha256={record_hash(p.read_bytes())},1"
            for p in sorted(site.rglob("*")) if p.is_file()]
    (info / "RECORD").write_text("\n".join(rows) + "\n")
    return {"nsfake": snapshot(metadata.Distribution.at(info))}


@pytest.mark.parametrize("when", ["before the start", "after the start"])
@pytest.mark.parametrize("planted", ["nsfake/__init__.py", "nsfake.py"])
def test_a_module_turning_a_locked_namespace_folder_into_a_package_never_runs(tmp_path, when, planted):
    """A locked library's namespace folder (no ``__init__.py``) runs no code; an ``__init__.py``
    dropped into it (or an ``nsfake.py`` beside it, which the import system prefers) would run
    before any locked module below it: refused unless the lock lists that file."""
    site = tmp_path / "site"
    locked = _namespace_library(site)
    marker = tmp_path / "namespace-init-ran"
    saved_path, saved_meta = list(sys.path), list(sys.meta_path)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        if when == "before the start":
            (site / planted).write_text(_marker_source(marker))
            if planted == "nsfake.py":  # a new top-level entry: the listing sees it
                with pytest.raises(LockMismatchError, match="site-packages holds .*nsfake.py"):
                    guard_imports(locked, b"ns lock", None)
                return
        guard_imports(locked, b"ns lock", None)
        (site / planted).write_text(_marker_source(marker))
        importlib.invalidate_caches()
        with pytest.raises(LockMismatchError, match="library nsfake 1.0 drifted.*importing nsfake would load"):
            importlib.import_module("nsfake.locked")
        assert not marker.exists()
    finally:
        sys.path[:], sys.meta_path[:] = saved_path, saved_meta
        for name in [n for n in sys.modules if n == "nsfake" or n.startswith("nsfake.")]:
            del sys.modules[name]
        importlib.invalidate_caches()
    assert not marker.exists()
