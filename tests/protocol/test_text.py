from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from labchat.protocol.messages import MAX_TEXT_BYTES
from labchat.protocol.text import _CONTROL_RE, neutralize, split_text, utf8_len


def test_escape_sequences_are_neutralised() -> None:
    assert neutralize("\x1b[2J\x1b]0;pwned\x07hi") == "^[[2J^[]0;pwned^Ghi"
    assert neutralize("a\x7fb\x9bc") == "a^?b\ufffdc"
    assert neutralize("abc\u202edef") == "abc\ufffddef"
    assert neutralize("Selamat pagi 🇮🇩") == "Selamat pagi 🇮🇩"


def test_short_text_is_one_piece() -> None:
    assert split_text("hello") == ["hello"]
    assert split_text("") == []


def test_split_prefers_spaces_and_never_breaks_characters() -> None:
    text = ("kata " * 400).strip()
    pieces = split_text(text)
    assert len(pieces) > 1
    assert all(utf8_len(p) <= MAX_TEXT_BYTES for p in pieces)
    assert " ".join(pieces) == text


@given(st.text(min_size=1, max_size=3000))
def test_split_respects_the_limit(text: str) -> None:
    pieces = split_text(text, 100)
    assert all(0 < utf8_len(p) <= 100 for p in pieces)
    joined = "".join(pieces)
    assert len(joined) <= len(text)
    assert joined.replace(" ", "") == text.replace(" ", "")


def test_the_printable_fast_path_never_skips_a_control() -> None:
    """`neutralize` returns printable text untouched without running its pattern: sound only if no
    character the pattern replaces is printable."""
    replaced = [c for c in map(chr, range(0x3000)) if _CONTROL_RE.fullmatch(c)]
    assert len(replaced) == 32 + 33 + 5 + 4  # C0, DEL and C1, and the bidi embeddings/isolates
    assert not any(c.isprintable() for c in replaced)
    assert all(neutralize(f"a{c}b") != f"a{c}b" for c in replaced)
