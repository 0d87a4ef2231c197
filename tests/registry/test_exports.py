"""Pin the public surface of the registry package and of the shell's verification modules."""

from __future__ import annotations

import enkrypted_registry
from enkrypted_shell._trust import policy as trust
from enkrypted_shell._trust import provenance


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


def test_shell_verification_exports() -> None:
    assert sorted(provenance.__all__) == [
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
    assert sorted(trust.__all__) == [
        "PublisherKey",
        "SigstoreIdentity",
        "TrustPolicy",
        "ed25519_keyid",
    ]


def test_negotiation_rules() -> None:
    from enkrypted_registry.server import choose_content_type

    pip_accept = (
        "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
        "text/html; q=0.01"
    )
    assert choose_content_type(pip_accept) == "application/vnd.pypi.simple.v1+json"
    assert choose_content_type(None) == "text/html"
    assert choose_content_type("*/*") == "text/html"
    assert choose_content_type("application/vnd.pypi.simple.latest+html") == (
        "application/vnd.pypi.simple.v1+html"
    )
    assert choose_content_type("application/vnd.pypi.simple.v1+json;q=0") is None
    assert choose_content_type("image/png") is None
