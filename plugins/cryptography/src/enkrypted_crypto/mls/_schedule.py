"""Key schedule (RFC 9420 §8), PSK secret (§8.4), transcript hashes (§8.2), secret tree (§9).

The secret tree deletes what it has used (§9.2): node secrets once their children are derived,
ratchet secrets once advanced, and message keys once returned.  Keys for out-of-order messages
are kept for at most ``LIMITS.max_forward_ratchet`` generations ahead.
"""

from __future__ import annotations

__all__ = [
    "EpochSecrets",
    "SecretTree",
    "confirmed_transcript_hash",
    "derive_epoch",
    "interim_transcript_hash",
    "psk_secret",
    "secrets_from_epoch_secret",
]

from dataclasses import dataclass
from typing import Literal

from enkrypted_crypto.errors import DecryptionFailed, MalformedInput
from enkrypted_crypto.mls import _tree_math as tm
from enkrypted_crypto.mls._codec import Reader, Writer
from enkrypted_crypto.mls._limits import LIMITS
from enkrypted_crypto.mls._suite import CipherSuite

RatchetKind = Literal["handshake", "application"]


@dataclass(frozen=True, slots=True)
class EpochSecrets:
    """Secrets of one epoch derived from ``epoch_secret`` (§8, table in §8)."""

    joiner_secret: bytes
    welcome_secret: bytes
    epoch_secret: bytes
    sender_data_secret: bytes
    encryption_secret: bytes
    exporter_secret: bytes
    external_secret: bytes
    confirmation_key: bytes
    membership_key: bytes
    resumption_psk: bytes
    epoch_authenticator: bytes
    init_secret: bytes

    @staticmethod
    def unknown() -> EpochSecrets:
        """An external joiner's view of the GroupInfo's epoch: it knows none of its secrets."""
        return EpochSecrets(*(b"",) * 12)


def derive_epoch(
    cs: CipherSuite,
    *,
    init_secret: bytes | None,
    commit_secret: bytes,
    group_context: bytes,
    psk: bytes,
    joiner_secret: bytes | None = None,
) -> EpochSecrets:
    """§8: from the previous init_secret (or a Welcome's joiner_secret) to the epoch's secrets."""
    if joiner_secret is None:
        if init_secret is None:
            raise MalformedInput("key schedule needs init_secret or joiner_secret")
        joiner_secret = cs.expand_with_label(
            cs.extract(init_secret, commit_secret), b"joiner", group_context, cs.n_h
        )
    member = cs.extract(joiner_secret, psk)
    epoch = cs.expand_with_label(member, b"epoch", group_context, cs.n_h)
    return secrets_from_epoch_secret(
        cs, epoch, joiner_secret=joiner_secret, welcome_secret=cs.derive_secret(member, b"welcome")
    )


def secrets_from_epoch_secret(
    cs: CipherSuite, epoch: bytes, *, joiner_secret: bytes = b"", welcome_secret: bytes = b""
) -> EpochSecrets:
    """The secrets derived from ``epoch_secret`` (§8); a group's creator draws it at random (§11)."""
    ds = cs.derive_secret
    return EpochSecrets(
        joiner_secret=joiner_secret,
        welcome_secret=welcome_secret,
        epoch_secret=epoch,
        sender_data_secret=ds(epoch, b"sender data"),
        encryption_secret=ds(epoch, b"encryption"),
        exporter_secret=ds(epoch, b"exporter"),
        external_secret=ds(epoch, b"external"),
        confirmation_key=ds(epoch, b"confirm"),
        membership_key=ds(epoch, b"membership"),
        resumption_psk=ds(epoch, b"resumption"),
        epoch_authenticator=ds(epoch, b"authentication"),
        init_secret=ds(epoch, b"init"),
    )


def exporter(
    cs: CipherSuite, exporter_secret: bytes, label: bytes, context: bytes, n: int
) -> bytes:
    """MLS-Exporter (§8.5)."""
    return cs.expand_with_label(
        cs.derive_secret(exporter_secret, label), b"exported", cs.hash(context), n
    )


