"""Link framing of a Ready session, its bounds, and what goes inside the seal (sans-I/O, pure).

**Link framing once Ready** (ours; the binary profile's own framing, the JSON ``__mls_chunk__``
carrier of Profile-v0 is not used on this transport):

* ``0x01 || sealed`` - one whole sealed message (sealed length <= ``chunk_bytes``);
* ``0x02 || seq u64 || index u32 || total u32 || data`` - chunk ``index`` of ``total`` of the
  sealed message ``seq`` (data <= ``chunk_bytes``, 8192; total <= 4096 and <= the 16 MiB cap).

**Inside the seal** (UTF-8 JSON, so the broker and any relay see only ciphertext):
``{"type": "message", "messageId": hex, "text": str}``, ``{"type": "receipt", "messageIds":
[hex, ...]}`` (a single ``"messageId"`` is accepted too), ``{"type": "typing"}``; a message or a
typing PDU may carry ``"acks": [hex, ...]``. Messages are deduplicated by ``messageId`` (a replay or
a resend is acknowledged again but delivered once).
"""

from __future__ import annotations

import json
import struct
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Final

from enkrypted_shell.contracts import WireLimits

WHOLE: Final = 0x01
CHUNK: Final = 0x02
RESUME: Final = 0x03
RESUME_REFUSED: Final = 0x04
GROUP_WHOLE: Final = 0x07
GROUP_CHUNK: Final = 0x08
_CHUNK_HEADER: Final = struct.Struct(">BQII")
MAX_SEEN_IDS: Final = 4096
"""The dedup window: message ids delivered, newest kept (exported with the session)."""
MAX_UNACKNOWLEDGED: Final = 256
"""Messages sent (or queued while reconnecting) and not yet acknowledged, at most."""
MAX_UNACKNOWLEDGED_BYTES: Final = 2 * 1024 * 1024
_MAX_TEXT_BYTES: Final = 1024 * 1024
MAX_INBOX: Final = 1024
MAX_INBOX_BYTES: Final = 1024 * 1024
"""Messages handed up but not yet taken by the application, at most (the oldest go first; one
larger than this alone is handed up but not kept).  Both windows count a text at its size in the
saved session (:func:`saved_size`): unacknowledged + inbox + the rest stay under the profile
store's 4 MiB record, whatever characters a peer sends (a record the store refuses would leave an
older session state on disk, whose keys a restart would reuse)."""
RESUME_TIMEOUT_S: Final = 30.0
ACK_DELAY_S: Final = 0.015
"""A delivered message is acknowledged at most this long after delivery (piggybacked on a reply
sent earlier, else in one standalone receipt)."""
MAX_ACK_DELAY_S: Final = 1.0
"""The bound on a configured ``ack_delay`` (the peer's resend waits for receipts)."""
ACK_AFTER_BYTES: Final = 256 * 1024
"""Pending acks go out at once when the messages they acknowledge reach this many sealed bytes: a
bulk sender (bounded by MAX_UNACKNOWLEDGED_BYTES) is never held up by the ack delay."""
MAX_ACKS_PER_PDU: Final = 64
"""Message ids one PDU acknowledges at most (``acks`` or a receipt's ``messageIds``); a longer
list from the peer is dropped and counted, and this many pending ids are flushed at once."""
_MAX_REFUSALS: Final = 4

