"""One line of the chat log (`Entry`) and how it is drawn (`layout_entry`, `render_entry`).

Every piece of text from the network is put into a Rich `Text` as plain text, never parsed as markup,
so a user typing `[bold]` sees exactly that. Styles are looked up by name through a callable so that
they come from `labchat.tcss` (the log's component classes), not from Python.

Layout, IRC style, with a hanging indent so wrapped lines, line breaks and code stay in the text column:

    14:02      alice │ hello everyone 👋, this line is long enough to wrap
                     │ onto a second row
                     │ def plot(x):                  (a ``` code block, highlighted)
    14:03        bob … still on its way  sending…
    14:03 averylong… │ a name longer than the column is cut, never pushes the text
    14:03      →erin ✗ are you free today?
                     │ ✗ not sent: erin is not online (Ctrl+R or /retry resends)
    ───────────────────── Tuesday 1 December ─────────────────────

The time column is 5 cells ('14:02'), or 12 when the log shows lines from other days ('30 Nov 14:02'):
the log picks it and passes every entry the same, so the text column never moves from line to line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum, auto

from rich.console import Console
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text
from textual.strip import Strip

from ..i18n import _
from .formatting import INLINE_CODE, CodeBlock, Prose, fit_name, nick_colour, split_code

#: Width of the sender column; a longer name is cut with '…' (the full name shows on hover).
NICK_WIDTH = 10
#: Narrowest text column we wrap to, even in a very thin window.
MIN_BODY_WIDTH = 8
#: Colours of code blocks (a Pygments theme); its own background sets the block apart from prose.
CODE_THEME = "monokai"
#: Cells of the gutter between the sender column and the text: " │ ".
_GUTTER = 3


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
    #: Dividers the log draws itself, across the whole width: a new calendar day,
    DAY = auto()
    #: where replayed history ends and live messages begin,
    LIVE = auto()
    #: and where unread messages begin (the read marker).
    UNREAD = auto()


#: Kinds that are someone's words (counted as new messages, searched for mentions, copied as code).
MESSAGE_KINDS = frozenset(
    {EntryKind.CHAT, EntryKind.ACTION, EntryKind.PRIVATE_IN, EntryKind.PRIVATE_OUT}
)
#: Kinds drawn as a full-width divider.
DIVIDER_KINDS = frozenset({EntryKind.DAY, EntryKind.LIVE, EntryKind.UNREAD})


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
    #: When it happened; for our own message, when it was typed (a message queued while offline keeps
    #: the time the user wrote it, not the time the server stored it).
    ts: float
    text: str
    #: The sender; for PRIVATE_OUT the recipient.
    user: str = ""
    own: bool = False
    mention: bool = False
    delivery: Delivery = Delivery.NONE
    #: Why a message failed (shown after it).
    note: str = ""
    #: Replayed from the room's history rather than said just now.
    history: bool = False
    #: The room's sequence number (0: none), so pieces of one long message are shown as one entry.
    seq: int = 0
    #: When the server stored our message (set by the room on delivery); shown when minutes after `ts`.
    sent_ts: float | None = None
    #: Characters of the message's last piece, and how many of our pieces still wait for the server
    #: (kept by the log, which shows the pieces of one long message as one entry).
    tail_chars: int = 0
    pending_pieces: int = 1
    #: Filled in by the log: absolute row of the first line and number of rows at the current width.
    first_row: int = field(default=-1)
    rows: int = 0
    #: The text cut into prose and code blocks, and each block's highlighted lines: computed once,
    #: kept across repaints and resizes (highlighting is the costly part of drawing).
    parts: list[Prose | CodeBlock] | None = field(default=None, repr=False)
    code_lines: dict[int, list[Text]] = field(default_factory=dict, repr=False)
    #: A private message's label instead of "private" (a member's line in a quiet room: "to the
    #: operators").
    label: str = ""

    @property
    def plain(self) -> str:
        """The entry as plain text without time, for tests and for reading the log back."""
        if self.kind in DIVIDER_KINDS:
            return f"— {self.text} —"
        who = ""
        if self.kind is EntryKind.CHAT:
            who = f"<{self.user}> "
        elif self.kind is EntryKind.ACTION:
            who = f"* {self.user} "
        elif self.kind is EntryKind.PRIVATE_IN:
            who = (f"[{self.label}]" if self.label else _("[private]")) + f" <{self.user}> "
        elif self.kind is EntryKind.PRIVATE_OUT:
            label = f"[{self.label}]" if self.label else _("[private to {user}]").format(user=self.user)
            who = label + " "
        suffix = ""
        if self.delivery is Delivery.FAILED:
            suffix = " [" + _("not sent: {reason}").format(reason=self.note) + "]"
        return f"{who}{self.text}{suffix}"

    def set_text(self, text: str) -> None:
        """Change the words (a long message's next piece arrived); the cached layout is dropped."""
        self.text = text
        self.parts = None
        self.code_lines.clear()

    def blocks(self) -> list[Prose | CodeBlock]:
        """The text as prose and code blocks (cached)."""
        if self.parts is None:
            self.parts = split_code(self.text) if self.kind in MESSAGE_KINDS else [Prose(self.text)]
        return self.parts

    def code_blocks(self) -> list[CodeBlock]:
        """The fenced code blocks of the message, in order."""
        return [part for part in self.blocks() if isinstance(part, CodeBlock)]


StyleLookup = Callable[[str], Style]


@dataclass(slots=True)
class Row:
    """One drawn row of the log, with what copying and clicking need to know about it."""

    strip: Strip
    #: The characters of the row as drawn, left to right (wrapped lines keep their trailing space,
    #: so rows of one wrapped line join back into the words that were typed).
    text: str
    #: Where the text column starts in `text` (0 for a divider).
    body: int
    #: True when this row continues the line above (a wrap, not a line break of the message).
    soft: bool = False
    #: Index of the code block (in `Entry.code_blocks()`) this row shows, or -1.
    code: int = -1


def _highlighted(entry: Entry, index: int, block: CodeBlock) -> list[Text]:
    lines = entry.code_lines.get(index)
    if lines is None:
        syntax = Syntax(block.code, block.language or "text", theme=CODE_THEME, tab_size=4)
        text = syntax.highlight(block.code)
        lines = list(text.split("\n", allow_blank=True))[: block.line_count]
        base = text.style
        for line in lines:
            line.style = base
        entry.code_lines[index] = lines
    return lines


def _prose(text: str, style: StyleLookup, base: Style | str, mention: re.Pattern[str] | None) -> Text:
    """Message words with `inline code` styled (backticks dropped, as chat apps show it)."""
    out = Text(style=base, end="")
    pos = 0
    if "`" in text:
        for match in INLINE_CODE.finditer(text):
            out.append(text[pos : match.start()])
            out.append(match.group(1), style("inline-code"))
            pos = match.end()
    out.append(text[pos:])
    if mention is not None:
        out.highlight_regex(mention, style("mention-name"))
    return out


def _column(entry: Entry, style: StyleLookup) -> tuple[str, Style, Style]:
    """What the sender column shows, its style, and the style of the sender's name."""
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
        EntryKind.NOTICE: (_("server"), style("notice")),
        EntryKind.INFO: ("--", style("info")),
        EntryKind.ERROR: ("!!", style("error")),
    }[entry.kind]
    return column, column_style, nick_style


