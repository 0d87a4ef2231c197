"""File-transfer PDUs: limits, errors, and the compact binary encoding (docs/protocol.md,
"File transfer").

Two link frames carry them next to the chat's ``0x01`` / ``0x02`` (and the session's resume
``0x03`` / ``0x04``):

* ``0x05 || seal(pdu)`` - a control PDU or a standard-path chunk, sealed by the session;
* ``0x06 || tid(16) || round u32 || index u32 || AES-256-GCM(ct || tag)`` - a fast-path chunk.

Every field is bounded and checked here, before the core looks at it: a PDU that does not decode
raises :class:`MalformedFilePdu` (the core drops and counts it).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any, Final

from enkrypted_shell.contracts import LocalMisuse

from ..errors import P2PError, P2PUsageError, RemoteInputError

SEALED_FRAME: Final = 0x05
FAST_FRAME: Final = 0x06

OFFER: Final = 0x10
ACCEPT: Final = 0x11
RESUME: Final = 0x12
REJECT: Final = 0x13
CANCEL: Final = 0x14
ACK: Final = 0x15
CHUNK: Final = 0x16
DONE: Final = 0x17

TID_BYTES: Final = 16
SHARE_BYTES: Final = 32
MAX_NAME_BYTES: Final = 1024
MAX_MEDIA_TYPE: Final = 127
MIN_CHUNK: Final = 1024
MAX_CHUNK: Final = 1024 * 1024
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}")

_OFFER = struct.Struct(">B16sQIB32s32sH")
_GRANT = struct.Struct(">B16sIII32s")  # ACCEPT / RESUME: round, from, window, share
_REASON = struct.Struct(">B16sB")  # REJECT / CANCEL / DONE
_ACK = struct.Struct(">B16sIII")
_CHUNK = struct.Struct(">B16sII")
FAST_HEADER: Final = struct.Struct(">B16sII")

FLAG_FAST: Final = 0x01

# reasons on the wire (REJECT / CANCEL / DONE), one byte each
REASONS: Final = ("ok", "declined", "too-large", "no-space", "busy", "cancelled",
                  "hash-mismatch", "too-many-retries", "failed")


class FileTransferError(P2PError):
    """Root of the file-transfer errors."""


class FileUsageError(FileTransferError, P2PUsageError, LocalMisuse):
    """The caller asked for something meaningless (unknown transfer, wrong state, bad size)."""


class MalformedFilePdu(FileTransferError, RemoteInputError):
    """A file PDU from the peer does not decode or breaks a bound."""


class InsufficientSpace(FileUsageError):
    """Not enough free disk (or above the size limit) to accept an offered file."""


@dataclass(frozen=True, slots=True)
class FileLimits:
    """Bounds on file transfers (ours; the spec has none for the standard path beyond P8)."""

    max_file_bytes: int = 64 * 1024**3
    """An offer above this is rejected (``too-large``) before the user is asked."""
    chunk_bytes: int = 64 * 1024
    """Plaintext bytes per chunk we send (1 KiB..1 MiB; the offer carries it)."""
    window_chunks: int = 32
    """Chunks in flight per transfer that the receiver grants (bounded memory on the link)."""
    max_incoming: int = 16
    """Incoming transfers (offered or running) at once; more offers are rejected ``busy``."""
    max_outgoing: int = 64
    max_rounds: int = 256
    """Re-requests (a round each) before a transfer fails ``too-many-retries``."""
    stall_timeout_s: float = 30.0
    """A running incoming transfer without progress for this long is re-requested."""
    free_disk_reserve_bytes: int = 64 * 1024 * 1024
    """Free disk that must remain after an accepted file is written."""

    def __post_init__(self) -> None:
        if not MIN_CHUNK <= self.chunk_bytes <= MAX_CHUNK:
            raise FileUsageError(f"FileLimits.chunk_bytes must be {MIN_CHUNK}..{MAX_CHUNK}")
        for name in ("max_file_bytes", "window_chunks", "max_incoming", "max_outgoing",
                     "max_rounds", "stall_timeout_s", "free_disk_reserve_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise FileUsageError(f"FileLimits.{name} must be a positive number, not {value!r}")


# ------------------------------------------------------------------------------------- PDUs
@dataclass(frozen=True, slots=True)
class Offer:
    tid: bytes
    size: int
    chunk_size: int
    fast: bool
    sha256: bytes
    share: bytes
    name: str
    media_type: str


@dataclass(frozen=True, slots=True)
class Grant:
    """ACCEPT (first) or RESUME (later): send from chunk ``start`` in ``round``."""

    kind: int
    tid: bytes
    round: int
    start: int
    window: int
    share: bytes


@dataclass(frozen=True, slots=True)
class Reason:
    """REJECT, CANCEL or DONE with a reason from :data:`REASONS`."""

    kind: int
    tid: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Ack:
    tid: bytes
    round: int
    next: int
    window: int


@dataclass(frozen=True, slots=True)
class Chunk:
    tid: bytes
    round: int
    index: int
    data: bytes


FilePdu = Offer | Grant | Reason | Ack | Chunk


def chunk_count(size: int, chunk_size: int) -> int:
    return -(-size // chunk_size)


def encode(pdu: FilePdu) -> bytes:
    if isinstance(pdu, Offer):
        name, media = pdu.name.encode("utf-8"), pdu.media_type.encode("ascii")
        if len(name) > MAX_NAME_BYTES or (media and not _MEDIA_TYPE.fullmatch(pdu.media_type)):
            raise FileUsageError("an offer needs a name of at most 1024 bytes and a "
                                 "type/subtype media type")
        head = _OFFER.pack(OFFER, pdu.tid, pdu.size, pdu.chunk_size, FLAG_FAST if pdu.fast else 0,
                           pdu.sha256, pdu.share, len(name))
        return head + name + bytes([len(media)]) + media
    if isinstance(pdu, Grant):
        return _GRANT.pack(pdu.kind, pdu.tid, pdu.round, pdu.start, pdu.window, pdu.share)
    if isinstance(pdu, Reason):
        return _REASON.pack(pdu.kind, pdu.tid, REASONS.index(pdu.reason))
    if isinstance(pdu, Ack):
        return _ACK.pack(ACK, pdu.tid, pdu.round, pdu.next, pdu.window)
    return _CHUNK.pack(CHUNK, pdu.tid, pdu.round, pdu.index) + pdu.data


def decode(data: bytes) -> FilePdu:
    """One PDU from the plaintext of a ``0x05`` frame; :class:`MalformedFilePdu` if it is not."""
    kind = data[0] if data else -1
    try:
        if kind == OFFER:
            return _decode_offer(data)
        if kind in (ACCEPT, RESUME):
            _, tid, rnd, start, window, share = _exact(_GRANT, data)
            return Grant(kind, tid, rnd, start, window, share)
        if kind in (REJECT, CANCEL, DONE):
            _, tid, code = _exact(_REASON, data)
            if code >= len(REASONS):
                raise MalformedFilePdu(f"unknown reason code {code}")
            return Reason(kind, tid, REASONS[code])
        if kind == ACK:
            _, tid, rnd, nxt, window = _exact(_ACK, data)
            return Ack(tid, rnd, nxt, window)
        if kind == CHUNK:
            _, tid, rnd, index = _CHUNK.unpack_from(data)
            return Chunk(tid, rnd, index, data[_CHUNK.size:])
    except struct.error as exc:
        raise MalformedFilePdu(f"file PDU 0x{kind:02x} truncated") from exc
    raise MalformedFilePdu(f"unknown file PDU kind {kind}")


def _exact(layout: struct.Struct, data: bytes) -> tuple[Any, ...]:
    if len(data) != layout.size:
        raise MalformedFilePdu(f"file PDU 0x{data[0]:02x} is {len(data)} bytes, not {layout.size}")
    return layout.unpack(data)


def _decode_offer(data: bytes) -> Offer:
    _, tid, size, chunk_size, flags, digest, share, name_len = _OFFER.unpack_from(data)
    if name_len > MAX_NAME_BYTES or flags & ~FLAG_FAST:
        raise MalformedFilePdu("offer: name too long or unknown flags")
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise MalformedFilePdu(f"offer: chunk size {chunk_size} outside {MIN_CHUNK}..{MAX_CHUNK}")
    if chunk_count(size, chunk_size) > 0xFFFFFFFF:
        raise MalformedFilePdu("offer: more than 2**32 chunks")
    at = _OFFER.size
    raw_name = data[at:at + name_len]
    media_len = data[at + name_len] if len(data) > at + name_len else -1
    media = data[at + name_len + 1:]
    if len(raw_name) != name_len or media_len != len(media):
        raise MalformedFilePdu("offer: name or media type length does not match the PDU")
    try:
        name, media_type = raw_name.decode("utf-8"), media.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MalformedFilePdu("offer: name is not UTF-8 or media type not ASCII") from exc
    if media_type and not _MEDIA_TYPE.fullmatch(media_type):
        raise MalformedFilePdu("offer: media type is not type/subtype")
    return Offer(tid, size, chunk_size, bool(flags & FLAG_FAST), digest, share, name, media_type)
