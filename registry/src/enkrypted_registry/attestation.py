"""Signed provenance for a published wheel: in-toto Statement v1 in a DSSE envelope, PEP 740-shaped.

* Statement: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
* DSSE v1 envelope and PAE: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
* PEP 740 provenance object: ``{"version": 1, "attestation_bundles": [{"publisher": …,
  "attestations": […]}]}``. Our publisher kind is ``enkrypted-key`` and each attestation is a DSSE
  envelope (JSON form). A wheel published with a Sigstore bundle (``publish --sigstore-bundle``)
  gets a second attestation bundle beside ours::

      {"publisher": {"kind": "sigstore", "identity": "<certificate SAN>", "issuer": "<OIDC issuer>"},
       "attestations": [<the Sigstore bundle JSON, as given>]}

  The registry checks only that the bundle signs the wheel's sha256 and reads the signer from its
  certificate (the ``publisher`` fields are informative); clients verify the bundle itself
  (``the shell's install and load-time verification``).
"""

from __future__ import annotations

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "PUBLISHER_KIND",
    "SIGSTORE_KIND",
    "STATEMENT_TYPE",
    "SigstoreBundle",
    "build_statement",
    "pae",
    "provenance_document",
    "read_sigstore_bundle",
    "sign_envelope",
]

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from enkrypted_shell.release import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    PUBLISHER_KIND,
    SIGSTORE_KIND,
    STATEMENT_TYPE,
    bundle_signer,
    pae,
)

from .errors import PublishRefusedError, RegistryUsageError
from .wheel import WheelInfo

MAX_SIGSTORE_BUNDLE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SigstoreBundle:
    """A Sigstore bundle for one wheel, with the signer read from its certificate."""

    bundle: dict[str, Any]  # the bundle JSON as given
    identity: str  # certificate SAN
    issuer: str  # OIDC issuer (Fulcio extension 1.3.6.1.4.1.57264.1.8, else .1.1)

    def publisher(self) -> dict[str, str]:
        return {"kind": SIGSTORE_KIND, "identity": self.identity, "issuer": self.issuer}


def build_statement(
    info: WheelInfo, *, publisher_keyid: str, now: datetime | None = None
) -> dict[str, Any]:
    """The in-toto Statement v1 describing one plugin wheel."""
    published_at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": info.filename, "digest": {"sha256": info.sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "slot": info.slot,
            "plugin": info.plugin,
            "distribution": info.name,
            "version": info.version,
            "manifest_path": info.manifest_path,
            "manifest": info.manifest,
            "manifest_sha256": hashlib.sha256(info.manifest_bytes).hexdigest(),
            "content_digest": info.content_digest,
            "files": [[path, digest] for path, digest in info.files],
            "publisher": publisher_keyid,
            "published_at": published_at,
        },
    }


def sign_envelope(payload: bytes, key: Ed25519PrivateKey, keyid: str) -> dict[str, Any]:
    """A DSSE envelope (JSON form) over ``payload`` with one Ed25519 signature."""
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }


def provenance_document(
    info: WheelInfo,
    key: Ed25519PrivateKey,
    keyid: str,
    *,
    now: datetime | None = None,
    sigstore: SigstoreBundle | None = None,
) -> bytes:
    """The PEP 740-shaped provenance object served as ``<wheel>.provenance`` (with the wheel's
    Sigstore bundle as a second attestation bundle when one is given)."""
    statement = build_statement(info, publisher_keyid=keyid, now=now)
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
    bundles: list[dict[str, Any]] = [
        {
            "publisher": {"kind": PUBLISHER_KIND, "keyid": keyid, "slot": info.slot},
            "attestations": [sign_envelope(payload, key, keyid)],
        }
    ]
    if sigstore is not None:
        bundles.append({"publisher": sigstore.publisher(), "attestations": [sigstore.bundle]})
    document = {"version": 1, "attestation_bundles": bundles}
    return json.dumps(document, indent=1, sort_keys=True).encode("utf-8") + b"\n"


def _signer(bundle: dict[str, Any], source: str) -> tuple[str, str]:
    """(SAN, OIDC issuer) of the bundle's leaf certificate, read as the shell reads it."""
    names, issuer = bundle_signer(bundle)
    if len(names) != 1 or not issuer:
        raise RegistryUsageError(
            f"{source}: cannot read the signing certificate's single SAN and OIDC issuer "
            f"(found SANs {list(names)}, issuer {issuer!r}); is this a Fulcio certificate?"
        )
    return names[0], issuer


def read_sigstore_bundle(data: bytes, info: WheelInfo, *, source: str) -> SigstoreBundle:
    """Check that a Sigstore bundle signs exactly this wheel and read its signer.

    No cryptographic verification here (the registry is not what clients trust): the bundle must
    be a message-signature bundle whose SHA2_256 ``messageDigest`` is the wheel's sha256, and its
    certificate must name one SAN and an OIDC issuer. Clients verify it fully, offline.
    """
    if len(data) > MAX_SIGSTORE_BUNDLE_BYTES:
        raise RegistryUsageError(f"{source}: larger than {MAX_SIGSTORE_BUNDLE_BYTES} bytes")
    try:
        bundle = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryUsageError(f"{source}: not a JSON Sigstore bundle") from exc
    if not isinstance(bundle, dict) or not str(bundle.get("mediaType", "")).startswith(
        "application/vnd.dev.sigstore.bundle"
    ):
        raise RegistryUsageError(f"{source}: not a Sigstore bundle (mediaType)")
    if "dsseEnvelope" in bundle:
        raise RegistryUsageError(
            f"{source}: a DSSE (attestation) bundle; give a bundle that signs the wheel itself "
            f"(`sigstore sign {info.filename}`)"
        )
    signature = bundle.get("messageSignature")
    digest = signature.get("messageDigest") if isinstance(signature, dict) else None
    if not isinstance(digest, dict) or digest.get("algorithm") != "SHA2_256":
        raise RegistryUsageError(f"{source}: no SHA2_256 messageSignature.messageDigest")
    try:
        signed = base64.b64decode(str(digest.get("digest")), validate=True).hex()
    except (binascii.Error, ValueError) as exc:
        raise RegistryUsageError(f"{source}: messageDigest is not base64") from exc
    if signed != info.sha256:
        raise PublishRefusedError(
            f"{source} signs sha256:{signed}, not {info.filename} (sha256:{info.sha256})"
        )
    identity, issuer = _signer(bundle, source)
    return SigstoreBundle(bundle, identity, issuer)
