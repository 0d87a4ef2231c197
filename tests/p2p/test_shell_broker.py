"""``enkrypted broker`` through the real shell: wheels built from this tree, installed into a
throw-away environment, the shell verifies and loads the plugin set, then runs the p2p plugin's
command; a client registers with it; the process is stopped by its PID."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
from pathlib import Path

import pytest

from enkrypted_p2p.signaling import ClientConfig, Opened, SignalingClient
from tests.environments import Environments

CORE = ["enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto"]


@pytest.mark.e2e
@pytest.mark.slow
def test_enkrypted_broker_runs_through_the_shell(
    tmp_path: Path, dist_wheels: dict[str, Path], environments: Environments
) -> None:
    env = environments.make(tmp_path / "env", *(dist_wheels[n] for n in CORE))
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ENKRYPTED_DEV")}
    environ.update(ENKRYPTED_HOME=str(tmp_path / "home"), ENKRYPTED_ALLOW_UNSIGNED="1")
    listed = subprocess.run([str(env.bin / "enkrypted"), "--help"], capture_output=True,
                            text=True, env=environ, timeout=120, check=True).stdout
    assert "broker" in listed
    proc = subprocess.Popen([str(env.bin / "enkrypted"), "broker", "--port", "0", "--key", "k1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)  # the shell loads, then it listens
        assert ready, "no 'listening on' line within 60 s"
        line = proc.stdout.readline()
        assert line.startswith("listening on ws://127.0.0.1:"), (line, proc.poll())
        port = int(line.rsplit(":", 1)[1].split("/", 1)[0])

        async def register() -> None:
            async with SignalingClient(ClientConfig(port=port, key="k1"), "via-shell") as client:
                assert isinstance(await client.next_event(), Opened)

        asyncio.run(asyncio.wait_for(register(), 30))
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
