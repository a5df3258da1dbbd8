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

Rooms and their operators' commands (docs/protocol.md 18), as IRC has them:

    /join ROOM [KEY]    join (or create) ROOM; a room already joined becomes the current one
    /part [ROOM] [why]  leave ROOM (default: the current one); on a server with one room, quit
    /list, /rooms       the rooms there are; the rooms you are in
    /say ROOM text      send to ROOM, whichever room is current
    /topic [TEXT]       show or set the topic
    /invite NAME, /key [KEY], /op NAME, /deop NAME, /voice NAME, /devoice NAME,
    /kick NAME [why], /mute NAME [MINUTES] [why], /unmute NAME, /ban NAME [MINUTES] [why], /unban NAME,
    /moderate on|off, /private on|off, /topiclock on|off, /announce [TEXT | clear]

The classroom (docs/protocol.md 20):

    /hand [question], /hand down   ask for help (your seat goes with it), or no longer
    /queue, /next, /done NAME      operators: the help queue, take the first, remove NAME
    /poll "Question?" a | b | c    operators: ask the room (--anonymous: nobody sees who chose what)
    /poll close, /poll             close the open poll; show it
    /vote N                        answer the open poll
    /quiet on [MINUTES] | off      operators: members may talk only to the teachers
    /session start                 operators: a class session starts (what transcripts cover)
    /export [PATH]                 write the room's transcript (Markdown and HTML)

Files (docs/protocol.md 21):

    /send PATH [NAME]   offer a file or a folder to the room, or to NAME alone
    /accept ID, /decline ID   download an offer (into the downloads folder), or say no
    /files              the files offered in the room, with where each stands
    /open ID            a saved file (the app shows a small text file; line mode prints its path)

Commands are case-insensitive. `QUIT` alone on a line is the classic way to leave and stays.
Room names are taken as users type them: a leading '#' is dropped and the rest lowercased.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

from ..i18n import N_, _, name_rule, room_rule
from ..protocol.messages import (
    MAX_POLL_OPTION_BYTES,
    MAX_POLL_OPTIONS,
    MAX_QUESTION_BYTES,
    MAX_QUIET_MINUTES,
    MAX_SANCTION_MINUTES,
    MIN_POLL_OPTIONS,
    Action,
    Setting,
    is_valid_name,
    is_valid_room,
    room_from_user,
)


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class Me:
    text: str


@dataclass(frozen=True, slots=True)
class Private:
    """`/msg NAME text`: a private message, named as PRIVATE and `PrivateReceived` name it (the wire
    calls the sender's half WHISPER, as it calls the room's SAY and MESSAGE)."""

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
class Join:
    """`/join ROOM [KEY]`: `room` as the wire spells it (checked against the rule)."""

    room: str
    key: str = ""


@dataclass(frozen=True, slots=True)
class Part:
    """`/part [ROOM] [reason]`. `room` is None when no room was named. A first word that only may
    be a room (`/part cs101 bye` or `/part see you`) is `maybe_room`: it is the room if the user is
    in it, else the first word of the reason; a `#room` is always a room."""

    room: str | None
    reason: str = ""
    maybe_room: bool = False


@dataclass(frozen=True, slots=True)
class ListRooms:
    pass


@dataclass(frozen=True, slots=True)
class Rooms:
    """`/rooms`: the rooms we are in."""


@dataclass(frozen=True, slots=True)
class SayTo:
    """`/say ROOM text`: to one room explicitly."""

    room: str
    text: str


@dataclass(frozen=True, slots=True)
class Topic:
    """`/topic TEXT` sets it; `/topic` alone shows it (text None)."""

    text: str | None


@dataclass(frozen=True, slots=True)
class Key:
    """`/key KEY` sets the room's key; `/key` alone removes it (key "")."""

    key: str


