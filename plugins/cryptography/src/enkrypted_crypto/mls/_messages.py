"""Wire structures of RFC 9420 with their TLS encodings (§5-§12, §17).

Each frozen dataclass has ``encode(w)`` and a static ``decode(r)``; unknown enum values that
leave the rest of the structure unparseable (credential, proposal, sender, content types) are
rejected as :class:`~enkrypted_crypto.errors.MalformedInput`.
"""

from __future__ import annotations

__all__ = [
    "Add",
    "Capabilities",
    "Commit",
    "Credential",
    "Extension",
    "ExternalInit",
    "GroupContextExtensions",
    "KeyPackage",
    "LeafNode",
    "Node",
    "ParentNode",
    "PreSharedKey",
    "PreSharedKeyID",
    "Proposal",
    "ProposalOrRef",
    "ReInit",
    "Remove",
    "Update",
    "UpdatePath",
    "UpdatePathNode",
    "decode_tree",
    "encode_tree",
    "from_bytes",
    "to_bytes",
]

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls._codec import Reader, Writer, decode_all
from enkrypted_crypto.mls._limits import LIMITS
from enkrypted_crypto.mls._suite import HpkeCiphertext

MLS10 = 1
# WireFormat (§6)
PUBLIC_MESSAGE, PRIVATE_MESSAGE, WELCOME, GROUP_INFO, KEY_PACKAGE = 1, 2, 3, 4, 5
# ContentType (§6)
APPLICATION, PROPOSAL, COMMIT = 1, 2, 3
# SenderType (§6)
MEMBER, EXTERNAL, NEW_MEMBER_PROPOSAL, NEW_MEMBER_COMMIT = 1, 2, 3, 4
# LeafNodeSource (§7.2)
SRC_KEY_PACKAGE, SRC_UPDATE, SRC_COMMIT = 1, 2, 3
# ExtensionType (§17.3)
EXT_APPLICATION_ID, EXT_RATCHET_TREE, EXT_REQUIRED_CAPABILITIES = 1, 2, 3
EXT_EXTERNAL_PUB, EXT_EXTERNAL_SENDERS = 4, 5
# ProposalType (§17.4)
P_ADD, P_UPDATE, P_REMOVE, P_PSK, P_REINIT, P_EXTERNAL_INIT, P_GCE = 1, 2, 3, 4, 5, 6, 7
# CredentialType (§17.5)
CRED_BASIC, CRED_X509 = 1, 2


class _Encodable(Protocol):
    def encode(self, w: Writer) -> None: ...


T = TypeVar("T")


def to_bytes(obj: _Encodable) -> bytes:
    w = Writer()
    obj.encode(w)
    return w.getvalue()


def from_bytes(data: bytes, get: Callable[[Reader], T]) -> T:
    return decode_all(data, get)


def _put(w: Writer, item: _Encodable) -> None:
    item.encode(w)


def _put_u16(w: Writer, v: int) -> None:
    w.u16(v)


def _put_u32(w: Writer, v: int) -> None:
    w.u32(v)


def _put_opaque(w: Writer, v: bytes) -> None:
    w.opaque(v)


def _get_u16(r: Reader) -> int:
    return r.u16()


def _get_u32(r: Reader) -> int:
    return r.u32()


def _get_opaque(r: Reader) -> bytes:
    return r.opaque()


# -- basic structures -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Extension:
    extension_type: int
    extension_data: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.extension_type)
        w.opaque(self.extension_data)

    @staticmethod
    def decode(r: Reader) -> Extension:
        return Extension(r.u16(), r.opaque())


def _put_exts(w: Writer, exts: tuple[Extension, ...]) -> None:
    w.vector(exts, _put)


def _get_exts(r: Reader) -> tuple[Extension, ...]:
    exts = r.vector(Extension.decode, LIMITS.max_extensions)
    if len({e.extension_type for e in exts}) != len(exts):
        raise MalformedInput("duplicate extension type")  # §13.4
    return exts


def find_extension(exts: tuple[Extension, ...], ext_type: int) -> bytes | None:
    return next((e.extension_data for e in exts if e.extension_type == ext_type), None)


