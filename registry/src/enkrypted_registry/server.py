"""The embedded static server: serves ``DIR/public`` with PEP 691 content negotiation.

Only the web root is exposed (never ``keys/``: the server refuses to start when the keys dir is
inside the web root or contains it, and never serves a ``*.pem`` file), dot-files are hidden,
directories are served through their ``index.html`` (or ``index.json`` when the client asks for
``application/vnd.pypi.simple.v1+json``); an ``Accept`` header naming no supported type gets 406.
A request path that is not a plain relative path below the root (an absolute tail such as
``//tmp/x``, a NUL byte, ``..``) gets 404.
"""

from __future__ import annotations

__all__ = ["JSON_TYPE", "choose_content_type", "make_app", "serve"]

import asyncio
import signal
import sys
from pathlib import Path

from aiohttp import web

from .repository import check_keys_outside_public

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"
_SUPPORTED = {
    JSON_TYPE: JSON_TYPE,
    "application/vnd.pypi.simple.latest+json": JSON_TYPE,
    HTML_TYPE: HTML_TYPE,
    "application/vnd.pypi.simple.latest+html": HTML_TYPE,
    "text/html": "text/html",
    "*/*": "text/html",
    "text/*": "text/html",
    "application/*": JSON_TYPE,
}
_TYPES = {
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".whl": "application/octet-stream",
    ".metadata": "text/plain; charset=utf-8",
    ".provenance": "application/json",
}


def choose_content_type(accept: str | None) -> str | None:
    """PEP 691 negotiation: the supported type with the highest q; HTML when no header is sent."""
    if not accept or not accept.strip():
        return "text/html"
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        chosen = _SUPPORTED.get(media.lower())
        if chosen is None or quality <= 0:
            continue
        candidate = (quality, -position, chosen)
        if best is None or candidate > best:
            best = candidate
    return best[2] if best else None


def _resolve(root: Path, tail: str) -> Path | None:
    # An absolute tail ("//abs/path") would replace the root in `root / tail`, and a NUL byte makes
    # the file system calls raise: neither names a file below the root.
    if tail.startswith("/") or "\x00" in tail or "\\" in tail:
        return None
    if any(part.startswith(".") or part.endswith(".pem") for part in tail.split("/") if part):
        return None
    try:
        path = (root / tail).resolve()
        if path != root and root not in path.parents:
            return None
        return path if path.exists() else None
    except (OSError, ValueError):  # e.g. a name too long for the file system
        return None


def make_app(public: Path, *, keys_dir: Path | None = None) -> web.Application:
    """An aiohttp application serving ``public`` read-only.

    With ``keys_dir`` (the registry's private keys), refuse (:class:`RegistryUsageError`) to serve
    a web root that holds the keys or lies inside the keys dir."""
    root = public.resolve()
    if keys_dir is not None:
        check_keys_outside_public(keys_dir, public)

    async def handle(request: web.Request) -> web.StreamResponse:
        path = _resolve(root, request.match_info["tail"])
        if path is None:
            raise web.HTTPNotFound()
        if path.is_dir():
            if not request.path.endswith("/"):
                raise web.HTTPMovedPermanently(request.path + "/")
            return _directory(request, path)
        response = web.FileResponse(path)
        response.content_type = _TYPES.get(path.suffix, "application/octet-stream").split(";")[0]
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app


def _directory(request: web.Request, path: Path) -> web.Response:
    html_page, json_page = path / "index.html", path / "index.json"
    if not html_page.is_file():
        raise web.HTTPNotFound()
    if not json_page.is_file():  # not a simple-API page: plain HTML
        return web.Response(body=html_page.read_bytes(), content_type="text/html", charset="utf-8")
    chosen = choose_content_type(request.headers.get("Accept"))
    if chosen is None:
        raise web.HTTPNotAcceptable(text=f"supported: {JSON_TYPE}, {HTML_TYPE}, text/html")
    headers = {"Vary": "Accept"}
    if chosen == JSON_TYPE:
        return web.Response(body=json_page.read_bytes(), content_type=JSON_TYPE, headers=headers)
    return web.Response(
        body=html_page.read_bytes(), content_type=chosen, charset="utf-8", headers=headers
    )


async def _run(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"serving http://{shown}:{bound_port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def serve(
    public: Path, host: str = "127.0.0.1", port: int = 0, *, keys_dir: Path | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; the first stdout line is ``serving http://HOST:PORT/``.

    Raises :class:`RegistryUsageError` before binding if ``keys_dir`` is inside ``public`` (or
    contains it)."""
    if not public.is_dir():
        print(f"error: {public} does not exist", file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(_run(make_app(public, keys_dir=keys_dir), host, port))
