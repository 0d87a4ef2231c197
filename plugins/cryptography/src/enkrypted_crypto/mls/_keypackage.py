"""KeyPackages and leaf nodes: creation, signing and validation (RFC 9420 §7.2-§7.3, §10).

Credentials are checked by a caller-supplied :data:`CredentialValidator` (basic credentials bound
to the application's identity keys); lifetimes are checked when the caller passes ``now``.
"""

from __future__ import annotations

__all__ = [
    "CredentialValidator",
    "KeyPackageBundle",
    "accept_all_credentials",
    "identity_key_validator",
    "key_package_ref",
    "new_key_package",
    "sign_leaf",
    "validate_key_package",
    "validate_leaf",
]

import dataclasses
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls._messages import (
    CRED_BASIC,
    MLS10,
    SRC_KEY_PACKAGE,
    Capabilities,
    Credential,
    Extension,
    KeyPackage,
    LeafNode,
    to_bytes,
)
from enkrypted_crypto.mls._suite import CipherSuite
from enkrypted_crypto.mls._tree import RatchetTree

CredentialValidator = Callable[[Credential, bytes], bool]
"""``(credential, signature public key) -> accepted``; the application's authentication service."""

DEFAULT_EXTENSIONS = frozenset({1, 2, 3, 4, 5})
"""Extension types every implementation supports without listing them (§7.2)."""
DEFAULT_PROPOSALS = frozenset({1, 2, 3, 4, 5, 6, 7})


def accept_all_credentials(credential: Credential, public: bytes) -> bool:
    """A validator for tests and vectors: any basic or X.509 credential is accepted."""
    return True


def identity_key_validator(keys: Mapping[bytes, bytes]) -> CredentialValidator:
    """A validator for basic credentials bound to known identity keys: the credential's
    identity must be in ``keys`` and its leaf must sign with exactly that key (§5.3.1)."""

    def validate(credential: Credential, public: bytes) -> bool:
        if credential.credential_type != CRED_BASIC:
            return False
        expected = keys.get(credential.identity)
        return expected is not None and hmac.compare_digest(expected, public)

    return validate


def key_package_ref(cs: CipherSuite, kp: KeyPackage) -> bytes:
    """KeyPackageRef (§5.2)."""
    return cs.ref_hash(b"MLS 1.0 KeyPackage Reference", to_bytes(kp))


@dataclass(frozen=True, slots=True)
class KeyPackageBundle:
    """A KeyPackage with the private keys its owner keeps."""

    key_package: KeyPackage
    init_priv: bytes
    encryption_priv: bytes
    signature_priv: bytes


def default_capabilities(suite_id: int) -> Capabilities:
    return Capabilities((MLS10,), (suite_id,), (), (), (CRED_BASIC,))


def sign_leaf(
    cs: CipherSuite, leaf: LeafNode, signature_priv: bytes, group_id: bytes, leaf_index: int
) -> LeafNode:
    sig = cs.sign_with_label(signature_priv, b"LeafNodeTBS", leaf.tbs(group_id, leaf_index))
    return dataclasses.replace(leaf, signature=sig)


def new_key_package(
    cs: CipherSuite,
    identity: bytes,
    signature_priv: bytes,
    now: int,
    lifetime_s: int = 90 * 86400,
) -> KeyPackageBundle:
    """A fresh KeyPackage with a basic credential (§10)."""
    init_priv, init_pub = cs.kem_keypair()
    enc_priv, enc_pub = cs.kem_keypair()
    leaf = LeafNode(
        enc_pub,
        cs.signature_public(signature_priv),
        Credential(CRED_BASIC, identity=identity),
        default_capabilities(cs.suite_id),
        SRC_KEY_PACKAGE,
        (max(0, now - 3600), now + lifetime_s),
        b"",
        (),
        b"",
    )
    leaf = sign_leaf(cs, leaf, signature_priv, b"", 0)
    unsigned = KeyPackage(MLS10, cs.suite_id, init_pub, leaf, (), b"")
    sig = cs.sign_with_label(signature_priv, b"KeyPackageTBS", unsigned.tbs())
    return KeyPackageBundle(
        dataclasses.replace(unsigned, signature=sig), init_priv, enc_priv, signature_priv
    )


