"""Double Ratchet per the Signal specification (rev. 4, 2025), sans-I/O, over ``Primitives``.

* ``KDF_RK`` (§5.2): HKDF-SHA256 with salt = root key, ikm = DH output, info
  ``EnkryptedChat-DR-RootKey-v1``, 64 bytes -> (new root key, chain key).
* ``KDF_CK`` (§5.2): HMAC-SHA256(chain key, 0x01) = message key, HMAC-SHA256(chain key, 0x02) =
  next chain key.
* ``ENCRYPT`` (§5.2, AEAD variant): HKDF-SHA256(ikm = message key, salt = 32 zero bytes, info
  ``EnkryptedChat-DR-MessageKey-v1``, 44 bytes) -> 32-byte AEAD key || 12-byte nonce; each message
  key is used once, so a derived nonce is safe.  AEAD = AES-256-GCM (default) or ChaCha20-Poly1305.
  AAD = ``AD || header || extra_aad``.
* Header (§3.1) = ``dh (32) || pn (u32 BE) || n (u32 BE)``; message = ``header || ciphertext``.
* Skipped message keys (§3.5): at most ``MAX_SKIP`` per chain and ``max_skipped_keys`` in total
  (oldest evicted); a consumed key is deleted, so a replay finds nothing and fails.

Decryption is transactional: :meth:`RatchetSession.prepare_decrypt` works on a copy of the state
and returns the plaintext with a ``commit`` callable; the state changes only when ``commit`` is
called, so a forged or replayed message leaves the session able to decrypt the next genuine one.
"""

from __future__ import annotations

__all__ = [
    "HEADER_LEN",
    "Commit",
    "RatchetSession",
]

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from .errors import CryptoUsageError, DecryptionFailed, MalformedInput
from .limits import DEFAULT_LIMITS, Limits
from .primitives import AeadAlgorithm, BytesLike, Primitives

Commit = Callable[[], None]
"""Applies a prepared state change (returned by ``prepare_*``)."""

HEADER_LEN: Final = 40
_KEY: Final = 32
_RK_INFO: Final = b"EnkryptedChat-DR-RootKey-v1"
_MK_INFO: Final = b"EnkryptedChat-DR-MessageKey-v1"
_ZERO_SALT: Final = b"\x00" * 32
_MK_CONST: Final = b"\x01"  # §5.2 KDF_CK constants
_CK_CONST: Final = b"\x02"
_HEADER: Final = struct.Struct(">32sII")
_STATE_MAGIC: Final = b"EKDR\x01"
_AEAD_IDS: Final[dict[AeadAlgorithm, int]] = {"aes-256-gcm": 1, "chacha20-poly1305": 2}
_AEAD_BY_ID: Final[dict[int, AeadAlgorithm]] = {v: k for k, v in _AEAD_IDS.items()}
_FIXED: Final = struct.Struct(">BB32s32s32s32s32s32sIIIH")
_SKIPPED: Final = struct.Struct(">32sI32s")
_NO_KEY: Final = b"\x00" * 32


@dataclass(slots=True)
class _State:
    """Signal spec §3.2 state variables (mutable; only ever replaced wholesale on commit)."""

    dhs_private: bytes
    dhs_public: bytes
    dhr: bytes | None
    rk: bytes
    cks: bytes | None
    ckr: bytes | None
    ns: int = 0
    nr: int = 0
    pn: int = 0
    skipped: dict[tuple[bytes, int], bytes] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(
            self.dhs_private, self.dhs_public, self.dhr, self.rk, self.cks, self.ckr,
            self.ns, self.nr, self.pn, dict(self.skipped),
        )  # fmt: skip


