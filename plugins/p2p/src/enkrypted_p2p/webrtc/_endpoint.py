"""The endpoint: our registration at the broker and the data connections made through it.

Signaling follows peerjs 1.5.5's data-connection conventions (browser-interop-notes.md): the
OFFER payload carries ``sdp``, ``type: "data"``, ``connectionId``, ``label`` (= connectionId),
``serialization`` (``raw`` between our peers; ``binary`` or ``json`` on request or when a
browser offers them, see ``_serialization.py``), ``reliable: true``; the ANSWER ``sdp`` +
``connectionId``; CANDIDATE ``{candidate, sdpMid, sdpMLineIndex}``. Our SDP goes out without its candidates and they follow
as CANDIDATE messages, ending with an empty candidate (end-of-candidates), so trickle ICE is the
one path both directions use; candidates inside a peer's SDP or CANDIDATE messages pass
:class:`~._ice.CandidatePolicy` before aiortc sees them.

Each connection's signals are handled in order by one task; the endpoint's dispatcher task reads
the signaling client's events and routes them.
"""

from __future__ import annotations

__all__ = ["WebRTCEndpoint"]

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from enkrypted_shell.contracts import LinkClosedLocally

from ..errors import P2PNetworkError, PeerUnavailable, RemoteInputError, SignalingError
from ..signaling import Expired, GaveUp, MessageType, Serialization, Signal, SignalingClient
from ..signaling._dataconn import new_connection_id
from ._config import WebRTCSettings
from ._ice import CandidatePolicy, filter_sdp_candidates, host_addresses, split_sdp_candidates
from ._link import DataChannelLink
from ._serialization import EarlyFrames, open_link
from ._tuning import apply_tuning

_log = logging.getLogger("enkrypted.p2p.webrtc")
_MID_RE = re.compile(r"^a=mid:(\S+)", re.MULTILINE)
_MAX_SIGNALS_PER_CONNECTION = 64
_MAX_CONNECTIONS = 256


class _Pending:
    """One data connection being set up: its signal queue and the task handling it."""

    def __init__(self, peer: str, connection_id: str, pc: RTCPeerConnection) -> None:
        self.peer, self.connection_id, self.pc = peer, connection_id, pc
        self.signals: asyncio.Queue[Signal | None] = asyncio.Queue(_MAX_SIGNALS_PER_CONNECTION)
        self.unavailable = False
        self.remote_set = asyncio.Event()
        self.dropped_candidates = 0
        self.serialization = Serialization.RAW  # what the OFFER names (docs/webrtc.md)
        self.early: EarlyFrames | None = None  # frames before the link exists


