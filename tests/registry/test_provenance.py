"""verify_provenance / TrustPolicy against provenance produced by the registry, and forgeries."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

from enkrypted_registry import Repository, inspect_wheel
from enkrypted_registry.attestation import build_statement, provenance_document, sign_envelope
from enkrypted_registry.keys import RoleKey
from enkrypted_shell._trust.dsse import pae
from enkrypted_shell._trust.policy import PublisherKey, SigstoreIdentity, TrustPolicy, ed25519_keyid
from enkrypted_shell._trust.provenance import content_digest, verify_provenance
from enkrypted_shell.errors import ProvenanceError, ShellUsageError
from enkrypted_shell.limits import LIMITS
from tests.registry.support import Wheels


def _pub_hex(key: RoleKey) -> str:
    return (
        key.private.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )


def policy_for(repo: Repository) -> TrustPolicy:
    lines = ["version = 1"]
    for slot in ("crypto", "p2p", "ui"):
        lines += [f"[slots.{slot}]", f'keys = ["{_pub_hex(repo.key(slot))}"]']
    return TrustPolicy.from_toml("\n".join(lines))


def provenance_of(repo: Repository, wheel: Path) -> bytes:
    info = inspect_wheel(wheel)
    return (repo.public / "plugins" / info.slot / f"{wheel.name}.provenance").read_bytes()


def _forge(wheel: Path, key: RoleKey, **changes: Any) -> bytes:
    """A provenance object for ``wheel`` signed by ``key`` with predicate fields overridden."""
    info = inspect_wheel(wheel)
    statement = build_statement(info, publisher_keyid=key.keyid)
    statement["predicate"].update(changes)
    payload = json.dumps(statement).encode()
    envelope = sign_envelope(payload, key.private, key.keyid)
    return json.dumps(
        {
            "version": 1,
            "attestation_bundles": [
                {
                    "publisher": {"kind": "enkrypted-key", "keyid": key.keyid},
                    "attestations": [envelope],
                }
            ],
        }
    ).encode()


def test_pae_matches_dsse_spec_example() -> None:
    # DSSE protocol.md test vector.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("t", b"") == b"DSSEv1 1 t 0 "


@pytest.mark.parametrize(
    ("payload_type", "payload"),
    [
        ("", b""),
        ("application/vnd.in-toto+json", b'{"_type": "https://in-toto.io/Statement/v1"}'),
        ("t\u00e9\u4e2d", b"\x00\xff binary"),
        ("with space", b"DSSEv1 3 abc 4 body with spaces"),
    ],
)
def test_pae_equals_securesystemslib(payload_type: str, payload: bytes) -> None:
    """ADR 0007: ours is written out for start-up cost and pinned to the library's."""
    from securesystemslib.dsse import Envelope

    assert pae(payload_type, payload) == Envelope(payload, payload_type, {}).pae()


def test_keyid_matches_securesystemslib() -> None:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert ed25519_keyid(raw) == SSlibKey.from_crypto(private.public_key()).keyid


def test_published_provenance_verifies(published: Repository, wheels: Wheels) -> None:
    info = inspect_wheel(wheels.crypto10)
    result = verify_provenance(
        provenance_of(published, wheels.crypto10),
        policy=policy_for(published),
        slot="crypto",
        wheel_sha256=info.sha256,
        content_digest=info.content_digest,
        wheel_filename=wheels.crypto10.name,
    )
    assert (result.plugin, result.distribution, result.version, result.slot) == (
        "demo-crypto",
        "demo-crypto",
        "1.0.0",
        "crypto",
    )
    assert result.signer_keyid == published.key("crypto").keyid
    assert result.wheel_sha256 == hashlib.sha256(wheels.crypto10.read_bytes()).hexdigest()
    assert dict(result.files) == dict(info.files)
    assert result.content_digest == info.content_digest == content_digest(result.files)


def test_bare_envelope_is_accepted(published: Repository, wheels: Wheels) -> None:
    document = json.loads(provenance_of(published, wheels.crypto10))
    envelope = document["attestation_bundles"][0]["attestations"][0]
    result = verify_provenance(
        json.dumps(envelope).encode(), policy=policy_for(published), slot="crypto"
    )
    assert result.version == "1.0.0"


