"""Message framing (RFC 9420 §6): content signing, membership tags, PrivateMessage encryption.

Every authentication failure here raises the one opaque
:class:`~enkrypted_crypto.errors.DecryptionFailed`; structure errors raise ``MalformedInput``.
"""

from __future__ import annotations

__all__ = [
    "AuthenticatedContent",
    "decrypt_private",
    "encrypt_private",
    "open_late_application",
    "sender_signature_key",
]

import hmac
from collections.abc import Callable
from dataclasses import dataclass

from enkrypted_crypto.errors import DecryptionFailed, MalformedInput
from enkrypted_crypto.mls._codec import Reader, Writer
from enkrypted_crypto.mls._envelopes import (
    FramedContent,
    GroupContext,
    PrivateMessage,
    PublicMessage,
    Sender,
    decode_content,
    encode_content,
)
from enkrypted_crypto.mls._epoch import Epoch
from enkrypted_crypto.mls._limits import LIMITS
from enkrypted_crypto.mls._messages import (
    APPLICATION,
    COMMIT,
    MEMBER,
    MLS10,
    NEW_MEMBER_COMMIT,
    NEW_MEMBER_PROPOSAL,
    PRIVATE_MESSAGE,
    PUBLIC_MESSAGE,
    Add,
    Commit,
    GroupContextExtensions,
    PreSharedKey,
    ReInit,
    Remove,
)
from enkrypted_crypto.mls._schedule import SecretTree
from enkrypted_crypto.mls._suite import CipherSuite, SigningKey
from enkrypted_crypto.mls._tree import RatchetTree


@dataclass(frozen=True, slots=True)
class AuthenticatedContent:
    """§6.1 AuthenticatedContent: what is signed, referenced and transcript-hashed."""

    wire_format: int
    content: FramedContent
    signature: bytes
    confirmation_tag: bytes | None

    def encode_auth(self, w: Writer) -> None:
        w.opaque(self.signature)
        if self.content.content_type == COMMIT:
            assert self.confirmation_tag is not None
            w.opaque(self.confirmation_tag)

    def encode(self, w: Writer) -> None:
        w.u16(self.wire_format)
        self.content.encode(w)
        self.encode_auth(w)

    @staticmethod
    def decode(r: Reader) -> AuthenticatedContent:
        wire_format = r.u16()
        content = FramedContent.decode(r)
        signature = r.opaque()
        tag = r.opaque() if content.content_type == COMMIT else None
        return AuthenticatedContent(wire_format, content, signature, tag)

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()


def content_tbs(wire_format: int, content: FramedContent, group_context: bytes) -> bytes:
    """FramedContentTBS (§6.1)."""
    w = Writer()
    w.u16(MLS10)
    w.u16(wire_format)
    content.encode(w)
    if content.sender.sender_type in (MEMBER, NEW_MEMBER_COMMIT):
        w.raw(group_context)
    return w.getvalue()


def sign_content(
    cs: CipherSuite,
    wire_format: int,
    content: FramedContent,
    priv: bytes | SigningKey,
    group_context: bytes,
) -> bytes:
    return cs.sign_with_label(
        priv, b"FramedContentTBS", content_tbs(wire_format, content, group_context)
    )


def verify_content(
    cs: CipherSuite, ac: AuthenticatedContent, public: bytes, group_context: bytes
) -> bool:
    tbs = content_tbs(ac.wire_format, ac.content, group_context)
    return cs.verify_with_label(public, b"FramedContentTBS", tbs, ac.signature)


def membership_tag(
    cs: CipherSuite, membership_key: bytes, ac: AuthenticatedContent, group_context: bytes
) -> bytes:
    """MAC over AuthenticatedContentTBM (§6.2)."""
    w = Writer()
    w.raw(content_tbs(ac.wire_format, ac.content, group_context))
    ac.encode_auth(w)
    return cs.mac(membership_key, w.getvalue())