@dataclass(frozen=True, slots=True)
class Moderate:
    """An operator's action on `name` in the current room (messages.Action: OP ... INVITE).
    `minutes` 0 for MUTE and BAN means until lifted."""

    action: Action
    name: str
    minutes: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Switch:
    """`/moderate on|off`, `/private on|off`, `/topiclock on|off`."""

    setting: Setting
    on: bool


@dataclass(frozen=True, slots=True)
class Announce:
    """`/announce TEXT` pins it; `/announce clear` removes it (text ""); `/announce` alone shows it
    and its read tally (text None)."""

    text: str | None


# ---- the classroom (docs/protocol.md 20)


@dataclass(frozen=True, slots=True)
class Hand:
    """`/hand [question]` raises (or re-asks), `/hand down` lowers."""

    question: str = ""
    down: bool = False


@dataclass(frozen=True, slots=True)
class Queue:
    """`/queue`: show the help queue (operators)."""


@dataclass(frozen=True, slots=True)
class Next:
    """`/next`: take the first student waiting."""


@dataclass(frozen=True, slots=True)
class Done:
    """`/done NAME`: remove NAME's entry from the queue."""

    name: str


@dataclass(frozen=True, slots=True)
class PollOpen:
    """`/poll "Question?" a | b | c` (`--anonymous` first: nobody sees who chose what)."""

    question: str
    options: tuple[str, ...]
    anonymous: bool = False


@dataclass(frozen=True, slots=True)
class PollClose:
    """`/poll close`."""


@dataclass(frozen=True, slots=True)
class PollShow:
    """`/poll` alone: show the room's open poll."""


@dataclass(frozen=True, slots=True)
class Vote:
    """`/vote N`: option N (1-based) of the open poll."""

    choice: int


@dataclass(frozen=True, slots=True)
class Quiet:
    """`/quiet on [MINUTES]` (minutes), `/quiet off` (None); `/quiet` alone shows it (show True)."""

    minutes: int | None
    show: bool = False


@dataclass(frozen=True, slots=True)
class SessionStart:
    """`/session start`."""


@dataclass(frozen=True, slots=True)
class Export:
    """`/export [PATH]`: PATH None for the default file name."""

    path: str | None = None


# ---- files (docs/protocol.md 21)


@dataclass(frozen=True, slots=True)
class Send:
    """`/send PATH [NAME]`: offer PATH to the current room, or to NAME alone (`to`). `raw` is
    everything after /send as typed: a path with spaces needs no quotes when it exists as typed."""

    path: str
    to: str | None = None
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Accept:
    file_id: int


@dataclass(frozen=True, slots=True)
class Decline:
    file_id: int


@dataclass(frozen=True, slots=True)
class Files:
    """`/files`: the offers of the current room."""


@dataclass(frozen=True, slots=True)
class Open:
    file_id: int


@dataclass(frozen=True, slots=True)
class Invalid:
    """Input that sends nothing: an unknown command or a command missing its arguments."""

    error: str


Command = (
    Say | Me | Private | Who | Away | Ignore | Unignore | Quit | Help | Search | History | Join | Part
    | ListRooms | Rooms | SayTo | Topic | Key | Moderate | Switch | Announce | Hand | Queue | Next | Done
    | PollOpen | PollClose | PollShow | Vote | Quiet | SessionStart | Export | Send | Accept | Decline
    | Files | Open | Invalid
)

