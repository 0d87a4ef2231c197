"""Headless Chromium running the npm ``peerjs`` 1.5.5 client against our Python peer, all inside a
fresh loopback-only network namespace (browser_scenario.py runs there):

* it registers with OUR broker (key and path not the default) and signals with our client both ways;
* real WebRTC data connections through our broker and through npm ``peer`` (Node has no WebRTC
  here, so the browser stands in for a Node peerjs client): the browser dials our peer and our peer
  dials the browser, in ``binary`` and in ``json``; strings, numbers, nested objects and arrays,
  bytes (binary), a value larger than one 16,300-byte chunk (binary) and a json message near its
  16,300-byte limit go both ways, each once, in order, nothing dropped; the browser's
  ``close({flush: true})`` ends our link."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.p2p.browser_scenario import (
    BROWSER_OFFERS,
    PYTHON_OFFERS,
    browser_messages,
    describe,
    python_messages,
)
from tests.p2p.servers import require_node_modules

SCENARIO = Path(__file__).parent / "browser_scenario.py"


def in_namespace(*argv: str) -> dict[str, Any]:
    """Run browser_scenario.py in a fresh loopback-only network namespace; its JSON line."""
    require_node_modules()
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing or not Path("/usr/lib/chromium/chromium").exists():
        pytest.fail(f"missing {missing or 'chromium'}: run make test (tools/setup/system-packages.sh)")
    if os.geteuid() != 0:
        pytest.skip("unshare -n needs root (CI and the project machines run as root)")
    proc = subprocess.run(["unshare", "-n", "--", sys.executable, str(SCENARIO), *argv],
                          capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.e2e
@pytest.mark.slow
def test_browser_peerjs_registers_with_our_broker_and_signals_both_ways() -> None:
    result = in_namespace("signal")
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


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("broker", ["ours", "npm"])
def test_browser_and_our_peer_exchange_data_both_ways_in_binary_and_json(broker: str) -> None:
    result = in_namespace("data", broker)
    browser, python = result["browser"], result["python"]
    assert result["broker"] == broker and browser["open"] == "browser-1"
    assert browser["events"] == []  # no peer or connection error in the page
    # the browser dialed us: it sent its messages first, we answered with ours
    assert sorted(python["incoming"]) == sorted(browser["outgoing"]) == sorted(BROWSER_OFFERS)
    for ser in BROWSER_OFFERS:
        ours, theirs = python["incoming"][ser], browser["outgoing"][ser]
        assert ours["connectionId"] == theirs["connectionId"] == theirs["label"]
        assert (ours["peer"], theirs["peer"], theirs["serialization"]) == ("browser-1", "py-peer", ser)
        assert theirs["metadata"] == {"from": "browser", "serialization": ser}
        assert ours["got"] == describe(browser_messages(ser))
        assert theirs["got"] == describe(python_messages(ser))
        assert ours["dropped"] == ours["pending_chunks"] == 0
        assert ours["closed_by_peer"] == "the peer closed the connection (peerjs close)"
    # our peer dialed the browser: the OFFER named the serialization, peerjs built that class
    assert sorted(python["outgoing"]) == sorted(browser["incoming"]) == sorted(PYTHON_OFFERS)
    for ser in PYTHON_OFFERS:
        ours, theirs = python["outgoing"][ser], browser["incoming"][ser]
        assert ours["connectionId"] == theirs["connectionId"] == theirs["label"]
        assert (theirs["peer"], theirs["serialization"], theirs["reliable"]) == ("py-peer", ser, True)
        assert theirs["got"] == describe(python_messages(ser))
        assert ours["got"] == describe(browser_messages(ser))
        assert ours["dropped"] == ours["pending_chunks"] == 0
    blob = browser["incoming"]["binary"]["got"][-3]["blob"]["$bin"]
    assert len(base64.b64decode(blob)) == 256 * 180  # > one chunk: chunked, reassembled by peerjs
    assert len(python["incoming"]["json"]["got"][-2]) == 16000  # json: one frame, under 16,300
