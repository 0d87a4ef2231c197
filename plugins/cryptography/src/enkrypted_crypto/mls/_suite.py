"""MLS cipher suites (RFC 9420 §5.1, §17.1) and the labelled crypto operations over them.

All seven suites of §17.1 are implemented: X25519/X448/P-256/P-384/P-521 DHKEM, AES-128/256-GCM
and ChaCha20-Poly1305, SHA-256/384/512, Ed25519/Ed448/ECDSA.

Why pyca directly and not :class:`~enkrypted_crypto.primitives.Primitives`: MLS needs AES-128-GCM,
SHA-384/512, NIST-curve ECDH/ECDSA and HPKE (RFC 9180), none of which that interface carries; this
module is the MLS engine's one crypto boundary and translates every foreign exception.  Hashes,
HMAC and HKDF use the standard library (same results, less per-call overhead).

HPKE is implemented here in base mode (RFC 9180 §5.1) over DHKEM (§4.1) because pyca's one-shot
``hpke.Suite`` has no DeriveKeyPair (§7.1.3, needed for TreeKEM node keys) and no ``export``
(needed for external commits, RFC 9420 §8.3).  ``tests/crypto/mls`` checks it against pyca's.
"""

from __future__ import annotations

__all__ = ["SUITES", "CipherSuite", "HpkeCiphertext", "SigningKey", "suite"]

import hashlib
import hmac
from dataclasses import dataclass
from typing import Final, TypeAlias

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x448 import X448PrivateKey, X448PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from enkrypted_crypto.errors import (
    CryptoUsageError,
    DecryptionFailed,
    MalformedInput,
    MalformedKey,
    UnsupportedPrimitive,
)
from enkrypted_crypto.mls._codec import Writer, encode_varint

SigningKey: TypeAlias = Ed25519PrivateKey | Ed448PrivateKey | ec.EllipticCurvePrivateKey
"""A member's signature private key loaded once (:meth:`CipherSuite.signing_key`)."""

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw
_X962 = serialization.Encoding.X962
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
_CURVES: Final[dict[str, ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_ORDERS: Final = {
    "P-256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "P-384": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        16,
    ),
    "P-521": int(
        "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
        "fffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
        16,
    ),
}
_MONTGOMERY: Final[dict[str, type[X25519PrivateKey] | type[X448PrivateKey]]] = {
    "X25519": X25519PrivateKey,
    "X448": X448PrivateKey,
}
_EDWARDS: Final[dict[str, type[Ed25519PrivateKey] | type[Ed448PrivateKey]]] = {
    "ed25519": Ed25519PrivateKey,
    "ed448": Ed448PrivateKey,
}
_EDWARDS_PUB: Final[dict[str, type[Ed25519PublicKey] | type[Ed448PublicKey]]] = {
    "ed25519": Ed25519PublicKey,
    "ed448": Ed448PublicKey,
}
_ECDSA_HASH: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "P-256": hashes.SHA256,
    "P-384": hashes.SHA384,
    "P-521": hashes.SHA512,
}


@dataclass(frozen=True, slots=True)
class HpkeCiphertext:
    """``struct { opaque kem_output<V>; opaque ciphertext<V>; } HPKECiphertext`` (§5.1.3)."""

    kem_output: bytes
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class _Kem:
    kem_id: int
    curve: str  # "X25519", "X448" or a NIST curve name
    hash_name: str
    n_secret: int
    n_sk: int
    bitmask: int
    n_pk: int


_X25519_KEM: Final = _Kem(0x0020, "X25519", "sha256", 32, 32, 0, 32)
_X448_KEM: Final = _Kem(0x0021, "X448", "sha512", 64, 56, 0, 56)
_KEMS: Final = {
    "X25519": _X25519_KEM,
    "X448": _X448_KEM,
    "P-256": _Kem(0x0010, "P-256", "sha256", 32, 32, 0xFF, 65),
    "P-384": _Kem(0x0011, "P-384", "sha384", 48, 48, 0xFF, 97),
    "P-521": _Kem(0x0012, "P-521", "sha512", 64, 66, 0x01, 133),
}


