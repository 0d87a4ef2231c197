"""The MLS group state machine (RFC 9420 §11-§12): sans-I/O, bytes in, events and bytes out.

A :class:`Group` holds one member's view.  Every method that takes peer bytes either applies
them completely or raises and leaves the group exactly as it was (work is done on copies and
assigned at the end).  Authentication failures raise the opaque ``DecryptionFailed``; malformed
or rule-breaking input raises ``MalformedInput``; our own misuse raises ``CryptoUsageError``.
"""

from __future__ import annotations

__all__ = ["Group"]

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from enkrypted_crypto.errors import CryptoUsageError, DecryptionFailed, MalformedInput
from enkrypted_crypto.mls._envelopes import (
    FramedContent,
    GroupContext,
    GroupInfo,
    MLSMessage,
    PrivateMessage,
    PublicMessage,
    Sender,
    Welcome,
    message_body,
)
from enkrypted_crypto.mls._epoch import (
    Epoch,
    OwnPath,
    ProposalSet,
    apply_proposals,
    committable,
    next_epoch,
    own_path,
)
from enkrypted_crypto.mls._events import (
    ApplicationMessage,
    CommitApplied,
    CommitOutput,
    GroupConfig,
    ProposalQueued,
)
from enkrypted_crypto.mls._external import (
    external_pub_extension,
    join_external,
    new_member_proposal,
)
from enkrypted_crypto.mls._framing import (
    AuthenticatedContent,
    decrypt_private,
    encrypt_private,
    from_public,
    open_late_application,
    sender_signature_key,
    sign_content,
    to_public,
    verify_content,
)
from enkrypted_crypto.mls._keypackage import KeyPackageBundle, sign_leaf
from enkrypted_crypto.mls._limits import LIMITS
from enkrypted_crypto.mls._messages import (
    APPLICATION,
    COMMIT,
    GROUP_INFO,
    MEMBER,
    NEW_MEMBER_COMMIT,
    PRIVATE_MESSAGE,
    PROPOSAL,
    PUBLIC_MESSAGE,
    SRC_COMMIT,
    SRC_UPDATE,
    WELCOME,
    Add,
    Commit,
    Credential,
    Extension,
    KeyPackage,
    LeafNode,
    PreSharedKey,
    PreSharedKeyID,
    Proposal,
    ProposalOrRef,
    ReInit,
    Remove,
    Update,
    from_bytes,
    to_bytes,
)
from enkrypted_crypto.mls._receive import receive_commit
from enkrypted_crypto.mls._resumption import (
    BRANCH,
    REINIT,
    check_resumed_group,
    group_psk_secret,
    resumption_psk_id,
    welcome_psk_lookup,
)
from enkrypted_crypto.mls._schedule import (
    EpochSecrets,
    SecretTree,
    exporter,
    interim_transcript_hash,
    secrets_from_epoch_secret,
)
from enkrypted_crypto.mls._state import GroupParts, decode_parts, encode_parts
from enkrypted_crypto.mls._suite import CipherSuite, SigningKey, suite
from enkrypted_crypto.mls._tree import RatchetTree
from enkrypted_crypto.mls._treekem import NodeKeys
from enkrypted_crypto.mls._welcome import build_welcome, open_welcome, sign_group_info


@dataclass(frozen=True, slots=True)
class _Cached:
    proposal: Proposal
    sender: Sender


