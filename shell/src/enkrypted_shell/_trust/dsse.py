"""DSSE v1 and the in-toto vocabulary of plugin provenance: constants, PAE, shared parsing helpers.

The PAE is written here (7 lines, pinned against securesystemslib's ``Envelope.pae`` in the tests)
instead of imported from ``securesystemslib.dsse`` / ``tuf.api.dsse``: importing those costs
55-80 ms on every start, as much as the rest of the shell's own overhead (docs/adr/0007).
"""

from __future__ import annotations

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "PUBLISHER_KIND",
    "SIGSTORE_KIND",
    "STATEMENT_TYPE",
    "b64decode_field",
    "fail",
    "pae",
]

import base64
import binascii

from ..errors import ProvenanceError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://enkrypted.dev/plugin-provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PUBLISHER_KIND = "enkrypted-key"
SIGSTORE_KIND = "sigstore"

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


def fail(message: str, plugin: str | None = None, fix: str | None = None) -> ProvenanceError:
    return ProvenanceError(message, plugin=plugin, fix=fix)


def b64decode_field(text: object, what: str) -> bytes:
    # DSSE allows standard or URL-safe base64 (envelope.md); accept both, padding required.
    if not isinstance(text, str):
        raise fail(f"provenance: {what} is not a base64 string")
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise fail(f"provenance: {what} is not valid base64") from exc
