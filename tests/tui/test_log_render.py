"""How log entries are laid out, without an app: code fences, line breaks, columns, mentions, times."""

from __future__ import annotations

from datetime import UTC, date

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.style import Style

from labchat.tui.formatting import (
    CodeBlock,
    Prose,
    day_label,
    fit_name,
    mention_pattern,
    split_code,
    stamp,
)
from labchat.tui.log_entry import Delivery, Entry, EntryKind, layout_entry

T0 = 1_796_133_600.0  # 2026-12-01 14:00:00 UTC, a Tuesday
CONSOLE = Console(width=200, color_system=None)


def no_style(name: str) -> Style:
    return Style()


def marked(name: str) -> Style:
    """Mentions reversed, so a test can see what the highlight covers."""
    return Style(reverse=True) if name == "mention-name" else Style()


def texts(entry: Entry, width: int = 60, **kwargs: object) -> list[str]:
    rows = layout_entry(entry, width, CONSOLE, no_style, "14:00", **kwargs)  # type: ignore[arg-type]
    return [row.text.rstrip() for row in rows]


def test_fences_split_prose_and_code() -> None:
    assert split_code("no code") == [Prose("no code")]
    assert split_code("look:\n```python\ndef f():\n    return 1\n```\nok?") == [
        Prose("look:"), CodeBlock("def f():\n    return 1", "python"), Prose("ok?"),
    ]  # fmt: skip
    assert split_code("```x = 1``` inline") == [CodeBlock("x = 1"), Prose(" inline")]
    # An unclosed fence runs to the end of the message, as people forget to close the last one.
    assert split_code("a\n```\nunclosed\nmore") == [Prose("a"), CodeBlock("unclosed\nmore")]
    assert CodeBlock("a\nb\nc").line_count == 3


PIECES = ["`", "```", "```py\n", "\n", " ", "a", "é", "你", "\t", "\x1b"]


@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
@settings(max_examples=300, deadline=None)
def test_any_text_splits_and_lays_out_within_the_width(text: str) -> None:
    parts = split_code(text)
    assert parts
    for part in parts:
        assert isinstance(part, Prose | CodeBlock)
    entry = Entry(EntryKind.CHAT, T0, text, user="bob")
    rows = layout_entry(entry, 40, CONSOLE, no_style, "14:00")
    assert rows and all(row.strip.cell_length == 40 for row in rows)


def test_line_breaks_start_rows_in_the_text_column() -> None:
    rows = texts(Entry(EntryKind.CHAT, T0, "one\ntwo\n\nfour", user="bob"))
    assert rows == [
        "14:00        bob │ one",
        "                 │ two",
        "                 │",
        "                 │ four",
    ]


def test_code_rows_are_marked_and_never_re_highlighted() -> None:
    entry = Entry(EntryKind.CHAT, T0, "```python\nx = 1\ny = 2\n```", user="bob")
    rows = layout_entry(entry, 60, CONSOLE, no_style, "14:00")
    assert [row.code for row in rows] == [0, 0]
    cached = entry.code_lines[0]
    layout_entry(entry, 30, CONSOLE, no_style, "14:00")  # a resize re-wraps from the cache
    assert entry.code_lines[0] is cached


def test_inline_code_drops_its_backticks() -> None:
    assert texts(Entry(EntryKind.CHAT, T0, "run `make test` now", user="bob")) == [
        "14:00        bob │ run make test now"
    ]


def test_mention_highlight_covers_the_name_only() -> None:
    entry = Entry(EntryKind.CHAT, T0, "alice wrote most of it", user="bob", mention=True)
    row = layout_entry(entry, 60, CONSOLE, marked, "14:00", mention_pattern("alice"))[0]
    highlighted = [seg.text for seg in row.strip if seg.style and seg.style.reverse]
    assert highlighted == ["alice"]
    assert row.text.endswith("alice wrote most of it")


def test_own_action_is_not_a_mention() -> None:
    entry = Entry(EntryKind.ACTION, T0, "waves at everyone", user="alice", own=True)
    row = layout_entry(entry, 60, CONSOLE, marked, "14:00", mention_pattern("alice"))[0]
    assert not [seg.text for seg in row.strip if seg.style and seg.style.reverse]


def test_the_text_column_never_moves() -> None:
    entries = [
        Entry(EntryKind.CHAT, T0, "hi", user="a_twenty_char_name_x"),
        Entry(EntryKind.CHAT, T0, "hi", user="bob", delivery=Delivery.PENDING, own=True),
        Entry(EntryKind.PRIVATE_OUT, T0, "hi", user="averylongrecipient", own=True),
        Entry(EntryKind.JOIN, T0, "erin joined", user="erin"),
        Entry(EntryKind.CHAT, T0, "a " * 50, user="bob"),
        Entry(EntryKind.CHAT, T0, "```\ncode\n```", user="bob"),
    ]
    columns = set()
    for entry in entries:
        for row in layout_entry(entry, 50, CONSOLE, no_style, "14:00"):
            columns.add(row.body)
            assert row.text[row.body - 2] in "│…✗"
    assert columns == {19}


def test_failed_note_is_a_row_of_its_own() -> None:
    entry = Entry(
        EntryKind.PRIVATE_OUT, T0, "are you free today?", user="erin", own=True,
        delivery=Delivery.FAILED, note="erin is not online",
    )  # fmt: skip
    rows = texts(entry, 80)
    assert rows[0].endswith("(private to erin) are you free today?")
    assert rows[1].endswith("│ ✗ not sent: erin is not online (Ctrl+R or /retry resends)")


def test_times_carry_the_date_when_not_today() -> None:
    today = date(2026, 12, 1)
    assert stamp(T0, UTC, today) == "14:00"
    assert stamp(T0 - 86_400, UTC, today) == "30 Nov 14:00"
    assert stamp(T0 - 86_400, UTC) == "14:00"  # no day given: time only
    assert day_label(today, today) == "Tuesday 1 December"
    assert day_label(date(2025, 12, 31), today) == "Wednesday 31 December 2025"


def test_names_are_cut_to_the_column() -> None:
    assert fit_name("bob", 10) == "bob"
    assert fit_name("a_twenty_char_name_x", 10) == "a_twenty_…"
    assert fit_name("exactly_10", 10) == "exactly_10"


def test_dividers_span_the_width() -> None:
    rows = texts(Entry(EntryKind.DAY, T0, "Tuesday 1 December"), 40)
    assert len(rows) == 1 and len(rows[0]) == 40
    assert " Tuesday 1 December " in rows[0] and rows[0].startswith("───")
    assert Entry(EntryKind.UNREAD, T0, "new").plain == "— new —"
