"""The local trust policy (``trust.toml``): who may publish which slot.

Pure: parses text, answers questions, does no I/O. Example::

    version = 1

    [slots.crypto]
    # Ed25519 public keys: 64 hex chars (raw key) or a PEM "PUBLIC KEY" block.
    keys = ["9f1c…e2"]
    # Sigstore identities (certificate SAN + OIDC issuer, matched exactly). Listing any makes a
    # Sigstore bundle REQUIRED for this slot (provenance.verify_release). `instance` is
    # "production" (default) or "staging": which trust root shipped in sigstore-python applies.
    sigstore = [
      { identity = "https://github.com/acme/enkrypted-crypto/.github/workflows/release.yml@refs/tags/v1.0.0",
        issuer = "https://token.actions.githubusercontent.com" },
    ]

    [slots.ui]
    keys = ["-----BEGIN PUBLIC KEY-----\\n…\\n-----END PUBLIC KEY-----\\n"]

A key is named by its TUF key id: sha256 over the canonical JSON of
``{"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": "<hex>"}}`` - the id the registry's
TUF metadata and its DSSE envelopes use. Unknown tables, keys or slots are errors (a typo must not
silently widen or narrow the policy).

Semantics per slot: the DSSE provenance must be signed by one of ``keys`` (always required: it
carries the signed file list). When ``sigstore`` lists identities, the release must also carry a
Sigstore bundle for the wheel that verifies under one of them; a Sigstore bundle that is present
must verify under a listed identity whether or not the slot requires one (fail closed).
"""

from __future__ import annotations

__all__ = [
    "PublisherKey",
    "SigstoreIdentity",
    "TrustPolicy",
    "ed25519_keyid",
]

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..contracts import SLOTS
from ..errors import ShellUsageError
from ..limits import LIMITS

_HEX_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_SLOT_FIELDS = frozenset({"keys", "sigstore"})
_SIGSTORE_FIELDS = frozenset({"identity", "issuer", "instance"})
SIGSTORE_INSTANCES = ("production", "staging")


def ed25519_keyid(raw_public_key: bytes) -> str:
    """TUF/securesystemslib default key id of an Ed25519 public key."""
    body = {"keytype": "ed25519", "keyval": {"public": raw_public_key.hex()}, "scheme": "ed25519"}
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":")
    )  # ASCII-only: = OLPC canonical
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


class PublisherKey(NamedTuple):
    """An Ed25519 publisher key allowed by the policy."""

    keyid: str
    raw: bytes  # 32-byte raw public key

    @classmethod
    def from_text(cls, text: str, *, source: str = "trust.toml") -> PublisherKey:
        """Accept 64 hex characters or a PEM ``PUBLIC KEY`` block."""
        stripped = text.strip()
        if _HEX_KEY_RE.match(stripped.lower()):
            raw = bytes.fromhex(stripped)
        else:
            # PEM keys are rare in policies; the PEM machinery stays out of every start-up.
            from cryptography.exceptions import UnsupportedAlgorithm
            from cryptography.hazmat.primitives import serialization

            try:
                key = serialization.load_pem_public_key(stripped.encode("ascii"))
            except (ValueError, UnicodeEncodeError, UnsupportedAlgorithm) as exc:
                raise ShellUsageError(
                    f"{source}: key {stripped[:24]!r}… is neither 64 hex chars nor a PEM public key"
                ) from exc
            if not isinstance(key, Ed25519PublicKey):
                raise ShellUsageError(f"{source}: only Ed25519 publisher keys are supported")
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(keyid=ed25519_keyid(raw), raw=raw)

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)


class SigstoreIdentity(NamedTuple):
    """A Sigstore signing identity: certificate SAN and OIDC issuer, matched exactly, under the
    trust root of one Sigstore ``instance`` ("production" or "staging")."""

    identity: str
    issuer: str
    instance: str = "production"

    def __str__(self) -> str:
        where = "" if self.instance == "production" else f", {self.instance}"
        return f"{self.identity} (issuer {self.issuer}{where})"


class SlotPolicy(NamedTuple):
    """Who may publish one slot."""

    keys: tuple[PublisherKey, ...] = ()
    sigstore: tuple[SigstoreIdentity, ...] = ()