def test_crypto_provenance_signed_by_ui_key_is_named(repo: Repository, wheels: Wheels) -> None:
    forged = _forge(wheels.crypto10, repo.key("ui"))
    with pytest.raises(ProvenanceError, match=r"provenance for crypto plugin signed by the ui key"):
        verify_provenance(forged, policy=policy_for(repo), slot="crypto")


def test_unknown_key_is_refused(repo: Repository, wheels: Wheels) -> None:
    stranger = RoleKey.of(Ed25519PrivateKey.generate())
    with pytest.raises(ProvenanceError, match=r"which trust.toml does not list"):
        verify_provenance(_forge(wheels.crypto10, stranger), policy=policy_for(repo), slot="crypto")


def test_tampered_payload_is_bad_signature(published: Repository, wheels: Wheels) -> None:
    document = json.loads(provenance_of(published, wheels.crypto10))
    envelope = document["attestation_bundles"][0]["attestations"][0]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["version"] = "9.9.9"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(ProvenanceError, match="bad DSSE signature by the crypto key"):
        verify_provenance(
            json.dumps(document).encode(), policy=policy_for(published), slot="crypto"
        )


def test_wrong_payload_type_is_refused(published: Repository, wheels: Wheels) -> None:
    document = json.loads(provenance_of(published, wheels.crypto10))
    document["attestation_bundles"][0]["attestations"][0]["payloadType"] = "text/plain"
    with pytest.raises(ProvenanceError, match="payloadType"):
        verify_provenance(
            json.dumps(document).encode(), policy=policy_for(published), slot="crypto"
        )


def test_digest_mismatch(published: Repository, wheels: Wheels) -> None:
    data = provenance_of(published, wheels.crypto10)
    policy = policy_for(published)
    with pytest.raises(ProvenanceError, match=r"digest mismatch: .*wheel sha256"):
        verify_provenance(data, policy=policy, slot="crypto", wheel_sha256="00" * 32)
    with pytest.raises(ProvenanceError, match=r"digest mismatch: installed .* content digest"):
        verify_provenance(data, policy=policy, slot="crypto", content_digest="sha256:" + "00" * 32)


def test_subject_mismatch(published: Repository, wheels: Wheels) -> None:
    data = provenance_of(published, wheels.crypto10)
    with pytest.raises(ProvenanceError, match="subject mismatch"):
        verify_provenance(
            data, policy=policy_for(published), slot="crypto", wheel_filename=wheels.crypto11.name
        )
    # Signed statement whose subject names another version than the predicate.
    forged = _forge(wheels.crypto10, published.key("crypto"), version="1.1.0")
    with pytest.raises(ProvenanceError, match="subject mismatch"):
        verify_provenance(forged, policy=policy_for(published), slot="crypto")


def test_file_list_must_match_signed_content_digest(repo: Repository, wheels: Wheels) -> None:
    info = inspect_wheel(wheels.crypto10)
    files = [list(f) for f in info.files]
    files[0][1] = "ab" * 32
    forged = _forge(wheels.crypto10, repo.key("crypto"), files=files)
    with pytest.raises(ProvenanceError, match="digest mismatch: the signed content digest"):
        verify_provenance(forged, policy=policy_for(repo), slot="crypto")


def test_loaded_as_other_slot(published: Repository, wheels: Wheels) -> None:
    # The ui slot trusts the crypto key too, but the statement says crypto.
    crypto_hex = _pub_hex(published.key("crypto"))
    policy = TrustPolicy.from_toml(f'[slots.ui]\nkeys = ["{crypto_hex}"]\n')
    with pytest.raises(
        ProvenanceError, match="is for a crypto plugin but demo-crypto is loaded as ui"
    ):
        verify_provenance(provenance_of(published, wheels.crypto10), policy=policy, slot="ui")


def test_slot_missing_from_policy_allows_nobody(published: Repository, wheels: Wheels) -> None:
    with pytest.raises(ProvenanceError):
        verify_provenance(
            provenance_of(published, wheels.crypto10),
            policy=TrustPolicy.from_toml(""),
            slot="crypto",
        )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"{}",
        b'{"version": 1, "attestation_bundles": []}',
        b'{"payloadType": "application/vnd.in-toto+json", "payload": "%%"}',
        b"x" * (LIMITS.provenance_bytes + 1),
    ],
)
def test_malformed_input_fails_closed(repo: Repository, data: bytes) -> None:
    with pytest.raises(ProvenanceError):
        verify_provenance(data, policy=policy_for(repo), slot="crypto")


