"""Invite links: ``enkrypted://peer/<fingerprint>?id=<peer-id>`` (docs/tui.md, "Invite links").

``fingerprint`` is the identity fingerprint the crypto contract gives (lowercase hex SHA-256,
64 characters); ``peer-id`` the id at the broker (PeerJS rules: letters and digits, single
``-``/``_``/space between them, at most 256 characters; a space is written ``%20``).  Parsing is
strict: anything else is a :class:`BadInvite` with one line saying what is wrong.
"""

from __future__ import annotations

__all__ = ["MAX_INPUT_CHARS", "Target", "format_invite", "parse_target"]

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, unquote

from .errors import BadInvite

PREFIX: Final = "enkrypted://peer/"
MAX_INPUT_CHARS: Final = 512
MAX_PEER_ID_CHARS: Final = 256
_PEER_ID_RE: Final = re.compile(r"[A-Za-z0-9]+(?:[ _-][A-Za-z0-9]+)*")
_FINGERPRINT_RE: Final = re.compile(r"[0-9a-f]{64}")
_LINK_RE: Final = re.compile(r"enkrypted://peer/([^?#/]*)\?id=([^&#]*)")


@dataclass(frozen=True, slots=True)
class Target:
    """Whom to connect to; ``fingerprint`` is ``None`` for a bare peer id (nothing to pin)."""

    peer_id: str
    fingerprint: str | None = None


def check_peer_id(peer_id: str) -> str:
    """``peer_id`` if it follows the broker's id rules, else :class:`BadInvite`."""
    if not peer_id:
        raise BadInvite("the peer id is empty")
    if len(peer_id) > MAX_PEER_ID_CHARS:
        raise BadInvite(f"a peer id has at most {MAX_PEER_ID_CHARS} characters")
    if not _PEER_ID_RE.fullmatch(peer_id):
        raise BadInvite(
            f"{peer_id[:40]!r} is not a peer id (letters and digits, single - _ or space between)"
        )
    return peer_id


def format_invite(fingerprint: str, peer_id: str) -> str:
    """The invite link for our own ``fingerprint`` and ``peer_id``."""
    if not _FINGERPRINT_RE.fullmatch(fingerprint):
        raise BadInvite("the fingerprint must be 64 lowercase hex characters")
    return f"{PREFIX}{fingerprint}?id={quote(check_peer_id(peer_id), safe='-_')}"


def parse_target(text: str) -> Target:
    """A pasted invite link or a bare peer id (surrounding whitespace ignored)."""
    text = text.strip()
    if len(text) > MAX_INPUT_CHARS:
        raise BadInvite(
            f"that is {len(text)} characters; an invite link has at most {MAX_INPUT_CHARS}"
        )
    if "://" not in text:
        return Target(check_peer_id(text))
    if not text.startswith(PREFIX):
        raise BadInvite("an invite link starts with enkrypted://peer/")
    match = _LINK_RE.fullmatch(text)
    if match is None:
        raise BadInvite(
            "an invite link is enkrypted://peer/<fingerprint>?id=<peer-id>, nothing more"
        )
    fingerprint, raw_id = match.groups()
    if not _FINGERPRINT_RE.fullmatch(fingerprint):
        raise BadInvite("the invite's fingerprint must be 64 lowercase hex characters")
    if "%" in raw_id.replace("%20", ""):
        raise BadInvite("the invite's peer id has an escape other than %20")
    return Target(check_peer_id(unquote(raw_id)), fingerprint)
