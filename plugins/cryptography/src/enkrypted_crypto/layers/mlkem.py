"""ML-KEM-768 cascade layer: the Profile-v0 construction and the binary-profile variant.

**Profile-v0** (:class:`MlKemLayer`, digest §4.3, ``name "ML-KEM-768"``).  Per message::

    shared, encapsulated = ML-KEM-768.Encaps(peer_public)          # 1184 B key -> 1088 B
    key = HKDF-SHA256(ikm=shared[:32], salt=random(16),
                      info="ML-KEM-768-AES-GCM-Cascading-Cipher", L=32)
    ciphertext = AES-256-GCM(key, iv=random(12), aad=b"")           # ct || 16-byte tag

Shapes, for the cascade manager:

* key material: :class:`MlKemKeyMaterial` (``peer_public`` 1184 B to encrypt to, ``own_seed``
  64 B seed-form private key to decrypt with); the same object serves both directions.  A session
  passes :class:`MlKemPreparedKeys` instead: the peer key checked and parsed once, our seed
  expanded once, so a message costs one encapsulation or decapsulation and nothing more.
* ``MlKemLayer(primitives).encrypt(plaintext, keys) -> (ciphertext, MlKemParameters)``
* ``MlKemLayer(primitives).decrypt(ciphertext, parameters, keys) -> plaintext``
* :class:`MlKemParameters` ``to_v0()`` / ``from_v0()`` give the v0 JSON ``{iv, salt,
  encapsulated}`` integer arrays; ``to_bytes()`` / ``from_bytes()`` the fixed-size binary form
  ``iv || salt || encapsulated`` (1116 B).

Errors: malformed peer key -> :class:`MalformedKey`; wrong-size parameters / encapsulation ->
:class:`MalformedInput`; authentication failure -> :class:`DecryptionFailed`.  A forged
encapsulation decapsulates (implicit rejection) to an unrelated key, so it surfaces as
:class:`DecryptionFailed` from AES-GCM, never as a distinct error.

**Binary profile** (:class:`MlKemSessionLayer`, ``EnkryptedChat-Profile-b1``): no per-message
encapsulation.  The handshake runs ML-KEM-768 once — the initiator encapsulates to the responder's
fresh key and sends the 1088-byte ciphertext in ``mlkem-key-exchange-response`` — and both sides
derive (``docs/protocol.md`` §1.3)::

    secret     = HKDF-SHA256(ikm=shared, salt=transcript hash, info=B1_SECRET_INFO, L=32)
    chain[d]   = HKDF-SHA256(ikm=secret, salt="", info="enkrypted/b1/ml-kem-768/" + d, L=32)
                                                                   # d = "i->r" | "r->i"
    key[d][e] || chain[d] = HKDF-SHA256(ikm=chain[d], salt="", info=".../epoch", L=64)
                                                                   # once per EPOCH_MESSAGES

Message number ``c`` (u64, per direction, strictly increasing, never reused) is sealed under
``key[d][c // EPOCH_MESSAGES]`` with AES-256-GCM, nonce ``0x00000000 || c`` (u64 BE) and
AAD ``"EKb1KEM" || aad``; ``c`` travels as the 8-byte layer parameter.  Old epoch keys are dropped
as soon as no outstanding message needs them.  The receiver accepts each ``c`` once: counters
above the highest seen (at most ``max_gap`` ahead) or ones it skipped and still remembers
(at most ``max_skipped`` of them, oldest forgotten first) — the same bounds as the Double
Ratchet's skipped keys, so the layer rejects replays on its own.  Decryption is transactional
(``(plaintext, commit)``), like the ratchet's.

* ``MlKemSessionLayer(p, MlKemSessionKeys.derive(p, secret, initiator=True))``
* ``.encrypt(plaintext, aad) -> (ciphertext, MlKemSessionParameters)``
* ``.decrypt(ciphertext, parameters, aad) -> (plaintext, commit)``
* ``MlKemSessionParameters.to_bytes()`` is the u64 counter; ``from_bytes`` checks its size.
"""