class TrustPolicy(NamedTuple):
    """Per-slot allowed publishers. A slot absent from the policy allows nobody (fail closed)."""

    slots: Mapping[str, SlotPolicy] = MappingProxyType({})

    @classmethod
    def from_toml(cls, text: str | bytes, *, source: str = "trust.toml") -> TrustPolicy:
        """Parse ``trust.toml`` (text, or the file's bytes, which must be UTF-8); raise
        :class:`ShellUsageError` naming the bad entry."""
        try:
            data = text if isinstance(text, bytes) else text.encode("utf-8")
            if len(data) > LIMITS.policy_bytes:
                raise ShellUsageError(f"{source}: larger than {LIMITS.policy_bytes} bytes")
            doc = tomllib.loads(data.decode("utf-8"))
        except UnicodeError as exc:  # not UTF-8 (bytes), or lone surrogates (text)
            raise ShellUsageError(f"{source}: not UTF-8 text ({exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ShellUsageError(f"{source}: not valid TOML ({exc})") from exc
        except RecursionError as exc:
            raise ShellUsageError(f"{source}: not valid TOML (nested too deeply)") from exc
        if doc.get("version", 1) != 1:
            raise ShellUsageError(f"{source}: unsupported version {doc.get('version')!r} (want 1)")
        unknown = set(doc) - {"version", "slots"}
        if unknown:
            raise ShellUsageError(f"{source}: unknown top-level keys {sorted(unknown)}")
        slots = doc.get("slots", {})
        if not isinstance(slots, dict):
            raise ShellUsageError(f"{source}: [slots] must be a table")
        return cls({slot: _slot_policy(slot, table, source) for slot, table in slots.items()})

    @classmethod
    def from_tuf_targets(cls, targets_json: bytes) -> TrustPolicy:
        """Policy = the registry's per-slot delegated keys, from its top-level targets metadata.

        Only meaningful for metadata already verified by a TUF client against a pinned root
        (trust on first use of the registry); this function does not check signatures.
        """
        if len(targets_json) > LIMITS.targets_metadata_bytes:
            raise ShellUsageError("targets metadata too large")
        try:
            signed = json.loads(targets_json)["signed"]
            delegations = signed["delegations"]
            keys, roles = delegations["keys"], delegations["roles"]
            result: dict[str, SlotPolicy] = {}
            for role in roles:
                if role["name"] not in SLOTS:
                    continue
                raws = [
                    bytes.fromhex(keys[k]["keyval"]["public"])
                    for k in role["keyids"]
                    if keys[k]["keytype"] == "ed25519"
                ]
                if any(len(r) != 32 for r in raws):
                    raise ValueError(f"an ed25519 key of role {role['name']} is not 32 bytes")
                result[role["name"]] = SlotPolicy(
                    keys=tuple(PublisherKey(ed25519_keyid(r), r) for r in raws)
                )
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ShellUsageError(f"registry targets metadata is malformed ({exc!r})") from exc
        return cls(result)

    def allows(self, slot: str, publisher: str | PublisherKey | SigstoreIdentity) -> bool:
        """Whether ``publisher`` (a key id, key or Sigstore identity) may publish ``slot``."""
        policy = self.slots.get(slot)
        if policy is None:
            return False
        if isinstance(publisher, SigstoreIdentity):
            return publisher in policy.sigstore
        keyid = publisher.keyid if isinstance(publisher, PublisherKey) else publisher
        return any(key.keyid == keyid for key in policy.keys)

    def key(self, slot: str, keyid: str) -> PublisherKey | None:
        """The allowed key of ``slot`` with this key id, if any."""
        policy = self.slots.get(slot)
        return next((k for k in policy.keys if k.keyid == keyid), None) if policy else None

    def sigstore_identities(self, slot: str) -> tuple[SigstoreIdentity, ...]:
        """The Sigstore identities allowed for ``slot``; non-empty means a bundle is required."""
        policy = self.slots.get(slot)
        return policy.sigstore if policy else ()

    def slots_of_sigstore(self, identity: str, issuer: str) -> tuple[str, ...]:
        """Every slot listing this SAN + issuer (any instance; used to name culprits in errors)."""
        return tuple(
            s
            for s, p in sorted(self.slots.items())
            if any((i.identity, i.issuer) == (identity, issuer) for i in p.sigstore)
        )

    def slots_of_key(self, keyid: str) -> tuple[str, ...]:
        """Every slot that allows this key id (used to name the culprit in errors)."""
        return tuple(
            s for s, p in sorted(self.slots.items()) if any(k.keyid == keyid for k in p.keys)
        )

    def any_key(self, keyid: str) -> PublisherKey | None:
        """The key with this id under any slot."""
        for policy in self.slots.values():
            for key in policy.keys:
                if key.keyid == keyid:
                    return key
        return None


def _slot_policy(slot: str, table: object, source: str) -> SlotPolicy:
    where = f"{source}: [slots.{slot}]"
    if slot not in SLOTS:
        raise ShellUsageError(f"{where}: unknown slot; slots are {', '.join(SLOTS)}")
    if not isinstance(table, dict):
        raise ShellUsageError(f"{where} must be a table")
    unknown = set(table) - _SLOT_FIELDS
    if unknown:
        raise ShellUsageError(f"{where}: unknown keys {sorted(unknown)}")
    keys = table.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ShellUsageError(f"{where}: keys must be a list of strings")
    identities = table.get("sigstore", [])
    if not isinstance(identities, list):
        raise ShellUsageError(f"{where}: sigstore must be a list of {{identity, issuer}} tables")
    parsed: list[SigstoreIdentity] = []
    for entry in identities:
        if (
            not isinstance(entry, dict)
            or not {"identity", "issuer"} <= set(entry) <= _SIGSTORE_FIELDS
            or not all(isinstance(v, str) and v for v in entry.values())
        ):
            raise ShellUsageError(
                f"{where}: each sigstore entry needs identity and issuer (and optionally instance)"
            )
        instance = entry.get("instance", "production")
        if instance not in SIGSTORE_INSTANCES:
            raise ShellUsageError(
                f"{where}: sigstore instance {instance!r} is not one of "
                f"{', '.join(SIGSTORE_INSTANCES)}"
            )
        parsed.append(SigstoreIdentity(entry["identity"], entry["issuer"], instance))
    return SlotPolicy(
        keys=tuple(PublisherKey.from_text(k, source=where) for k in keys),
        sigstore=tuple(parsed),
    )
