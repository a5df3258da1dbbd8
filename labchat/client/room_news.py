"""The sentences of room news, in one place, so line mode and the app say the same words.

The server sends its own English sentence with each ROOM_EVENT (`text`); docs/protocol.md 18.10 asks
a client to build its line from the fields instead (so that it can be translated) and to fall back
to the server's text only for an action it does not know. Everything here is pure: events in,
one line out, nothing printed.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from ..protocol import events as ev
from ..protocol import messages as m
from ..protocol.errors import ErrorCode

#: ROOM_STATE / ROOM_INFO mode bits and their words (the --json contract), in display order.
ROOM_MODE_WORDS: tuple[tuple[int, str], ...] = (
    (m.ROOM_PRIVATE, "private"),
    (m.ROOM_MODERATED, "moderated"),
    (m.ROOM_KEYED, "keyed"),
    (m.ROOM_TOPIC_LOCKED, "topic_locked"),
)
#: MEMBER_* bits and their words (the --json contract).
MEMBER_WORDS: tuple[tuple[int, str], ...] = (
    (m.MEMBER_OP, "op"),
    (m.MEMBER_VOICE, "voice"),
    (m.MEMBER_MUTED, "muted"),
    (m.MEMBER_GUEST, "guest"),
    (m.MEMBER_ADMIN, "admin"),
)
#: ROOM_EVENT actions as one word each (the --json contract: "mute", "kick", "topic", ...).
ACTION_WORDS: dict[int, str] = {
    m.Action.OP: "op",
    m.Action.DEOP: "deop",
    m.Action.VOICE: "voice",
    m.Action.DEVOICE: "devoice",
    m.Action.KICK: "kick",
    m.Action.MUTE: "mute",
    m.Action.UNMUTE: "unmute",
    m.Action.BAN: "ban",
    m.Action.UNBAN: "unban",
    m.Action.INVITE: "invite",
    m.Action.TOPIC_SET: "topic",
    m.Action.KEY_SET: "key",
    m.Action.MODERATED_SET: "moderated",
    m.Action.PRIVATE_SET: "private",
    m.Action.ANNOUNCEMENT_SET: "announcement",
    m.Action.TOPIC_LOCK_SET: "topic_lock",
    m.Action.MUTE_ENDED: "mute_ended",
    m.Action.BAN_ENDED: "ban_ended",
}
#: The switches' words in "teacher turned moderation on".
_SWITCH_NAMES = {
    m.Action.MODERATED_SET: "moderation",
    m.Action.PRIVATE_SET: "invite-only",
    m.Action.TOPIC_LOCK_SET: "the topic lock",
}


def mode_words(bits: int) -> list[str]:
    """A room's ROOM_* bits as words: ["moderated", "keyed"]."""
    return [word for bit, word in ROOM_MODE_WORDS if bits & bit]


def member_words(bits: int) -> list[str]:
    """A member's MEMBER_* bits as words: ["op", "guest"]."""
    return [word for bit, word in MEMBER_WORDS if bits & bit]


def action_word(action: int) -> str:
    """A ROOM_EVENT action as its word; an action this client does not know as "action-N"."""
    return ACTION_WORDS.get(action, f"action-{action}")


def member_label(name: str, bits: int) -> str:
    """A name as /who lists it: "@teacher" (operator or admin), "+bob" (voiced), with "(guest)" and
    "(muted)" after it, as IRC clients mark them."""
    prefix = "@" if bits & (m.MEMBER_OP | m.MEMBER_ADMIN) else "+" if bits & m.MEMBER_VOICE else ""
    marks = [word for bit, word in ((m.MEMBER_GUEST, "guest"), (m.MEMBER_MUTED, "muted")) if bits & bit]
    return f"{prefix}{name}" + (f" ({', '.join(marks)})" if marks else "")


def _length(minutes: int) -> str:
    """ " for 10 min", " for 60 min", " for 3 days": a sanction's length, in the unit it was given."""
    if minutes % 1440 == 0:
        days = minutes // 1440
        return f" for {days} day{'s' if days != 1 else ''}"
    return f" for {minutes} min"


def _sanction(target: str, verb: str, actor: str, minutes: int, reason: str) -> str:
    length = _length(minutes) if minutes else ""
    line = f"{target} was {verb}{length} by {actor}"
    if not minutes and verb in ("muted", "banned"):
        line += " (until lifted)"
    return line + (f": {reason}" if reason else "")