_PLAIN_STYLE = {
    EntryKind.CHAT: "",
    EntryKind.ACTION: "action",
    EntryKind.PRIVATE_IN: "private",
    EntryKind.PRIVATE_OUT: "private",
    EntryKind.JOIN: "join",
    EntryKind.LEAVE: "leave",
    EntryKind.NOTICE: "notice",
    EntryKind.INFO: "info",
    EntryKind.ERROR: "error",
}


def _lead(entry: Entry, style: StyleLookup, nick_style: Style) -> Text:
    """What comes before the words in the text column: the actor of a /me, a private label."""
    if entry.kind is EntryKind.ACTION:
        return Text.assemble((entry.user, nick_style), " ")
    if entry.label and entry.kind in (EntryKind.PRIVATE_IN, EntryKind.PRIVATE_OUT):
        return Text(f"({entry.label}) ", style("private-label"))
    if entry.kind is EntryKind.PRIVATE_IN:
        return Text(_("(private)") + " ", style("private-label"))
    if entry.kind is EntryKind.PRIVATE_OUT:
        return Text(_("(private to {user})").format(user=entry.user) + " ", style("private-label"))
    return Text()


def _divider(entry: Entry, width: int, console: Console, style: StyleLookup) -> list[Row]:
    label = f" {entry.text} "
    fill = max(width - len(label), 2)
    left = fill // 2
    line = "─" * left + label + "─" * (fill - left)
    # As a span: `Text.render` ignores the base style of a text without spans.
    text = Text.assemble((line, style(entry.kind.name.lower())), end="")
    text.truncate(max(width, 1), overflow="crop")
    strip = Strip(list(text.render(console)), text.cell_len).adjust_cell_length(width)
    return [Row(strip, text.plain, 0)]


