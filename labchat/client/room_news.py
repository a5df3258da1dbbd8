"""The sentences of room news, in one place, so line mode and the app say the same words.

The server sends its own English sentence with each ROOM_EVENT (`text`); docs/protocol.md 18.10 asks
a client to build its line from the fields instead (so that it can be translated) and to fall back
to the server's text only for an action it does not know. Everything here is pure: events in,
one line out, nothing printed. The sentences are in the active language (labchat/i18n.py); the
words of the --json contract (ROOM_MODE_WORDS, MEMBER_WORDS, ACTION_WORDS) are not translated.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from ..i18n import N_, _, ngettext
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
#: The switches' sentences: "teacher turned moderation on".
_SWITCH_SENTENCES = {
    (m.Action.MODERATED_SET, True): N_("{actor} turned moderation on"),
    (m.Action.MODERATED_SET, False): N_("{actor} turned moderation off"),
    (m.Action.PRIVATE_SET, True): N_("{actor} turned invite-only on"),
    (m.Action.PRIVATE_SET, False): N_("{actor} turned invite-only off"),
    (m.Action.TOPIC_LOCK_SET, True): N_("{actor} turned the topic lock on"),
    (m.Action.TOPIC_LOCK_SET, False): N_("{actor} turned the topic lock off"),
}
#: The words shown for a room's modes and a member's marks (the --json words stay as they are).
_SHOWN_WORDS = {
    "private": N_("private"),
    "moderated": N_("moderated"),
    "keyed": N_("keyed"),
    "topic_locked": N_("topic locked"),
    "quiet": N_("quiet"),
    "op": N_("op"),
    "voice": N_("voice"),
    "muted": N_("muted"),
    "guest": N_("guest"),
    "admin": N_("admin"),
}


def shown_word(word: str) -> str:
    """A mode or member word as a person reads it, in the active language."""
    return _(_SHOWN_WORDS[word]) if word in _SHOWN_WORDS else word


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
    marks = [shown_word(w) for bit, w in ((m.MEMBER_GUEST, "guest"), (m.MEMBER_MUTED, "muted")) if bits & bit]
    return f"{prefix}{name}" + (f" ({', '.join(marks)})" if marks else "")


def seats_line(users: tuple[str, ...] | list[str], seats: dict[str, str]) -> str | None:
    """"seats: budi at PC-14, ani at PC-2" for /who (20.2), in the order of the online list; None
    when nobody has a seat. The line that follows the online line in line mode and in the app."""
    seated = [_("{name} at {seat}").format(name=u, seat=seats[u]) for u in users if seats.get(u)]
    return _("seats: {seats}").format(seats=", ".join(seated)) if seated else None


def _length(minutes: int) -> str:
    """ " for 10 min", " for 60 min", " for 3 days": a sanction's length, in the unit it was given."""
    if minutes % 1440 == 0:
        days = minutes // 1440
        return ngettext(" for {count} day", " for {count} days", days).format(count=days)
    return _(" for {minutes} min").format(minutes=minutes)


#: verb -> (the sentence with a length, the one without): "bob was muted for 10 min by teacher".
_SANCTIONS = {
    "muted": (
        N_("{target} was muted{length} by {actor}"),
        N_("{target} was muted by {actor} (until lifted)"),
    ),
    "banned": (
        N_("{target} was banned{length} by {actor}"),
        N_("{target} was banned by {actor} (until lifted)"),
    ),
    "kicked": (N_("{target} was kicked by {actor}"), N_("{target} was kicked by {actor}")),
}


def _sanction(target: str, verb: str, actor: str, minutes: int, reason: str) -> str:
    timed, untimed = _SANCTIONS[verb]
    line = _(timed if minutes else untimed).format(target=target, actor=actor, length=_length(minutes))
    return _with_reason(line, reason)