def _room_event(event: ev.RoomEvent) -> str:
    actor, target, value = event.actor or "the server", event.target, event.value
    match event.action:
        case m.Action.MUTE:
            return _sanction(target, "muted", actor, event.minutes, value)
        case m.Action.BAN:
            return _sanction(target, "banned", actor, event.minutes, value)
        case m.Action.KICK:
            return _sanction(target, "kicked", actor, 0, value)
        case m.Action.UNMUTE:
            return f"{target} was unmuted by {actor}"
        case m.Action.UNBAN:
            return f"{target} was unbanned by {actor}"
        case m.Action.OP:
            return f"{actor} gave {target} operator"
        case m.Action.DEOP:
            return f"{actor} took operator from {target}"
        case m.Action.VOICE:
            return f"{actor} gave {target} voice"
        case m.Action.DEVOICE:
            return f"{actor} took voice from {target}"
        case m.Action.INVITE:
            return f"{actor} invited {target}"
        case m.Action.TOPIC_SET:
            return f"{actor} set the topic: {value}" if value else f"{actor} cleared the topic"
        case m.Action.KEY_SET:
            return f"{actor} changed the room key"  # the key itself is never shown (18.8)
        case m.Action.ANNOUNCEMENT_SET:
            # 18.8: no value (the text follows in ANNOUNCEMENT, which says whether it was cleared).
            return f"{actor} changed the announcement"
        case m.Action.MODERATED_SET | m.Action.PRIVATE_SET | m.Action.TOPIC_LOCK_SET:
            return f"{actor} turned {_SWITCH_NAMES[m.Action(event.action)]} {value or 'off'}"
        case m.Action.MUTE_ENDED:
            return f"{target}'s mute ended"
        case m.Action.BAN_ENDED:
            return f"{target}'s ban ended"
    return event.text or f"{actor} changed something in #{event.room}"


def _until(until: float, now: float) -> str:
    if math.isinf(until):
        return " (until lifted)"
    end = datetime.fromtimestamp(until)
    same_day = end.date() == datetime.fromtimestamp(now).date()
    return f" until {end.strftime('%H:%M' if same_day else '%Y-%m-%d %H:%M')}"


def _room_left(event: ev.RoomLeft, now: float) -> str:
    reason = f": {event.reason}" if event.reason else ""
    by = f" by {event.by}" if event.by else ""
    if event.code == ErrorCode.KICKED:
        return f"you were kicked from #{event.room}{by}{reason}"
    if event.code == ErrorCode.BANNED:
        until = _until(event.until, now) if event.until is not None else ""
        return f"you were banned from #{event.room}{by}{until}{reason}"
    if event.code:
        return f"you are no longer in #{event.room}{reason}"
    return f"you left #{event.room}{reason}"


def tally_sentence(seen: int, total: int, not_yet: tuple[str, ...]) -> str:
    """ "seen by 23 of 28 — not yet: ani, budi" ("…" when the server had to cut the list)."""
    line = f"seen by {seen} of {total}"
    if not_yet:
        cut = len(not_yet) >= m.MAX_TALLY_NAMES and total - seen > len(not_yet)
        line += f" — not yet: {', '.join(not_yet)}" + (", …" if cut else "")
    return line


def describe(
    event: ev.RoomEvent
    | ev.RoomLeft
    | ev.Announcement
    | ev.AnnouncementTally
    | ev.RoomState
    | ev.RequestFailed,
    now: float | None = None,
) -> str:
    """The one line for a piece of room news. `now` only decides whether a ban's end needs its date.

    "bob was muted for 10 min by teacher", "teacher set the topic: Lab 3",
    "you were kicked from #cs101 by teacher: spam", "announcement by teacher: Quiz at 10",
    "seen by 23 of 28 — not yet: ani, budi", "you joined #cs101 — topic: Lab 3 (12 members)".
    """
    match event:
        case ev.RoomEvent():
            return _room_event(event)
        case ev.RoomLeft():
            return _room_left(event, time.time() if now is None else now)
        case ev.Announcement():
            if not event.text:
                return f"the announcement of #{event.room} was cleared"
            return f"announcement by {event.by}: {event.text}"
        case ev.AnnouncementTally():
            return tally_sentence(event.seen, event.total, event.not_yet)
        case ev.RoomState():
            return _room_state(event)
        case ev.RequestFailed():
            return event.text  # the server's own line: it names the rule that refused the request
    return str(getattr(event, "text", ""))


def _room_state(state: ev.RoomState) -> str:
    head = f"you joined #{state.room}" if state.joined else f"#{state.room}"
    topic = f" — topic: {state.topic}" if state.topic else ""
    words = mode_words(state.modes)
    you = [w for w in member_words(state.you) if w != "guest"]
    details = [f"{state.members} member{'s' if state.members != 1 else ''}", *words]
    if you:
        details.append("you: " + ", ".join(you))
    return f"{head}{topic} ({', '.join(details)})"


def room_list_lines(rooms: tuple[ev.RoomInfo, ...], more: bool) -> list[str]:
    """/list: one line per room, "#cs101 (12 online) Lab 3 [moderated]"."""
    if not rooms:
        return ["no rooms to list"]
    lines = [f"{len(rooms)} rooms" + (" (more not shown)" if more else "") + ":"]
    for info in rooms:
        words = mode_words(info.modes)
        modes = f" [{', '.join(words)}]" if words else ""
        topic = f" {info.topic}" if info.topic else ""
        lines.append(f"  #{info.room} ({info.online} online){topic}{modes}")
    return lines
