"""Slot ``p2p``: links between peers (1.0), endpoints + the chat service (2.0), files (2.1),
groups (2.2).

1.0 is the in-process shape (``loopback_pair``).  2.0 (a MAJOR) is the transport as an
:class:`Endpoint` — ``open_endpoint`` / ``connect`` / ``incoming`` / ``aclose`` — plus the
:class:`ChatService` the ui slot builds on (connect by peer id, sessions, receipts, resume).
Both stay published: a 1.0 plugin still loads, and a ui detects which one it was given.
2.1 (a MINOR: it only adds) is 2.0 plus an optional feature of the chat service,
:class:`FileChatService` (send, accept, store and export files; detected with
``supports(chat, FileChatService)``) and its events.
2.2 (a MINOR) adds the optional :class:`GroupChatService` (MLS groups carried over the 1:1
sessions: create, invite, remove, leave, rename, send; detected with
``supports(chat, GroupChatService)``), :class:`GroupInfo` and the group events.
"""

from __future__ import annotations

__all__ = [
    "PEER_STATES",
    "ChatEvent",
    "ChatMessage",
    "ChatProblem",
    "ChatReceipt",
    "ChatService",
    "ChatTyping",
    "Endpoint",
    "FileChatEvent",
    "FileChatService",
    "FileCompleted",
    "FileFailed",
    "FileOffered",
    "FileProgress",
    "GROUP_STATES",
    "GroupChatEvent",
    "GroupChatForked",
    "GroupChatLeft",
    "GroupChatMembership",
    "GroupChatMessage",
    "GroupChatProblem",
    "GroupChatReceipt",
    "GroupChatRenamed",
    "GroupChatService",
    "GroupInfo",
    "GroupMember",
    "Link",
    "LinkBroken",
    "LinkClosed",
    "LinkClosedLocally",
    "LinkV2",
    "PeerStateChanged",
    "PeerUnavailable",
    "SessionEstablished",
    "SignalingFailed",
    "StoredFile",
    "TransportService",
    "TransportServiceV2",
    "TransportServiceV21",
    "TransportServiceV22",
]

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from ._common import ContractError, LocalMisuse, NetworkError


class LinkClosed(ContractError):
    """The link is closed; nothing more can be sent or received. Catch this for "either side"."""


class LinkClosedLocally(LinkClosed, LocalMisuse):
    """We closed the link (or the endpoint) and then used it."""


class LinkBroken(LinkClosed, NetworkError):
    """The peer closed the link or the connection to it broke."""


@runtime_checkable
class Link(Protocol):
    """An ordered, reliable, message-oriented link to one peer (a data channel or equivalent)."""

    @property
    def peer_id(self) -> str:
        """The routing handle of the remote end (not its cryptographic identity)."""
        ...

    async def send(self, pdu: bytes) -> None:
        """Send one PDU; raises :class:`LinkClosed` once closed."""
        ...

    async def receive(self) -> bytes:
        """Wait for the next PDU; raises :class:`LinkClosed` when the link ends."""
        ...

    async def close(self) -> None:
        """Close the link; idempotent."""
        ...