def validate_leaf(
    cs: CipherSuite,
    leaf: LeafNode,
    *,
    source: int,
    group_id: bytes,
    leaf_index: int,
    tree: RatchetTree | None,
    validate_credential: CredentialValidator,
    now: int | None,
    replacing: int | None = None,
) -> None:
    """Leaf node validation (§7.3); raises ``MalformedInput``.  ``replacing`` is the leaf being
    updated (its own keys do not count as duplicates)."""
    if leaf.leaf_node_source != source:
        raise MalformedInput("leaf node source does not fit its use")
    if not cs.verify_with_label(
        leaf.signature_key, b"LeafNodeTBS", leaf.tbs(group_id, leaf_index), leaf.signature
    ):
        raise MalformedInput("leaf node signature invalid")
    if not validate_credential(leaf.credential, leaf.signature_key):
        raise MalformedInput("credential rejected")
    if leaf.credential.credential_type not in leaf.capabilities.credentials:
        raise MalformedInput("leaf does not support its own credential type")
    if now is not None and leaf.lifetime is not None:
        not_before, not_after = leaf.lifetime
        if not not_before <= now <= not_after:
            raise MalformedInput("leaf node lifetime does not cover now")
    for ext in leaf.extensions:
        if ext.extension_type not in leaf.capabilities.extensions:
            raise MalformedInput("leaf extension not listed in its capabilities")
    if tree is not None:
        _check_against_tree(leaf, tree, replacing)


def _check_against_tree(leaf: LeafNode, tree: RatchetTree, replacing: int | None) -> None:
    # Runs for every leaf a commit brings (O(n) per commit): plain loops over the node list.
    nodes = tree.nodes
    ours, theirs = leaf.capabilities.credentials, leaf.credential.credential_type
    skip = -1 if replacing is None else 2 * replacing
    for i in range(0, len(nodes), 2):
        other = nodes[i]
        if other is None or i == skip:
            continue
        assert isinstance(other, LeafNode)
        if other.signature_key == leaf.signature_key:
            raise MalformedInput("duplicate signature key")
        if other.credential.credential_type not in ours:
            raise MalformedInput("new leaf does not support a member's credential type")
        if theirs not in other.capabilities.credentials:
            raise MalformedInput("a member does not support the new leaf's credential type")
    # A replacing leaf needs a fresh encryption key too, unlike its signature key (§7.3); the
    # leaf itself is skipped when it is already in place (an external joiner's new leaf).
    key = leaf.encryption_key
    for node in nodes:
        if node is not None and node.encryption_key == key and node is not leaf:
            raise MalformedInput("duplicate encryption key")


def validate_key_package(
    cs: CipherSuite,
    kp: KeyPackage,
    *,
    tree: RatchetTree | None,
    validate_credential: CredentialValidator,
    now: int | None,
) -> None:
    """KeyPackage validation (§10.1)."""
    if kp.version != MLS10 or kp.cipher_suite != cs.suite_id:
        raise MalformedInput("KeyPackage version or cipher suite does not match")
    if not cs.verify_with_label(
        kp.leaf_node.signature_key, b"KeyPackageTBS", kp.tbs(), kp.signature
    ):
        raise MalformedInput("KeyPackage signature invalid")
    if kp.init_key == kp.leaf_node.encryption_key:
        raise MalformedInput("KeyPackage init key equals its encryption key")
    validate_leaf(
        cs,
        kp.leaf_node,
        source=SRC_KEY_PACKAGE,
        group_id=b"",
        leaf_index=0,
        tree=tree,
        validate_credential=validate_credential,
        now=now,
    )


def required_capabilities_ok(leaf: LeafNode, exts: tuple[Extension, ...]) -> bool:
    """The leaf supports every non-default GroupContext extension (§12.1.7) and the group's
    required_capabilities extension (§11.1), if any."""
    if any(
        e.extension_type not in DEFAULT_EXTENSIONS
        and e.extension_type not in leaf.capabilities.extensions
        for e in exts
    ):
        return False
    from enkrypted_crypto.mls._codec import Reader
    from enkrypted_crypto.mls._messages import EXT_REQUIRED_CAPABILITIES, find_extension

    data = find_extension(exts, EXT_REQUIRED_CAPABILITIES)
    if data is None:
        return True
    r = Reader(data)
    ext_types = r.vector(lambda x: x.u16())
    prop_types = r.vector(lambda x: x.u16())
    cred_types = r.vector(lambda x: x.u16())
    caps = leaf.capabilities
    return (
        all(t in caps.extensions or t in DEFAULT_EXTENSIONS for t in ext_types)
        and all(t in caps.proposals or t in DEFAULT_PROPOSALS for t in prop_types)
        and all(t in caps.credentials for t in cred_types)
    )
