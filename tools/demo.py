"""`make demo`: what an operator and a user see, end to end, on the embedded defaults.

1. build real wheels of the shell, the registry and the plugins;
2. operator: `enkrypted-registry init`, `publish` each plugin with its slot's key, `serve` on loopback;
3. user: a fresh environment with the shell; `enkrypted plugins install … --index URL` (TUF refresh,
   provenance verified against the slot policy, hash-pinned pip install);
4. `plugins verify` (and what it did not select, and why), `plugins lock` (the plugins and every
   file of every library they run on), `plugins graph`, then, with the embedded broker
   (`enkrypted broker --locked`), `run --locked`: the ui plugin's scripted conversation between
   two peers through the p2p and crypto plugins (cascade MLS -> Signal -> ML-KEM -> AES).  Two ui
   plugins are installed: the terminal ``ui-cli`` (chosen) and the browser ``ui-web`` (its graph
   shows the digests of the page files it would serve; `enkrypted --ui ui-web chat` starts it);
5. two people in separate `--locked` processes with encrypted profiles (tools/demo_chat.py):
   Alice listens, Bob connects by her peer id and sends with receipts, then a 3 MiB file;
6. a group of three (tools/demo_group.py): Carol joins, each keeps `listen --id` running, Alice
   creates the group and adds the others by peer id, everyone writes, Carol is removed and does
   not read what follows;
7. the swap to the PyNaCl crypto plugin (`--crypto crypto-nacl`, locked by a second lock file):
   refused against pyca's MLS-requiring default, negotiated without MLS when both swap;
8. a refusal on purpose: a library file edited after the lock is refused, named, before it runs;
9. `plugins audit`: who published what, and the hash-chained record of what was loaded.
Every process the demo starts is stopped by its PID, on failure, Ctrl-C and SIGTERM too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.demo_chat import Broker, file_transfer, swap_backends, two_peer_chat
from tools.demo_group import group_chat
from tools.loopback import free_port
from tools.workspace import DISTS, ROOT, build_wheels, make_env, plugin_libraries

DEMO = ROOT / ".demo"
PLUGINS = {"enkrypted-p2p": "p2p", "enkrypted-p2p-memory": "p2p", "enkrypted-ui-cli": "ui",
           "enkrypted-ui-web": "ui", "enkrypted-crypto": "crypto", "enkrypted-crypto-nacl": "crypto"}


def choice(broker_port: int) -> str:
    """The demo's config.toml: which plugin fills each slot, and the p2p settings (ICE pinned to
    loopback, the embedded broker), so nothing leaves the machine."""
    return ('[plugins]\np2p = "p2p-webrtc"\ncrypto = "crypto-pyca"\nui = "ui-cli"\n\n[settings.p2p]\n'
            f'broker_url = "ws://127.0.0.1:{broker_port}/"\n'
            'host_addresses = ["127.0.0.1"]\nremote_networks = ["127.0.0.0/8"]\n')


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def sh(*args: str | Path, env: dict[str, str], expect: int = 0) -> None:
    print("$", " ".join(str(a) for a in args).replace(str(DEMO), ".demo"), flush=True)
    code = subprocess.run([str(a) for a in args], check=False, env=env).returncode
    if code != expect:
        raise SystemExit(f"demo failed: {args[0]} exited {code} (expected {expect})")


def main() -> int:
    # a SIGTERM unwinds like Ctrl-C: the `finally` blocks stop every process the demo started
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    started = time.monotonic()
    shutil.rmtree(DEMO, ignore_errors=True)
    step("building wheels")
    names = ["enkrypted-shell", "enkrypted-registry", *PLUGINS]
    wheels = dict(zip(names, build_wheels([DISTS[n] for n in names], DEMO / "wheels"), strict=True))
    env = make_env(DEMO / "env", with_pip=True)
    env.install(wheels["enkrypted-shell"], wheels["enkrypted-registry"])
    environ = {**os.environ, "ENKRYPTED_HOME": str(DEMO / "home")}
    environ.pop("PYTHONPATH", None)
    registry, tool, user = DEMO / "registry", env.bin / "enkrypted-registry", env.bin / "enkrypted"

    step("operator: a private plugin index with TUF metadata and per-slot publisher keys")
    sh(tool, "init", registry, env=environ)
    for dist, slot in PLUGINS.items():
        sh(tool, "publish", registry, wheels[dist], "--key", registry / "keys" / f"{slot}.pem",
           env=environ)
    server = subprocess.Popen([str(tool), "serve", str(registry), "--port", "0"],
                              stdout=subprocess.PIPE, text=True, env=environ)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[-1]
        print(f"serving {url}")
        step("user: the plugins' third-party libraries (aiohttp, redis, aiortc, ...), as pip installs them")
        env.install_requirements(*plugin_libraries())
        step("user: install the plugins from the index (TUF + signed provenance + hash-pinned pip)")
        sh(user, "plugins", "install", "enkrypted-p2p", "enkrypted-p2p-memory", "enkrypted-ui-cli",
           "enkrypted-ui-web", "enkrypted-crypto", "enkrypted-crypto-nacl", "--index", url,
           env=environ)
        step("user: two plugins fill the p2p slot and two the crypto slot; config.toml chooses")
        port = free_port()
        (DEMO / "home").mkdir(parents=True, exist_ok=True)
        (DEMO / "home" / "config.toml").write_text(choice(port), encoding="utf-8")
        print(choice(port), end="", flush=True)
        for args in (["plugins", "verify"], ["plugins", "lock"], ["plugins", "graph"],
                     ["--ui", "ui-web", "plugins", "graph"]):
            step("enkrypted " + " ".join(args))
            sh(user, *args, env=environ)
        with Broker(user, environ, port, ["--locked"]):
            _people(user, environ, port, env.site_packages)
        step("enkrypted plugins audit")
        sh(user, "plugins", "audit", env=environ)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"\ndemo complete in {time.monotonic() - started:.0f} s: try `.demo/env/bin/enkrypted "
          "--help` with ENKRYPTED_HOME=.demo/home")
    return 0


def _people(user: Path, environ: dict[str, str], port: int, site: Path) -> None:
    """Everything that talks through the broker on ``port``: the scripted run, two people, a
    file, a group of three, the crypto swap, and the refusal on purpose."""
    step("enkrypted run --locked: the ui's scripted conversation, alice and bob over WebRTC")
    sh(user, "run", "--locked", env=environ)
    step("two people: separate processes, each with its own encrypted profile, --locked")
    keys = two_peer_chat(user, environ, port, ["--locked"])
    step("a file: Bob sends, Alice keeps it encrypted in her profile and exports a copy")
    file_transfer(user, environ, DEMO / "files", ["--locked"])
    step("a group of three: Carol joins; each keeps `listen --id` running, --locked")
    group_chat(user, environ, keys, DEMO / "group", ["--locked"])
    step("swap: the PyNaCl backend (--crypto crypto-nacl), locked by a second lock")
    nacl_lock = DEMO / "home" / "plugins-nacl.lock.toml"
    sh(user, "--crypto", "crypto-nacl", "--lock", nacl_lock, "plugins", "lock", env=environ)
    swap_backends(user, environ, nacl_lock)
    _refusal_on_purpose(site, user, environ)


def _refusal_on_purpose(site: Path, user: Path, environ: dict[str, str]) -> None:
    """Edit a library after the lock: --locked refuses it, naming the file, before its code runs."""
    target = site / "pluggy" / "_hooks.py"
    original = target.read_bytes()
    step("attack: append a line to pluggy/_hooks.py after locking; run --locked must refuse (exit 12)")
    target.write_bytes(original + b"\nprint('this line must never run')\n")
    try:
        sh(user, "run", "--locked", env=environ, expect=12)
    finally:
        target.write_bytes(original)
    print("fix: reinstall the library (pip install --force-reinstall pluggy==...) - restored here")
    sh(user, "run", "--locked", env=environ)


if __name__ == "__main__":
    sys.exit(main())