@dataclass(frozen=True, slots=True)
class Credential:
    """§5.3: basic (identity) or x509 (chain of DER certificates, carried opaque)."""

    credential_type: int
    identity: bytes = b""
    certificates: tuple[bytes, ...] = ()

    def encode(self, w: Writer) -> None:
        w.u16(self.credential_type)
        if self.credential_type == CRED_BASIC:
            w.opaque(self.identity)
        else:
            w.vector(self.certificates, _put_opaque)

    @staticmethod
    def decode(r: Reader) -> Credential:
        ctype = r.u16()
        if ctype == CRED_BASIC:
            return Credential(ctype, identity=r.opaque())
        if ctype == CRED_X509:
            return Credential(ctype, certificates=r.vector(_get_opaque, LIMITS.max_certificates))
        raise MalformedInput("unknown credential type")


@dataclass(frozen=True, slots=True)
class Capabilities:
    versions: tuple[int, ...]
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    proposals: tuple[int, ...]
    credentials: tuple[int, ...]

    def encode(self, w: Writer) -> None:
        for field in (
            self.versions,
            self.cipher_suites,
            self.extensions,
            self.proposals,
            self.credentials,
        ):
            w.vector(field, _put_u16)

    @staticmethod
    def decode(r: Reader) -> Capabilities:
        return Capabilities(*(r.vector(_get_u16, LIMITS.max_capability_entries) for _ in range(5)))