def to_public(
    cs: CipherSuite, ac: AuthenticatedContent, membership_key: bytes, group_context: bytes
) -> PublicMessage:
    tag = None
    if ac.content.sender.sender_type == MEMBER:
        tag = membership_tag(cs, membership_key, ac, group_context)
    return PublicMessage(ac.content, ac.signature, ac.confirmation_tag, tag)


def from_public(
    cs: CipherSuite, msg: PublicMessage, membership_key: bytes, group_context: bytes
) -> AuthenticatedContent:
    """Check the membership tag of a member's PublicMessage (§6.2)."""
    ac = AuthenticatedContent(PUBLIC_MESSAGE, msg.content, msg.signature, msg.confirmation_tag)
    if msg.content.sender.sender_type == MEMBER:
        expected = membership_tag(cs, membership_key, ac, group_context)
        if msg.membership_tag is None or not hmac.compare_digest(expected, msg.membership_tag):
            raise DecryptionFailed
    return ac


def _content_aad(group_id: bytes, epoch: int, content_type: int, aad: bytes) -> bytes:
    w = Writer()
    w.opaque(group_id)
    w.u64(epoch)
    w.u8(content_type)
    w.opaque(aad)
    return w.getvalue()


def _sender_data_aad(group_id: bytes, epoch: int, content_type: int) -> bytes:
    w = Writer()
    w.opaque(group_id)
    w.u64(epoch)
    w.u8(content_type)
    return w.getvalue()


def _sender_key_nonce(cs: CipherSuite, secret: bytes, ciphertext: bytes) -> tuple[bytes, bytes]:
    sample = ciphertext[: cs.n_h]
    return (
        cs.expand_with_label(secret, b"key", sample, cs.n_k),
        cs.expand_with_label(secret, b"nonce", sample, cs.n_n),
    )


def _kind(content_type: int) -> str:
    return "application" if content_type == APPLICATION else "handshake"


def encrypt_private(
    cs: CipherSuite,
    ac: AuthenticatedContent,
    tree: SecretTree,
    sender_data_secret: bytes,
    padding: int,
    random: Callable[[int], bytes],
) -> PrivateMessage:
    """PrivateMessage protection (§6.3.1, §6.3.2) for a member sender."""
    c = ac.content
    if c.sender.sender_type != MEMBER or not 0 <= padding <= LIMITS.max_padding:
        raise MalformedInput("PrivateMessage needs a member sender and bounded padding")
    body = Writer()
    encode_content(body, c.content_type, c.content)
    ac.encode_auth(body)
    body.raw(bytes(padding))
    kind = "application" if c.content_type == APPLICATION else "handshake"
    generation, key, nonce = tree.next_key_nonce(c.sender.index, kind)  # type: ignore[arg-type]
    guard = random(4)
    nonce = bytes(a ^ b for a, b in zip(nonce[:4], guard, strict=True)) + nonce[4:]
    aad = _content_aad(c.group_id, c.epoch, c.content_type, c.authenticated_data)
    ciphertext = cs.seal(key, nonce, aad, body.getvalue())
    sd = Writer()
    sd.u32(c.sender.index)
    sd.u32(generation)
    sd.raw(guard)
    sd_key, sd_nonce = _sender_key_nonce(cs, sender_data_secret, ciphertext)
    sd_aad = _sender_data_aad(c.group_id, c.epoch, c.content_type)
    encrypted_sd = cs.seal(sd_key, sd_nonce, sd_aad, sd.getvalue())
    return PrivateMessage(
        c.group_id, c.epoch, c.content_type, c.authenticated_data, encrypted_sd, ciphertext
    )


