"""Sans-I/O session handshake (digest §5 P3.2, Appendix B; DESIGN.md §4 peer <-> peer skew).

Flights (initiator I, responder R)::

    I -> R  signal-key-exchange-request   offer (versions, backend, capabilities, profiles,
                                          layers, supportedLayers), identity, X3DH ephemeral
    R -> I  mlkem-key-exchange            R's ML-KEM-768 key          (only if ML-KEM negotiated)
    R -> I  mls-key-package-request       cipher suite 1              (only if MLS negotiated)
    R -> I  signal-key-exchange-response  chosen profile + layers, R's offer, identity, signed
                                          prekey, confirmation MAC over the transcript
    I -> R  mlkem-key-exchange-response   v0: I's ML-KEM-768 key; b1: I's encapsulation to R's
                                          key                       (only if ML-KEM negotiated)
    I -> R  mls-key-package               I's KeyPackage              (only if MLS negotiated)
    I -> R  signal-session-complete       first Double Ratchet message carrying I's confirmation
    R -> I  mls-commit, mls-welcome       R's group (epoch 0) adds I  (only if MLS negotiated)
    I -> R  mls-welcome-ack               MLS-Exporter of the transcript in epoch 1   (MLS only)

With MLS the initiator completes on the Welcome (after queueing its ack) and the responder on the
ack; the group is :mod:`enkrypted_crypto.session_mls`'s two-member group, bound to this
handshake by its group id (the session id) and to both identities by its credentials.

ML-KEM keys are prepared once (peer key: size + FIPS 203 §7.2 modulus check + parse, as soon as it
arrives; own key: seed expanded once).  In Profile-b1 the one encapsulation is the ML-KEM layer's
key material for the whole session (``layers.mlkem.b1_session_secret`` over the transcript hash);
the responder drops its decapsulation key right after using it and the initiator never makes one.

Negotiation (R decides, I verifies): profile = the first of I's profiles that R also offers; layers
= the union of both peers' required ``layers`` in product order, which both must support.  No
common version/profile, or a required layer one side cannot serve -> ``protocol-error`` to the
peer and :class:`~enkrypted_shell.contracts.HandshakeFailed` locally — never a silent downgrade.
Both confirmations cover the transcript (SHA-256 chain over every PDU in canonical JSON), and
X3DH's KDF info includes the hash of the request, so a tampered offer or choice fails the
handshake.

Crypto contract 2.0, sans-I/O: :meth:`CascadeHandshake.receive` takes ``now`` and returns events;
nothing the peer sends makes it raise.  A refused PDU returns ``[HandshakeFailed(reason,
pdu_to_send)]`` with the ``protocol-error`` (also queued in :meth:`data_to_send`); the PDU that
completes the handshake returns ``[HandshakeComplete(session)]``.  The handshake times out
``WireLimits.handshake_timeout_s`` (P8.6, 300 s) after the ``now`` it was created at:
:meth:`next_deadline` says when, :meth:`handle_timeout` fails it (a PDU received after the deadline
does too).  Driving it after it ended raises :class:`~enkrypted_crypto.errors.HandshakeUsageError`
(the contract's ``HandshakeMisuse``).
"""

from __future__ import annotations

__all__ = ["CascadeHandshake", "HandshakeConfig", "missing_primitive_message"]

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from enkrypted_shell.contracts import (
    Clock,
    HandshakeComplete,
    HandshakeEvent,
    HandshakeFailed,
    SecureSession,
    monotonic_clock,
)

