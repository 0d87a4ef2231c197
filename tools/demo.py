"""`make demo`: what an operator and a user see, end to end, on the embedded defaults.

1. build real wheels of the shell, the registry and the plugins;
2. operator: `enkrypted-registry init`, `publish` each plugin with its slot's key, `serve` on loopback;
3. user: a fresh environment with the shell; `enkrypted plugins install … --index URL` (TUF refresh,
   provenance verified against the slot policy, hash-pinned pip install);
4. `plugins verify`, `plugins lock`, `plugins graph`, then `run --locked`: the shell verifies,
   loads and hands over to the ui plugin, which runs a scripted conversation between two peers
   through the p2p and crypto plugins;
5. `plugins audit`: who published what, and the hash-chained record of what was loaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.workspace import DISTS, ROOT, build_wheels, make_env

DEMO = ROOT / ".demo"
PLUGINS = {"enkrypted-p2p": "p2p", "enkrypted-ui-cli": "ui", "enkrypted-crypto": "crypto",
           "enkrypted-crypto-nacl": "crypto"}


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def sh(*args: str | Path, env: dict[str, str]) -> None:
    print("$", " ".join(str(a) for a in args).replace(str(DEMO), ".demo"), flush=True)
    code = subprocess.run([str(a) for a in args], check=False, env=env).returncode
    if code:
        raise SystemExit(f"demo failed: {args[0]} exited {code}")


def main() -> int:
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
        step("user: install the plugins from the index (TUF + signed provenance + hash-pinned pip)")
        sh(user, "plugins", "install", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto",
           "--index", url, env=environ)
        for args in (["plugins", "verify"], ["plugins", "lock"], ["plugins", "graph"],
                     ["run", "--locked"], ["plugins", "audit"]):
            step("enkrypted " + " ".join(args))
            sh(user, *args, env=environ)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print("\ndemo complete: try `.demo/env/bin/enkrypted --help` with ENKRYPTED_HOME=.demo/home")
    return 0


if __name__ == "__main__":
    sys.exit(main())
