"""Distributions meet only through public names (STYLE.md §5, DESIGN.md §2).

- No distribution imports another distribution's private module (any ``_``-prefixed component).
- A plugin imports of the shell only what plugin authors are given: the package root,
  ``contracts``, ``hookspecs`` and ``errors`` (``testing`` is for their tests, not their code).
- Plugins never import each other; the exceptions DESIGN.md §2 allows are a plugin reusing
  another distribution's backend-agnostic protocol code, which it depends on in its pyproject:
  ``enkrypted-crypto-nacl`` runs ``enkrypted-crypto``'s protocols over PyNaCl, and
  ``enkrypted-p2p-memory`` runs ``enkrypted-p2p``'s chat service (``enkrypted_p2p.chat``, public
  modules only) over its in-process endpoints, and ``enkrypted-ui-web`` draws ``enkrypted-ui-cli``'s
  chat presenter, contact store and invite format in a browser.  Never the other way round.
- The registry imports of the shell only public modules (in practice ``release``, ``contracts``,
  ``errors``).
Checked on the source (AST), including imports inside functions and ``TYPE_CHECKING`` blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = {
    "enkrypted_shell": ROOT / "shell/src/enkrypted_shell",
    "enkrypted_registry": ROOT / "registry/src/enkrypted_registry",
    "enkrypted_crypto": ROOT / "plugins/cryptography/src/enkrypted_crypto",
    "enkrypted_crypto_nacl": ROOT / "plugins/cryptography_nacl/src/enkrypted_crypto_nacl",
    "enkrypted_p2p": ROOT / "plugins/p2p/src/enkrypted_p2p",
    "enkrypted_p2p_memory": ROOT / "plugins/p2p_memory/src/enkrypted_p2p_memory",
    "enkrypted_ui_cli": ROOT / "plugins/ui_cli/src/enkrypted_ui_cli",
    "enkrypted_ui_web": ROOT / "plugins/ui_web/src/enkrypted_ui_web",
}
PLUGINS = {"enkrypted_crypto", "enkrypted_crypto_nacl", "enkrypted_p2p", "enkrypted_p2p_memory",
           "enkrypted_ui_cli", "enkrypted_ui_web"}
PLUGIN_SHELL_MODULES = {
    "enkrypted_shell",
    "enkrypted_shell.contracts",
    "enkrypted_shell.hookspecs",
    "enkrypted_shell.errors",
}
ALLOWED_PLUGIN_PAIRS = {("enkrypted_crypto_nacl", "enkrypted_crypto"),
                        ("enkrypted_p2p_memory", "enkrypted_p2p"),
                        ("enkrypted_ui_web", "enkrypted_ui_cli")}


def imported_modules(path: Path, package: str) -> list[tuple[int, str]]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = [package, *path.relative_to(DISTRIBUTIONS[package]).with_suffix("").parts]
    here = here[:-1]  # the package a relative import starts from (for __init__ too)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # ``from pkg import mod`` imports a module too
            found.extend((node.lineno, f"{module}.{alias.name}") for alias in node.names)
    return found


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted(DISTRIBUTIONS[package].rglob("*.py")):
        for line, module in imported_modules(path, package):
            top = module.split(".")[0]
            if top not in DISTRIBUTIONS or top == package:
                continue
            where = f"{path.relative_to(DISTRIBUTIONS[package].parent)}:{line} imports {module}"
            parts = module.split(".")
            if any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
                bad.append(f"{where} (another distribution's private module)")
            elif package in PLUGINS and top in PLUGINS and (package, top) not in ALLOWED_PLUGIN_PAIRS:
                bad.append(f"{where} (plugins never import each other)")
            elif package in PLUGINS and top == "enkrypted_shell" and not _public_for_plugins(module):
                bad.append(f"{where} (plugins use only the shell's plugin-facing names)")
    return bad


def _public_for_plugins(module: str) -> bool:
    """``module`` is a shell module plugins may use, or a name imported from one.

    ``from enkrypted_shell import X`` is seen as ``enkrypted_shell.X``: fine for a name
    (``AppContext``), not for a submodule (``release``)."""
    if module in PLUGIN_SHELL_MODULES:
        return True
    parent, _, _name = module.rpartition(".")
    shell = DISTRIBUTIONS["enkrypted_shell"]
    is_submodule = (shell.joinpath(*module.split(".")[1:]).with_suffix(".py")).exists() or (
        shell.joinpath(*module.split(".")[1:]).is_dir()
    )
    return parent in PLUGIN_SHELL_MODULES and not is_submodule


@pytest.mark.parametrize("package", sorted(DISTRIBUTIONS))
def test_distributions_import_only_public_names_of_each_other(package: str) -> None:
    assert violations(package) == []


def test_the_rule_catches_a_private_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "enkrypted_p2p"
    plugin.mkdir()
    (plugin / "bad.py").write_text(
        "from enkrypted_shell._pipeline import runtime\n"
        "from enkrypted_shell import release\n"
        "import enkrypted_crypto.session\n"
        "from enkrypted_shell.contracts import Link\n"
    )
    monkeypatch.setitem(DISTRIBUTIONS, "enkrypted_p2p", plugin)
    found = violations("enkrypted_p2p")
    assert any("private module" in v for v in found)
    assert any("enkrypted_shell.release" in v for v in found)
    assert any("never import each other" in v for v in found)
    assert not any("contracts" in v for v in found)


def test_the_reuse_exception_is_one_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """enkrypted-p2p-memory may reuse enkrypted-p2p's public chat code; never the reverse."""
    plugin = tmp_path / "enkrypted_p2p"
    plugin.mkdir()
    (plugin / "bad.py").write_text("from enkrypted_p2p_memory.endpoint import MemoryEndpoint\n")
    monkeypatch.setitem(DISTRIBUTIONS, "enkrypted_p2p", plugin)
    assert any("never import each other" in v for v in violations("enkrypted_p2p"))
    memory = tmp_path / "enkrypted_p2p_memory"
    memory.mkdir()
    (memory / "ok.py").write_text("from enkrypted_p2p.chat import EndpointChat\n"
                                  "from enkrypted_p2p.session._core import x\n")
    monkeypatch.setitem(DISTRIBUTIONS, "enkrypted_p2p_memory", memory)
    assert [v.split(" (")[1] for v in violations("enkrypted_p2p_memory")] == [
        "another distribution's private module)", "another distribution's private module)"]
