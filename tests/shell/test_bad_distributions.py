"""One bad distribution cannot deny service to the rest, and `plugins verify` says what it did not
select and why (docs/trust-model.md "Load time"). Real wheels in throw-away environments."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tools.workspace import build_wheels

pytestmark = pytest.mark.e2e


def _foreign_wheel(tmp_path: Path) -> Path:
    """An unrelated distribution whose entry point points into enkrypted_crypto."""
    project = tmp_path / "foreign"
    (project / "src" / "foreign_pkg").mkdir(parents=True)
    (project / "src" / "foreign_pkg" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "foreign-thing"
        version = "1.0"
        [project.entry-points."enkrypted.plugins"]
        crypto-evil = "enkrypted_crypto.plugin"
        [tool.hatch.build.targets.wheel]
        packages = ["src/foreign_pkg"]
    """))
    return build_wheels([project], tmp_path / "foreign-wheels")[0]


def test_a_foreign_entry_point_into_another_plugin_is_ignored_not_fatal(shell_env, tmp_path):
    sh = shell_env()
    sh.env.install(_foreign_wheel(tmp_path), no_deps=True)
    res = sh.run("plugins", "verify", "--json")
    assert res.code == 0, res.err
    rows = [r for r in json.loads(res.out)["not_selected"] if r["plugin"] != "p2p-webrtc"]  # not chosen
    assert {"plugin": "crypto-evil", "status": "ignored"}.items() <= rows[0].items()
    assert "enkrypted_crypto.plugin" in rows[0]["why"] and "enkrypted-crypto" in rows[0]["why"].lower()
    run = sh.run("run")
    assert run.code == 0, run.err
    log = [json.loads(line) for line in (sh.home / "load-log.jsonl").read_text().splitlines()]
    assert any(r["event"] == "ignored" and r["plugin"] == "crypto-evil" for r in log)


def test_verify_lists_every_candidate_it_did_not_select(shell_env):
    sh = shell_env("enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto",
                   "enkrypted-crypto-nacl")
    sh.env.install_requirements("pynacl")
    res = sh.run("--crypto", "crypto-pyca", "plugins", "verify", "--json")
    assert res.code == 0, res.err
    rows = {r["plugin"]: r for r in json.loads(res.out)["not_selected"]}
    assert rows["crypto-nacl"]["status"] == "unsigned" and rows["crypto-nacl"]["slot"] == "crypto"
    text = sh.run("--crypto", "crypto-pyca", "plugins", "verify").out
    assert "--  crypto  crypto-nacl enkrypted-crypto-nacl" in text and "unsigned" in text