from .cascade import CANONICAL_ORDER, LayerUnavailable
from .errors import CryptoError, HandshakeUsageError
from .handshake_pdus import (
    HANDSHAKE_VERSION,
    KeyExchangeRequest,
    KeyExchangeResponse,
    MlKemEncapsulation,
    MlKemKeyExchange,
    MlsKeyPackageRequest,
    MlsPayload,
    MlsWelcomeAck,
    Offer,
    ProtocolError,
    SessionComplete,
    canonical,
    parse_pdu,
)
from .layers.mlkem import MlKemPreparedKeys, b1_session_secret
from .limits import DEFAULT_LIMITS, Limits
from .mls import Group, KeyPackageBundle, key_package_message
from .mls._messages import KeyPackage
from .primitives import MlKemDecapsulationKey, MlKemEncapsulationKey, Primitives
from .profiles import PROFILE_V0, codec_for
from .ratchet import RatchetSession
from .session import CascadeSession, SessionIdentities
from .session_layers import LayerRegistry, SessionSecrets, replay_protection_problem
from .session_mls import (
    MLS_SUITE,
    accept_welcome,
    check_commit,
    check_key_package,
    create_group,
    new_key_package,
)
from .x3dh import (
    IdentityKeyPair,
    PrekeyBundle,
    PublicIdentity,
    SignedPrekey,
    X3DHResult,
    initiate,
    respond,
)

_log = logging.getLogger(__name__)
_TRANSCRIPT_LABEL: Final = b"EnkryptedChat-handshake-v1"
_CONFIRM_R: Final = b"EnkryptedChat-confirm-responder"
_CONFIRM_I: Final = b"EnkryptedChat-confirm-initiator"
_COMPLETE_AAD: Final = b"EnkryptedChat-session-complete"
MLKEM_OFFER: Final = "mlkem-key-exchange"
MLKEM_ANSWER: Final = "mlkem-key-exchange-response"
MLS_KEY_PACKAGE: Final = "mls-key-package"
MLS_COMMIT: Final = "mls-commit"
MLS_WELCOME: Final = "mls-welcome"
_MLS_ACK_LABEL: Final = b"EnkryptedChat-mls-welcome-ack"
_BAD_PDU: Final = "handshake PDU rejected"
"""The fixed ``protocol-error`` text for ``bad-pdu``: what was wrong stays local (§2.2: a
``bad-pdu`` tells the peer nothing about which check failed)."""


@dataclass(frozen=True, slots=True)
class HandshakeConfig:
    """What this side offers: its backend, profiles (preferred first) and layer policy."""

    prims: Primitives
    profiles: tuple[str, ...]
    layers: tuple[str, ...]
    registry: LayerRegistry
    limits: Limits = DEFAULT_LIMITS
    clock: Clock = monotonic_clock

    def supported_layers(self, profile: str) -> tuple[str, ...]:
        caps = self.prims.capabilities
        names = self.registry.names
        return tuple(n for n in names if not self.registry.missing_primitives([n], profile, caps))

    def offer(self) -> Offer:
        supported = set.intersection(*(set(self.supported_layers(p)) for p in self.profiles))
        return Offer(
            (HANDSHAKE_VERSION,),
            self.prims.name,
            tuple(sorted(self.prims.capabilities)),
            self.profiles,
            self.layers,
            tuple(n for n in CANONICAL_ORDER if n in supported),
        )