def _utf8_len(text: str) -> int:
    """UTF-8 size of ``text``; ASCII (a flag CPython keeps per string) is not encoded to count it:
    the window check runs over every unacknowledged message on each send."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _valid_nonce(value: object) -> bool:
    return isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def saved_size(text: str) -> int:
    """The bytes ``text`` takes in a saved session (an ASCII JSON string, see ``_state.py``;
    never ``str.encode``: a peer's JSON may carry a lone surrogate).  Printable ASCII without a
    quote or backslash is written as it is (the common case, counted without encoding: the window
    check runs over every unacknowledged message on each send)."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return len(text) + 2
    return len(json.dumps(text))


class SavedTexts(MutableMapping[str, str]):
    """messageId -> text in insertion order, with the running total of their :func:`saved_size`
    (``saved_bytes``): each text is measured once, when it comes in, so the window checks on every
    send and delivery cost O(1) - summing the window each time was quadratic in a bulk transfer
    (a 64 KiB text takes ~0.2 ms to measure)."""

    __slots__ = ("_texts", "saved_bytes")

    def __init__(self) -> None:
        self._texts: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self.saved_bytes = 0

    def __getitem__(self, key: str) -> str:
        return self._texts[key][0]

    def __setitem__(self, key: str, text: str) -> None:
        self.put(key, text, saved_size(text))

    def put(self, key: str, text: str, size: int) -> None:
        """Set ``key`` to ``text`` whose :func:`saved_size` the caller measured already (a key
        already there keeps its place, as in a dict)."""
        earlier = self._texts.get(key)
        if earlier is not None:
            self.saved_bytes -= earlier[1]
        self._texts[key] = (text, size)
        self.saved_bytes += size

    def __delitem__(self, key: str) -> None:
        self.saved_bytes -= self._texts.pop(key)[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._texts)

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._texts)

    def __len__(self) -> int:
        return len(self._texts)

    def __repr__(self) -> str:
        return f"SavedTexts({dict(self.items())!r})"

    def pop_oldest(self) -> tuple[str, str]:
        """The oldest entry, removed."""
        key, (text, size) = self._texts.popitem(last=False)
        self.saved_bytes -= size
        return key, text


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and value.isascii() and value.isalnum()


@dataclass(slots=True)
class _Partial:
    started: float
    total: int
    parts: dict[int, bytes] = field(default_factory=dict)
    group: bool = False  # the chunks of a group frame (0x08), not of a message (0x02)


class Reassembly:
    """The chunked frames (``0x02`` / ``0x08``) of one link put back together, within the P8
    bounds: at most ``max_reassemblies_per_peer`` at once, ``max_chunks_per_message`` chunks of
    at most ``chunk_bytes``, ``reassembly_timeout_s`` each.  Sans-I/O: ``now`` is passed in."""

    def __init__(self, limits: WireLimits) -> None:
        self.limits = limits
        self._partials: dict[int, _Partial] = {}

    def clear(self) -> None:
        self._partials.clear()

    def add(self, pdu: bytes, now: float) -> tuple[bytes, bool] | str | None:
        """One chunk: the whole sealed frame and whether it is a group frame once complete, a
        drop reason for a bad chunk, or ``None`` while parts are missing."""
        limits = self.limits
        if len(pdu) < _CHUNK_HEADER.size:
            return "malformed"
        kind, seq, index, total = _CHUNK_HEADER.unpack_from(pdu)
        data = pdu[_CHUNK_HEADER.size:]
        max_total = min(limits.max_chunks_per_message, -(-limits.max_pdu_bytes // limits.chunk_bytes))
        if not (1 < total <= max_total and index < total and 0 < len(data) <= limits.chunk_bytes):
            return "malformed-chunk"
        group = kind == GROUP_CHUNK
        partial = self._partials.get(seq)
        if partial is None:
            if len(self._partials) >= limits.max_reassemblies_per_peer:
                return "too-many-reassemblies"
            partial = self._partials[seq] = _Partial(now, total, group=group)
        if partial.total != total or index in partial.parts or partial.group != group:
            del self._partials[seq]
            return "inconsistent-chunk"
        partial.parts[index] = data
        if len(partial.parts) < total:
            return None
        del self._partials[seq]
        return b"".join(partial.parts[i] for i in range(total)), partial.group

    def next_deadline(self) -> float | None:
        timeout = self.limits.reassembly_timeout_s
        return min((p.started + timeout for p in self._partials.values()), default=None)

    def expire(self, now: float) -> int:
        """Drop the reassemblies older than the timeout; how many."""
        timeout = self.limits.reassembly_timeout_s
        stale = [k for k, p in self._partials.items() if now >= p.started + timeout]
        for key in stale:
            del self._partials[key]
        return len(stale)


def split(sealed: bytes, whole: int, chunk: int, seq: int, size: int) -> list[bytes]:
    """``sealed`` as one ``whole`` frame, or as chunk frames of sealed message ``seq``."""
    if len(sealed) <= size:
        return [bytes([whole]) + sealed]
    total = -(-len(sealed) // size)
    return [_CHUNK_HEADER.pack(chunk, seq, i, total) + sealed[off:off + size]
            for i, off in enumerate(range(0, len(sealed), size))]