def test_policy_parsing_and_allows(repo: Repository) -> None:
    key = repo.key("crypto")
    pem = (
        key.private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    text = f'''
version = 1
[slots.crypto]
keys = ["""{pem}"""]
sigstore = [{{ identity = "me@example.com", issuer = "https://accounts.example.com" }}]
[slots.ui]
keys = ["{_pub_hex(repo.key("ui"))}"]
'''
    policy = TrustPolicy.from_toml(text)
    assert policy.allows("crypto", key.keyid)
    assert policy.allows("crypto", PublisherKey.from_text(_pub_hex(key)))
    assert not policy.allows("ui", key.keyid)
    assert not policy.allows("p2p", key.keyid)
    assert policy.allows(
        "crypto", SigstoreIdentity("me@example.com", "https://accounts.example.com")
    )
    assert not policy.allows("crypto", SigstoreIdentity("me@example.com", "https://evil.example"))
    assert policy.slots_of_key(repo.key("ui").keyid) == ("ui",)


@pytest.mark.parametrize(
    "text",
    [
        "[slots.gpu]\nkeys = []",
        "[slots.crypto]\nkey = []",
        '[slots.crypto]\nkeys = ["abcd"]',
        "[slots.crypto]\nsigstore = [{ identity = 'x' }]",
        "version = 2",
        "unknown = 1",
        "not toml [",
    ],
)
def test_bad_policy_is_an_error(text: str) -> None:
    with pytest.raises(ShellUsageError):
        TrustPolicy.from_toml(text)


def test_policy_from_registry_targets(published: Repository, wheels: Wheels) -> None:
    policy = TrustPolicy.from_tuf_targets((published.tuf_dir / "targets.json").read_bytes())
    for slot in ("crypto", "p2p", "ui"):
        assert policy.allows(slot, published.key(slot).keyid)
    assert not policy.allows("crypto", published.key("ui").keyid)
    verify_provenance(provenance_of(published, wheels.crypto10), policy=policy, slot="crypto")


def test_content_digest_equals_installed_record(wheels: Wheels, tmp_path: Path) -> None:
    """The wheel's content digest equals the one computed from an installed RECORD."""
    import subprocess
    import sys

    from tests.registry.support import pip_env

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--isolated",
            "--no-index",
            "--no-deps",
            "--target",
            str(tmp_path),
            str(wheels.crypto10),
        ],
        check=True,
        env=pip_env(),
        timeout=120,
    )
    record = next(tmp_path.glob("*.dist-info/RECORD")).read_text()
    entries = []
    for line in record.splitlines():
        path, digest, _ = line.rsplit(",", 2)
        if digest:
            b64 = digest.removeprefix("sha256=")
            entries.append((path, base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()))
    assert any(p.endswith("INSTALLER") for p, _ in entries)  # installer files are excluded
    assert content_digest(entries) == inspect_wheel(wheels.crypto10).content_digest


def test_registry_and_shell_digest_rules_agree() -> None:
    from enkrypted_registry.wheel import content_digest as registry_digest

    entries = [
        ("pkg/a.py", "11" * 32),
        ("pkg/__pycache__/a.cpython-311.pyc", "22" * 32),
        ("pkg-1.dist-info/INSTALLER", "33" * 32),
        ("pkg-1.dist-info/direct_url.json", "44" * 32),
        ("../../bin/tool", "55" * 32),
        ("pkg-1.dist-info/METADATA", "66" * 32),
    ]
    assert registry_digest(entries) == content_digest(entries)
    assert content_digest(entries) == content_digest(entries[:1] + entries[5:])


def test_provenance_document_shape(repo: Repository, wheels: Wheels) -> None:
    info = inspect_wheel(wheels.crypto10)
    key = repo.key("crypto")
    doc = json.loads(provenance_document(info, key.private, key.keyid))
    assert doc["version"] == 1
    bundle = doc["attestation_bundles"][0]
    assert bundle["publisher"] == {"kind": "enkrypted-key", "keyid": key.keyid, "slot": "crypto"}
    envelope = bundle["attestations"][0]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": info.filename, "digest": {"sha256": info.sha256}}]
    predicate = statement["predicate"]
    assert predicate["manifest"]["plugin"]["slot"] == "crypto"
    with zipfile.ZipFile(wheels.crypto10) as archive:
        manifest = archive.read("demo_crypto/enkrypted-plugin.toml")
    assert predicate["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert predicate["content_digest"] == info.content_digest