#: /help, in English (marked for the catalogue; `help_lines()` gives them in the active language).
#: Each translation keeps the command words: only the descriptions are translated.
HELP_LINES = (
    N_("Commands:"),
    N_("  /msg NAME text   private message to NAME (only you and NAME see it)"),
    N_("  /me text         action, shown as '* you text'"),
    N_("  /who             who is online"),
    N_("  /search WORDS    search the room's history for messages with all these words"),
    N_("  /history [N]     show N older messages (default 50, at most 100)"),
    N_("  /away [reason]   mark yourself away (/away alone: back again)"),
    N_("  /back            no longer away"),
    N_("  /ignore [NAME]   hide NAME's messages here (alone: list who is ignored)"),
    N_("  /unignore NAME   show NAME's messages again"),
    N_("  /join ROOM [KEY] join or create a room (a room you are in: switch to it)"),
    N_("  /part [ROOM] [reason]  leave a room (default: this one)"),
    N_("  /say ROOM text   send to ROOM, whichever room you are in now"),
    N_("  /rooms           the rooms you are in"),
    N_("  /list            every room you may join, with its topic"),
    N_("  /topic [TEXT]    show or set the room's topic"),
    N_("Operators of a room:"),
    N_("  /op NAME, /deop NAME, /voice NAME, /devoice NAME   give or take a role"),
    N_("  /kick NAME [reason]              remove NAME from the room (they may come back)"),
    N_("  /mute NAME [MINUTES] [reason]    NAME may not speak here (/unmute NAME)"),
    N_("  /ban NAME [MINUTES] [reason]     kick NAME and keep them out (/unban NAME)"),
    N_("  /invite NAME     let NAME into a private room"),
    N_("  /key [KEY]       the room needs KEY to join (/key alone: no key)"),
    N_("  /moderate on|off only operators and voiced members speak"),
    N_("  /private on|off  invite-only, hidden from /list"),
    N_("  /topiclock on|off only operators set the topic"),
    N_("  /announce TEXT   pin an announcement (/announce clear; alone: show it and who has seen it)"),
    N_("The classroom:"),
    N_("  /hand [question] ask for help: you join the help queue with your seat (/hand down: no longer)"),
    N_("  /vote N          answer the room's open poll (/poll alone: show it)"),
    N_("  /export [PATH]   write this room's transcript (Markdown and HTML)"),
    N_("Operators of a class:"),
    N_("  /queue           the help queue, in order, with seats and waiting times"),
    N_("  /next            take the first student waiting (they see 'coming: you')"),
    N_("  /done NAME       take NAME out of the queue"),
    N_('  /poll "Question?" a | b | c   ask the room (/poll --anonymous ...: nobody sees who chose what)'),
    N_("  /poll close      close the poll: everyone sees the result"),
    N_("  /quiet on [MINUTES]  students may talk only to you (default 30 min; /quiet off)"),
    N_("  /session start   start a class session (what /export covers)"),
    N_("Files:"),
    N_("  /send PATH [NAME]  offer a file or folder to the room (or to NAME alone)"),
    N_("  /accept ID       download offer ID into your downloads folder (/decline ID: no thanks)"),
    N_("  /files           the files offered in this room"),
    N_("  /open ID         a file you saved (its path here)"),
    N_("  /help            this list"),
    N_("  /quit or QUIT    leave the chat"),
    N_("  //text           send a line that starts with '/'"),
)

#: Typed name -> MODERATE action for the commands that take a NAME.
_MODERATE = {
    "op": Action.OP, "deop": Action.DEOP, "voice": Action.VOICE, "devoice": Action.DEVOICE,
    "kick": Action.KICK, "mute": Action.MUTE, "unmute": Action.UNMUTE, "ban": Action.BAN,
    "unban": Action.UNBAN, "invite": Action.INVITE,
}  # fmt: skip
#: The actions that take a reason, and those that take MINUTES too.
_WITH_REASON = frozenset({Action.KICK, Action.MUTE, Action.BAN})
_WITH_MINUTES = frozenset({Action.MUTE, Action.BAN})
_SWITCHES = {"moderate": Setting.MODERATED, "private": Setting.PRIVATE, "topiclock": Setting.TOPIC_LOCK}
_NUMBER = re.compile(r"[+-]?\d+")


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
    name, _sep, rest = stripped[1:].partition(" ")
    name = name.lower()
    rest = rest.strip()
    if name in ("quit", "exit"):
        return Quit()
    room_command = _parse_room_command(name, rest) or _parse_file_command(name, rest)
    if room_command is not None:
        return room_command
    class_command = _parse_class_command(name, rest)
    if class_command is not None:
        return class_command
    if name in ("who", "names", "users"):
        return Who()
    if name in ("help", "?"):
        return Help()
    if name == "me":
        return Me(rest) if rest else _usage("/me text")
    if name in ("msg", "query", "w", "whisper", "tell"):
        to, _sep, text = rest.partition(" ")
        if not to or not text.strip():
            return _usage("/msg NAME text")
        return Private(to, text.strip())
    if name in ("search", "find", "grep"):
        return Search(rest) if rest else _usage("/search WORDS")
    if name == "history":
        if not rest:
            return History()
        if not rest.isdigit() or not 1 <= int(rest) <= 100:
            return Invalid(_("usage: {usage}, N from 1 to 100").format(usage="/history [N]"))
        return History(int(rest))
    if name == "away":
        return Away(rest or None)
    if name == "back":
        return Away(None)
    if name == "ignore":
        if " " in rest:
            return Invalid(_("usage: /ignore NAME (one name), or /ignore to list"))
        return Ignore(rest or None)
    if name == "unignore":
        if not rest or " " in rest:
            return _usage("/unignore NAME")
        return Unignore(rest)
    return Invalid(_("unknown command /{name}: type /help for the list").format(name=name))


