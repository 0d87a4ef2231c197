"""Exception root of ``enkrypted-crypto``, split by who is at fault (STYLE.md principle 3).

* :class:`CryptoUsageError` — local misuse: wrong argument types or sizes passed by our own code.
* :class:`UnsupportedPrimitive` — the selected backend lacks a primitive; the message names the
  primitive and where to get it.
* :class:`MalformedKey` / :class:`MalformedInput` — remote or hostile input that fails structural
  checks (bad key encodings, wrong-size ciphertexts, low-order points).
* :class:`DecryptionFailed` — the ONE opaque authentication/decryption error.  It carries no
  detail about which check failed and is also the shell's
  :class:`~enkrypted_shell.contracts.CryptoFailure`.

Foreign exceptions (pyca, PyNaCl) are translated at the backend boundary with ``raise ... from``.
"""

from __future__ import annotations

__all__ = [
    "CryptoError",
    "CryptoUsageError",
    "DecryptionFailed",
    "MalformedInput",
    "MalformedKey",
    "UnsupportedPrimitive",
]

from collections.abc import Iterable

from enkrypted_shell.contracts import CryptoFailure


class CryptoError(Exception):
    """Root of every exception raised by the crypto distributions."""


class CryptoUsageError(CryptoError, ValueError):
    """Local misuse: an argument our own code passed is of the wrong size, type or range."""


class UnsupportedPrimitive(CryptoError):
    """The backend does not provide ``primitive``; ``alternatives`` names where it is available."""

    def __init__(self, primitive: str, backend: str, alternatives: Iterable[str] = ()) -> None:
        self.primitive = primitive
        self.backend = backend
        self.alternatives = tuple(alternatives)
        hint = f"; use {', '.join(self.alternatives)}" if self.alternatives else ""
        super().__init__(f"backend {backend!r} does not support {primitive!r}{hint}")


class MalformedInput(CryptoError):
    """Untrusted input failed a structural check (size, encoding) before any secret was used."""


class MalformedKey(MalformedInput):
    """An untrusted public key is malformed, out of range, or of low order."""


class DecryptionFailed(CryptoError, CryptoFailure):
    """Authentication or decryption failed.  Deliberately opaque: never says which check failed."""

    def __init__(self) -> None:
        super().__init__("decryption failed")
