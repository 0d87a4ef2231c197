"""The fast path's one AEAD layer (docs/protocol.md, "File transfer", fast path).

The crypto contract 2.1 exposes no key exporter, so the key comes from two fresh 32-byte shares
that travel inside the *sealed* OFFER and ACCEPT (the full cascade protects them):

    key(round) = HKDF-SHA256(ikm = offer_share || accept_share, salt = tid,
                             info = "enkrypted-p2p files fast v1" || round u32, L = 32)
    nonce      = tid[0:8] || index u32
    frame      = 0x06 || tid || round u32 || index u32 || AES-256-GCM(key, nonce, chunk, aad=header)

A (key, nonce) pair is never reused: the key is new per transfer and per round, and within a
round the sender sends each index at most once (a re-request opens a new round).
"""

from __future__ import annotations

import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._wire import FAST_FRAME, FAST_HEADER, TID_BYTES

INFO: Final = b"enkrypted-p2p files fast v1"
TAG_BYTES: Final = 16


def fast_key(tid: bytes, offer_share: bytes, accept_share: bytes, round_: int) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=tid,
                info=INFO + struct.pack(">I", round_))
    return hkdf.derive(offer_share + accept_share)


def fast_nonce(tid: bytes, index: int) -> bytes:
    return tid[:8] + struct.pack(">I", index)


def seal_fast(key: bytes, tid: bytes, round_: int, index: int, chunk: bytes) -> bytes:
    header = FAST_HEADER.pack(FAST_FRAME, tid, round_, index)
    return header + AESGCM(key).encrypt(fast_nonce(tid, index), chunk, header)


def parse_fast(frame: bytes) -> tuple[bytes, int, int] | None:
    """``(tid, round, index)`` of a fast frame, or ``None`` if too short to be one."""
    if len(frame) < FAST_HEADER.size + TAG_BYTES or frame[0] != FAST_FRAME:
        return None
    _, tid, round_, index = FAST_HEADER.unpack_from(frame)
    assert len(tid) == TID_BYTES
    return tid, round_, index


def open_fast(key: bytes, frame: bytes) -> bytes | None:
    """The chunk, or ``None`` if the frame fails authentication (one opaque failure)."""
    header = frame[:FAST_HEADER.size]
    _, tid, _, index = FAST_HEADER.unpack(header)
    try:
        return AESGCM(key).decrypt(fast_nonce(tid, index), frame[FAST_HEADER.size:], header)
    except InvalidTag:
        return None
