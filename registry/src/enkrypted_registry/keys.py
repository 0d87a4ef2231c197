"""Ed25519 signing keys of the registry's TUF roles, stored as PKCS#8 PEM files.

Private key files are operator secrets: written with mode 0600, never below the served ``public/``
tree. Key ids are TUF key ids (sha256 of the canonical JSON of the public key, as securesystemslib
computes them), and the same id names the signer of a provenance envelope.
"""

from __future__ import annotations

__all__ = ["RoleKey", "generate_key", "load_key"]

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# securesystemslib.signer re-exports without __all__; these are its documented public names.
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

from .errors import RegistryUsageError


@dataclass(frozen=True, slots=True)
class RoleKey:
    """A private Ed25519 key with its securesystemslib signer and TUF public key."""

    private: Ed25519PrivateKey
    signer: CryptoSigner

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> RoleKey:
        return cls(private, CryptoSigner(private, SSlibKey.from_crypto(private.public_key())))

    @property
    def public(self) -> SSlibKey:
        key = self.signer.public_key
        assert isinstance(key, SSlibKey)
        return key

    @property
    def keyid(self) -> str:
        return str(self.public.keyid)


def generate_key(path: Path) -> RoleKey:
    """Create a new Ed25519 key at ``path`` (0600, refusing to overwrite) and return it."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return RoleKey.of(private)


def load_key(path: Path) -> RoleKey:
    """Load an Ed25519 PKCS#8 PEM private key file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryUsageError(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise RegistryUsageError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise RegistryUsageError(f"{path} is not an Ed25519 key")
    return RoleKey.of(private)
