"""X3DH adapted for peer-to-peer use (digest §4.4, spec Appendix B; Signal X3DH spec rev. 1).

Deltas from Signal's X3DH, all from Appendix B:

* no prekey server: the responder's bundle travels live in ``signal-key-exchange-response``;
* no one-time prekeys, so **three** DH terms (DH1..DH3, no DH4);
* the responder generates a fresh signed prekey per handshake (it is online anyway), which gives
  better forward secrecy than a long-lived one.

Identity = an Ed25519 signing key plus an X25519 DH key (we do not use XEdDSA); each identity
carries an Ed25519 signature binding its X25519 key; the signed prekey is signed by the Ed25519 key.

KDF (X3DH §2.2): ``HKDF-SHA256(salt = 32 zero bytes, ikm = F || DH1 || DH2 || DH3, info)`` with
``F = 32 * 0xFF``.  We take 96 bytes: ``SK`` (root of the Double Ratchet), a key-confirmation key,
and the secret the ML-KEM/AES layer keys are derived from.  ``info`` is ``EnkryptedChat-X3DH-v1`` followed by the handshake
transcript hash, so a tampered negotiation yields different keys (no silent downgrade, DESIGN §4).

Associated data (X3DH §3.3) = ``Encode(IK_A) || Encode(IK_B)`` where ``Encode(IK)`` is the 64-byte
``ed25519_public || x25519_public``.

Pure functions over :class:`~enkrypted_crypto.primitives.Primitives`; no I/O, no clock.
"""

from __future__ import annotations

__all__ = [
    "X3DH_INFO",
    "IdentityKeyPair",
    "PrekeyBundle",
    "PublicIdentity",
    "SignedPrekey",
    "X3DHResult",
    "initiate",
    "respond",
]

from dataclasses import dataclass
from typing import Final

from .errors import CryptoUsageError, MalformedKey
from .primitives import Primitives

X3DH_INFO: Final = b"EnkryptedChat-X3DH-v1"
_F: Final = b"\xff" * 32  # X3DH §2.2: 32 0xFF bytes for X25519
_SALT: Final = b"\x00" * 32  # X3DH §2.2: zero-filled, hash-length salt
_IDENTITY_MAGIC: Final = b"EKID\x01"
_IK_BINDING: Final = b"EnkryptedChat-IK-binding-v1"
_SPK_LABEL: Final = b"EnkryptedChat-SPK-v1"
KEY_LEN: Final = 32
SIG_LEN: Final = 64