def _with_reason(line: str, reason: str) -> str:
    """ "line: reason" (the colon as the language writes it)."""
    return _("{line}: {reason}").format(line=line, reason=reason) if reason else line


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st (Indonesian: ke-1, ke-2, ...)."""
    if 10 <= n % 100 <= 20:
        return _("{n}th").format(n=n)
    suffix = {1: N_("{n}st"), 2: N_("{n}nd"), 3: N_("{n}rd")}.get(n % 10, N_("{n}th"))
    return _(suffix).format(n=n)


def _is(name: str, me: str | None) -> bool:
    return me is not None and bool(name) and m.name_key(name) == m.name_key(me)


def _hand(event: ev.RoomEvent, me: str | None) -> str:
    """The help queue's news (20.3), to the student concerned ("you are 3rd in the queue",
    "coming: teacher") and to the operators ("budi raised a hand (3rd in the queue): segfault")."""
    actor, target, question = event.actor, event.target, event.value
    mine = _is(target, me)
    if event.action == m.Action.HAND_RAISED:
        place = ordinal(event.minutes) if event.minutes > 0 else ""
        if mine:
            if place and not actor:  # someone ahead went: the server tells us our new place (20.3)
                return _("you moved up: {place} in the queue").format(place=place)
            return _("you are {place} in the queue").format(place=place) if place else _("your hand is up")
        if place:
            line = _("{target} raised a hand ({place} in the queue)").format(target=target, place=place)
        else:
            line = _("{target} raised a hand").format(target=target)
        return _with_reason(line, question)
    if event.action == m.Action.HAND_TAKEN:
        if mine:
            return _("coming: {actor}").format(actor=actor)
        return _("{actor} is on the way to {target}").format(actor=actor, target=target)
    # HAND_LOWERED: by the student itself, or an operator's /done.
    by_self = not actor or m.name_key(actor) == m.name_key(target)
    if mine:
        if by_self:
            return _("your hand is down")
        return _("your hand is down ({actor} marked it done)").format(actor=actor)
    if by_self:
        return _("{target}'s hand is down").format(target=target)
    return _("{target}'s hand is down (done by {actor})").format(target=target, actor=actor)


def _quiet(event: ev.RoomEvent) -> str:
    """QUIET_SET (20.5): "teacher turned quiet mode on for 30 min", or its end."""
    if event.value == "on":
        length = _(" for {minutes} min").format(minutes=event.minutes) if event.minutes else ""
        by = event.actor or _("the server")
        return _("{actor} turned quiet mode on{length}: only the teachers see what students say").format(
            actor=by, length=length
        )
    if not event.actor:
        return _("quiet mode is over: everyone may talk again")
    return _("{actor} turned quiet mode off").format(actor=event.actor)


def _room_event(event: ev.RoomEvent, me: str | None = None) -> str:
    actor, target, value = event.actor or _("the server"), event.target, event.value
    said = _room_event_sentence(event.action, value)
    if said is not None:
        return _(said).format(actor=actor, target=target, value=value)
    match event.action:
        case m.Action.MUTE:
            return _sanction(target, "muted", actor, event.minutes, value)
        case m.Action.BAN:
            return _sanction(target, "banned", actor, event.minutes, value)
        case m.Action.KICK:
            return _sanction(target, "kicked", actor, 0, value)
        case m.Action.QUIET_SET:
            return _quiet(event)
        case m.Action.HAND_RAISED | m.Action.HAND_TAKEN | m.Action.HAND_LOWERED:
            return _hand(event, me)
    return event.text or _("{actor} changed something in #{room}").format(actor=actor, room=event.room)


#: The room news that is one sentence of actor, target and value (the key itself is never shown,
#: 18.8; ANNOUNCEMENT_SET has no value: the text follows in ANNOUNCEMENT).
_SENTENCES = {
    m.Action.UNMUTE: N_("{target} was unmuted by {actor}"),
    m.Action.UNBAN: N_("{target} was unbanned by {actor}"),
    m.Action.OP: N_("{actor} gave {target} operator"),
    m.Action.DEOP: N_("{actor} took operator from {target}"),
    m.Action.VOICE: N_("{actor} gave {target} voice"),
    m.Action.DEVOICE: N_("{actor} took voice from {target}"),
    m.Action.INVITE: N_("{actor} invited {target}"),
    m.Action.KEY_SET: N_("{actor} changed the room key"),
    m.Action.ANNOUNCEMENT_SET: N_("{actor} changed the announcement"),
    m.Action.MUTE_ENDED: N_("{target}'s mute ended"),
    m.Action.BAN_ENDED: N_("{target}'s ban ended"),
    m.Action.SESSION_STARTED: N_("{actor} started a class session"),
}


def _room_event_sentence(action: int, value: str) -> str | None:
    """The untranslated sentence for `action`, or None when it needs more than one template."""
    if action == m.Action.TOPIC_SET:
        return N_("{actor} set the topic: {value}") if value else N_("{actor} cleared the topic")
    if action in (m.Action.MODERATED_SET, m.Action.PRIVATE_SET, m.Action.TOPIC_LOCK_SET):
        return _SWITCH_SENTENCES[(m.Action(action), value == "on")]
    return _SENTENCES.get(action)


def _until(until: float, now: float) -> str:
    if math.isinf(until):
        return _(" (until lifted)")
    end = datetime.fromtimestamp(until)
    same_day = end.date() == datetime.fromtimestamp(now).date()
    return _(" until {time}").format(time=end.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M"))


def _room_left(event: ev.RoomLeft, now: float) -> str:
    room = event.room
    if event.code == ErrorCode.KICKED:
        if event.by:
            line = _("you were kicked from #{room} by {actor}").format(room=room, actor=event.by)
        else:
            line = _("you were kicked from #{room}").format(room=room)
    elif event.code == ErrorCode.BANNED:
        until = _until(event.until, now) if event.until is not None else ""
        if event.by:
            line = _("you were banned from #{room} by {actor}{until}").format(
                room=room, actor=event.by, until=until
            )
        else:
            line = _("you were banned from #{room}{until}").format(room=room, until=until)
    elif event.code:
        line = _("you are no longer in #{room}").format(room=room)
    else:
        line = _("you left #{room}").format(room=room)
    return _with_reason(line, event.reason)


def tally_sentence(seen: int, total: int, not_yet: tuple[str, ...]) -> str:
    """ "seen by 23 of 28 — not yet: ani, budi" ("…" when the server had to cut the list)."""
    line = _("seen by {seen} of {total}").format(seen=seen, total=total)
    if not_yet:
        cut = len(not_yet) >= m.MAX_TALLY_NAMES and total - seen > len(not_yet)
        names = ", ".join(not_yet) + (", …" if cut else "")
        line = _("{line} — not yet: {names}").format(line=line, names=names)
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
                return _("the announcement of #{room} was cleared").format(room=event.room)
            return _("announcement by {actor}: {text}").format(actor=event.by, text=event.text)
        case ev.AnnouncementTally():
            return tally_sentence(event.seen, event.total, event.not_yet)
        case ev.RoomState():
            return _room_state(event)
        case ev.RequestFailed():
            return event.text  # the server's own line: it names the rule that refused the request
    return str(getattr(event, "text", ""))


def _room_state(state: ev.RoomState) -> str:
    head = _("you joined #{room}").format(room=state.room) if state.joined else f"#{state.room}"
    topic = _(" — topic: {topic}").format(topic=state.topic) if state.topic else ""
    words = [shown_word(w) for w in mode_words(state.modes) if w != "quiet"]
    if state.quiet_until is not None:
        end = datetime.fromtimestamp(state.quiet_until).strftime("%H:%M")
        words.append(_("quiet until {time}").format(time=end))
    you = [shown_word(w) for w in member_words(state.you) if w != "guest"]
    members = ngettext("{count} member", "{count} members", state.members).format(count=state.members)
    details = [members, *words]
    if you:
        details.append(_("you: {roles}").format(roles=", ".join(you)))
    return f"{head}{topic} ({', '.join(details)})"


def room_list_lines(rooms: tuple[ev.RoomInfo, ...], more: bool) -> list[str]:
    """/list: one line per room, "#cs101 (12 online) Lab 3 [moderated]"."""
    if not rooms:
        return [_("no rooms to list")]
    if more:
        head = ngettext("{count} room (more not shown):", "{count} rooms (more not shown):", len(rooms))
    else:
        head = ngettext("{count} room:", "{count} rooms:", len(rooms))
    lines = [head.format(count=len(rooms))]
    for info in rooms:
        words = [shown_word(w) for w in mode_words(info.modes)]
        modes = f" [{', '.join(words)}]" if words else ""
        topic = f" {info.topic}" if info.topic else ""
        online = _("{count} online").format(count=info.online)
        lines.append(f"  #{info.room} ({online}){topic}{modes}")
    return lines


# ---- the classroom (20): the help queue and polls, as line mode prints them and the app may say them


def waiting(since: float, now: float) -> str:
    """ "waiting 3 min", "waiting 1 h 5 min", "waiting <1 min"."""
    minutes = max(0, int((now - since) // 60))
    if minutes < 1:
        return _("waiting <1 min")
    if minutes < 60:
        return _("waiting {minutes} min").format(minutes=minutes)
    return _("waiting {hours} h {minutes} min").format(hours=minutes // 60, minutes=minutes % 60)


def queue_entry_line(position: int, item: ev.QueueItem, now: float) -> str:
    """ "1. budi (PC-14, waiting 3 min): segfault in exercise 2"; a taken one says who is coming."""
    details = [d for d in (item.seat, waiting(item.since, now)) if d]
    if item.taken_by:
        details.append(_("{actor} coming").format(actor=item.taken_by))
    question = f": {item.question}" if item.question else ""
    return f"{position}. {item.user} ({', '.join(details)}){question}"


def queue_lines(queue: ev.QueueUpdated, now: float) -> list[str]:
    """The help queue as /queue prints it: a head line, then one line per entry in order."""
    if not queue.entries:
        return [_("the help queue of #{room} is empty").format(room=queue.room)]
    waiting_now = sum(1 for item in queue.entries if not item.taken_by)
    taken = len(queue.entries) - waiting_now
    if taken:
        head = _("help queue of #{room}: {waiting} waiting, {taken} being helped").format(
            room=queue.room, waiting=waiting_now, taken=taken
        )
    else:
        head = _("help queue of #{room}: {waiting} waiting").format(room=queue.room, waiting=waiting_now)
    return [head] + [queue_entry_line(i, item, now) for i, item in enumerate(queue.entries, 1)]


def poll_line(poll: ev.PollShown) -> str:
    """ "poll #3 by teacher: Done with exercise 2?  1) yes  2) no  3) stuck  — /vote N"."""
    options = "  ".join(f"{i}) {option}" for i, option in enumerate(poll.options, 1))
    if poll.anonymous:
        template = _("poll #{id} by {actor} (anonymous): {question}  {options}  — /vote N")
    else:
        template = _("poll #{id} by {actor}: {question}  {options}  — /vote N")
    return template.format(id=poll.poll_id, actor=poll.by, question=poll.question, options=options)


def tally_line(poll: ev.PollShown) -> str:
    """ "poll #3: yes 20, no 3, stuck 1 (24 voted)"."""
    counts = ", ".join(
        f"{option} {poll.counts[i] if i < len(poll.counts) else 0}" for i, option in enumerate(poll.options)
    )
    return _("poll #{id}: {counts} ({count} voted)").format(id=poll.poll_id, counts=counts, count=poll.voters)


def choice_words(poll: ev.PollShown, choice: int) -> str:
    """ "2) no" for choice 2."""
    option = poll.options[choice - 1] if 0 < choice <= len(poll.options) else "?"
    return f"{choice}) {option}"


def poll_lines(poll: ev.PollShown) -> list[str]:
    """What a poll shown says: the question and its options while it is open (to an operator, the
    tally once votes came in; to a member who voted, its choice), and the result once closed."""
    if poll.closed:
        closed = _("poll #{id} closed: {question}").format(id=poll.poll_id, question=poll.question)
        return [closed, tally_line(poll)]
    if poll.counts and poll.voters:
        return [tally_line(poll)]
    if poll.your_choice:
        return [
            _("poll #{id} ({question}): you chose {choice} — /vote N to change it").format(
                id=poll.poll_id, question=poll.question, choice=choice_words(poll, poll.your_choice)
            )
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
        lines.append("  " + _("and {count} more").format(count=poll.voters - len(poll.ballots)))
    return lines
