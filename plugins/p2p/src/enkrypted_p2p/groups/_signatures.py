"""Signatures of a group's control data (docs/protocol.md §9.2 rule 3, §9.3): what a member's
control signature covers, and whether a commit's details or a Welcome's info are the committer's
word. Pure functions of a session and the bytes received; every check fails closed."""

from __future__ import annotations

import hashlib
import json

from enkrypted_shell.contracts import GroupControlSigner, GroupSession

from ..errors import RemoteInputError
from ._wire import GroupPdu, decode_json, hex_token, unpack_list

__all__ = [
    "committer_signed",
    "control_content",
    "signed_by",
    "welcome_parts",
    "welcome_signed",
    "welcome_word",
]


def control_content(label: str, origin: str, target: str, body: dict[str, object]) -> bytes | None:
    """What a control signature signs: the kind, the origin, the target ("" where relays may
    re-address it) and the body without ``s`` (canonical JSON, ASCII); ``None`` if a peer's body
    cannot be encoded (nested too deep)."""
    try:
        fields = [label, origin, target, {k: v for k, v in body.items() if k != "s"}]
        return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()
    except (ValueError, TypeError, RecursionError):
        return None


def signed_by(
    session: object, member: str, content: bytes | None, body: dict[str, object]
) -> bool | None:
    """Whether ``body``'s ``s`` is ``member``'s control signature on ``content`` (crypto 2.2);
    ``None`` when ``session`` cannot verify control signatures at all (a backend without 2.2:
    what the signature would prove is then believed only from the signer's own link)."""
    if not isinstance(session, GroupControlSigner):
        return None
    signature = body.get("s")
    if content is None or not isinstance(signature, str) or len(signature) > 256:
        return False
    raw = hex_token(signature, len(signature) // 2)
    return raw is not None and session.verify_control(member, content, raw)


def committer_signed(
    session: object, label: str, origin: str, member: str | None, body: dict[str, object],
    digest: bytes,
) -> bool | None:
    """Whether a commit's details or a Welcome's info (``label`` "commit" / "welcome") are the
    word of the member that sent them: signed by ``member`` (``origin``'s leaf) and naming the
    MLS message they ride with (``h``: its SHA-256). ``None``: ``session`` cannot tell."""
    if not isinstance(session, GroupControlSigner):
        return None
    if member is None or body.get("h") != digest.hex():
        return False
    return signed_by(session, member, control_content(label, origin, "", body), body) is True


def welcome_parts(pdu: GroupPdu) -> tuple[bytes, dict[str, object]]:
    """A WELCOME PDU's MLS Welcome and the committer's JSON info (roster, term, ...)."""
    parts = unpack_list(pdu.body, 2)
    if len(parts) != 2:
        raise RemoteInputError("a Welcome PDU is (welcome, info)")
    return parts[0], decode_json(parts[1])


def welcome_word(
    session: GroupSession, pdu: GroupPdu, peer_id: str, welcome: bytes, info: dict[str, object]
) -> bool:
    """Whether a Welcome's info is its committer's word, with the session it opened: signed by
    it (:func:`welcome_signed`), or — a crypto service without 2.2 — sent over the committer's
    own link. Raises :class:`RemoteInputError` if a signature was due and is not the
    committer's: nothing may change (the key package stays, the real copy may still come)."""
    signed = welcome_signed(session, pdu, welcome, info)
    if signed is False:
        raise RemoteInputError("a Welcome whose info its committer did not sign")
    return signed if signed is not None else pdu.hops == 0 and pdu.origin == peer_id


def welcome_signed(
    session: GroupSession, pdu: GroupPdu, welcome: bytes, info: dict[str, object]
) -> bool | None:
    """Whether a Welcome's info is its committer's word (:func:`committer_signed`), checked with
    the session the Welcome opened. Only the sequencer commits an Add, and an Add removes nobody,
    so the committer is the member at the lowest leaf of that session other than us (the new
    member may take a lower, blank leaf); the PDU's origin must be its peer by the info's roster
    — the signature of any other member of the group, who also saw the Welcome, is refused."""
    roster = info.get("roster")
    member = next((fp for fp in session.members if fp != session.own_fingerprint), None)
    if not isinstance(roster, dict) or member is None or roster.get(member) != pdu.origin:
        return False if isinstance(session, GroupControlSigner) else None
    digest = hashlib.sha256(welcome).digest()
    return committer_signed(session, "welcome", pdu.origin, member, info, digest)
