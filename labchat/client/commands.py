"""Typed input: a chat line or a command. Parsed here once, so line mode and the Textual app agree.

The commands are IRC's, as WeeChat and irssi users expect them:

    QUIT, /quit [why]   leave the room
    /who                list who is online
    /me text            an action ("* alice waves")
    /msg NAME text      a private message (also /query, /w)
    /search WORDS       search the room's stored history (newest first)
    /history [N]        show N older messages (default 50) before the oldest one shown
    /away [reason]      mark yourself away (IRC: with no reason it clears, as /back does)
    /back               no longer away
    /ignore [NAME]      hide NAME's messages on this client; alone: list who is ignored
    /unignore NAME      show NAME's messages again
    /help               list the commands
    //text              send "/text" literally

Commands are case-insensitive. `QUIT` alone on a line is the classic way to leave and stays.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class Me:
    text: str


@dataclass(frozen=True, slots=True)
class Msg:
    to: str
    text: str


@dataclass(frozen=True, slots=True)
class Who:
    pass


@dataclass(frozen=True, slots=True)
class Away:
    """`/away reason` sets; `/away` alone and `/back` clear (reason None), as IRC has it."""

    reason: str | None


@dataclass(frozen=True, slots=True)
class Ignore:
    """`/ignore NAME` adds NAME; `/ignore` alone lists (name None)."""

    name: str | None


@dataclass(frozen=True, slots=True)
class Unignore:
    name: str


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Search:
    """Search the room's stored history for every word of `query`."""

    query: str


@dataclass(frozen=True, slots=True)
class History:
    """Fetch `count` messages older than the oldest one shown."""

    count: int = 50


@dataclass(frozen=True, slots=True)
class Help:
    pass


@dataclass(frozen=True, slots=True)
class Invalid:
    """Input that sends nothing: an unknown command or a command missing its arguments."""

    error: str


Command = Say | Me | Msg | Who | Away | Ignore | Unignore | Quit | Help | Search | History | Invalid

HELP_LINES = (
    "Commands:",
    "  /msg NAME text   private message to NAME (only you and NAME see it)",
    "  /me text         action, shown as '* you text'",
    "  /who             who is online",
    "  /search WORDS    search the room's history for messages with all these words",
    "  /history [N]     show N older messages (default 50, at most 100)",
    "  /away [reason]   mark yourself away (/away alone: back again)",
    "  /back            no longer away",
    "  /ignore [NAME]   hide NAME's messages here (alone: list who is ignored)",
    "  /unignore NAME   show NAME's messages again",
    "  /help            this list",
    "  /quit or QUIT    leave the room",
    "  //text           send a line that starts with '/'",
)


def parse(line: str) -> Command | None:
    """Parse one typed line; None for a blank line (nothing to do)."""
    stripped = line.strip()
    if not stripped:
        return None
    if stripped == "QUIT":
        return Quit()
    if not stripped.startswith("/"):
        return Say(line.rstrip("\r\n"))
    if stripped.startswith("//"):
        return Say(stripped[1:])
    name, _, rest = stripped[1:].partition(" ")
    name = name.lower()
    rest = rest.strip()
    if name in ("quit", "exit", "part"):
        return Quit()
    if name in ("who", "names", "users"):
        return Who()
    if name in ("help", "?"):
        return Help()
    if name == "me":
        return Me(rest) if rest else Invalid("usage: /me text")
    if name in ("msg", "query", "w", "whisper", "tell"):
        to, _, text = rest.partition(" ")
        if not to or not text.strip():
            return Invalid("usage: /msg NAME text")
        return Msg(to, text.strip())
    if name in ("search", "find", "grep"):
        return Search(rest) if rest else Invalid("usage: /search WORDS")
    if name == "history":
        if not rest:
            return History()
        if not rest.isdigit() or not 1 <= int(rest) <= 100:
            return Invalid("usage: /history [N], N from 1 to 100")
        return History(int(rest))
    if name == "away":
        return Away(rest or None)
    if name == "back":
        return Away(None)
    if name == "ignore":
        if " " in rest:
            return Invalid("usage: /ignore NAME (one name), or /ignore to list")
        return Ignore(rest or None)
    if name == "unignore":
        if not rest or " " in rest:
            return Invalid("usage: /unignore NAME")
        return Unignore(rest)
    return Invalid(f"unknown command /{name}: type /help for the list")


def command_names() -> tuple[str, ...]:
    """The commands `/help` lists, without the slash: what Tab completes after a `/`."""
    names = []
    for line in HELP_LINES:
        word = line.strip().split(" ", 1)[0]
        if word.startswith("/") and not word.startswith("//"):
            names.append(word[1:])
    return tuple(names)
