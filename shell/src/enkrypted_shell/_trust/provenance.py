"""Verifying a plugin's signed provenance: pure functions over bytes, fail-closed.

The registry serves ``<wheel>.provenance``, a PEP 740-shaped provenance object::

    {"version": 1, "attestation_bundles": [
        {"publisher": {"kind": "enkrypted-key", "keyid": "<tuf keyid>", "slot": "crypto"},
         "attestations": [<DSSE envelope>]},
        {"publisher": {"kind": "sigstore", …}, "attestations": [<sigstore bundle>]}   # optional
    ]}

Each DSSE envelope (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md) carries an
in-toto Statement v1 (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md) whose
single subject is the wheel (filename + sha256) and whose predicate (type
``https://enkrypted.dev/plugin-provenance/v1``) names the slot, plugin, distribution, version, the
manifest digest, the content digest and every file's sha256.

:func:`verify_provenance` accepts the provenance object or a bare envelope and checks the DSSE part.
:func:`verify_release` is what install and load use: the DSSE part as :func:`verify_provenance`,
**and** every Sigstore bundle of the object (publisher kind ``sigstore``), each verified offline by
:func:`verify_sigstore_bundle` (sigstore-python, the trust root shipped inside it) for the wheel's
sha256 and an identity that ``trust.toml`` lists for the slot; a slot listing Sigstore identities
requires such a bundle.

Everything here is a pure function over bytes except :class:`SigstoreVerdicts`, the small file of
"this exact bundle passed full verification for this wheel, identity and trust root" records that
lets load time skip the ~0.6 s import of sigstore-python (see docs/trust-model.md, "Sigstore").
"""

from __future__ import annotations

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "SigstoreVerdicts",
    "VerifiedProvenance",
    "VerifiedRelease",
    "VerifiedSigstore",
    "bundle_signer",
    "content_digest",
    "pae",
    "sigstore_cache_key",
    "sigstore_trust_root_sha256",
    "verify_provenance",
    "verify_release",
    "verify_sigstore_bundle",
]

import base64
import binascii
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

from cryptography.exceptions import InvalidSignature
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .._pipeline.integrity import content_digest as _record_digest
from .._state.files import write_atomic
from ..errors import ProvenanceError
from .policy import SIGSTORE_INSTANCES, PublisherKey, SigstoreIdentity, TrustPolicy

if TYPE_CHECKING:
    from sigstore.verify import Verifier

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://enkrypted.dev/plugin-provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PUBLISHER_KIND = "enkrypted-key"
SIGSTORE_KIND = "sigstore"

