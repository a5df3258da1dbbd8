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
    (m.ROOM_QUIET, "quiet"),
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
    m.Action.QUIET_SET: "quiet",
    m.Action.SESSION_STARTED: "session_started",
    m.Action.HAND_RAISED: "hand_raised",
    m.Action.HAND_LOWERED: "hand_lowered",
    m.Action.HAND_TAKEN: "hand_taken",
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


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def _is(name: str, me: str | None) -> bool:
    return me is not None and bool(name) and m.name_key(name) == m.name_key(me)


def _hand(event: ev.RoomEvent, me: str | None) -> str:
    """The help queue's news (20.3), to the student concerned ("you are 3rd in the queue",
    "coming: teacher") and to the operators ("budi raised a hand (3rd in the queue): segfault")."""
    actor, target, question = event.actor, event.target, event.value
    mine = _is(target, me)
    if event.action == m.Action.HAND_RAISED:
        place = f"{ordinal(event.minutes)} in the queue" if event.minutes > 0 else ""
        if mine:
            return f"you are {place}" if place else "your hand is up"
        line = f"{target} raised a hand" + (f" ({place})" if place else "")
        return line + (f": {question}" if question else "")
    if event.action == m.Action.HAND_TAKEN:
        return f"coming: {actor}" if mine else f"{actor} is on the way to {target}"
    # HAND_LOWERED: by the student itself, or an operator's /done.
    by_self = not actor or m.name_key(actor) == m.name_key(target)
    if mine:
        return "your hand is down" if by_self else f"your hand is down ({actor} marked it done)"
    return f"{target}'s hand is down" if by_self else f"{target}'s hand is down (done by {actor})"


def _quiet(event: ev.RoomEvent) -> str:
    """QUIET_SET (20.5): "teacher turned quiet mode on for 30 min", or its end."""
    if event.value == "on":
        length = f" for {event.minutes} min" if event.minutes else ""
        by = event.actor or "the server"
        return f"{by} turned quiet mode on{length}: only the teachers see what students say"
    if not event.actor:
        return "quiet mode is over: everyone may talk again"
    return f"{event.actor} turned quiet mode off"


def _room_event(event: ev.RoomEvent, me: str | None = None) -> str:
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
        case m.Action.QUIET_SET:
            return _quiet(event)
        case m.Action.SESSION_STARTED:
            return f"{actor} started a class session"
        case m.Action.HAND_RAISED | m.Action.HAND_TAKEN | m.Action.HAND_LOWERED:
            return _hand(event, me)
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
    *,
    me: str | None = None,
) -> str:
    """The one line for a piece of room news. `now` only decides whether a ban's end needs its date;
    `me` (our user name) turns the help queue's news about us into "you are 3rd in the queue".

    "bob was muted for 10 min by teacher", "teacher set the topic: Lab 3",
    "you were kicked from #cs101 by teacher: spam", "announcement by teacher: Quiz at 10",
    "seen by 23 of 28 — not yet: ani, budi", "you joined #cs101 — topic: Lab 3 (12 members)".
    """
    match event:
        case ev.RoomEvent():
            return _room_event(event, me)
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
    words = [w for w in mode_words(state.modes) if w != "quiet"]
    if state.quiet_until is not None:
        words.append(f"quiet until {datetime.fromtimestamp(state.quiet_until).strftime('%H:%M')}")
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


# ---- the classroom (20): the help queue and polls, as line mode prints them and the app may say them


def waiting(since: float, now: float) -> str:
    """ "waiting 3 min", "waiting 1 h 5 min", "waiting <1 min"."""
    minutes = max(0, int((now - since) // 60))
    if minutes < 1:
        return "waiting <1 min"
    if minutes < 60:
        return f"waiting {minutes} min"
    return f"waiting {minutes // 60} h {minutes % 60} min"


def queue_entry_line(position: int, item: ev.QueueItem, now: float) -> str:
    """ "1. budi (PC-14, waiting 3 min): segfault in exercise 2"; a taken one says who is coming."""
    details = [d for d in (item.seat, waiting(item.since, now)) if d]
    if item.taken_by:
        details.append(f"{item.taken_by} coming")
    question = f": {item.question}" if item.question else ""
    return f"{position}. {item.user} ({', '.join(details)}){question}"


def queue_lines(queue: ev.QueueUpdated, now: float) -> list[str]:
    """The help queue as /queue prints it: a head line, then one line per entry in order."""
    if not queue.entries:
        return [f"the help queue of #{queue.room} is empty"]
    waiting_now = sum(1 for item in queue.entries if not item.taken_by)
    head = f"help queue of #{queue.room}: {waiting_now} waiting"
    taken = len(queue.entries) - waiting_now
    if taken:
        head += f", {taken} being helped"
    return [head] + [queue_entry_line(i, item, now) for i, item in enumerate(queue.entries, 1)]


def poll_line(poll: ev.PollShown) -> str:
    """ "poll #3 by teacher: Done with exercise 2?  1) yes  2) no  3) stuck  — /vote N"."""
    anonymous = " (anonymous)" if poll.anonymous else ""
    options = "  ".join(f"{i}) {option}" for i, option in enumerate(poll.options, 1))
    return f"poll #{poll.poll_id} by {poll.by}{anonymous}: {poll.question}  {options}  — /vote N"


def tally_line(poll: ev.PollShown) -> str:
    """ "poll #3: yes 20, no 3, stuck 1 (24 voted)"."""
    counts = ", ".join(
        f"{option} {poll.counts[i] if i < len(poll.counts) else 0}" for i, option in enumerate(poll.options)
    )
    return f"poll #{poll.poll_id}: {counts} ({poll.voters} voted)"


def choice_words(poll: ev.PollShown, choice: int) -> str:
    """ "2) no" for choice 2."""
    option = poll.options[choice - 1] if 0 < choice <= len(poll.options) else "?"
    return f"{choice}) {option}"


def poll_lines(poll: ev.PollShown) -> list[str]:
    """What a poll shown says: the question and its options while it is open (to an operator, the
    tally once votes came in; to a member who voted, its choice), and the result once closed."""
    if poll.closed:
        return [f"poll #{poll.poll_id} closed: {poll.question}", tally_line(poll)]
    if poll.counts and poll.voters:
        return [tally_line(poll)]
    if poll.your_choice:
        return [
            f"poll #{poll.poll_id} ({poll.question}): you chose {choice_words(poll, poll.your_choice)}"
            " — /vote N to change it"
        ]
    return [poll_line(poll)]


def ballot_lines(poll: ev.PollShown) -> list[str]:
    """For the operators of a poll that is not anonymous: who chose what, one line per option."""
    lines = []
    for i, option in enumerate(poll.options, 1):
        names = [name for choice, name in poll.ballots if choice == i]
        if names:
            lines.append(f"  {i}) {option}: {', '.join(names)}")
    if lines and poll.voters > len(poll.ballots):  # the server cut the list to fit its frame (20.4)
        lines.append(f"  and {poll.voters - len(poll.ballots)} more")
    return lines
