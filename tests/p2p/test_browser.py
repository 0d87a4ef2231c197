"""Headless Chromium running the npm ``peerjs`` 1.5.5 client registers with OUR broker (key and
path not the default) and signals with our Python client both ways, all inside a fresh
loopback-only network namespace.  The data-connection half (ICE, DTLS, messages) needs the WebRTC
transport and lands with that issue."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.p2p.servers import require_node_modules

SCENARIO = Path(__file__).parent / "browser_scenario.py"


@pytest.mark.e2e
@pytest.mark.slow
def test_browser_peerjs_registers_with_our_broker_and_signals_both_ways() -> None:
    require_node_modules()
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing or not Path("/usr/lib/chromium/chromium").exists():
        pytest.fail(f"missing {missing or 'chromium'}: run make test (tools/setup/system-packages.sh)")
    if os.geteuid() != 0:
        pytest.skip("unshare -n needs root (CI and the project machines run as root)")
    proc = subprocess.run(["unshare", "-n", "--", sys.executable, str(SCENARIO)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    browser, python = result["browser"], result["python"]
    assert browser["open"] == "browser-1", browser
    offer = python["offer"]
    assert (offer["kind"], offer["src"]) == ("OFFER", "browser-1")
    assert offer["connectionId"] == browser["outgoing"]["connectionId"]
    assert offer["serialization"] == "json" and offer["reliable"] is True
    assert offer["metadata"] == {"from": "browser"}
    assert (offer["sdp_type"], offer["sdp_starts"]) == ("offer", "v=0\r")
    assert {"sdp", "type", "connectionId", "label", "serialization", "reliable",
            "metadata"} <= set(offer["payload_keys"])
    assert browser["incoming"] == {"peer": "py-peer", "connectionId": "dc_frompy",
                                   "metadata": {"from": "python"}, "serialization": "binary",
                                   "label": "dc_frompy"}
