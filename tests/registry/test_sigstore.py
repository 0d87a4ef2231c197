"""verify_sigstore_bundle against the real bundles in tests/vectors/sigstore (offline).

Which bundles verify and which must fail comes from that folder's README; SHA256SUMS pins the bytes.
A missing folder fails the test (tests.vectors.vectors_dir), it never skips.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from enkrypted_shell._trust.policy import SigstoreIdentity
from enkrypted_shell._trust.sigstore import verify_sigstore_bundle
from enkrypted_shell.errors import ProvenanceError
from tests.vectors import vectors_dir

GITHUB_OAUTH = "https://github.com/login/oauth"
GITHUB_ACTIONS = "https://token.actions.githubusercontent.com"
RFC8785_WORKFLOW = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)
RFC8785_WHEEL_SHA256 = base64.b64decode("xOkunsyCi+8qp9uh3orJg1EfdTKg3xHHcNOQmaJc8gE=").hex()


def vector(name: str) -> bytes:
    """A vector file, checked against SHA256SUMS by ``vectors_dir``."""
    return vectors_dir("sigstore", name).read_bytes()


def test_vectors_folder_present() -> None:
    assert Path(vectors_dir("sigstore", "README.md")).is_file()


@pytest.mark.parametrize(
    ("artifact", "bundle", "identity"),
    [
        ("bundle.txt", "bundle.txt.sigstore", "a@tny.town"),
        ("bundle_v3.txt", "bundle_v3.txt.sigstore", "william@yossarian.net"),
        ("staging-rekor-v2.txt", "staging-rekor-v2.txt.sigstore.json", "jku@goto.fi"),
    ],
)
def test_staging_bundles_verify(artifact: str, bundle: str, identity: str) -> None:
    result = verify_sigstore_bundle(
        vector(bundle), vector(artifact), identity, GITHUB_OAUTH, staging=True
    )
    assert result == SigstoreIdentity(identity, GITHUB_OAUTH, "staging")
    # The same check by digest instead of bytes.
    digest = "sha256:" + hashlib.sha256(vector(artifact)).hexdigest()
    verify_sigstore_bundle(vector(bundle), digest, identity, GITHUB_OAUTH, staging=True)


def test_production_github_workflow_signature_of_real_wheel() -> None:
    # rfc8785-0.1.2-py3-none-any.whl from PyPI, checked by digest (no download: loopback only).
    result = verify_sigstore_bundle(
        vector("bundle_v3_github.whl.sigstore"),
        f"sha256:{RFC8785_WHEEL_SHA256}",
        RFC8785_WORKFLOW,
        GITHUB_ACTIONS,
    )
    assert result == SigstoreIdentity(RFC8785_WORKFLOW, GITHUB_ACTIONS, "production")


def test_production_bundle_with_wrong_identity_fails() -> None:
    with pytest.raises(ProvenanceError, match="sigstore bundle rejected"):
        verify_sigstore_bundle(
            vector("bundle_v3_github.whl.sigstore"),
            f"sha256:{RFC8785_WHEEL_SHA256}",
            RFC8785_WORKFLOW.replace("v0.1.2", "v0.1.3"),
            GITHUB_ACTIONS,
        )


def test_production_bundle_with_wrong_digest_fails() -> None:
    with pytest.raises(ProvenanceError, match="sigstore bundle rejected"):
        verify_sigstore_bundle(
            vector("bundle_v3_github.whl.sigstore"),
            "sha256:" + "00" * 32,
            RFC8785_WORKFLOW,
            GITHUB_ACTIONS,
        )


def test_wrong_identity_fails() -> None:
    with pytest.raises(ProvenanceError, match="sigstore bundle rejected"):
        verify_sigstore_bundle(
            vector("bundle.txt.sigstore"),
            vector("bundle.txt"),
            "mallory@example.com",
            GITHUB_OAUTH,
            staging=True,
        )


@pytest.mark.parametrize(
    ("artifact", "bundle", "identity", "staging"),
    [
        # bundle for another artifact (real identity of that bundle: only the digest is wrong)
        ("bundle_v3.txt", "bundle_v3_alt.txt.sigstore", "william@yossarian.net", True),
        ("bundle_no_checkpoint.txt", "bundle_no_checkpoint.txt.sigstore", "a@tny.town", True),
        ("bundle_no_checkpoint.txt", "bundle_no_checkpoint.txt.sigstore", "a@tny.town", False),
        ("bundle_no_log_entry.txt", "bundle_no_log_entry.txt.sigstore", "a@tny.town", True),
        ("bundle_no_log_entry.txt", "bundle_no_log_entry.txt.sigstore", "a@tny.town", False),
        # staging bundles under the production trust root: the chain does not build
        ("bundle.txt", "bundle.txt.sigstore", "a@tny.town", False),
        ("bundle_v3.txt", "bundle_v3.txt.sigstore", "william@yossarian.net", False),
        ("staging-rekor-v2.txt", "staging-rekor-v2.txt.sigstore.json", "jku@goto.fi", False),
    ],
)
def test_bad_bundles_fail(artifact: str, bundle: str, identity: str, staging: bool) -> None:
    with pytest.raises(ProvenanceError, match="sigstore bundle rejected"):
        verify_sigstore_bundle(
            vector(bundle), vector(artifact), identity, GITHUB_OAUTH, staging=staging
        )


@pytest.mark.parametrize("data", [b"", b"{}", b"not json"])
def test_malformed_bundle_fails(data: bytes) -> None:
    with pytest.raises(ProvenanceError, match="sigstore bundle rejected"):
        verify_sigstore_bundle(data, b"x", "a@tny.town", GITHUB_OAUTH, staging=True)


def test_malformed_digest_is_refused() -> None:
    with pytest.raises(ProvenanceError, match="sha256:<64 hex>"):
        verify_sigstore_bundle(vector("bundle.txt.sigstore"), "md5:00", "a", "b", staging=True)
