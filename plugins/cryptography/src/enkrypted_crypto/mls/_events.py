"""What a :class:`~enkrypted_crypto.mls.Group` is configured with and what it returns."""

from __future__ import annotations

__all__ = ["ApplicationMessage", "CommitApplied", "CommitOutput", "GroupConfig", "ProposalQueued"]

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from enkrypted_crypto.mls._envelopes import Sender
from enkrypted_crypto.mls._keypackage import CredentialValidator, accept_all_credentials
from enkrypted_crypto.mls._messages import PUBLIC_MESSAGE, Proposal


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Local policy: credential check, clock, randomness, padding, PSKs."""

    validate_credential: CredentialValidator = accept_all_credentials
    now: int | None = None
    """Seconds since the epoch for lifetime checks; ``None`` skips them (vectors)."""
    random: Callable[[int], bytes] = os.urandom
    padding: int = 0
    external_psks: dict[bytes, bytes] = field(default_factory=dict)
    ratchet_tree_extension: bool = True
    """Put the ratchet tree in GroupInfo (§12.4.3.3) so joiners need nothing else."""
    handshake_wire_format: int = PUBLIC_MESSAGE


@dataclass(frozen=True, slots=True)
class ApplicationMessage:
    """Application data from the member at leaf ``sender``."""

    sender: int
    data: bytes
    authenticated_data: bytes
    epoch: int
    """The epoch it was sent in: the current one, or a recent past one (late delivery)."""


@dataclass(frozen=True, slots=True)
class ProposalQueued:
    """A proposal cached for the next commit under its ProposalRef (§5.2)."""

    reference: bytes
    sender: Sender
    proposal: Proposal


@dataclass(frozen=True, slots=True)
class CommitApplied:
    epoch: int
    committer: int
    """Leaf index of the committer in the new epoch (an external joiner's new leaf)."""
    removed_self: bool
    """Our leaf was removed: the group refuses further use."""
    reinit: bool = False
    """The commit was a ReInit (§12.1.5): the group is suspended; continue in the new group."""


@dataclass(frozen=True, slots=True)
class CommitOutput:
    commit: bytes
    """The MLSMessage to send to the group."""
    welcome: bytes | None
    """The Welcome MLSMessage for added members, if any."""
