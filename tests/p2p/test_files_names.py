"""Safe names for files a peer names: a table of hostile inputs, then properties over any text
(one component, inside the directory, no control / bidi / zero-width characters, bounded,
idempotent), and exclusive creation that never overwrites."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enkrypted_p2p.files import create_unique, safe_name


@pytest.mark.parametrize(("raw", "safe"), [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "_.._etc_passwd"),
    ("/etc/shadow", "_etc_shadow"),
    ("..", "file"),
    ("...", "file"),
    ("", "file"),
    ("   ", "file"),
    (".bashrc", "bashrc"),
    ("C:\\Windows\\win.ini", "C__Windows_win.ini"),
    ("CON", "_CON"),
    ("con.txt", "_con.txt"),
    ("Lpt1.tar.gz", "_Lpt1.tar.gz"),
    ("COM\u00b9", "_COM1"),  # NFKC first: superscript one is a digit
    ("console.txt", "console.txt"),
    ("photo\u202egnp.exe", "photognp.exe"),  # the bidi override that hides ".exe"
    ("in\u200bvoice\u200d.pdf", "invoice.pdf"),
    ("\uff0e\uff0e\uff0fsecret", "_secret"),  # fullwidth "../" becomes "../", then safe
    ("a\tb\nc", "a b c"),
    ("\x00\x07bell", "bell"),
    ("x:y*z?\"<>|", "x_y_z_____"),
    ("trailing. . .", "trailing"),
    ("caf\u0065\u0301.txt", "caf\u00e9.txt"),
])
def test_hostile_names_table(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe


def test_long_names_are_cut_to_the_byte_bound_keeping_the_extension() -> None:
    name = safe_name("é" * 500 + ".tar")
    assert len(name.encode()) <= 200 and name.endswith(".tar") and name.startswith("é")


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
def test_any_text_becomes_one_safe_component(raw: str) -> None:
    name = safe_name(raw)
    assert name and name not in (".", "..") and not name.startswith((".", " "))
    assert not name.endswith((".", " ")) and len(name.encode("utf-8")) <= 200
    assert not set(name) & set('/\\:*?"<>|')
    assert all(unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name)
    assert Path("/x", name).parent == Path("/x") and not Path(name).is_absolute()
    assert safe_name(name) == name


def test_create_unique_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("keep")
    made = []
    for _ in range(3):
        path, fd = create_unique(tmp_path, "../a.txt")
        os.close(fd)
        made.append(path.name)
    assert made == ["_a.txt", "_a (1).txt", "_a (2).txt"]
    path, fd = create_unique(tmp_path, "a.txt")
    os.close(fd)
    assert path.name == "a (1).txt" and (tmp_path / "a.txt").read_text() == "keep"


def test_create_unique_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("precious")
    (tmp_path / "x.bin").symlink_to(target)
    path, fd = create_unique(tmp_path, "x.bin")
    os.close(fd)
    assert path.name == "x (1).bin" and target.read_text() == "precious"
