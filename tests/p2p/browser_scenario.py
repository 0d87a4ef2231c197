"""Run INSIDE a fresh network namespace (``unshare -n``) by test_browser.py: a broker (ours, or npm
``peer``), a static page server and headless Chromium with the npm ``peerjs`` 1.5.5 client, all on
loopback only.  Prints one JSON line with what each side saw.

* ``signal`` - the browser registers with our broker (non-default key and path); its OFFER must
  reach our signaling client with peerjs's payload, our client's OFFER must reach the browser.
* ``data ours|npm`` - real WebRTC data connections between the browser and our Python peer
  (:class:`~enkrypted_p2p.webrtc.WebRTCEndpoint`) through that broker: the browser dials us with
  each serialization in ``BROWSER_OFFERS`` and our peer dials the browser with each in
  ``PYTHON_OFFERS``; on every connection the offering side sends its messages (ending ``"END"``),
  the other side replies with its own.  Both sides report every value they received.

Every process started here is stopped by its PID (Chromium's children collected first); every
wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
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
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "shell" / "src"), str(ROOT / "plugins" / "p2p" / "src")]

from enkrypted_p2p.signaling import ClientConfig, Serialization, Signal, SignalingClient  # noqa: E402
from enkrypted_p2p.webrtc import PeerJSLink, WebRTCEndpoint, WebRTCSettings  # noqa: E402
from enkrypted_shell.contracts import LinkBroken  # noqa: E402
from tests.p2p.servers import Server, start_npm_peer, start_our_broker, stop  # noqa: E402
from tools.loopback import free_port  # noqa: E402

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
    page: ClassVar[str] = PAGE

    def do_GET(self) -> None:
        body, kind = (PEERJS.read_bytes(), "text/javascript") if self.path == "/peerjs.js" else \
            (self.page.encode(), "text/html")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        size = min(int(self.headers.get("Content-Length", "0")), 16 << 20)
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


BROWSER_OFFERS = ("binary", "json")
PYTHON_OFFERS = ("binary", "json")

DATA_PAGE = """<!doctype html><meta charset="utf-8"><script src="/peerjs.js"></script><script>
const q = new URLSearchParams(location.search);
const offers = q.get("offers").split(","), answers = q.get("answers").split(",");
const result = {events: [], outgoing: {}, incoming: {}};
let posted = false;
const post = () => { if (!posted) { posted = true;
  fetch("/result", {method: "POST", body: JSON.stringify(result)}); } };
const b64 = (u8) => { let s = ""; for (const b of u8) s += String.fromCharCode(b); return btoa(s); };
const describe = (v) => {
  if (v instanceof ArrayBuffer) return {$bin: b64(new Uint8Array(v))};
  if (ArrayBuffer.isView(v)) return {$bin: b64(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))};
  if (Array.isArray(v)) return v.map(describe);
  if (v && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, describe(x)]));
  return v;
};
const blob = (n) => { const u = new Uint8Array(n); for (let i = 0; i < n; i++) u[i] = i % 251; return u; };
const messages = (ser) => ["héllo from the browser", 42, -7, 2 ** 40, 3.25, null, true,
  [1, [2, [3, "x"]]], {nested: {list: [1.5, "s", null], empty: {}}},
  ...(ser === "json" ? ["j".repeat(16000)]
                     : [new Uint8Array([0, 1, 255]), {blob: blob(50000)}, "z".repeat(40000)]),
  "END"];
const exchange = (c, first) => new Promise((resolve) => {
  const got = [];
  c.on("data", (d) => {
    got.push(describe(d));
    if (d !== "END") return;
    if (!first) for (const m of messages(c.serialization)) c.send(m);
    resolve({serialization: c.serialization, connectionId: c.connectionId, peer: c.peer,
             label: c.label, metadata: c.metadata, reliable: c.reliable, got});
  });
  c.on("error", (e) => result.events.push("connection-error:" + e.type));
  if (first) c.on("open", () => { for (const m of messages(c.serialization)) c.send(m); });
});
const maybePost = () => {
  if (Object.keys(result.outgoing).length === offers.length
      && Object.keys(result.incoming).length === answers.length) post();
};
const peer = new peerjs.Peer("browser-1", {host: "127.0.0.1", port: +q.get("port"),
  path: q.get("path"), key: q.get("key"), secure: false, config: {iceServers: []}});
