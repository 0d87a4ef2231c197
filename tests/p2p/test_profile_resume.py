"""Sessions resume after both processes restart, from the encrypted profile store (P7.4 from disk).

Two people, each with an encrypted profile, chat through the real verified shell (wheels from this
tree) over WebRTC on loopback with stable peer ids. Both processes end; on the next run the
session resumes without a new handshake (``resumed: true`` on both sides, the same safety
number), and nothing of the first run is delivered again. Both identities are the profiles'
(`enkrypted id`), so each side sees the same fingerprint in both runs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.environments import Environments
from tests.p2p.servers import Server

PASSPHRASE = "resume from disk"


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_both_peers_restart_and_resume_from_their_profiles(
    tmp_path: Path, our_broker: Server, dist_wheels: dict[str, Path], environments: Environments
) -> None:
    core = ["enkrypted-shell", "enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto"]
    env = environments.make(tmp_path / "env", *(dist_wheels[n] for n in core))
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[settings.p2p]\nbroker_url = "ws://127.0.0.1:{our_broker.port}/"\n'
        'host_addresses = ["127.0.0.1"]\nremote_networks = ["127.0.0.0/8"]\n', encoding="utf-8")
    skip = ("PYTHONPATH", "ENKRYPTED_DEV", "ENKRYPTED_PROFILE")
    environ = {**{k: v for k, v in os.environ.items() if k not in skip},
               "ENKRYPTED_HOME": str(home), "ENKRYPTED_ALLOW_UNSIGNED": "1",
               "ENKRYPTED_PASSPHRASE": PASSPHRASE}
    enkrypted = str(env.bin / "enkrypted")
    for name in ("alice", "bob"):
        subprocess.run([enkrypted, "profile", "create", name], env=environ, check=True,
                       capture_output=True, timeout=120)

    def conversation(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        alice = subprocess.Popen([enkrypted, "--profile", "alice", "listen", "--id", "alice",
                                  "--count", "1"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=environ)
        try:
            assert alice.stdout is not None
            first = _events(alice.stdout.readline())
            assert first and first[0]["event"] == "listening", alice.stderr
            bob = subprocess.run([enkrypted, "--profile", "bob", "send", "--id", "bob", "alice",
                                  text], capture_output=True, text=True, env=environ,
                                 timeout=180, check=False)
            assert bob.returncode == 0, (bob.stdout, bob.stderr[-2000:])
            rest, err = alice.communicate(timeout=120)
            assert alice.returncode == 0, err[-2000:]
            return first + _events(rest), _events(bob.stdout)
        finally:
            if alice.poll() is None:
                alice.kill()
                alice.wait(10)

    alice1, bob1 = conversation("first run")
    alice2, bob2 = conversation("after both restarted")

    def ready(events: list[dict[str, Any]]) -> dict[str, Any]:
        return next(e for e in events if e["event"] == "ready")

    assert (ready(alice1)["resumed"], ready(bob1)["resumed"]) == (False, False)
    assert (ready(alice2)["resumed"], ready(bob2)["resumed"]) == (True, True)
    assert ready(bob2)["safety_number"] == ready(bob1)["safety_number"]
    assert ready(bob2)["fingerprint"] == ready(bob1)["fingerprint"]  # alice's profile identity
    texts = [e["text"] for e in alice1 + alice2 if e["event"] == "message"]
    assert texts == ["first run", "after both restarted"]  # each once, nothing replayed
    assert sum(e["event"] == "receipt" for e in bob2) == 1