def _room(word: str) -> str | Invalid:
    """A room name as typed ('#CS101' is cs101), or the one-line error naming the rule."""
    room = room_from_user(word)
    if not is_valid_room(room):
        return Invalid(
            _("invalid room name {name!r}: room names are {rule}").format(name=word, rule=room_rule())
        )
    return room


def _name_error(name: str) -> Invalid:
    return Invalid(_("invalid name {name!r}: names are {rule}").format(name=name, rule=name_rule()))


def _usage(synopsis: str) -> Invalid:
    """ "usage: /me text": the command's synopsis is the same in every language."""
    return Invalid(_("usage: {usage}").format(usage=synopsis))



def _parse_room_command(name: str, rest: str) -> Command | None:
    """The commands of rooms and roles (None: `name` is not one of them)."""
    if name in ("join", "j"):
        word, _sep, key = rest.partition(" ")
        if not word:
            return _usage("/join ROOM [KEY]")
        room = _room(word)
        return room if isinstance(room, Invalid) else Join(room, key.strip())
    if name in ("part", "leave"):
        return _parse_part(rest)
    if name == "list":
        return ListRooms()
    if name in ("rooms", "channels"):
        return Rooms()
    if name == "say":
        word, _sep, text = rest.partition(" ")
        if not word or not text.strip():
            return _usage("/say ROOM text")
        room = _room(word)
        return room if isinstance(room, Invalid) else SayTo(room, text.strip())
    if name == "topic":
        return Topic(rest or None)
    if name == "key":
        return Key(rest)
    if name in _SWITCHES:
        word = rest.lower()
        if word not in ("on", "off"):
            return _usage(f"/{name} on|off")
        return Switch(_SWITCHES[name], word == "on")
    if name == "announce":
        if not rest:
            return Announce(None)
        return Announce("" if rest.lower() == "clear" else rest)
    if name in _MODERATE:
        return _parse_moderate(name, _MODERATE[name], rest)
    return None


def _parse_part(rest: str) -> Part | Invalid:
    if not rest:
        return Part(None)
    word, _sep, reason = rest.partition(" ")
    if word.startswith("#"):
        room = _room(word)
        return room if isinstance(room, Invalid) else Part(room, reason.strip())
    if is_valid_room(room_from_user(word)):
        return Part(room_from_user(word), reason.strip(), maybe_room=True)
    return Part(None, rest)