def layout_entry(
    entry: Entry,
    width: int,
    console: Console,
    style: StyleLookup,
    time_text: str,
    mention: re.Pattern[str] | None = None,
    *,
    time_width: int = 5,
    sent_text: str = "",
) -> list[Row]:
    """The entry as rows of exactly `width` cells: wrapped with a hanging indent, line breaks kept,
    code blocks highlighted.

    Wrapping goes by terminal cells (Rich's `cell_len`), so emoji and CJK text line up. `mention`
    highlights the user's own name, never in their own messages (their `/me` starts with it).
    `sent_text` is the time the server stored a message that waited (offline) before it went.
    """
    if entry.kind in DIVIDER_KINDS:
        return _divider(entry, width, console, style)
    column, column_style, nick_style = _column(entry, style)
    mark, mark_style = {
        Delivery.PENDING: ("…", style("pending")),
        Delivery.FAILED: ("✗", style("failed")),
    }.get(entry.delivery, ("│", style("separator")))
    prefix = Text.assemble(
        (time_text.rjust(time_width), style("time")), " ",
        (fit_name(column, NICK_WIDTH).rjust(NICK_WIDTH), column_style), " ", (mark, mark_style), " ",
        end="",
    )  # fmt: skip
    indent = prefix.cell_len
    band = Style()
    if entry.mention:
        band = style("mention")
    elif entry.own:
        band = style("own")
    body_width = max(MIN_BODY_WIDTH, width - indent)
    # Wrapped rows keep the separator, so the text column reads as one block.
    continuation = Text.assemble(" " * (indent - 2), ("│", style("separator")), " ", end="")
    rows: list[Row] = []

    def emit(line: Text, *, soft: bool, code: int = -1, fill: Style | None = None) -> None:
        head = prefix if not rows else continuation
        drawn = line.plain
        if fill is not None:
            line = line.copy()
            line.pad_right(body_width - line.cell_len)
            line.stylize(fill)
        else:
            line.rstrip()
        row = Text.assemble(head, line, style=band, end="")
        row.truncate(max(width, 1), overflow="crop")
        strip = Strip(list(row.render(console)), row.cell_len).adjust_cell_length(width, band)
        rows.append(Row(strip, head.plain + drawn, indent, soft, code))

    def emit_wrapped(text: Text) -> None:
        for hard in text.split("\n", allow_blank=True):
            wrapped = hard.wrap(console, body_width, justify="default", overflow="fold") or [Text()]
            for i, line in enumerate(wrapped):
                emit(line, soft=i > 0)

    own_words = entry.own or entry.kind not in (EntryKind.CHAT, EntryKind.ACTION)
    highlight = None if own_words else mention
    base = style(_PLAIN_STYLE[entry.kind]) if _PLAIN_STYLE[entry.kind] else ""
    suffix = Text(end="")
    if entry.delivery is Delivery.PENDING:
        suffix.append("  " + _("sending…"), style("pending"))
    elif sent_text:
        suffix.append("  " + _("(sent {time})").format(time=sent_text), style("time"))
    lead = _lead(entry, style, nick_style)
    parts = entry.blocks()
    code_index = 0
    for i, part in enumerate(parts):
        if isinstance(part, Prose):
            words = Text.assemble(lead, _prose(part.text, style, base, highlight), end="")
            if i == len(parts) - 1:
                words.append_text(suffix)
                suffix = Text(end="")
            emit_wrapped(words)
        else:
            if lead.plain:
                emit_wrapped(lead)
            for line in _highlighted(entry, code_index, part):
                fill = line.style if isinstance(line.style, Style) else Style()
                pieces = line.wrap(console, body_width, justify="default", overflow="fold") or [line]
                for j, piece in enumerate(pieces):
                    emit(piece, soft=j > 0, code=code_index, fill=fill)
            code_index += 1
        lead = Text(end="")
    if suffix.plain or not rows:
        emit(suffix.copy(), soft=False)
    if entry.delivery is Delivery.FAILED:
        # A row of its own: glued after the words it read as part of them ("today?not sent:").
        failed = _("not sent: {reason} (Ctrl+R or /retry resends)").format(reason=entry.note)
        emit_wrapped(Text("✗ " + failed, style("failed")))
    return rows


def render_entry(
    entry: Entry,
    width: int,
    console: Console,
    style: StyleLookup,
    time_text: str,
    mention: re.Pattern[str] | None = None,
) -> list[Strip]:
    """The entry as rows of exactly `width` cells (see `layout_entry`)."""
    return [row.strip for row in layout_entry(entry, width, console, style, time_text, mention)]
