"""RFC 9420 vectors: messages.json (decode / re-encode of every wire structure)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mls_vector_harness import assert_file, h

from enkrypted_crypto.errors import MalformedInput
from enkrypted_crypto.mls._codec import Reader
from enkrypted_crypto.mls._envelopes import (
    GroupInfo,
    GroupSecrets,
    MLSMessage,
    PrivateMessage,
    PublicMessage,
    Welcome,
)
from enkrypted_crypto.mls._messages import (
    _PROPOSAL_DECODERS,
    P_ADD,
    P_EXTERNAL_INIT,
    P_GCE,
    P_PSK,
    P_REINIT,
    P_REMOVE,
    P_UPDATE,
    Commit,
    KeyPackage,
    decode_tree,
    encode_tree,
    from_bytes,
    to_bytes,
)


def _message(body_type: type) -> Callable[[Reader], object]:
    def decode(r: Reader) -> object:
        msg = MLSMessage.decode(r)
        assert isinstance(msg.body, body_type), type(msg.body)
        return msg

    return decode


_FIELDS: dict[str, Callable[[Reader], Any]] = {
    "mls_welcome": _message(Welcome),
    "mls_group_info": _message(GroupInfo),
    "mls_key_package": _message(KeyPackage),
    "group_secrets": GroupSecrets.decode,
    "add_proposal": _PROPOSAL_DECODERS[P_ADD],
    "update_proposal": _PROPOSAL_DECODERS[P_UPDATE],
    "remove_proposal": _PROPOSAL_DECODERS[P_REMOVE],
    "pre_shared_key_proposal": _PROPOSAL_DECODERS[P_PSK],
    "re_init_proposal": _PROPOSAL_DECODERS[P_REINIT],
    "external_init_proposal": _PROPOSAL_DECODERS[P_EXTERNAL_INIT],
    "group_context_extensions_proposal": _PROPOSAL_DECODERS[P_GCE],
    "commit": Commit.decode,
    "public_message_application": _message(PublicMessage),
    "public_message_proposal": _message(PublicMessage),
    "public_message_commit": _message(PublicMessage),
    "private_message": _message(PrivateMessage),
}


def _check(e: dict[str, Any]) -> None:
    for name, decode in _FIELDS.items():
        data = h(e[name])
        assert to_bytes(from_bytes(data, decode)) == data, name
        if data:
            with pytest.raises(MalformedInput):
                from_bytes(data[:-1], decode)  # truncated
            with pytest.raises(MalformedInput):
                from_bytes(data + b"\x00", decode)  # trailing byte
    tree = h(e["ratchet_tree"])
    assert encode_tree(decode_tree(tree)) == tree


def test_messages_vectors(request: pytest.FixtureRequest) -> None:
    assert_file(request, "messages", _check, expected_run=300)