def _check_len(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise MalformedKey(f"{name} must be {length} bytes, got {len(value)}")


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """A peer's public identity: Ed25519 key, X25519 key and the signature binding them."""

    signing_public: bytes
    dh_public: bytes
    binding_signature: bytes

    def encode(self) -> bytes:
        """``Encode(IK)`` for associated data and fingerprints (64 bytes)."""
        return self.signing_public + self.dh_public

    def verify(self, prims: Primitives) -> None:
        """Raise :class:`MalformedKey` unless sizes are right and the binding signature verifies."""
        _check_len("identity signing key", self.signing_public, KEY_LEN)
        _check_len("identity DH key", self.dh_public, KEY_LEN)
        _check_len("identity binding signature", self.binding_signature, SIG_LEN)
        message = _IK_BINDING + self.dh_public
        if not prims.ed25519_verify(self.signing_public, message, self.binding_signature):
            raise MalformedKey("identity binding signature does not verify")

    def fingerprint(self, prims: Primitives) -> str:
        """Lowercase hex SHA-256 of ``Encode(IK)``, for safety-number comparison."""
        return prims.hash("sha256", self.encode()).hex()


@dataclass(frozen=True, slots=True)
class IdentityKeyPair:
    """Our long-term identity (secret).  Serialised by :meth:`to_bytes` (69 bytes)."""

    signing_seed: bytes
    dh_private: bytes
    public: PublicIdentity

    @classmethod
    def generate(cls, prims: Primitives) -> IdentityKeyPair:
        return cls.from_secrets(prims, prims.random(KEY_LEN), prims.random(KEY_LEN))

    @classmethod
    def from_secrets(
        cls, prims: Primitives, signing_seed: bytes, dh_private: bytes
    ) -> IdentityKeyPair:
        _check_len("signing seed", signing_seed, KEY_LEN)
        _check_len("DH private key", dh_private, KEY_LEN)
        dh_public = prims.x25519_public(dh_private)
        signature = prims.ed25519_sign(signing_seed, _IK_BINDING + dh_public)
        public = PublicIdentity(prims.ed25519_public(signing_seed), dh_public, signature)
        return cls(signing_seed, dh_private, public)

    def to_bytes(self) -> bytes:
        return _IDENTITY_MAGIC + self.signing_seed + self.dh_private

    @classmethod
    def from_bytes(cls, prims: Primitives, data: bytes) -> IdentityKeyPair:
        if len(data) != len(_IDENTITY_MAGIC) + 2 * KEY_LEN or not data.startswith(_IDENTITY_MAGIC):
            raise CryptoUsageError("not a serialised Enkrypted identity (EKID v1)")
        body = data[len(_IDENTITY_MAGIC) :]
        return cls.from_secrets(prims, body[:KEY_LEN], body[KEY_LEN:])


@dataclass(frozen=True, slots=True)
class SignedPrekey:
    """The responder's per-handshake signed prekey (secret part kept by the responder)."""

    private: bytes
    public: bytes
    signature: bytes

    @classmethod
    def generate(cls, prims: Primitives, identity: IdentityKeyPair) -> SignedPrekey:
        private = prims.random(KEY_LEN)
        public = prims.x25519_public(private)
        signature = prims.ed25519_sign(identity.signing_seed, _SPK_LABEL + public)
        return cls(private, public, signature)


@dataclass(frozen=True, slots=True)
class PrekeyBundle:
    """What the responder publishes live: its identity and signed prekey (no one-time prekey)."""

    identity: PublicIdentity
    signed_prekey: bytes
    signature: bytes

    def verify(self, prims: Primitives) -> None:
        """X3DH §3.3: the initiator verifies the prekey signature before any DH."""
        self.identity.verify(prims)
        _check_len("signed prekey", self.signed_prekey, KEY_LEN)
        _check_len("signed prekey signature", self.signature, SIG_LEN)
        message = _SPK_LABEL + self.signed_prekey
        if not prims.ed25519_verify(self.identity.signing_public, message, self.signature):
            raise MalformedKey("signed prekey signature does not verify")


@dataclass(frozen=True, slots=True)
class X3DHResult:
    """``SK`` for the Double Ratchet, key-confirmation and layer secrets, associated data ``AD``."""

    shared_secret: bytes
    confirmation_key: bytes
    layer_secret: bytes
    associated_data: bytes


def _kdf(
    prims: Primitives, dh1: bytes, dh2: bytes, dh3: bytes, context: bytes
) -> tuple[bytes, bytes, bytes]:
    okm = prims.hkdf_sha256(_F + dh1 + dh2 + dh3, _SALT, X3DH_INFO + context, 3 * KEY_LEN)
    return okm[:KEY_LEN], okm[KEY_LEN : 2 * KEY_LEN], okm[2 * KEY_LEN :]


def initiate(
    prims: Primitives,
    identity: IdentityKeyPair,
    ephemeral_private: bytes,
    bundle: PrekeyBundle,
    *,
    context: bytes = b"",
) -> X3DHResult:
    """Alice's side (X3DH §3.3) with three DH terms; ``context`` is appended to the KDF info."""
    bundle.verify(prims)
    _check_len("ephemeral private key", ephemeral_private, KEY_LEN)
    dh1 = prims.x25519(identity.dh_private, bundle.signed_prekey)  # DH(IK_A, SPK_B)
    dh2 = prims.x25519(ephemeral_private, bundle.identity.dh_public)  # DH(EK_A, IK_B)
    dh3 = prims.x25519(ephemeral_private, bundle.signed_prekey)  # DH(EK_A, SPK_B)
    sk, confirm, layer = _kdf(prims, dh1, dh2, dh3, context)
    ad = identity.public.encode() + bundle.identity.encode()
    return X3DHResult(sk, confirm, layer, ad)


def respond(
    prims: Primitives,
    identity: IdentityKeyPair,
    signed_prekey: SignedPrekey,
    initiator: PublicIdentity,
    ephemeral_public: bytes,
    *,
    context: bytes = b"",
) -> X3DHResult:
    """Bob's side (X3DH §3.4): the same three DH terms from the other end."""
    initiator.verify(prims)
    _check_len("ephemeral public key", ephemeral_public, KEY_LEN)
    dh1 = prims.x25519(signed_prekey.private, initiator.dh_public)
    dh2 = prims.x25519(identity.dh_private, ephemeral_public)
    dh3 = prims.x25519(signed_prekey.private, ephemeral_public)
    sk, confirm, layer = _kdf(prims, dh1, dh2, dh3, context)
    ad = initiator.encode() + identity.public.encode()
    return X3DHResult(sk, confirm, layer, ad)
