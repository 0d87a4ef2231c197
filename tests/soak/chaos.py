"""The soak run: peer processes in pairs over real WebRTC through our broker(s), a seeded chaos
driver, RSS sampling, and the report (docs/operations.md "Soak run").

Every process is started here and stopped by its own PID (SIGTERM, SIGKILL after 3 s); every wait
is bounded; the chaos schedule comes from one seed that is printed first, so a failing run can be
replayed with ``ENKRYPTED_SOAK_SEED``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.p2p.servers import ROOT, SRC, Server, rss_kb, start_our_broker, stop
from tests.soak import ledger

PATHS = [*SRC, ROOT / "plugins" / "cryptography" / "src", ROOT]
CHAOS = ("drop", "kill", "restart", "broker")


@dataclass(frozen=True)
class SoakSettings:
    pairs: int = 3
    seconds: float = 45.0
    """The chaos phase (``ENKRYPTED_SOAK_SECONDS``); warm-up, drain and stop come on top."""
    rate: float = 2.0
    """Messages per second each peer sends to its partner."""
    warmup: float = 15.0
    gap: tuple[float, float] = (3.0, 7.0)
    """Seconds between two chaos actions (uniform)."""
    drain: float = 150.0
    """After the chaos: how long everything sent may take to be delivered and acknowledged."""
    rss_bound_kb: int = 32 * 1024
    rss_bound_ratio: float = 0.25
    """A process may grow by max(rss_bound_kb, ratio x its warm RSS) between warm-up and end."""
    seed: int = 0

    @classmethod
    def from_env(cls, **overrides: Any) -> SoakSettings:
        values: dict[str, Any] = {"seed": random.SystemRandom().randrange(2**31)}
        if os.environ.get("ENKRYPTED_SOAK_SECONDS"):
            values["seconds"] = float(os.environ["ENKRYPTED_SOAK_SECONDS"])
        if os.environ.get("ENKRYPTED_SOAK_SEED"):
            values["seed"] = int(os.environ["ENKRYPTED_SOAK_SEED"])
        if os.environ.get("ENKRYPTED_SOAK_PAIRS"):
            values["pairs"] = int(os.environ["ENKRYPTED_SOAK_PAIRS"])
        values.update(overrides)
        return cls(**values)


class PeerProcess:
    """One soak peer and its restarts; the state dir (identity, sessions, events) outlives them."""

    def __init__(self, name: str, partner: str, dial: bool, broker: Callable[[], str],
                 state: Path, rate: float) -> None:
        self.name, self.partner, self.dial, self.broker = name, partner, dial, broker
        self.state, self.rate = state, rate
        state.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills: list[float] = []  # when it was SIGKILLed (wall clock)
        self.started_at = 0.0

    def start(self) -> None:
        argv = [sys.executable, "-m", "tests.soak.soak_peer", "--broker", self.broker(),
                "--id", self.name, "--partner", self.partner, "--state-dir", str(self.state),
                "--rate", str(self.rate), "--max-seconds", "3600"]
        if self.dial:
            argv.append("--dial")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in PATHS)}
        with (self.state / "stderr.log").open("ab") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=err, env=env, cwd=ROOT)
        self.started_at = time.monotonic()

    def command(self, line: str) -> None:
        if self.proc is not None and self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write(line.encode() + b"\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if sig == signal.SIGKILL and self.proc.poll() is None:
            self.kills.append(time.time())
        stop(self.proc, sig)  # type: ignore[arg-type]
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None or self.proc.poll() is not None else self.proc.pid

    def events(self) -> list[dict[str, Any]]:
        return ledger.read_events(self.state)


@dataclass
class RssSeries:
    """VmRSS samples of one process incarnation (kB)."""

    name: str
    pid: int
    samples: list[tuple[float, int]] = field(default_factory=list)


class RssSampler(threading.Thread):
    """Samples VmRSS of every live peer and broker once a second (a daemon thread)."""

    def __init__(self, targets: Callable[[], list[tuple[str, int | None]]]) -> None:
        super().__init__(daemon=True)
        self.targets = targets
        self.series: dict[int, RssSeries] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            now = time.monotonic()
            for name, pid in self.targets():
                if pid is None:
                    continue
                try:
                    kb = rss_kb(pid)
                except (OSError, RuntimeError, ValueError):
                    continue  # it just ended
                self.series.setdefault(pid, RssSeries(name, pid)).samples.append((now, kb))


class Soak:
    """``with Soak(tmp, settings, brokers=...) as soak: report = soak.run()``."""

    def __init__(self, tmp: Path, settings: SoakSettings, broker_extra: tuple[str, ...] = (),
                 brokers: int = 1) -> None:
        self.tmp, self.settings, self.broker_extra = tmp, settings, broker_extra
        self.rng = random.Random(settings.seed)  # a replayable chaos schedule
        self.brokers: list[Server] = [start_our_broker(tmp, extra=broker_extra)
                                      for _ in range(brokers)]
        self.actions: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.peers: list[PeerProcess] = []
        for i in range(settings.pairs):
            a, b = f"a{i}", f"b{i}"
            # With two brokers the dialler registers on the first, its partner on the second:
            # every conversation's signaling crosses Redis.
            self.peers.append(PeerProcess(a, b, True, self._url(0), tmp / a, settings.rate))
            self.peers.append(PeerProcess(b, a, False, self._url(brokers - 1), tmp / b,
                                          settings.rate))
        self.sampler = RssSampler(self._targets)
        self.died: list[str] = []

    def _url(self, index: int) -> Callable[[], str]:
        return lambda: f"ws://127.0.0.1:{self.brokers[index].port}/"

    def _targets(self) -> list[tuple[str, int | None]]:
        brokers: list[tuple[str, int | None]] = [
            (f"broker{i}", b.proc.pid if b.proc.poll() is None else None)
            for i, b in enumerate(self.brokers)]
        return brokers + [(p.name, p.pid) for p in self.peers]

    def log(self, what: str, **fields: Any) -> None:
        entry = {"t": round(time.monotonic() - self.t0, 2), "action": what, **fields}
        self.actions.append(entry)
        print("soak:", json.dumps(entry), flush=True)

    # ------------------------------------------------------------------ phases
    def run(self) -> dict[str, Any]:
        s = self.settings
        self.log("seed", seed=s.seed, pairs=s.pairs, seconds=s.seconds, rate=s.rate,
                 brokers=len(self.brokers))
        for peer in sorted(self.peers, key=lambda p: p.dial):  # acceptors register first
            peer.start()
        self.sampler.start()
        self.wait_ready(240.0)
        time.sleep(s.warmup)
        warm = time.monotonic()
        self.log("chaos-start")
        self.chaos(warm + s.seconds)
        self.log("quiet")
        for peer in self.peers:
            peer.command("quiet")
        drained = self.drain(s.drain)
        self.log("drained" if drained else "drain-timeout")
        end = time.monotonic()
        self.died = [p.name for p in self.peers if p.proc is not None and p.proc.poll() is not None]
        for peer in self.peers:
            peer.stop()
        self.sampler.halt.set()
        return self.report(warm, end)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(any(e["e"] == "ready" for e in p.events()) for p in self.peers):
                self.log("all-ready")
                return
            for p in self.peers:
                if p.proc is not None and p.proc.poll() is not None:
                    raise RuntimeError(f"{p.name} exited with {p.proc.returncode}: "
                                       f"{(p.state / 'stderr.log').read_text()[-2000:]}")
            time.sleep(0.5)
        raise TimeoutError(f"the pairs were not all ready within {timeout:g} s")

    def chaos(self, until: float) -> None:
        kinds = list(CHAOS)
        self.rng.shuffle(kinds)  # each kind at least once, then at random
        while True:
            time.sleep(self.rng.uniform(*self.settings.gap))
            if time.monotonic() >= until:
                return
            kind = kinds.pop() if kinds else self.rng.choice(CHAOS)
            getattr(self, f"_{kind}")()

    def _drop(self) -> None:
        peer = self.rng.choice(self.peers)
        self.log("drop", peer=peer.name)
        peer.command("drop")

    def _kill(self) -> None:
        self._restart_peer(signal.SIGKILL)

    def _restart(self) -> None:
        self._restart_peer(signal.SIGTERM)

    def _restart_peer(self, sig: int) -> None:
        peer = self.rng.choice(self.peers)
        down = self.rng.uniform(0.2, 3.0)
        self.log("kill" if sig == signal.SIGKILL else "restart", peer=peer.name,
                 pid=peer.pid, down_s=round(down, 2))
        peer.stop(sig)
        time.sleep(down)
        peer.start()

    def _broker(self) -> None:
        index = self.rng.randrange(len(self.brokers))
        sig = self.rng.choice((signal.SIGKILL, signal.SIGTERM))
        down = self.rng.uniform(0.2, 2.0)
        old = self.brokers[index]
        self.log("broker", broker=index, signal=signal.Signals(sig).name, port=old.port,
                 down_s=round(down, 2))
        stop(old.proc, sig)
        time.sleep(down)
        self.brokers[index] = start_our_broker(self.tmp, extra=self.broker_extra, port=old.port)

    def drain(self, timeout: float) -> bool:
        """Until every confirmed message is delivered and acknowledged (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pending():
                return True
            time.sleep(1.0)
        return False

    def pending(self) -> int:
        events = {p.name: p.events() for p in self.peers}
        waiting = 0
        for p in self.peers:
            sent = {e["id"] for e in events[p.name] if e["e"] == "sent"}
            got = {e["id"] for e in events[p.partner] if e["e"] == "msg"}
            acked = {e["id"] for e in events[p.name] if e["e"] == "receipt"}
            waiting += len(sent - got) + len(sent - acked)
        return waiting

    # ------------------------------------------------------------------ the verdict
    def directions(self) -> list[ledger.Direction]:
        by_name = {p.name: p for p in self.peers}
        out = []
        for p in self.peers:
            r = by_name[p.partner]
            out.append(ledger.direction(
                p.name, p.events(), r.name, r.events(), s_kills=p.kills,
                s_final_unacked=ledger.unacknowledged(p.state, p.partner)))
        return out

    def rss(self, warm: float, end: float) -> dict[str, Any]:
        """Growth of each incarnation that lived from warm-up (its own, after a restart) to end."""
        s = self.settings
        rows = []
        for series in self.sampler.series.values():
            start = series.samples[0][0]
            base_at = max(warm, start + s.warmup)
            base = [kb for t, kb in series.samples if t >= base_at]
            last = [kb for t, kb in series.samples if t <= end]
            if not base or series.samples[-1][0] - base_at < 20.0:
                continue  # too short-lived to say anything about growth
            growth = last[-1] - base[0]
            bound = max(s.rss_bound_kb, int(s.rss_bound_ratio * base[0]))
            rows.append({"name": series.name, "pid": series.pid, "warm_kb": base[0],
                         "end_kb": last[-1], "peak_kb": max(kb for _, kb in series.samples),
                         "growth_kb": growth, "bound_kb": bound,
                         "span_s": round(series.samples[-1][0] - base_at, 1)})
        return {"processes": rows,
                "peak_peer_kb": max((kb for x in self.sampler.series.values()
                                     if not x.name.startswith("broker")
                                     for _, kb in x.samples), default=0),
                "peak_broker_kb": max((kb for x in self.sampler.series.values()
                                       if x.name.startswith("broker")
                                       for _, kb in x.samples), default=0)}

    def report(self, warm: float, end: float) -> dict[str, Any]:
        directions = self.directions()
        events = [e for p in self.peers for e in p.events()]
        counts = {kind: sum(a["action"] == kind for a in self.actions) for kind in CHAOS}
        return {
            "seed": self.settings.seed,
            "pairs": self.settings.pairs,
            "brokers": len(self.brokers),
            "chaos_seconds": self.settings.seconds,
            "wall_seconds": round(end - self.t0, 1),
            "chaos": counts,
            **ledger.summary(directions),
            "reconnections": sum(e["e"] == "ready" for e in events) - 2 * self.settings.pairs,
            "resumed": sum(e["e"] == "ready" and e["resumed"] for e in events),
            "rss": self.rss(warm, end),
            "failures": ledger.failures(directions) + [
                f"{name} exited by itself (see its stderr.log)" for name in self.died],
        }

    def close(self) -> None:
        self.sampler.halt.set()
        for peer in self.peers:
            peer.stop()
        for broker in self.brokers:
            stop(broker.proc)


@contextmanager
def soak(tmp: Path, settings: SoakSettings, **kw: Any) -> Iterator[Soak]:
    run = Soak(tmp, settings, **kw)
    try:
        yield run
    finally:
        run.close()