class WebRTCEndpoint:
    """``endpoint = await WebRTCEndpoint.open(settings)``; ``await endpoint.connect(peer_id)``,
    ``async for link in endpoint.incoming()``, ``await endpoint.aclose()``."""

    def __init__(self, settings: WebRTCSettings, client: SignalingClient) -> None:
        self.settings = settings
        self._client = client
        self._policy = CandidatePolicy.of(settings.remote_networks)
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._links: set[DataChannelLink] = set()
        self._incoming: asyncio.Queue[DataChannelLink | None] = asyncio.Queue(64)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._failure: Exception | None = None
        self.dropped_candidates = 0
        self.refused_offers = 0

    @classmethod
    async def open(cls, settings: WebRTCSettings, peer_id: str | None = None,
                   token: str | None = None, timeout: float = 10.0) -> WebRTCEndpoint:
        """Register at the broker (a fresh id from it when ``peer_id`` is None)."""
        client = SignalingClient(settings.signaling, peer_id, token)
        try:
            await client.open(timeout)
        except P2PNetworkError as exc:
            raise SignalingError(f"cannot register at the broker: {exc}") from exc
        endpoint = cls(settings, client)
        endpoint._spawn(endpoint._dispatch())
        return endpoint

    @property
    def local_id(self) -> str:
        return self._client.peer_id

    @property
    def links(self) -> frozenset[DataChannelLink]:
        return frozenset(self._links)

    # ------------------------------------------------------------------ aiortc set-up
    def _configuration(self) -> RTCConfiguration:
        servers = [RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                   for s in self.settings.ice_servers]
        policy = RTCIceTransportPolicy.RELAY if self.settings.relay_only else RTCIceTransportPolicy.ALL
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)

    async def _set_local(self, pc: RTCPeerConnection, description: RTCSessionDescription,
                         peer: str, cid: str,
                         serialization: Serialization = Serialization.RAW) -> None:
        """Set our description (gathering on the pinned addresses), send the bare SDP, then our
        candidates one CANDIDATE each, then end-of-candidates."""
        with host_addresses(self.settings.host_addresses):
            await pc.setLocalDescription(description)
        local = pc.localDescription
        bare, candidates, complete = split_sdp_candidates(local.sdp)
        sdp = {"type": local.type, "sdp": bare}
        if local.type == "offer":
            await self._client.offer(peer, sdp, serialization=serialization, reliable=True,
                                     connection_id=cid, label=cid)
        else:
            await self._client.answer(peer, cid, sdp)
        match = _MID_RE.search(local.sdp)
        mid = match.group(1) if match else "0"
        for candidate in candidates:
            await self._client.candidate(peer, cid, {"candidate": candidate, "sdpMid": mid,
                                                     "sdpMLineIndex": 0})
        if complete:
            await self._client.candidate(peer, cid, {"candidate": "", "sdpMid": mid,
                                                     "sdpMLineIndex": 0})

    async def _set_remote(self, pending: _Pending, sdp: Any) -> None:
        if not isinstance(sdp, dict) or not isinstance(sdp.get("sdp"), str) \
                or sdp.get("type") not in ("offer", "answer"):
            raise RemoteInputError("malformed session description")
        text, dropped = filter_sdp_candidates(sdp["sdp"], self._policy)
        self._count_dropped(pending, dropped)
        try:
            await pending.pc.setRemoteDescription(RTCSessionDescription(text, sdp["type"]))
        except (ValueError, AssertionError, LookupError) as exc:
            raise RemoteInputError(f"unusable session description: {exc}") from exc
        pending.remote_set.set()

    async def _add_candidate(self, pending: _Pending, payload: dict[str, Any]) -> None:
        value = payload.get("candidate")
        if not isinstance(value, dict):
            raise RemoteInputError("CANDIDATE without a candidate object")
        line, mid, index = value.get("candidate"), value.get("sdpMid"), value.get("sdpMLineIndex")
        if not isinstance(line, str):
            raise RemoteInputError("CANDIDATE without a candidate line")
        if line == "":
            await pending.pc.addIceCandidate(None)  # end-of-candidates
            return
        if not self._policy.allows_line(line):
            self._count_dropped(pending, 1)
            return
        try:
            candidate = candidate_from_sdp(line.removeprefix("candidate:"))
        except (AssertionError, ValueError, IndexError) as exc:
            raise RemoteInputError("malformed candidate") from exc
        candidate.sdpMid = mid if isinstance(mid, str) else None
        candidate.sdpMLineIndex = index if isinstance(index, int) else 0
        await pending.pc.addIceCandidate(candidate)

    def _count_dropped(self, pending: _Pending, dropped: int) -> None:
        if dropped:
            pending.dropped_candidates += dropped
            self.dropped_candidates += dropped
            _log.info("dropped %d remote candidate(s) of %s not allowed by remote_networks",
                      dropped, pending.peer)

    # ------------------------------------------------------------------ connect
    async def connect(self, peer_id: str, timeout: float | None = None, *,
                      serialization: Serialization = Serialization.RAW) -> DataChannelLink:
        """Open a data connection to ``peer_id``. :class:`PeerUnavailable` if the broker does not
        know the id or no channel opened within ``timeout`` (default ``connect_timeout``).
        ``serialization`` other than ``raw`` (a browser peerjs peer) gives a
        :class:`~._serialization.PeerJSLink`."""
        self._check_open()
        timeout = self.settings.connect_timeout if timeout is None else timeout
        pc = RTCPeerConnection(self._configuration())
        cid = new_connection_id("data")
        channel = pc.createDataChannel(cid, ordered=True)  # peerjs: label = connectionId
        pending = self._register(peer_id, cid, pc)
        pending.serialization = serialization
        pending.early = EarlyFrames(channel, self.settings.max_receive_backlog)
        opened = asyncio.Event()
        channel.on("open", opened.set)
        worker = self._spawn(self._handle_signals(pending))
        try:
            async with asyncio.timeout(timeout):
                await self._set_local(pc, await pc.createOffer(), peer_id, cid, serialization)
                waiter = asyncio.ensure_future(opened.wait())
                failed = asyncio.ensure_future(self._until_unavailable(pending))
                try:
                    await asyncio.wait({waiter, failed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    failed.cancel()
                if pending.unavailable:
                    raise PeerUnavailable(f"the broker does not know peer {peer_id!r}")
                if self._closed:
                    raise LinkClosedLocally("the endpoint was closed")
        except TimeoutError as exc:
            await self._abandon(pending, worker)
            raise PeerUnavailable(f"no data channel to {peer_id!r} within {timeout} s") from exc
        except BaseException:
            await self._abandon(pending, worker)
            raise
        return self._adopt(pending, channel)

    async def _until_unavailable(self, pending: _Pending) -> None:
        while not pending.unavailable and not self._closed:
            await asyncio.sleep(0.05)

    def _register(self, peer: str, cid: str, pc: RTCPeerConnection) -> _Pending:
        if len(self._pending) >= _MAX_CONNECTIONS:
            raise P2PNetworkError("too many data connections being set up")
        pending = _Pending(peer, cid, pc)
        self._pending[(peer, cid)] = pending
        return pending

    async def _abandon(self, pending: _Pending, worker: asyncio.Task[Any]) -> None:
        self._pending.pop((pending.peer, pending.connection_id), None)
        self._client.core.close_connection(pending.peer, pending.connection_id)  # type: ignore[union-attr]
        worker.cancel()
        with contextlib.suppress(Exception):
            await pending.pc.close()

    def _adopt(self, pending: _Pending, channel: RTCDataChannel) -> DataChannelLink:
        apply_tuning(channel, self.settings.tuning)
        link = open_link(pending.peer, pending.connection_id, pending.pc, channel, self.settings,
                         pending.serialization, on_close=self._forget, early=pending.early)
        self._links.add(link)
        return link

    async def _forget(self, link: DataChannelLink) -> None:
        self._links.discard(link)
        pending = self._pending.pop((link.peer_id, link.connection_id), None)
        if self._client.core is not None:
            self._client.core.close_connection(link.peer_id, link.connection_id)
        if pending is not None:
            with contextlib.suppress(asyncio.QueueFull):
                pending.signals.put_nowait(None)

    # ------------------------------------------------------------------ accept
    async def incoming(self) -> AsyncIterator[DataChannelLink]:
        """Links peers opened to us, as their data channels open; ends when the endpoint closes."""
        while True:
            link = await self._incoming.get()
            if link is None:
                self._incoming.put_nowait(None)  # every other reader ends too
                return
            yield link

    async def _answer(self, pending: _Pending, offer: Signal) -> None:
        assert offer.offer is not None
        pc = pending.pc
        channel_ready: asyncio.Future[RTCDataChannel] = asyncio.get_running_loop().create_future()

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if pending.early is None:
                pending.early = EarlyFrames(channel, self.settings.max_receive_backlog)

            def opened() -> None:
                if not channel_ready.done():
                    channel_ready.set_result(channel)

            if channel.readyState == "open":
                opened()
            else:
                channel.on("open", opened)

        await self._set_remote(pending, offer.offer.sdp)
        await self._set_local(pc, await pc.createAnswer(), pending.peer, pending.connection_id)
        # wait for the channel elsewhere: this connection's CANDIDATE signals must go on flowing
        self._spawn(self._accept_when_open(pending, channel_ready))

    async def _accept_when_open(self, pending: _Pending,
                                channel_ready: asyncio.Future[RTCDataChannel]) -> None:
        try:
            channel = await asyncio.wait_for(channel_ready, self.settings.connect_timeout)
        except TimeoutError:
            _log.info("no data channel from %s within %s s", pending.peer,
                      self.settings.connect_timeout)
            await self._drop_pending(pending)
            return
        link = self._adopt(pending, channel)
        try:
            self._incoming.put_nowait(link)
        except asyncio.QueueFull:
            await link.close()
            self.refused_offers += 1

    # ------------------------------------------------------------------ signal routing
    async def _dispatch(self) -> None:
        while not self._closed:
            try:
                event = await self._client.next_event(timeout=3600.0)
            except TimeoutError:
                continue
            if isinstance(event, Signal):
                self._route(event)
            elif isinstance(event, Expired):
                for pending in self._pending.values():
                    if pending.peer == event.peer and not pending.remote_set.is_set():
                        pending.unavailable = True
            elif isinstance(event, GaveUp):
                self._failure = SignalingError(f"signaling gave up after {event.attempts} tries")

    def _route(self, signal: Signal) -> None:
        key = (signal.peer, signal.connection_id)
        if signal.kind == MessageType.OFFER:
            if key in self._pending or signal.offer is None or signal.offer.kind != "data":
                self.refused_offers += 1
                return
            try:
                pending = self._register(signal.peer, signal.connection_id,
                                         RTCPeerConnection(self._configuration()))
            except P2PNetworkError:
                self.refused_offers += 1
                return
            pending.serialization = signal.offer.serialization
            self._spawn(self._handle_signals(pending))
        pending = self._pending.get(key)  # type: ignore[assignment]
        if pending is None:
            return
        try:
            pending.signals.put_nowait(signal)
        except asyncio.QueueFull:
            _log.info("dropped a signal from %s: too many for one connection", signal.peer)

    async def _handle_signals(self, pending: _Pending) -> None:
        while True:
            signal = await pending.signals.get()
            if signal is None:
                return
            try:
                if signal.kind == MessageType.OFFER:
                    with host_addresses(self.settings.host_addresses):
                        await self._answer(pending, signal)
                elif signal.kind == MessageType.ANSWER:
                    await self._set_remote(pending, signal.payload.get("sdp"))
                elif signal.kind == MessageType.CANDIDATE:
                    await pending.remote_set.wait()
                    await self._add_candidate(pending, signal.payload)
            except (RemoteInputError, TimeoutError) as exc:
                _log.info("signaling with %s failed: %s", pending.peer, exc)
                if signal.kind == MessageType.OFFER:
                    await self._drop_pending(pending)
                    return

    async def _drop_pending(self, pending: _Pending) -> None:
        self._pending.pop((pending.peer, pending.connection_id), None)
        if self._client.core is not None:
            self._client.core.close_connection(pending.peer, pending.connection_id)
        with contextlib.suppress(asyncio.QueueFull):
            pending.signals.put_nowait(None)
        with contextlib.suppress(Exception):
            await pending.pc.close()

    # ------------------------------------------------------------------ lifecycle
    def _check_open(self) -> None:
        if self._closed:
            raise LinkClosedLocally("the endpoint is closed")
        if self._failure is not None:
            raise self._failure

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Close every link (they raise :class:`LinkClosedLocally` afterwards) and unregister."""
        if self._closed:
            return
        self._closed = True
        for link in list(self._links):
            await link.close()
        for pending in list(self._pending.values()):
            with contextlib.suppress(Exception):
                await pending.pc.close()
        self._pending.clear()
        while self._incoming.full():
            queued = self._incoming.get_nowait()
            if queued is not None:
                await queued.close()
        self._incoming.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._client.close()

    async def __aenter__(self) -> WebRTCEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
