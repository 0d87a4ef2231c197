"""How a short-lived command reaches the running peer of its profile (``enkrypted group ...``).

A group lives in one process at a time: its MLS state moves forward with every commit and every
sealed message, so two processes of one profile must never both drive it (one would reuse keys
the other used, or fork the group).  ``enkrypted listen`` (with an unlocked profile) is that
process: it serves a **control endpoint** on ``127.0.0.1`` (an ephemeral port) and writes
``{"port", "token", "pid"}`` into the profile store (table ``control``; the store is encrypted, so
reading the 32-byte token takes the passphrase).  A command opens the same profile, reads the
record, connects, and sends one JSON line ``{"token", "op", ...}``; the peer answers one JSON line
(the result, or ``{"error", "message"}``).  Without a running peer the command says so (exit 2).

Bounds: a request is one line of at most :data:`MAX_REQUEST` bytes, read within
:data:`REQUEST_TIMEOUT_S`; at most :data:`MAX_CLIENTS` at once; a wrong token is refused (compared
in constant time) and the connection closed.
"""

from __future__ import annotations

__all__ = ["CONTROL_KEY", "CONTROL_TABLE", "ControlServer", "NoRunningPeer", "control_call"]

import asyncio
import contextlib
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Final

from enkrypted_shell.contracts import ContractError, GroupInfo, ProfileStore

from ..errors import P2PError, P2PUsageError
from ._service import EndpointChat

CONTROL_TABLE: Final = "control"
CONTROL_KEY: Final = b"listen"
MAX_REQUEST: Final = 128 * 1024
REQUEST_TIMEOUT_S: Final = 10.0
MAX_CLIENTS: Final = 16


class NoRunningPeer(P2PUsageError):
    """No ``enkrypted listen`` of this profile answers (not started, or gone)."""


def group_fields(info: GroupInfo) -> dict[str, Any]:
    return {"group": info.group_id, "name": info.name, "epoch": info.epoch, "state": info.state,
            "members": [{"peer": m.peer_id, "fingerprint": m.fingerprint} for m in info.members]}


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str):
        raise P2PUsageError(f"the request needs {key!r} (a string)")
    return value


async def _dispatch(chat: EndpointChat, request: dict[str, Any]) -> dict[str, Any]:
    """One operation of the ``GroupChatService`` on the running peer's chat service."""
    op = request.get("op")
    if op == "create":
        return {"event": "group-created", "group": await chat.create_group(_text(request, "name"))}
    if op == "list":
        return {"event": "groups", "peer_id": chat.local_id,
                "groups": [group_fields(g) for g in chat.groups()]}
    group = _text(request, "group")
    if op == "send":
        message_id = await chat.send_group_text(group, _text(request, "text"))
        return {"event": "group-sent", "group": group, "messageId": message_id}
    actions: dict[str, tuple[str, Callable[[], Awaitable[None]]]] = {
        "add": ("group-invited", lambda: chat.invite(group, _text(request, "peer"))),
        "remove": ("group-remove-asked", lambda: chat.remove(group, _text(request, "peer"))),
        "leave": ("group-leave-asked", lambda: chat.leave(group)),
        "rename": ("group-rename-sent", lambda: chat.rename(group, _text(request, "name"))),
    }
    if op not in actions:
        raise P2PUsageError(f"unknown operation {str(op)[:32]!r}")
    event, action = actions[str(op)]
    await action()
    return {"event": event, "group": group, **{k: v for k, v in request.items()
                                                 if k in ("peer", "name")}}


class ControlServer:
    """The control endpoint of a running peer (``listen``), for its profile's commands."""

    def __init__(self, chat: EndpointChat, store: ProfileStore) -> None:
        self._chat, self._store = chat, store
        self._token = secrets.token_bytes(32)
        self._server: asyncio.Server | None = None
        self._clients = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                                  limit=MAX_REQUEST + 2)
        port = int(self._server.sockets[0].getsockname()[1])
        record = {"port": port, "token": self._token.hex(), "pid": os.getpid()}
        self._store.put(CONTROL_TABLE, CONTROL_KEY, json.dumps(record).encode())
        return port

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):  # the store's errors belong to the shell
                self._store.delete(CONTROL_TABLE, CONTROL_KEY)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients += 1
        try:
            if self._clients > MAX_CLIENTS:
                return
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                line = await reader.readline()
            answer = await self._answer(line)
            writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError):
            pass  # a slow, oversized or vanished client: nothing to answer
        finally:
            self._clients -= 1
            writer.close()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):
            return {"event": "error", "error": "P2PUsageError", "message": "not a JSON request"}
        token = request.get("token") if isinstance(request, dict) else None
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(),
                                                                 self._token.hex().encode()):
            return {"event": "error", "error": "P2PUsageError", "message": "wrong control token"}
        try:
            return await _dispatch(self._chat, request)
        except (P2PError, ContractError) as exc:
            return {"event": "error", "error": type(exc).__name__, "message": str(exc)}


async def control_call(store: ProfileStore, request: dict[str, Any],
                       timeout: float = 30.0) -> dict[str, Any]:
    """Send ``request`` to the running peer of the profile ``store`` belongs to; its answer."""
    raw = store.get(CONTROL_TABLE, CONTROL_KEY)
    if raw is None:
        raise NoRunningPeer("no running peer for this profile: start `enkrypted listen --id ID` "
                            "with it first (it keeps the groups online)")
    try:
        record = json.loads(raw)
        port, token = int(record["port"]), str(record["token"])
    except (ValueError, KeyError, TypeError):
        raise NoRunningPeer("the profile's control record is damaged: restart `enkrypted listen`"
                            ) from None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=16 * 1024 * 1024)
            writer.write(json.dumps({**request, "token": token}).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
    except (OSError, TimeoutError) as exc:
        raise NoRunningPeer(f"the profile's running peer does not answer ({exc}): is `enkrypted "
                            "listen` still running?") from None
    try:
        answer = json.loads(line)
    except ValueError:
        raise NoRunningPeer("the running peer closed the control connection") from None
    if not isinstance(answer, dict):
        raise NoRunningPeer("the running peer answered nonsense")
    return answer