_DIGEST_SIZES: Final = {"sha256": 32, "sha384": 48, "sha512": 64}


def _digest_size(hash_name: str) -> int:
    size = _DIGEST_SIZES.get(hash_name)
    return size if size is not None else hashlib.new(hash_name).digest_size


def _extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2); an empty salt is HashLen zeros, which HMAC pads to."""
    return hmac.digest(salt, ikm, hash_name)


def _expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 §2.3).  ``hmac.digest`` is the one-shot HMAC (OpenSSL's, no
    Python ``HMAC`` object per block): the secret tree runs this five times per message."""
    n_h = _digest_size(hash_name)
    if length > 255 * n_h:
        raise MalformedInput("HKDF output too long")
    if length <= n_h:
        return hmac.digest(prk, info + b"\x01", hash_name)[:length]
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), hash_name)
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(h: str, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(h, salt, b"HPKE-v1" + suite_id + label + ikm)


def _labeled_expand(
    h: str, suite_id: bytes, prk: bytes, label: bytes, info: bytes, n: int
) -> bytes:
    return _expand(h, prk, n.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info, n)


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One MLS cipher suite: KEM, AEAD, hash/KDF/MAC and signature scheme."""

    suite_id: int
    kem: _Kem
    aead: str  # "aes-128-gcm", "aes-256-gcm", "chacha20-poly1305"
    hash_name: str
    signature: str  # "ed25519", "ed448" or a NIST curve name for ECDSA
    aead_id: int

    # -- sizes -----------------------------------------------------------------------------
    @property
    def n_h(self) -> int:
        return _digest_size(self.hash_name)

    @property
    def n_k(self) -> int:
        return 16 if self.aead == "aes-128-gcm" else 32

    @property
    def n_n(self) -> int:
        return 12

    @property
    def kdf_id(self) -> int:
        return {"sha256": 1, "sha384": 2, "sha512": 3}[self.hash_name]

    # -- hash, MAC, KDF ----------------------------------------------------------------------
    def hash(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def mac(self, key: bytes, data: bytes) -> bytes:
        return hmac.digest(key, data, self.hash_name)

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        return _extract(self.hash_name, salt, ikm)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        return _expand(self.hash_name, prk, info, length)

    # -- AEAD --------------------------------------------------------------------------------
    def _aead(self, key: bytes) -> AESGCM | ChaCha20Poly1305:
        if len(key) != self.n_k:
            raise MalformedInput("AEAD key has the wrong size")
        return ChaCha20Poly1305(key) if self.aead == "chacha20-poly1305" else AESGCM(key)

    def seal(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        return self._aead(key).encrypt(nonce, plaintext, aad)

    def open(self, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        if len(nonce) != self.n_n:
            raise DecryptionFailed
        try:
            return self._aead(key).decrypt(nonce, ciphertext, aad)
        except (InvalidTag, MalformedInput) as exc:
            raise DecryptionFailed from exc

    # -- labelled operations (§5.1, §5.2, §8) --------------------------------------------------
    def ref_hash(self, label: bytes, value: bytes) -> bytes:
        w = Writer()
        w.opaque(label)
        w.opaque(value)
        return self.hash(w.getvalue())

    def expand_with_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """``KDFLabel`` = ``uint16 length || opaque label<V> || opaque context<V>`` (§8), built
        in one expression (the secret tree derives five per message)."""
        if not 0 <= length <= 0xFFFF:
            raise CryptoUsageError(f"{length} does not fit uint16")
        full = b"MLS 1.0 " + label
        info = b"".join((length.to_bytes(2, "big"), encode_varint(len(full)), full,
                         encode_varint(len(context)), context))
        return _expand(self.hash_name, secret, info, length)

    def derive_secret(self, secret: bytes, label: bytes) -> bytes:
        return self.expand_with_label(secret, label, b"", self.n_h)

    def derive_tree_secret(
        self, secret: bytes, label: bytes, generation: int, length: int
    ) -> bytes:
        return self.expand_with_label(secret, label, generation.to_bytes(4, "big"), length)

    @staticmethod
    def _labelled(label: bytes, content: bytes) -> bytes:
        w = Writer()
        w.opaque(b"MLS 1.0 " + label)
        w.opaque(content)
        return w.getvalue()

    def sign_with_label(self, private: bytes | SigningKey, label: bytes, content: bytes) -> bytes:
        return self.sign(private, self._labelled(label, content))

    def verify_with_label(self, public: bytes, label: bytes, content: bytes, sig: bytes) -> bool:
        return self.verify(public, self._labelled(label, content), sig)

    def encrypt_with_label(
        self, public: bytes, label: bytes, context: bytes, plaintext: bytes
    ) -> HpkeCiphertext:
        return self.hpke_seal(public, self._labelled(label, context), b"", plaintext)

    def decrypt_with_label(
        self, private: bytes, label: bytes, context: bytes, ct: HpkeCiphertext
    ) -> bytes:
        return self.hpke_open(private, self._labelled(label, context), b"", ct)

    # -- signatures (§5.1.2) -----------------------------------------------------------------
    def signature_public(self, private: bytes) -> bytes:
        if self.signature in _EDWARDS:
            return self._ed_priv(private).public_key().public_bytes(_RAW, _RAW_PUB)
        key = self._ec_priv(self.signature, private)
        return key.public_key().public_bytes(_X962, _UNCOMPRESSED)

    def signing_key(self, private: bytes) -> SigningKey:
        """``private`` loaded once (loading derives the public key: a scalar multiplication),
        for a member that signs many messages; :meth:`sign` takes it in place of the bytes."""
        if self.signature in _EDWARDS:
            return self._ed_priv(private)
        return self._ec_priv(self.signature, private)

    def sign(self, private: bytes | SigningKey, message: bytes) -> bytes:
        key = self.signing_key(private) if isinstance(private, bytes) else private
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(message, ec.ECDSA(_ECDSA_HASH[self.signature]()))
        return key.sign(message)

    def verify(self, public: bytes, message: bytes, sig: bytes) -> bool:
        try:
            if self.signature in _EDWARDS:
                _EDWARDS_PUB[self.signature].from_public_bytes(public).verify(sig, message)
            else:
                pub = ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[self.signature], public)
                pub.verify(sig, message, ec.ECDSA(_ECDSA_HASH[self.signature]()))
        except (InvalidSignature, ValueError):
            return False
        return True

    def signature_keypair(self) -> tuple[bytes, bytes]:
        if self.signature in _EDWARDS:
            priv = (
                _EDWARDS[self.signature]
                .generate()
                .private_bytes(_RAW, _RAW_PRIV, serialization.NoEncryption())
            )
        else:
            n_sk = _KEMS[self.signature].n_sk
            key = ec.generate_private_key(_CURVES[self.signature])
            priv = key.private_numbers().private_value.to_bytes(n_sk, "big")
        return priv, self.signature_public(priv)

    def _ed_priv(self, private: bytes) -> Ed25519PrivateKey | Ed448PrivateKey:
        try:
            return _EDWARDS[self.signature].from_private_bytes(private)
        except ValueError as exc:
            raise MalformedKey("bad EdDSA private key") from exc

    @staticmethod
    def _ec_priv(curve: str, private: bytes) -> ec.EllipticCurvePrivateKey:
        try:
            return ec.derive_private_key(int.from_bytes(private, "big"), _CURVES[curve])
        except ValueError as exc:
            raise MalformedKey("bad ECDSA private key") from exc

    # -- HPKE (RFC 9180) -----------------------------------------------------------------------
    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """DeriveKeyPair (RFC 9180 §7.1.3): (private, public) in their serialised forms."""
        kem = self.kem
        sid = b"KEM" + kem.kem_id.to_bytes(2, "big")
        prk = _labeled_extract(kem.hash_name, sid, b"", b"dkp_prk", ikm)
        if kem.curve in _MONTGOMERY:
            sk = _labeled_expand(kem.hash_name, sid, prk, b"sk", b"", kem.n_sk)
            return sk, self.kem_public(sk)
        order = _ORDERS[kem.curve]
        for counter in range(256):
            cand = bytearray(
                _labeled_expand(kem.hash_name, sid, prk, b"candidate", bytes([counter]), kem.n_sk)
            )
            cand[0] &= kem.bitmask
            value = int.from_bytes(cand, "big")
            if 0 < value < order:
                return bytes(cand), self.kem_public(bytes(cand))
        raise MalformedInput("DeriveKeyPair failed")  # pragma: no cover - probability 2^-256

    def kem_public(self, private: bytes) -> bytes:
        if self.kem.curve in _MONTGOMERY:
            try:
                key = _MONTGOMERY[self.kem.curve].from_private_bytes(private)
            except ValueError as exc:
                raise MalformedKey("bad X25519/X448 private key") from exc
            return key.public_key().public_bytes(_RAW, _RAW_PUB)
        return (
            self._ec_priv(self.kem.curve, private).public_key().public_bytes(_X962, _UNCOMPRESSED)
        )

    def kem_keypair(self) -> tuple[bytes, bytes]:
        if self.kem.curve in _MONTGOMERY:
            priv = (
                _MONTGOMERY[self.kem.curve]
                .generate()
                .private_bytes(_RAW, _RAW_PRIV, serialization.NoEncryption())
            )
            return priv, self.kem_public(priv)
        key = ec.generate_private_key(_CURVES[self.kem.curve])
        priv = key.private_numbers().private_value.to_bytes(self.kem.n_sk, "big")
        return priv, self.kem_public(priv)

    def _dh(self, private: bytes, public: bytes) -> bytes:
        try:
            if self.kem.curve == "X25519":
                secret = X25519PrivateKey.from_private_bytes(private).exchange(
                    X25519PublicKey.from_public_bytes(public)
                )
            elif self.kem.curve == "X448":
                secret = X448PrivateKey.from_private_bytes(private).exchange(
                    X448PublicKey.from_public_bytes(public)
                )
            else:
                curve = _CURVES[self.kem.curve]
                pub = ec.EllipticCurvePublicKey.from_encoded_point(curve, public)
                secret = self._ec_priv(self.kem.curve, private).exchange(ec.ECDH(), pub)
        except ValueError as exc:
            raise MalformedKey("bad KEM public key") from exc
        return secret

    def _shared_secret(self, dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
        kem = self.kem
        sid = b"KEM" + kem.kem_id.to_bytes(2, "big")
        prk = _labeled_extract(kem.hash_name, sid, b"", b"eae_prk", dh)
        return _labeled_expand(kem.hash_name, sid, prk, b"shared_secret", enc + pk_r, kem.n_secret)

    def _key_schedule(self, shared: bytes, info: bytes) -> tuple[bytes, bytes, bytes]:
        sid = (
            b"HPKE"
            + self.kem.kem_id.to_bytes(2, "big")
            + self.kdf_id.to_bytes(2, "big")
            + self.aead_id.to_bytes(2, "big")
        )
        h = self.hash_name
        psk_id_hash = _labeled_extract(h, sid, b"", b"psk_id_hash", b"")
        info_hash = _labeled_extract(h, sid, b"", b"info_hash", info)
        ctx = b"\x00" + psk_id_hash + info_hash
        secret = _labeled_extract(h, sid, shared, b"secret", b"")
        key = _labeled_expand(h, sid, secret, b"key", ctx, self.n_k)
        nonce = _labeled_expand(h, sid, secret, b"base_nonce", ctx, self.n_n)
        exporter = _labeled_expand(h, sid, secret, b"exp", ctx, self.n_h)
        return key, nonce, exporter

    def _hpke_export(self, exporter: bytes, context: bytes, length: int) -> bytes:
        sid = (
            b"HPKE"
            + self.kem.kem_id.to_bytes(2, "big")
            + self.kdf_id.to_bytes(2, "big")
            + self.aead_id.to_bytes(2, "big")
        )
        return _labeled_expand(self.hash_name, sid, exporter, b"sec", context, length)

    def _encap(self, public: bytes) -> tuple[bytes, bytes]:
        sk_e, enc = self.kem_keypair()
        return self._shared_secret(self._dh(sk_e, public), enc, public), enc

    def _decap(self, private: bytes, enc: bytes) -> bytes:
        return self._shared_secret(self._dh(private, enc), enc, self.kem_public(private))

    def hpke_seal(self, public: bytes, info: bytes, aad: bytes, plaintext: bytes) -> HpkeCiphertext:
        shared, enc = self._encap(public)
        key, nonce, _ = self._key_schedule(shared, info)
        return HpkeCiphertext(enc, self.seal(key, nonce, aad, plaintext))

    def hpke_open(self, private: bytes, info: bytes, aad: bytes, ct: HpkeCiphertext) -> bytes:
        try:
            shared = self._decap(private, ct.kem_output)
        except MalformedKey as exc:
            raise DecryptionFailed from exc
        key, nonce, _ = self._key_schedule(shared, info)
        return self.open(key, nonce, aad, ct.ciphertext)

    def hpke_export_sender(
        self, public: bytes, info: bytes, context: bytes, length: int
    ) -> tuple[bytes, bytes]:
        """SetupBaseS then Export: (kem_output, exported secret) (RFC 9180 §5.3)."""
        shared, enc = self._encap(public)
        _, _, exporter = self._key_schedule(shared, info)
        return enc, self._hpke_export(exporter, context, length)

    def hpke_export_receiver(
        self, private: bytes, kem_output: bytes, info: bytes, context: bytes, length: int
    ) -> bytes:
        """SetupBaseR then Export (RFC 9180 §5.3)."""
        shared = self._decap(private, kem_output)
        _, _, exporter = self._key_schedule(shared, info)
        return self._hpke_export(exporter, context, length)


SUITES: Final[dict[int, CipherSuite]] = {
    1: CipherSuite(1, _X25519_KEM, "aes-128-gcm", "sha256", "ed25519", 0x0001),
    2: CipherSuite(2, _KEMS["P-256"], "aes-128-gcm", "sha256", "P-256", 0x0001),
    3: CipherSuite(3, _X25519_KEM, "chacha20-poly1305", "sha256", "ed25519", 0x0003),
    4: CipherSuite(4, _X448_KEM, "aes-256-gcm", "sha512", "ed448", 0x0002),
    5: CipherSuite(5, _KEMS["P-521"], "aes-256-gcm", "sha512", "P-521", 0x0002),
    6: CipherSuite(6, _X448_KEM, "chacha20-poly1305", "sha512", "ed448", 0x0003),
    7: CipherSuite(7, _KEMS["P-384"], "aes-256-gcm", "sha384", "P-384", 0x0002),
}
UNSUPPORTED_REASONS: Final[dict[int, str]] = {}
"""Suites of RFC 9420 §17.1 that are not implemented, with why (none at present)."""


def suite(suite_id: int) -> CipherSuite:
    """The suite, or :class:`UnsupportedPrimitive` naming why it is not available."""
    found = SUITES.get(suite_id)
    if found is None:
        reason = UNSUPPORTED_REASONS.get(suite_id, f"suite {suite_id}: unknown cipher suite")
        raise UnsupportedPrimitive(reason, "enkrypted_crypto.mls")
    return found
