"""Who may use the web chat: the rules every request and the WebSocket pass (pure, no I/O).

The server listens on 127.0.0.1 only, but any local process and any page the browser shows can
reach that port.  So (docs/webui.md, "Access"):

* **Host** must be exactly ``127.0.0.1:<port>``: a DNS-rebinding page (``evil.example`` resolving
  to 127.0.0.1) sends its own name and is refused on every request, assets included;
* **Origin**, when a browser sends one, must be exactly ``http://127.0.0.1:<port>``; requests that
  change something (POST, the WebSocket) must carry it.  Another local page, another port or a
  rebinding name is refused before anything happens;
* a **per-start secret** (32 random bytes, in the printed URL's fragment, so it reaches neither
  server logs nor ``Referer``) is exchanged for a session cookie (``HttpOnly; SameSite=Strict``, a
  separate random value) **and** a per-page capability (random, bound to that cookie's session)
  that the page keeps in ``sessionStorage`` and presents on every request beyond the page files:
  the ``X-Enkrypted-Capability`` header, or on the WebSocket the ``Sec-WebSocket-Protocol`` entry
  ``enkrypted.cap.<capability>``.  Cookies are per host, not per port, so another server on
  127.0.0.1 that the browser visits receives the cookie; it never sees the capability, and the
  cookie alone opens nothing;
* **GET never changes state**: actions go over the WebSocket or a POST.
"""

from __future__ import annotations

__all__ = [
    "CAPABILITY_HEADER", "COOKIE", "PROTOCOL", "Access", "Grant", "Verdict",
    "capability_from_protocols",
]

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

COOKIE: Final = "enkrypted-web"
"""Not ``__Host-enkrypted-web``: that prefix needs ``Secure``, which needs https (docs/webui.md)."""
CAPABILITY_HEADER: Final = "X-Enkrypted-Capability"
PROTOCOL: Final = "enkrypted.v1"
"""The WebSocket subprotocol the server selects; the capability rides beside it."""
CAPABILITY_PROTOCOL: Final = "enkrypted.cap."
MAX_SESSIONS: Final = 16
"""Browsers (cookies) remembered at once; the oldest is forgotten first."""
MAX_PAGES: Final = 8
"""Capabilities per session (tabs signed in with the secret); the oldest is forgotten first."""
READS: Final = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """``None`` reason: allowed.  Otherwise the HTTP status and one line saying why not."""

    status: int = 200
    reason: str | None = None

    @property
    def allowed(self) -> bool:
        return self.reason is None


ALLOWED: Final = Verdict()


@dataclass(frozen=True, slots=True)
class Grant:
    """What a right secret buys: the cookie's session token and this page's capability."""

    session: str = field(repr=False)
    capability: str = field(repr=False)


def capability_from_protocols(header: str | None) -> str | None:
    """The capability offered in a ``Sec-WebSocket-Protocol`` header (browsers cannot set other
    headers on a WebSocket), else ``None``."""
    for entry in (e.strip() for e in (header or "").split(",")):
        if entry.startswith(CAPABILITY_PROTOCOL):
            return entry[len(CAPABILITY_PROTOCOL):]
    return None


@dataclass(slots=True)
class Access:
    """The rules for one server run on ``port`` with one ``secret``."""

    port: int
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    _sessions: OrderedDict[str, list[str]] = field(default_factory=OrderedDict, repr=False)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """What the user opens: the secret rides in the fragment, never sent to a server."""
        return f"{self.origin}/#s={self.secret}"

    def check(
        self, method: str, host: str | None, origin: str | None, *, cookie: str | None,
        capability: str | None, needs_session: bool,
    ) -> Verdict:
        """The verdict for one request (``method`` ``"WEBSOCKET"`` for the upgrade)."""
        if host != f"127.0.0.1:{self.port}":
            return Verdict(421, "wrong Host: this server answers only to 127.0.0.1 on its port")
        if origin is not None and origin != self.origin:
            return Verdict(403, "another origin may not use this chat")
        if origin is None and method not in READS:
            return Verdict(403, "a request that changes something must come from the chat page")
        if needs_session and not self.has_session(cookie, capability):
            return Verdict(401, "no session: open the URL `enkrypted chat` printed")
        return ALLOWED

    def exchange(self, offered: str, cookie: str | None = None) -> Grant | None:
        """A capability for the right secret (constant-time compare), else ``None``.

        A browser that already holds a live session cookie keeps it (another tab of the same
        browser must not cut off the first); otherwise a new session is made."""
        if not hmac.compare_digest(_raw(offered), _raw(self.secret)):
            return None
        session = self._find(cookie)
        if session is None:
            session = secrets.token_urlsafe(32)
            self._sessions[session] = []
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(session)
        pages = self._sessions[session]
        pages.append(secrets.token_urlsafe(32))
        del pages[:-MAX_PAGES]
        return Grant(session, pages[-1])

    def has_session(self, cookie: str | None, capability: str | None) -> bool:
        """Both halves, and of the same session: the cookie alone (or the capability alone) is
        not enough."""
        session = self._find(cookie)
        if session is None or not capability:
            return False
        offered = _raw(capability)
        return any(hmac.compare_digest(offered, _raw(page)) for page in self._sessions[session])

    def _find(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        offered = _raw(cookie)
        found = None
        for token in self._sessions:  # every entry compared: the time says nothing about which
            if hmac.compare_digest(offered, _raw(token)):
                found = token
        return found


def _raw(text: str) -> bytes:
    """Bytes to compare; a header or JSON string may carry lone surrogates (undecodable bytes,
    ``\\ud800``): they compare unequal instead of failing."""
    return text.encode("utf-8", "surrogatepass")