@dataclass(frozen=True, slots=True)
class LeafNode:
    """§7.2.  ``lifetime`` is set for key_package, ``parent_hash`` for commit sources."""

    encryption_key: bytes
    signature_key: bytes
    credential: Credential
    capabilities: Capabilities
    leaf_node_source: int
    lifetime: tuple[int, int] | None
    parent_hash: bytes
    extensions: tuple[Extension, ...]
    signature: bytes

    def encode_tbs_body(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.opaque(self.signature_key)
        self.credential.encode(w)
        self.capabilities.encode(w)
        w.u8(self.leaf_node_source)
        if self.leaf_node_source == SRC_KEY_PACKAGE:
            assert self.lifetime is not None
            w.u64(self.lifetime[0])
            w.u64(self.lifetime[1])
        elif self.leaf_node_source == SRC_COMMIT:
            w.opaque(self.parent_hash)
        _put_exts(w, self.extensions)

    def tbs(self, group_id: bytes, leaf_index: int) -> bytes:
        """LeafNodeTBS (§7.2): group_id and leaf_index only for update and commit sources."""
        w = Writer()
        self.encode_tbs_body(w)
        if self.leaf_node_source in (SRC_UPDATE, SRC_COMMIT):
            w.opaque(group_id)
            w.u32(leaf_index)
        return w.getvalue()

    def encode(self, w: Writer) -> None:
        self.encode_tbs_body(w)
        w.opaque(self.signature)

    @staticmethod
    def decode(r: Reader) -> LeafNode:
        enc, sig_key = r.opaque(), r.opaque()
        cred = Credential.decode(r)
        caps = Capabilities.decode(r)
        source = r.u8()
        lifetime: tuple[int, int] | None = None
        parent_hash = b""
        if source == SRC_KEY_PACKAGE:
            lifetime = (r.u64(), r.u64())
        elif source == SRC_COMMIT:
            parent_hash = r.opaque()
        elif source != SRC_UPDATE:
            raise MalformedInput("unknown leaf node source")
        exts = _get_exts(r)
        return LeafNode(enc, sig_key, cred, caps, source, lifetime, parent_hash, exts, r.opaque())


@dataclass(frozen=True, slots=True)
class KeyPackage:
    version: int
    cipher_suite: int
    init_key: bytes
    leaf_node: LeafNode
    extensions: tuple[Extension, ...]
    signature: bytes

    def tbs(self) -> bytes:
        w = Writer()
        w.u16(self.version)
        w.u16(self.cipher_suite)
        w.opaque(self.init_key)
        self.leaf_node.encode(w)
        _put_exts(w, self.extensions)
        return w.getvalue()

    def encode(self, w: Writer) -> None:
        w.raw(self.tbs())
        w.opaque(self.signature)

    @staticmethod
    def decode(r: Reader) -> KeyPackage:
        return KeyPackage(
            r.u16(), r.u16(), r.opaque(), LeafNode.decode(r), _get_exts(r), r.opaque()
        )


# -- ratchet tree nodes (§7.1, §12.4.3.3) -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ParentNode:
    encryption_key: bytes
    parent_hash: bytes
    unmerged_leaves: tuple[int, ...]

    def encode(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.opaque(self.parent_hash)
        w.vector(self.unmerged_leaves, _put_u32)

    @staticmethod
    def decode(r: Reader) -> ParentNode:
        return ParentNode(r.opaque(), r.opaque(), r.vector(_get_u32, LIMITS.max_tree_nodes))


Node = LeafNode | ParentNode


def _put_node(w: Writer, node: Node) -> None:
    w.u8(1 if isinstance(node, LeafNode) else 2)
    node.encode(w)


def _get_node(r: Reader) -> Node:
    kind = r.u8()
    if kind == 1:
        return LeafNode.decode(r)
    if kind == 2:
        return ParentNode.decode(r)
    raise MalformedInput("unknown node type")


def _put_opt_node(w: Writer, node: Node | None) -> None:
    if node is None:
        w.u8(0)
    else:
        w.u8(1)
        _put_node(w, node)


def _get_opt_node(r: Reader) -> Node | None:
    return r.optional(_get_node)


def encode_tree(nodes: list[Node | None]) -> bytes:
    """``optional<Node> ratchet_tree<V>`` with trailing blanks stripped (§12.4.3.3)."""
    end = len(nodes)
    while end > 0 and nodes[end - 1] is None:
        end -= 1
    w = Writer()
    w.vector(nodes[:end], _put_opt_node)
    return w.getvalue()


def decode_tree(data: bytes) -> list[Node | None]:
    return list(decode_all(data, lambda r: r.vector(_get_opt_node, LIMITS.max_tree_nodes)))


# -- proposals (§12.1) ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PreSharedKeyID:
    psktype: int  # 1 external, 2 resumption
    psk_id: bytes = b""
    usage: int = 0
    psk_group_id: bytes = b""
    psk_epoch: int = 0
    psk_nonce: bytes = b""

    def encode(self, w: Writer) -> None:
        w.u8(self.psktype)
        if self.psktype == 1:
            w.opaque(self.psk_id)
        else:
            w.u8(self.usage)
            w.opaque(self.psk_group_id)
            w.u64(self.psk_epoch)
        w.opaque(self.psk_nonce)

    @staticmethod
    def decode(r: Reader) -> PreSharedKeyID:
        kind = r.u8()
        if kind == 1:
            return PreSharedKeyID(1, psk_id=r.opaque(), psk_nonce=r.opaque())
        if kind == 2:
            usage, gid, epoch = r.u8(), r.opaque(), r.u64()
            if usage not in (1, 2, 3):
                raise MalformedInput("unknown resumption PSK usage")
            return PreSharedKeyID(2, b"", usage, gid, epoch, r.opaque())
        raise MalformedInput("unknown PSK type")


@dataclass(frozen=True, slots=True)
class Add:
    key_package: KeyPackage
    proposal_type = P_ADD

    def encode(self, w: Writer) -> None:
        self.key_package.encode(w)


@dataclass(frozen=True, slots=True)
class Update:
    leaf_node: LeafNode
    proposal_type = P_UPDATE

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)


@dataclass(frozen=True, slots=True)
class Remove:
    removed: int
    proposal_type = P_REMOVE

    def encode(self, w: Writer) -> None:
        w.u32(self.removed)


@dataclass(frozen=True, slots=True)
class PreSharedKey:
    psk: PreSharedKeyID
    proposal_type = P_PSK

    def encode(self, w: Writer) -> None:
        self.psk.encode(w)


@dataclass(frozen=True, slots=True)
class ReInit:
    group_id: bytes
    version: int
    cipher_suite: int
    extensions: tuple[Extension, ...]
    proposal_type = P_REINIT

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u16(self.version)
        w.u16(self.cipher_suite)
        _put_exts(w, self.extensions)


@dataclass(frozen=True, slots=True)
class ExternalInit:
    kem_output: bytes
    proposal_type = P_EXTERNAL_INIT

    def encode(self, w: Writer) -> None:
        w.opaque(self.kem_output)


@dataclass(frozen=True, slots=True)
class GroupContextExtensions:
    extensions: tuple[Extension, ...]
    proposal_type = P_GCE

    def encode(self, w: Writer) -> None:
        _put_exts(w, self.extensions)


Proposal = Add | Update | Remove | PreSharedKey | ReInit | ExternalInit | GroupContextExtensions


def encode_proposal(w: Writer, p: Proposal) -> None:
    w.u16(p.proposal_type)
    p.encode(w)


_PROPOSAL_DECODERS: dict[int, Callable[[Reader], Proposal]] = {
    P_ADD: lambda r: Add(KeyPackage.decode(r)),
    P_UPDATE: lambda r: Update(LeafNode.decode(r)),
    P_REMOVE: lambda r: Remove(r.u32()),
    P_PSK: lambda r: PreSharedKey(PreSharedKeyID.decode(r)),
    P_REINIT: lambda r: ReInit(r.opaque(), r.u16(), r.u16(), _get_exts(r)),
    P_EXTERNAL_INIT: lambda r: ExternalInit(r.opaque()),
    P_GCE: lambda r: GroupContextExtensions(_get_exts(r)),
}


def decode_proposal(r: Reader) -> Proposal:
    decoder = _PROPOSAL_DECODERS.get(r.u16())
    if decoder is None:
        raise MalformedInput("unknown proposal type")
    return decoder(r)


@dataclass(frozen=True, slots=True)
class ProposalOrRef:
    """§12.4: an inline proposal or a ProposalRef (exactly one is set)."""

    proposal: Proposal | None = None
    reference: bytes = b""

    def encode(self, w: Writer) -> None:
        if self.proposal is not None:
            w.u8(1)
            encode_proposal(w, self.proposal)
        else:
            w.u8(2)
            w.opaque(self.reference)

    @staticmethod
    def decode(r: Reader) -> ProposalOrRef:
        kind = r.u8()
        if kind == 1:
            return ProposalOrRef(proposal=decode_proposal(r))
        if kind == 2:
            return ProposalOrRef(reference=r.opaque(LIMITS.max_ref_bytes))
        raise MalformedInput("unknown ProposalOrRef type")


# -- commit (§12.4) ----------------------------------------------------------------------------
def _put_hpke_ct(w: Writer, ct: HpkeCiphertext) -> None:
    w.opaque(ct.kem_output)
    w.opaque(ct.ciphertext)


def _get_hpke_ct(r: Reader) -> HpkeCiphertext:
    return HpkeCiphertext(r.opaque(), r.opaque())


@dataclass(frozen=True, slots=True)
class UpdatePathNode:
    encryption_key: bytes
    encrypted_path_secret: tuple[HpkeCiphertext, ...]

    def encode(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.vector(self.encrypted_path_secret, _put_hpke_ct)

    @staticmethod
    def decode(r: Reader) -> UpdatePathNode:
        return UpdatePathNode(r.opaque(), r.vector(_get_hpke_ct, LIMITS.max_tree_nodes))


@dataclass(frozen=True, slots=True)
class UpdatePath:
    leaf_node: LeafNode
    nodes: tuple[UpdatePathNode, ...]

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)
        w.vector(self.nodes, _put)

    @staticmethod
    def decode(r: Reader) -> UpdatePath:
        return UpdatePath(
            LeafNode.decode(r), r.vector(UpdatePathNode.decode, LIMITS.max_path_nodes)
        )


@dataclass(frozen=True, slots=True)
class Commit:
    proposals: tuple[ProposalOrRef, ...]
    path: UpdatePath | None

    def encode(self, w: Writer) -> None:
        w.vector(self.proposals, _put)
        w.optional(self.path, _put)

    @staticmethod
    def decode(r: Reader) -> Commit:
        return Commit(
            r.vector(ProposalOrRef.decode, LIMITS.max_proposals_per_commit),
            r.optional(UpdatePath.decode),
        )
