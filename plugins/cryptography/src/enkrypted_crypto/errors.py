"""Exception root of ``enkrypted-crypto``, split by who is at fault (STYLE.md principle 3).

Every class derives from :class:`CryptoError` *and* from the shell's contract error of its fault
(``enkrypted_shell.contracts``), so the ui reacts without knowing this plugin:

* local misuse (:class:`~enkrypted_shell.contracts.LocalMisuse`):
  :class:`CryptoUsageError` — wrong argument types, sizes, states or configuration passed by our
  own code; :class:`UnsupportedPrimitive` — the selected backend lacks a primitive (the message
  names it and where to get it); :class:`HandshakeUsageError` — a handshake driven out of order
  (also the contract's :class:`~enkrypted_shell.contracts.HandshakeMisuse`).
* remote or hostile input (:class:`~enkrypted_shell.contracts.RemoteInputError`):
  :class:`MalformedKey` / :class:`MalformedInput` — input that fails structural checks (bad key
  encodings, wrong-size ciphertexts, low-order points); :class:`DecryptionFailed` — the ONE
  opaque authentication/decryption error, which carries no detail about which check failed and
  is the contract's :class:`~enkrypted_shell.contracts.CryptoFailure`;
  :class:`SessionStateError` — exported session state that cannot be restored (the contract's
  :class:`~enkrypted_shell.contracts.StateError`).

Foreign exceptions (pyca, PyNaCl) are translated at the backend boundary with ``raise ... from``.
"""

from __future__ import annotations

__all__ = [
    "CryptoError",
    "CryptoUsageError",
    "DecryptionFailed",
    "HandshakeUsageError",
    "MalformedInput",
    "MalformedKey",
    "SessionStateError",
    "UnsupportedPrimitive",
]

from collections.abc import Iterable

from enkrypted_shell.contracts import (
    CryptoFailure,
    HandshakeMisuse,
    LocalMisuse,
    RemoteInputError,
    StateError,
)


class CryptoError(Exception):
    """Root of every exception raised by the crypto distributions."""


class CryptoUsageError(CryptoError, LocalMisuse, ValueError):
    """Local misuse: an argument our own code passed is of the wrong size, type or range."""


class UnsupportedPrimitive(CryptoError, LocalMisuse):
    """The backend does not provide ``primitive``; ``alternatives`` names where it is available."""

    def __init__(self, primitive: str, backend: str, alternatives: Iterable[str] = ()) -> None:
        self.primitive = primitive
        self.backend = backend
        self.alternatives = tuple(alternatives)
        hint = f"; use {', '.join(self.alternatives)}" if self.alternatives else ""
        super().__init__(f"backend {backend!r} does not support {primitive!r}{hint}")


class MalformedInput(CryptoError, RemoteInputError):
    """Untrusted input failed a structural check (size, encoding) before any secret was used."""


class MalformedKey(MalformedInput):
    """An untrusted public key is malformed, out of range, or of low order."""


class DecryptionFailed(CryptoError, CryptoFailure):
    """Authentication or decryption failed.  Deliberately opaque: never says which check failed."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


class HandshakeUsageError(CryptoUsageError, HandshakeMisuse):
    """A handshake was driven wrongly: a PDU after it ended, its session before completion."""


class SessionStateError(CryptoError, StateError):
    """Exported session state is damaged, truncated, foreign or from another backend.

    Nothing is restored (fail closed); the message says what was wrong, never a secret.
    """