MAX_PROVENANCE_BYTES = 8 * 1024 * 1024
MAX_ENVELOPES = 16
MAX_SIGNATURES = 16
MAX_FILES = 20_000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class VerifiedProvenance(NamedTuple):
    """What a verified provenance statement says, signer included."""

    plugin: str
    distribution: str
    version: str
    slot: str
    signer_keyid: str
    content_digest: str
    files: tuple[tuple[str, str], ...]  # (path, sha256 hex), RECORD order not implied
    wheel_filename: str
    wheel_sha256: str
    manifest_sha256: str
    published_at: str


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding (DSSE protocol.md, "Signature definition").

    ``PAE(type, body) = "DSSEv1" + SP + LEN(type) + SP + type + SP + LEN(body) + SP + body``, with
    LEN the byte length as ASCII decimal without leading zeros and SP one space (0x20). The type is
    UTF-8 encoded before its length is taken.
    """
    type_bytes = payload_type.encode("utf-8")
    return b" ".join(
        [b"DSSEv1", str(len(type_bytes)).encode(), type_bytes, str(len(payload)).encode(), payload]
    )


def _hex_to_b64(hexdigest: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hexdigest)).rstrip(b"=").decode("ascii")


def content_digest(files: Iterable[tuple[str, str]]) -> str:
    """The shell's content digest (:func:`enkrypted_shell._pipeline.integrity.content_digest`) over
    ``(path, sha256 hex)`` pairs as the provenance predicate lists them."""
    return _record_digest((path, _hex_to_b64(digest)) for path, digest in files)


def _fail(message: str, plugin: str | None = None, fix: str | None = None) -> ProvenanceError:
    return ProvenanceError(message, plugin=plugin, fix=fix)


def _b64decode(text: object, what: str) -> bytes:
    # DSSE allows standard or URL-safe base64 (envelope.md); accept both, padding required.
    if not isinstance(text, str):
        raise _fail(f"provenance: {what} is not a base64 string")
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(f"provenance: {what} is not valid base64") from exc


def _envelopes(document: Any) -> list[dict[str, Any]]:
    """Our DSSE envelopes from a PEP 740 provenance object, or the bare envelope itself."""
    if not isinstance(document, dict):
        raise _fail("provenance is not a JSON object")
    if "payloadType" in document:
        return [document]
    if document.get("version") != 1 or not isinstance(document.get("attestation_bundles"), list):
        raise _fail("provenance is neither a DSSE envelope nor a version-1 provenance object")
    found: list[dict[str, Any]] = []
    for bundle in document["attestation_bundles"]:
        publisher = bundle.get("publisher") if isinstance(bundle, dict) else None
        if not isinstance(publisher, dict) or publisher.get("kind") != PUBLISHER_KIND:
            continue  # other kinds (e.g. sigstore) are verified by their own function
        attestations = bundle.get("attestations")
        if not isinstance(attestations, list):
            raise _fail("provenance: attestation bundle without an attestations list")
        found.extend(a for a in attestations if isinstance(a, dict))
    if not found:
        kinds = _publisher_kinds(document)
        also = f" (it carries only: {', '.join(kinds)})" if kinds else ""
        raise _fail(
            f"provenance has no {PUBLISHER_KIND} attestation (DSSE envelope){also}; the signed "
            "statement is required, it carries the file list that load time checks"
        )
    if len(found) > MAX_ENVELOPES:
        raise _fail(f"provenance has more than {MAX_ENVELOPES} envelopes")
    return found


def _publisher_kinds(document: dict[str, Any]) -> list[str]:
    kinds = []
    for bundle in document["attestation_bundles"]:
        publisher = bundle.get("publisher") if isinstance(bundle, dict) else None
        kind = publisher.get("kind") if isinstance(publisher, dict) else None
        if isinstance(kind, str) and kind[:40] not in kinds:
            kinds.append(kind[:40])
    return kinds


def _check_signatures(
    envelope: dict[str, Any], policy: TrustPolicy, slot: str
) -> tuple[str, bytes]:
    """Return (signer keyid, payload) for the first signature valid under the slot's policy."""
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise _fail(
            f"provenance payloadType is {envelope.get('payloadType')!r}, not {PAYLOAD_TYPE}"
        )
    payload = _b64decode(envelope.get("payload"), "DSSE payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures or len(signatures) > MAX_SIGNATURES:
        raise _fail("provenance envelope has no signatures (or too many)")
    message = pae(PAYLOAD_TYPE, payload)
    problems: list[str] = []
    for entry in signatures:
        if not isinstance(entry, dict):
            raise _fail("provenance envelope: a signature is not an object")
        keyid = entry.get("keyid")
        sig = _b64decode(entry.get("sig"), "DSSE signature")
        if not isinstance(keyid, str) or not keyid:
            problems.append("a signature without keyid (the policy names keys by keyid)")
            continue
        allowed = policy.key(slot, keyid)
        if allowed is not None:
            if _valid(allowed, sig, message):
                return keyid, payload
            problems.append(f"bad DSSE signature by the {slot} key {keyid[:16]}…")
            continue
        other = policy.any_key(keyid)
        owners = "/".join(policy.slots_of_key(keyid))
        if other is not None and _valid(other, sig, message):
            problems.append(
                f"provenance for {slot} plugin signed by the {owners} key {keyid[:16]}…, "
                f"which trust.toml does not allow for slot {slot}"
            )
        elif other is not None:
            problems.append(f"bad DSSE signature by key {keyid[:16]}… (a {owners} key)")
        else:
            problems.append(f"signed by key {keyid[:16]}…, which trust.toml does not list")
    raise _fail(
        "; ".join(problems), fix=f"check [slots.{slot}] keys in trust.toml and the publisher"
    )


def _valid(key: PublisherKey, signature: bytes, message: bytes) -> bool:
    try:
        key.public_key().verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _statement(payload: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse and shape-check the in-toto Statement; return (subject, predicate)."""
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail("signed payload is not JSON") from exc
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise _fail(f"signed payload is not an in-toto Statement v1 ({STATEMENT_TYPE})")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise _fail(f"predicateType {statement.get('predicateType')!r} is not {PREDICATE_TYPE}")
    subjects, predicate = statement.get("subject"), statement.get("predicate")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise _fail("subject mismatch: the statement must have exactly one subject (the wheel)")
    subject = subjects[0]
    digest = subject.get("digest")
    sha = digest.get("sha256") if isinstance(digest, dict) else None
    if (
        not isinstance(subject.get("name"), str)
        or not isinstance(sha, str)
        or not _HEX64.match(sha)
    ):
        raise _fail("subject mismatch: subject needs a wheel filename and a sha256 digest")
    if not isinstance(predicate, dict):
        raise _fail("statement predicate is not an object")
    return subject, predicate


def _field(predicate: dict[str, Any], key: str) -> str:
    value = predicate.get(key)
    if not isinstance(value, str) or not value:
        raise _fail(f"provenance predicate field {key!r} is missing or not a string")
    return value


def _files(predicate: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = predicate.get("files")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_FILES:
        raise _fail("provenance predicate has no file list")
    files: list[tuple[str, str]] = []
    for item in raw:
        ok = isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
        if not ok or not isinstance(item[1], str) or not _HEX64.match(item[1]):
            raise _fail(f"provenance file entry {item!r} is not [path, sha256-hex]")
        files.append((item[0], item[1]))
    return tuple(files)


def _check_subject(subject: dict[str, Any], distribution: str, version: str) -> None:
    name = subject["name"]
    try:
        wheel_name, wheel_version, _, _ = parse_wheel_filename(name)
        same = wheel_name == canonicalize_name(distribution) and wheel_version == Version(version)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise _fail(f"subject mismatch: {name!r} is not a wheel filename") from exc
    if not same:
        raise _fail(f"subject mismatch: {name} is not {distribution} {version}")


def _parse_predicate(
    subject: dict[str, Any], predicate: dict[str, Any], signer: str
) -> VerifiedProvenance:
    files = _files(predicate)
    result = VerifiedProvenance(
        plugin=_field(predicate, "plugin"),
        distribution=_field(predicate, "distribution"),
        version=_field(predicate, "version"),
        slot=_field(predicate, "slot"),
        signer_keyid=signer,
        content_digest=_field(predicate, "content_digest"),
        files=files,
        wheel_filename=subject["name"],
        wheel_sha256=subject["digest"]["sha256"],
        manifest_sha256=_field(predicate, "manifest_sha256"),
        published_at=_field(predicate, "published_at"),
    )
    _check_subject(subject, result.distribution, result.version)
    if not _DIGEST.match(result.content_digest) or content_digest(files) != result.content_digest:
        raise _fail(
            "digest mismatch: the signed content digest does not match the signed file list"
        )
    if predicate.get("publisher") != signer:
        raise _fail(
            f"predicate names publisher {predicate.get('publisher')!r} but {signer} signed it"
        )
    manifest = predicate.get("manifest")
    declared = manifest.get("plugin") if isinstance(manifest, dict) else None
    if not isinstance(declared, dict) or (declared.get("slot"), declared.get("name")) != (
        result.slot,
        result.plugin,
    ):
        raise _fail("provenance manifest disagrees with the predicate's slot/plugin")
    return result


def _verify_envelope(
    envelope: dict[str, Any], policy: TrustPolicy, slot: str
) -> VerifiedProvenance:
    signer, payload = _check_signatures(envelope, policy, slot)
    subject, predicate = _statement(payload)
    result = _parse_predicate(subject, predicate, signer)
    if result.slot != slot:
        raise _fail(
            f"provenance is for a {result.slot} plugin but {result.plugin} is loaded as {slot}",
            plugin=result.plugin,
        )
    return result


def claimed_paths(document: Any) -> tuple[str, ...]:
    """Every file path the statements of a provenance document list, *without* verifying any
    signature - only for refusing imports (a larger set refuses more), never for admitting code.
    Empty if the document cannot be read."""
    paths: list[str] = []
    try:
        for envelope in _envelopes(document):
            payload = _b64decode(envelope.get("payload"), "payload")
            _, predicate = _statement(payload)
            paths.extend(path for path, _ in _files(predicate))
    except ProvenanceError:
        return ()
    return tuple(paths)


def verify_provenance(
    envelope_bytes: bytes,
    *,
    policy: TrustPolicy,
    slot: str,
    wheel_sha256: str | None = None,
    content_digest: str | None = None,
    wheel_filename: str | None = None,
) -> VerifiedProvenance:
    """Verify provenance for a plugin of ``slot``; raise :class:`ProvenanceError` naming the failure.

    Order (each step fails closed): size and JSON → DSSE signature by a key ``policy`` allows for
    ``slot`` → in-toto Statement shape and predicate type → predicate consistent with itself
    (subject = distribution/version, content digest = file list, signer = publisher) → slot →
    the caller's expectations (wheel filename, wheel sha256, content digest of the installed dist).
    """
    return _verify_document(
        _load(envelope_bytes), policy, slot, wheel_sha256, content_digest, wheel_filename
    )


def _load(data: bytes) -> Any:
    if len(data) > MAX_PROVENANCE_BYTES:
        raise _fail(f"provenance larger than {MAX_PROVENANCE_BYTES} bytes")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail("provenance is not valid JSON") from exc


def _verify_document(
    document: Any,
    policy: TrustPolicy,
    slot: str,
    wheel_sha256: str | None,
    content_digest: str | None,
    wheel_filename: str | None,
) -> VerifiedProvenance:
    errors: list[ProvenanceError] = []
    result: VerifiedProvenance | None = None
    for envelope in _envelopes(document):
        try:
            result = _verify_envelope(envelope, policy, slot)
            break
        except ProvenanceError as exc:
            errors.append(exc)
    if result is None:
        raise errors[0] if len(errors) == 1 else _fail("; ".join(e.message for e in errors))
    _check_expectations(result, wheel_sha256, content_digest, wheel_filename)
    return result


def _check_expectations(
    result: VerifiedProvenance,
    wheel_sha256: str | None,
    digest: str | None,
    wheel_filename: str | None,
) -> None:
    who = f"{result.distribution} {result.version}"
    if wheel_filename is not None and wheel_filename != result.wheel_filename:
        raise _fail(
            f"subject mismatch: provenance is for {result.wheel_filename}, not {wheel_filename}",
            plugin=result.plugin,
        )
    if wheel_sha256 is not None and wheel_sha256.lower() != result.wheel_sha256:
        raise _fail(
            f"digest mismatch: {who} wheel sha256 is {wheel_sha256}, provenance signs "
            f"{result.wheel_sha256}",
            plugin=result.plugin,
            fix="reinstall the plugin from the registry",
        )
    if digest is not None and digest != result.content_digest:
        raise _fail(
            f"digest mismatch: installed {who} has content digest {digest}, provenance signs "
            f"{result.content_digest}",
            plugin=result.plugin,
            fix="reinstall the plugin from the registry",
        )


# ------------------------------------------------------------------------------------ Sigstore
# The TUF repositories whose trust roots sigstore-python ships (sigstore/_store/<quoted URL>/).
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


class VerifiedRelease(NamedTuple):
    """A release whose DSSE provenance and every Sigstore bundle verified."""

    provenance: VerifiedProvenance
    sigstore: tuple[VerifiedSigstore, ...]


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
    if len(found) > MAX_ENVELOPES:
        raise _fail(f"provenance has more than {MAX_ENVELOPES} Sigstore bundles")
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


def verify_release(
    provenance_bytes: bytes,
    *,
    policy: TrustPolicy,
    slot: str,
    wheel_sha256: str,
    content_digest: str | None = None,
    wheel_filename: str | None = None,
    offline: bool = True,
    sigstore_verified: Container[str] = frozenset(),
) -> VerifiedRelease:
    """Verify a release's provenance object: DSSE statement **and** Sigstore bundles, fail closed.

    1. The DSSE part exactly as :func:`verify_provenance` (required: it carries the signed file
       list and content digest), for ``wheel_sha256`` and the optional filename / content digest.
    2. A slot whose policy lists Sigstore identities requires at least one Sigstore bundle.
    3. **Every** Sigstore bundle present must sign ``sha256:<wheel_sha256>`` (its
       ``messageDigest``) and verify with sigstore-python - offline against the trust root shipped
       in it (production, or staging only for identities the policy marks ``instance =
       "staging"``) - for an identity + issuer the policy lists for ``slot``.

    ``sigstore_verified`` holds cache keys (:func:`sigstore_cache_key`) of earlier full
    verifications (:class:`SigstoreVerdicts`): a bundle whose key for one of the slot's current
    identities and the installed trust root is in it is accepted after step 3's digest binding
    without running sigstore-python again. Install passes nothing, so it always verifies fully.
    Results with ``cached=False`` and a ``cache_key`` are what the caller may record.
    """
    document = _load(provenance_bytes)
    proof = _verify_document(document, policy, slot, wheel_sha256, content_digest, wheel_filename)
    bundles = _sigstore_bundles(document)
    required = policy.sigstore_identities(slot)
    if required and not bundles:
        raise _fail(
            f"{proof.wheel_filename}: trust.toml requires a Sigstore bundle for slot {slot} "
            f"({'; '.join(str(s) for s in required)}), but its provenance carries none",
            plugin=proof.plugin,
            fix="publish the wheel with `enkrypted-registry publish … --sigstore-bundle FILE`, "
            f"or remove the sigstore list of [slots.{slot}] from trust.toml",
        )
    checked = tuple(
        _verify_bundle(
            bundle,
            f"Sigstore bundle {number} of {proof.wheel_filename}",
            proof,
            policy,
            slot,
            offline,
            sigstore_verified,
        )
        for number, bundle in enumerate(bundles, 1)
    )
    return VerifiedRelease(proof, checked)


class SigstoreVerdicts(Container[str]):
    """``HOME/sigstore-verified.json``: the cache keys of Sigstore bundles that passed a full
    verification on this machine (at install, or at a load that found no verdict).

    The file is read lazily (only when a release carries a bundle) and never trusted beyond what
    the profile home is trusted for anyway: whoever can write it can also write ``trust.toml``.
    An unreadable or malformed file counts as empty, which costs a full verification, never a
    pass. At most :attr:`MAX_ENTRIES` verdicts are kept (oldest dropped).
    """

    FILENAME = "sigstore-verified.json"
    MAX_ENTRIES = 4096
    MAX_BYTES = 4 * 1024 * 1024

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / self.FILENAME
        self._entries: dict[str, dict[str, str]] | None = None

    def _load(self) -> dict[str, dict[str, str]]:
        if self._entries is None:
            entries: dict[str, dict[str, str]] = {}
            try:
                if self.path.stat().st_size <= self.MAX_BYTES:
                    doc = json.loads(self.path.read_bytes())
                    if isinstance(doc, dict) and doc.get("format") == 1:
                        raw = doc.get("verdicts")
                        if isinstance(raw, dict):
                            entries = {
                                k: v
                                for k, v in raw.items()
                                if _HEX64.match(k) and isinstance(v, dict)
                            }
            except (OSError, ValueError):
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
        while len(entries) > self.MAX_ENTRIES:
            oldest = min(entries, key=lambda k: str(entries[k].get("verified_at", "")))
            del entries[oldest]
        data = json.dumps({"format": 1, "verdicts": entries}, indent=1, sort_keys=True)
        write_atomic(self.path, data.encode("utf-8"))
        return len(new)
