"""A peer's lone surrogate (JSON lets it send ``\\ud800``) cannot be encoded as UTF-8: if it
reached a snapshot, every WebSocket send of the page (aiohttp encodes UTF-8) would fail and the
page would freeze for as long as the message is shown. It is made visible instead, like the other
characters that are not text (docs/webui.md)."""

from __future__ import annotations

from enkrypted_ui_web.text import inert, one_line


def test_a_lone_surrogate_from_a_peer_becomes_a_visible_marker() -> None:
    for text in ("a\ud800b", "\udfff", "x\udbff\udc00y"):  # lone, lone, a pair of lone halves
        for shown in (inert(text), one_line(text)):
            shown.encode("utf-8")  # never raises
            assert "⟨U+D" in shown
    assert inert("emoji \U0001f600 stays") == "emoji \U0001f600 stays"
