"""`make demo` end to end, non-interactively: the README's first command must show the mission.

Runs ``tools/demo.py`` as a user would and asserts on its outcome: every step ran, the two peer
processes delivered every message once with receipts and agreed on the safety number, a file
arrived with its hash verified by the receiving process, a group of three formed (members shown
with their profiles' fingerprints) and each member's message was read once by the two others with
receipts, the member removed did not read the next message, the swap ran locked, the refusal on
purpose was refused, the audit names every installed plugin with its signer, and no process the
demo started is left running.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _processes_under(folder: Path) -> list[str]:
    """Command lines of live processes that run something inside ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(part.decode(errors="replace") for part in argv if part)
        if str(folder) in line:
            found.append(line)
    return found


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_the_demo_shows_two_processes_and_a_group_of_three_chatting_and_leaves_nothing_running(
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ENKRYPTED_HOME")}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=540, check=False)
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-4000:]
    assert "demo complete" in out
    chat = re.search(r"two processes, (\d+) messages delivered once each and receipted in "
                     r"[\d.]+ s; layers (.+?); both sides show safety number (\d+); each saw the "
                     r"other's profile fingerprint", out)
    assert chat is not None, out[-4000:]
    assert int(chat.group(1)) >= 2
    assert "MLS" in chat.group(2) and "AES" in chat.group(2)
    assert re.search(r"file: 3 MiB in [\d.]+ s, standard .*verified by Alice's process and again "
                     r"on the exported copy", out), out[-4000:]
    _assert_the_group_part(out)
    assert "plugins-nacl.lock.toml (3 plugins" in out  # the swap has a lock of its own
    assert "refused as it must be" in out  # pyca requires MLS; PyNaCl cannot serve it
    swap = re.search(r"swap: both on PyNaCl: \d+ messages in [\d.]+ s; negotiated layers (.+?) \(", out)
    assert swap is not None and "MLS" not in swap.group(1)
    assert "drifted from the lock: file pluggy/_hooks.py changed" in out
    audit = out[out.rindex("=== enkrypted plugins audit"):]
    assert "configuration: verified" in audit
    for dist in ("enkrypted-p2p", "enkrypted-ui-cli", "enkrypted-crypto"):
        assert re.search(rf" {dist} [\d.]+ .*signer [0-9a-f]{{64}}", audit), (dist, audit[:3000])
    assert _processes_under(ROOT / ".demo") == []


def _assert_the_group_part(out: str) -> None:
    """Three ``listen --id`` processes; the group driven by ``enkrypted --profile X group``."""
    part = out[out.index("=== a group of three"):out.index("=== swap")]
    for name in ("alice", "bob", "carol"):
        assert f"$ enkrypted --profile {name} listen --locked --id {name} &" in part, part[:2000]
    assert "$ enkrypted --profile alice group --locked create friends" in part
    assert "$ enkrypted --profile alice group --locked add $GROUP bob" in part
    assert "$ enkrypted --profile alice group --locked add $GROUP carol" in part
    members = re.findall(r"^ +(alice|bob|carol) +([0-9a-f]{64})  \(= \1's profile identity\)$",
                         part, re.MULTILINE)
    assert sorted(name for name, _ in members) == ["alice", "bob", "carol"], part[:3000]
    for name in ("alice", "bob", "carol"):
        read = re.findall(rf"^  {name} +reads (\w+) +\(epoch \d+", part, re.MULTILINE)
        assert sorted(read) == sorted({"alice", "bob", "carol"} - {name}), (name, part[:3000])
        others = ", ".join(sorted({"alice", "bob", "carol"} - {name}))
        assert f"  {name:<5} got receipts from {others}" in part
    assert "carol's listen: group-left at epoch" in part
    assert "$ enkrypted --profile carol group --locked list" in part
    assert "carol -> group 'friends': state left" in part
    summary = re.search(r"group: 3 processes, 3 messages each read exactly once by the two other "
                        r"members and receipted by both; carol removed at epoch (\d+), the next "
                        r"message read by alice, not by carol", part)
    assert summary is not None, part[-3000:]
    assert re.search(r"listeners stopped \(pids \d+, \d+, \d+\)", part)