peer.on("open", async (id) => {
  result.open = id;
  for (const ser of offers) {
    const c = peer.connect(q.get("target"), {serialization: ser, reliable: true,
                                            metadata: {from: "browser", serialization: ser}});
    result.outgoing[ser] = await exchange(c, true);
    c.close({flush: true});  // peerjs's in-band close: {__peerData: {type: "close"}}
  }
  maybePost();
});
peer.on("connection", (c) => {
  exchange(c, false).then((r) => { result.incoming[c.serialization] = r; maybePost(); });
});
peer.on("error", (e) => result.events.push("error:" + e.type));
setTimeout(post, 40000);
</script>"""


def python_messages(serialization: str) -> list[object]:
    """What our peer sends on a connection of ``serialization`` (ends with ``"END"``)."""
    # no top-level null: peerjs 1.5.5 reads ``value["__peerData"]`` of every message and a
    # null throws in its handler, so the browser never sees it (docs/webrtc.md)
    common: list[object] = ["héllo from python", 7, -3, 2**40, 0.5, False,
                            [[1, 2], ["a", {"b": None}]], {"deep": {"er": [1.25, "t", True]}}]
    if serialization == "json":
        return [*common, "p" * 16000, "END"]
    return [*common, b"\xff\x00\x10", {"blob": bytes(range(256)) * 180}, "q" * 40000, "END"]


def browser_messages(serialization: str) -> list[object]:
    """What the page sends (``messages(ser)`` in DATA_PAGE), as Python receives it."""
    common: list[object] = ["héllo from the browser", 42, -7, 2**40, 3.25, None, True,
                            [1, [2, [3, "x"]]], {"nested": {"list": [1.5, "s", None], "empty": {}}}]
    if serialization == "json":
        return [*common, "j" * 16000, "END"]
    blob = bytes(i % 251 for i in range(50000))
    return [*common, b"\x00\x01\xff", {"blob": blob}, "z" * 40000, "END"]


def describe(value: object) -> object:
    """A JSON view of a received value: bytes as ``{"$bin": base64}`` (as the page does)."""
    if isinstance(value, bytes):
        return {"$bin": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    return value


async def converse(link: PeerJSLink, first: bool) -> dict[str, object]:
    """One connection: the offering side sends first, then each reads until ``"END"``."""
    mine = python_messages(str(link.serialization))
    if first:
        for value in mine:
            await link.send_value(value)
    got: list[object] = []
    while not got or got[-1] != "END":
        if len(got) > 100:
            raise SystemExit("more than 100 values on one connection")
        got.append(await asyncio.wait_for(link.receive_value(), 15))
    if not first:
        for value in mine:
            await link.send_value(value)
    return {"serialization": str(link.serialization), "peer": link.peer_id,
            "connectionId": link.connection_id, "got": describe(got),
            "dropped": link.dropped_messages, "pending_chunks": link.pending_chunks}


async def closed_reason(link: PeerJSLink) -> str | None:
    """Why the link ended once the browser closed it (None: still open after 10 s)."""
    try:
        value = await asyncio.wait_for(link.receive_value(), 10)
    except LinkBroken:
        return link.close_reason
    except TimeoutError:
        return None
    return f"unexpected value {value!r:.40}"


async def python_data_side(server: Server, launch: Callable[[], None]) -> dict[str, object]:
    url = f"ws://127.0.0.1:{server.port}{server.path}?key={server.key}"
    incoming: dict[str, object] = {}
    outgoing: dict[str, object] = {}
    links: list[PeerJSLink] = []
    async with await WebRTCEndpoint.open(WebRTCSettings.loopback(url), peer_id="py-peer") as me:
        launch()  # py-peer is registered before the browser dials it
        accepted = me.incoming()
        for _ in BROWSER_OFFERS:
            link = await asyncio.wait_for(accepted.__anext__(), 30)
            assert isinstance(link, PeerJSLink), f"a {type(link).__name__} for a peerjs offer"
            links.append(link)
            incoming[str(link.serialization)] = {**await converse(link, first=False),
                                                 "closed_by_peer": await closed_reason(link)}
        for name in PYTHON_OFFERS:
            dialed = await me.connect("browser-1", serialization=Serialization(name))
            assert isinstance(dialed, PeerJSLink)
            links.append(dialed)
            outgoing[name] = await converse(dialed, first=True)
        await asyncio.to_thread(Pages.arrived.wait, 20)
        for link in links:
            await link.close()
    return {"incoming": incoming, "outgoing": outgoing}


def run_data(tmp: Path, broker_kind: str, http_port: int) -> dict[str, object]:
    server = (start_our_broker(tmp, key=KEY, path=PATH) if broker_kind == "ours"
              else start_npm_peer(tmp))
    chromium: list[subprocess.Popen[bytes]] = []
    url = (f"http://127.0.0.1:{http_port}/page.html?port={server.port}&path={server.path}"
           f"&key={server.key}&target=py-peer&offers={','.join(BROWSER_OFFERS)}"
           f"&answers={','.join(PYTHON_OFFERS)}")
    Pages.page = DATA_PAGE
    try:
        started = time.monotonic()
        python = asyncio.run(asyncio.wait_for(
            python_data_side(server, lambda: chromium.append(launch_chromium(tmp, url))), 90))
        return {"python": python, "browser": Pages.result, "broker": broker_kind,
                "seconds": round(time.monotonic() - started, 2)}
    finally:
        for proc in chromium:
            kill_tree(proc)
        stop(server.proc)


def launch_chromium(tmp: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'chrome'}", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_signal(tmp: Path, http_port: int) -> dict[str, object]:
    broker = start_our_broker(tmp, key=KEY, path=PATH)
    chromium = None
    try:
        url = (f"http://127.0.0.1:{http_port}/page.html?port={broker.port}&path={PATH}"
               f"&key={KEY}&target=py-peer")

        async def run() -> dict[str, object]:
            nonlocal chromium
            client = asyncio.create_task(python_side(broker.port, None))
            await asyncio.sleep(0.5)  # py-peer registered before the browser offers
            chromium = launch_chromium(tmp, url)
            return await asyncio.wait_for(client, 40)

        python = asyncio.run(run())
        return {"python": python, "browser": Pages.result}
    finally:
        if chromium is not None:
            kill_tree(chromium)
        stop(broker.proc)


def main(argv: list[str]) -> None:
    only_loopback()
    tmp = Path(tempfile.mkdtemp(prefix="enk-browser-"))
    http_port = free_port()
    pages = ThreadingHTTPServer(("127.0.0.1", http_port), Pages)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    try:
        if argv[:1] == ["data"] and argv[1:] in (["ours"], ["npm"]):
            result = run_data(tmp, argv[1], http_port)
        elif argv in ([], ["signal"]):
            result = run_signal(tmp, http_port)
        else:
            raise SystemExit("usage: browser_scenario.py [signal | data ours|npm]")
        print(json.dumps(result), flush=True)
    finally:
        pages.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
