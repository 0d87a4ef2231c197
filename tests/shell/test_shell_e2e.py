"""The shell against real wheels installed (not editable) into throw-away environments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.shell.conftest import P2P_CHOICE
from tools.workspace import WHEELHOUSE, plugin_libraries

pytestmark = pytest.mark.e2e

INTEGRITY, SKEW, LOCK, NO_PLUGIN, AMBIGUOUS, LOG_CORRUPT = 10, 11, 12, 13, 14, 18

SIDE_EFFECT = (
    '__version__ = "0.1.0"\n',
    '__version__ = "0.1.0"\n'
    "import os, pathlib\n"
    "pathlib.Path(os.environ['ENKRYPTED_HOME'], 'p2p-was-imported').write_text('yes')\n",
)
MEMORY_PY = "enkrypted_p2p_memory/memory.py"  # the selected p2p plugin's (the in-process one)


def test_happy_path_verify_graph_lock_run_audit(shell_env):
    sh = shell_env()
    res = sh.run("plugins", "verify", "--json")
    assert res.code == 0, res.err
    rows = {r["slot"]: r for r in json.loads(res.out)["plugins"]}
    assert {s: r["plugin"] for s, r in rows.items()} == {
        "crypto": "crypto-pyca", "p2p": "p2p-memory", "ui": "ui-cli"}
    assert all(r["content_digest"].startswith("sha256:") and r["files_checked"] > 3 for r in rows.values())

    graph = sh.run("plugins", "graph")
    assert graph.code == 0 and "only candidate" in graph.out and "shared cryptography" in graph.out

    assert sh.run("plugins", "lock").code == 0
    assert (sh.home / "plugins.lock.toml").exists()
    run = sh.run("run", "--locked")
    assert run.code == 0, run.err
    assert "messages delivered intact: True" in run.out

    audit = sh.run("plugins", "audit", "--json")
    assert audit.code == 0
    report = json.loads(audit.out)
    log = report["log"]
    assert log["intact"] and [r["event"] for r in log["records"]].count("loaded") == 1
    assert {p["plugin"]: p["last_loaded"] is not None for p in report["plugins"]} == {
        "crypto-pyca": True, "p2p-memory": True, "ui-cli": True}
    bom = json.loads(sh.run("plugins", "audit", "--format", "cyclonedx").out)
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
    assert {c["name"] for c in bom["components"]} == {"enkrypted-crypto", "enkrypted-p2p-memory", "enkrypted-ui-cli"}


def test_plugin_listing_shows_each_candidate(shell_env):
    sh = shell_env()
    res = sh.run("plugins", "list", "--json")
    assert res.code == 0, res.err
    listed = {r["plugin"]: r for r in json.loads(res.out)["plugins"]}
    assert set(listed) == {"crypto-pyca", "p2p-memory", "p2p-webrtc", "ui-cli"}
    assert {name for name, r in listed.items() if r["selected"]} == {"crypto-pyca", "p2p-memory", "ui-cli"}
    assert all(r["state"] == "files verified, no provenance" for r in listed.values())


def test_nothing_is_imported_before_verification(shell_env, wheels, variant):
    marked = variant("enkrypted-p2p-memory", {"src/enkrypted_p2p_memory/__init__.py": SIDE_EFFECT})
    sh = shell_env("enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto")
    sh.env.install(marked)
    marker = sh.home / "p2p-was-imported"
    sh.home.mkdir(parents=True, exist_ok=True)
    (sh.home / "config.toml").write_text(P2P_CHOICE)

    for args in (["plugins", "list"], ["plugins", "verify"], ["plugins", "graph"], ["plugins", "lock"]):
        assert sh.run(*args).code == 0
        assert not marker.exists(), f"{args} imported the plugin"

    memory = sh.site() / MEMORY_PY
    original, stat = memory.read_bytes(), memory.stat()
    memory.write_bytes(original + b"\n# tampered\n")
    res = sh.run("run")
    assert res.code == INTEGRITY and not marker.exists()

    memory.write_bytes(original)
    os.utime(memory, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # keep the recorded .pyc fresh
    res = sh.run("run")
    assert res.code == 0, res.err
    assert marker.exists(), "a verified run imports the plugin"


def test_tampered_file_is_refused_and_named(shell_env):
    sh = shell_env()
    target = sh.site() / MEMORY_PY
    target.write_text(target.read_text() + "\nMAX_PDU_BYTES = 1 << 40  # tampered\n")
    res = sh.run("plugins", "verify")
    assert res.code == INTEGRITY
    assert MEMORY_PY in res.err and "changed" in res.err
    assert sh.run("run").code == INTEGRITY


def test_added_python_file_is_refused_and_named(shell_env):
    sh = shell_env()
    (sh.site() / "enkrypted_crypto" / "backdoor.py").write_text("print('owned')\n")
    res = sh.run("plugins", "verify")
    assert res.code == INTEGRITY
    assert "enkrypted_crypto/backdoor.py" in res.err


def test_removed_file_is_refused_and_named(shell_env):
    sh = shell_env()
    (sh.site() / "enkrypted_ui_cli" / "conversation.py").unlink()
    res = sh.run("plugins", "verify")
    assert res.code == INTEGRITY
    assert "enkrypted_ui_cli/conversation.py" in res.err and "missing" in res.err


def test_incompatible_contract_major_is_refused(shell_env, variant):
    newer = variant("enkrypted-p2p", {"src/enkrypted_p2p/enkrypted-plugin.toml": ('contract = "2.2"', 'contract = "3.0"')})
    sh = shell_env("enkrypted-shell", "enkrypted-ui-cli", "enkrypted-crypto")
    sh.env.install(newer)
    res = sh.run("plugins", "verify")
    assert res.code == SKEW
    assert "p2p-webrtc" in res.err and "3.0" in res.err and "the shell speaks 2.2" in res.err
    assert "same MAJOR" in res.err


def test_plugin_requiring_newer_minor_of_another_slot_is_refused(shell_env, variant):
    needy = variant("enkrypted-ui-cli", {"src/enkrypted_ui_cli/enkrypted-plugin.toml": ('crypto = ">=2.0,<3"', 'crypto = ">=2.3,<3"')})
    sh = shell_env("enkrypted-shell", "enkrypted-p2p", "enkrypted-crypto")
    sh.env.install(needy)
    res = sh.run("plugins", "verify")
    assert res.code == SKEW
    assert "refused [ui-cli]" in res.err and "requires crypto contract" in res.err and ">=2.3" in res.err
    assert "crypto-pyca" in res.err and "implements 2.2" in res.err


def test_downgraded_shared_library_is_refused(shell_env):
    old = sorted(WHEELHOUSE.glob("cryptography-45*.whl"))
    assert old, "make test prefetches an old cryptography wheel into wheelhouse/ (see Makefile)"
    sh = shell_env()
    assert sh.run("run").code == 0  # passes, and the skew verdict for these inputs is remembered
    assert sh.run("run").code == 0
    records = json.loads(sh.run("plugins", "audit", "--json").out)["log"]["records"]
    assert [r.get("skew") for r in records if "skew" in r][-1] == "verdict"
    sh.env.install(old[0])
    res = sh.run("plugins", "verify")
    assert res.code == SKEW
    assert "enkrypted-crypto" in res.err and "cryptography>=50" in res.err and "45." in res.err
    assert "pip install 'cryptography>=50'" in res.err


def test_two_crypto_backends_need_a_choice(shell_env):
    sh = shell_env("enkrypted-shell", "enkrypted-p2p", "enkrypted-p2p-memory", "enkrypted-ui-cli",
                   "enkrypted-crypto", "enkrypted-crypto-nacl")
    res = sh.run("plugins", "verify")
    assert res.code == AMBIGUOUS
    assert "crypto-pyca" in res.err and "crypto-nacl" in res.err and "--crypto" in res.err

    chosen = sh.run("--crypto", "crypto-nacl", "plugins", "verify", "--json")
    assert chosen.code == 0, chosen.err
    rows = {r["slot"]: r for r in json.loads(chosen.out)["plugins"]}
    assert rows["crypto"]["plugin"] == "crypto-nacl"
    assert sh.run("--crypto", "enkrypted-crypto", "plugins", "verify").code == 0
    assert sh.run("--crypto", "nope", "plugins", "verify").code == NO_PLUGIN

    (sh.home / "config.toml").write_text(P2P_CHOICE + 'crypto = "crypto-nacl"\n')
    run = sh.run("run")
    assert run.code == 0, run.err
    assert "crypto backend: pynacl" in run.out and "delivered intact: True" in run.out


def test_lock_drift_after_installing_another_version(shell_env, variant):
    sh = shell_env()
    assert sh.run("plugins", "lock").code == 0
    assert sh.run("plugins", "verify", "--locked").code == 0
    bumped = variant("enkrypted-p2p-memory", {"src/enkrypted_p2p_memory/__init__.py": ('"0.1.0"', '"0.1.1"')})
    sh.env.install(bumped, no_deps=True)
    res = sh.run("plugins", "verify", "--locked")
    assert res.code == LOCK
    assert "enkrypted-p2p-memory" in res.err and "version 0.1.1 (locked 0.1.0)" in res.err
    assert sh.run("run", "--locked").code == LOCK


def test_same_version_rebuilt_with_other_content_drifts_from_lock(shell_env, variant):
    sh = shell_env()
    assert sh.run("plugins", "lock").code == 0
    other = variant("enkrypted-p2p-memory", {"src/enkrypted_p2p_memory/memory.py": ("QUEUE_DEPTH: Final = 1024", "QUEUE_DEPTH: Final = 4096")})
    sh.env.pip("install", "-q", "--no-deps", "--no-index", "--force-reinstall", str(other))
    res = sh.run("plugins", "verify", "--locked")
    assert res.code == LOCK and "content digest" in res.err


def test_editable_install_needs_dev_mode_and_is_logged(shell_env):
    sh = shell_env("enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto")
    from tools.workspace import DISTS

    sh.env.pip("install", "-q", "--no-deps", "--no-index", "--find-links", str(WHEELHOUSE), "-e", str(DISTS["enkrypted-p2p-memory"]))
    sh.home.mkdir(parents=True, exist_ok=True)
    (sh.home / "config.toml").write_text(P2P_CHOICE)
    sh.env.install_requirements(*plugin_libraries())
    res = sh.run("plugins", "verify")
    assert res.code == INTEGRITY and "editable" in res.err and "--dev" in res.err
    dev = sh.run("--dev", "run")
    assert dev.code == 0, dev.err
    assert "dev mode" in dev.err
    records = json.loads(sh.run("plugins", "audit", "--json").out)["log"]["records"]
    assert any(r["event"] == "admitted-unverified-dev" and r["plugin"] == "p2p-memory" for r in records)


def test_tampered_load_log_is_reported(shell_env):
    sh = shell_env()
    assert sh.run("plugins", "verify").code == 0
    assert sh.run("plugins", "verify").code == 0
    log = sh.home / "load-log.jsonl"
    lines = log.read_text().splitlines()
    record = json.loads(lines[1])
    record["event"] = "refused"
    lines[1] = json.dumps(record, sort_keys=True)
    log.write_text("\n".join(lines) + "\n")
    res = sh.run("plugins", "audit")
    assert res.code == LOG_CORRUPT and "line 2" in res.out


def test_refusals_are_logged(shell_env):
    sh = shell_env()
    (sh.site() / "enkrypted_p2p_memory" / "extra.py").write_text("")
    assert sh.run("plugins", "verify").code == INTEGRITY
    records = json.loads(sh.run("plugins", "audit", "--json").out)["log"]["records"]
    assert records[-1]["event"] == "refused" and records[-1]["rule"] == "IntegrityError"


def test_usage_error_exit_code(shell_env):
    sh = shell_env()
    assert sh.run("plugins", "verify", "--no-such-flag").code == 2
    assert sh.run("--lock", str(sh.home / "missing.toml"), "plugins", "verify", "--locked").code == 2


def test_plugin_contributed_command_is_listed_without_import_and_runs_after_verification(shell_env):
    sh = shell_env()
    helptext = sh.run("--help")
    assert helptext.code == 0 and "demo" in helptext.out
    res = sh.run("demo", "-m", "extra line")
    assert res.code == 0, res.err
    assert "extra line" in res.out and "delivered intact: True" in res.out
    records = json.loads(sh.run("plugins", "audit", "--json").out)["log"]["records"]
    assert [r["event"] for r in records][-1] == "loaded"


def test_plugin_implementing_another_slots_hook_is_refused(shell_env, variant):
    greedy = variant("enkrypted-p2p", {"src/enkrypted_p2p/plugin.py": (
        "@hookimpl\ndef enkrypted_transport_service",
        "@hookimpl\ndef enkrypted_ui_service(context, crypto, transport):\n    return None\n\n\n"
        "@hookimpl\ndef enkrypted_transport_service")})
    sh = shell_env("enkrypted-shell", "enkrypted-ui-cli", "enkrypted-crypto")
    sh.env.install(greedy)
    assert sh.run("plugins", "verify").code == 0  # static checks pass; the hook set is checked at load
    res = sh.run("run")
    assert res.code == 17 and "p2p plugin but implements enkrypted_ui_service" in res.err


P2P_1_0 = {
    "pyproject.toml": (
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        '[project]\nname = "acme-p2p-loopback"\nversion = "1.0"\n'
        'dependencies = ["enkrypted-shell>=0.1,<1"]\n'
        '[project.entry-points."enkrypted.plugins"]\np2p-loopback = "acme_p2p_loopback.plugin"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["src/acme_p2p_loopback"]\n'),
    "src/acme_p2p_loopback/__init__.py": "",
    "src/acme_p2p_loopback/enkrypted-plugin.toml": (
        '[plugin]\nname = "p2p-loopback"\nslot = "p2p"\ncontract = "1.0"\nshell = ">=0.1,<1"\n'
        'commands = []\n'),
    "src/acme_p2p_loopback/plugin.py": (
        "from enkrypted_shell.hookspecs import hookimpl\n\n"
        "class Loopback:\n"
        "    name = 'loopback'\n"
        "    capabilities = frozenset({'loopback'})\n\n"
        "    async def loopback_pair(self, first, second):\n"
        "        raise NotImplementedError('ui-echo never asks')\n\n"
        "@hookimpl\n"
        "def enkrypted_transport_service(context, crypto):\n"
        "    return Loopback()\n"),
}
"""A third-party p2p plugin still built against contract 1.0 (``loopback_pair``)."""


def test_plugin_written_from_the_manual_by_an_outsider_loads_and_runs(shell_env, tmp_path):
    """tests/shell/outsider_plugin was written by someone who had only docs/hooks.md, against
    p2p 1.0 (``[requires] p2p = ">=1.0,<2"``): it runs with a p2p 1.0 plugin, which the shell
    still loads beside the 2.0 ones (contracts.PUBLISHED keeps 1.0), and is refused with a 2.0 one."""
    from tools.workspace import build_wheels

    project = tmp_path / "p2p-loopback"
    for rel, text in P2P_1_0.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    wheel, old_p2p = build_wheels([Path(__file__).parent / "outsider_plugin", project], tmp_path / "outsider")
    sh = shell_env()
    sh.env.install(wheel, old_p2p)
    assert sh.run("plugins", "verify").code == AMBIGUOUS  # two ui plugins, no choice
    refused = sh.run("--ui", "ui-echo", "run", "a", "b")  # config.toml chooses p2p-memory (2.0)
    assert refused.code == SKEW and "requires p2p contract <2,>=1.0" in refused.err
    res = sh.run("--ui", "ui-echo", "--p2p", "p2p-loopback", "run", "a", "b")
    assert res.code == 0, res.err
    assert res.out.strip() == "echo-ui: backend=pyca transport=loopback args=a b"
    hello = sh.run("--ui", "ui-echo", "--p2p", "p2p-loopback", "echo-hello")
    assert hello.code == 0 and hello.out.strip() == "hello from echo"
    other = sh.run("--ui", "ui-cli", "echo-hello")
    assert other.code == NO_PLUGIN and "--ui ui-echo" in other.err


def test_unsigned_plugins_are_refused_unless_downgrade_is_explicit(shell_env):
    sh = shell_env()
    res = sh.run("plugins", "verify", extra_env={"ENKRYPTED_ALLOW_UNSIGNED": ""})
    assert res.code == 16
    assert "no signed provenance" in res.err and "--allow-unsigned" in res.err
    assert sh.run("plugins", "verify").code == 0  # the fixture's explicit downgrade
    records = json.loads(sh.run("plugins", "audit", "--json").out)["log"]["records"]
    assert records[0]["event"] == "refused" and records[0]["rule"] == "ProvenanceError"
    assert {r["event"] for r in records[1:]} == {"admitted-unsigned-downgrade"}


def test_backend_refuses_layers_it_cannot_serve_at_start_up(shell_env):
    sh = shell_env("enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto",
                   "enkrypted-crypto-nacl")
    sh.home.mkdir(parents=True, exist_ok=True)
    (sh.home / "config.toml").write_text(
        '[plugins]\ncrypto = "crypto-nacl"\n\n[settings.crypto]\nlayers = ["Signal", "ML-KEM", "AES"]\n')
    res = sh.run("run")
    assert res.code == 17
    assert "ml-kem-768" in res.err and "pyca" in res.err


def test_a_shadowing_copy_on_pythonpath_is_never_seen(shell_env, tmp_path):
    """The launcher re-executes under ``python -I -S``: PYTHONPATH copies of a plugin, of a plugin
    dependency, of the shell itself or of its libraries are not on sys.path at all."""
    sh = shell_env("enkrypted-shell", "enkrypted-p2p", "enkrypted-p2p-memory", "enkrypted-ui-cli",
                   "enkrypted-crypto", "enkrypted-crypto-nacl")
    sh.env.install_requirements("pynacl")
    shadow = tmp_path / "shadow"
    marker = tmp_path / "shadow-ran"
    for package in ("enkrypted_p2p", "enkrypted_p2p_memory", "enkrypted_crypto", "enkrypted_shell", "pluggy", "click", "cryptography", "nacl"):
        (shadow / package).mkdir(parents=True)
        (shadow / package / "__init__.py").write_text(
            f"import pathlib; pathlib.Path({str(marker)!r}).write_text({package!r})\n"
        )
    for args in (["--crypto", "crypto-pyca", "run"], ["--crypto", "crypto-nacl", "run"], ["--crypto", "crypto-nacl", "plugins", "verify"]):
        res = sh.run(*args, extra_env={"PYTHONPATH": str(shadow)})
        assert res.code == 0, res.err
        assert not marker.exists(), marker.read_text()


def test_a_sitecustomize_that_ran_before_the_shell_is_a_compromised_environment(shell_env, tmp_path):
    """The ``enkrypted`` script starts isolated (``#!/bin/sh``, then ``python -I -S``): a
    sitecustomize on PYTHONPATH never runs. Started by a normal Python instead (``python
    bin/enkrypted``) it runs before any of our code: the launcher says so and stops (exit 10)."""
    import subprocess

    sh = shell_env()
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    marker = tmp_path / "sitecustomize-ran"
    (hooks / "sitecustomize.py").write_text(f"import pathlib; pathlib.Path({str(marker)!r}).write_text('x')\n")
    res = sh.run("run", extra_env={"PYTHONPATH": str(hooks)})
    assert res.code == 0, res.err
    assert not marker.exists()
    environ = {k: v for k, v in os.environ.items() if k != "ENKRYPTED_DEV"}
    environ.update(PYTHONPATH=str(hooks), ENKRYPTED_HOME=str(sh.home), ENKRYPTED_ALLOW_UNSIGNED="1")
    proc = subprocess.run([str(sh.env.python), str(sh.env.bin / "enkrypted"), "run"],
                          capture_output=True, text=True, env=environ, timeout=120)
    assert proc.returncode == INTEGRITY, proc.stderr
    assert "sitecustomize ran from" in proc.stderr and "compromised" in proc.stderr


def test_an_unrecorded_pth_in_site_packages_is_refused_and_never_runs_in_the_shell(shell_env, tmp_path):
    sh = shell_env()
    marker = tmp_path / "pth-ran-in-shell"
    pth = sh.site() / "zz_evil.pth"
    # A .pth line starting with "import" is executed by site; it records the executing process.
    pth.write_text(
        f"import os, sys, pathlib; sys.flags.no_site or pathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
    )
    for args in (["plugins", "verify"], ["run"], ["plugins", "lock"]):
        res = sh.run(*args)
        assert res.code == INTEGRITY, (args, res.err)
        assert "zz_evil.pth" in res.err and "compromised" in res.err
    log = [json.loads(line) for line in (sh.home / "load-log.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "refused" and "zz_evil.pth" in log[-1]["reason"]
    dev = sh.run("--dev", "run")
    assert dev.code == 0, dev.err
    assert "unrecorded start-up hooks admitted" in dev.err and "zz_evil.pth" in dev.err
    log = [json.loads(line) for line in (sh.home / "load-log.jsonl").read_text().splitlines()]
    assert any(r["event"] == "admitted-startup-hooks-dev" for r in log)


def test_a_pth_recorded_by_its_distribution_is_not_a_startup_hook_problem(shell_env):
    """Ordinary environments carry recorded .pth files (setuptools' distutils-precedence.pth)."""
    sh = shell_env()
    sh.env.install_requirements("setuptools")
    assert any(p.suffix == ".pth" for p in sh.site().iterdir())
    assert sh.run("plugins", "verify").code == 0


def test_a_flipped_direct_url_does_not_make_a_wheel_install_editable(shell_env):
    sh = shell_env()
    info = next(sh.site().glob("enkrypted_p2p_memory-*.dist-info"))
    (info / "direct_url.json").write_text(json.dumps({"url": "file:///x", "dir_info": {"editable": True}}))
    target = sh.site() / MEMORY_PY
    target.write_text(target.read_text() + "\n# tampered\n")
    res = sh.run("--dev", "run")
    assert res.code == INTEGRITY, res.err  # verified like any wheel install (dev or not): refused
    assert "enkrypted-p2p-memory" in res.err and "changed after install" in res.err


def test_a_changed_manifest_is_refused_before_it_is_believed(shell_env):
    sh = shell_env()
    manifest = sh.site() / "enkrypted_p2p_memory" / "enkrypted-plugin.toml"
    manifest.write_text(manifest.read_text().replace('slot = "p2p"', 'slot = "p2p"\n# edited'))
    res = sh.run("plugins", "verify")
    assert res.code == INTEGRITY, res.err
    assert "enkrypted_p2p_memory/enkrypted-plugin.toml" in res.err and "changed" in res.err


def test_unreadable_entry_point_data_of_another_distribution_is_listed_not_fatal(shell_env):
    sh = shell_env()
    info = next(sh.site().glob("enkrypted_ui_cli-*.dist-info"))
    (info / "direct_url.json").write_text(json.dumps({"url": "file:///x", "dir_info": None}))
    assert sh.run("--help").code == 0
    listing = sh.run("plugins", "list")
    assert listing.code == 0, listing.err


def test_an_editable_plugin_in_dev_mode_uses_its_verified_wheel_dependency(shell_env):
    sh = shell_env(*("enkrypted-shell", "enkrypted-p2p", "enkrypted-p2p-memory", "enkrypted-ui-cli", "enkrypted-crypto"))
    from tools.workspace import DISTS

    sh.env.pip("install", "-q", "--no-deps", "--no-index", "--find-links", str(WHEELHOUSE), "-e",
               str(DISTS["enkrypted-crypto-nacl"]))
    sh.env.install_requirements("pynacl")
    res = sh.run("--dev", "--crypto", "crypto-nacl", "run")
    assert res.code == 0, res.err
    assert "crypto backend: pynacl" in res.out
    records = json.loads(sh.run("plugins", "audit", "--json").out)["log"]["records"]
    dev = [r for r in records if r["event"] == "admitted-unverified-dev"]
    assert dev and any("enkrypted-crypto" in d for d in dev[-1]["deps"])
    # the wheel dependency is still verified: tamper with it and dev mode refuses
    target = sh.site() / "enkrypted_crypto" / "cascade.py"
    target.write_text(target.read_text() + "\n# tampered\n")
    assert sh.run("--dev", "--crypto", "crypto-nacl", "run").code == INTEGRITY
