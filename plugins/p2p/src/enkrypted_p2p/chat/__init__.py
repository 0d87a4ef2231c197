"""Chat over the p2p contract 2.2: :class:`EndpointChat` (the contract's ``ChatService`` and its
optional ``FileChatService`` and ``GroupChatService`` over any ``Endpoint``) and the commands
``listen``, ``send``, ``chat-line``, ``sendfile``, ``files`` and ``group`` built on it.

The commands live in :mod:`._commands` / :mod:`._file_commands` / :mod:`._group_commands` and are
imported only when asked (they import aiortc)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._service import MAX_PEERS, EndpointChat, ReconnectPolicy

if TYPE_CHECKING:
    from ._commands import Wiring, chat_commands

__all__ = ["MAX_PEERS", "EndpointChat", "ReconnectPolicy", "Wiring", "chat_commands"]


def __getattr__(name: str) -> Any:
    if name in ("chat_commands", "Wiring"):
        from . import _commands

        return getattr(_commands, name)
    raise AttributeError(name)
