"""Sigstore bundles of a release: offline verification with sigstore-python, and verdicts.

:func:`verify_sigstore_bundle` checks one bundle against the trust root shipped inside
sigstore-python. :class:`SigstoreVerdicts` is the small file of "this exact bundle passed full
verification for this wheel, identity and trust root" records that lets load time skip the ~0.6 s
import of sigstore-python (see docs/trust-model.md, "Sigstore").
"""

from __future__ import annotations

__all__ = [
    "SigstoreVerdicts",
    "VerifiedSigstore",
    "bundle_signer",
    "sigstore_cache_key",
    "sigstore_trust_root_sha256",
    "verify_sigstore_bundle",
]

import base64
import contextlib
import functools
import hashlib
import importlib.util
import json
import re
from collections.abc import Container, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from .._state.files import read_home_file, write_atomic
from ..errors import HomeError, ProvenanceError
from ..limits import LIMITS
from .dsse import SIGSTORE_KIND
from .dsse import b64decode_field as _b64decode
from .dsse import fail as _fail
from .policy import SIGSTORE_INSTANCES, SigstoreIdentity, TrustPolicy

if TYPE_CHECKING:
    from sigstore.verify import Verifier

    from .provenance import VerifiedProvenance
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")

SIGSTORE_TUF_URLS = {
    "production": "https://tuf-repo-cdn.sigstore.dev",
    "staging": "https://tuf-repo-cdn.sigstage.dev",
}
_SAN_OTHERNAME_OID = "1.3.6.1.4.1.57264.1.7"
_ISSUER_V1_OID = "1.3.6.1.4.1.57264.1.1"
_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"


@functools.cache
def _embedded_trust_root(instance: str) -> tuple[Path, str] | None:
    """Path and sha256 of the ``trusted_root.json`` that sigstore-python ships for ``instance``,
    found without importing sigstore-python (its import costs ~0.6 s); None if it is not there."""
    try:
        spec = importlib.util.find_spec("sigstore")
    except (ImportError, ValueError):
        return None
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(
            base, "_store", quote(SIGSTORE_TUF_URLS[instance], safe=""), "trusted_root.json"
        )
        try:
            return path, hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
    return None


def sigstore_trust_root_sha256(instance: str = "production") -> str | None:
    """sha256 of the trust root shipped in the installed sigstore-python (None: not installed)."""
    if instance not in SIGSTORE_INSTANCES:
        raise ValueError(f"unknown Sigstore instance {instance!r}")
    root = _embedded_trust_root(instance)
    return root[1] if root else None


@functools.cache
def _verifier(instance: str, offline: bool) -> Verifier:
    """A sigstore-python verifier. Offline: exactly the trust root shipped in sigstore-python
    (``Verifier.production(offline=True)`` would instead read ``~/.cache/sigstore-python``, which
    it does not verify in offline mode, and write that cache). Online: a TUF refresh first."""
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

    if not offline:
        if instance == "staging":
            return Verifier.staging(offline=False)
        return Verifier.production(offline=False)
    root = _embedded_trust_root(instance)
    if root is None:
        raise _fail(
            f"sigstore-python ships no {instance} trust root where expected "
            f"(sigstore/_store/{quote(SIGSTORE_TUF_URLS[instance], safe='')}/trusted_root.json)"
        )
    return Verifier(trusted_root=TrustedRoot.from_file(str(root[0])))


