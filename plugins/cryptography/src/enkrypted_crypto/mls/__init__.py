"""MLS (RFC 9420) group engine: sans-I/O, pure Python over pyca/cryptography.

All seven cipher suites of RFC 9420 §17.1 (X25519/X448/P-256/P-384/P-521, AES-GCM and
ChaCha20-Poly1305, Ed25519/Ed448/ECDSA).  See ``docs/mls.md`` for what is and is not
implemented, and ``docs/adr/`` for why the codec and engine are hand-written.

Typical use::

    bundle = new_key_package_bundle(1, b"alice", signature_priv, now)
    group = Group.create(1, group_id, bundle)
    out = group.add([key_package_bytes])          # -> CommitOutput(commit, welcome)
    bob = Group.join(out.welcome, bob_bundle)
    bob.process(group.protect(b"hi"))             # -> ApplicationMessage
"""

from __future__ import annotations

__all__ = [
    "SUITES",
    "ApplicationMessage",
    "CommitApplied",
    "CommitOutput",
    "Credential",
    "CredentialValidator",
    "Group",
    "GroupConfig",
    "KeyPackageBundle",
    "ProposalQueued",
    "identity_key_validator",
    "key_package_message",
    "new_key_package_bundle",
    "suite",
]

from enkrypted_crypto.mls._envelopes import (
    MLSMessage,
)
from enkrypted_crypto.mls._events import (
    ApplicationMessage,
    CommitApplied,
    CommitOutput,
    GroupConfig,
    ProposalQueued,
)
from enkrypted_crypto.mls._group import Group
from enkrypted_crypto.mls._keypackage import (
    CredentialValidator,
    KeyPackageBundle,
    identity_key_validator,
    new_key_package,
)
from enkrypted_crypto.mls._messages import (
    KEY_PACKAGE,
    Credential,
    to_bytes,
)
from enkrypted_crypto.mls._suite import SUITES, suite


def new_key_package_bundle(
    suite_id: int, identity: bytes, signature_priv: bytes, now: int
) -> KeyPackageBundle:
    """A fresh KeyPackage with a basic credential for ``identity`` and its private keys."""
    return new_key_package(suite(suite_id), identity, signature_priv, now)


def key_package_message(bundle: KeyPackageBundle) -> bytes:
    """The KeyPackage as an MLSMessage, ready to publish."""
    return to_bytes(MLSMessage(KEY_PACKAGE, bundle.key_package))
