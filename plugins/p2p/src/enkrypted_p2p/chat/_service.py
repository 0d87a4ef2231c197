""":class:`EndpointChat`: the contract's :class:`ChatService` over any contract :class:`Endpoint`.

One :class:`~enkrypted_p2p.session.ChatSession` per peer at a time, on the peer's kept
:class:`~enkrypted_p2p.session.SessionCore` (crypto session, dedup window, unacknowledged
messages), so a new link resumes it (P7.4).  The rules (docs/protocol.md "Chat service"):

* **Incoming links** are told apart by their first PDU (bounded wait): a resume goes to the kept
  session for that peer id, anything else starts a new handshake (on the kept core, so the dedup
  window and the unacknowledged messages survive it).
* **Both sides dialling at once** (glare): the link dialled by the smaller peer id wins; the other
  side closes the loser's link before answering it, so exactly one link carries the session.
* **Link lost**: the peer becomes ``reconnecting``.  The side that dialled redials with
  exponential backoff and jitter (:class:`ReconnectPolicy`: bounded attempts and total time); the
  other side waits for it as long.  Then ``ready`` again (a :class:`SessionEstablished` with
  ``resumed``) or ``disconnected`` with the reason.  :meth:`send_text` meanwhile queues (bounded)
  and the message goes out with the resend.
* **Persistence**: with ``AppContext.store`` (store contract 1.0) every change of a peer's session
  is written to table ``sessions`` under the peer id *before* any PDU leaves or any event is
  emitted, and loaded at :meth:`open`; ``saved=`` (peer id -> :meth:`export_state`) too.
* **Taken messages**: a :class:`ChatMessage` counts as taken by the application once it asks
  :meth:`events` for the next event (or stops iterating).  Until then the message is kept with
  the session, so one the process died holding (already acknowledged to the peer) is handed up
  again, with the same ``message_id``, after :meth:`open`.

* **Files** (contract 2.1, :class:`FileChatService`): each peer's session core owns its file
  transfers (:mod:`enkrypted_p2p.files`), built and restored through :class:`~._files.FileDesk`
  (received files encrypted at rest in the profile, progress events, the auto-accept policy).
* **Groups** (contract 2.2, :class:`GroupChatService`, when the crypto service has the 2.1 group
  API): one :class:`~enkrypted_p2p.groups.GroupNode` driven by :class:`~._groups.GroupDesk`; its
  frames ride the sessions (``0x07`` / ``0x08``), members are dialled as the node needs them, and
  the node is told which sessions are ready (its links).

Peer input never raises here: it becomes a :class:`ChatProblem` or is dropped and counted.
"""

from __future__ import annotations

__all__ = ["MAX_PEERS", "EndpointChat", "ReconnectPolicy"]

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, cast

from enkrypted_shell.contracts import (
    AppContext,
    ChatEvent,
    ChatMessage,
    ChatProblem,
    ChatReceipt,
    ChatTyping,
    ContractError,
    CryptoService,
    Endpoint,
    GroupCryptoService,
    GroupInfo,
    LinkBroken,
    LinkClosed,
    LinkClosedLocally,
    LinkV2,
    NetworkError,
    PeerStateChanged,
    ProfileStore,
    RemoteInputError,
    SessionEstablished,
    StoredFile,
    supports,
)

from ..errors import P2PError, P2PUsageError
from ..files import FileTransfers, FileUsageError
from ..groups import GroupConfig
from ..session import (
    ChatSession,
    FileOutput,
    GroupFrameReceived,
    HandshakeError,
    IdentityChanged,
    MessageReceived,
    ReceiptReceived,
    SavedStateError,
    SessionCore,
    SessionFailed,
    SessionNotReady,
    SessionReady,
    SessionState,
    TypingReceived,
    export_core,
    restore_core,
)
from ._files import PROGRESS_INTERVAL_S, FileDesk
from ._groups import DRIVER_CONFIG, GroupDesk

