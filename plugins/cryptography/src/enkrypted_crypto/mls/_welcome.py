"""Welcome and GroupInfo (RFC 9420 §12.4.3): building them for joiners and joining from one."""

from __future__ import annotations

__all__ = [
    "Joined",
    "build_welcome",
    "decrypt_welcome",
    "open_welcome",
    "sign_group_info",
    "validate_tree",
]

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from enkrypted_crypto.errors import DecryptionFailed, MalformedInput
from enkrypted_crypto.mls import _tree_math as tm
from enkrypted_crypto.mls._envelopes import (
    EncryptedGroupSecrets,
    GroupInfo,
    GroupSecrets,
    Welcome,
)
from enkrypted_crypto.mls._epoch import Epoch, joined_epoch
from enkrypted_crypto.mls._keypackage import (
    CredentialValidator,
    KeyPackageBundle,
    key_package_ref,
    validate_leaf,
)
from enkrypted_crypto.mls._messages import (
    EXT_RATCHET_TREE,
    SRC_KEY_PACKAGE,
    Extension,
    KeyPackage,
    PreSharedKeyID,
    find_extension,
    from_bytes,
    to_bytes,
)
from enkrypted_crypto.mls._schedule import derive_epoch, psk_secret
from enkrypted_crypto.mls._suite import CipherSuite
from enkrypted_crypto.mls._tree import RatchetTree
from enkrypted_crypto.mls._treekem import NodeKeys, keys_from_path_secret

PskLookup = Callable[[PreSharedKeyID], bytes]


def _welcome_key_nonce(cs: CipherSuite, welcome_secret: bytes) -> tuple[bytes, bytes]:
    return (
        cs.expand_with_label(welcome_secret, b"key", b"", cs.n_k),
        cs.expand_with_label(welcome_secret, b"nonce", b"", cs.n_n),
    )


def sign_group_info(
    ep: Epoch, signature_priv: bytes, with_tree: bool, extra: tuple[Extension, ...] = ()
) -> GroupInfo:
    """GroupInfo of ``ep`` signed by its member (§12.4.3)."""
    exts: tuple[Extension, ...] = extra
    if with_tree:
        exts = (Extension(EXT_RATCHET_TREE, ep.tree.encode()), *extra)
    unsigned = GroupInfo(ep.context, exts, ep.confirmation_tag, ep.my_leaf, b"")
    sig = ep.cs.sign_with_label(signature_priv, b"GroupInfoTBS", unsigned.tbs())
    return dataclasses.replace(unsigned, signature=sig)


def build_welcome(
    ep: Epoch,
    group_info: GroupInfo,
    joiners: list[tuple[int, KeyPackage]],
    path_secrets: dict[int, bytes],
    psks: tuple[PreSharedKeyID, ...],
) -> Welcome:
    """One Welcome for every joiner; each gets the path secret of its lowest common ancestor
    with the committer (§12.4.3)."""
    cs = ep.cs
    key, nonce = _welcome_key_nonce(cs, ep.secrets.welcome_secret)
    encrypted_info = cs.seal(key, nonce, b"", to_bytes(group_info))
    secrets = []
    for leaf_index, kp in joiners:
        mine = set(tm.direct_path(2 * leaf_index, ep.tree.n_leaves))
        common = next((p for p in sorted(path_secrets, key=tm.level) if p in mine), None)
        gs = GroupSecrets(
            ep.secrets.joiner_secret, path_secrets.get(common) if common is not None else None, psks
        )
        ct = cs.encrypt_with_label(kp.init_key, b"Welcome", encrypted_info, to_bytes(gs))
        secrets.append(EncryptedGroupSecrets(key_package_ref(cs, kp), ct))
    return Welcome(cs.suite_id, tuple(secrets), encrypted_info)


@dataclass(frozen=True, slots=True)
class Joined:
    epoch: Epoch
    psk_ids: tuple[PreSharedKeyID, ...]


