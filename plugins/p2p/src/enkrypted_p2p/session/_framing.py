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
from typing import Final

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


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and value.isascii() and value.isalnum()