def decrypt_private(
    cs: CipherSuite, msg: PrivateMessage, tree: SecretTree, sender_data_secret: bytes
) -> AuthenticatedContent:
    """PrivateMessage unprotection (§6.3); the signature is checked by the caller."""
    sd_key, sd_nonce = _sender_key_nonce(cs, sender_data_secret, msg.ciphertext)
    sd_aad = _sender_data_aad(msg.group_id, msg.epoch, msg.content_type)
    sender_data = Reader(cs.open(sd_key, sd_nonce, sd_aad, msg.encrypted_sender_data))
    leaf, generation, guard = sender_data.u32(), sender_data.u32(), sender_data.raw(4)
    sender_data.expect_end()
    key, nonce = tree.key_nonce(leaf, _kind(msg.content_type), generation)  # type: ignore[arg-type]
    nonce = bytes(a ^ b for a, b in zip(nonce[:4], guard, strict=True)) + nonce[4:]
    aad = _content_aad(msg.group_id, msg.epoch, msg.content_type, msg.authenticated_data)
    plain = Reader(cs.open(key, nonce, aad, msg.ciphertext))
    content = decode_content(plain, msg.content_type)
    signature = plain.opaque()
    tag = plain.opaque() if msg.content_type == COMMIT else None
    if any(plain.raw(plain.remaining())):
        raise MalformedInput("PrivateMessage padding is not zero")  # §6.3.1
    framed = FramedContent(
        msg.group_id,
        msg.epoch,
        Sender(MEMBER, leaf),
        msg.authenticated_data,
        msg.content_type,
        content,
    )
    return AuthenticatedContent(PRIVATE_MESSAGE, framed, signature, tag)


_EXTERNAL_PROPOSALS = (Add, Remove, PreSharedKey, ReInit, GroupContextExtensions)


def sender_signature_key(
    tree: RatchetTree, ctx: GroupContext, ac: AuthenticatedContent
) -> bytes | None:
    """The key the sender must have signed with (§6.1), or ``None`` for a blank member leaf.

    Non-members send PublicMessages only: external commits (key in the UpdatePath leaf),
    external senders' proposals (key in ``external_senders``) and a new member's own Add.
    """
    sender, content = ac.content.sender, ac.content.content
    if sender.sender_type == MEMBER:
        leaf = tree.leaf(sender.index)
        return leaf.signature_key if leaf is not None else None
    if ac.wire_format != PUBLIC_MESSAGE:
        raise MalformedInput("a non-member sent a PrivateMessage")
    if sender.sender_type == NEW_MEMBER_COMMIT:
        if isinstance(content, Commit) and content.path is not None:
            return content.path.leaf_node.signature_key
        raise MalformedInput("external commit without an UpdatePath")
    if sender.sender_type == NEW_MEMBER_PROPOSAL:
        if isinstance(content, Add):
            return content.key_package.leaf_node.signature_key
        raise MalformedInput("a new member may only propose its own Add")
    if not isinstance(content, _EXTERNAL_PROPOSALS):
        raise MalformedInput("external senders may only send Add/Remove/PSK/ReInit/GCE proposals")
    from enkrypted_crypto.mls._external import external_senders  # its parser lives there

    senders = external_senders(ctx)
    if sender.index >= len(senders):
        raise MalformedInput("unknown external sender")
    return senders[sender.index][0]


def open_late_application(
    past: dict[int, tuple[Epoch, SecretTree]], body: object, group_id: bytes
) -> tuple[AuthenticatedContent, SecretTree] | None:
    """An application PrivateMessage of a kept past epoch, decrypted with that epoch's keys and
    checked against that epoch's tree; ``None`` for anything else (§14 late delivery)."""
    if not isinstance(body, PrivateMessage) or body.content_type != APPLICATION:
        return None
    kept = past.get(body.epoch)
    if kept is None or body.group_id != group_id:
        return None
    ep, tree = kept[0], kept[1].copy()
    ac = decrypt_private(ep.cs, body, tree, ep.secrets.sender_data_secret)
    key = sender_signature_key(ep.tree, ep.context, ac)
    if key is None or not verify_content(ep.cs, ac, key, ep.context_bytes):
        raise DecryptionFailed
    return ac, tree