def psk_secret(cs: CipherSuite, psks: list[tuple[bytes, bytes]]) -> bytes:
    """§8.4: ``psks`` is ``[(encoded PreSharedKeyID, psk value)]`` in proposal order."""
    secret = bytes(cs.n_h)
    count = len(psks)
    for index, (psk_id, value) in enumerate(psks):
        label = Writer()
        label.raw(psk_id)
        label.u16(index)
        label.u16(count)
        extracted = cs.extract(bytes(cs.n_h), value)
        psk_input = cs.expand_with_label(extracted, b"derived psk", label.getvalue(), cs.n_h)
        secret = cs.extract(psk_input, secret)
    return secret


def confirmed_transcript_hash(
    cs: CipherSuite, interim_before: bytes, wire_format: int, content: bytes, signature: bytes
) -> bytes:
    """§8.2: ``content`` is the encoded FramedContent of the commit."""
    w = Writer()
    w.u16(wire_format)
    w.raw(content)
    w.opaque(signature)
    return cs.hash(interim_before + w.getvalue())


def interim_transcript_hash(cs: CipherSuite, confirmed: bytes, confirmation_tag: bytes) -> bytes:
    w = Writer()
    w.opaque(confirmation_tag)
    return cs.hash(confirmed + w.getvalue())


class _Ratchet:
    """One sender's handshake or application ratchet (§9.1)."""

    __slots__ = ("generation", "kept", "secret")

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.generation = 0
        self.kept: dict[int, tuple[bytes, bytes]] = {}

    def copy(self) -> _Ratchet:
        other = _Ratchet(self.secret)
        other.generation = self.generation
        other.kept = dict(self.kept)
        return other

    def _advance(self, cs: CipherSuite) -> tuple[bytes, bytes]:
        g = self.generation
        key = cs.derive_tree_secret(self.secret, b"key", g, cs.n_k)
        nonce = cs.derive_tree_secret(self.secret, b"nonce", g, cs.n_n)
        self.secret = cs.derive_tree_secret(self.secret, b"secret", g, cs.n_h)
        self.generation = g + 1
        return key, nonce

    def get(self, cs: CipherSuite, generation: int) -> tuple[bytes, bytes]:
        if generation in self.kept:
            return self.kept.pop(generation)
        if (
            generation < self.generation
            or generation - self.generation > LIMITS.max_forward_ratchet
        ):
            raise DecryptionFailed
        while self.generation < generation:
            g = self.generation
            self.kept[g] = self._advance(cs)
            if len(self.kept) > LIMITS.max_kept_keys:
                del self.kept[min(self.kept)]
        return self._advance(cs)


def _put_node_secret(w: Writer, item: tuple[int, bytes]) -> None:
    w.u32(item[0])
    w.opaque(item[1])


def _put_ratchet(w: Writer, item: tuple[tuple[int, str], _Ratchet]) -> None:
    (leaf, kind), ratchet = item
    w.u32(leaf)
    w.u8(1 if kind == "handshake" else 2)
    w.opaque(ratchet.secret)
    w.u32(ratchet.generation)

    def put_kept(w2: Writer, kept: tuple[int, tuple[bytes, bytes]]) -> None:
        w2.u32(kept[0])
        w2.opaque(kept[1][0])
        w2.opaque(kept[1][1])

    w.vector(sorted(ratchet.kept.items()), put_kept)


def _get_ratchet(r: Reader) -> tuple[tuple[int, str], _Ratchet]:
    leaf, kind = r.u32(), "handshake" if r.u8() == 1 else "application"
    ratchet = _Ratchet(r.opaque())
    ratchet.generation = r.u32()
    kept = r.vector(lambda x: (x.u32(), (x.opaque(), x.opaque())), LIMITS.max_kept_keys)
    ratchet.kept = dict(kept)
    return (leaf, kind), ratchet


