"""Framing, group context, GroupInfo, Welcome and the MLSMessage envelope (RFC 9420 §6, §8.1,
§12.4.3, §6 MLSMessage) with their TLS encodings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls._codec import Reader, Writer
from enkrypted_crypto.mls._limits import LIMITS
from enkrypted_crypto.mls._messages import (
    APPLICATION,
    COMMIT,
    EXTERNAL,
    GROUP_INFO,
    KEY_PACKAGE,
    MEMBER,
    MLS10,
    NEW_MEMBER_COMMIT,
    NEW_MEMBER_PROPOSAL,
    PRIVATE_MESSAGE,
    PROPOSAL,
    PUBLIC_MESSAGE,
    WELCOME,
    Commit,
    Extension,
    KeyPackage,
    PreSharedKeyID,
    Proposal,
    _get_exts,
    _get_hpke_ct,
    _get_opaque,
    _put,
    _put_exts,
    _put_hpke_ct,
    _put_opaque,
    decode_proposal,
    encode_proposal,
    from_bytes,
)
from enkrypted_crypto.mls._suite import HpkeCiphertext

__all__ = [
    "Body",
    "Content",
    "EncryptedGroupSecrets",
    "FramedContent",
    "GroupContext",
    "GroupInfo",
    "GroupSecrets",
    "MLSMessage",
    "PrivateMessage",
    "PublicMessage",
    "Sender",
    "Welcome",
    "decode_content",
    "encode_content",
    "message_body",
]


# -- framing (§6) ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Sender:
    sender_type: int
    index: int = 0  # leaf_index for members, sender_index for external senders

    def encode(self, w: Writer) -> None:
        w.u8(self.sender_type)
        if self.sender_type in (MEMBER, EXTERNAL):
            w.u32(self.index)

    @staticmethod
    def decode(r: Reader) -> Sender:
        kind = r.u8()
        if kind in (MEMBER, EXTERNAL):
            return Sender(kind, r.u32())
        if kind in (NEW_MEMBER_PROPOSAL, NEW_MEMBER_COMMIT):
            return Sender(kind)
        raise MalformedInput("unknown sender type")


Content = bytes | Proposal | Commit


def encode_content(w: Writer, content_type: int, content: Content) -> None:
    if content_type == APPLICATION:
        assert isinstance(content, bytes)
        w.opaque(content)
    elif content_type == PROPOSAL:
        assert not isinstance(content, (bytes, Commit))
        encode_proposal(w, content)
    else:
        assert isinstance(content, Commit)
        content.encode(w)


def decode_content(r: Reader, content_type: int) -> Content:
    if content_type == APPLICATION:
        return r.opaque()
    if content_type == PROPOSAL:
        return decode_proposal(r)
    if content_type == COMMIT:
        return Commit.decode(r)
    raise MalformedInput("unknown content type")


@dataclass(frozen=True, slots=True)
class FramedContent:
    group_id: bytes
    epoch: int
    sender: Sender
    authenticated_data: bytes
    content_type: int
    content: Content

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u64(self.epoch)
        self.sender.encode(w)
        w.opaque(self.authenticated_data)
        w.u8(self.content_type)
        encode_content(w, self.content_type, self.content)

    @staticmethod
    def decode(r: Reader) -> FramedContent:
        gid, epoch, sender, aad = r.opaque(), r.u64(), Sender.decode(r), r.opaque()
        ctype = r.u8()
        return FramedContent(gid, epoch, sender, aad, ctype, decode_content(r, ctype))


@dataclass(frozen=True, slots=True)
class PublicMessage:
    content: FramedContent
    signature: bytes
    confirmation_tag: bytes | None
    membership_tag: bytes | None

    def encode(self, w: Writer) -> None:
        self.content.encode(w)
        w.opaque(self.signature)
        if self.content.content_type == COMMIT:
            assert self.confirmation_tag is not None
            w.opaque(self.confirmation_tag)
        if self.content.sender.sender_type == MEMBER:
            assert self.membership_tag is not None
            w.opaque(self.membership_tag)

    @staticmethod
    def decode(r: Reader) -> PublicMessage:
        content = FramedContent.decode(r)
        signature = r.opaque()
        tag = r.opaque() if content.content_type == COMMIT else None
        membership = r.opaque() if content.sender.sender_type == MEMBER else None
        return PublicMessage(content, signature, tag, membership)


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    group_id: bytes
    epoch: int
    content_type: int
    authenticated_data: bytes
    encrypted_sender_data: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u64(self.epoch)
        w.u8(self.content_type)
        w.opaque(self.authenticated_data)
        w.opaque(self.encrypted_sender_data)
        w.opaque(self.ciphertext)

    @staticmethod
    def decode(r: Reader) -> PrivateMessage:
        gid, epoch, ctype = r.opaque(), r.u64(), r.u8()
        if ctype not in (APPLICATION, PROPOSAL, COMMIT):
            raise MalformedInput("unknown content type")
        return PrivateMessage(gid, epoch, ctype, r.opaque(), r.opaque(), r.opaque())


# -- group context, group info, welcome (§8.1, §12.4.3) --------------------------------------
@dataclass(frozen=True, slots=True)
class GroupContext:
    cipher_suite: int
    group_id: bytes
    epoch: int
    tree_hash: bytes
    confirmed_transcript_hash: bytes
    extensions: tuple[Extension, ...]
    version: int = MLS10

    def encode(self, w: Writer) -> None:
        w.u16(self.version)
        w.u16(self.cipher_suite)
        w.opaque(self.group_id)
        w.u64(self.epoch)
        w.opaque(self.tree_hash)
        w.opaque(self.confirmed_transcript_hash)
        _put_exts(w, self.extensions)

    @staticmethod
    def decode(r: Reader) -> GroupContext:
        version, suite = r.u16(), r.u16()
        gid, epoch, th, cth = r.opaque(), r.u64(), r.opaque(), r.opaque()
        return GroupContext(suite, gid, epoch, th, cth, _get_exts(r), version)


@dataclass(frozen=True, slots=True)
class GroupInfo:
    group_context: GroupContext
    extensions: tuple[Extension, ...]
    confirmation_tag: bytes
    signer: int
    signature: bytes

    def tbs(self) -> bytes:
        w = Writer()
        self.group_context.encode(w)
        _put_exts(w, self.extensions)
        w.opaque(self.confirmation_tag)
        w.u32(self.signer)
        return w.getvalue()

    def encode(self, w: Writer) -> None:
        w.raw(self.tbs())
        w.opaque(self.signature)

    @staticmethod
    def decode(r: Reader) -> GroupInfo:
        return GroupInfo(GroupContext.decode(r), _get_exts(r), r.opaque(), r.u32(), r.opaque())


@dataclass(frozen=True, slots=True)
class GroupSecrets:
    joiner_secret: bytes
    path_secret: bytes | None
    psks: tuple[PreSharedKeyID, ...]

    def encode(self, w: Writer) -> None:
        w.opaque(self.joiner_secret)
        w.optional(self.path_secret, _put_opaque)
        w.vector(self.psks, _put)

    @staticmethod
    def decode(r: Reader) -> GroupSecrets:
        return GroupSecrets(
            r.opaque(), r.optional(_get_opaque), r.vector(PreSharedKeyID.decode, LIMITS.max_psks)
        )


@dataclass(frozen=True, slots=True)
class EncryptedGroupSecrets:
    new_member: bytes
    encrypted_group_secrets: HpkeCiphertext

    def encode(self, w: Writer) -> None:
        w.opaque(self.new_member)
        _put_hpke_ct(w, self.encrypted_group_secrets)

    @staticmethod
    def decode(r: Reader) -> EncryptedGroupSecrets:
        return EncryptedGroupSecrets(r.opaque(), _get_hpke_ct(r))


@dataclass(frozen=True, slots=True)
class Welcome:
    cipher_suite: int
    secrets: tuple[EncryptedGroupSecrets, ...]
    encrypted_group_info: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.cipher_suite)
        w.vector(self.secrets, _put)
        w.opaque(self.encrypted_group_info)

    @staticmethod
    def decode(r: Reader) -> Welcome:
        return Welcome(
            r.u16(), r.vector(EncryptedGroupSecrets.decode, LIMITS.max_welcome_secrets), r.opaque()
        )


Body = PublicMessage | PrivateMessage | Welcome | GroupInfo | KeyPackage
_BODY_DECODERS: dict[int, Callable[[Reader], Body]] = {
    PUBLIC_MESSAGE: PublicMessage.decode,
    PRIVATE_MESSAGE: PrivateMessage.decode,
    WELCOME: Welcome.decode,
    GROUP_INFO: GroupInfo.decode,
    KEY_PACKAGE: KeyPackage.decode,
}


@dataclass(frozen=True, slots=True)
class MLSMessage:
    wire_format: int
    body: Body
    version: int = MLS10

    def encode(self, w: Writer) -> None:
        w.u16(self.version)
        w.u16(self.wire_format)
        self.body.encode(w)

    @staticmethod
    def decode(r: Reader) -> MLSMessage:
        version, wire_format = r.u16(), r.u16()
        if version != MLS10:
            raise MalformedInput("unsupported MLS protocol version")
        decoder = _BODY_DECODERS.get(wire_format)
        if decoder is None:
            raise MalformedInput("unknown wire format")
        return MLSMessage(wire_format, decoder(r), version)


B = TypeVar("B", KeyPackage, Welcome, GroupInfo)


def message_body(data: bytes, kind: type[B]) -> B:
    """The body of an MLSMessage that must be of ``kind``."""
    body = from_bytes(data, MLSMessage.decode).body
    if not isinstance(body, kind):
        raise MalformedInput(f"not a {kind.__name__}")
    return body
