"""Who may use the web chat: the rules every request and the WebSocket pass (pure, no I/O).

The server listens on 127.0.0.1 only, but any local process and any page the browser shows can
reach that port.  So (docs/webui.md, "Access"):

* **Host** must be exactly ``127.0.0.1:<port>``: a DNS-rebinding page (``evil.example`` resolving
  to 127.0.0.1) sends its own name and is refused on every request, assets included;
* **Origin**, when a browser sends one, must be exactly ``http://127.0.0.1:<port>``; requests that
  change something (POST, the WebSocket) must carry it.  Another local page, another port or a
  rebinding name is refused before anything happens;
* a **per-start secret** (32 random bytes, in the printed URL's fragment, so it reaches neither
  server logs nor ``Referer``) is exchanged once per browser for a session cookie (``HttpOnly;
  SameSite=Strict``, a separate random value); everything but the page's static files needs that
  cookie;
* **GET never changes state**: actions go over the WebSocket or a POST.
"""

from __future__ import annotations

__all__ = ["COOKIE", "Access", "Verdict"]

import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

COOKIE: Final = "enkrypted-web"
MAX_SESSIONS: Final = 16
"""Browsers (cookies) remembered at once; the oldest is forgotten first."""
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


@dataclass(slots=True)
class Access:
    """The rules for one server run on ``port`` with one ``secret``."""

    port: int
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    _sessions: OrderedDict[str, None] = field(default_factory=OrderedDict, repr=False)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """What the user opens: the secret rides in the fragment, never sent to a server."""
        return f"{self.origin}/#s={self.secret}"

    def check(
        self, method: str, host: str | None, origin: str | None, *, cookie: str | None,
        needs_session: bool,
    ) -> Verdict:
        """The verdict for one request (``method`` ``"WEBSOCKET"`` for the upgrade)."""
        if host != f"127.0.0.1:{self.port}":
            return Verdict(421, "wrong Host: this server answers only to 127.0.0.1 on its port")
        if origin is not None and origin != self.origin:
            return Verdict(403, "another origin may not use this chat")
        if origin is None and method not in READS:
            return Verdict(403, "a request that changes something must come from the chat page")
        if needs_session and not self.has_session(cookie):
            return Verdict(401, "no session: open the URL `enkrypted chat` printed")
        return ALLOWED

    def exchange(self, offered: str) -> str | None:
        """A new session token for the right secret (constant-time compare), else ``None``."""
        if not hmac.compare_digest(offered.encode(), self.secret.encode()):
            return None
        token = secrets.token_urlsafe(32)
        self._sessions[token] = None
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return token

    def has_session(self, cookie: str | None) -> bool:
        if not cookie:
            return False
        return any(hmac.compare_digest(cookie.encode(), t.encode()) for t in self._sessions)
