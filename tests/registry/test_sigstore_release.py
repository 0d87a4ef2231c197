"""verify_release: DSSE provenance AND every Sigstore bundle, with the real bundles in
tests/vectors/sigstore (offline, no network), plus `enkrypted-registry publish --sigstore-bundle`.

The production bundle is a real GitHub Actions release signature of ``rfc8785-0.1.2-py3-none-any.whl``.
We cannot have that wheel here, so the DSSE part is a statement about a synthetic wheel (our test
key, our name/version) whose subject sha256 is the digest that bundle signs: exactly what a plugin
release published with a Sigstore bundle looks like to the client. A missing vectors folder fails
(tests.vectors.vectors_dir), it never skips.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from enkrypted_registry import PublishRefusedError, Repository, inspect_wheel, publish
from enkrypted_registry.attestation import provenance_document, read_sigstore_bundle
from enkrypted_registry.cli import main as registry_main
from enkrypted_registry.errors import RegistryUsageError
from enkrypted_registry.keys import RoleKey
from enkrypted_registry.wheel import WheelInfo
from enkrypted_shell._pipeline import plan as runtime
from enkrypted_shell._state.provenance_store import StoredProvenance
from enkrypted_shell._trust import sigstore as shell_sigstore
from enkrypted_shell._trust.policy import SigstoreIdentity, TrustPolicy
from enkrypted_shell._trust.provenance import content_digest, verify_release
from enkrypted_shell._trust.sigstore import (
    SigstoreVerdicts,
    sigstore_cache_key,
    sigstore_trust_root_sha256,
)
from enkrypted_shell.errors import ProvenanceError, ShellUsageError
from tests.registry.support import Wheels
from tests.registry.test_sigstore import (
    GITHUB_ACTIONS,
    GITHUB_OAUTH,
    RFC8785_WHEEL_SHA256,
    RFC8785_WORKFLOW,
    vector,
)

GITHUB_BUNDLE = "bundle_v3_github.whl.sigstore"
WHEEL = "demo_sig-1.0.0-py3-none-any.whl"
FILES = (
    ("demo_sig/__init__.py", hashlib.sha256(b'"""demo-sig"""\n').hexdigest()),
    ("demo_sig/plugin.py", hashlib.sha256(b"VERSION = '1.0.0'\n").hexdigest()),
    ("demo_sig/enkrypted-plugin.toml", hashlib.sha256(b"[plugin]\n").hexdigest()),
)
CONTENT = content_digest(FILES)


# ---------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def key() -> RoleKey:
    return RoleKey.of(Ed25519PrivateKey.generate())


def _key_hex(key: RoleKey) -> str:
    raw = key.private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return raw.hex()


def policy(key: RoleKey, *identities: dict[str, str], slot: str = "crypto") -> TrustPolicy:
    """trust.toml with ``key`` for crypto and the Sigstore identities for ``slot``."""
    entries = ", ".join(
        "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in entry.items()) + " }"
        for entry in identities
    )
    text = f'version = 1\n[slots.crypto]\nkeys = ["{_key_hex(key)}"]\n'
    if slot == "crypto":
        text += f"sigstore = [{entries}]\n" if identities else ""
    else:
        text += f"[slots.{slot}]\nsigstore = [{entries}]\n"
    return TrustPolicy.from_toml(text)


WORKFLOW = {"identity": RFC8785_WORKFLOW, "issuer": GITHUB_ACTIONS}


def synthetic_wheel(sha256: str, filename: str = WHEEL) -> WheelInfo:
    """A crypto plugin wheel as the registry describes it; its sha256 is whatever a bundle signs."""
    manifest = {"plugin": {"name": "demo-sig", "slot": "crypto", "contract": "1.0"}}
    return WheelInfo(
        filename=filename,
        name="demo-sig",
        normalized_name="demo-sig",
        version="1.0.0",
        requires_python=">=3.11",
        sha256=sha256,
        size=1234,
        core_metadata=b"Metadata-Version: 2.1\nName: demo-sig\nVersion: 1.0.0\n",
        manifest_path="demo_sig/enkrypted-plugin.toml",
        manifest_bytes=b"[plugin]\n",
        manifest=manifest,
        slot="crypto",
        plugin="demo-sig",
        files=FILES,
        content_digest=CONTENT,
    )


def release(key: RoleKey, sha256: str, *bundles: bytes) -> bytes:
    """The provenance object the registry serves: our DSSE statement + the given bundles."""
    document = json.loads(provenance_document(synthetic_wheel(sha256), key.private, key.keyid))
    for data in bundles:
        document["attestation_bundles"].append(
            {"publisher": {"kind": "sigstore"}, "attestations": [json.loads(data)]}
        )
    return json.dumps(document).encode()


def github_release(key: RoleKey) -> bytes:
    return release(key, RFC8785_WHEEL_SHA256, vector(GITHUB_BUNDLE))


def verify(data: bytes, pol: TrustPolicy, sha256: str = RFC8785_WHEEL_SHA256, **kw: Any) -> Any:
    return verify_release(data, policy=pol, slot="crypto", wheel_sha256=sha256, **kw)


def artifact_sha256(name: str) -> str:
    return hashlib.sha256(vector(name)).hexdigest()


# ------------------------------------------------------------------------ verifies (production)
def test_production_github_bundle_release_verifies(key: RoleKey) -> None:
    result = verify(
        github_release(key), policy(key, WORKFLOW), content_digest=CONTENT, wheel_filename=WHEEL
    )
    assert result.provenance.wheel_filename == WHEEL
    assert result.provenance.wheel_sha256 == RFC8785_WHEEL_SHA256
    assert result.provenance.signer_keyid == key.keyid
    [sig] = result.sigstore
    assert sig.signer == SigstoreIdentity(RFC8785_WORKFLOW, GITHUB_ACTIONS, "production")
    assert sig.artifact == f"sha256:{RFC8785_WHEEL_SHA256}"
    assert not sig.cached and sig.cache_key is not None


def test_registry_reads_the_signer_from_the_certificate(key: RoleKey) -> None:
    info = synthetic_wheel(RFC8785_WHEEL_SHA256)
    bundle = read_sigstore_bundle(vector(GITHUB_BUNDLE), info, source="bundle")
    assert (bundle.identity, bundle.issuer) == (RFC8785_WORKFLOW, GITHUB_ACTIONS)
    document = json.loads(provenance_document(info, key.private, key.keyid, sigstore=bundle))
    assert document["attestation_bundles"][1] == {
        "publisher": {"kind": "sigstore", "identity": RFC8785_WORKFLOW, "issuer": GITHUB_ACTIONS},
        "attestations": [json.loads(vector(GITHUB_BUNDLE))],
    }
    verify(json.dumps(document).encode(), policy(key, WORKFLOW))


def test_staging_bundle_verifies_only_when_the_policy_says_staging(key: RoleKey) -> None:
    sha = artifact_sha256("bundle.txt")
    data = release(key, sha, vector("bundle.txt.sigstore"))
    staging = {"identity": "a@tny.town", "issuer": GITHUB_OAUTH, "instance": "staging"}
    [sig] = verify(data, policy(key, staging), sha).sigstore
    assert sig.signer.instance == "staging"
    # The same identity without `instance`: production trust root, the chain does not build.
    with pytest.raises(ProvenanceError, match=r"Sigstore bundle 1 of .* does not verify: as a@tny"):
        verify(data, policy(key, {"identity": "a@tny.town", "issuer": GITHUB_OAUTH}), sha)


# ---------------------------------------------------------------------------- refused: identity
def test_wrong_identity_is_refused(key: RoleKey) -> None:
    other = {"identity": RFC8785_WORKFLOW.replace("v0.1.2", "v0.1.3"), "issuer": GITHUB_ACTIONS}
    with pytest.raises(
        ProvenanceError,
        match=r"Sigstore bundle 1 of demo_sig-1\.0\.0-py3-none-any\.whl is signed by "
        r"https://github\.com/trailofbits/rfc8785\.py/.*@refs/tags/v0\.1\.2 \(issuer "
        r"https://token\.actions\.githubusercontent\.com\), which trust\.toml does not list for "
        r"slot crypto",
    ):
        verify(github_release(key), policy(key, other))


def test_wrong_issuer_is_refused(key: RoleKey) -> None:
    with pytest.raises(ProvenanceError, match="which trust.toml does not list for slot crypto"):
        verify(
            github_release(key),
            policy(key, {"identity": RFC8785_WORKFLOW, "issuer": "https://evil.example"}),
        )


def test_identity_of_another_slot_is_named(key: RoleKey) -> None:
    with pytest.raises(
        ProvenanceError, match=r"lists no Sigstore identity for slot crypto \(it is listed for ui"
    ):
        verify(github_release(key), policy(key, WORKFLOW, slot="ui"))
    both = TrustPolicy.from_toml(
        f'[slots.crypto]\nkeys = ["{_key_hex(key)}"]\n'
        'sigstore = [{ identity = "me@example.com", issuer = "https://accounts.example.com" }]\n'
        f'[slots.p2p]\nsigstore = [{{ identity = "{RFC8785_WORKFLOW}", issuer = "{GITHUB_ACTIONS}" }}]\n'
    )
    with pytest.raises(
        ProvenanceError, match=r"does not list for slot crypto \(it is listed for p2p\)"
    ):
        verify(github_release(key), both)


def test_production_bundle_under_a_staging_policy_entry_is_refused(key: RoleKey) -> None:
    staging = {**WORKFLOW, "instance": "staging"}
    with pytest.raises(ProvenanceError, match="does not verify: as .*staging"):
        verify(github_release(key), policy(key, staging))


def test_bundle_present_but_no_identity_in_policy_is_refused(key: RoleKey) -> None:
    with pytest.raises(
        ProvenanceError, match="trust.toml lists no Sigstore identity for slot crypto"
    ) as info:
        verify(github_release(key), policy(key))
    assert info.value.fix is not None and "[slots.crypto]" in info.value.fix


# ------------------------------------------------------------------------------ refused: bundle
@pytest.mark.parametrize("instance", ["production", "staging"])
def test_bundle_without_log_entry_is_refused(key: RoleKey, instance: str) -> None:
    sha = artifact_sha256("bundle_no_log_entry.txt")
    signer = {
        "identity": "alex.cameron@trailofbits.com",
        "issuer": "https://accounts.google.com",
        "instance": instance,
    }
    data = release(key, sha, vector("bundle_no_log_entry.txt.sigstore"))
    with pytest.raises(ProvenanceError, match="does not verify: .*log entry"):
        verify(data, policy(key, signer), sha)


def test_bundle_without_checkpoint_is_refused(key: RoleKey) -> None:
    sha = artifact_sha256("bundle_no_checkpoint.txt")
    signer = {"identity": "william@yossarian.net", "issuer": GITHUB_OAUTH, "instance": "staging"}
    data = release(key, sha, vector("bundle_no_checkpoint.txt.sigstore"))
    with pytest.raises(ProvenanceError, match="does not verify: .*checkpoint"):
        verify(data, policy(key, signer), sha)


def test_bundle_for_another_artifact_is_refused(key: RoleKey) -> None:
    sha = artifact_sha256("bundle_v3.txt")
    signer = {"identity": "william@yossarian.net", "issuer": GITHUB_OAUTH, "instance": "staging"}
    data = release(key, sha, vector("bundle_v3_alt.txt.sigstore"))
    with pytest.raises(ProvenanceError, match=r"signs sha256:[0-9a-f]{64}, not this wheel "):
        verify(data, policy(key, signer), sha)
    # The wheel's real bundle verifies under the same policy.
    verify(release(key, sha, vector("bundle_v3.txt.sigstore")), policy(key, signer), sha)


def test_bundle_for_the_right_digest_with_a_bad_signature_is_refused(key: RoleKey) -> None:
    bundle = json.loads(vector(GITHUB_BUNDLE))
    signature = bytearray(base64.b64decode(bundle["messageSignature"]["signature"]))
    signature[-1] ^= 1
    bundle["messageSignature"]["signature"] = base64.b64encode(bytes(signature)).decode()
    data = release(key, RFC8785_WHEEL_SHA256, json.dumps(bundle).encode())
    with pytest.raises(ProvenanceError, match="does not verify: .*sigstore bundle rejected"):
        verify(data, policy(key, WORKFLOW))


def test_every_bundle_must_verify(key: RoleKey) -> None:
    bad = json.loads(vector(GITHUB_BUNDLE))
    del bad["verificationMaterial"]["tlogEntries"]
    data = release(key, RFC8785_WHEEL_SHA256, vector(GITHUB_BUNDLE), json.dumps(bad).encode())
    with pytest.raises(ProvenanceError, match="Sigstore bundle 2 of .* does not verify"):
        verify(data, policy(key, WORKFLOW))


def test_dsse_attestation_bundle_is_refused(key: RoleKey) -> None:
    data = release(key, RFC8785_WHEEL_SHA256, vector("a.dsse.staging-rekor-v2.txt.sigstore.json"))
    with pytest.raises(ProvenanceError, match="carries a DSSE envelope"):
        verify(data, policy(key, WORKFLOW))


@pytest.mark.parametrize(
    "attestations", [[], "x", [1], [{"messageSignature": {"messageDigest": {"digest": "AA=="}}}]]
)
def test_malformed_sigstore_attestations_fail_closed(key: RoleKey, attestations: Any) -> None:
    document = json.loads(release(key, RFC8785_WHEEL_SHA256))
    document["attestation_bundles"].append(
        {"publisher": {"kind": "sigstore"}, "attestations": attestations}
    )
    with pytest.raises(ProvenanceError):
        verify(json.dumps(document).encode(), policy(key, WORKFLOW))


# ------------------------------------------------------------------------- refused: the policy
def test_policy_requiring_sigstore_refuses_a_release_without_bundle(key: RoleKey) -> None:
    data = release(key, RFC8785_WHEEL_SHA256)
    verify(data, policy(key))  # no identity listed: the DSSE part alone is enough
    with pytest.raises(
        ProvenanceError,
        match=r"demo_sig-1\.0\.0-py3-none-any\.whl: trust\.toml requires a Sigstore bundle for "
        r"slot crypto \(https://github\.com/trailofbits/.* \(issuer https://token\.actions.*\)\), "
        r"but its provenance carries none",
    ):
        verify(data, policy(key, WORKFLOW))


def test_dsse_part_stays_required(key: RoleKey) -> None:
    document = json.loads(github_release(key))
    del document["attestation_bundles"][0]  # only the (valid) Sigstore bundle is left
    with pytest.raises(
        ProvenanceError, match=r"no enkrypted-key attestation .*\(it carries only: sigstore\)"
    ):
        verify(json.dumps(document).encode(), policy(key, WORKFLOW))
    # A valid bundle does not excuse a DSSE statement by a key trust.toml does not list.
    stranger = RoleKey.of(Ed25519PrivateKey.generate())
    with pytest.raises(ProvenanceError, match="which trust.toml does not list"):
        verify(github_release(stranger), policy(key, WORKFLOW))


def test_dsse_expectations_still_apply(key: RoleKey) -> None:
    data = github_release(key)
    with pytest.raises(ProvenanceError, match="digest mismatch: .*wheel sha256"):
        verify(data, policy(key, WORKFLOW), "00" * 32)
    with pytest.raises(ProvenanceError, match="digest mismatch: installed"):
        verify(data, policy(key, WORKFLOW), content_digest="sha256:" + "00" * 32)


@pytest.mark.parametrize(
    "entry",
    [
        '{ identity = "a", issuer = "b", instance = "dev" }',
        '{ identity = "a", issuer = "b", extra = "c" }',
        '{ identity = "a", instance = "staging" }',
    ],
)
def test_bad_sigstore_policy_entries(entry: str) -> None:
    with pytest.raises(ShellUsageError):
        TrustPolicy.from_toml(f"[slots.crypto]\nsigstore = [{entry}]\n")


# --------------------------------------------------------------------- verdicts (load-time cache)
def _no_sigstore(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("sigstore-python must not run when a verdict stands")


def test_verdict_skips_full_verification_but_not_the_binding(
    key: RoleKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, pol = github_release(key), policy(key, WORKFLOW)
    verdicts = SigstoreVerdicts(tmp_path)
    assert RFC8785_WHEEL_SHA256 not in verdicts  # missing file: empty
    assert verdicts.remember(verify(data, pol).sigstore) == 1
    stored = json.loads((tmp_path / "sigstore-verified.json").read_text())
    [entry] = stored["verdicts"].values()
    assert entry["identity"] == RFC8785_WORKFLOW and entry["instance"] == "production"

    monkeypatch.setattr(shell_sigstore, "verify_sigstore_bundle", _no_sigstore)
    again = SigstoreVerdicts(tmp_path)
    [sig] = verify(data, pol, sigstore_verified=again).sigstore
    assert sig.cached
    assert again.remember([sig]) == 0  # cached results are not re-recorded

    # The binding to the wheel sha256 is checked before any verdict is looked at.
    other = release(key, "ab" * 32, vector(GITHUB_BUNDLE))
    with pytest.raises(ProvenanceError, match="not this wheel"):
        verify(other, pol, "ab" * 32, sigstore_verified=again)
    # A changed policy entry is a different key: full verification (here: refused by policy).
    other_identity = {**WORKFLOW, "identity": RFC8785_WORKFLOW.replace("v0.1.2", "v9")}
    with pytest.raises(ProvenanceError, match="does not list for slot crypto"):
        verify(data, policy(key, other_identity), sigstore_verified=again)
    # A changed bundle is a different key too.
    edited = json.loads(vector(GITHUB_BUNDLE))
    edited["mediaType"] = edited["mediaType"] + " "
    with pytest.raises(AssertionError, match="must not run"):
        verify(
            release(key, RFC8785_WHEEL_SHA256, json.dumps(edited).encode()),
            pol,
            sigstore_verified=again,
        )


def test_verdict_for_another_trust_root_does_not_count(
    key: RoleKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, pol = github_release(key), policy(key, WORKFLOW)
    [sig] = verify(data, pol).sigstore
    assert sig.cache_key == sigstore_cache_key(
        sig.bundle_sha256, sig.artifact, sig.signer, str(sigstore_trust_root_sha256())
    )
    stale = sigstore_cache_key(sig.bundle_sha256, sig.artifact, sig.signer, "00" * 32)
    monkeypatch.setattr(shell_sigstore, "verify_sigstore_bundle", _no_sigstore)
    with pytest.raises(AssertionError, match="must not run"):
        verify(data, pol, sigstore_verified={stale})


@pytest.mark.parametrize("content", [b"not json", b'{"format": 2, "verdicts": {}}', b"[]"])
def test_malformed_verdict_file_counts_as_empty(
    key: RoleKey, tmp_path: Path, content: bytes
) -> None:
    (tmp_path / "sigstore-verified.json").write_bytes(content)
    verdicts = SigstoreVerdicts(tmp_path)
    [sig] = verify(github_release(key), policy(key, WORKFLOW), sigstore_verified=verdicts).sigstore
    assert not sig.cached
    assert verdicts.remember([sig]) == 1
    assert sig.cache_key in SigstoreVerdicts(tmp_path)


def _stored(data: bytes, sha256: str = RFC8785_WHEEL_SHA256) -> StoredProvenance:
    return StoredProvenance(
        distribution="demo-sig",
        version="1.0.0",
        slot="crypto",
        wheel_filename=WHEEL,
        wheel_sha256=sha256,
        index="http://127.0.0.1:1/",
        tuf_role="crypto",
        target_path=f"plugins/crypto/{WHEEL}",
        installed_at="2026-11-26T00:00:00Z",
        provenance=json.loads(data),
    )


def test_load_time_verify_signed_uses_and_records_verdicts(
    key: RoleKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cand: Any = SimpleNamespace(
        label="demo-sig 1.0.0", name="demo-sig", version="1.0.0", dist_name="demo-sig"
    )
    report: Any = SimpleNamespace(content_digest=CONTENT)
    stored, pol = _stored(github_release(key)), policy(key, WORKFLOW)
    # First load without a verdict (e.g. a record from before): full verification, recorded.
    verified = runtime._verify_signed(
        "crypto", cand, report, stored, pol, False, SigstoreVerdicts(tmp_path)
    )
    assert verified is not None and verified.provenance.wheel_filename == WHEEL
    assert [v.signer.identity for v in verified.sigstore] == [WORKFLOW["identity"]]
    assert len(json.loads((tmp_path / "sigstore-verified.json").read_text())["verdicts"]) == 1
    # Next load: the verdict stands, sigstore-python is not used.
    monkeypatch.setattr(shell_sigstore, "verify_sigstore_bundle", _no_sigstore)
    runtime._verify_signed("crypto", cand, report, stored, pol, False, SigstoreVerdicts(tmp_path))
    # An edited record (another wheel sha256) is refused, naming the plugin.
    with pytest.raises(ProvenanceError, match=r"^demo-sig 1\.0\.0: digest mismatch"):
        runtime._verify_signed(
            "crypto",
            cand,
            report,
            _stored(github_release(key), "cd" * 32),
            pol,
            False,
            SigstoreVerdicts(tmp_path),
        )
    # A policy that now requires Sigstore refuses a record without a bundle.
    with pytest.raises(ProvenanceError, match="requires a Sigstore bundle"):
        runtime._verify_signed(
            "crypto",
            cand,
            report,
            _stored(release(key, RFC8785_WHEEL_SHA256)),
            pol,
            False,
            SigstoreVerdicts(tmp_path),
        )


# ---------------------------------------------------------------- registry: publish with a bundle
def _bundle_for(wheel: Path, tmp_path: Path) -> Path:
    """The real GitHub bundle with its messageDigest rewritten to ``wheel``'s sha256: the shape and
    certificate of a real bundle, the binding the registry checks, but no valid signature."""
    bundle = json.loads(vector(GITHUB_BUNDLE))
    digest = hashlib.sha256(wheel.read_bytes()).digest()
    bundle["messageSignature"]["messageDigest"]["digest"] = base64.b64encode(digest).decode()
    path = tmp_path / f"{wheel.name}.sigstore.json"
    path.write_text(json.dumps(bundle))
    return path


def _provenance(repo: Repository, wheel: Path) -> dict[str, Any]:
    info = inspect_wheel(wheel)
    path = repo.public / "plugins" / info.slot / f"{wheel.name}.provenance"
    document: dict[str, Any] = json.loads(path.read_bytes())
    return document


def test_cli_publish_with_sigstore_bundle_writes_it(
    repo: Repository, wheels: Wheels, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle_file = _bundle_for(wheels.crypto10, tmp_path)
    key_file = str(repo.key_path("crypto"))
    code = registry_main(
        ["publish", str(repo.root), str(wheels.crypto10), "--key", key_file,
         "--sigstore-bundle", str(bundle_file)]
    )  # fmt: skip
    assert code == 0
    assert f"Sigstore bundle of {RFC8785_WORKFLOW}" in capsys.readouterr().out
    document = _provenance(repo, wheels.crypto10)
    kinds = [entry["publisher"]["kind"] for entry in document["attestation_bundles"]]
    assert kinds == ["enkrypted-key", "sigstore"]
    assert document["attestation_bundles"][1] == {
        "publisher": {"kind": "sigstore", "identity": RFC8785_WORKFLOW, "issuer": GITHUB_ACTIONS},
        "attestations": [json.loads(bundle_file.read_bytes())],
    }
    # Still a TUF target of the crypto role, with the bytes now served.
    target = f"plugins/crypto/{wheels.crypto10.name}.provenance"
    signed = json.loads((repo.tuf_dir / "crypto.json").read_bytes())["signed"]["targets"][target]
    served = (repo.public / target).read_bytes()
    assert signed["hashes"]["sha256"] == hashlib.sha256(served).hexdigest()
    assert signed["length"] == len(served)
    # The client verifies the bundle itself: this one's signature is not over that digest.
    info = inspect_wheel(wheels.crypto10)
    pol = TrustPolicy.from_toml(
        f'[slots.crypto]\nkeys = ["{_key_hex(repo.key("crypto"))}"]\n'
        f'sigstore = [{{ identity = "{RFC8785_WORKFLOW}", issuer = "{GITHUB_ACTIONS}" }}]\n'
    )
    with pytest.raises(ProvenanceError, match="does not verify: .*sigstore bundle rejected"):
        verify_release(served, policy=pol, slot="crypto", wheel_sha256=info.sha256)
    # Re-publishing the identical wheel with the same bundle is a no-op; with none it is too.
    assert publish(repo, [wheels.crypto10], repo.key("crypto"))[0].skipped
    same = {wheels.crypto10.name: bundle_file.read_bytes()}
    assert publish(repo, [wheels.crypto10], repo.key("crypto"), sigstore_bundles=same)[0].skipped


def test_cli_publish_several_wheels_with_wheel_equals_file(
    repo: Repository, wheels: Wheels, tmp_path: Path
) -> None:
    bundle_file = _bundle_for(wheels.crypto11, tmp_path)
    key_file = str(repo.key_path("crypto"))
    args = [
        "publish",
        str(repo.root),
        str(wheels.crypto10),
        str(wheels.crypto11),
        "--key",
        key_file,
    ]
    # FILE alone is ambiguous with two wheels; an unknown WHEEL is named.
    assert registry_main([*args, "--sigstore-bundle", str(bundle_file)]) == 2
    assert registry_main([*args, "--sigstore-bundle", f"nope.whl={bundle_file}"]) == 2
    assert not (repo.public / "plugins" / "crypto").exists()
    assert registry_main([*args, "--sigstore-bundle", f"{wheels.crypto11}={bundle_file}"]) == 0
    assert len(_provenance(repo, wheels.crypto10)["attestation_bundles"]) == 1
    assert _provenance(repo, wheels.crypto11)["attestation_bundles"][1]["publisher"] == {
        "kind": "sigstore",
        "identity": RFC8785_WORKFLOW,
        "issuer": GITHUB_ACTIONS,
    }


def test_publish_refuses_a_bundle_for_another_file(
    repo: Repository, wheels: Wheels, tmp_path: Path
) -> None:
    # The real GitHub bundle signs rfc8785's wheel, not ours: refused, nothing published.
    given = {wheels.crypto10.name: vector(GITHUB_BUNDLE)}
    with pytest.raises(PublishRefusedError, match=r"signs sha256:c4e92e9e.*, not demo_crypto-1"):
        publish(repo, [wheels.crypto10], repo.key("crypto"), sigstore_bundles=given)
    assert not (repo.public / "plugins" / "crypto").exists()
    bad_file = tmp_path / "bundle.json"
    bad_file.write_bytes(vector(GITHUB_BUNDLE))
    code = registry_main(
        ["publish", str(repo.root), str(wheels.crypto10), "--key",
         str(repo.key_path("crypto")), "--sigstore-bundle", str(bad_file)]
    )  # fmt: skip
    assert code == PublishRefusedError.exit_code


def test_publish_refuses_malformed_bundles_and_immutable_changes(
    repo: Repository, wheels: Wheels, tmp_path: Path
) -> None:
    name = wheels.crypto10.name
    dsse = vector("a.dsse.staging-rekor-v2.txt.sigstore.json")
    for data, words in [
        (b"not json", "not a JSON Sigstore bundle"),
        (b"{}", "not a Sigstore bundle"),
        (dsse, "a DSSE"),
    ]:
        with pytest.raises(RegistryUsageError, match=words):
            publish(repo, [wheels.crypto10], repo.key("crypto"), sigstore_bundles={name: data})
    no_cert = json.loads(_bundle_for(wheels.crypto10, tmp_path).read_bytes())
    no_cert["verificationMaterial"] = {}
    with pytest.raises(RegistryUsageError, match="cannot read the signing certificate"):
        publish(
            repo,
            [wheels.crypto10],
            repo.key("crypto"),
            sigstore_bundles={name: json.dumps(no_cert).encode()},
        )
    # Published without a bundle: adding one later would change an immutable provenance.
    publish(repo, [wheels.crypto10], repo.key("crypto"))
    before = (repo.public / "plugins" / "crypto" / f"{name}.provenance").read_bytes()
    bundle = _bundle_for(wheels.crypto10, tmp_path).read_bytes()
    with pytest.raises(PublishRefusedError, match="already published without this Sigstore"):
        publish(repo, [wheels.crypto10], repo.key("crypto"), sigstore_bundles={name: bundle})
    assert (repo.public / "plugins" / "crypto" / f"{name}.provenance").read_bytes() == before
