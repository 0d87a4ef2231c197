"""The group part of the presenter (p2p 2.2 events, pure): the group list, unread counts, receipts
per member, a changed member key blocking sends, left / forked / re-joining states, peer text made
inert, the bounds, and group history in the chat store."""

from __future__ import annotations

from enkrypted_shell.contracts import (
    GroupChatForked,
    GroupChatLeft,
    GroupChatMembership,
    GroupChatMessage,
    GroupChatProblem,
    GroupChatReceipt,
    GroupChatRenamed,
    GroupInfo,
    GroupMember,
)
from enkrypted_ui_cli.chatstore import ChatStore, Contact, MemoryProfileStore
from enkrypted_ui_cli.tui.groups import MAX_GROUPS
from enkrypted_ui_cli.tui.model import ChatModel
from enkrypted_ui_cli.tui.render import group_banner, group_conversation, group_prompt
from tests.plugins.ui.fake_chat import ALICE_FP, BOB_FP, MALLORY_FP

NOW = 1_700_000_000.0
G = "ab" * 16
CAROL_FP = "c4e1" * 16
ME = GroupMember("alice", ALICE_FP)
BOB = GroupMember("bob", BOB_FP)
CAROL = GroupMember("carol", CAROL_FP)


def model(store: ChatStore | None = None) -> ChatModel:
    return ChatModel(store or ChatStore(MemoryProfileStore()), local_id="alice",
                     fingerprint=ALICE_FP)


def joined(m: ChatModel, *members: GroupMember, epoch: int = 1, name: str = "friends") -> None:
    m.apply(GroupChatMembership(G, name, epoch, (ME, *members)), NOW)


def test_a_membership_lists_the_group_with_members_epoch_and_state_never_as_a_contact() -> None:
    m = model()
    joined(m, BOB, CAROL, epoch=3)
    view = m.groups.views[G]
    assert (view.name, view.epoch, view.state, len(view.members)) == ("friends", 3, "active", 3)
    assert str(group_prompt(view)) == "● friends 3 e3"
    assert m.peers == {} and "joined “friends” at epoch 3: 3 members" in m.notice


def test_messages_of_a_group_not_open_count_as_unread_until_it_is_selected() -> None:
    m = model()
    joined(m, BOB)
    m.apply(GroupChatMessage(G, "01", "bob", BOB_FP, "hi all", 1, NOW), NOW)
    m.apply(GroupChatMessage(G, "02", "bob", BOB_FP, "anyone?", 1, NOW), NOW)
    assert m.groups.views[G].unread == 2 and str(group_prompt(m.groups.views[G])).endswith("(2)")
    m.select_group(G)
    assert m.groups.views[G].unread == 0 and m.active_group == G
    assert "bob: hi all" in str(group_conversation(m.groups.views[G]))
    m.apply(GroupChatMessage(G, "03", "bob", BOB_FP, "here", 1, NOW), NOW)
    assert m.groups.views[G].unread == 0


def test_receipts_count_per_member_early_ones_too_and_only_from_recipients() -> None:
    m = model()
    joined(m, BOB, CAROL)
    m.apply(GroupChatReceipt(G, "g1", "bob", BOB_FP), NOW)  # before send_group_text returned
    m.groups.sent(G, "g1", "dinner?", NOW, m.groups.recipients(G))
    line = m.groups.views[G].lines[-1]
    assert line.recipients == (BOB_FP, CAROL_FP) and line.received == {BOB_FP}
    assert "me: dinner? ✓ 1/2" in str(group_conversation(m.groups.views[G]))
    m.apply(GroupChatReceipt(G, "g1", "mallory", MALLORY_FP), NOW)  # not a recipient
    m.apply(GroupChatReceipt(G, "g1", "carol", CAROL_FP), NOW)
    m.apply(GroupChatReceipt(G, "g1", "carol", CAROL_FP), NOW)  # a duplicate
    assert line.received == {BOB_FP, CAROL_FP}
    assert "✓ 2/2" in str(group_conversation(m.groups.views[G]))


def test_group_history_and_receipts_are_stored_and_shown_again_on_the_next_start() -> None:
    store = ChatStore(MemoryProfileStore())
    m = model(store)
    joined(m, BOB, CAROL)
    m.apply(GroupChatMessage(G, "01", "bob", BOB_FP, "hello", 1, NOW), NOW)
    m.groups.sent(G, "g1", "hi", NOW + 1, m.groups.recipients(G))
    m.apply(GroupChatReceipt(G, "g1", "carol", CAROL_FP), NOW)
    again = model(store)
    again.groups.load([GroupInfo(G, "friends", 1, (ME, BOB, CAROL), "active")], NOW)
    lines = again.groups.views[G].lines
    assert [(x.direction, x.text, x.sender) for x in lines] == [("in", "hello", "bob"),
                                                               ("out", "hi", "")]
    assert lines[1].received == {CAROL_FP} and lines[1].recipients == (BOB_FP, CAROL_FP)
    assert store.skipped == 0


