"""One accepted TCP connection of the broker: an :class:`asyncio.Protocol` around the
``websockets`` library's sans-I/O :class:`~websockets.server.ServerProtocol` (HTTP/1.1 request
parsing, the RFC 6455 handshake, framing, masking, ping/pong, close, the message size bound).

No task and no stream per connection: bytes arrive in :meth:`BrokerSocket.data_received`, the
protocol turns them into a request or frames, and the server (``_server.py``) routes them
synchronously through the core.  What an idle WebSocket costs is this object, the protocol object
and the transport (docs/adr/0013-broker-websocket-driver.md has the measurements).  Frames of one
connection are handled in order: while the server waits on storage for this connection (a claim,
a drain), reading is paused and frames already parsed wait in ``backlog``.
"""

from __future__ import annotations

__all__ = ["BrokerSocket", "SocketOwner"]

import asyncio
import logging
from collections import deque
from typing import Protocol

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

HANDSHAKE_TIMEOUT = 10.0
"""Seconds a connection may take to send its HTTP request (a silent socket is closed)."""
CLOSE_TIMEOUT = 2.0
"""Seconds the client has to answer our close frame before the TCP connection is cut."""
_HARD_CLOSE = frozenset({1008, 1009})
_WS_LOG = logging.getLogger("enkrypted.broker.websockets")
_WS_LOG.setLevel(logging.WARNING)  # the library logs every open and close at INFO: not ours to keep


class SocketOwner(Protocol):
    """What a socket needs from the server (``_server.BrokerServer``)."""

    def request(self, sock: BrokerSocket, request: Request) -> None: ...
    def message(self, sock: BrokerSocket, data: bytes) -> None: ...
    def flush(self) -> None: ...
    def lost(self, sock: BrokerSocket) -> None: ...


class BrokerSocket(asyncio.Protocol):
    """One TCP connection: HTTP request, then (after an upgrade) WebSocket messages."""

    __slots__ = ("_lingering", "_owner", "_partial", "_timer", "backlog", "busy", "conn", "transport",
                 "ws")

    def __init__(self, owner: SocketOwner, max_message: int) -> None:
        self._owner = owner
        self.ws = ServerProtocol(max_size=max_message, logger=_WS_LOG)
        self.transport: asyncio.Transport | None = None
        self.conn = 0
        """The core's connection number once upgraded (0 before)."""
        self.busy = False
        self.backlog: deque[bytes] | None = None
        self._partial: list[bytes] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lingering = False

    # ------------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._timer = asyncio.get_running_loop().call_later(HANDSHAKE_TIMEOUT, self.abort)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # after our close frame and FIN: read and dropped, never parsed
        ws = self.ws
        if ws.state is State.CONNECTING and self.conn == 0:
            data = _as_http11(data)
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Frame):
                opcode = event.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
                    self._data(bytes(event.data), event.fin, first=opcode is not Opcode.CONT)
                # PING/PONG/CLOSE: the protocol answers them (pong, close echo) in data_to_send
            elif isinstance(event, Request):
                self._cancel_timer()
                self._owner.request(self, event)
        self.flush_protocol()
        self._owner.flush()  # what this read produced leaves now, one write per destination

    def eof_received(self) -> bool | None:
        if self._lingering:
            return None  # both sides are done: asyncio closes the transport
        self.ws.receive_eof()
        self.flush_protocol()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.backlog = None
        self._owner.lost(self)

    # ------------------------------------------------------------------------ helpers
    def _data(self, data: bytes, fin: bool, first: bool) -> None:
        """A data frame: a whole message, or a fragment (reassembled; the protocol bounds the
        message's total size by ``max_message``)."""
        if not fin:
            if first:
                self._partial = [data]
            elif self._partial is not None:
                self._partial.append(data)
            return
        if not first:
            if self._partial is None:
                return
            data = b"".join([*self._partial, data])
            self._partial = None
        if self.busy:
            if self.backlog is None:
                self.backlog = deque()
            self.backlog.append(data)
        else:
            self._owner.message(self, data)

    def flush_protocol(self) -> None:
        """Write what the protocol produced (handshake response, pong, close); close the TCP
        connection when the protocol says so."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                transport.write(chunk)
            else:  # SEND_EOF: the server closes the TCP connection first (RFC 6455 §7.1.1)
                self._linger()
                return
        if self.ws.close_expected() and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort)

    @property
    def open(self) -> bool:
        transport = self.transport
        return (self.ws.state is State.OPEN and transport is not None
                and not transport.is_closing())

    def close(self, code: int) -> None:
        """Send a close frame.  A normal close waits for the client's answer (or a timeout); a
        policy close (an abusive client: rate, size, invalid frames, slow reader) ends our side of
        the TCP connection right after the frame and no longer parses what the client sends."""
        if self.ws.state is State.OPEN:
            self.ws.send_close(code)
            self.flush_protocol()
        if self.transport is not None and (code in _HARD_CLOSE or self.ws.state is not State.CLOSING):
            self._linger()

    def _linger(self) -> None:
        """Half-close: our FIN follows what is written (the ERROR and close frames); what the
        client still sends is read and dropped until it closes its side or ``CLOSE_TIMEOUT``
        passes, then the connection is cut.  Closing a socket with unread bytes in its receive
        buffer makes the kernel send a reset, and a reset can destroy the frames still waiting
        in the client's receive buffer: the client would never learn why it was cut off."""
        transport = self.transport
        if transport is None or self._lingering:
            return
        self._lingering = True
        self.backlog = None
        self._partial = None
        if transport.is_closing():
            return
        if not transport.can_write_eof():  # TLS: no half-close; close after the buffer drains
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self._cancel_timer()
        self._timer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.abort)

    def abort(self) -> None:
        self._timer = None
        if self.transport is not None:
            self.transport.abort()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def pause(self) -> None:
        """Stop reading while the server waits on storage for this connection."""
        self.busy = True
        if self.transport is not None and not self.transport.is_closing() and not self._lingering:
            self.transport.pause_reading()

    def resume(self) -> None:
        self.busy = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


def _as_http11(data: bytes) -> bytes:
    """A request line ending in HTTP/1.0 (a proxy's default upstream, e.g. nginx's, for ``/id``
    and ``/peers``) read as HTTP/1.1, which the library requires; every plain HTTP answer closes
    the connection, as HTTP/1.0 expects."""
    end = data.find(b"\r\n")
    if end >= 9 and data[end - 9:end] == b" HTTP/1.0":
        return data[:end - 1] + b"1" + data[end:]
    return data
