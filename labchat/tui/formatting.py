"""Pure helpers for how chat looks: sender colours, mentions and times. No Textual, no I/O.

They live apart from the widgets so that their rules (the same colour for a name on every client, what
counts as a mention) can be tested without running an app.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from ..i18n import N_, _

#: How many sender colours `labchat.tcss` defines (`message-log--nick-0` ... `-11`).
NICK_COLOURS = 12

#: Names of days and months, from the catalogue rather than `strftime` (which speaks the C locale
#: unless the process called `setlocale`, and then the machine's language rather than `--lang`).
WEEKDAYS = (
    N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"), N_("Friday"), N_("Saturday"), N_("Sunday"),
)  # fmt: skip
MONTHS = (
    N_("January"), N_("February"), N_("March"), N_("April"), N_("May"), N_("June"),
    N_("July"), N_("August"), N_("September"), N_("October"), N_("November"), N_("December"),
)  # fmt: skip
MONTHS_SHORT = (
    N_("Jan"), N_("Feb"), N_("Mar"), N_("Apr"), N_("May"), N_("Jun"),
    N_("Jul"), N_("Aug"), N_("Sep"), N_("Oct"), N_("Nov"), N_("Dec"),
)  # fmt: skip

#: Characters that may appear in a user name (protocol/messages.py's rule); a mention must not be
#: glued to more of them, or "al" would be mentioned by "alice".
_NAME_CHAR = r"[A-Za-z0-9_-]"


def nick_colour(name: str) -> int:
    """The colour slot of a sender, the same on every client and every run.

    Python's `hash()` is salted per process, so it would give a name a different colour in each
    terminal; a digest of the casefolded name does not (and 'Alice' and 'alice' are one account).
    """
    digest = hashlib.sha256(name.casefold().encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % NICK_COLOURS


def mention_pattern(name: str) -> re.Pattern[str]:
    """A regex finding `name` (optionally as `@name`) as a whole word, in any case."""
    return re.compile(rf"(?<!{_NAME_CHAR})@?{re.escape(name)}(?!{_NAME_CHAR})", re.IGNORECASE)


def mentions(text: str, name: str) -> bool:
    """True when `text` mentions the user `name`."""
    return bool(name) and mention_pattern(name).search(text) is not None


def clock_time(ts: float, tz: tzinfo | None = None) -> str:
    """HH:MM for a Unix time, in `tz` (None: the local zone). Tests pass UTC for stable snapshots."""
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M")


def format_rtt(rtt_s: float | None) -> str:
    """A round-trip time the way people read it: '<1 ms', '12 ms', '1.3 s'."""
    if rtt_s is None:
        return ""
    if rtt_s < 0.001:
        return "<1 ms"
    if rtt_s < 1:
        return f"{rtt_s * 1000:.0f} ms"
    return f"{rtt_s:.1f} s"


def stamp(ts: float, tz: tzinfo | None = None, today: date | None = None) -> str:
    """The time of a log line: 'HH:MM' on `today`, '30 Nov 14:02' on any other day.

    Without the date, a line from yesterday reads as if it were from this morning.
    """
    moment = datetime.fromtimestamp(ts, tz)
    if today is None or moment.date() == today:
        return moment.strftime("%H:%M")
    month = _(MONTHS_SHORT[moment.month - 1])
    return _("{day} {month} {time}").format(day=moment.day, month=month, time=moment.strftime("%H:%M"))


#: Width of `stamp` with a date ('30 Nov 14:02'); without one it is 5.
DATED_STAMP_WIDTH = 12


def local_date(ts: float, tz: tzinfo | None = None) -> date:
    """The calendar day of a Unix time in `tz` (None: the local zone)."""
    return datetime.fromtimestamp(ts, tz).date()


def day_label(day: date, today: date) -> str:
    """A day the way a divider names it: 'Tuesday 1 December' (with the year when not `today`'s)."""
    weekday, month = _(WEEKDAYS[day.weekday()]), _(MONTHS[day.month - 1])
    if day.year == today.year:
        return _("{weekday} {day} {month}").format(weekday=weekday, day=day.day, month=month)
    with_year = _("{weekday} {day} {month} {year}")
    return with_year.format(weekday=weekday, day=day.day, month=month, year=day.year)


def fit_name(name: str, width: int) -> str:
    """`name` cut to `width` cells with '…' when longer, so the text column stays where it is."""
    if len(name) <= width:
        return name
    return name[: max(width - 1, 0)] + "…"


@dataclass(frozen=True, slots=True)
class Prose:
    """Ordinary message text, in which `inline code` spans are found by `inline_code`."""

    text: str


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A fenced code block: the code without its fences, and the language named after the opening fence."""

    code: str
    language: str = ""

    @property
    def line_count(self) -> int:
        return self.code.count("\n") + 1


#: An opening fence at the start of a line (with an optional language), up to a closing fence alone on
#: its line or the end of the message: people often forget to close the last block.
_FENCE = re.compile(
    r"(?:^|(?<=\n))[ \t]*```[ \t]*(?P<lang>[\w+#.-]*)[ \t]*\n(?P<code>.*?)(?:\n[ \t]*```[ \t]*(?=\n|$)|\Z)"
    r"|```(?P<one>[^`\n][^\n]*?)```",
    re.DOTALL,
)
#: `inline code`: backticks around text on one line.
INLINE_CODE = re.compile(r"`([^`\n]+)`")


def split_code(text: str) -> list[Prose | CodeBlock]:
    """A message cut into prose and fenced code blocks, in order (Markdown's ``` fences, as in Slack).

    A one-line ```code``` is a block too. Text with no fence is one `Prose`; nothing is lost except the
    fences themselves and the line breaks right around them.
    """
    if "```" not in text:
        return [Prose(text)]
    parts: list[Prose | CodeBlock] = []
    pos = 0
    for match in _FENCE.finditer(text):
        before = text[pos : match.start()]
        if before.endswith("\n"):
            before = before[:-1]
        if before:
            parts.append(Prose(before))
        if match.group("one") is not None:
            parts.append(CodeBlock(match.group("one").strip()))
        else:
            parts.append(CodeBlock(match.group("code").rstrip("\n"), match.group("lang").lower()))
        pos = match.end()
        if text.startswith("\n", pos):
            pos += 1
    if pos < len(text):
        parts.append(Prose(text[pos:]))
    return parts or [Prose(text)]
