"""Headless Chromium driven over the DevTools protocol (CDP), for the web ui's tests and
screenshots: launch on a fresh profile with a DevTools port on 127.0.0.1, attach to the page,
call methods, evaluate script, and record what the page did - every request URL, every console
message and exception, every Content-Security-Policy issue.

No chromedriver: CDP is a WebSocket on loopback (aiohttp's client).  The browser and every child
process it started are stopped by their PIDs (children collected first).  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path("/usr/lib/chromium/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps",
         "--no-default-browser-check", "--metrics-recording-only", "--mute-audio",
         "--hide-scrollbars", "--force-device-scale-factor=1", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0"]


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


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page; use ``async with Browser(size) as b``."""

    def __init__(self, size: tuple[int, int] = (1200, 800)) -> None:
        self.size = size
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="enk-chromium-")
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.requests: list[str] = []
        self.blocked: list[tuple[str, str]] = []
        """(url, reason) of requests the browser itself refused (``csp``, ``mixed-content``...)."""
        self._urls: dict[str, str] = {}
        self.console: list[str] = []
        self.exceptions: list[str] = []
        self.csp_issues: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []

    async def __aenter__(self) -> Browser:
        if not CHROMIUM.exists():
            raise FileNotFoundError(f"{CHROMIUM} is missing: run make system-deps")
        profile = Path(self._dir.name)
        width, height = self.size
        self.proc = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await self._attach(profile / "DevToolsActivePort")
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _attach(self, port_file: Path) -> None:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                raise TimeoutError("Chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        for _ in range(100):
            async with self._session.get(f"http://127.0.0.1:{port}/json/list") as res:
                pages = [t for t in await res.json() if t.get("type") == "page"]
            if pages:
                break
            await asyncio.sleep(0.1)
        else:
            raise TimeoutError("Chromium shows no page")
        self._ws = await self._session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        for domain in ("Page", "Network", "Runtime", "Log", "Audits"):
            await self.call(f"{domain}.enable")

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self.proc is not None:
            for pid in [*children(self.proc.pid), self.proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(10)
        self._dir.cleanup()

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            doc = json.loads(message.data)
            if "id" in doc:
                future = self._waiting.pop(doc["id"], None)
                if future is not None and not future.done():
                    future.set_result(doc)
            else:
                self._event(doc.get("method", ""), doc.get("params", {}))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
            self._urls[params["requestId"]] = params["request"]["url"]
        elif method == "Network.loadingFailed" and params.get("blockedReason"):
            self.blocked.append((self._urls.get(params["requestId"], "?"), params["blockedReason"]))
        elif method == "Network.webSocketCreated":
            self.requests.append(params["url"])
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.log.append(entry)
            self.console.append(f"{entry.get('level')}: {entry.get('text')}")
        elif method == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"{params.get('type')}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.exceptions.append(details.get("exception", {}).get("description")
                                   or details.get("text", "?"))
        elif method == "Audits.issueAdded":
            issue = params["issue"]
            if issue.get("code") == "ContentSecurityPolicyIssue":
                self.csp_issues.append(issue)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        await self._ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
        doc = await asyncio.wait_for(future, 60)
        if "error" in doc:
            raise CdpError(f"{method}: {doc['error']}")
        result: dict[str, Any] = doc.get("result", {})
        return result

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

    async def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression[:80]}: {result['exceptionDetails'].get('text')} "
                           f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        """Evaluate ``expression`` until it is truthy (bounded); its value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(CdpError):
                value = await self.evaluate(expression)
                if value:
                    return value
            await asyncio.sleep(0.1)
        body = await self.evaluate("document.body ? document.body.innerText : ''")
        raise TimeoutError(f"{expression!r} stayed falsy for {timeout} s; page text:\n{body}")

    async def click(self, element_id: str) -> None:
        await self.evaluate(f"document.getElementById({json.dumps(element_id)}).click()")

    async def type_into(self, element_id: str, text: str) -> None:
        await self.evaluate(
            f"(() => {{ const e = document.getElementById({json.dumps(element_id)}); "
            f"e.value = {json.dumps(text)}; e.dispatchEvent(new Event('input')); }})()")

    async def set_file(self, element_id: str, path: Path) -> None:
        found = await self.call("Runtime.evaluate",
                                expression=f"document.getElementById({json.dumps(element_id)})")
        await self.call("DOM.setFileInputFiles", files=[str(path)],
                        objectId=found["result"]["objectId"])

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
