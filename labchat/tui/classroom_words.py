"""The words the app uses for the classroom (docs/protocol.md 20): waiting times, the student's own
hand, quiet mode's time left and a poll's tally bars. Pure functions of their inputs and `now`, so
the help queue, the poll card and the header say the same thing and tests need no clock.
"""

from __future__ import annotations

import math

from ..client.room_news import ordinal as _ordinal
from ..i18n import _
from ..protocol import events as ev
from ..protocol.messages import Action

#: Cells of a full tally bar on the poll card.
BAR_WIDTH = 16


def ordinal(n: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 22 -> "22nd" (Indonesian: "ke-3"); the
    words line mode uses for a place in the help queue."""
    return _ordinal(n)


def waiting_words(since: float, now: float) -> str:
    """How long an entry has waited, in whole minutes: "just now", "1 min", "12 min", "1 h 05 min"."""
    minutes = max(0, int((now - since) // 60))
    if minutes < 1:
        return _("just now")
    if minutes < 60:
        return _("{minutes} min").format(minutes=minutes)
    return _("{hours} h {minutes} min").format(hours=minutes // 60, minutes=f"{minutes % 60:02d}")


def quiet_words(quiet_until: float | None, now: float) -> str:
    """The header's quiet-mode note: "quiet: 12 min left" (minutes rounded up, so it never says 0
    while still quiet); "" when the room is not quiet or the time is over."""
    if quiet_until is None or quiet_until <= now:
        return ""
    if math.isinf(quiet_until):
        return _("quiet")
    return _("quiet: {minutes} min left").format(minutes=math.ceil((quiet_until - now) / 60))


def hand_words(event: ev.RoomEvent, user: str) -> str | None:
    """What a hand event means for `user`'s own hand: "your hand is up: 3rd in line", "coming:
    teacher", "" (the hand is down); None when the event is not about `user`'s hand."""
    if event.target.casefold() != user.casefold():
        return None
    if event.action == Action.HAND_RAISED:
        if event.minutes > 0:
            return _("your hand is up: {place} in line").format(place=ordinal(event.minutes))
        return _("your hand is up")
    if event.action == Action.HAND_TAKEN:
        return _("coming: {actor}").format(actor=event.actor) if event.actor else _("coming")
    if event.action == Action.HAND_LOWERED:
        return ""
    return None


def tally_bar(count: int, most: int, width: int = BAR_WIDTH) -> str:
    """A bar of `width` cells, filled in proportion to `count` out of the largest count `most`."""
    filled = round(width * count / most) if most > 0 else 0
    return "█" * filled + "░" * (width - filled)


def poll_tally_line(poll: ev.PollShown) -> str:
    """One line of results, as line mode prints them: "poll #3: yes 20, no 3, stuck 1 (24 voted)"."""
    parts = ", ".join(f"{option} {count}" for option, count in zip(poll.options, poll.counts, strict=False))
    return _("poll #{id}: {counts} ({count} voted)").format(id=poll.poll_id, counts=parts, count=poll.voters)
