"""The chat's pure parts: invite links, the chat store over the store contract, the presenter's
rules (unread counts, receipts, the changed-identity-key block) and the input history."""

from __future__ import annotations

import pytest

from enkrypted_shell.contracts import (
    ChatMessage,
    ChatProblem,
    ChatReceipt,
    ChatTyping,
    LocalMisuse,
    PeerStateChanged,
    ProfileStore,
    SessionEstablished,
    implementation_problems,
)
from enkrypted_ui_cli.chatstore import ChatStore, Contact, Line, MemoryProfileStore
from enkrypted_ui_cli.errors import BadInvite
from enkrypted_ui_cli.invite import Target, format_invite, parse_target
from enkrypted_ui_cli.tui.model import MAX_LINES, ChatModel, InputHistory
from enkrypted_ui_cli.tui.render import grouped, qr_text, safety_groups
from tests.plugins.ui.fake_chat import ALICE_FP, BOB_FP, LAYERS, MALLORY_FP

NOW = 1_700_000_000.0


def established(peer: str = "bob", fp: str = BOB_FP) -> SessionEstablished:
    return SessionEstablished(peer, "B1", LAYERS, fp, "1" * 60)


# ------------------------------------------------------------------------------- invite links
def test_an_invite_link_round_trips_and_a_bare_peer_id_is_accepted() -> None:
    link = format_invite(ALICE_FP, "alice-7f3k")
    assert link == f"enkrypted://peer/{ALICE_FP}?id=alice-7f3k"
    assert parse_target(f"  {link}\n") == Target("alice-7f3k", ALICE_FP)
    assert parse_target("bob_2") == Target("bob_2", None)
    assert parse_target(format_invite(ALICE_FP, "a b")) == Target("a b", ALICE_FP)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("bob!", "not a peer id"),
        ("-bob", "not a peer id"),
        ("x" * 257, "at most 256"),
        ("https://peer/x?id=bob", "starts with enkrypted://peer/"),
        (f"enkrypted://peer/{ALICE_FP}", "nothing more"),
        (f"enkrypted://peer/{ALICE_FP}?id=bob&x=1", "nothing more"),
        (f"enkrypted://peer/{ALICE_FP}?id=bob#frag", "nothing more"),
        (f"enkrypted://peer/{ALICE_FP.upper()}?id=bob", "64 lowercase hex"),
        (f"enkrypted://peer/{ALICE_FP[:-2]}?id=bob", "64 lowercase hex"),
        (f"enkrypted://peer/{ALICE_FP}?id=b%6Fb", "escape other than %20"),
        (f"enkrypted://peer/{ALICE_FP}?id=", "empty"),
        ("enkrypted://peer/" + "a" * 600, "at most 512"),
    ],
)
def test_invite_parsing_is_strict_with_a_one_line_error(text: str, says: str) -> None:
    with pytest.raises(BadInvite, match=says) as caught:
        parse_target(text)
    assert "\n" not in str(caught.value) and isinstance(caught.value, LocalMisuse)


def test_the_invite_qr_code_fits_the_connect_screen() -> None:
    code = qr_text(format_invite(ALICE_FP, "alice-7f3k9q"))
    rows = code.splitlines()
    assert (len(rows), max(map(len, rows))) == (21, 41)  # version 5-L, 2-module quiet zone
    assert set(code) <= {" ", "\n", "▀", "▄", "█"}


def test_the_terminal_qr_code_is_the_invite_matrix_light_blocks_on_dark() -> None:
    """segno's compact output draws a light module pair as a full block: read back with the
    connect screen's colours (white text on black) it is exactly the code's matrix."""
    import segno

    from enkrypted_ui_cli.tui.screens import ConnectScreen

    invite = format_invite(ALICE_FP, "alice-7f3k9q")
    rows = qr_text(invite).splitlines()
    seen = []
    for row in rows:
        seen.append([0 if ch in "█▀" else 1 for ch in row])  # 1: dark module
        seen.append([0 if ch in "█▄" else 1 for ch in row])
    matrix = [list(r) for r in segno.make(invite, error="l", micro=False).matrix_iter(border=2)]
    assert seen[: len(matrix)] == matrix
    assert "color: white; background: black" in ConnectScreen.DEFAULT_CSS


def test_fingerprints_and_safety_numbers_are_grouped_for_reading_aloud() -> None:
    assert grouped("ab" * 8, 4, 2) == "abab abab\nabab abab"
    assert safety_groups("12345 67890\n" * 6) == "12345 67890 12345 67890 12345 67890\n" * 1 + (
        "12345 67890 12345 67890 12345 67890"
    )


# ---------------------------------------------------------------------------------- the store
def test_the_memory_store_implements_the_store_contract() -> None:
    assert implementation_problems(MemoryProfileStore(), ProfileStore) == []


def test_contacts_history_receipts_and_sessions_survive_a_new_chat_store() -> None:
    backing = MemoryProfileStore()
    store = ChatStore(backing)
    store.save_contact(Contact("bob", "Bob", BOB_FP, True))
    store.append("bob", Line("out", "hi", NOW, "m1"))
    store.append("bob", Line("in", "hello", NOW + 1, "x1", True))
    store.append("bob", Line("out", "unanswered", NOW + 2, "m2"))
    store.append_receipt("bob", "m1")
    store.save_session("bob", b"state")
    again = ChatStore(backing)
    assert again.contacts() == [Contact("bob", "Bob", BOB_FP, True)]
    assert [(x.text, x.delivered) for x in again.history("bob")] == [
        ("hi", True),
        ("hello", True),
        ("unanswered", False),
    ]
    assert [x.text for x in again.history("bob", limit=1)] == ["unanswered"]
    assert again.saved_sessions() == {"bob": b"state"}
    again.save_session("bob", None)
    assert again.saved_sessions() == {}


