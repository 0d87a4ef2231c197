"""Pin the public surface of the registry package and of the shell's verification modules."""

from __future__ import annotations

import enkrypted_registry
from enkrypted_registry import attestation
from enkrypted_shell import release


def test_registry_exports() -> None:
    assert sorted(enkrypted_registry.__all__) == [
        "PublishRefusedError",
        "RegistryError",
        "RegistryUsageError",
        "Repository",
        "WheelError",
        "__version__",
        "content_digest_from_wheel",
        "inspect_wheel",
        "publish",
        "revoke",
    ]
    assert enkrypted_registry.__version__ == "0.1.0"


def test_release_format_exports() -> None:
    """What a registry may import from the shell: the release format, nothing private."""
    assert sorted(release.__all__) == sorted([
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
    ])


def test_registry_and_shell_share_one_provenance_vocabulary() -> None:
    assert attestation.STATEMENT_TYPE is release.STATEMENT_TYPE
    assert attestation.pae is release.pae