from __future__ import annotations

__all__ = [
    "B1_SECRET_INFO",
    "EPOCH_MESSAGES",
    "HKDF_INFO",
    "LAYER_NAME",
    "LAYER_VERSION",
    "MlKemKeyMaterial",
    "MlKemLayer",
    "MlKemParameters",
    "MlKemPreparedKeys",
    "MlKemSessionKeys",
    "MlKemSessionLayer",
    "MlKemSessionParameters",
    "b1_session_secret",
]

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from enkrypted_crypto.backends import (
    MLKEM768_CIPHERTEXT_SIZE,
    check_mlkem768_ciphertext,
    check_mlkem768_public,
    check_mlkem768_seed,
)
from enkrypted_crypto.errors import (
    CryptoUsageError,
    DecryptionFailed,
    MalformedInput,
    SessionStateError,
)
from enkrypted_crypto.layers._v0 import from_int_array, to_int_array
from enkrypted_crypto.primitives import (
    AeadKey,
    BytesLike,
    MlKemDecapsulationKey,
    MlKemEncapsulationKey,
    Primitives,
)
from enkrypted_crypto.statecodec import StateReader, StateWriter

LAYER_NAME: Final = "ML-KEM-768"
LAYER_VERSION: Final = "1.0.0"
HKDF_INFO: Final = b"ML-KEM-768-AES-GCM-Cascading-Cipher"
IV_SIZE: Final = 12
SALT_SIZE: Final = 16
_SHARED_PREFIX: Final = 32  # "first 32 bytes of the shared secret" (ML-KEM's is exactly 32)
_BINARY_SIZE: Final = IV_SIZE + SALT_SIZE + MLKEM768_CIPHERTEXT_SIZE


@dataclass(frozen=True, slots=True)
class MlKemKeyMaterial:
    """Keys of one session for this layer; checked on construction."""

    peer_public: bytes
    own_seed: bytes

    def __post_init__(self) -> None:
        check_mlkem768_public(self.peer_public)
        check_mlkem768_seed(self.own_seed)


@dataclass(frozen=True, slots=True, repr=False)
class MlKemPreparedKeys:
    """A session's v0 keys, prepared once: the peer key checked and parsed, our seed expanded.

    ``own_seed`` is kept (when known) so the session state can be exported; it is no more secret
    than the expanded key next to it.
    """

    peer: MlKemEncapsulationKey
    own: MlKemDecapsulationKey
    own_seed: bytes | None = None

    def __repr__(self) -> str:
        return "MlKemPreparedKeys(<redacted>)"

    @classmethod
    def prepare(cls, p: Primitives, material: MlKemKeyMaterial) -> MlKemPreparedKeys:
        return cls(
            p.mlkem768_encapsulation_key(material.peer_public),
            p.mlkem768_decapsulation_key(material.own_seed),
            material.own_seed,
        )


@dataclass(frozen=True, slots=True)
class MlKemParameters:
    """Per-message layer parameters (``layerParameters[i]`` in v0)."""

    iv: bytes
    salt: bytes
    encapsulated: bytes

    def __post_init__(self) -> None:
        if len(self.iv) != IV_SIZE or len(self.salt) != SALT_SIZE:
            raise MalformedInput("ML-KEM layer iv must be 12 bytes and salt 16 bytes")
        check_mlkem768_ciphertext(self.encapsulated)

    def to_v0(self) -> dict[str, list[int]]:
        return {
            "iv": to_int_array(self.iv),
            "salt": to_int_array(self.salt),
            "encapsulated": to_int_array(self.encapsulated),
        }

    @classmethod
    def from_v0(cls, obj: Mapping[str, object]) -> MlKemParameters:
        return cls(
            iv=from_int_array(obj, "iv", IV_SIZE),
            salt=from_int_array(obj, "salt", SALT_SIZE),
            encapsulated=from_int_array(obj, "encapsulated", MLKEM768_CIPHERTEXT_SIZE),
        )

    def to_bytes(self) -> bytes:
        return self.iv + self.salt + self.encapsulated

    @classmethod
    def from_bytes(cls, data: bytes) -> MlKemParameters:
        if len(data) != _BINARY_SIZE:
            raise MalformedInput(f"ML-KEM layer parameters must be {_BINARY_SIZE} bytes")
        return cls(data[:IV_SIZE], data[IV_SIZE:28], data[28:])


