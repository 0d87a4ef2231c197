"""``registry``: ``enkrypted plugins install`` from the registry vs. stock pip from the same index.

One registry, made as an operator makes it (``enkrypted-registry init``; ``publish`` of
enkrypted-p2p, enkrypted-ui-cli and enkrypted-crypto, each with its slot's key; ``serve`` on
127.0.0.1, port 0), from real wheels built from the working tree.  Every sample gets a **fresh**
throw-away environment (``tools.workspace.make_env`` + the enkrypted-shell wheel) and a fresh
``ENKRYPTED_HOME``, made outside the timed span; the timed span is the wall time of one command:

* **verified** (``verified_install_s``): ``ENV/bin/enkrypted plugins install enkrypted-p2p
  enkrypted-ui-cli enkrypted-crypto --index URL`` - first use: TOFU root, TUF refresh, slot roles,
  downloads, provenance verified, trust.toml created, one hash-pinned pip process, records written.
* **pip** (``pip_install_s``): ``ENV/bin/python -m pip install --isolated --no-deps --no-cache-dir
  --index-url URL/simple/ enkrypted-p2p enkrypted-ui-cli enkrypted-crypto`` - the same wheels from
  the same index, run the way the installer runs pip (the environment's interpreter, ``-m pip``).
* **pip_python_flag**: the same through ``.venv/bin/python -m pip --python ENV/bin/python install
  ...`` (pip re-executes itself under the target interpreter: one interpreter more); reported,
  not the contract baseline, because the installer does not pay that.
* **verified_breakdown**: the verified install again, run by a driver that calls the same
  ``enkrypted_shell._cli.main.main`` with thin timers around the installer's steps; it only feeds
  ``verified_breakdown_s``.

Fair on both sides: pip's machine configuration is neutralised (``--isolated`` and
``PIP_CONFIG_FILE=/dev/null``, no ``PIP_*`` variables; the installer does the same), neither uses
pip's cache (the installer passes ``--no-cache-dir``), both compile bytecode (pip's default; the
installer does not pass ``--no-compile``), and ``PYTHONDONTWRITEBYTECODE`` / ``PYTHONPATH`` /
``ENKRYPTED_*`` are dropped from the subprocesses.  Cases run interleaved (order reversed every
other round) after one discarded warm-up round; medians are reported.
"""

from __future__ import annotations

__all__ = ["measure", "run"]

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from common import TIMED_SNIPPET, bench_runs, median, medians_by_key, side_by_side

from tools.workspace import DISTS, build_wheels, make_env

PLUGINS = {"enkrypted-p2p": "p2p", "enkrypted-ui-cli": "ui", "enkrypted-crypto": "crypto"}
TARGET_RATIO = 1.5
DEFAULT_RUNS = 11
TIMEOUT = 300

DRIVER = r'''
import json, sys, time
t0 = time.perf_counter()
import enkrypted_shell._install.installer as ins
import enkrypted_shell._install.release_choice as choice
import enkrypted_shell._install.wheels as wheels
from enkrypted_shell._cli.main import main
t_import = time.perf_counter()

# Thin timers around the installer's steps (a few dozen calls per install; microseconds).
@@TIMED@@
ins.connect = timed("tuf_refresh", ins.connect)
ins._policy = timed("trust_policy", ins._policy)
ins.catalog = timed("tuf_slot_roles", ins.catalog)
wheels.choose = timed("tuf_targetinfo", wheels.choose)
ins.TufClient.download = timed("download", ins.TufClient.download)
wheels.verify_release = timed("provenance_verify", wheels.verify_release)
wheels.check_members = timed("wheel_members", wheels.check_members)
ins.install_verified = timed("pip", ins.install_verified)
ins.install = timed("install", ins.install)
sys.argv[0] = "enkrypted"
t1 = time.perf_counter()
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
t2 = time.perf_counter()
print("BREAKDOWN " + json.dumps({"import_cli": t_import - t0, "main": t2 - t1,
                                 "code": code, **spent}), file=sys.stderr)
'''

STEPS = (
    "tuf_refresh", "trust_policy", "tuf_slot_roles", "tuf_targetinfo", "download",
    "provenance_verify", "wheel_members", "pip",
)


