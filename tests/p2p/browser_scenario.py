"""Run INSIDE a fresh network namespace (``unshare -n``) by test_browser.py: our broker, a static
page server and headless Chromium with the npm ``peerjs`` 1.5.5 client, all on loopback only.

The browser registers with our broker (non-default key and path) and connects to our Python peer:
its OFFER must reach our client with peerjs's payload; our client's OFFER must reach the browser
(its ``connection`` event).  Prints one JSON line with what each side saw.  Every process started
here is stopped by its PID (Chromium's children collected first); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shell" / "src"), str(ROOT / "plugins" / "p2p" / "src")]

from enkrypted_p2p.signaling import ClientConfig, Serialization, Signal, SignalingClient  # noqa: E402
from tests.p2p.servers import free_port, start_our_broker, stop  # noqa: E402

PEERJS = ROOT / "tools" / "node" / "node_modules" / "peerjs" / "dist" / "peerjs.js"
CHROMIUM = "/usr/lib/chromium/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--allow-loopback-in-peer-connection",
         "--disable-features=WebRtcHideLocalIpsWithMdns"]
KEY, PATH = "enk-browser", "/sig/"

PAGE = """<!doctype html><meta charset="utf-8"><script src="/peerjs.js"></script><script>
const q = new URLSearchParams(location.search);
const result = {events: []};
let posted = false;
const post = () => { if (!posted) { posted = true;
  fetch("/result", {method: "POST", body: JSON.stringify(result)}); } };
const peer = new peerjs.Peer("browser-1", {host: "127.0.0.1", port: +q.get("port"),
  path: q.get("path"), key: q.get("key"), secure: false, config: {iceServers: []}});
peer.on("open", (id) => {
  result.open = id;
  const c = peer.connect(q.get("target"), {serialization: "json", reliable: true,
                                          metadata: {from: "browser"}});
  result.outgoing = {connectionId: c.connectionId, label: c.label};
});
peer.on("connection", (c) => {
  result.incoming = {peer: c.peer, connectionId: c.connectionId, metadata: c.metadata,
                     serialization: c.serialization, label: c.label};
  setTimeout(post, 300);
});
peer.on("error", (e) => result.events.push("error:" + e.type));
setTimeout(post, 12000);
</script>"""


def only_loopback() -> None:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    names = [line.split(":")[1].strip() for line in links.splitlines()]  # this namespace's own
    names = [n for n in names if n != "lo"]
    if names:
        raise SystemExit(f"refusing to run: interfaces other than lo are visible: {names}")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


class Pages(BaseHTTPRequestHandler):
    result: ClassVar[dict[str, object]] = {}
    arrived: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        body, kind = (PEERJS.read_bytes(), "text/javascript") if self.path == "/peerjs.js" else \
            (PAGE.encode(), "text/html")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        size = min(int(self.headers.get("Content-Length", "0")), 1 << 20)
        Pages.result = json.loads(self.rfile.read(size))
        Pages.arrived.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out += [int(entry), *children(int(entry))]
    return out


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    kids = children(proc.pid)
    for pid in [proc.pid, *kids]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(5)


async def python_side(port: int, chromium: subprocess.Popen[bytes] | None) -> dict[str, object]:
    seen: dict[str, object] = {}
    cfg = ClientConfig(port=port, key=KEY, path=PATH)
    async with SignalingClient(cfg, "py-peer") as me:
        offer = await me.wait_for(Signal, timeout=20)
        seen["offer"] = {"kind": offer.kind, "src": offer.peer, "connectionId": offer.connection_id,
                         "payload_keys": sorted(offer.payload),
                         "serialization": offer.payload.get("serialization"),
                         "reliable": offer.payload.get("reliable"),
                         "metadata": offer.payload.get("metadata"),
                         "sdp_type": offer.payload["sdp"].get("type"),
                         "sdp_starts": offer.payload["sdp"].get("sdp", "")[:4]}
        await me.offer("browser-1", {"type": "offer", "sdp": "v=0\r\n"}, connection_id="dc_frompy",
                       serialization=Serialization.BINARY, metadata={"from": "python"})
        await asyncio.to_thread(Pages.arrived.wait, 15)
    return seen


def main() -> None:
    only_loopback()
    tmp = Path(tempfile.mkdtemp(prefix="enk-browser-"))
    broker = start_our_broker(tmp, key=KEY, path=PATH)
    http_port = free_port()
    pages = ThreadingHTTPServer(("127.0.0.1", http_port), Pages)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    chromium = None
    try:
        url = (f"http://127.0.0.1:{http_port}/page.html?port={broker.port}&path={PATH}"
               f"&key={KEY}&target=py-peer")

        async def run() -> dict[str, object]:
            nonlocal chromium
            client = asyncio.create_task(python_side(broker.port, None))
            await asyncio.sleep(0.5)  # py-peer registered before the browser offers
            chromium = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'chrome'}", url],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return await asyncio.wait_for(client, 40)

        python = asyncio.run(run())
        print(json.dumps({"python": python, "browser": Pages.result}), flush=True)
    finally:
        if chromium is not None:
            kill_tree(chromium)
        pages.shutdown()
        stop(broker.proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    start = time.monotonic()
    main()