class MlKemLayer:
    """Stateless ML-KEM-768 + HKDF-SHA256 + AES-256-GCM layer over a :class:`Primitives`."""

    name: Final = LAYER_NAME
    version: Final = LAYER_VERSION

    def __init__(self, primitives: Primitives) -> None:
        self._p = primitives

    def _key(self, shared: bytes, salt: bytes) -> bytes:
        return self._p.hkdf_sha256(shared[:_SHARED_PREFIX], salt, HKDF_INFO, 32)

    def encrypt(
        self, plaintext: BytesLike, keys: MlKemKeyMaterial | MlKemPreparedKeys
    ) -> tuple[bytes, MlKemParameters]:
        if isinstance(keys, MlKemPreparedKeys):
            shared, encapsulated = keys.peer.encapsulate()
        else:
            shared, encapsulated = self._p.mlkem768_encapsulate(keys.peer_public)
        params = MlKemParameters(
            iv=self._p.random(IV_SIZE), salt=self._p.random(SALT_SIZE), encapsulated=encapsulated
        )
        key = self._key(shared, params.salt)
        return self._p.aead_seal("aes-256-gcm", key, params.iv, plaintext, b""), params

    def decrypt(
        self,
        ciphertext: BytesLike,
        parameters: MlKemParameters,
        keys: MlKemKeyMaterial | MlKemPreparedKeys,
    ) -> bytes:
        if isinstance(keys, MlKemPreparedKeys):
            shared = keys.own.decapsulate(parameters.encapsulated)
        else:
            shared = self._p.mlkem768_decapsulate(keys.own_seed, parameters.encapsulated)
        key = self._key(shared, parameters.salt)
        return self._p.aead_open("aes-256-gcm", key, parameters.iv, ciphertext, b"")


# ------------------------------------------------------------------------------ binary profile
B1_SECRET_INFO: Final = b"EnkryptedChat-b1/mlkem-session-secret"
EPOCH_MESSAGES: Final = 64
"""Messages per epoch key; the chain advances (and the old key is dropped) every 64 messages."""
COUNTER_SIZE: Final = 8
_B1_DIRECTION_INFO: Final = {
    True: b"enkrypted/b1/ml-kem-768/i->r",
    False: b"enkrypted/b1/ml-kem-768/r->i",
}
_B1_EPOCH_INFO: Final = b"enkrypted/b1/ml-kem-768/epoch"
_B1_AAD_PREFIX: Final = b"EKb1KEM"
_NONCE_PREFIX: Final = bytes(4)
_COUNTER_LIMIT: Final = 2**64
_KEY_SIZE: Final = 32
_STATE_VERSION: Final = 1


def b1_session_secret(p: Primitives, shared: bytes, transcript: bytes) -> bytes:
    """The handshake's ML-KEM secret bound to the whole handshake transcript (32 bytes)."""
    if len(shared) != _KEY_SIZE or len(transcript) != _KEY_SIZE:
        raise CryptoUsageError("ML-KEM shared secret and transcript hash must be 32 bytes")
    return p.hkdf_sha256(shared, transcript, B1_SECRET_INFO, _KEY_SIZE)


def _epoch_step(p: Primitives, chain: bytes) -> tuple[bytes, bytes]:
    """(epoch AEAD key, next chain key) = HKDF(chain, info=".../epoch", 64)."""
    okm = p.hkdf_sha256(chain, b"", _B1_EPOCH_INFO, 2 * _KEY_SIZE)
    return okm[:_KEY_SIZE], okm[_KEY_SIZE:]


