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
    "VerifiedProvenance",
    "VerifiedRelease",
    "claimed_paths",
    "content_digest",
    "verify_provenance",
    "verify_release",
]

import base64
import json
import re
from collections.abc import Container, Iterable
from typing import Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .._pipeline.integrity import content_digest as _record_digest
from ..errors import ProvenanceError
from ..limits import LIMITS
from .dsse import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    PUBLISHER_KIND,
    STATEMENT_TYPE,
    pae,
)
from .dsse import b64decode_field as _b64decode
from .dsse import fail as _fail
from .policy import PublisherKey, TrustPolicy
from .sigstore import VerifiedSigstore, _sigstore_bundles, _verify_bundle

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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


def _hex_to_b64(hexdigest: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(hexdigest)).rstrip(b"=").decode("ascii")


def content_digest(files: Iterable[tuple[str, str]]) -> str:
    """The shell's content digest (:func:`enkrypted_shell._pipeline.integrity.content_digest`) over
    ``(path, sha256 hex)`` pairs as the provenance predicate lists them."""
    return _record_digest((path, _hex_to_b64(digest)) for path, digest in files)


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
    if len(found) > LIMITS.provenance_envelopes:
        raise _fail(f"provenance has more than {LIMITS.provenance_envelopes} envelopes")
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
    if not isinstance(signatures, list) or not signatures or len(signatures) > LIMITS.envelope_signatures:
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
    if not isinstance(raw, list) or not raw or len(raw) > LIMITS.provenance_files:
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
    if len(data) > LIMITS.provenance_bytes:
        raise _fail(f"provenance larger than {LIMITS.provenance_bytes} bytes")
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


class VerifiedRelease(NamedTuple):
    """A release whose DSSE provenance and every Sigstore bundle verified."""

    provenance: VerifiedProvenance
    sigstore: tuple[VerifiedSigstore, ...]


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