_log = logging.getLogger("enkrypted.p2p.chat")

MAX_PEERS: Final = 256
MAX_INCOMING_SETUPS: Final = 32
"""Incoming links in set-up (resume or handshake) at once; more are refused (half-open floods)."""
EVENT_QUEUE: Final = 4096
FIRST_PDU_TIMEOUT_S: Final = 30.0
SESSIONS_TABLE: Final = "sessions"


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Redial after a lost link: ``base_s * factor**n`` capped at ``max_delay_s``, each delay
    +-``jitter`` (a fraction), at most ``max_attempts`` tries within ``window_s`` seconds (the
    side that did not dial waits ``window_s`` for the peer to come back)."""

    base_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 10.0
    jitter: float = 0.2
    max_attempts: int = 10
    window_s: float = 120.0
    connect_timeout_s: float = 20.0

    def delays(self, rng: random.Random) -> Iterator[float]:
        for attempt in range(self.max_attempts):
            delay = min(self.max_delay_s, self.base_s * self.factor ** attempt)
            yield delay * (1.0 + rng.uniform(-self.jitter, self.jitter))


class _Peer:
    """What we keep for one peer id across links."""

    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id
        self.state = "disconnected"
        self.core: SessionCore | None = None
        self.session: ChatSession | None = None
        self.dialler = False  # we dialled: we redial after a lost link
        self.dialling = False  # a dial of ours is in flight right now (glare)
        self.closing = False
        self.awaiting = False  # we wait for the peer to redial us (we did not dial)
        self.established: SessionEstablished | None = None
        self.waiter: asyncio.Future[SessionEstablished] | None = None
        self.task: asyncio.Task[Any] | None = None  # dialling, redialling or waiting for the peer

    def wait_ready(self) -> asyncio.Future[SessionEstablished]:
        if self.waiter is None or self.waiter.done():
            self.waiter = asyncio.get_running_loop().create_future()
        return self.waiter

    def settle(self, result: SessionEstablished | BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            if isinstance(result, BaseException):
                self.waiter.set_exception(result)
                self.waiter.exception()  # retrieved: nobody may be waiting
            else:
                self.waiter.set_result(result)

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    def busy_elsewhere(self) -> bool:
        return self.busy and self.task is not asyncio.current_task()


class EndpointChat:
    """``chat = await EndpointChat.open(endpoint, crypto, identity, context=context)``."""

    def __init__(self, endpoint: Endpoint, crypto: CryptoService, identity: bytes,
                 context: AppContext, reconnect: ReconnectPolicy,
                 sleep: Callable[[float], Awaitable[None]], *, accept_files: bool = False) -> None:
        self._endpoint, self._crypto, self._identity = endpoint, crypto, identity
        self._context, self._policy, self._sleep = context, reconnect, sleep
        self._fingerprint = crypto.fingerprint(identity)
        store = getattr(context, "store", None)
        self._store: ProfileStore | None = store if store is not None and supports(
            store, ProfileStore) else None
        self._peers: dict[str, _Peer] = {}
        self._events: asyncio.Queue[ChatEvent | None] = asyncio.Queue(EVENT_QUEUE)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rng = random.Random()  # noqa: S311 - backoff jitter, not a secret
        self._closed = False
        self.refused_links = 0
        self._incoming_setups = 0
        self._desk = FileDesk(context, self._store, self._emit, accept_files=accept_files)
        self._groups: GroupDesk | None = None

    @classmethod
    async def open(cls, endpoint: Endpoint, crypto: CryptoService, identity: bytes, *,
                   context: AppContext, saved: Mapping[str, bytes] | None = None,
                   reconnect: ReconnectPolicy | None = None,
                   sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                   accept_files: bool = False,
                   group_config: GroupConfig | None = None) -> EndpointChat:
        """The chat service on ``endpoint``; kept sessions from the store and ``saved``.
        ``accept_files`` (or the ``[plugins.p2p] accept_files = true`` setting): accept every
        offered file (scripts); else a :class:`FileOffered` event asks (the default).
        ``group_config``: the group cores' bounds and timers (tests shorten them)."""
        accept_files = accept_files or context.settings.get("accept_files") is True
        chat = cls(endpoint, crypto, identity, context, reconnect or ReconnectPolicy(), sleep,
                   accept_files=accept_files)
        kept: dict[str, bytes] = {}
        if chat._store is not None:
            try:
                kept.update((k.decode("utf-8", "replace"), v)
                            for k, v in chat._store.items(SESSIONS_TABLE))
            except Exception as exc:  # the store's errors belong to the shell
                chat._events.put_nowait(ChatProblem("", "local", f"saved sessions: {exc}"))
        kept.update(saved or {})
        for peer_id, data in list(kept.items())[:MAX_PEERS]:
            try:
                chat._peer(peer_id).core = restore_core(data, crypto, context.limits)
            except SavedStateError as exc:
                chat._events.put_nowait(ChatProblem(peer_id, "local", str(exc)))
        chat._spawn(chat._hand_up_again())
        chat._spawn(chat._accept_loop())
        chat._spawn(chat._progress_loop())
        if supports(crypto, GroupCryptoService):
            chat._open_groups(cast(GroupCryptoService, crypto), group_config or DRIVER_CONFIG)
        return chat

    def _open_groups(self, service: GroupCryptoService, config: GroupConfig) -> None:
        self._groups = GroupDesk(service, self._identity, self.local_id, store=self._store,
                                 emit=self._emit, send=self._send_group_frame,
                                 dial=self._dial_for_groups, clock=self._context.clock,
                                 config=config)
        for problem in self._groups.restore():
            self._events.put_nowait(problem)
        self._spawn(self._groups.run())

    # ------------------------------------------------------------------ ChatService
    @property
    def local_id(self) -> str:
        return self._endpoint.local_id

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    async def connect(self, peer_id: str, timeout: float | None = None) -> SessionEstablished:
        self._check_open()
        peer = self._peer(peer_id)
        if peer.state == "ready" and peer.established is not None:
            return peer.established
        waiter = peer.wait_ready()
        peer.closing, peer.dialler = False, True
        if peer.awaiting and peer.task is not None:
            peer.task.cancel()  # we stop waiting for the peer and dial it ourselves
            peer.task, peer.awaiting = None, False
        if not peer.busy and peer.session is None:
            peer.task = self._spawn(self._dial(peer, timeout))
        return await asyncio.shield(waiter)

    async def send_text(self, peer_id: str, text: str) -> str:
        peer = self._peers.get(peer_id)
        if peer is None or peer.core is None or (peer.state == "disconnected"
                                                 and peer.core.session is None):
            raise P2PUsageError(f"no session with {peer_id!r}: connect first")
        session = peer.session
        # The session's own state, not ours: between its Ready (which resent the queue) and our
        # "ready" a queued message would wait for the next resume (found by the soak).
        if session is not None and session.state is SessionState.READY:
            try:
                return await session.send_text(text)
            except LinkClosed:  # kept as unacknowledged: the resend after reconnecting sends it
                return next(reversed(peer.core.unacknowledged))
        message_id = peer.core.queue_text(text)
        self._persist(peer)
        return message_id

    async def send_typing(self, peer_id: str) -> None:
        peer = self._peers.get(peer_id)
        if peer is not None and peer.state == "ready" and peer.session is not None:
            with contextlib.suppress(LinkClosed):
                await peer.session.send_typing()

    async def events(self) -> AsyncIterator[ChatEvent]:
        while True:
            event = await self._events.get()
            if event is None:
                with contextlib.suppress(asyncio.QueueFull):
                    self._events.put_nowait(None)
                return
            try:
                yield event
            finally:  # the application asks for the next event (or stopped): it took this one
                if isinstance(event, ChatMessage):
                    self._taken(event)

    def peers(self) -> Mapping[str, str]:
        return MappingProxyType({p.peer_id: p.state for p in self._peers.values()})

    async def disconnect(self, peer_id: str) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            return
        peer.closing = True
        if peer.busy and peer.task is not asyncio.current_task():
            assert peer.task is not None
            peer.task.cancel()
        session, peer.session = peer.session, None
        if session is not None:
            await session.close()
        peer.settle(LinkClosedLocally(f"disconnected from {peer_id}"))
        await self._set_state(peer, "disconnected", "closed locally")

    def export_state(self, peer_id: str) -> bytes | None:
        peer = self._peers.get(peer_id)
        return export_core(peer.core) if peer is not None and peer.core is not None else None

    async def aclose(self) -> None:
        if self._closed:
            return
        for peer_id in list(self._peers):
            await self.disconnect(peer_id)
        self._closed = True
        await self._endpoint.aclose()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        while self._events.full():
            self._events.get_nowait()
        self._events.put_nowait(None)

    # ------------------------------------------------------------------ FileChatService (2.1)
    def _files_of(self, peer_id: str) -> tuple[_Peer, FileTransfers]:
        peer = self._peers.get(peer_id)
        if peer is None or peer.core is None or peer.core.files is None:
            raise FileUsageError(f"no session with {peer_id!r} yet: connect first")
        return peer, peer.core.files

    def _after_command(self, peer: _Peer) -> None:
        self._persist(peer)
        if peer.session is not None:
            peer.session.kick_files()

    async def send_file(self, peer_id: str, path: Path, *, fast: bool = False) -> str:
        self._check_open()
        peer, files = self._files_of(peer_id)
        transfer_id = await self._desk.offer(peer_id, files, Path(path), fast=fast)
        self._after_command(peer)
        return transfer_id

    async def accept_file(self, peer_id: str, transfer_id: str) -> None:
        peer, files = self._files_of(peer_id)
        events = self._desk.accept(peer_id, files, transfer_id, self._context.clock())
        for event in events:
            await self._desk.on_event(peer_id, files, event, self._context.clock())
        self._after_command(peer)

    async def reject_file(self, peer_id: str, transfer_id: str) -> None:
        peer, files = self._files_of(peer_id)
        self._desk.check_peer(peer_id, transfer_id)
        files.reject(transfer_id)
        self._desk.forget(transfer_id)
        self._after_command(peer)

    async def cancel_file(self, peer_id: str, transfer_id: str) -> None:
        peer, files = self._files_of(peer_id)
        self._desk.check_peer(peer_id, transfer_id)
        files.cancel(transfer_id)
        self._desk.forget(transfer_id)
        self._after_command(peer)

    def files(self) -> list[StoredFile]:
        return self._desk.files()

    def export_file(self, file_id: str, destination: Path) -> Path:
        return self._desk.export(file_id, destination)

    # ------------------------------------------------------------------ GroupChatService (2.2)
    def _group_desk(self) -> GroupDesk:
        self._check_open()
        if self._groups is None:
            raise P2PUsageError("the crypto service has no group API (crypto contract 2.1)")
        return self._groups

    async def create_group(self, name: str) -> str:
        return await self._group_desk().create(name)

    async def invite(self, group_id: str, peer_id: str) -> None:
        await self._group_desk().invite(group_id, peer_id)

    async def remove(self, group_id: str, peer_id: str) -> None:
        await self._group_desk().remove(group_id, peer_id)

    async def leave(self, group_id: str) -> None:
        await self._group_desk().leave(group_id)

    async def rename(self, group_id: str, name: str) -> None:
        await self._group_desk().rename(group_id, name)

    def groups(self) -> list[GroupInfo]:
        return [] if self._groups is None else self._groups.infos()

    async def send_group_text(self, group_id: str, text: str) -> str:
        return await self._group_desk().send_text(group_id, text)

    async def _send_group_frame(self, peer_id: str, pdu: bytes) -> bool:
        """One group frame over the ready session to ``peer_id``; ``False``: not sent."""
        peer = self._peers.get(peer_id)
        if peer is None or peer.state != "ready" or peer.session is None:
            return False
        try:
            await peer.session.send_group(pdu)
        except (LinkClosed, SessionNotReady):
            return False
        except P2PUsageError as exc:  # larger than the link's cap: it never fits, dropped
            _log.warning("a group frame to %s was dropped: %s", peer_id[:64], exc)
        return True

    def _dial_for_groups(self, peer_id: str) -> None:
        peer = self._peers.get(peer_id)
        if self._closed or (peer is not None and (peer.busy or peer.state != "disconnected")):
            return
        self._spawn(self._group_dial(peer_id))

    async def _group_dial(self, peer_id: str) -> None:
        try:
            await self.connect(peer_id, self._policy.connect_timeout_s)
        except (ContractError, P2PError, TimeoutError) as exc:
            _log.info("group member %s not reached: %s", peer_id[:64], exc)
            peer = self._peers.get(peer_id)
            if peer is not None and peer.core is None and peer.session is None \
                    and not peer.busy and peer.state == "disconnected":
                # a roster may name any peer id: one never reached keeps no entry (MAX_PEERS)
                del self._peers[peer_id]

    async def _progress_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            cores = [(p.peer_id, p.core.files) for p in list(self._peers.values())
                     if p.core is not None and p.core.files is not None]
            await self._desk.progress(cores, self._context.clock())

    def wake(self) -> None:
        """Re-read the clock in every session (tests that advance a fake clock call this)."""
        for peer in self._peers.values():
            if peer.session is not None:
                peer.session.wake()

    # ------------------------------------------------------------------ peers and events
    async def _hand_up_again(self) -> None:
        """Messages a previous process handed up that its application never took."""
        for peer in list(self._peers.values()):
            for message_id, text in list(peer.core.inbox.items() if peer.core else ()):
                await self._emit(ChatMessage(peer.peer_id, message_id, text, time.time()))

    def _taken(self, message: ChatMessage) -> None:
        peer = self._peers.get(message.peer_id)
        if peer is not None and peer.core is not None and peer.core.taken(message.message_id):
            self._persist(peer)

    def _check_open(self) -> None:
        if self._closed:
            raise LinkClosedLocally("the chat service is closed")

    def _peer(self, peer_id: str) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            if not peer_id or len(peer_id) > 256:
                raise P2PUsageError(f"not a peer id: {peer_id[:64]!r}")
            if len(self._peers) >= MAX_PEERS:
                raise P2PUsageError(f"at most {MAX_PEERS} peers per chat service")
            peer = self._peers[peer_id] = _Peer(peer_id)
        return peer

    async def _emit(self, event: ChatEvent) -> None:
        if not self._closed:
            await self._events.put(event)  # bounded: a slow reader slows the links down

    async def _set_state(self, peer: _Peer, state: str, reason: str = "") -> None:
        if state == "disconnected":
            peer.settle(LinkBroken(f"no session with {peer.peer_id}: {reason or 'disconnected'}"))
        if peer.state != state:
            peer.state = state
            if self._groups is not None:
                self._groups.links_changed({p.peer_id for p in self._peers.values()
                                            if p.state == "ready"})
            await self._emit(PeerStateChanged(peer.peer_id, state, reason))

    def _persist(self, peer: _Peer) -> None:
        if self._store is None or peer.core is None:
            return
        data = export_core(peer.core)
        if data is not None:
            try:
                self._store.put(SESSIONS_TABLE, peer.peer_id.encode("utf-8"), data)
            except Exception as exc:  # the store's errors belong to the shell
                _log.warning("cannot persist the session with %s: %s", peer.peer_id, exc)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ links
    async def _dial(self, peer: _Peer, timeout: float | None) -> None:
        await self._set_state(peer, "connecting")
        try:
            error = await self._dial_once(peer, timeout)
        except (NetworkError, LinkClosed) as exc:
            error = exc
        if error is not None:
            peer.settle(error)
            await self._set_state(peer, "disconnected", str(error))

    async def _dial_once(self, peer: _Peer, timeout: float | None) -> Exception | None:
        """One dial and session set-up; raises the endpoint's network errors."""
        peer.dialling = True
        try:
            link = await self._endpoint.connect(peer.peer_id, timeout)
            if peer.session is not None:  # an incoming link won the race meanwhile
                await link.close()
                return None
            return await self._run_link(peer, link, initiator=True)
        finally:
            peer.dialling = False

    async def _run_link(self, peer: _Peer, link: LinkV2, *, initiator: bool,
                        first_pdu: bytes | None = None) -> Exception | None:
        """Resume or handshake on ``link``; ``None`` once ready (a pump then serves it)."""
        limits = self._context.limits
        session = ChatSession(link, self._crypto, self._identity, initiator=initiator,
                              clock=self._context.clock, limits=limits, core=peer.core,
                              on_change=lambda: self._persist(peer))
        peer.session, peer.core = session, session.core
        if session.core.files_factory is None:
            session.core.files_factory = self._desk.factory(peer.peer_id)
        await self._set_state(peer, "handshaking")
        try:
            info = await session.start(limits.handshake_timeout_s + 5, first_pdu=first_pdu)
        except (HandshakeError, LinkClosed, TimeoutError) as exc:
            await session.close()
            if peer.session is session:
                peer.session = None
            kind = "network" if isinstance(exc, LinkClosed) else "remote"
            await self._emit(ChatProblem(peer.peer_id, kind, f"session setup failed: {exc}"))
            return exc if isinstance(exc, Exception) else None
        except asyncio.CancelledError:
            await session.close()
            if peer.session is session:
                peer.session = None
            raise
        established = _established(peer.peer_id, info)
        peer.established = established
        await self._set_state(peer, "ready")
        await self._emit(established)
        peer.settle(established)
        self._spawn(self._pump(peer, session))
        return None

    async def _pump(self, peer: _Peer, session: ChatSession) -> None:
        reason = "the link ended"
        async for event in session.events():
            if isinstance(event, MessageReceived):
                await self._emit(ChatMessage(peer.peer_id, event.message_id, event.text,
                                             time.time()))
            elif isinstance(event, ReceiptReceived):
                await self._emit(ChatReceipt(peer.peer_id, event.message_id))
            elif isinstance(event, TypingReceived):
                await self._emit(ChatTyping(peer.peer_id))
            elif isinstance(event, SessionFailed):
                await self._emit(ChatProblem(peer.peer_id, "remote", event.reason))
            elif isinstance(event, IdentityChanged):
                await self._emit(ChatProblem(
                    peer.peer_id, "remote",
                    f"{peer.peer_id} now answers with a different identity key "
                    f"({event.previous_fingerprint[:16]}… -> {event.peer_fingerprint[:16]}…): "
                    f"{len(event.withheld)} queued message(s) were not sent to it; compare the "
                    "safety number before sending again"))
            elif isinstance(event, FileOutput) and session.core.files is not None:
                if await self._desk.on_event(peer.peer_id, session.core.files, event.event,
                                             self._context.clock()):
                    self._persist(peer)
                    session.kick_files()
            elif isinstance(event, GroupFrameReceived) and self._groups is not None:
                fingerprint = peer.established.peer_fingerprint if peer.established else None
                await self._groups.frame_received(peer.peer_id, event.pdu, fingerprint)
            elif isinstance(event, LinkClosed):
                reason = str(event)
        await session.close()
        if peer.session is session:  # not replaced or disconnected meanwhile
            peer.session = None
            await self._lost(peer, reason)

    async def _lost(self, peer: _Peer, reason: str) -> None:
        if self._closed or peer.closing or peer.core is None or not peer.core.can_resume:
            await self._set_state(peer, "disconnected", reason)
            if not peer.dialler and (peer.core is None or not peer.core.can_resume) \
                    and self._peers.get(peer.peer_id) is peer and not peer.busy_elsewhere():
                del self._peers[peer.peer_id]  # a stranger whose handshake failed: forget it
            return
        await self._set_state(peer, "reconnecting", reason)
        redial = self._redial(peer) if peer.dialler else self._await_peer(peer)
        peer.task = self._spawn(redial)

    async def _redial(self, peer: _Peer) -> None:
        started, last = self._context.clock(), "no attempt"
        for attempt, delay in enumerate(self._policy.delays(self._rng), 1):
            await self._sleep(delay)
            if peer.closing or self._closed or peer.session is not None:
                return
            if self._context.clock() - started > self._policy.window_s:
                break
            try:
                error = await self._dial_once(peer, self._policy.connect_timeout_s)
            except (NetworkError, LinkClosed) as exc:
                error = exc
            if error is None:
                return
            last = f"attempt {attempt}: {error}"
        reason = f"gave up reconnecting ({last})"
        await self._emit(ChatProblem(peer.peer_id, "network", reason))
        await self._set_state(peer, "disconnected", reason)

    async def _await_peer(self, peer: _Peer) -> None:
        peer.awaiting = True
        try:
            await self._sleep(self._policy.window_s)
        finally:
            peer.awaiting = False
        if peer.session is None and peer.state == "reconnecting":
            await self._set_state(peer, "disconnected",
                                  f"the peer did not come back within {self._policy.window_s:g} s")

    async def _accept_loop(self) -> None:
        async for link in self._endpoint.incoming():
            if self._closed:
                await link.close()
                return
            self._spawn(self._accept(link))

    async def _accept(self, link: LinkV2) -> None:
        try:
            async with asyncio.timeout(FIRST_PDU_TIMEOUT_S):
                first = await link.receive()
            peer = self._peer(link.peer_id)
        except (TimeoutError, LinkClosed, P2PUsageError, RemoteInputError) as exc:
            _log.info("refused an incoming link from %s: %s", link.peer_id[:64], exc)
            self.refused_links += 1
            await link.close()
            return
        if peer.dialling and self.local_id < peer.peer_id:
            self.refused_links += 1  # glare: our own dial wins (the smaller id's)
            await link.close()
            return
        if self._incoming_setups >= MAX_INCOMING_SETUPS:
            self.refused_links += 1
            await link.close()
            if peer.core is None and not peer.dialler and not peer.busy:
                del self._peers[peer.peer_id]
            return
        self._incoming_setups += 1
        try:
            await self._take(peer, link, first)
        finally:
            self._incoming_setups -= 1

    async def _take(self, peer: _Peer, link: LinkV2, first: bytes) -> None:
        """Serve an accepted incoming link: it replaces our dial, our wait or a stale link."""
        if peer.busy and peer.task is not None:
            peer.task.cancel()  # the peer's link replaces our dial or our wait
        old, peer.session = peer.session, None
        if old is not None:
            await old.close()  # the peer redialled before we saw the old link go
        peer.closing = False
        await self._set_state(peer, "connecting")
        peer.task = asyncio.current_task()
        error = await self._run_link(peer, link, initiator=False, first_pdu=first)
        if error is not None:
            peer.settle(error)
            await self._lost(peer, str(error))


def _established(peer_id: str, info: SessionReady) -> SessionEstablished:
    return SessionEstablished(peer_id, info.profile, info.layers, info.peer_fingerprint,
                              info.safety_number, info.resumed)