class RatchetSession:
    """One peer's Double Ratchet session; AD is the X3DH associated data."""

    __slots__ = ("_ad", "_aead", "_limits", "_prims", "_state")

    def __init__(
        self,
        prims: Primitives,
        state: _State,
        associated_data: bytes,
        aead: AeadAlgorithm = "aes-256-gcm",
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        if aead not in _AEAD_IDS:
            raise CryptoUsageError(f"Double Ratchet AEAD must be one of {sorted(_AEAD_IDS)}")
        self._prims = prims
        self._state = state
        self._ad = associated_data
        self._aead: AeadAlgorithm = aead
        self._limits = limits

    # -------------------------------------------------------------------------- initialisation
    @classmethod
    def initiator(
        cls,
        prims: Primitives,
        shared_secret: bytes,
        peer_ratchet_public: bytes,
        associated_data: bytes,
        *,
        aead: AeadAlgorithm = "aes-256-gcm",
        limits: Limits = DEFAULT_LIMITS,
    ) -> RatchetSession:
        """RatchetInitAlice (§3.3): the peer's signed prekey is its first ratchet key."""
        private = prims.random(_KEY)
        public = prims.x25519_public(private)
        rk, cks = _kdf_rk(prims, shared_secret, prims.x25519(private, peer_ratchet_public))
        state = _State(private, public, peer_ratchet_public, rk, cks, None)
        return cls(prims, state, associated_data, aead, limits)

    @classmethod
    def responder(
        cls,
        prims: Primitives,
        shared_secret: bytes,
        own_ratchet_private: bytes,
        associated_data: bytes,
        *,
        aead: AeadAlgorithm = "aes-256-gcm",
        limits: Limits = DEFAULT_LIMITS,
    ) -> RatchetSession:
        """RatchetInitBob (§3.3): our signed prekey pair, root key = SK, no chains yet."""
        public = prims.x25519_public(own_ratchet_private)
        state = _State(own_ratchet_private, public, None, shared_secret, None, None)
        return cls(prims, state, associated_data, aead, limits)

    @property
    def aead(self) -> AeadAlgorithm:
        return self._aead

    @property
    def associated_data(self) -> bytes:
        """``AD`` = ``Encode(IK_initiator) || Encode(IK_responder)`` (X3DH §3.3)."""
        return self._ad

    @property
    def can_send(self) -> bool:
        """False for the responder until the first message from the initiator arrives."""
        return self._state.cks is not None

    # -------------------------------------------------------------------------- encrypt
    def prepare_encrypt_parts(
        self, plaintext: BytesLike, aad: bytes = b""
    ) -> tuple[bytes, bytes, Commit]:
        """RatchetEncrypt (§3.4) without committing the chain step: (header, body, commit)."""
        st = self._state
        if st.cks is None:
            raise CryptoUsageError("responder cannot send before the first message arrives")
        next_ck, mk = _kdf_ck(self._prims, st.cks)
        header = _HEADER.pack(st.dhs_public, st.pn, st.ns)
        body = self._seal(mk, plaintext, header, aad)
        after = _State(
            st.dhs_private, st.dhs_public, st.dhr, st.rk, next_ck, st.ckr,
            st.ns + 1, st.nr, st.pn, st.skipped,  # encrypt never touches skipped keys
        )  # fmt: skip

        def commit() -> None:
            self._replace(st, after)

        return header, body, commit

    def prepare_encrypt(self, plaintext: bytes, aad: bytes = b"") -> tuple[bytes, Commit]:
        """As :meth:`prepare_encrypt_parts`, with the message as ``header || body``."""
        header, body, commit = self.prepare_encrypt_parts(plaintext, aad)
        return header + body, commit

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        message, commit = self.prepare_encrypt(plaintext, aad)
        commit()
        return message

    # -------------------------------------------------------------------------- decrypt
    def prepare_decrypt(self, message: bytes, aad: bytes = b"") -> tuple[bytes, Commit]:
        """RatchetDecrypt (§3.5) on a copy of the state; raises :class:`DecryptionFailed`."""
        return self.prepare_decrypt_parts(message[:HEADER_LEN], message[HEADER_LEN:], aad)

    def prepare_decrypt_parts(
        self, header: BytesLike, body: BytesLike, aad: bytes = b""
    ) -> tuple[bytes, Commit]:
        """As :meth:`prepare_decrypt` with the header and body apart (no concatenation)."""
        if len(header) != HEADER_LEN or len(body) < 16:
            raise DecryptionFailed()
        header = bytes(header)
        dh, pn, n = _HEADER.unpack(header)
        live = self._state
        trial = live.copy()
        mk = trial.skipped.pop((dh, n), None)
        if mk is None:
            mk = self._advance_receiving(trial, dh, pn, n)
        plaintext = self._open(mk, body, header, aad)

        def commit() -> None:
            self._replace(live, trial)

        return plaintext, commit

    def _replace(self, before: _State, after: _State) -> None:
        if self._state is not before:
            raise CryptoUsageError("stale ratchet commit: the state changed since it was prepared")
        self._state = after

    def decrypt(self, message: bytes, aad: bytes = b"") -> bytes:
        plaintext, commit = self.prepare_decrypt(message, aad)
        commit()
        return plaintext

    def _advance_receiving(self, st: _State, dh: bytes, pn: int, n: int) -> bytes:
        if dh != st.dhr:
            self._skip(st, pn)
            self._dh_ratchet(st, dh)
        elif n < st.nr:
            raise DecryptionFailed()  # replay of a consumed key, or a key evicted long ago
        self._skip(st, n)
        assert st.ckr is not None
        st.ckr, mk = _kdf_ck(self._prims, st.ckr)
        st.nr += 1
        return mk

    def _skip(self, st: _State, until: int) -> None:
        """SkipMessageKeys (§3.5), bounded by MAX_SKIP per chain and a global cap."""
        if st.ckr is None:
            return
        if until - st.nr > self._limits.max_skip:
            raise DecryptionFailed()
        assert st.dhr is not None
        ckr = st.ckr
        while st.nr < until:
            ckr, mk = _kdf_ck(self._prims, ckr)
            st.skipped[(st.dhr, st.nr)] = mk
            st.nr += 1
        st.ckr = ckr
        while len(st.skipped) > self._limits.max_skipped_keys:
            del st.skipped[next(iter(st.skipped))]

    def _dh_ratchet(self, st: _State, dh: bytes) -> None:
        """DHRatchet (§3.5)."""
        prims = self._prims
        try:
            st.pn, st.ns, st.nr, st.dhr = st.ns, 0, 0, dh
            st.rk, st.ckr = _kdf_rk(prims, st.rk, prims.x25519(st.dhs_private, dh))
            st.dhs_private = prims.random(_KEY)
            st.dhs_public = prims.x25519_public(st.dhs_private)
            st.rk, st.cks = _kdf_rk(prims, st.rk, prims.x25519(st.dhs_private, dh))
        except MalformedInput:
            raise DecryptionFailed() from None  # low-order key from the peer: same opaque error

    # -------------------------------------------------------------------------- AEAD
    def _seal(self, mk: bytes, plaintext: BytesLike, header: bytes, aad: bytes) -> bytes:
        okm = self._prims.hkdf_sha256(mk, _ZERO_SALT, _MK_INFO, 44)
        return self._prims.aead_seal(
            self._aead, okm[:32], okm[32:], plaintext, self._ad + header + aad
        )

    def _open(self, mk: bytes, ciphertext: BytesLike, header: bytes, aad: bytes) -> bytes:
        okm = self._prims.hkdf_sha256(mk, _ZERO_SALT, _MK_INFO, 44)
        return self._prims.aead_open(
            self._aead, okm[:32], okm[32:], ciphertext, self._ad + header + aad
        )

    # -------------------------------------------------------------------------- persistence
    def to_bytes(self) -> bytes:
        """Serialise the whole state (secret!) for encrypted-at-rest persistence."""
        st = self._state
        flags = (st.dhr is not None) | (st.cks is not None) << 1 | (st.ckr is not None) << 2
        fixed = _FIXED.pack(
            _AEAD_IDS[self._aead], flags, st.dhs_private, st.dhs_public, st.dhr or _NO_KEY, st.rk,
            st.cks or _NO_KEY, st.ckr or _NO_KEY, st.ns, st.nr, st.pn, len(self._ad),
        )  # fmt: skip
        parts = [_STATE_MAGIC, fixed, self._ad, struct.pack(">I", len(st.skipped))]
        parts += [_SKIPPED.pack(dh, n, mk) for (dh, n), mk in st.skipped.items()]
        return b"".join(parts)

    @classmethod
    def from_bytes(
        cls, prims: Primitives, data: bytes, limits: Limits = DEFAULT_LIMITS
    ) -> RatchetSession:
        """Inverse of :meth:`to_bytes`; raises :class:`MalformedInput` on anything malformed."""
        try:
            return cls._parse(prims, memoryview(data), limits)
        except (struct.error, KeyError, IndexError) as exc:
            raise MalformedInput("corrupt Double Ratchet state") from exc

    @classmethod
    def _parse(cls, prims: Primitives, data: memoryview, limits: Limits) -> RatchetSession:
        if bytes(data[: len(_STATE_MAGIC)]) != _STATE_MAGIC:
            raise MalformedInput("not a Double Ratchet state (EKDR v1)")
        off = len(_STATE_MAGIC)
        aead_id, flags, dsk, dpk, dhr, rk, cks, ckr, ns, nr, pn, ad_len = _FIXED.unpack_from(
            data, off
        )
        off += _FIXED.size
        ad = bytes(data[off : off + ad_len])
        off += ad_len
        (count,) = struct.unpack_from(">I", data, off)
        off += 4
        if count > limits.max_skipped_keys or len(data) != off + count * _SKIPPED.size:
            raise MalformedInput("corrupt Double Ratchet state (skipped keys)")
        skipped: dict[tuple[bytes, int], bytes] = {}
        for _ in range(count):
            kdh, kn, mk = _SKIPPED.unpack_from(data, off)
            skipped[(kdh, kn)] = mk
            off += _SKIPPED.size
        state = _State(
            dsk, dpk, dhr if flags & 1 else None, rk, cks if flags & 2 else None,
            ckr if flags & 4 else None, ns, nr, pn, skipped,
        )  # fmt: skip
        return cls(prims, state, ad, _AEAD_BY_ID[aead_id], limits)


def _kdf_rk(prims: Primitives, rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    okm = prims.hkdf_sha256(dh_out, rk, _RK_INFO, 64)
    return okm[:32], okm[32:]


def _kdf_ck(prims: Primitives, ck: bytes) -> tuple[bytes, bytes]:
    """Returns (next chain key, message key)."""
    return prims.hmac_sha256(ck, _CK_CONST), prims.hmac_sha256(ck, _MK_CONST)