class SecretTree:
    """Per-epoch secret tree over ``n_leaves`` leaves rooted at ``encryption_secret`` (§9)."""

    __slots__ = ("_cs", "_n_leaves", "_nodes", "_ratchets")

    def __init__(self, cs: CipherSuite, encryption_secret: bytes, n_leaves: int) -> None:
        self._cs = cs
        self._n_leaves = n_leaves
        self._nodes: dict[int, bytes] = {tm.root(n_leaves): encryption_secret}
        self._ratchets: dict[tuple[int, str], _Ratchet] = {}

    def encode(self, w: Writer) -> None:
        """Our own serialisation for saved group state (not a wire format)."""
        w.u32(self._n_leaves)
        w.vector(sorted(self._nodes.items()), _put_node_secret)
        w.vector(sorted(self._ratchets.items()), _put_ratchet)

    @staticmethod
    def decode(cs: CipherSuite, r: Reader) -> SecretTree:
        n_leaves = r.u32()
        if not 0 < n_leaves <= LIMITS.max_tree_nodes:  # a group has at least its own leaf
            raise MalformedInput("saved secret tree empty or too large")
        tree = SecretTree(cs, b"", n_leaves)
        tree._nodes = dict(r.vector(lambda x: (x.u32(), x.opaque()), LIMITS.max_tree_nodes))
        tree._ratchets = dict(r.vector(_get_ratchet, LIMITS.max_tree_nodes))
        return tree

    def copy(self) -> SecretTree:
        other = SecretTree(self._cs, b"", self._n_leaves)
        other._nodes = dict(self._nodes)
        other._ratchets = {k: r.copy() for k, r in self._ratchets.items()}
        return other

    def _leaf_secret(self, leaf: int) -> bytes:
        target = 2 * leaf
        if leaf >= self._n_leaves:
            raise DecryptionFailed
        path = [target, *tm.direct_path(target, self._n_leaves)]
        start = next((i for i, n in enumerate(path) if n in self._nodes), None)
        if start is None:
            raise DecryptionFailed  # already consumed
        for i in range(start, 0, -1):
            node = path[i]
            secret = self._nodes.pop(node)
            cs = self._cs
            self._nodes[tm.left(node)] = cs.expand_with_label(secret, b"tree", b"left", cs.n_h)
            self._nodes[tm.right(node)] = cs.expand_with_label(secret, b"tree", b"right", cs.n_h)
        return self._nodes.pop(target)

    def _ratchet(self, leaf: int, kind: RatchetKind) -> _Ratchet:
        found = self._ratchets.get((leaf, kind))
        if found is None:
            cs = self._cs
            leaf_secret = self._leaf_secret(leaf)
            for name in ("handshake", "application"):
                secret = cs.expand_with_label(leaf_secret, name.encode(), b"", cs.n_h)
                self._ratchets[(leaf, name)] = _Ratchet(secret)
            found = self._ratchets[(leaf, kind)]
        return found

    def fingerprint(self) -> tuple[object, ...]:
        """Comparable summary (tests check rejected input leaves it unchanged)."""
        ratchets = tuple(
            sorted(
                (k, r.secret, r.generation, tuple(sorted(r.kept)))
                for k, r in self._ratchets.items()
            )
        )
        return tuple(sorted(self._nodes.items())), ratchets

    def key_nonce(self, leaf: int, kind: RatchetKind, generation: int) -> tuple[bytes, bytes]:
        """Key and nonce of ``generation``; each is returned once, then forgotten."""
        return self._ratchet(leaf, kind).get(self._cs, generation)

    def next_key_nonce(self, leaf: int, kind: RatchetKind) -> tuple[int, bytes, bytes]:
        """The sender's next (generation, key, nonce)."""
        ratchet = self._ratchet(leaf, kind)
        generation = ratchet.generation
        key, nonce = ratchet.get(self._cs, generation)
        return generation, key, nonce
