"""File transfer over the chat link: a sans-I/O core (offer / accept / chunks / resume, fair
scheduling, windowed flow control), the standard path (every chunk sealed by the session) and the
fast path (one AES-256-GCM layer keyed from the session), streamed from and to disk, received
files encrypted at rest. See docs/protocol.md, "File transfer"."""

from ._core import (
    ChunkSink,
    ChunkSource,
    FileEvent,
    FileTransfers,
    OfferReceived,
    TransferCancelled,
    TransferComplete,
    TransferFailed,
    TransferInfo,
    TransferRejected,
    TransferStarted,
)
from ._disk import (
    EncryptedSink,
    FilesDirectory,
    FileSource,
    KeyTable,
    ReceivedFile,
    StoredFileDamaged,
    hash_file,
)
from ._names import create_unique, safe_name
from ._scheduler import LinkScheduler
from ._state import FileStateError
from ._wire import (
    FAST_FRAME,
    SEALED_FRAME,
    FileLimits,
    FileTransferError,
    FileUsageError,
    InsufficientSpace,
    MalformedFilePdu,
)

__all__ = [
    "FAST_FRAME",
    "SEALED_FRAME",
    "ChunkSink",
    "ChunkSource",
    "EncryptedSink",
    "FileEvent",
    "FileLimits",
    "FileSource",
    "FileStateError",
    "FileTransferError",
    "FileTransfers",
    "FileUsageError",
    "FilesDirectory",
    "InsufficientSpace",
    "KeyTable",
    "LinkScheduler",
    "MalformedFilePdu",
    "OfferReceived",
    "ReceivedFile",
    "StoredFileDamaged",
    "TransferCancelled",
    "TransferComplete",
    "TransferFailed",
    "TransferInfo",
    "TransferRejected",
    "TransferStarted",
    "create_unique",
    "hash_file",
    "safe_name",
]
