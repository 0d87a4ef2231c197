"""The registry's public tree behind nginx, with the configuration shipped in
docs/examples/nginx-registry.conf: any static host works (issue 9 item 7).

nginx (Debian nginx-light; tools/setup/system-packages.sh installs it for `make test`) runs in the
foreground on a free loopback port with every file it writes (pid, logs, temp paths) in the test's
tmp directory, and is stopped by its PID.  Checked: it serves what `enkrypted-registry serve`
serves (media types, PEP 691 JSON on request, PEP 658 metadata, provenance, TUF metadata, nothing
hidden leaks), stock pip installs a plugin from it into a throw-away venv, and
`enkrypted plugins install` (TUF + provenance) installs the plugin set from it and loads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from enkrypted_registry import Repository, publish
from tests.environments import Environments
from tests.registry.support import PYTHON, pip_env, start_process
from tools.loopback import free_port
from tools.workspace import make_env, plugin_libraries

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "docs" / "examples" / "nginx-registry.conf"
SLOT_OF = {"enkrypted-p2p": "p2p", "enkrypted-p2p-memory": "p2p", "enkrypted-ui-cli": "ui",
           "enkrypted-crypto": "crypto"}
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        pytest.fail("nginx not found: run make test (tools/setup/system-packages.sh installs nginx-light)")
    return found


def main_config(tmp: Path, public: Path, port: int) -> Path:
    """The shipped server configuration, placeholders filled in, inside a minimal main
    configuration that keeps every file nginx writes in ``tmp``."""
    site = tmp / "enkrypted-registry.conf"
    text = TEMPLATE.read_text("utf-8")
    assert "@LISTEN@" in text and "@ROOT@" in text
    site.write_text(text.replace("@LISTEN@", f"127.0.0.1:{port}").replace("@ROOT@", str(public)))
    # Workers drop to `user` only when started as root (CI): the tree is in a 0700 tmp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {name}_temp_path {tmp / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        f"error_log {tmp / 'error.log'} info;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n    access_log {tmp / 'access.log'};\n{temp}\n    include {site};\n}}\n"
    )
    return conf


@dataclass
class Nginx:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def start_nginx(tmp: Path, public: Path) -> Nginx:
    binary = nginx_binary()
    port = free_port()
    conf = main_config(tmp, public, port)
    error_log = tmp / "error.log"
    test = subprocess.run(
        [binary, "-t", "-p", str(tmp), "-e", str(error_log), "-c", str(conf)],
        capture_output=True, text=True, timeout=30,
    )
    assert test.returncode == 0, test.stderr
    proc = subprocess.Popen(
        [binary, "-p", str(tmp), "-e", str(error_log), "-c", str(conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"nginx did not start:\n{error_log.read_text()}") from None
            time.sleep(0.05)
    return Nginx(f"http://127.0.0.1:{port}/", proc, error_log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGQUIT)  # graceful shutdown of the master we started, by its PID
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def built(dist_wheels: dict[str, Path]) -> dict[str, Path]:
    return {n: dist_wheels[n] for n in ["enkrypted-shell", *SLOT_OF]}


@pytest.fixture(scope="module")
def registry(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Repository:
    repo = Repository.init(tmp_path_factory.mktemp("nginx-registry") / "registry")
    for dist, slot in SLOT_OF.items():
        publish(repo, [built[dist]], repo.key(slot))
    (repo.public / "leak.pem").write_text("-----BEGIN PRIVATE KEY-----\n")  # must never be served
    (repo.public / "tuf" / ".timestamp.json.tmp").write_text("{}")
    return repo


@pytest.fixture(scope="module")
def nginx(registry: Repository, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    server = start_nginx(tmp_path_factory.mktemp("nginx"), registry.public)
    try:
        yield server
    finally:
        stop(server.process)


@pytest.fixture(scope="module")
def served(registry: Repository) -> Iterator[str]:
    """The registry's own server on the same tree, to compare with."""
    proc, url = start_process(
        [PYTHON, "-m", "enkrypted_registry", "serve", str(registry.root), "--port", "0"],
        r"^serving (http://127\.0\.0\.1:\d+/)$",
    )
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def get(url: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def media(headers: dict[str, str]) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip()


# -------------------------------------------------------------------------------------- tests
def test_nginx_serves_what_the_registry_serves(
    nginx: Nginx, served: str, registry: Repository
) -> None:
    wheel = next((registry.public / "plugins" / "p2p").glob("enkrypted_p2p-*.whl")).relative_to(registry.public)
    paths = [
        ("simple/", None),
        ("simple/", JSON_TYPE),
        ("simple/enkrypted-p2p/", None),
        ("simple/enkrypted-p2p/", "text/html"),
        ("simple/enkrypted-p2p/", JSON_TYPE),
        ("simple/enkrypted-p2p/", PIP_ACCEPT),
        (f"{wheel}", None),
        (f"{wheel}.metadata", None),
        (f"{wheel}.provenance", None),
        ("tuf/timestamp.json", None),
        ("tuf/1.root.json", None),
    ]
    for path, accept in paths:
        ours, theirs = get(nginx.url + path, accept), get(served + path, accept)
        assert ours[0] == theirs[0] == 200, (path, accept, ours[0], theirs[0])
        assert media(ours[1]) == media(theirs[1]), (path, accept, ours[1], theirs[1])
        assert ours[2] == theirs[2], (path, accept)
        if path.startswith("simple/") and path != "simple/":
            assert ours[1].get("Vary") == "Accept"
    status, headers, body = get(nginx.url + "simple/enkrypted-p2p/", PIP_ACCEPT)
    doc = json.loads(body)
    assert media(headers) == JSON_TYPE and doc["name"] == "enkrypted-p2p"
    (entry,) = doc["files"]
    assert entry["provenance"].endswith(".provenance") and entry["core-metadata"]
    assert get(nginx.url + f"{wheel}.metadata")[2].startswith(b"Metadata-Version")
    assert "no-cache" in get(nginx.url + "tuf/timestamp.json")[1].get("Cache-Control", "")
    # a directory without its slash: redirected on the same host and port
    status, headers, _ = get(nginx.url + "simple/enkrypted-p2p")
    assert status == 200 and media(headers) == "text/html"


def test_nginx_hides_keys_and_dot_files(nginx: Nginx) -> None:
    for path in ("leak.pem", "LEAK.PEM", "tuf/.timestamp.json.tmp", "../registry.json",
                 "%2e%2e/keys/root.pem", "keys/root.pem"):
        assert get(nginx.url + path)[0] in (400, 404), path


def test_stock_pip_installs_from_nginx(nginx: Nginx, registry: Repository, tmp_path: Path) -> None:
    env = make_env(tmp_path / "venv")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env.python), "install", "--isolated",
         "--index-url", f"{nginx.url}simple/", "--no-deps", "enkrypted-p2p"],
        capture_output=True, text=True, env=pip_env(), timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (dist_info,) = env.site_packages.glob("enkrypted_p2p-*.dist-info")
    assert (env.site_packages / "enkrypted_p2p" / "enkrypted-plugin.toml").is_file()
    # pip fetched the file the registry published (pip checks the index's #sha256= too)
    wheel = next((registry.public / "plugins" / "p2p").glob("enkrypted_p2p-*.whl"))
    assert dist_info.name.startswith(wheel.name.split("-py3")[0])
    assert hashlib.sha256(wheel.read_bytes()).hexdigest() in get(f"{nginx.url}simple/enkrypted-p2p/")[2].decode()
    assert "GET /simple/enkrypted-p2p/" in (nginx.log.parent / "access.log").read_text()


