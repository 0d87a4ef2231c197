"""What ``listen`` / ``send`` print of a peer's text: a peer must not crash the command (a lone
surrogate cannot be written to a UTF-8 stdout) nor drive the user's terminal (escape sequences in
``--plain`` lines for people)."""

from __future__ import annotations

import io
import json
import sys

import pytest

from enkrypted_p2p.chat import _commands

HOSTILE = "hi\ud800 \x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u202eexe.txt\x9b31m"


@pytest.mark.parametrize("plain", [False, True])
def test_a_peer_text_never_crashes_the_output_nor_reaches_the_terminal_raw(
        monkeypatch: pytest.MonkeyPatch, plain: bool) -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # a real stdout is strict UTF-8
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(_commands, "_PLAIN", [plain])
    _commands._emit("message", peer="bob", text=HOSTILE)
    out.flush()
    assert isinstance(out.buffer, io.BytesIO)
    written = out.buffer.getvalue().decode("utf-8")
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in written
    if not plain:
        assert json.loads(written)["text"] == HOSTILE  # scripts get the exact text back