def test_a_malformed_record_is_skipped_and_counted_not_fatal() -> None:
    backing = MemoryProfileStore()
    backing.put("contacts", b"bob", b"{not json")
    backing.put("contacts", b"bad id!", b'{"name": "", "pinned": "", "verified": false}')
    backing.append(b"history:bob", b'{"k": "weird", "id": "1"}')
    store = ChatStore(backing)
    assert store.contacts() == [] and store.history("bob") == [] and store.skipped == 3


# ------------------------------------------------------------------------------ the presenter
def model_with(*peers: str) -> tuple[ChatModel, ChatStore]:
    store = ChatStore(MemoryProfileStore())
    model = ChatModel(store, local_id="alice", fingerprint=ALICE_FP)
    for peer in peers:
        model.add(peer)
    return model, store


def test_a_first_session_pins_the_fingerprint_and_sending_is_allowed() -> None:
    model, store = model_with()
    assert model.send_blocked("bob") is not None  # no such contact yet
    model.apply(PeerStateChanged("bob", "connecting"), NOW)
    assert "connecting" in (model.send_blocked("bob") or "")
    model.apply(established(), NOW)
    view = model.peers["bob"]
    assert (view.state, view.profile, view.layers, view.crypto) == (
        "ready",
        "B1",
        LAYERS,
        "unverified",
    )
    assert store.contacts() == [Contact("bob", "", BOB_FP, False)]
    assert model.send_blocked("bob") is None


def test_a_changed_identity_key_blocks_sending_until_acknowledged() -> None:
    model, store = model_with()
    model.apply(established(), NOW)
    model.mark_verified("bob")
    assert store.contacts()[0].verified
    model.apply(established(fp=MALLORY_FP), NOW + 5)
    view = model.peers["bob"]
    assert view.key_changed and view.crypto == "changed"
    assert "identity key changed" in (model.send_blocked("bob") or "")
    model.mark_verified("bob")  # cannot verify past a changed key: acknowledge it first
    assert store.contacts()[0] == Contact("bob", "", BOB_FP, True)
    model.acknowledge_key("bob", NOW + 6)
    assert model.send_blocked("bob") is None
    assert store.contacts()[0] == Contact("bob", "", MALLORY_FP, False)
    assert "IDENTITY KEY CHANGED" in " ".join(x.text for x in view.lines)


def test_an_invite_fingerprint_is_pinned_so_a_different_key_is_flagged() -> None:
    model, _ = model_with()
    model.add("bob", BOB_FP)
    model.apply(established(fp=MALLORY_FP), NOW)
    assert model.peers["bob"].key_changed


def test_unread_counts_receipts_and_typing() -> None:
    model, store = model_with("bob", "carol")
    model.select("bob")
    model.apply(established("carol", MALLORY_FP), NOW)
    model.apply(ChatMessage("carol", "c1", "psst", NOW + 1), NOW + 1)
    model.apply(ChatMessage("carol", "c2", "psst again", NOW + 2), NOW + 2)
    assert model.peers["carol"].unread == 2
    model.select("carol")
    assert model.peers["carol"].unread == 0
    model.apply(established(), NOW)
    model.apply(ChatReceipt("bob", "m2"), NOW)  # a receipt may overtake send_text's return
    model.sent("bob", "m1", "one", NOW)
    model.sent("bob", "m2", "two", NOW)
    model.apply(ChatReceipt("bob", "m1"), NOW)
    assert [(x.text, x.delivered) for x in model.peers["bob"].lines if x.direction == "out"] == [
        ("one", True),
        ("two", True),
    ]
    assert [x.delivered for x in store.history("bob")] == [True, True]
    model.apply(ChatTyping("bob"), NOW)
    assert model.typing("bob", NOW + 1) and not model.typing("bob", NOW + 6)


def test_problems_and_disconnects_become_one_line_notices() -> None:
    model, _ = model_with("bob")
    model.apply(ChatProblem("", "network", "broker lost"), NOW)
    assert model.notice == "network problem: broker lost"
    model.apply(PeerStateChanged("bob", "disconnected", "peer closed"), NOW)
    assert model.notice == "disconnected: peer closed"
    model.apply(ChatProblem("bob", "remote", "x" * 5000), NOW)
    assert len(model.notice) <= 300


def test_conversation_memory_is_bounded() -> None:
    model, _ = model_with()
    model.apply(established(), NOW)
    for i in range(MAX_LINES + 50):
        model.apply(ChatMessage("bob", f"x{i}", "hi", NOW), NOW)
    assert len(model.peers["bob"].lines) == MAX_LINES


def test_input_history_recalls_sent_lines_and_keeps_the_draft() -> None:
    history = InputHistory(limit=2)
    for line in ("one", "two", "three"):
        history.push(line)
    assert history.older("draft") == "three"
    assert history.older("three") == "two"
    assert history.older("two") == "two"  # the oldest kept (limit 2)
    assert history.newer() == "three"
    assert history.newer() == "draft"


def test_group_events_of_a_2_2_chat_service_never_become_1_to_1_conversations() -> None:
    from enkrypted_shell.contracts import GroupChatMembership, GroupChatMessage, GroupMember

    model = ChatModel(ChatStore(MemoryProfileStore()), local_id="alice", fingerprint=ALICE_FP)
    members = (GroupMember("alice", ALICE_FP), GroupMember("bob", BOB_FP))
    assert model.apply(GroupChatMembership("ab" * 16, "g", 1, members), NOW) is None
    assert model.apply(GroupChatMessage("ab" * 16, "01" * 16, "bob", BOB_FP, "hi", 1, NOW), NOW) is None
    assert dict(model.peers) == {}