@runtime_checkable
class TransportService(Protocol):
    """What a p2p plugin provides."""

    @property
    def name(self) -> str:
        """Transport name, e.g. ``memory`` or ``webrtc``."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """Transport features really provided (same names as the manifest)."""
        ...

    async def loopback_pair(self, first: str, second: str) -> tuple[Link, Link]:
        """Two connected in-process links, for local demos and tests."""
        ...


# ============================================================================ contract 2.0
# 2.0 (a MAJOR): the transport as an endpoint that reaches peers by id, and the chat service the
# ui slot builds on.  ``loopback_pair`` is gone; 1.0 stays published so 1.0 plugins still load.


class PeerUnavailable(NetworkError):
    """The peer id cannot be reached: unknown to the broker, or no link opened in time."""


class SignalingFailed(NetworkError):
    """The broker refused us or could not be reached (registration, id taken, socket lost)."""


@runtime_checkable
class LinkV2(Link, Protocol):
    """A 2.0 link: a 1.0 :class:`Link` that also states its PDU bound and why it ended."""

    @property
    def max_pdu_bytes(self) -> int:
        """The largest PDU :meth:`send` accepts on this link (the session chunks above it)."""
        ...

    @property
    def close_reason(self) -> str | None:
        """``None`` while open; afterwards one line: who closed it and why."""
        ...


@runtime_checkable
class Endpoint(Protocol):
    """Our presence on the network: registered under :attr:`local_id`, dialling and accepting links.

    Raises :class:`PeerUnavailable` / :class:`SignalingFailed` (network) and
    :class:`LinkClosedLocally` once :meth:`aclose` ran.
    """

    @property
    def local_id(self) -> str:
        """The id peers dial to reach us (routing only; never an identity)."""
        ...

    async def connect(self, peer_id: str, timeout: float | None = None) -> LinkV2:
        """A link to ``peer_id`` (``timeout`` seconds at most; ``None``: the endpoint's default)."""
        ...

    def incoming(self) -> AsyncIterator[LinkV2]:
        """Links peers opened to us, as they open; ends when the endpoint closes."""
        ...

    async def aclose(self) -> None:
        """Leave the broker and close every link; idempotent."""
        ...


# ------------------------------------------------------------------------------- chat events
@dataclass(frozen=True, slots=True)
class PeerStateChanged:
    """The connection to ``peer_id`` changed: ``state`` is one of :data:`PEER_STATES`."""

    peer_id: str
    state: str
    reason: str = ""


PEER_STATES: Final = ("connecting", "handshaking", "ready", "reconnecting", "disconnected")
"""``connecting`` (dialling / accepting), ``handshaking`` (crypto), ``ready`` (messages flow),
``reconnecting`` (link lost, retrying with backoff; unacknowledged messages wait),
``disconnected`` (ended; ``reason`` says why)."""


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """The crypto session with ``peer_id`` is up (``resumed``: kept state, no new handshake)."""

    peer_id: str
    profile: str
    layers: tuple[str, ...]
    peer_fingerprint: str
    safety_number: str
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A text from ``peer_id``, delivered once (deduplicated by ``message_id``)."""

    peer_id: str
    message_id: str
    text: str
    received_at: float
    """Wall-clock seconds (``time.time()``) when it was delivered here."""


@dataclass(frozen=True, slots=True)
class ChatReceipt:
    """``peer_id`` confirmed it received our message ``message_id``."""

    peer_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class ChatTyping:
    """``peer_id`` is typing (optional; a ui may ignore it)."""

    peer_id: str


@dataclass(frozen=True, slots=True)
class ChatProblem:
    """Something went wrong that the user should see, for ``peer_id`` (``""``: the service).

    ``kind`` is ``local`` / ``remote`` / ``network`` (the contract error split); never fatal."""

    peer_id: str
    kind: str
    message: str


# ------------------------------------------------------------------------------- 2.1: files
@dataclass(frozen=True, slots=True)
class FileOffered:
    """``peer_id`` offers a file: answer with :meth:`FileChatService.accept_file` or
    ``reject_file`` (unless an auto-accept policy did).  ``name`` is already a safe file name;
    ``fast`` means the peer chose the reduced-protection fast path (show it)."""

    peer_id: str
    transfer_id: str
    name: str
    size: int
    sha256: str
    fast: bool


@dataclass(frozen=True, slots=True)
class FileProgress:
    """A running transfer: ``bytes`` of ``total`` sent (``outgoing``) or verified, ``rate`` in
    bytes/s (recent), ``eta`` in seconds (``None`` while unknown)."""

    peer_id: str
    transfer_id: str
    outgoing: bool
    bytes: int
    total: int
    rate: float
    eta: float | None


@dataclass(frozen=True, slots=True)
class FileCompleted:
    """A transfer finished and the receiver verified the whole file's ``sha256`` (hex).  For an
    incoming one, ``transfer_id`` is also the stored file's id (:meth:`FileChatService.files`)."""

    peer_id: str
    transfer_id: str
    outgoing: bool
    name: str
    size: int
    sha256: str
    fast: bool


@dataclass(frozen=True, slots=True)
class FileFailed:
    """A transfer ended without a verified file: rejected, cancelled (either side), a hash
    mismatch, too many retries, our disk; ``reason`` is one line."""

    peer_id: str
    transfer_id: str
    outgoing: bool
    reason: str


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A received, verified file kept encrypted at rest in the profile (``id`` for export)."""

    id: str
    name: str
    size: int
    sha256: str
    peer_id: str
    fast: bool


FileChatEvent = FileOffered | FileProgress | FileCompleted | FileFailed


# ------------------------------------------------------------------------------- 2.2: groups
GROUP_STATES: Final = ("active", "rejoining", "left")
"""``active`` (a member), ``rejoining`` (off the group's branch or behind its history: a new
Welcome is on its way), ``left`` (we left or were removed; the group stays listed, read-only)."""


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One member: its peer id (routing) and identity ``fingerprint`` (authenticated by MLS)."""

    peer_id: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A group as we see it now.  ``group_id`` is hex; ``members`` in leaf order (the first
    makes the commits: the sequencer); ``state`` one of :data:`GROUP_STATES`."""

    group_id: str
    name: str
    epoch: int
    members: tuple[GroupMember, ...]
    state: str


@dataclass(frozen=True, slots=True)
class GroupChatMessage:
    """A member's text in ``group_id``, delivered once (deduplicated by ``message_id``);
    ``fingerprint`` is the sender's identity as MLS authenticated it, ``peer_id`` its peer."""

    group_id: str
    message_id: str
    peer_id: str
    fingerprint: str
    text: str
    epoch: int
    received_at: float
    """Wall-clock seconds (``time.time()``) when it was delivered here."""


@dataclass(frozen=True, slots=True)
class GroupChatReceipt:
    """Member ``fingerprint`` (at ``peer_id``) received our group message ``message_id``."""

    group_id: str
    message_id: str
    peer_id: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class GroupChatMembership:
    """We joined ``group_id`` or a commit changed it: the whole membership at ``epoch`` (a ui
    redraws from this alone), who came and went (fingerprints) and who committed."""

    group_id: str
    name: str
    epoch: int
    members: tuple[GroupMember, ...]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    committer: str = ""


@dataclass(frozen=True, slots=True)
class GroupChatRenamed:
    """``by`` (a member's fingerprint) renamed ``group_id`` to ``name``."""

    group_id: str
    name: str
    by: str


@dataclass(frozen=True, slots=True)
class GroupChatForked:
    """Members disagree on ``group_id`` at ``epoch`` (a fork, shown, never silent): ``peer_id``
    reported the other branch; ``rejoining`` when we are on the losing one and re-join."""

    group_id: str
    epoch: int
    peer_id: str
    reason: str
    rejoining: bool = False


@dataclass(frozen=True, slots=True)
class GroupChatLeft:
    """We are no longer a member of ``group_id`` at ``epoch``: we left, or ``by`` (a member's
    fingerprint; ours for our own leave) removed us.  Later messages are unreadable to us."""

    group_id: str
    epoch: int
    by: str


@dataclass(frozen=True, slots=True)
class GroupChatProblem:
    """Something about ``group_id`` the user should see (``kind`` local / remote / network, like
    :class:`ChatProblem`): an operation given up, a re-join started, a damaged saved group."""

    group_id: str
    kind: str
    message: str


GroupChatEvent = (GroupChatMessage | GroupChatReceipt | GroupChatMembership | GroupChatRenamed
                  | GroupChatForked | GroupChatLeft | GroupChatProblem)

ChatEvent = (PeerStateChanged | SessionEstablished | ChatMessage | ChatReceipt | ChatTyping
             | ChatProblem | FileOffered | FileProgress | FileCompleted | FileFailed
             | GroupChatMessage | GroupChatReceipt | GroupChatMembership | GroupChatRenamed
             | GroupChatForked | GroupChatLeft | GroupChatProblem)
"""Every event of :meth:`ChatService.events`; the file events (2.1) come only from a
:class:`FileChatService`, the group events (2.2) only from a :class:`GroupChatService` (a 2.0 ui
ignores event types it does not know)."""


@runtime_checkable
class ChatService(Protocol):
    """End-to-end encrypted 1:1 chat over an :class:`Endpoint` and the crypto service: what the
    ui slot builds on.  One object per running profile; every peer's session runs behind it.

    Peer input never raises here: it becomes a :class:`ChatProblem` or is dropped and counted.
    """

    @property
    def local_id(self) -> str:
        """Our peer id at the broker."""
        ...

    @property
    def fingerprint(self) -> str:
        """Our identity fingerprint (what a peer compares)."""
        ...

    async def connect(self, peer_id: str, timeout: float | None = None) -> SessionEstablished:
        """Dial ``peer_id`` and run the handshake (or resume kept state); returns once ready.
        Raises :class:`PeerUnavailable`, :class:`SignalingFailed` or a :class:`RemoteInputError`
        (the handshake failed: no common profile, a bad PDU, the 300 s timeout)."""
        ...

    async def send_text(self, peer_id: str, text: str) -> str:
        """Seal and send ``text`` to a connected peer; its ``message_id`` (a
        :class:`ChatReceipt` follows). While ``reconnecting`` it is queued and resent."""
        ...

    async def send_typing(self, peer_id: str) -> None:
        """Tell a ready peer we are typing (best effort)."""
        ...

    def events(self) -> AsyncIterator[ChatEvent]:
        """Every event of every peer, in order; ends after :meth:`aclose`."""
        ...

    def peers(self) -> Mapping[str, str]:
        """Peer id -> current state (one of :data:`PEER_STATES`)."""
        ...

    async def disconnect(self, peer_id: str) -> None:
        """End the session with ``peer_id`` (its state is kept for a later resume); idempotent."""
        ...

    def export_state(self, peer_id: str) -> bytes | None:
        """The session with ``peer_id`` as bytes to persist encrypted (``None``: no session);
        give it back to ``open_chat(..., saved=...)`` to resume after a restart."""
        ...

    async def aclose(self) -> None:
        """Disconnect everyone, leave the broker; idempotent."""
        ...


@runtime_checkable
class FileChatService(ChatService, Protocol):
    """2.1, optional (``supports(chat, FileChatService)``): files with a connected peer.

    A file goes over the session's link next to the chat, never ahead of a text message, with
    resume after a lost link or a restart (from the last verified chunk).  The standard path seals
    every chunk through the whole session; ``fast=True`` uses one AES-256-GCM layer keyed from the
    session instead (reduced protection: show it).  Received files are kept encrypted in the
    profile; without an unlocked profile store a service refuses to receive (one-line reason).
    Events: :class:`FileOffered`, :class:`FileProgress`, :class:`FileCompleted`,
    :class:`FileFailed`.
    """

    async def send_file(self, peer_id: str, path: Path, *, fast: bool = False) -> str:
        """Offer the file at ``path`` to a connected peer; the transfer id.  Raises
        :class:`LocalMisuse` (no session, unreadable file, too many transfers)."""
        ...

    async def accept_file(self, peer_id: str, transfer_id: str) -> None:
        """Accept an offered file into the profile (checks free disk first)."""
        ...

    async def reject_file(self, peer_id: str, transfer_id: str) -> None:
        """Decline an offered file; the peer sees :class:`FileFailed` ``declined``."""
        ...

    async def cancel_file(self, peer_id: str, transfer_id: str) -> None:
        """Stop a transfer in either direction; a partial file is deleted."""
        ...

    def files(self) -> Sequence[StoredFile]:
        """The received, verified files kept in the profile."""
        ...

    def export_file(self, file_id: str, destination: Path) -> Path:
        """Decrypt a stored file to ``destination`` (into it if a directory, never over an
        existing file; the SHA-256 is checked); the path written."""
        ...


@runtime_checkable
class GroupChatService(FileChatService, Protocol):
    """2.2, optional (``supports(chat, GroupChatService)``): MLS groups with the peers we reach.

    Group PDUs travel over the 1:1 sessions (sealed by each session like a chat message), the MLS
    ciphertext inside is end to end between members; a member we have no session with is dialled,
    and a message reaches a member we cannot reach through another member (ciphertext only).
    One member commits per epoch (the sequencer); the others' changes go to it and show up as a
    :class:`GroupChatMembership` once committed.  Groups are kept in the profile store and resume
    after a restart.  Ids are hex strings; peers are named by peer id.  Raises
    :class:`LocalMisuse` for an unknown group, a non-member, a group we left, a bad name or text.
    Events: :class:`GroupChatMessage`, :class:`GroupChatReceipt`, :class:`GroupChatMembership`,
    :class:`GroupChatRenamed`, :class:`GroupChatForked`, :class:`GroupChatLeft`,
    :class:`GroupChatProblem`.
    """

    async def create_group(self, name: str) -> str:
        """A new group with us as its only member; its id (hex)."""
        ...

    async def invite(self, group_id: str, peer_id: str) -> None:
        """Ask ``peer_id`` for a key package (dialling it if needed); the Add commit and its
        Welcome follow, shown as a :class:`GroupChatMembership` listing it."""
        ...

    async def remove(self, group_id: str, peer_id: str) -> None:
        """Remove the member at ``peer_id``; it cannot read anything sent after the commit."""
        ...

    async def leave(self, group_id: str) -> None:
        """Leave the group (another member commits our removal): a :class:`GroupChatLeft`."""
        ...

    async def rename(self, group_id: str, name: str) -> None:
        """Rename the group for every member (last writer wins)."""
        ...

    def groups(self) -> Sequence[GroupInfo]:
        """Every group we are or were in, as we see it now."""
        ...

    async def send_group_text(self, group_id: str, text: str) -> str:
        """Seal ``text`` once for the current members and send it to each; its message id
        (one :class:`GroupChatReceipt` per member follows)."""
        ...


@runtime_checkable
class TransportServiceV2(Protocol):
    """What a p2p 2.0 plugin provides."""

    @property
    def name(self) -> str:
        """Transport name, e.g. ``webrtc`` or ``memory``."""
        ...

    @property
    def capabilities(self) -> frozenset[str]:
        """Transport features really provided (same names as the manifest)."""
        ...

    async def open_endpoint(
        self, settings: Mapping[str, object] | None = None, *, peer_id: str | None = None
    ) -> Endpoint:
        """Register and return an endpoint.  ``settings`` overrides the plugin's
        ``[plugins.p2p]`` table key by key (``broker_url``, ``ice_servers``, ``relay_only``,
        ``host_addresses``, ``remote_networks``, ``connect_timeout``; see docs/hooks.md);
        ``peer_id`` asks for that id (else the broker assigns one)."""
        ...

    async def open_chat(
        self,
        identity: bytes,
        settings: Mapping[str, object] | None = None,
        *,
        peer_id: str | None = None,
        saved: Mapping[str, bytes] | None = None,
    ) -> ChatService:
        """A chat service for ``identity`` (the crypto contract's ``new_identity()`` bytes) on a
        fresh endpoint.  ``saved`` maps peer ids to :meth:`ChatService.export_state` bytes kept
        from an earlier run, so those sessions resume without a new handshake."""
        ...


@runtime_checkable
class TransportServiceV21(TransportServiceV2, Protocol):
    """What a p2p 2.1 plugin provides: 2.0's members unchanged; its chat services may implement
    the optional :class:`FileChatService` (detect it with ``supports``)."""


@runtime_checkable
class TransportServiceV22(TransportServiceV21, Protocol):
    """What a p2p 2.2 plugin provides: 2.1's members unchanged; its chat services may implement
    the optional :class:`GroupChatService` (detect it with ``supports``)."""
