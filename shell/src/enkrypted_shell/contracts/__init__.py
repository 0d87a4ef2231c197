"""Typed contracts between the shell and its plugin slots: one module per slot.

Each slot (``crypto``, ``p2p``, ``ui``) has one contract, versioned ``MAJOR.MINOR``. Every published
version keeps its own Protocol in :data:`PUBLISHED`; a plugin declares in its manifest the version it
implements, and the shell accepts the same MAJOR with a MINOR it publishes, checking the plugin's
service against the Protocol of *that* version (:func:`service_problems`). So a MINOR may add members
without breaking plugins built against the previous MINOR; a change that breaks a plugin bumps MAJOR.
A new optional capability arrives as a feature protocol that callers detect with :func:`supports`.
``docs/hooks.md`` is the prose version of this package and must change with it.

Plugins import only names from this package, :mod:`enkrypted_shell.hookspecs`,
:mod:`enkrypted_shell.testing` and the package root; they never import each other.
"""

from __future__ import annotations

__all__ = [
    "CONTRACT_VERSIONS",
    "PEER_STATES",
    "GROUP_STATES",
    "PUBLISHED",
    "SLOTS",
    "SLOT_HOOKS",
    "SLOT_SERVICES",
    "STORE_CONTRACT",
    "WIRE_LIMITS",
    "AppContext",
    "ChatEvent",
    "ChatMessage",
    "ChatProblem",
    "ChatReceipt",
    "ChatService",
    "ChatTyping",
    "Clock",
    "ContractError",
    "ControlApplied",
    "CryptoFailure",
    "CryptoService",
    "CryptoServiceV21",
    "CryptoServiceV22",
    "Delivered",
    "Endpoint",
    "FileChatEvent",
    "FileChatService",
    "FileCompleted",
    "FileFailed",
    "FileOffered",
    "FileProgress",
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
    "GroupCommit",
    "GroupCommitApplied",
    "GroupControlSigner",
    "GroupCryptoService",
    "GroupEvent",
    "GroupInputRejected",
    "GroupJoinResult",
    "GroupJoined",
    "GroupKeyPackage",
    "GroupMessage",
    "GroupSession",
    "Handshake",
    "HandshakeComplete",
    "HandshakeEvent",
    "HandshakeFailed",
    "HandshakeMisuse",
    "Link",
    "LinkBroken",
    "LinkClosed",
    "LinkClosedLocally",
    "LinkV2",
    "LocalMisuse",
    "NetworkError",
    "OpenResult",
    "PeerStateChanged",
    "PeerUnavailable",
    "ProfileStore",
    "RemoteInputError",
    "RemovedFromGroup",
    "SecureSession",
    "ServiceHook",
    "SessionEstablished",
    "SignalingFailed",
    "StateError",
    "StoredFile",
    "TransportService",
    "TransportServiceV2",
    "TransportServiceV21",
    "TransportServiceV22",
    "UIService",
    "WireLimits",
    "contract_members",
    "implementation_problems",
    "monotonic_clock",
    "service_problems",
    "supports",
]

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

from ._common import (
    WIRE_LIMITS,
    AppContext,
    Clock,
    ContractError,
    LocalMisuse,
    NetworkError,
    RemoteInputError,
    WireLimits,
    monotonic_clock,
)
from ._conformance import contract_members, implementation_problems, supports
from .crypto import (
    ControlApplied,
    CryptoFailure,
    CryptoService,
    CryptoServiceV21,
    CryptoServiceV22,
    Delivered,
    GroupCommit,
    GroupCommitApplied,
    GroupControlSigner,
    GroupCryptoService,
    GroupEvent,
    GroupInputRejected,
    GroupJoined,
    GroupJoinResult,
    GroupKeyPackage,
    GroupMessage,
    GroupSession,
    Handshake,
    HandshakeComplete,
    HandshakeEvent,
    HandshakeFailed,
    HandshakeMisuse,
    OpenResult,
    RemovedFromGroup,
    SecureSession,
    StateError,
)
from .p2p import (
    GROUP_STATES,
    PEER_STATES,
    ChatEvent,
    ChatMessage,
    ChatProblem,
    ChatReceipt,
    ChatService,
    ChatTyping,
    Endpoint,
    FileChatEvent,
    FileChatService,
    FileCompleted,
    FileFailed,
    FileOffered,
    FileProgress,
    GroupChatEvent,
    GroupChatForked,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatProblem,
    GroupChatReceipt,
    GroupChatRenamed,
    GroupChatService,
    GroupInfo,
    GroupMember,
    Link,
    LinkBroken,
    LinkClosed,
    LinkClosedLocally,
    LinkV2,
    PeerStateChanged,
    PeerUnavailable,
    SessionEstablished,
    SignalingFailed,
    StoredFile,
    TransportService,
    TransportServiceV2,
    TransportServiceV21,
    TransportServiceV22,
)
from .store import STORE_CONTRACT, ProfileStore
from .ui import UIService

SLOTS: Final = ("crypto", "p2p", "ui")
"""The slots in wiring order: crypto first, then p2p (given crypto), then ui (given both)."""

PUBLISHED: Final[Mapping[str, Mapping[str, type]]] = MappingProxyType(
    {
        "crypto": MappingProxyType(
            {"2.0": CryptoService, "2.1": CryptoServiceV21, "2.2": CryptoServiceV22}
        ),
        "p2p": MappingProxyType(
            {
                "1.0": TransportService,
                "2.0": TransportServiceV2,
                "2.1": TransportServiceV21,
                "2.2": TransportServiceV22,
            }
        ),
        "ui": MappingProxyType({"1.0": UIService}),
    }
)
"""Every contract version the shell speaks, per slot, with the Protocol of exactly that version."""

CONTRACT_VERSIONS: Final[Mapping[str, str]] = MappingProxyType(
    {slot: max(versions, key=lambda v: tuple(map(int, v.split(".")))) for slot, versions in PUBLISHED.items()}
)
"""The newest contract version the shell speaks per slot (MAJOR.MINOR)."""


class ServiceHook(NamedTuple):
    """How the shell obtains a slot's service: the hook, and which earlier services it is given
    (keyword name -> slot)."""

    hook: str
    needs: Mapping[str, str]


SLOT_SERVICES: Final[Mapping[str, ServiceHook]] = MappingProxyType(
    {
        "crypto": ServiceHook("enkrypted_crypto_service", MappingProxyType({})),
        "p2p": ServiceHook("enkrypted_transport_service", MappingProxyType({"crypto": "crypto"})),
        "ui": ServiceHook(
            "enkrypted_ui_service", MappingProxyType({"crypto": "crypto", "transport": "p2p"})
        ),
    }
)
"""The wiring table the runtime follows in :data:`SLOTS` order (no slot is hard-coded there)."""

SLOT_HOOKS: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {slot: frozenset({service.hook, "enkrypted_cli_commands"}) for slot, service in SLOT_SERVICES.items()}
)
"""Hooks a plugin of each slot may implement; anything else is refused at registration."""


def service_problems(
    slot: str,
    declared: str,
    service: object,
    published: Mapping[str, Mapping[str, type]] = PUBLISHED,
) -> list[str]:
    """Why ``service`` does not implement ``slot`` contract version ``declared`` (empty: it does).

    ``declared`` must be a version the shell publishes for the slot: same MAJOR, a MINOR it knows.
    """
    versions = published.get(slot, {})
    protocol = versions.get(declared)
    if protocol is None:
        return [f"contract {slot} {declared} is not one this shell speaks ({', '.join(versions)})"]
    return implementation_problems(service, protocol)
