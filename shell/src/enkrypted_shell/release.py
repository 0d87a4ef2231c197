"""The release format: what the shell and a registry must agree on about a plugin release.

A registry (``enkrypted-registry`` or any other publisher) imports these names — and only public
shell names — so that what it signs at publish time is exactly what the shell checks at install and
load time: the entry-point group, the manifest's file name and rules, the wheel layout rule, the
RECORD-derived content digest, and the in-toto / DSSE / PEP 740 vocabulary of the provenance.
"""

from __future__ import annotations

__all__ = [
    "ENTRY_POINT_GROUP",
    "MANIFEST_FILENAME",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "PUBLISHER_KIND",
    "SIGSTORE_KIND",
    "STATEMENT_TYPE",
    "PluginManifest",
    "bundle_signer",
    "content_digest",
    "pae",
    "parse_manifest",
    "wheel_layout_problems",
]

from ._pipeline.discover import ENTRY_POINT_GROUP
from ._pipeline.integrity import content_digest, wheel_layout_problems
from ._pipeline.manifest import MANIFEST_FILENAME, PluginManifest, parse_manifest
from ._trust.dsse import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    PUBLISHER_KIND,
    SIGSTORE_KIND,
    STATEMENT_TYPE,
    pae,
)
from ._trust.sigstore import bundle_signer
