"""RFC 9420 vectors: message-protection.json (§6.2 PublicMessage, §6.3 PrivateMessage)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.errors import DecryptionFailed
from enkrypted_crypto.mls._codec import Reader, Writer
from enkrypted_crypto.mls._envelopes import (
    FramedContent,
    GroupContext,
    MLSMessage,
    PrivateMessage,
    PublicMessage,
    Sender,
    decode_content,
    encode_content,
)
from enkrypted_crypto.mls._framing import (
    AuthenticatedContent,
    decrypt_private,
    encrypt_private,
    from_public,
    sign_content,
    to_public,
    verify_content,
)
from enkrypted_crypto.mls._messages import (
    APPLICATION,
    COMMIT,
    MEMBER,
    PRIVATE_MESSAGE,
    PROPOSAL,
    PUBLIC_MESSAGE,
    from_bytes,
    to_bytes,
)
from enkrypted_crypto.mls._schedule import SecretTree
from enkrypted_crypto.mls._suite import CipherSuite, suite

SENDER = 1  # the vectors' sender is leaf 1 of a two-member group
N_LEAVES = 2


def _encoded(content_type: int, content: object) -> bytes:
    if content_type == APPLICATION:
        assert isinstance(content, bytes)
        return content
    w = Writer()
    encode_content(w, content_type, content)  # type: ignore[arg-type]
    return w.getvalue()


def _unprotect_private(cs: CipherSuite, e: dict[str, Any], data: bytes) -> AuthenticatedContent:
    msg = from_bytes(data, MLSMessage.decode).body
    assert isinstance(msg, PrivateMessage)
    tree = SecretTree(cs, h(e["encryption_secret"]), N_LEAVES)
    return decrypt_private(cs, msg, tree, h(e["sender_data_secret"]))


def _check_kind(cs: CipherSuite, e: dict[str, Any], gc: bytes, kind: str, ctype: int) -> None:
    expected, pub = h(e[kind]), h(e["signature_pub"])
    ac = _unprotect_private(cs, e, h(e[f"{kind}_priv"]))
    assert verify_content(cs, ac, pub, gc)
    assert _encoded(ctype, ac.content.content) == expected
    if ctype != APPLICATION:
        msg = from_bytes(h(e[f"{kind}_pub"]), MLSMessage.decode).body
        assert isinstance(msg, PublicMessage)
        ac = from_public(cs, msg, h(e["membership_key"]), gc)
        assert verify_content(cs, ac, pub, gc)
        assert _encoded(ctype, ac.content.content) == expected
        with pytest.raises(DecryptionFailed):
            from_public(cs, msg, bytes(cs.n_h), gc)  # wrong membership key
    # Protect it ourselves, both ways, and unprotect the result.
    content = expected if ctype == APPLICATION else decode_content(Reader(expected), ctype)
    framed = FramedContent(
        h(e["group_id"]), e["epoch"], Sender(MEMBER, SENDER), b"", ctype, content
    )
    tag = os.urandom(cs.n_h) if ctype == COMMIT else None
    for wf in (PRIVATE_MESSAGE, PUBLIC_MESSAGE) if ctype != APPLICATION else (PRIVATE_MESSAGE,):
        ac = AuthenticatedContent(
            wf, framed, sign_content(cs, wf, framed, h(e["signature_priv"]), gc), tag
        )
        if wf == PRIVATE_MESSAGE:
            tree = SecretTree(cs, h(e["encryption_secret"]), N_LEAVES)
            pm = encrypt_private(cs, ac, tree, h(e["sender_data_secret"]), 13, os.urandom)
            back = _unprotect_private(cs, e, to_bytes(MLSMessage(PRIVATE_MESSAGE, pm)))
        else:
            back = from_public(
                cs, to_public(cs, ac, h(e["membership_key"]), gc), h(e["membership_key"]), gc
            )
        assert back == ac
        assert verify_content(cs, back, pub, gc)


def _check(e: dict[str, Any]) -> None:
    cs = suite(e["cipher_suite"])
    ctx = GroupContext(
        cs.suite_id, h(e["group_id"]), e["epoch"], h(e["tree_hash"]),
        h(e["confirmed_transcript_hash"]), (),
    )  # fmt: skip
    gc = to_bytes(ctx)
    for kind, ctype in (("proposal", PROPOSAL), ("commit", COMMIT), ("application", APPLICATION)):
        _check_kind(cs, e, gc, kind, ctype)


def test_message_protection_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "message-protection", _check, expected_run=7)
