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

:func:`verify_provenance` accepts the provenance object or a bare envelope. Sigstore bundles are
checked separately by :func:`verify_sigstore_bundle` (sigstore-python, offline trust root).
"""

from __future__ import annotations

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "VerifiedProvenance",
    "content_digest",
    "pae",
    "verify_provenance",
    "verify_sigstore_bundle",
]

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .errors import ProvenanceError
from .integrity import content_digest as _record_digest
from .trust import PublisherKey, SigstoreIdentity, TrustPolicy

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://enkrypted.dev/plugin-provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PUBLISHER_KIND = "enkrypted-key"

MAX_PROVENANCE_BYTES = 8 * 1024 * 1024
MAX_ENVELOPES = 16
MAX_SIGNATURES = 16
MAX_FILES = 20_000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class VerifiedProvenance:
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
    """The shell's content digest (:func:`enkrypted_shell.integrity.content_digest`) over
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
        raise _fail(f"provenance has no {PUBLISHER_KIND} attestation (DSSE envelope)")
    if len(found) > MAX_ENVELOPES:
        raise _fail(f"provenance has more than {MAX_ENVELOPES} envelopes")
    return found


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
    if len(envelope_bytes) > MAX_PROVENANCE_BYTES:
        raise _fail(f"provenance larger than {MAX_PROVENANCE_BYTES} bytes")
    try:
        document = json.loads(envelope_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail("provenance is not valid JSON") from exc
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
    Uses sigstore-python's ``Verifier.production`` (``staging=True``: ``Verifier.staging``) with the
    trust root shipped in sigstore-python; ``offline=True`` never touches the network. Any failure -
    malformed bundle, certificate chain, transparency-log proof, digest or identity - raises
    :class:`ProvenanceError` with sigstore's reason.
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore.verify import Verifier, policy
    from sigstore_models.common.v1 import HashAlgorithm

    artifact: bytes | Hashed
    if isinstance(artifact_bytes_or_digest, str):
        if not _DIGEST.match(artifact_bytes_or_digest):
            raise _fail("sigstore: artifact digest must be 'sha256:<64 hex>'")
        raw = bytes.fromhex(artifact_bytes_or_digest.removeprefix("sha256:"))
        artifact = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=raw)
    else:
        artifact = artifact_bytes_or_digest
    try:
        bundle = Bundle.from_json(bundle_bytes)
        verifier = (
            Verifier.staging(offline=offline) if staging else Verifier.production(offline=offline)
        )
        verifier.verify_artifact(
            artifact, bundle, policy.Identity(identity=identity, issuer=issuer)
        )
    except SigstoreError as exc:
        raise _fail(f"sigstore bundle rejected: {exc}") from exc
    except Exception as exc:  # malformed input can surface as any parser error: fail closed
        raise _fail(f"sigstore bundle rejected: {type(exc).__name__}: {exc}") from exc
    return SigstoreIdentity(identity=identity, issuer=issuer)