def _nonce(counter: int) -> bytes:
    return _NONCE_PREFIX + counter.to_bytes(COUNTER_SIZE, "big")


@dataclass(frozen=True, slots=True, repr=False)
class MlKemSessionKeys:
    """The two direction chain keys of one session (``repr`` hides them)."""

    send_chain: bytes
    receive_chain: bytes

    def __post_init__(self) -> None:
        if len(self.send_chain) != _KEY_SIZE or len(self.receive_chain) != _KEY_SIZE:
            raise CryptoUsageError("ML-KEM session chain keys must be 32 bytes")
        if self.send_chain == self.receive_chain:
            raise CryptoUsageError("ML-KEM session send and receive chains must differ")

    def __repr__(self) -> str:
        return "MlKemSessionKeys(<redacted>)"

    @classmethod
    def derive(cls, p: Primitives, session_secret: bytes, *, initiator: bool) -> MlKemSessionKeys:
        if len(session_secret) != _KEY_SIZE:
            raise CryptoUsageError("ML-KEM session secret must be 32 bytes")
        mine = p.hkdf_sha256(session_secret, b"", _B1_DIRECTION_INFO[initiator], _KEY_SIZE)
        theirs = p.hkdf_sha256(session_secret, b"", _B1_DIRECTION_INFO[not initiator], _KEY_SIZE)
        return cls(send_chain=mine, receive_chain=theirs)


@dataclass(frozen=True, slots=True)
class MlKemSessionParameters:
    """The message number ``c`` (u64); the nonce is ``0x00000000 || c``."""

    counter: int

    def __post_init__(self) -> None:
        if type(self.counter) is not int or not 0 <= self.counter < _COUNTER_LIMIT:
            raise MalformedInput("ML-KEM layer counter must be a u64")

    def to_bytes(self) -> bytes:
        return self.counter.to_bytes(COUNTER_SIZE, "big")

    @classmethod
    def from_bytes(cls, data: BytesLike) -> MlKemSessionParameters:
        if len(data) != COUNTER_SIZE:
            raise MalformedInput(f"ML-KEM layer parameters must be {COUNTER_SIZE} bytes")
        return cls(int.from_bytes(data, "big"))


