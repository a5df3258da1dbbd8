"""One line of the chat log (`Entry`) and how it is drawn (`render_entry`).

Every piece of text from the network is put into a Rich `Text` as plain text, never parsed as markup,
so a user typing `[bold]` sees exactly that. Styles are looked up by name through a callable so that
they come from `labchat.tcss` (the log's component classes), not from Python.

Layout, IRC style, with a hanging indent so wrapped lines stay in the text column:

    14:02      alice │ hello everyone 👋, this line is long enough to wrap
                     │ onto a second row
    14:03        bob … still on its way (pending)
    14:03        -->   carol joined
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto

from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from .formatting import nick_colour

#: Width of the sender column; longer names push their own line's text to the right.
NICK_WIDTH = 10
#: Narrowest text column we wrap to, even in a very thin window.
MIN_BODY_WIDTH = 8


class EntryKind(Enum):
    """What an entry shows; each kind has its own look."""

    CHAT = auto()
    ACTION = auto()
    PRIVATE_IN = auto()
    PRIVATE_OUT = auto()
    JOIN = auto()
    LEAVE = auto()
    NOTICE = auto()
    INFO = auto()
    ERROR = auto()


class Delivery(Enum):
    """Our own message's fate: pending until the server confirms it, or failed for good."""

    NONE = auto()
    PENDING = auto()
    DELIVERED = auto()
    FAILED = auto()


@dataclass(eq=False, slots=True)
class Entry:
    """One logical line of the log (it may wrap onto several rows)."""

    kind: EntryKind
    ts: float
    text: str
    #: The sender; for PRIVATE_OUT the recipient.
    user: str = ""
    own: bool = False
    mention: bool = False
    delivery: Delivery = Delivery.NONE
    #: Why a message failed (shown after it).
    note: str = ""
    #: Filled in by the log: absolute row of the first line and number of rows at the current width.
    first_row: int = field(default=-1)
    rows: int = 0

    @property
    def plain(self) -> str:
        """The entry as plain text without time, for tests and for reading the log back."""
        who = {
            EntryKind.CHAT: f"<{self.user}> ",
            EntryKind.ACTION: f"* {self.user} ",
            EntryKind.PRIVATE_IN: f"[private] <{self.user}> ",
            EntryKind.PRIVATE_OUT: f"[private to {self.user}] ",
        }.get(self.kind, "")
        suffix = f" [not sent: {self.note}]" if self.delivery is Delivery.FAILED else ""
        return f"{who}{self.text}{suffix}"


StyleLookup = Callable[[str], Style]


def _texts(
    entry: Entry, style: StyleLookup, time_text: str, mention: re.Pattern[str] | None
) -> tuple[Text, Text]:
    """The (prefix, body) of an entry: time, sender column and mark; then the words."""
    nick_style = style(f"nick-{nick_colour(entry.user)}") if entry.user else Style()
    if entry.own:
        nick_style += Style(bold=True)
    column, column_style = {
        EntryKind.CHAT: (entry.user, nick_style),
        EntryKind.ACTION: ("*", nick_style),
        EntryKind.PRIVATE_IN: (entry.user, nick_style),
        EntryKind.PRIVATE_OUT: (f"→{entry.user}", nick_style),
        EntryKind.JOIN: ("-->", style("join")),
        EntryKind.LEAVE: ("<--", style("leave")),
        EntryKind.NOTICE: ("server", style("notice")),
        EntryKind.INFO: ("--", style("info")),
        EntryKind.ERROR: ("!!", style("error")),
    }[entry.kind]
    mark, mark_style = {
        Delivery.PENDING: ("…", style("pending")),
        Delivery.FAILED: ("✗", style("failed")),
    }.get(entry.delivery, ("│", style("separator")))
    prefix = Text.assemble(
        (time_text, style("time")), " ", (column.rjust(NICK_WIDTH), column_style), " ",
        (mark, mark_style), " ",
    )  # fmt: skip

    body = Text()
    match entry.kind:
        case EntryKind.CHAT:
            body.append(entry.text)
        case EntryKind.ACTION:
            body.append(entry.user, nick_style)
            body.append(" ")
            body.append(entry.text, style("action"))
        case EntryKind.PRIVATE_IN:
            body.append("(private) ", style("private-label"))
            body.append(entry.text, style("private"))
        case EntryKind.PRIVATE_OUT:
            body.append(f"(private to {entry.user}) ", style("private-label"))
            body.append(entry.text, style("private"))
        case EntryKind.JOIN:
            body.append(entry.text, style("join"))
        case EntryKind.LEAVE:
            body.append(entry.text, style("leave"))
        case EntryKind.NOTICE:
            body.append(entry.text, style("notice"))
        case EntryKind.INFO:
            body.append(entry.text, style("info"))
        case EntryKind.ERROR:
            body.append(entry.text, style("error"))
    if mention is not None and entry.kind in (EntryKind.CHAT, EntryKind.ACTION):
        body.highlight_regex(mention, style("mention-name"))
    if entry.delivery is Delivery.FAILED:
        body.append(f"  not sent: {entry.note} (Ctrl+R or /retry resends)", style("failed"))
    elif entry.delivery is Delivery.PENDING:
        body.append("  sending…", style("pending"))
    return prefix, body


def render_entry(
    entry: Entry,
    width: int,
    console: Console,
    style: StyleLookup,
    time_text: str,
    mention: re.Pattern[str] | None = None,
) -> list[Strip]:
    """The entry as rows of exactly `width` cells, wrapped with a hanging indent.

    Wrapping goes by terminal cells (Rich's `cell_len`), so emoji and CJK text line up.
    """
    prefix, body = _texts(entry, style, time_text, mention)
    band = Style()
    if entry.mention:
        band = style("mention")
    elif entry.own:
        band = style("own")
    indent = prefix.cell_len
    body_width = max(MIN_BODY_WIDTH, width - indent)
    lines = body.wrap(console, body_width, overflow="fold") or [Text()]
    # Wrapped rows keep the separator, so the text column reads as one block.
    continuation = Text.assemble(" " * (indent - 2), ("│", style("separator")), " ")
    strips = []
    for i, line in enumerate(lines):
        head = prefix if i == 0 else continuation
        line.rstrip()
        row = Text.assemble(head, line, style=band, end="")
        row.truncate(max(width, 1), overflow="crop")
        strip = Strip(list(row.render(console)), row.cell_len)
        strips.append(strip.adjust_cell_length(width, band))
    return strips
