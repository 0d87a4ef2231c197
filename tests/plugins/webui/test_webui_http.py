"""The web chat's HTTP surface against a real server on 127.0.0.1 (aiohttp's client): only its
user gets in (Host, Origin, the per-start secret, the cookie and the page's capability together),
no GET changes anything, every response carries the strict headers, and only the verified page
files are served."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from yarl import URL

from enkrypted_ui_web.access import CAPABILITY_HEADER, COOKIE, PROTOCOL
from enkrypted_ui_web.server import CSP, WebServer
from tests.plugins.ui.fake_chat import FakeFileChatService
from tests.plugins.webui.harness import running, source_assets


def scenario(body: Callable[[WebServer, aiohttp.ClientSession, str], Awaitable[None]]) -> None:
    async def run() -> None:
        async with running(FakeFileChatService()) as server:
            jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for an IP address host
            async with aiohttp.ClientSession(cookie_jar=jar) as client:
                await body(server, client, server.access.origin)

    asyncio.run(run())


async def sign_in(server: WebServer, client: aiohttp.ClientSession, origin: str) -> str:
    """The page's capability (the cookie stays in ``client``'s jar)."""
    async with client.post(f"{origin}/api/session", json={"secret": server.access.secret},
                           headers={"Origin": origin}) as res:
        assert res.status == 200
        cookie = res.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert cookie.value != server.access.secret
        capability = (await res.json())["capability"]
        assert isinstance(capability, str) and capability not in (cookie.value, server.access.secret)
        return capability


def protocols(capability: str) -> tuple[str, str]:
    return PROTOCOL, f"enkrypted.cap.{capability}"


def test_page_files_are_served_from_the_verified_bytes_with_strict_headers() -> None:
    async def body(server: WebServer, client: aiohttp.ClientSession, origin: str) -> None:
        given, _ = source_assets()
        for path, name in (("/", "index.html"), ("/app.js", "app.js"), ("/style.css", "style.css")):
            async with client.get(origin + path) as res:
                assert res.status == 200 and await res.read() == given[name]
                assert res.headers["Content-Security-Policy"] == CSP
                assert res.headers["X-Content-Type-Options"] == "nosniff"
                assert res.headers["Cache-Control"] == "no-store"
                assert res.headers["X-Frame-Options"] == "DENY"
        assert "script-src 'self';" in CSP and "'unsafe" not in CSP and "connect-src 'self'" in CSP
        for path in ("/enkrypted-plugin.toml", "/..%2fplugin.py", "/static/app.js", "/plugin.py"):
            async with client.get(origin + path) as res:
                assert res.status in (401, 404), path  # never a file of the package
                assert res.headers["Content-Security-Policy"] == CSP

    scenario(body)


def test_a_wrong_or_missing_secret_is_refused_and_the_right_one_gives_a_strict_cookie() -> None:
    async def body(server: WebServer, client: aiohttp.ClientSession, origin: str) -> None:
        for payload in ({"secret": "wrong"}, {}, {"secret": ""}, {"secret": 7}):
            async with client.post(f"{origin}/api/session", json=payload,
                                   headers={"Origin": origin}) as res:
                assert res.status == 403 and COOKIE not in res.cookies
        for path in ("/api/qr.svg", "/api/file/0"):
            async with client.get(origin + path) as res:
                assert res.status == 401, path
        async with client.get(f"{origin}/ws", headers={"Origin": origin}) as res:
            assert res.status == 401
        capability = await sign_in(server, client, origin)
        async with client.get(f"{origin}/api/qr.svg", headers={CAPABILITY_HEADER: capability}) as res:
            assert res.status == 200 and res.content_type == "image/svg+xml"
            assert b"<script" not in await res.read()
        async with client.ws_connect(f"{origin.replace('http', 'ws')}/ws", origin=origin,
                                     protocols=protocols(capability)) as ws:
            assert ws.protocol == PROTOCOL  # the capability is not echoed back
            state = await ws.receive_json(timeout=10)
            assert state["type"] == "state" and state["me"]["peer_id"] == "alice-7f3k9q"

    scenario(body)


def test_another_origin_or_a_rebinding_host_cannot_use_the_chat_even_with_the_cookie() -> None:
    async def body(server: WebServer, client: aiohttp.ClientSession, origin: str) -> None:
        capability = await sign_in(server, client, origin)
        ws_url = f"{origin.replace('http', 'ws')}/ws"
        for evil in ("http://evil.example", f"http://localhost:{server.access.port}",
                     "http://127.0.0.1:1", "null"):
            try:
                async with client.ws_connect(ws_url, origin=evil, protocols=protocols(capability)):
                    raise AssertionError(f"{evil} opened the WebSocket")
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 403
            async with client.post(f"{origin}/api/upload?peer=bob&name=x", data=b"x",
                                   headers={"Origin": evil, CAPABILITY_HEADER: capability}) as res:
                assert res.status == 403
            async with client.post(f"{origin}/api/session", json={"secret": server.access.secret},
                                   headers={"Origin": evil}) as res:
                assert res.status == 403
        async with client.post(f"{origin}/api/upload?peer=bob&name=x", data=b"x",
                               headers={CAPABILITY_HEADER: capability}) as res:
            assert res.status == 403  # a change without an Origin: not from the page
        for host in ("evil.example", f"evil.example:{server.access.port}", f"localhost:{server.access.port}"):
            async with client.get(f"{origin}/", headers={"Host": host}) as res:
                assert res.status == 421, host
            async with client.get(f"{origin}/api/qr.svg", headers={"Host": host}) as res:
                assert res.status == 421, host

    scenario(body)


def test_a_client_holding_only_the_cookie_is_refused_even_with_a_forged_origin_and_host() -> None:
    """Cookies are per host, not per port: another server on 127.0.0.1 the browser visits gets
    the session cookie.  Replayed from a local process with the page's own Origin and Host, it
    opens neither the WebSocket nor an upload nor a read; only the page's capability does."""

    async def body(server: WebServer, client: aiohttp.ClientSession, origin: str) -> None:
        capability = await sign_in(server, client, origin)
        cookie = client.cookie_jar.filter_cookies(URL(origin))[COOKIE].value  # what the thief holds
        forged = {"Origin": origin, "Host": f"127.0.0.1:{server.access.port}"}
        ws_url = f"{origin.replace('http', 'ws')}/ws"
        async with aiohttp.ClientSession() as thief:
            for offered in ((), (PROTOCOL,), (PROTOCOL, "enkrypted.cap."),
                            (PROTOCOL, f"enkrypted.cap.{cookie}"), (PROTOCOL, "enkrypted.cap.x" * 3)):
                try:
                    async with thief.ws_connect(ws_url, headers={**forged, "Cookie": f"{COOKIE}={cookie}"},
                                                protocols=offered):
                        raise AssertionError(f"the cookie with {offered} opened the WebSocket")
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status == 401, offered
            for extra in ({}, {CAPABILITY_HEADER: ""}, {CAPABILITY_HEADER: cookie}):
                headers = {**forged, "Cookie": f"{COOKIE}={cookie}", **extra}
                async with thief.post(f"{origin}/api/upload?peer=bob&name=x", data=b"x",
                                      headers=headers) as res:
                    assert res.status == 401, extra
                for path in ("/api/qr.svg", "/api/file/0"):
                    async with thief.get(origin + path, headers=headers) as res:
                        assert res.status == 401, (path, extra)
            # the capability without its cookie is refused too
            async with thief.get(f"{origin}/api/qr.svg", headers={**forged, CAPABILITY_HEADER: capability}) as res:
                assert res.status == 401
        assert server.chat.service.offered == [] and not server.sockets  # type: ignore[attr-defined]
        async with client.post(f"{origin}/api/upload?peer=bob&name=x", data=b"x",
                               headers={"Origin": origin, CAPABILITY_HEADER: capability}) as res:
            assert res.status in (202, 409)  # past the access rules: the chat's own answer

    scenario(body)