def test_a_member_key_change_blocks_sending_until_acknowledged_and_the_new_key_is_kept() -> None:
    store = ChatStore(MemoryProfileStore())
    m = model(store)
    joined(m, BOB)
    assert m.groups.send_blocked(G) is None
    m.apply(GroupChatMembership(G, "friends", 2, (ME, GroupMember("bob", MALLORY_FP))), NOW)
    view = m.groups.views[G]
    assert view.changed == {"bob": MALLORY_FP}
    assert "identity key changed" in (m.groups.send_blocked(G) or "")
    assert str(group_prompt(view)).startswith("!")
    assert "IDENTITY KEY CHANGED" in (group_banner(view, "") or "")
    m.groups.acknowledge(G, "bob", NOW)
    assert m.groups.send_blocked(G) is None and store.group_keys(G) == {"bob": MALLORY_FP}
    again = model(store)  # the acknowledged key is the one kept
    again.apply(GroupChatMembership(G, "friends", 3, (ME, GroupMember("bob", MALLORY_FP))), NOW)
    assert again.groups.send_blocked(G) is None


def test_a_member_whose_group_key_differs_from_the_pinned_contact_key_is_flagged_at_once() -> None:
    store = ChatStore(MemoryProfileStore())
    store.save_contact(Contact("bob", "", BOB_FP, True))
    m = model(store)
    joined(m, GroupMember("bob", MALLORY_FP))
    assert m.groups.views[G].changed == {"bob": MALLORY_FP}
    assert m.groups.send_blocked(G) is not None


def test_left_and_removed_groups_stay_listed_read_only() -> None:
    m = model()
    joined(m, BOB)
    m.apply(GroupChatLeft(G, 2, BOB_FP), NOW)
    view = m.groups.views[G]
    assert view.state == "left" and str(group_prompt(view)) == "✕ friends left"
    assert "bob removed you" in (group_banner(view, m.groups.left_text(view)) or "")
    assert "read-only" in (m.groups.send_blocked(G) or "")
    joined(m, BOB, epoch=5)  # invited again
    assert view.state == "active" and m.groups.send_blocked(G) is None


def test_a_fork_is_shown_until_a_later_epoch_and_rejoining_is_a_state() -> None:
    m = model()
    joined(m, BOB, epoch=4)
    m.apply(GroupChatForked(G, 4, "bob", "another commit won", rejoining=True), NOW)
    view = m.groups.views[G]
    assert view.state == "rejoining" and "FORK at epoch 4" in (group_banner(view, "") or "")
    assert "FORK at epoch 4: bob is on another branch" in m.notice
    joined(m, BOB, epoch=5)
    assert view.fork is None and view.state == "active" and group_banner(view, "") is None


def test_sending_is_blocked_while_re_joining_after_a_fork_until_the_welcome() -> None:
    m = model()
    joined(m, BOB, epoch=4)
    m.apply(GroupChatForked(G, 4, "bob", "another commit won", rejoining=True), NOW)
    assert "re-joining “friends” after a fork" in (m.groups.send_blocked(G) or "")
    joined(m, BOB, epoch=6)  # the new Welcome
    assert m.groups.send_blocked(G) is None
    m.apply(GroupChatForked(G, 6, "carol", "we stay", rejoining=False), NOW)
    assert m.groups.send_blocked(G) is None  # a fork we stay on does not block


def test_load_takes_the_services_word_on_a_group_already_shown() -> None:
    m = model()
    joined(m, BOB, epoch=2)
    m.groups.load([GroupInfo(G, "renamed", 3, (ME, BOB, CAROL), "rejoining")], NOW)
    view = m.groups.views[G]
    assert (view.name, view.epoch, len(view.members), view.state) == ("renamed", 3, 3, "rejoining")
    assert m.groups.send_blocked(G) is not None
    m.groups.load([GroupInfo(G, "renamed", 5, (ME, GroupMember("bob", MALLORY_FP)), "active")], NOW)
    assert view.changed == {"bob": MALLORY_FP}  # the member-key rule holds here too


def test_a_member_without_a_peer_id_pins_nothing_and_a_problem_without_a_group_is_a_notice() -> None:
    m = model()
    joined(m, GroupMember("", BOB_FP), GroupMember("", CAROL_FP))
    assert m.groups.views[G].changed == {} and m.groups.send_blocked(G) is None
    m.apply(GroupChatProblem("", "local", "saved groups: damaged"), NOW)
    assert "" not in m.groups.views and "problem with the saved groups" in m.notice


def test_peer_supplied_names_and_texts_are_one_line_plain_text() -> None:
    m = model()
    joined(m, BOB, name="[bold red]evil[/]\nsecond line\x1b[2J")
    m.apply(GroupChatRenamed(G, "[link=http://x]click[/link]\n\n", BOB_FP), NOW)
    view = m.groups.views[G]
    assert view.name == "[link=http://x]click[/link]"
    assert "[link=http://x]click[/link]" in str(group_prompt(view, 40))
    m.apply(GroupChatMessage(G, "01", "bob", BOB_FP, "[b]not bold[/b]", 1, NOW), NOW)
    rendered = group_conversation(view)
    at = rendered.plain.index("[b]not bold[/b]")  # the markup is text, and not styled
    assert all(span.end <= at for span in rendered.spans if "bold" in str(span.style))
    m.apply(GroupChatProblem(G, "remote", "a damaged frame"), NOW)
    assert m.notice == "remote problem: a damaged frame"


def test_the_number_of_groups_is_bounded() -> None:
    m = model()
    for i in range(MAX_GROUPS + 5):
        m.apply(GroupChatMembership(f"{i:032x}", "g", 1, (ME,)), NOW)
    assert len(m.groups.views) == MAX_GROUPS and "at most" in m.notice


def test_cycling_goes_through_contacts_then_groups() -> None:
    m = model()
    m.add("bob")
    joined(m, BOB)
    m.select("bob")
    m.cycle(1)
    assert m.active_group == G
    m.cycle(1)
    assert m.active_group is None and m.active == "bob"