def verify_sigstore_bundle(
    bundle_bytes: bytes,
    artifact_bytes_or_digest: bytes | str,
    identity: str,
    issuer: str,
    *,
    offline: bool = True,
    staging: bool = False,
) -> SigstoreIdentity:
    """Verify a Sigstore bundle for an artifact and an exact identity (SAN) + OIDC issuer.

    ``artifact_bytes_or_digest`` is the artifact's bytes, or its digest as ``"sha256:<hex>"``.
    ``offline=True`` (the default) verifies against the trust root file shipped inside
    sigstore-python for the production instance (``staging=True``: the staging instance) and never
    touches the network or the user's sigstore cache; ``offline=False`` uses
    ``Verifier.production()`` / ``Verifier.staging()``, which refresh the trust root over TUF.
    Any failure - sigstore-python missing, malformed bundle, certificate chain, transparency-log
    proof, digest or identity - raises :class:`ProvenanceError` with sigstore's reason.
    """
    instance = "staging" if staging else "production"
    try:
        from sigstore.errors import Error as SigstoreError
        from sigstore.hashes import Hashed
        from sigstore.models import Bundle
        from sigstore.verify import policy
        from sigstore_models.common.v1 import HashAlgorithm
    except ImportError as exc:
        raise _fail(
            "sigstore-python is not installed, so a Sigstore bundle cannot be verified",
            fix="install it into the shell's environment: pip install 'sigstore>=4,<5'",
        ) from exc

    artifact: bytes | Hashed
    if isinstance(artifact_bytes_or_digest, str):
        if not _DIGEST.match(artifact_bytes_or_digest):
            raise _fail("sigstore: artifact digest must be 'sha256:<64 hex>'")
        raw = bytes.fromhex(artifact_bytes_or_digest.removeprefix("sha256:"))
        artifact = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=raw)
    else:
        artifact = artifact_bytes_or_digest
    try:
        verifier = _verifier(instance, offline)
    except ProvenanceError:
        raise
    except Exception as exc:
        raise _fail(
            f"cannot load the Sigstore {instance} trust root: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        bundle = Bundle.from_json(bundle_bytes)
        verifier.verify_artifact(
            artifact, bundle, policy.Identity(identity=identity, issuer=issuer)
        )
    except SigstoreError as exc:
        raise _fail(f"sigstore bundle rejected: {exc}") from exc
    except Exception as exc:  # malformed input can surface as any parser error: fail closed
        raise _fail(f"sigstore bundle rejected: {type(exc).__name__}: {exc}") from exc
    return SigstoreIdentity(identity=identity, issuer=issuer, instance=instance)


class VerifiedSigstore(NamedTuple):
    """One Sigstore bundle of a release that verified for the wheel under the policy."""

    signer: SigstoreIdentity
    artifact: str  # "sha256:<wheel sha256>"
    bundle_sha256: str  # over the bundle's canonical JSON
    cache_key: str | None  # None: verified online (trust root not the shipped one); not cached
    cached: bool  # True: accepted from a verdict of an earlier full verification (SigstoreVerdicts)


def sigstore_cache_key(
    bundle_sha256: str, artifact: str, signer: SigstoreIdentity, trust_root_sha256: str
) -> str:
    """What a verdict vouches for: this exact bundle, artifact digest, identity, issuer and
    instance, under this exact trust root. Any change of one of them is a different key."""
    body = {
        "artifact": artifact,
        "bundle_sha256": bundle_sha256,
        "format": 1,
        "identity": signer.identity,
        "instance": signer.instance,
        "issuer": signer.issuer,
        "trust_root_sha256": trust_root_sha256,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()


def _sigstore_bundles(document: Any) -> list[Any]:
    """The attestations of every ``sigstore`` attestation bundle of a provenance object."""
    if not isinstance(document, dict) or "payloadType" in document:
        return []  # a bare DSSE envelope carries no Sigstore bundle
    found: list[Any] = []
    for entry in document["attestation_bundles"]:
        publisher = entry.get("publisher") if isinstance(entry, dict) else None
        if not isinstance(publisher, dict) or publisher.get("kind") != SIGSTORE_KIND:
            continue
        attestations = entry.get("attestations")
        if not isinstance(attestations, list) or not attestations:
            raise _fail("provenance: sigstore attestation bundle without attestations")
        found.extend(attestations)
    if len(found) > LIMITS.provenance_envelopes:
        raise _fail(f"provenance has more than {LIMITS.provenance_envelopes} Sigstore bundles")
    return found


def _bundle_digest(bundle: Any, label: str) -> str:
    """The sha256 (hex) a message-signature bundle says it signs."""
    if not isinstance(bundle, dict):
        raise _fail(f"{label} is not a JSON object")
    if "dsseEnvelope" in bundle:
        raise _fail(
            f"{label} carries a DSSE envelope; only bundles that sign the wheel itself "
            "(messageSignature, as `sigstore sign` makes) are supported"
        )
    signature = bundle.get("messageSignature")
    digest = signature.get("messageDigest") if isinstance(signature, dict) else None
    if not isinstance(digest, dict) or digest.get("algorithm") != "SHA2_256":
        raise _fail(f"{label} has no SHA2_256 messageSignature.messageDigest")
    raw = _b64decode(digest.get("digest"), f"{label} messageDigest")
    if len(raw) != 32:
        raise _fail(f"{label} messageDigest is not a sha256")
    return raw.hex()


def _der_utf8(data: bytes) -> str:
    """A DER UTF8String's text (tag 0x0C, short or long length); other bytes decoded as they are."""
    if len(data) >= 2 and data[0] == 0x0C:
        length, start = data[1], 2
        if length & 0x80:
            count = length & 0x7F
            length, start = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
        return data[start : start + length].decode("utf-8", "replace")
    return data.decode("utf-8", "replace")


def bundle_signer(bundle: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """SANs and OIDC issuer of the bundle's leaf certificate; ``((), None)`` if unreadable.

    Used by the registry to name a publisher, and here only to choose which policy entries to try and to name the signer in errors: acceptance is
    always sigstore-python's ``policy.Identity`` check inside the full verification."""
    from cryptography import x509

    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict):
        return (), None
    try:
        if "certificate" in material:
            raw = material["certificate"]["rawBytes"]
        else:
            raw = material["x509CertificateChain"]["certificates"][0]["rawBytes"]
        cert = x509.load_der_x509_certificate(base64.b64decode(raw, validate=True))
        sans: list[str] = []
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            pass
        else:
            sans += ext.get_values_for_type(x509.RFC822Name)
            sans += ext.get_values_for_type(x509.UniformResourceIdentifier)
            sans += [
                _der_utf8(other.value)
                for other in ext.get_values_for_type(x509.OtherName)
                if other.type_id.dotted_string == _SAN_OTHERNAME_OID
            ]
        issuer: str | None = None
        for oid in (_ISSUER_V2_OID, _ISSUER_V1_OID):
            try:
                value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
            except x509.ExtensionNotFound:
                continue
            data = getattr(value, "value", b"")
            issuer = _der_utf8(data) if oid == _ISSUER_V2_OID else data.decode("utf-8", "replace")
            break
    except Exception:  # unreadable certificate: no candidates named, sigstore-python decides
        return (), None
    return tuple(sans), issuer


def _verify_bundle(
    bundle: Any,
    label: str,
    proof: VerifiedProvenance,
    policy: TrustPolicy,
    slot: str,
    offline: bool,
    verified: Container[str],
) -> VerifiedSigstore:
    artifact = f"sha256:{proof.wheel_sha256}"
    signed = _bundle_digest(bundle, label)
    if signed != proof.wheel_sha256:
        raise _fail(
            f"{label} signs sha256:{signed}, not this wheel ({artifact})",
            plugin=proof.plugin,
            fix="the bundle is for another file; the registry must publish the wheel's own bundle",
        )
    canonical = json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode("utf-8")
    bundle_sha256 = hashlib.sha256(canonical).hexdigest()
    allowed = policy.sigstore_identities(slot)
    if offline:  # a verdict of an earlier full verification of exactly this stands for it
        for signer in allowed:
            root = _embedded_trust_root(signer.instance)
            key = sigstore_cache_key(bundle_sha256, artifact, signer, root[1]) if root else None
            if key is not None and key in verified:
                return VerifiedSigstore(signer, artifact, bundle_sha256, key, cached=True)
    sans, issuer = bundle_signer(bundle)
    named = f"{' / '.join(sans) or 'an unreadable certificate'} (issuer {issuer or 'unknown'})"
    elsewhere = sorted({x for san in sans for x in policy.slots_of_sigstore(san, issuer or "")})
    also = f" (it is listed for {'/'.join(elsewhere)})" if elsewhere else ""
    if not allowed:
        raise _fail(
            f"{label} is signed by {named}, but trust.toml lists no Sigstore identity for slot "
            f"{slot}{also}; a Sigstore bundle that is present must verify",
            plugin=proof.plugin,
            fix=f"if you trust that signer, add {{ identity = …, issuer = … }} to the sigstore "
            f"list of [slots.{slot}] in trust.toml",
        )
    candidates = (
        [s for s in allowed if s.identity in sans and s.issuer == issuer] if sans else allowed
    )
    if not candidates:
        raise _fail(
            f"{label} is signed by {named}, which trust.toml does not list for slot {slot}{also}",
            plugin=proof.plugin,
            fix=f"check the sigstore list of [slots.{slot}] in trust.toml and the publisher",
        )
    problems: list[str] = []
    for signer in candidates:
        try:
            verify_sigstore_bundle(
                canonical,
                artifact,
                signer.identity,
                signer.issuer,
                offline=offline,
                staging=signer.instance == "staging",
            )
        except ProvenanceError as exc:
            problems.append(f"as {signer}: {exc.message}")
            if exc.fix:  # sigstore-python missing: say how to fix it
                raise _fail(f"{label}: {exc.message}", plugin=proof.plugin, fix=exc.fix) from exc
            continue
        root = _embedded_trust_root(signer.instance) if offline else None
        key = sigstore_cache_key(bundle_sha256, artifact, signer, root[1]) if root else None
        return VerifiedSigstore(signer, artifact, bundle_sha256, key, cached=False)
    raise _fail(
        f"{label} does not verify: {'; '.join(problems)}",
        plugin=proof.plugin,
        fix="reinstall from the registry; if it persists, the publisher's bundle is bad",
    )


class SigstoreVerdicts(Container[str]):
    """``HOME/sigstore-verified.json``: the cache keys of Sigstore bundles that passed a full
    verification on this machine (at install, or at a load that found no verdict).

    The file is read lazily (only when a release carries a bundle) and never trusted beyond what
    the profile home is trusted for anyway: whoever can write it can also write ``trust.toml``.
    An unreadable or malformed file counts as empty, which costs a full verification, never a
    pass. At most ``LIMITS.sigstore_verdicts`` verdicts are kept (oldest dropped).
    """

    FILENAME = "sigstore-verified.json"

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / self.FILENAME
        self._entries: dict[str, dict[str, str]] | None = None

    def _load(self) -> dict[str, dict[str, str]]:
        if self._entries is None:
            entries: dict[str, dict[str, str]] = {}
            try:
                data = read_home_file(self.path, limit=LIMITS.sigstore_verdicts_bytes)
                if data is not None:
                    doc = json.loads(data)
                    if isinstance(doc, dict) and doc.get("format") == 1:
                        raw = doc.get("verdicts")
                        if isinstance(raw, dict):
                            entries = {
                                k: v
                                for k, v in raw.items()
                                if _HEX64.match(k) and isinstance(v, dict)
                            }
            except (HomeError, ValueError, RecursionError):  # a cache: costs time, never a pass
                entries = {}
            self._entries = entries
        return self._entries

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._load()

    def remember(self, results: Iterable[VerifiedSigstore]) -> int:
        """Record the full verifications among ``results``; return how many were new."""
        fresh = [r for r in results if not r.cached and r.cache_key]
        if not fresh:
            return 0  # nothing new: the file is not even read
        entries = self._load()
        new = [r for r in fresh if r.cache_key not in entries]
        if not new:
            return 0
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for result in new:
            assert result.cache_key is not None
            entries[result.cache_key] = {
                "artifact": result.artifact,
                "bundle_sha256": result.bundle_sha256,
                "identity": result.signer.identity,
                "issuer": result.signer.issuer,
                "instance": result.signer.instance,
                "verified_at": now,
            }
        while len(entries) > LIMITS.sigstore_verdicts:
            oldest = min(entries, key=lambda k: str(entries[k].get("verified_at", "")))
            del entries[oldest]
        data = json.dumps({"format": 1, "verdicts": entries}, indent=1, sort_keys=True)
        with contextlib.suppress(HomeError):  # a verdict only saves time at the next load
            write_atomic(self.path, data.encode("utf-8"))
        return len(new)
