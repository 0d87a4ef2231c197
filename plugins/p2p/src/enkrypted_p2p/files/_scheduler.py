"""The one fairness rule between chat and files on a link, as a tiny object the driver owns.

Chat frames always go first; a file frame (at most one chunk) only when no chat frame waits and
the channel has room. So a text message queued behind a 1 GB transfer waits for at most the
chunk being sent plus what the channel already buffers (the driver keeps that below its
``bufferedAmount`` threshold): 64 KiB at 10 MB/s is about 7 ms.
"""

from __future__ import annotations

from collections import deque

from ._core import FileTransfers


class LinkScheduler:
    """Chat frames first, then :meth:`FileTransfers.next_pdu`."""

    def __init__(self, files: FileTransfers) -> None:
        self.files = files
        self._chat: deque[bytes] = deque()

    def queue_chat(self, frame: bytes) -> None:
        self._chat.append(frame)

    def next_frame(self, budget: int) -> bytes | None:
        """The next frame to send with ``budget`` bytes of room, or ``None``."""
        if self._chat:
            return self._chat.popleft()
        return self.files.next_pdu(budget)