class _Refusal(Exception):
    """Internal: abort with a ``protocol-error`` of this code and message (``tell_peer``: send
    it; false when the peer ended the handshake itself)."""

    def __init__(self, code: str, message: str, *, tell_peer: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.tell_peer = tell_peer


class CascadeHandshake:
    """Implements :class:`enkrypted_shell.contracts.Handshake` for both roles."""

    def __init__(
        self,
        config: HandshakeConfig,
        identity: IdentityKeyPair,
        *,
        initiator: bool,
        now: float = 0.0,
    ) -> None:
        self._cfg = config
        self._deadline = now + config.limits.handshake_timeout_s
        self._p = config.prims
        self._identity = identity
        self._initiator = initiator
        self._out: list[bytes] = []
        self._transcript = self._p.hash("sha256", _TRANSCRIPT_LABEL)
        self._request_hash = b""
        self._failed: str | None = None
        self._session: CascadeSession | None = None
        self._profile = ""
        self._layers: tuple[str, ...] = ()
        self._peer_identity = b""  # Encode(IK) of the peer
        self._x3dh: X3DHResult | None = None
        self._ratchet: RatchetSession | None = None
        self._own_mlkem: MlKemDecapsulationKey | None = None
        self._own_mlkem_seed: bytes | None = None  # v0 only: kept for export_state
        self._peer_mlkem: MlKemEncapsulationKey | None = None
        self._mlkem_answered = False
        self._mlkem_secret: bytes | None = None  # Profile-b1
        self._ephemeral = b""
        self._mls_requested = False  # I: R asked for our KeyPackage
        self._mls_bundle: KeyPackageBundle | None = None  # I: our KeyPackage and its keys
        self._mls_commit: bytes | None = None  # I: the commit that adds us
        self._mls_peer_kp: KeyPackage | None = None  # R: I's KeyPackage
        self._mls_ack: bytes | None = None  # R: the ack we expect
        self._mls_group: Group | None = None
        if initiator:
            self._send_request()

    # ------------------------------------------------------------------ contracts.Handshake
    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    @property
    def complete(self) -> bool:
        return self._session is not None

    def session(self) -> SecureSession:
        """The session once complete (also carried by :class:`HandshakeComplete`)."""
        if self._session is None:
            raise HandshakeUsageError("handshake not complete")
        return self._session

    def receive(self, pdu: bytes, now: float) -> list[HandshakeEvent]:
        self._check_open()
        if now >= self._deadline:
            return self.handle_timeout(now)
        try:
            obj = parse_pdu(pdu, self._cfg.limits)
            self._dispatch(obj)
        except _Refusal as refusal:
            return [self._fail(refusal.code, refusal.message, tell_peer=refusal.tell_peer)]
        except CryptoError as exc:  # malformed or hostile input: generic code, details local
            _log.debug("handshake: rejected PDU: %s", exc)
            return [self._fail("bad-pdu", f"handshake PDU rejected: {exc}", peer_message=_BAD_PDU)]
        except Exception as exc:  # anything unforeseen on hostile input: same path, fail closed
            _log.debug("handshake: unexpected %s on a PDU", type(exc).__name__, exc_info=True)
            reason = f"handshake PDU rejected ({type(exc).__name__})"
            return [self._fail("bad-pdu", reason, peer_message=_BAD_PDU)]
        if self._session is not None:
            return [HandshakeComplete(self._session)]
        return []

    def next_deadline(self) -> float | None:
        return None if self._ended else self._deadline

    def handle_timeout(self, now: float) -> list[HandshakeEvent]:
        if self._ended or now < self._deadline:
            return []
        limit = self._cfg.limits.handshake_timeout_s
        return [self._fail("timeout", f"handshake not complete after {limit:g} s", tell_peer=False)]

    # ------------------------------------------------------------------ plumbing
    @property
    def _ended(self) -> bool:
        return self._failed is not None or self._session is not None

    def _check_open(self) -> None:
        if self._failed is not None:
            raise HandshakeUsageError(f"handshake already failed: {self._failed}")
        if self._session is not None:
            raise HandshakeUsageError("handshake already complete; unexpected PDU")

    def _fail(
        self, code: str, message: str, *, tell_peer: bool = True, peer_message: str | None = None
    ) -> HandshakeFailed:
        """End the handshake: queue a ``protocol-error`` (``peer_message`` if given, else
        ``message``) unless ``tell_peer`` is false; the event carries the local detail."""
        self._failed = f"{code}: {message}"
        self._drop_secrets()
        error = None
        if tell_peer:
            told = message if peer_message is None else peer_message
            error = canonical(ProtocolError(code, told).to_json())
            self._out.append(error)
        return HandshakeFailed(self._failed, error)

    def _drop_secrets(self) -> None:
        """A failed handshake keeps no key material."""
        self._x3dh = self._ratchet = None
        self._own_mlkem = self._peer_mlkem = None
        self._own_mlkem_seed = self._mlkem_secret = None
        self._ephemeral = b""
        self._mls_bundle = self._mls_group = None
        self._mls_ack = self._mls_commit = None

    def _emit(self, body: Mapping[str, object], wire: Mapping[str, object] | None = None) -> None:
        self._absorb(body)
        self._out.append(canonical(wire if wire is not None else body))

    def _absorb(self, body: Mapping[str, object]) -> None:
        self._transcript = self._p.hash("sha256", self._transcript + canonical(body))

    def _dispatch(self, obj: dict[str, object]) -> None:
        kind = obj["type"]
        if kind == ProtocolError.TYPE:
            err = ProtocolError.from_json(obj)
            message = f"peer refused the handshake: {err.message}"
            raise _Refusal(err.code, message, tell_peer=False)
        expected = self._expected()
        if kind not in expected:
            raise _Refusal("unexpected-pdu", f"unexpected {kind!r}; expected one of {expected}")
        handler = {
            KeyExchangeRequest.TYPE: self._on_request,
            KeyExchangeResponse.TYPE: self._on_response,
            MLKEM_OFFER: self._on_mlkem_offer,
            MLKEM_ANSWER: self._on_mlkem_answer,
            SessionComplete.TYPE: self._on_complete,
            MlsKeyPackageRequest.TYPE: self._on_mls_request,
            MLS_KEY_PACKAGE: self._on_mls_key_package,
            MLS_COMMIT: self._on_mls_commit,
            MLS_WELCOME: self._on_mls_welcome,
            MlsWelcomeAck.TYPE: self._on_mls_ack,
        }[str(kind)]
        handler(obj)

    def _expected(self) -> tuple[str, ...]:
        if self._initiator:
            if self._x3dh is not None:  # only MLS continues after the response
                return (MLS_COMMIT,) if self._mls_commit is None else (MLS_WELCOME,)
            first = () if self._peer_mlkem is not None else (MLKEM_OFFER,)
            ask = () if self._mls_requested else (MlsKeyPackageRequest.TYPE,)
            return (*first, *ask, KeyExchangeResponse.TYPE)
        if self._x3dh is None:
            return (KeyExchangeRequest.TYPE,)
        if "ML-KEM" in self._layers and not self._mlkem_answered:
            return (MLKEM_ANSWER,)
        if "MLS" in self._layers and self._mls_peer_kp is None:
            return (MLS_KEY_PACKAGE,)
        return (SessionComplete.TYPE,) if self._mls_ack is None else (MlsWelcomeAck.TYPE,)

    # ------------------------------------------------------------------ initiator
    def _send_request(self) -> None:
        self._ephemeral = self._p.random(32)
        request = KeyExchangeRequest(
            self._cfg.offer(), self._identity.public, self._p.x25519_public(self._ephemeral)
        )
        self._emit(request.to_json())
        self._request_hash = self._transcript

    def _on_mlkem_offer(self, obj: dict[str, object]) -> None:
        """The responder's key: checked (size, modulus) and parsed once, kept for the session."""
        public = MlKemKeyExchange.from_json(obj).public_key
        self._peer_mlkem = self._p.mlkem768_encapsulation_key(public)
        self._absorb(obj)

    def _on_response(self, obj: dict[str, object]) -> None:
        response = KeyExchangeResponse.from_json(obj)
        self._refuse_own_identity(response.identity)
        self._check_choice(response)
        bundle = PrekeyBundle(
            response.identity, response.signed_prekey, response.signed_prekey_signature
        )
        x3dh = initiate(
            self._p, self._identity, self._ephemeral, bundle, context=self._request_hash
        )
        self._absorb(response.body())
        expected = self._p.hmac_sha256(x3dh.confirmation_key, _CONFIRM_R + self._transcript)
        if not hmac.compare_digest(expected, response.confirmation):
            raise _Refusal("confirmation-failed", "key confirmation failed")
        self._x3dh, self._peer_identity = x3dh, response.identity.encode()
        self._ratchet = RatchetSession.initiator(
            self._p, x3dh.shared_secret, response.signed_prekey, x3dh.associated_data,
            limits=self._cfg.limits,
        )  # fmt: skip
        if "ML-KEM" in self._layers:
            self._send_mlkem_answer()
        if "MLS" in self._layers:  # covered by our confirmation, like the ML-KEM answer
            self._mls_bundle = new_key_package(self._identity)
            message = key_package_message(self._mls_bundle)
            self._emit(MlsPayload(MLS_KEY_PACKAGE, message).to_json())
        mac = self._p.hmac_sha256(x3dh.confirmation_key, _CONFIRM_I + self._transcript)
        first = self._ratchet.encrypt(mac, _COMPLETE_AAD)
        self._out.append(canonical(SessionComplete(first).to_json()))
        if "MLS" not in self._layers:
            self._finish()  # with MLS: once the responder's Welcome is in

    def _check_choice(self, response: KeyExchangeResponse) -> None:
        """The responder's choice must be one we offered and must not drop our required layers."""
        if response.version != HANDSHAKE_VERSION:
            raise _Refusal("unsupported-version", f"handshake version {response.version!r}")
        if response.profile not in self._cfg.profiles:
            raise _Refusal("no-common-profile", f"peer chose {response.profile!r}, not offered")
        mine = set(self._cfg.layers)
        supported = set(self._cfg.supported_layers(response.profile))
        chosen = set(response.layers)
        in_order = list(response.layers) == [n for n in CANONICAL_ORDER if n in chosen]
        if not (mine <= chosen <= supported) or not in_order:
            raise _Refusal("no-common-layers", f"peer chose layers {list(response.layers)}")
        problem = replay_protection_problem(response.layers, response.profile)
        if problem is not None:
            raise _Refusal("no-common-layers", f"peer chose {problem}")
        if "ML-KEM" in chosen and self._peer_mlkem is None:
            raise _Refusal("bad-pdu", "ML-KEM negotiated but no mlkem-key-exchange received")
        if ("MLS" in chosen) != self._mls_requested:
            raise _Refusal("bad-pdu", "mls-key-package-request and the MLS choice disagree")
        self._profile, self._layers = response.profile, response.layers

    # ------------------------------------------------------------------ responder
    def _on_request(self, obj: dict[str, object]) -> None:
        request = KeyExchangeRequest.from_json(obj)
        self._refuse_own_identity(request.identity)
        self._absorb(obj)
        self._request_hash = self._transcript
        self._profile, self._layers = self._negotiate(request.offer)
        spk = SignedPrekey.generate(self._p, self._identity)
        x3dh = respond(
            self._p, self._identity, spk, request.identity, request.ephemeral,
            context=self._request_hash,
        )  # fmt: skip
        self._x3dh, self._peer_identity = x3dh, request.identity.encode()
        self._ratchet = RatchetSession.responder(
            self._p, x3dh.shared_secret, spk.private, x3dh.associated_data,
            limits=self._cfg.limits,
        )  # fmt: skip
        if "ML-KEM" in self._layers:
            self._own_mlkem = self._new_mlkem_key()
            self._emit(MlKemKeyExchange(MLKEM_OFFER, self._own_mlkem.public_bytes()).to_json())
        if "MLS" in self._layers:
            self._emit(MlsKeyPackageRequest(MLS_SUITE).to_json())
        response = KeyExchangeResponse(
            HANDSHAKE_VERSION, self._profile, self._layers, self._cfg.offer(),
            self._identity.public, spk.public, spk.signature,
        )  # fmt: skip
        self._absorb(response.body())
        mac = self._p.hmac_sha256(x3dh.confirmation_key, _CONFIRM_R + self._transcript)
        wire = replace(response, confirmation=mac)
        self._out.append(canonical(wire.to_json()))

    def _negotiate(self, peer: Offer) -> tuple[str, tuple[str, ...]]:
        if HANDSHAKE_VERSION not in peer.versions:
            raise _Refusal(
                "unsupported-version",
                f"no common handshake version: we speak {[HANDSHAKE_VERSION]}, "
                f"peer {list(peer.versions)}",
            )
        profile = next((p for p in peer.profiles if p in self._cfg.profiles), None)
        if profile is None:
            raise _Refusal(
                "no-common-profile",
                f"no common wire profile: we offer {list(self._cfg.profiles)}, "
                f"peer offers {list(peer.profiles)}",
            )
        required = set(self._cfg.layers) | set(peer.layers)
        layers = tuple(n for n in CANONICAL_ORDER if n in required)
        self._check_servable(layers, profile, peer)
        problem = replay_protection_problem(layers, profile)
        if problem is not None:
            raise _Refusal("no-common-layers", f"negotiated {problem}")
        return profile, layers

    def _check_servable(self, layers: tuple[str, ...], profile: str, peer: Offer) -> None:
        for name in layers:
            if name not in self._cfg.registry.names:
                raise _Refusal(
                    "no-common-layers",
                    str(LayerUnavailable(f"{name} layer not available in this version")),
                )
            missing = self._cfg.registry.missing_primitives(
                [name], profile, self._cfg.prims.capabilities
            )
            if missing:
                raise _Refusal(
                    "no-common-layers",
                    missing_primitive_message(
                        name, missing[name], self._cfg.prims.name, "this peer"
                    ),
                )
            if name not in peer.supported_layers:
                raise _Refusal(
                    "no-common-layers",
                    f"layer {name} is required here but peer backend {peer.backend!r} cannot "
                    f"serve it (it supports {list(peer.supported_layers)}); use a backend with "
                    f"the layer's primitives (e.g. 'pyca') or drop {name} from layers on both peers",
                )

    def _on_mlkem_answer(self, obj: dict[str, object]) -> None:
        if self._profile == PROFILE_V0:  # the initiator's key, for per-message encapsulation
            public = MlKemKeyExchange.from_json(obj).public_key
            self._peer_mlkem = self._p.mlkem768_encapsulation_key(public)
            self._absorb(obj)
        else:  # Profile-b1: the initiator's one encapsulation to our key
            encapsulated = MlKemEncapsulation.from_json(obj).encapsulated
            assert self._own_mlkem is not None
            shared = self._own_mlkem.decapsulate(encapsulated)
            self._own_mlkem = self._own_mlkem_seed = None  # never needed again
            self._absorb(obj)
            self._mlkem_secret = b1_session_secret(self._p, shared, self._transcript)
        self._mlkem_answered = True

    def _on_complete(self, obj: dict[str, object]) -> None:
        complete = SessionComplete.from_json(obj)
        assert self._x3dh is not None and self._ratchet is not None
        expected = self._p.hmac_sha256(self._x3dh.confirmation_key, _CONFIRM_I + self._transcript)
        try:
            confirmation = self._ratchet.decrypt(complete.ratchet_message, _COMPLETE_AAD)
        except CryptoError:
            raise _Refusal("confirmation-failed", "key confirmation failed") from None
        if not hmac.compare_digest(expected, confirmation):
            raise _Refusal("confirmation-failed", "key confirmation failed")
        if "MLS" in self._layers:
            self._start_group()
        else:
            self._finish()

    # ------------------------------------------------------------------ MLS (session_mls)
    def _session_id(self) -> str:
        return self._request_hash[:16].hex()

    def _on_mls_request(self, obj: dict[str, object]) -> None:
        """I: the responder wants our KeyPackage (sent with our answer, once MLS is chosen)."""
        if MlsKeyPackageRequest.from_json(obj).cipher_suite != MLS_SUITE:
            raise _Refusal("no-common-layers", f"MLS cipher suite other than {MLS_SUITE}")
        self._mls_requested = True
        self._absorb(obj)

    def _on_mls_key_package(self, obj: dict[str, object]) -> None:
        """R: the initiator's KeyPackage — suite 1, signed by the identity key it presented."""
        payload = MlsPayload.from_json(obj)
        self._mls_peer_kp = check_key_package(payload.message, self._peer_identity)
        self._absorb(obj)

    def _start_group(self) -> None:
        """R, after the initiator's confirmation: create the group, add the initiator, send
        commit and Welcome; the ack we expect is the exporter of the transcript so far."""
        assert self._mls_peer_kp is not None
        group, out = create_group(
            self._identity, self._peer_identity, self._session_id(), self._mls_peer_kp
        )
        assert out.welcome is not None
        self._emit(MlsPayload(MLS_COMMIT, out.commit).to_json())
        self._emit(MlsPayload(MLS_WELCOME, out.welcome).to_json())
        self._mls_group = group
        self._mls_ack = group.export_secret(_MLS_ACK_LABEL, self._transcript, 32)

    def _on_mls_commit(self, obj: dict[str, object]) -> None:
        assert self._mls_bundle is not None
        message = MlsPayload.from_json(obj).message
        sid = self._session_id()
        self._mls_commit = check_commit(message, sid, self._mls_bundle.key_package)
        self._absorb(obj)

    def _on_mls_welcome(self, obj: dict[str, object]) -> None:
        """I: join, check it is this session's group and commit, acknowledge, complete."""
        assert self._mls_bundle is not None and self._mls_commit is not None
        welcome = MlsPayload.from_json(obj).message
        self._absorb(obj)
        own = self._identity.public.encode()
        group = accept_welcome(
            welcome, self._mls_commit, self._mls_bundle, own, self._peer_identity,
            self._session_id(),
        )  # fmt: skip
        ack = group.export_secret(_MLS_ACK_LABEL, self._transcript, 32)
        self._out.append(canonical(MlsWelcomeAck(ack).to_json()))
        self._mls_group = group
        self._finish()

    def _on_mls_ack(self, obj: dict[str, object]) -> None:
        assert self._mls_ack is not None
        if not hmac.compare_digest(MlsWelcomeAck.from_json(obj).confirmation, self._mls_ack):
            raise _Refusal("confirmation-failed", "MLS welcome acknowledgement failed")
        self._finish()

    # ------------------------------------------------------------------ both
    def _refuse_own_identity(self, peer: PublicIdentity) -> None:
        """A peer presenting our own identity is our PDUs reflected back (§2.2: ``bad-pdu``)."""
        if hmac.compare_digest(peer.encode(), self._identity.public.encode()):
            raise _Refusal("bad-pdu", "peer presented our own identity (reflected handshake)")

    def _new_mlkem_key(self) -> MlKemDecapsulationKey:
        """A fresh ML-KEM-768 key pair for this handshake (seed from the injected RNG)."""
        self._own_mlkem_seed = self._p.random(64)
        return self._p.mlkem768_decapsulation_key(self._own_mlkem_seed)

    def _send_mlkem_answer(self) -> None:
        assert self._peer_mlkem is not None
        if self._profile == PROFILE_V0:  # our key, for the responder's per-message encapsulation
            self._own_mlkem = self._new_mlkem_key()
            self._emit(MlKemKeyExchange(MLKEM_ANSWER, self._own_mlkem.public_bytes()).to_json())
            return
        shared, encapsulated = self._peer_mlkem.encapsulate()  # Profile-b1: once per session
        self._emit(MlKemEncapsulation(encapsulated).to_json())
        self._mlkem_secret = b1_session_secret(self._p, shared, self._transcript)

    def _finish(self) -> None:
        assert self._x3dh is not None
        mlkem = None
        if "ML-KEM" in self._layers and self._profile == PROFILE_V0:
            assert self._peer_mlkem is not None and self._own_mlkem is not None
            mlkem = MlKemPreparedKeys(self._peer_mlkem, self._own_mlkem, self._own_mlkem_seed)
        session_id = self._session_id()
        secrets = SessionSecrets(
            self._initiator, session_id, self._x3dh.layer_secret,
            self._ratchet, mlkem, self._mlkem_secret, self._cfg.limits, self._mls_group,
        )  # fmt: skip
        manager = self._cfg.registry.build(
            self._layers, self._p, self._profile, secrets, self._cfg.limits
        )
        identities = SessionIdentities(
            self._identity.public.encode(), self._peer_identity, session_id
        )
        self._session = CascadeSession(
            self._p, manager, codec_for(self._profile, self._cfg.limits), identities,
            clock=self._cfg.clock, limits=self._cfg.limits,
        )  # fmt: skip
        self._drop_secrets()  # the session holds what it needs


def missing_primitive_message(layer: str, missing: frozenset[str], backend: str, who: str) -> str:
    """The refusal text for a layer a backend cannot serve: names primitive and alternative."""
    prims = ", ".join(sorted(missing))
    return (
        f"layer {layer} needs primitive(s) {prims}, which backend {backend!r} ({who}) does not "
        f"provide; use the 'pyca' backend (enkrypted-crypto) or remove {layer} from layers"
    )
