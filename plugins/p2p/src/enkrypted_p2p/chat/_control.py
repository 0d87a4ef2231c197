"""How a short-lived command reaches the running peer of its profile (``enkrypted group ...``).

A group lives in one process at a time: its MLS state moves forward with every commit and every
sealed message, so two processes of one profile must never both drive it (one would reuse keys
the other used, or fork the group).  ``enkrypted listen`` (with an unlocked profile) is that
process: it serves a **control endpoint** on ``127.0.0.1`` (an ephemeral port) and writes
``{"port", "token", "pid"}`` into the profile store (table ``control``; the store is encrypted, so
reading the 32-byte token takes the passphrase).  A command opens the same profile, reads the
record and connects.  Both sides then prove they hold the token without sending it: the command
sends ``{"hello": nonce_c}``, the peer answers ``{"nonce": nonce_s, "proof": HMAC(token, "server" |
nonce_c | nonce_s)}``, and only if that proof is right does the command send its one request line
``{"op", ..., "proof": HMAC(token, "client" | nonce_c | nonce_s)}`` (so a process that took the
port of a crashed peer, whose record is still in the profile, learns neither the token nor the
request — a group message, say).  The peer answers one JSON line (the result, or ``{"error",
"message"}``).  Without a running peer the command says so (exit 2).

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
_NONCE_BYTES: Final = 32


def _proof(token: bytes, role: bytes, client_nonce: bytes, server_nonce: bytes) -> str:
    message = b"enkrypted-control-v1\0" + role + b"\0" + client_nonce + server_nonce
    return hmac.new(token, message, "sha256").hexdigest()


def _nonce(message: object, key: str) -> bytes:
    value = message.get(key) if isinstance(message, dict) else None
    try:
        nonce = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        nonce = b""
    if len(nonce) != _NONCE_BYTES:
        raise ValueError(f"the control handshake needs a {_NONCE_BYTES}-byte {key!r}")
    return nonce


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
                client_nonce = _nonce(json.loads(await reader.readline()), "hello")
                server_nonce = secrets.token_bytes(_NONCE_BYTES)
                proof = _proof(self._token, b"server", client_nonce, server_nonce)
                writer.write(json.dumps({"nonce": server_nonce.hex(), "proof": proof}).encode()
                             + b"\n")
                await writer.drain()
                line = await reader.readline()
            expected = _proof(self._token, b"client", client_nonce, server_nonce)
            answer = await self._answer(line, expected)
            writer.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, RecursionError, ConnectionError):
            pass  # a slow, oversized, malformed or vanished client: nothing to answer
        finally:
            self._clients -= 1
            writer.close()

    async def _answer(self, line: bytes, expected: str) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):
            return {"event": "error", "error": "P2PUsageError", "message": "not a JSON request"}
        proof = request.get("proof") if isinstance(request, dict) else None
        if not isinstance(proof, str) or not hmac.compare_digest(proof.encode(), expected.encode()):
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
        port, token = int(record["port"]), bytes.fromhex(str(record["token"]))
    except (ValueError, KeyError, TypeError):
        raise NoRunningPeer("the profile's control record is damaged: restart `enkrypted listen`"
                            ) from None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=16 * 1024 * 1024)
            try:
                line = await _exchange(reader, writer, token, request)
            finally:
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


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: bytes,
                    request: dict[str, Any]) -> bytes:
    """The handshake, then the request: sent only to a process that proved it holds the token."""
    client_nonce = secrets.token_bytes(_NONCE_BYTES)
    writer.write(json.dumps({"hello": client_nonce.hex()}).encode() + b"\n")
    await writer.drain()
    try:
        hello = json.loads(await reader.readline())
        server_nonce = _nonce(hello, "nonce")
    except (ValueError, RecursionError):
        raise NoRunningPeer("the process on the profile's control port is not its running peer "
                            "(no control handshake): restart `enkrypted listen`") from None
    expected = _proof(token, b"server", client_nonce, server_nonce)
    proof = hello.get("proof")
    if not isinstance(proof, str) or not hmac.compare_digest(proof.encode(), expected.encode()):
        raise NoRunningPeer("the process on the profile's control port could not prove it is the "
                            "profile's peer; nothing was sent: restart `enkrypted listen`")
    client_proof = _proof(token, b"client", client_nonce, server_nonce)
    writer.write(json.dumps({**request, "proof": client_proof}).encode() + b"\n")
    await writer.drain()
    return await reader.readline()