class Group:
    """One member's state of one MLS group."""

    def __init__(
        self,
        epoch: Epoch,
        signature_priv: bytes,
        config: GroupConfig,
        resumption: dict[tuple[bytes, int], bytes] | None = None,
    ) -> None:
        self._epoch = epoch
        self._sig = signature_priv
        self._signer: SigningKey | None = None  # _sig loaded once, on the first signature
        self._config = config
        self._secret_tree = SecretTree(
            epoch.cs, epoch.secrets.encryption_secret, epoch.tree.n_leaves
        )
        self._proposals: dict[bytes, _Cached] = {}
        self._pending_leaf_keys: dict[bytes, bytes] = {}
        self._past: dict[int, tuple[Epoch, SecretTree]] = {}
        """Recent epochs kept only to read late application messages."""
        self._resumption = dict(resumption or {})
        self._resumption[(epoch.context.group_id, epoch.context.epoch)] = (
            epoch.secrets.resumption_psk
        )
        self._pending: tuple[Epoch, ReInit | None, bytes] | None = None
        """Our staged commit: its epoch, ReInit if any, and the message sent."""
        self.active = True
        self.reinit: ReInit | None = None
        """Set once a ReInit commit is applied: the group is suspended (§11.2)."""

    # -- construction ------------------------------------------------------------------------
    @staticmethod
    def create(
        suite_id: int,
        group_id: bytes,
        bundle: KeyPackageBundle,
        config: GroupConfig | None = None,
        extensions: tuple[Extension, ...] = (),
    ) -> Group:
        """A one-member group at epoch 0 (§11)."""
        cs = suite(suite_id)
        config = config or GroupConfig()
        kp_leaf = bundle.key_package.leaf_node
        tree = RatchetTree(cs, [kp_leaf])
        ctx = GroupContext(suite_id, group_id, 0, tree.tree_hash(), b"", extensions)
        secrets = secrets_from_epoch_secret(cs, config.random(cs.n_h))
        tag = cs.mac(secrets.confirmation_key, b"")
        interim = interim_transcript_hash(cs, b"", tag)
        keys: NodeKeys = {0: (kp_leaf.encryption_key, bundle.encryption_priv)}
        return Group(
            Epoch(cs, ctx, tree, secrets, interim, tag, 0, keys), bundle.signature_priv, config
        )

    @staticmethod
    def join(
        welcome: bytes,
        bundle: KeyPackageBundle,
        config: GroupConfig | None = None,
        ratchet_tree: bytes | None = None,
        resuming: Group | None = None,
    ) -> Group:
        """Join from a Welcome MLSMessage (§12.4.3.1); ``resuming`` is our copy of the old
        group when the Welcome re-initialises or branches it (§11.2, §11.3)."""
        config = config or GroupConfig()
        body = message_body(welcome, Welcome)
        known = dict(resuming._resumption) if resuming is not None else {}
        lookup = welcome_psk_lookup(config.external_psks, known, resuming is not None)
        cs = suite(body.cipher_suite)
        joined = open_welcome(cs, body, bundle, ratchet_tree, lookup, config.validate_credential)
        if resuming is not None:
            check_resumed_group(
                joined.epoch.context, joined.psk_ids, resuming.group_context, resuming.reinit
            )
        return Group(joined.epoch, bundle.signature_priv, config, known)

    def reinit_new_group(
        self, bundle: KeyPackageBundle, key_packages: list[bytes]
    ) -> tuple[Group, CommitOutput]:
        """After a ReInit commit: the new group with the other members' fresh KeyPackages,
        bound to this one by a ``reinit`` resumption PSK (§11.2)."""
        if self.reinit is None:
            raise CryptoUsageError("no ReInit has been committed in this group")
        r = self.reinit
        return self._resumed(r.group_id, r.cipher_suite, r.extensions, REINIT, bundle, key_packages)

    def branch(
        self, group_id: bytes, bundle: KeyPackageBundle, key_packages: list[bytes]
    ) -> tuple[Group, CommitOutput]:
        """A new group of some members, bound to this one by a ``branch`` PSK (§11.3)."""
        self._require_active()
        ctx = self._epoch.context
        return self._resumed(
            group_id, ctx.cipher_suite, ctx.extensions, BRANCH, bundle, key_packages
        )

    def _resumed(
        self,
        group_id: bytes,
        suite_id: int,
        extensions: tuple[Extension, ...],
        usage: int,
        bundle: KeyPackageBundle,
        key_packages: list[bytes],
    ) -> tuple[Group, CommitOutput]:
        if not self.active:
            raise CryptoUsageError("this member was removed from the group")
        new = Group.create(suite_id, group_id, bundle, self._config, extensions)
        new._resumption.update(self._resumption)
        psk = resumption_psk_id(
            self.group_id, self.epoch, usage, new.cipher_suite.n_h, self._config.random
        )
        proposals: list[Proposal] = [Add(message_body(data, KeyPackage)) for data in key_packages]
        return new, new.commit([*proposals, PreSharedKey(psk)])

    @staticmethod
    def join_external(
        group_info: bytes,
        bundle: KeyPackageBundle,
        config: GroupConfig | None = None,
        ratchet_tree: bytes | None = None,
        resync_leaf: int | None = None,
    ) -> tuple[Group, bytes]:
        """Join by external commit from a GroupInfo MLSMessage carrying ``external_pub``
        (§12.4.3.2).  Returns the group and the commit to send to its members."""
        config = config or GroupConfig()
        info = message_body(group_info, GroupInfo)
        epoch, commit = join_external(
            suite(info.group_context.cipher_suite), info, ratchet_tree, bundle, config.validate_credential, config.random,
            resync_leaf,
        )  # fmt: skip
        return Group(epoch, bundle.signature_priv, config), commit

    @staticmethod
    def propose_join(group_info: bytes, bundle: KeyPackageBundle) -> bytes:
        """A would-be member's own Add proposal (``new_member_proposal``, §12.1.8) for the group
        of a GroupInfo MLSMessage; a member commits it and sends the Welcome."""
        return new_member_proposal(message_body(group_info, GroupInfo), bundle)

    def group_info(self) -> bytes:
        """A signed GroupInfo MLSMessage with ``external_pub`` (and the ratchet tree when
        configured), for external joiners (§12.4.3)."""
        self._require_active()
        ep = self._epoch
        extra = (external_pub_extension(ep.cs, ep.secrets),)
        info = sign_group_info(ep, self._sig, self._config.ratchet_tree_extension, extra)
        return to_bytes(MLSMessage(GROUP_INFO, info))

    def export_state(self) -> bytes:
        """Everything this member holds, to save and :meth:`restore_state` later.  It holds all
        current secrets: encrypt it at rest."""
        parts = GroupParts(
            self._epoch, self._sig, self._secret_tree,
            tuple((ref, c.proposal, c.sender) for ref, c in self._proposals.items()),
            tuple(self._pending_leaf_keys.items()),
            tuple((e, ep, tree) for e, (ep, tree) in sorted(self._past.items())),
            tuple((gid, e, psk) for (gid, e), psk in self._resumption.items()),
            self._pending, self.active, self.reinit,
        )  # fmt: skip
        return encode_parts(parts)

    @staticmethod
    def restore_state(data: bytes, config: GroupConfig | None = None) -> Group:
        """A group from :meth:`export_state` bytes (the config is not saved)."""
        p = decode_parts(data)
        resumption = {(gid, e): psk for gid, e, psk in p.resumption}
        group = Group(p.epoch, p.signature_priv, config or GroupConfig(), resumption)
        group._secret_tree = p.secret_tree
        group._proposals = {ref: _Cached(prop, sender) for ref, prop, sender in p.proposals}
        group._pending_leaf_keys = dict(p.pending_leaf_keys)
        group._past = {e: (ep, tree) for e, ep, tree in p.past}
        group._pending, group.active, group.reinit = p.pending, p.active, p.reinit
        return group

    # -- read-only views ---------------------------------------------------------------------
    @property
    def cipher_suite(self) -> CipherSuite:
        return self._epoch.cs

    @property
    def group_id(self) -> bytes:
        return self._epoch.context.group_id

    @property
    def epoch(self) -> int:
        return self._epoch.context.epoch

    @property
    def my_leaf(self) -> int:
        return self._epoch.my_leaf

    @property
    def epoch_authenticator(self) -> bytes:
        return self._epoch.secrets.epoch_authenticator

    @property
    def tree(self) -> RatchetTree:
        return self._epoch.tree

    @property
    def confirmation_tag(self) -> bytes:
        """The tag of the commit that started this epoch (§8.1)."""
        return self._epoch.confirmation_tag

    @property
    def group_context(self) -> GroupContext:
        return self._epoch.context

    def members(self) -> list[tuple[int, Credential]]:
        return [(i, leaf.credential) for i, leaf in self._epoch.tree.leaves()]

    def credential_at(self, leaf: int, epoch: int | None = None) -> Credential | None:
        """The credential at ``leaf`` in the current epoch, or in a recent past ``epoch`` whose
        tree is still kept for late application messages (``None`` if blank or not kept)."""
        current = epoch is None or epoch == self.epoch
        if not current and epoch not in self._past:
            return None
        node = (self._epoch if current else self._past[epoch][0]).tree.leaf(leaf)  # type: ignore[index]
        return None if node is None else node.credential

    def export_secret(self, label: bytes, context: bytes, length: int) -> bytes:
        """MLS-Exporter (§8.5)."""
        return exporter(self._epoch.cs, self._epoch.secrets.exporter_secret, label, context, length)

    def snapshot(self) -> tuple[object, ...]:
        """Comparable summary of the state (tests assert it is unchanged by rejected input)."""
        ep = self._epoch
        past = tuple((e, t.fingerprint()) for e, (_, t) in sorted(self._past.items()))
        return (
            self._pending is not None,
            ep,
            tuple(sorted(self._proposals)),
            self.active,
            self._secret_tree.fingerprint(),
            past,
        )

    # -- framing helpers -----------------------------------------------------------------------
    def _framed(
        self, content_type: int, content: bytes | Proposal | Commit, aad: bytes
    ) -> FramedContent:
        ep = self._epoch
        return FramedContent(
            ep.context.group_id,
            ep.context.epoch,
            Sender(MEMBER, ep.my_leaf),
            aad,
            content_type,
            content,
        )

    def _wrap(self, ac: AuthenticatedContent) -> bytes:
        ep = self._epoch
        if ac.wire_format == PUBLIC_MESSAGE:
            body: PublicMessage | PrivateMessage = to_public(
                ep.cs, ac, ep.secrets.membership_key, ep.context_bytes
            )
        else:
            body = encrypt_private(
                ep.cs,
                ac,
                self._secret_tree,
                ep.secrets.sender_data_secret,
                self._config.padding,
                self._config.random,
            )
        return to_bytes(MLSMessage(ac.wire_format, body))

    def _signing_key(self) -> SigningKey:
        if self._signer is None:  # the suite and the key are the group's for its whole life
            self._signer = self._epoch.cs.signing_key(self._sig)
        return self._signer

    def _sign(self, wire_format: int, content: FramedContent) -> bytes:
        ep = self._epoch
        return sign_content(ep.cs, wire_format, content, self._signing_key(), ep.context_bytes)

    def sign_with_label(self, label: bytes, content: bytes) -> bytes:
        """SignWithLabel (§5.1.2) with our leaf's signature key: data of the application signed
        outside the MLS framing (a member verifies it with our leaf's ``signature_key``)."""
        return self._epoch.cs.sign_with_label(self._signing_key(), label, content)

    # -- application data ------------------------------------------------------------------------
    def protect(self, data: bytes, authenticated_data: bytes = b"") -> bytes:
        """Encrypt application data as a PrivateMessage (§6.3)."""
        self._require_active()
        content = self._framed(APPLICATION, data, authenticated_data)
        ac = AuthenticatedContent(
            PRIVATE_MESSAGE, content, self._sign(PRIVATE_MESSAGE, content), None
        )
        return self._wrap(ac)

    def _require_active(self) -> None:
        if not self.active:
            raise CryptoUsageError("this member was removed from the group")
        if self.reinit is not None:
            raise CryptoUsageError("the group was re-initialised; continue in the new group")

    # -- proposals -------------------------------------------------------------------------------
    def _proposal_ref(self, ac: AuthenticatedContent) -> bytes:
        return self._epoch.cs.ref_hash(b"MLS 1.0 Proposal Reference", ac.to_bytes())

    def propose(self, proposal: Proposal) -> bytes:
        """Send a proposal by reference (§12.1); it is cached for our own next commit."""
        self._require_active()
        wf = self._config.handshake_wire_format
        content = self._framed(PROPOSAL, proposal, b"")
        ac = AuthenticatedContent(wf, content, self._sign(wf, content), None)
        out = self._wrap(ac)
        self._cache(ac)
        return out

    def propose_update(self) -> bytes:
        """An Update proposal with a fresh encryption key (§12.1.2)."""
        ep = self._epoch
        leaf = ep.tree.leaf(ep.my_leaf)
        assert leaf is not None
        priv, pub = ep.cs.kem_keypair()
        new_leaf = self._leaf_like(leaf, pub, SRC_UPDATE, b"")
        self._pending_leaf_keys[pub] = priv
        return self.propose(Update(new_leaf))

    def _leaf_like(self, leaf: LeafNode, enc: bytes, source: int, parent_hash: bytes) -> LeafNode:
        ep = self._epoch
        caps = leaf.capabilities
        unsigned = LeafNode(
            enc,
            leaf.signature_key,
            leaf.credential,
            caps,
            source,
            None,
            parent_hash,
            leaf.extensions,
            b"",
        )
        return sign_leaf(ep.cs, unsigned, self._sig, ep.context.group_id, ep.my_leaf)

    def _cache(self, ac: AuthenticatedContent) -> bytes:
        if len(self._proposals) >= LIMITS.max_cached_proposals:
            raise MalformedInput("too many pending proposals")
        ref = self._proposal_ref(ac)
        content = ac.content.content
        assert not isinstance(content, (bytes, Commit))
        self._proposals[ref] = _Cached(content, ac.content.sender)
        return ref

    # -- commits ---------------------------------------------------------------------------------
    def commit(
        self,
        proposals: list[Proposal] | None = None,
        *,
        force_path: bool = True,
        authenticated_data: bytes = b"",
        apply: bool = True,
    ) -> CommitOutput:
        """Commit cached proposals plus ``proposals`` (inline) and return what to send.

        With ``apply`` the new epoch is entered at once; without it the commit is staged until
        the delivery service confirms it (§14): :meth:`merge_pending` or its echo through
        :meth:`process` enters it, :meth:`discard_pending` or another member's commit drops it.
        """
        self._require_active()
        ep, cfg = self._epoch, self._config
        por = self._committable_refs() + [ProposalOrRef(proposal=p) for p in proposals or []]
        items = self._resolve(por, ep.my_leaf)
        pset = apply_proposals(ep, items, ep.my_leaf, cfg.validate_credential, cfg.now)
        own = self._own_path(pset, pset.path_required or force_path)
        wf = cfg.handshake_wire_format
        content = self._framed(COMMIT, Commit(tuple(por), own.path), authenticated_data)
        signature = self._sign(wf, content)
        new = next_epoch(
            ep,
            tree=own.tree,
            extensions=pset.extensions,
            commit_secret=own.commit_secret,
            psk_secret=self._psk_secret(pset.psks),
            wire_format=wf,
            framed_content=to_bytes(content),
            signature=signature,
            confirmation_tag=None,
            my_leaf=ep.my_leaf,
            keys=own.keys,
        )
        message = self._wrap(AuthenticatedContent(wf, content, signature, new.confirmation_tag))
        welcome = None
        if pset.added:
            adds = [p.key_package for p, _ in items if isinstance(p, Add)]
            joiners = list(zip(pset.added, adds, strict=True))
            info = sign_group_info(new, self._sig, cfg.ratchet_tree_extension)
            w = build_welcome(new, info, joiners, own.path_secrets, pset.psks)
            welcome = to_bytes(MLSMessage(WELCOME, w))
        if apply:
            self._enter(new, pset.reinit)
        else:
            self._pending = (new, pset.reinit, message)
        return CommitOutput(message, welcome)

    def merge_pending(self) -> CommitApplied:
        """Enter the epoch of our staged commit (the delivery service accepted it)."""
        if self._pending is None:
            raise CryptoUsageError("no staged commit")
        new, reinit, _ = self._pending
        self._enter(new, reinit)
        return CommitApplied(new.context.epoch, new.my_leaf, False, reinit is not None)

    def discard_pending(self) -> None:
        """Drop our staged commit (the delivery service took another one)."""
        self._pending = None

    def _committable_refs(self) -> list[ProposalOrRef]:
        cached = [(ref, c.proposal, c.sender) for ref, c in self._proposals.items()]
        return [ProposalOrRef(reference=r) for r in committable(cached, self._epoch.my_leaf)]

    def _own_path(self, pset: ProposalSet, with_path: bool) -> OwnPath:
        """A fresh UpdatePath over the tree after proposals (§12.4.1), or none."""
        leaf = pset.tree.leaf(self.my_leaf)
        assert leaf is not None

        def make_leaf(enc: bytes, parent_hash: bytes) -> LeafNode:
            return self._leaf_like(leaf, enc, SRC_COMMIT, parent_hash)

        return own_path(self._epoch, pset, with_path, make_leaf, self._config.random)

    def add(self, key_packages: list[bytes]) -> CommitOutput:
        """Commit Add proposals for these KeyPackage MLSMessages."""
        return self.commit([Add(message_body(data, KeyPackage)) for data in key_packages])

    def remove(self, leaf_indices: list[int]) -> CommitOutput:
        return self.commit([Remove(i) for i in leaf_indices])

    def update(self) -> CommitOutput:
        """An empty commit with a path: refreshes our leaf and path keys (§12.4)."""
        return self.commit([], force_path=True)

    def _enter(self, new: Epoch, reinit: ReInit | None = None) -> None:
        self._pending = None
        # Keep only what reading a late application message needs (§14: delete the rest).
        secrets = dataclasses.replace(
            EpochSecrets.unknown(), sender_data_secret=self._epoch.secrets.sender_data_secret
        )
        kept = dataclasses.replace(self._epoch, secrets=secrets, keys={})
        self._past[self.epoch] = (kept, self._secret_tree)
        while len(self._past) > LIMITS.max_past_epochs:
            del self._past[min(self._past)]
        self._epoch = new
        self._secret_tree = SecretTree(new.cs, new.secrets.encryption_secret, new.tree.n_leaves)
        self._proposals = {}
        self._pending_leaf_keys = {}
        self._resumption[(new.context.group_id, new.context.epoch)] = new.secrets.resumption_psk
        while len(self._resumption) > LIMITS.max_resumption_epochs:
            del self._resumption[min(self._resumption, key=lambda k: k[1])]
        self.reinit = reinit

    def _resolve(
        self, refs: list[ProposalOrRef], committer: int, external: bool = False
    ) -> list[tuple[Proposal, Sender]]:
        out: list[tuple[Proposal, Sender]] = []
        by_value = Sender(NEW_MEMBER_COMMIT) if external else Sender(MEMBER, committer)
        for por in refs:
            if por.proposal is not None:
                out.append((por.proposal, by_value))
                continue
            if external:
                raise MalformedInput("external commits carry proposals by value")
            cached = self._proposals.get(por.reference)
            if cached is None:
                raise MalformedInput("commit references an unknown proposal")
            out.append((cached.proposal, cached.sender))
        return out

    def _psk_secret(self, psks: tuple[PreSharedKeyID, ...]) -> bytes:
        ep = self._epoch
        return group_psk_secret(
            ep.cs, psks, self._config.external_psks, self._resumption, self.group_id, self.epoch
        )

    # -- incoming --------------------------------------------------------------------------------
    def process(self, data: bytes) -> ApplicationMessage | ProposalQueued | CommitApplied:
        """Handle one PublicMessage or PrivateMessage MLSMessage from the group (§6, §12)."""
        if self._pending is not None and data == self._pending[2]:
            return self.merge_pending()  # the delivery service echoed our staged commit
        ac, secret_tree = self._authenticate(data)
        content = ac.content.content
        sender = ac.content.sender
        if isinstance(content, bytes):
            message, accept = self._application(ac, secret_tree)
            accept()
            return message
        if isinstance(content, Commit):
            if sender == Sender(MEMBER, self._epoch.my_leaf):
                raise MalformedInput("our own commit came back; it was already applied")
            return self._process_commit(ac, content)
        # Validated now, alone, so an invalid proposal is never cached to break our commit.
        cfg = self._config
        apply_proposals(self._epoch, [(content, sender)], -1, cfg.validate_credential, cfg.now)
        ref = self._cache(ac)
        self._secret_tree = secret_tree
        return ProposalQueued(ref, sender, content)

    def unprotect(self, data: bytes) -> ApplicationMessage:
        """Decrypt an application PrivateMessage; anything else is refused unprocessed."""
        message, accept = self.read_application(data)
        accept()
        return message

    def read_application(self, data: bytes) -> tuple[ApplicationMessage, Callable[[], None]]:
        """Decrypt an application PrivateMessage without consuming its key: the group changes
        only when the returned ``accept`` is called (a caller with more checks to run, such
        as an outer cascade, calls it once they all passed)."""
        msg = from_bytes(data, MLSMessage.decode)
        if not isinstance(msg.body, PrivateMessage) or msg.body.content_type != APPLICATION:
            raise MalformedInput("not an application message")
        return self._application(*self._authenticate(data, msg))

    def _application(
        self, ac: AuthenticatedContent, secret_tree: SecretTree
    ) -> tuple[ApplicationMessage, Callable[[], None]]:
        content, epoch = ac.content.content, ac.content.epoch
        assert isinstance(content, bytes)

        def accept() -> None:  # the used key is deleted from the group's secret tree (§9.2)
            if epoch in self._past:
                self._past[epoch] = (self._past[epoch][0], secret_tree)
            else:
                self._secret_tree = secret_tree

        sender, aad = ac.content.sender.index, ac.content.authenticated_data
        return ApplicationMessage(sender, content, aad, epoch), accept

    def _authenticate(
        self, data: bytes, decoded: MLSMessage | None = None
    ) -> tuple[AuthenticatedContent, SecretTree]:
        """Decode (unless the caller did: ``decoded``), decrypt or check the membership tag, and
        verify the signature (§6.2, §6.3).

        Returns the content and the secret tree as it will be once the message is accepted.
        """
        self._require_active()
        msg = from_bytes(data, MLSMessage.decode) if decoded is None else decoded
        late = open_late_application(self._past, msg.body, self.group_id)
        if late is not None:
            return late
        ep = self._epoch
        secret_tree = self._secret_tree.copy()
        if isinstance(msg.body, PublicMessage):
            c = msg.body.content
            self._check_epoch(c.group_id, c.epoch)
            if c.content_type == APPLICATION:
                raise MalformedInput("application data must be a PrivateMessage")  # §6.2
            ac = from_public(ep.cs, msg.body, ep.secrets.membership_key, ep.context_bytes)
        elif isinstance(msg.body, PrivateMessage):
            self._check_epoch(msg.body.group_id, msg.body.epoch)
            ac = decrypt_private(ep.cs, msg.body, secret_tree, ep.secrets.sender_data_secret)
        else:
            raise MalformedInput("not a group message")
        key = sender_signature_key(ep.tree, ep.context, ac)
        if key is None or not verify_content(ep.cs, ac, key, ep.context_bytes):
            raise DecryptionFailed
        return ac, secret_tree

    def _check_epoch(self, group_id: bytes, epoch: int) -> None:
        if group_id != self.group_id or epoch != self.epoch:
            raise MalformedInput("message for another group or epoch")

    def _process_commit(self, ac: AuthenticatedContent, commit: Commit) -> CommitApplied:
        """§12.4.2 for a commit by another member (:func:`receive_commit`)."""
        external = ac.content.sender.sender_type == NEW_MEMBER_COMMIT
        committer = -1 if external else ac.content.sender.index
        items = self._resolve(list(commit.proposals), committer, external)
        got = receive_commit(
            self._epoch, ac, commit, items, self._config, self._pending_leaf_keys,
            self._psk_secret,
        )  # fmt: skip
        if got.epoch is None:
            self.active = False
            return CommitApplied(self.epoch + 1, got.committer, True)
        self._enter(got.epoch, got.reinit)
        return CommitApplied(self.epoch, got.committer, False, got.reinit is not None)