def test_enkrypted_plugins_install_from_nginx(
    nginx: Nginx, built: dict[str, Path], tmp_path: Path, environments: Environments
) -> None:
    # the shell and the plugins' libraries; pip too: `plugins install` runs this env's pip
    env = environments.make(tmp_path / "env", built["enkrypted-shell"],
                            requirements=plugin_libraries(), with_pip=True)
    home = tmp_path / "home"
    drop = ("PYTHONPATH", "ENKRYPTED_DEV", "ENKRYPTED_ALLOW_UNSIGNED", "ENKRYPTED_INDEX")
    environ = {k: v for k, v in os.environ.items() if k not in drop} | {"ENKRYPTED_HOME": str(home)}

    def enkrypted(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(env.bin / "enkrypted"), *args],
            capture_output=True, text=True, env=environ, timeout=180,
        )

    res = enkrypted("plugins", "install", *SLOT_OF, "--index", nginx.url,
                    "--python", str(env.python))
    assert res.returncode == 0, res.stderr
    assert "PINNED the TUF root" in res.stderr  # TUF: trust on first use of this index, loudly
    records = {p.stem: json.loads(p.read_text()) for p in (home / "provenance").glob("*.json")}
    assert set(records) == set(SLOT_OF)
    assert all(r["index"] == nginx.url + "simple/" or r["index"] == nginx.url for r in records.values())
    # two p2p plugins: the offline scripted run chooses the in-process one
    verify = enkrypted("--p2p", "p2p-memory", "plugins", "verify", "--json")  # signed, no downgrade
    assert verify.returncode == 0, verify.stderr
    assert {p["slot"] for p in json.loads(verify.stdout)["plugins"]} == set(SLOT_OF.values())
    assert enkrypted("--p2p", "p2p-memory", "run").returncode == 0
    refresh = enkrypted("plugins", "refresh")  # TUF refresh against nginx too
    assert refresh.returncode == 0, refresh.stderr
    access = (nginx.log.parent / "access.log").read_text()
    assert "GET /tuf/timestamp.json" in access and ".provenance HTTP" in access