def clean_env(home: Path) -> dict[str, str]:
    """The environment of every timed subprocess: no machine pip configuration, bytecode allowed."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("PIP_", "ENKRYPTED_"))
        and k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    # What the installer sets for its own pip; --isolated below makes pip ignore them anyway.
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env["ENKRYPTED_HOME"] = str(home)
    return env


@contextmanager
def serve_registry(wheels: Mapping[str, Path], work: Path) -> Iterator[str]:
    """An operator environment with the registry wheel; init, publish with slot keys, serve.

    Yields the base URL (``http://127.0.0.1:PORT/``)."""
    operator = make_env(work / "operator")
    operator.install(wheels["enkrypted-shell"], wheels["enkrypted-registry"])  # the registry uses the shell's rules
    tool = operator.bin / "enkrypted-registry"
    environ = clean_env(work / "operator-home")
    registry = work / "registry"
    subprocess.run([str(tool), "init", str(registry)], check=True, capture_output=True,
                   env=environ, timeout=TIMEOUT)
    for dist, slot in PLUGINS.items():
        subprocess.run(
            [str(tool), "publish", str(registry), str(wheels[dist]),
             "--key", str(registry / "keys" / f"{slot}.pem")],
            check=True, capture_output=True, env=environ, timeout=TIMEOUT,
        )
    server = subprocess.Popen(
        [str(tool), "serve", str(registry), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environ,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if not match:
            raise RuntimeError(f"registry did not start: {line!r}")
        yield match.group(1)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _dists_in(site: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in site.glob("enkrypted_*.dist-info"))


class _Case:
    """One side: per sample a fresh env + home (untimed), then the timed command."""

    def __init__(self, name: str, work: Path, shell_wheel: Path, url: str) -> None:
        self.name, self.work, self.shell_wheel, self.url = name, work, shell_wheel, url
        self.count = 0
        self.compiled: list[bool] = []

    def command(self, env_python: Path, env_bin: Path, driver: Path) -> list[str]:
        names = list(PLUGINS)
        simple = f"{self.url}simple/"
        pip_args = ["install", "--isolated", "--no-deps", "--no-cache-dir", "--index-url", simple]
        if self.name == "verified":
            return [str(env_bin / "enkrypted"), "plugins", "install", *names, "--index", self.url]
        if self.name == "verified_breakdown":
            return [str(env_python), str(driver), "plugins", "install", *names, "--index", self.url]
        if self.name == "pip":
            return [str(env_python), "-m", "pip", *pip_args, *names]
        if self.name == "pip_python_flag":
            return [sys.executable, "-m", "pip", "--python", str(env_python), *pip_args, *names]
        raise ValueError(self.name)

    def __call__(self) -> tuple[float, Mapping[str, object]]:
        self.count += 1
        base = self.work / f"{self.name}-{self.count}"
        env = make_env(base / "env", with_pip=True)
        env.install(self.shell_wheel)
        site = env.site_packages
        home = base / "home"
        driver = self.work / "driver.py"
        command = self.command(env.python, env.bin, driver)
        environ = clean_env(home)
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env=environ,
                              cwd=base, timeout=TIMEOUT, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name} failed ({proc.returncode}): {' '.join(command)}\n"
                               f"{proc.stdout}\n{proc.stderr}")
        installed = _dists_in(site)
        want = sorted(["enkrypted_shell", *(d.replace("-", "_") for d in PLUGINS)])
        if installed != want:
            raise RuntimeError(f"{self.name}: installed {installed}, expected {want}")
        extra: dict[str, object] = {
            "bytecode": (site / "enkrypted_crypto" / "__pycache__").is_dir(),
        }
        if self.name.startswith("verified"):
            records = sorted(p.name for p in (home / "provenance").glob("*.json"))
            extra["records"] = len(records)
            extra["tofu"] = "PINNED the TUF root" in proc.stderr
            extra["trust_created"] = (home / "trust.toml").is_file()
        if self.name == "verified_breakdown":
            line = next(x for x in proc.stderr.splitlines() if x.startswith("BREAKDOWN "))
            data = json.loads(line.removeprefix("BREAKDOWN "))
            steps = {k: float(data.get(k, 0.0)) for k in STEPS}
            steps["startup_and_cli"] = elapsed - float(data["install"])
            steps["other"] = float(data["install"]) - sum(steps[k] for k in STEPS)
            extra["breakdown"] = steps
        shutil.rmtree(base, ignore_errors=True)
        return elapsed, extra


def _profile(shell_wheel: Path, url: str, work: Path, top: int = 20) -> list[dict[str, object]]:
    """cProfile (cumulative time) of one verified first-use install in a fresh env and home."""
    base = work / "profile"
    env = make_env(base / "env", with_pip=True)
    env.install(shell_wheel)
    stats = base / "install.prof"
    subprocess.run(
        [str(env.python), "-m", "cProfile", "-o", str(stats), str(env.bin / "enkrypted"),
         "plugins", "install", *PLUGINS, "--index", url],
        check=True, capture_output=True, env=clean_env(base / "home"), cwd=base, timeout=TIMEOUT,
    )
    code = (
        "import json, pstats, sys\n"
        "s = pstats.Stats(sys.argv[1]).stats\n"
        "rows = sorted(s.items(), key=lambda kv: kv[1][3], reverse=True)[:int(sys.argv[2])]\n"
        "print(json.dumps([{'function': f'{fn[0]}:{fn[1]}({fn[2]})', 'calls': v[1],\n"
        "                   'tottime_s': round(v[2], 6), 'cumtime_s': round(v[3], 6)}\n"
        "                  for fn, v in rows]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(stats), str(top)],
                         check=True, capture_output=True, text=True)
    rows: list[dict[str, object]] = json.loads(out.stdout)
    return rows


def measure(
    wheels: Mapping[str, Path], work: Path, runs: int, *, profile: bool | None = None
) -> dict[str, object]:
    """The benchmark over already built ``wheels`` (by distribution name)."""
    (work / "driver.py").write_text(DRIVER.replace("@@TIMED@@", TIMED_SNIPPET), "utf-8")
    with serve_registry(wheels, work) as url:
        cases = {
            name: _Case(name, work, wheels["enkrypted-shell"], url)
            for name in ("verified", "pip", "pip_python_flag", "verified_breakdown")
        }
        timings = side_by_side(cases, runs, warmup=1)
        v, p, pf, vb = (timings[n] for n in cases)
        ratio = v.median / p.median
        result: dict[str, object] = {
            "verified_install_s": round(v.median, 6),
            "pip_install_s": round(p.median, 6),
            "ratio": round(ratio, 3),
            "runs": runs,
            "target_ratio": TARGET_RATIO,
            "within_target": ratio <= TARGET_RATIO,
            "warmup_runs": 1,
            "method": "wall time of one command per sample, each in a fresh env (make_env + shell "
            "wheel) and fresh ENKRYPTED_HOME; 4 cases interleaved, order reversed every other "
            "round; medians",
            "plugins": list(PLUGINS),
            "pip_command": "ENV/bin/python -m pip install --isolated --no-deps --no-cache-dir "
            "--index-url URL/simple/ " + " ".join(PLUGINS),
            "pip_install_via_python_flag_s": round(pf.median, 6),
            "ratio_vs_python_flag": round(v.median / pf.median, 3),
            "overhead_s": round(v.median - p.median, 6),
            "paired_ratio_median": round(
                median([a / b for a, b in zip(v.samples, p.samples, strict=True)]), 3),
            "verified_breakdown_s": medians_by_key(vb.extras, "breakdown"),
            "verified_breakdown_wall_s": round(vb.median, 6),
            "first_use": all(e["tofu"] and e["trust_created"] for e in (*v.extras, *vb.extras)),
            "provenance_records": sorted({str(e["records"]) for e in v.extras}),
            "bytecode_compiled": {
                name: all(bool(e["bytecode"]) for e in timings[name].extras) for name in cases
            },
            "verified_samples_s": [round(s, 6) for s in v.samples],
            "pip_samples_s": [round(s, 6) for s in p.samples],
            "pip_python_flag_samples_s": [round(s, 6) for s in pf.samples],
            "verified_breakdown_samples_s": [round(s, 6) for s in vb.samples],
        }
        if profile or (profile is None and ratio > TARGET_RATIO):
            result["verified_profile_top"] = _profile(wheels["enkrypted-shell"], url, work)
    return result


def run() -> dict[str, object]:
    names = ["enkrypted-shell", "enkrypted-registry", *PLUGINS]
    with tempfile.TemporaryDirectory(prefix="enkrypted-bench-registry-") as tmp:
        work = Path(tmp)
        built = build_wheels([DISTS[name] for name in names], work / "wheels")
        wheels = dict(zip(names, built, strict=True))
        return measure(wheels, work, bench_runs(DEFAULT_RUNS))

