"""Signed provenance for a published wheel: in-toto Statement v1 in a DSSE envelope, PEP 740-shaped.

* Statement: https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
* DSSE v1 envelope and PAE: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
* PEP 740 provenance object: ``{"version": 1, "attestation_bundles": [{"publisher": …,
  "attestations": […]}]}``. Our publisher kind is ``enkrypted-key`` and each attestation is a DSSE
  envelope (JSON form). A publisher with a Sigstore bundle adds a second attestation bundle with
  publisher kind ``sigstore`` beside ours; verifiers skip kinds they do not handle.
"""

from __future__ import annotations

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "PUBLISHER_KIND",
    "STATEMENT_TYPE",
    "build_statement",
    "pae",
    "provenance_document",
    "sign_envelope",
]

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .wheel import WheelInfo

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://enkrypted.dev/plugin-provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PUBLISHER_KIND = "enkrypted-key"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding.

    ``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` where LEN is the byte
    length as ASCII decimal without leading zeros (DSSE protocol.md, "Signature definition").
    """
    type_bytes = payload_type.encode("utf-8")
    return b" ".join(
        [b"DSSEv1", str(len(type_bytes)).encode(), type_bytes, str(len(payload)).encode(), payload]
    )


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
    info: WheelInfo, key: Ed25519PrivateKey, keyid: str, *, now: datetime | None = None
) -> bytes:
    """The PEP 740-shaped provenance object served as ``<wheel>.provenance``."""
    statement = build_statement(info, publisher_keyid=keyid, now=now)
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
    document = {
        "version": 1,
        "attestation_bundles": [
            {
                "publisher": {"kind": PUBLISHER_KIND, "keyid": keyid, "slot": info.slot},
                "attestations": [sign_envelope(payload, key, keyid)],
            }
        ],
    }
    return json.dumps(document, indent=1, sort_keys=True).encode("utf-8") + b"\n"