def validate_tree(
    cs: CipherSuite, tree: RatchetTree, info: GroupInfo, validate_credential: CredentialValidator
) -> None:
    """§12.4.3.1: tree hash, parent hashes, leaf validity, signer's GroupInfo signature."""
    ctx = info.group_context
    if tree.tree_hash() != ctx.tree_hash:
        raise MalformedInput("ratchet tree does not match the GroupInfo tree hash")
    problem = tree.structure_errors()
    if problem is not None:
        raise MalformedInput(problem)
    if not tree.parent_hashes_valid():
        raise MalformedInput("ratchet tree parent hashes invalid")
    for i, leaf in tree.leaves():
        source = leaf.leaf_node_source
        gid = b"" if source == SRC_KEY_PACKAGE else ctx.group_id
        validate_leaf(
            cs,
            leaf,
            source=source,
            group_id=gid,
            leaf_index=i,
            tree=None,
            validate_credential=validate_credential,
            now=None,
        )
    signer = tree.leaf(info.signer)
    if signer is None or not cs.verify_with_label(
        signer.signature_key, b"GroupInfoTBS", info.tbs(), info.signature
    ):
        raise MalformedInput("GroupInfo signature invalid")


def decrypt_welcome(
    cs: CipherSuite,
    welcome: Welcome,
    key_package: KeyPackage,
    init_priv: bytes,
    psk_lookup: PskLookup,
) -> tuple[GroupSecrets, GroupInfo, bytes]:
    """Our GroupSecrets, the GroupInfo and the psk_secret from a Welcome (§12.4.3.1 steps 1-4)."""
    if welcome.cipher_suite != cs.suite_id:
        raise MalformedInput("Welcome cipher suite does not match the KeyPackage")
    ref = key_package_ref(cs, key_package)
    entry = next((s for s in welcome.secrets if s.new_member == ref), None)
    if entry is None:
        raise MalformedInput("Welcome is not for this KeyPackage")
    plain = cs.decrypt_with_label(
        init_priv, b"Welcome", welcome.encrypted_group_info, entry.encrypted_group_secrets
    )
    gs = from_bytes(plain, GroupSecrets.decode)
    psk = psk_secret(cs, [(to_bytes(p), psk_lookup(p)) for p in gs.psks])
    member = cs.extract(gs.joiner_secret, psk)
    key, nonce = _welcome_key_nonce(cs, cs.derive_secret(member, b"welcome"))
    info = from_bytes(cs.open(key, nonce, b"", welcome.encrypted_group_info), GroupInfo.decode)
    return gs, info, psk


def open_welcome(
    cs: CipherSuite,
    welcome: Welcome,
    bundle: KeyPackageBundle,
    ratchet_tree: bytes | None,
    psk_lookup: PskLookup,
    validate_credential: CredentialValidator,
) -> Joined:
    """Join a group from a Welcome (§12.4.3.1)."""
    gs, info, psk = decrypt_welcome(cs, welcome, bundle.key_package, bundle.init_priv, psk_lookup)
    ctx = info.group_context
    if ctx.cipher_suite != cs.suite_id:
        raise MalformedInput("GroupInfo cipher suite does not match")
    tree_bytes = find_extension(info.extensions, EXT_RATCHET_TREE) or ratchet_tree
    if tree_bytes is None:
        raise MalformedInput("no ratchet tree in the Welcome and none supplied")
    tree = RatchetTree.decode(cs, tree_bytes)
    validate_tree(cs, tree, info, validate_credential)
    my_leaf = tree.find_leaf(lambda leaf: leaf == bundle.key_package.leaf_node)
    if my_leaf is None:
        raise MalformedInput("our leaf is not in the Welcome's tree")
    keys: NodeKeys = {
        2 * my_leaf: (bundle.key_package.leaf_node.encryption_key, bundle.encryption_priv)
    }
    if gs.path_secret is not None:
        mine = set(tm.direct_path(2 * my_leaf, tree.n_leaves))
        common = next(p for p in tm.direct_path(2 * info.signer, tree.n_leaves) if p in mine)
        path_keys, _ = keys_from_path_secret(cs, tree, info.signer, common, gs.path_secret)
        keys.update(path_keys)
    secrets = derive_epoch(
        cs,
        init_secret=None,
        commit_secret=b"",
        group_context=to_bytes(ctx),
        psk=psk,
        joiner_secret=gs.joiner_secret,
    )
    try:
        epoch = joined_epoch(cs, ctx, tree, secrets, info.confirmation_tag, my_leaf, keys)
    except DecryptionFailed as exc:
        raise MalformedInput("GroupInfo confirmation tag invalid") from exc
    return Joined(epoch, gs.psks)