def _parse_moderate(name: str, action: Action, rest: str) -> Moderate | Invalid:
    words = rest.split(maxsplit=1)
    usage = {Action.KICK: " [reason]", Action.MUTE: " [MINUTES] [reason]", Action.BAN: " [MINUTES] [reason]"}
    if not words:
        return _usage(f"/{name} NAME{usage.get(action, '')}")
    user, tail = words[0], (words[1] if len(words) > 1 else "")
    if not is_valid_name(user):
        return _name_error(user)
    if action not in _WITH_REASON:
        if tail:
            return Invalid(_("usage: {usage} (one name)").format(usage=f"/{name} NAME"))
        return Moderate(action, user)
    minutes = 0
    if action in _WITH_MINUTES and tail:
        first, _sep, after = tail.partition(" ")
        if _NUMBER.fullmatch(first):
            value = int(first)
            if not 1 <= value <= MAX_SANCTION_MINUTES:
                return Invalid(
                    _(
                        "MINUTES is a whole number from 1 to {max} (30 days); leave it out for until lifted"
                    ).format(max=MAX_SANCTION_MINUTES)
                )
            minutes, tail = value, after.strip()
    return Moderate(action, user, minutes, tail)


# ---- the classroom (docs/protocol.md 20)

#: Opening and closing quotes a question may be typed in ("…", '…', “…”, «…»).
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u201e": "\u201d", "\u00ab": "\u00bb"}
_POLL_SYNOPSIS = '/poll "Question?" answer | answer [| ...]'
#: Quiet mode's length when /quiet on gives none, in minutes.
DEFAULT_QUIET_MINUTES = 30


def _poll_usage() -> str:
    return _("usage: {usage}  (or /poll close)").format(usage=_POLL_SYNOPSIS)


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _parse_class_command(name: str, rest: str) -> Command | None:
    """The classroom's commands (None: `name` is not one of them)."""
    if name == "hand":
        if rest.lower() == "down":
            return Hand(down=True)
        if _utf8(rest) > MAX_QUESTION_BYTES:
            return Invalid(
                _("your question is {size} bytes: at most {max}").format(
                    size=_utf8(rest), max=MAX_QUESTION_BYTES
                )
            )
        return Hand(rest)
    if name == "queue":
        return Queue() if not rest else _usage("/queue")
    if name == "next":
        return Next() if not rest else Invalid(_("usage: /next (takes the first student waiting)"))
    if name == "done":
        if not rest or " " in rest:
            return _usage("/done NAME")
        return Done(rest) if is_valid_name(rest) else _name_error(rest)
    if name == "poll":
        return parse_poll(rest)
    if name == "vote":
        if not (rest.isascii() and rest.isdigit()) or not 1 <= int(rest) <= MAX_POLL_OPTIONS:
            return Invalid(
                _("usage: /vote N, the number of your answer (1 to {max})").format(max=MAX_POLL_OPTIONS)
            )
        return Vote(int(rest))
    if name == "quiet":
        return _parse_quiet(rest)
    if name == "session":
        return SessionStart() if rest.lower() == "start" else _usage("/session start")
    if name == "export":
        return Export(rest or None)
    return None


def _parse_quiet(rest: str) -> Quiet | Invalid:
    usage = Invalid(
        _("usage: /quiet on [MINUTES] | off  (MINUTES from 1 to {max}, default {default})").format(
            max=MAX_QUIET_MINUTES, default=DEFAULT_QUIET_MINUTES
        )
    )
    words = rest.lower().split()
    if not words:
        return Quiet(None, show=True)
    if words == ["off"]:
        return Quiet(None)
    if words[0] != "on" or len(words) > 2:
        return usage
    if len(words) == 1:
        return Quiet(DEFAULT_QUIET_MINUTES)
    if not (words[1].isascii() and words[1].isdigit()) or not 1 <= int(words[1]) <= MAX_QUIET_MINUTES:
        return usage
    return Quiet(int(words[1]))