def test_undecodable_cookie_or_capability_bytes_are_refused_not_a_server_error() -> None:
    async def body(server: WebServer, client: aiohttp.ClientSession, origin: str) -> None:
        port = server.access.port
        for extra in (b"Cookie: enkrypted-web=\xff\xfe\r\n", b"X-Enkrypted-Capability: \xed\xa0\x80\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/qr.svg HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port + extra
                         + b"Connection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 401 "), (extra, answer[:60])

    scenario(body)


def test_a_second_tab_signing_in_keeps_the_first_tabs_capability() -> None:
    async def body(server: WebServer, client: aiohttp.ClientSession, origin: str) -> None:
        first = await sign_in(server, client, origin)
        second = await sign_in(server, client, origin)
        assert first != second
        for capability in (first, second):
            async with client.get(f"{origin}/api/qr.svg", headers={CAPABILITY_HEADER: capability}) as res:
                assert res.status == 200

    scenario(body)


def test_no_get_changes_state() -> None:
    async def body(server: WebServer, client: aiohttp.ClientSession, origin: str) -> None:
        capability = await sign_in(server, client, origin)
        before = server.chat.model.peers.copy(), server.chat.model.notice
        for path in ("/api/session", "/api/upload?peer=bob&name=x", "/ws?op=connect&target=bob",
                     "/?op=quit", "/api/qr.svg?connect=bob"):
            async with client.get(origin + path, headers={"Origin": origin,
                                                          CAPABILITY_HEADER: capability}) as res:
                assert res.status in (200, 400, 401, 404, 405), (path, res.status)
        assert (server.chat.model.peers, server.chat.model.notice) == before
        assert not server.stopped.is_set()
        async with client.post(f"{origin}/api/file/0",
                               headers={"Origin": origin, CAPABILITY_HEADER: capability}) as res:
            assert res.status == 405

    scenario(body)
