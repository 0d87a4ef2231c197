"""`make demo`: what a user of the embedded defaults sees, end to end.

1. build real wheels of the shell and the three plugins;
2. install them (not editable) into a fresh environment under .demo/;
3. `enkrypted plugins verify`, `plugins lock`, `plugins graph`;
4. `enkrypted run --locked`: the shell verifies, loads and hands over to the ui plugin, which runs a
   scripted conversation between two peers through the p2p and crypto plugins;
5. `enkrypted plugins audit`: the hash-chained record of what was loaded.
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
CORE = ["enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto"]


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def main() -> int:
    shutil.rmtree(DEMO, ignore_errors=True)
    step("building wheels")
    wheels = build_wheels([DISTS[n] for n in CORE], DEMO / "wheels")
    for w in wheels:
        print("  ", w.name)
    step("installing them into .demo/env (not editable)")
    env = make_env(DEMO / "env")
    env.install(*wheels)
    environ = {**os.environ, "ENKRYPTED_HOME": str(DEMO / "home")}
    environ.pop("PYTHONPATH", None)
    for args in (["plugins", "verify"], ["plugins", "lock"], ["plugins", "graph"],
                 ["run", "--locked"], ["plugins", "audit"]):
        step("enkrypted " + " ".join(args))
        code = subprocess.run([str(env.bin / "enkrypted"), *args], env=environ).returncode
        if code:
            print(f"demo failed: enkrypted {' '.join(args)} exited {code}", file=sys.stderr)
            return code
    print("\ndemo complete: try `.demo/env/bin/enkrypted --help` with ENKRYPTED_HOME=.demo/home")
    return 0


if __name__ == "__main__":
    sys.exit(main())