def parse_poll(rest: str) -> PollOpen | PollClose | PollShow | Invalid:
    """`/poll`'s arguments: `"Question?" a | b | c`, `--anonymous "Q" a | b`, `close`, or nothing.

    The question is quoted ("…", '…', “…”) or, unquoted, ends at its first '?'. Never raises: any
    other input is an `Invalid` that says what is wrong."""
    text = rest.strip()
    if not text:
        return PollShow()
    if text.lower() == "close":
        return PollClose()
    anonymous = False
    first, _sep, after = text.partition(" ")
    if first.lower() in ("--anonymous", "--anon", "-a"):
        anonymous, text = True, after.strip()
    question, answers = _split_question(text)
    if question is None:
        return Invalid(_poll_usage())
    question = question.strip()
    if not question:
        return Invalid(_("the poll needs a question: {usage}").format(usage=_poll_usage()))
    if _utf8(question) > MAX_QUESTION_BYTES:
        return Invalid(
            _("the question is {size} bytes: at most {max}").format(
                size=_utf8(question), max=MAX_QUESTION_BYTES
            )
        )
    options = tuple(option.strip() for option in answers.split("|"))
    if not answers.strip() or len(options) < MIN_POLL_OPTIONS:
        return Invalid(
            _("a poll needs {min} to {max} answers between '|': {usage}").format(
                min=MIN_POLL_OPTIONS, max=MAX_POLL_OPTIONS, usage=_poll_usage()
            )
        )
    if len(options) > MAX_POLL_OPTIONS:
        return Invalid(
            _("{count} answers: a poll has at most {max}").format(count=len(options), max=MAX_POLL_OPTIONS)
        )
    for i, option in enumerate(options, 1):
        if not option:
            return Invalid(_("answer {n} is empty: {usage}").format(n=i, usage=_poll_usage()))
        if _utf8(option) > MAX_POLL_OPTION_BYTES:
            return Invalid(
                _("answer {n} is {size} bytes: at most {max}").format(
                    n=i, size=_utf8(option), max=MAX_POLL_OPTION_BYTES
                )
            )
    return PollOpen(question, options, anonymous)


def _split_question(text: str) -> tuple[str | None, str]:
    """(question, the rest) of `"Q" a | b`; question None when there is no telling where it ends."""
    if text and text[0] in _QUOTES:
        end = text.find(_QUOTES[text[0]], 1)
        if end < 0:
            return None, ""
        return text[1:end], text[end + 1 :]
    mark = text.find("?")
    if mark < 0:
        return None, ""
    return text[: mark + 1], text[mark + 1 :]


def _parse_file_command(name: str, rest: str) -> Command | None:
    """The commands of files (None: `name` is not one of them)."""
    if name == "send":
        if not rest:
            return Invalid(_("usage: /send PATH [NAME] (a file or a folder; NAME: to one person)"))
        try:
            words = shlex.split(rest, posix=os.name != "nt")
        except ValueError:
            return Invalid(_("usage: /send PATH [NAME]: a quote is not closed"))
        words = [w.strip('"') for w in words] if os.name == "nt" else words
        if len(words) == 1:
            return Send(words[0], None, rest)
        if len(words) == 2 and is_valid_name(words[1]):
            return Send(words[0], words[1], rest)
        return Send(rest, None, rest)  # a path with spaces, typed without quotes (checked later)
    if name in ("accept", "decline", "open"):
        if not rest.isdigit() or not 0 < int(rest) < 2**64:
            return Invalid(
                _("usage: {usage} (the number in the offer; /files lists them)").format(usage=f"/{name} ID")
            )
        file_id = int(rest)
        if name == "accept":
            return Accept(file_id)
        return Decline(file_id) if name == "decline" else Open(file_id)
    if name == "files":
        return Files()
    return None


def help_lines() -> tuple[str, ...]:
    """/help's lines in the active language."""
    return tuple(_(line) for line in HELP_LINES)


def command_names() -> tuple[str, ...]:
    """The commands `/help` lists, without the slash: what Tab completes after a `/`."""
    names = []
    for line in HELP_LINES:
        for word in re.findall(r"(?:^|, |\()(/[a-z]+)", line.strip()):
            if word[1:] not in names:
                names.append(word[1:])
    return tuple(names)