class MlKemSessionLayer:
    """Binary-profile ML-KEM layer: keys from the handshake's one encapsulation (module doc).

    Sending state: the next counter and the current epoch's prepared key.  Receiving state: the
    next counter above everything accepted, the counters skipped below it (bounded), the keys of
    the epochs those still need, and the chain key of the first epoch not derived yet.
    """

    __slots__ = (
        "_head",
        "_keys",
        "_max_gap",
        "_max_skipped",
        "_missing",
        "_missing_per_epoch",
        "_p",
        "_recv_chain",
        "_recv_chain_epoch",
        "_recv_next",
        "_send_chain",
        "_send_counter",
        "_send_epoch",
        "_send_key",
        "_send_raw",
        "_version",
    )

    def __init__(
        self,
        primitives: Primitives,
        keys: MlKemSessionKeys,
        *,
        max_gap: int = 2000,
        max_skipped: int = 2000,
    ) -> None:
        if max_gap < 0 or max_skipped < 0:
            raise CryptoUsageError("ML-KEM layer bounds must be non-negative")
        self._p = primitives
        self._max_gap = max_gap
        self._max_skipped = max_skipped
        self._send_counter = 0
        self._send_epoch = -1
        self._send_key: AeadKey | None = None
        self._send_raw = b""
        self._send_chain = keys.send_chain
        self._recv_next = 0
        self._recv_chain = keys.receive_chain
        self._recv_chain_epoch = 0  # first epoch whose key is not derived yet
        self._keys: dict[int, bytes] = {}  # epoch -> AEAD key, only while still needed
        self._head: tuple[int, AeadKey] | None = None  # prepared key of the newest epoch
        self._missing: dict[int, None] = {}  # skipped counters, oldest first
        self._missing_per_epoch: dict[int, int] = {}
        self._version = 0  # bumped by every commit, so a stale commit is refused

    # ---------------------------------------------------------------------------- send
    def encrypt(self, plaintext: BytesLike, aad: bytes) -> tuple[bytes, MlKemSessionParameters]:
        """Seal under the next counter.  The counter advances now, whatever happens to the
        message later, so a counter (nonce) is never used twice under one key."""
        counter = self._send_counter
        if counter >= _COUNTER_LIMIT:
            raise CryptoUsageError("ML-KEM layer message counter exhausted; start a new session")
        epoch = counter // EPOCH_MESSAGES
        send_key = self._send_key
        if epoch != self._send_epoch or send_key is None:  # counters step by one: next epoch
            raw, chain = _epoch_step(self._p, self._send_chain)
            send_key = self._p.aead_key("aes-256-gcm", raw)
            self._send_key, self._send_chain, self._send_epoch = send_key, chain, epoch
            self._send_raw = raw
        self._send_counter = counter + 1
        sealed = send_key.seal(_nonce(counter), plaintext, _B1_AAD_PREFIX + aad)
        return sealed, MlKemSessionParameters(counter)

    # ---------------------------------------------------------------------------- receive
    def decrypt(
        self, ciphertext: BytesLike, parameters: MlKemSessionParameters, aad: bytes
    ) -> tuple[bytes, Callable[[], None]]:
        """Open without changing state; ``commit()`` records the counter as used."""
        counter = parameters.counter
        epoch = counter // EPOCH_MESSAGES
        derived: dict[int, bytes] = {}
        chain, chain_epoch = self._recv_chain, self._recv_chain_epoch
        if counter >= self._recv_next:
            if counter - self._recv_next > self._max_gap:
                raise DecryptionFailed()
            while chain_epoch <= epoch:  # at most max_gap / EPOCH_MESSAGES + 1 steps
                derived[chain_epoch], chain = _epoch_step(self._p, chain)
                chain_epoch += 1
        elif counter not in self._missing:
            raise DecryptionFailed()  # a replay, or a skipped counter forgotten long ago
        key = self._key_for(epoch, derived)
        plaintext = key.open(_nonce(counter), ciphertext, _B1_AAD_PREFIX + aad)
        version = self._version

        def commit() -> None:
            if self._version != version:
                raise CryptoUsageError("stale ML-KEM layer commit: the state changed")
            self._accept(counter, derived, chain, chain_epoch, key)

        return plaintext, commit

    def _key_for(self, epoch: int, derived: Mapping[int, bytes]) -> AeadKey:
        if self._head is not None and self._head[0] == epoch:
            return self._head[1]
        raw = derived.get(epoch)
        if raw is None:
            raw = self._keys.get(epoch)
        if raw is None:  # cannot happen: a remembered counter keeps its epoch's key
            raise DecryptionFailed()
        return self._p.aead_key("aes-256-gcm", raw)

    def _accept(
        self, counter: int, derived: dict[int, bytes], chain: bytes, chain_epoch: int, key: AeadKey
    ) -> None:
        self._version += 1
        epoch = counter // EPOCH_MESSAGES
        touched = set(derived)
        self._keys.update(derived)
        self._recv_chain, self._recv_chain_epoch = chain, chain_epoch
        if counter >= self._recv_next:
            if self._head is not None:
                touched.add(self._head[0])
            for skipped in range(max(self._recv_next, counter - self._max_skipped), counter):
                self._remember(skipped)
            self._recv_next = counter + 1
            self._head = (epoch, key)
        else:
            touched.add(epoch)
            self._forget(counter)
        while len(self._missing) > self._max_skipped:
            oldest = next(iter(self._missing))
            touched.add(oldest // EPOCH_MESSAGES)
            self._forget(oldest)
        newest = (self._recv_next - 1) // EPOCH_MESSAGES
        for old in touched:  # drop every epoch key no outstanding message needs
            if old != newest and old not in self._missing_per_epoch:
                self._keys.pop(old, None)

    def _remember(self, counter: int) -> None:
        self._missing[counter] = None
        epoch = counter // EPOCH_MESSAGES
        self._missing_per_epoch[epoch] = self._missing_per_epoch.get(epoch, 0) + 1

    def _forget(self, counter: int) -> None:
        del self._missing[counter]
        epoch = counter // EPOCH_MESSAGES
        left = self._missing_per_epoch[epoch] - 1
        if left:
            self._missing_per_epoch[epoch] = left
        else:
            del self._missing_per_epoch[epoch]

    # ---------------------------------------------------------------------------- exported state
    def export_state(self) -> bytes:
        """The whole layer state (secret), ``docs/protocol.md`` §6.2: no more than the live
        object holds, so restoring it keeps the layer's forward secrecy."""
        out = StateWriter().u8(_STATE_VERSION)
        out.u64(self._send_counter).fixed(self._send_chain)
        out.u8(self._send_key is not None)
        if self._send_key is not None:
            out.u64(self._send_epoch).fixed(self._send_raw)
        out.u64(self._recv_next).fixed(self._recv_chain).u64(self._recv_chain_epoch)
        out.u32(len(self._keys))
        for epoch, raw in self._keys.items():
            out.u64(epoch).fixed(raw)
        out.u32(len(self._missing))
        for counter in self._missing:
            out.u64(counter)
        return out.getvalue()

    @classmethod
    def restore(
        cls, primitives: Primitives, data: bytes, *, max_gap: int, max_skipped: int
    ) -> MlKemSessionLayer:
        """Inverse of :meth:`export_state`; raises :class:`SessionStateError`."""
        r = StateReader(data, "ML-KEM layer state")
        if r.u8() != _STATE_VERSION:
            raise SessionStateError("ML-KEM layer state: unknown version")
        send_counter, send_chain = r.u64(), r.fixed(_KEY_SIZE)
        send = (r.u64(), r.fixed(_KEY_SIZE)) if r.flag() else None
        recv_next, recv_chain, recv_chain_epoch = r.u64(), r.fixed(_KEY_SIZE), r.u64()
        keys = {r.u64(): r.fixed(_KEY_SIZE) for _ in range(r.count(max_skipped + 2))}
        missing = [r.u64() for _ in range(r.count(max_skipped))]
        r.done()
        newest = (recv_next - 1) // EPOCH_MESSAGES
        expected_chain_epoch = newest + 1 if recv_next else 0
        if (
            send_chain == recv_chain
            or (send is None) != (send_counter == 0)
            or (send is not None and send[0] != (send_counter - 1) // EPOCH_MESSAGES)
            or recv_chain_epoch != expected_chain_epoch
            or (recv_next and newest not in keys)
            or any(c >= recv_next for c in missing)
            or any(c // EPOCH_MESSAGES not in keys for c in missing)
            or len(set(missing)) != len(missing)
        ):
            raise SessionStateError("ML-KEM layer state: inconsistent counters or keys")
        layer = cls(
            primitives,
            MlKemSessionKeys(send_chain, recv_chain),
            max_gap=max_gap,
            max_skipped=max_skipped,
        )
        layer._send_counter = send_counter
        if send is not None:
            layer._send_epoch, layer._send_raw = send
            layer._send_key = primitives.aead_key("aes-256-gcm", send[1])
        layer._recv_next, layer._recv_chain_epoch = recv_next, recv_chain_epoch
        layer._keys = keys
        if recv_next:
            layer._head = (newest, primitives.aead_key("aes-256-gcm", keys[newest]))
        for counter in missing:
            layer._remember(counter)
        return layer
