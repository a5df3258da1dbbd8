"""A room's classroom state (docs/protocol.md section 20): its help queue and its poll, as plain
bookkeeping with the time as a parameter.

No I/O and no clock: the relay's classroom part (classroom.py) decides who is told what and keeps the
durable copy in the store (classroom_store.py); this module only says what the queue and the poll
are after a request, so that the rules can be tested with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..protocol import messages as m
from ..protocol.text import neutralize, truncate_utf8


def clean_seat(seat: str) -> str:
    """A seat as the server keeps it (20.2): control characters replaced, at most 40 bytes."""
    return truncate_utf8(neutralize(seat), m.MAX_SEAT_BYTES)


@dataclass(slots=True)
class QueueItem:
    """One raised hand: who, where it sits, what it asks, since when, and who is on the way."""

    user: str
    seat: str
    question: str
    raised_ms: int
    taken_by: str = ""
    taken_ms: int = 0

    @property
    def key(self) -> str:
        return m.name_key(self.user)


@dataclass(slots=True)
class DoneItem:
    """A hand that went down, for the transcript's queue log."""

    item: QueueItem
    done_ms: int
    done_by: str
    #: The 1-based place it had: the entries from there on have moved up one (20.3).
    place: int = 0


class QueueFull(Exception):
    """The room's queue holds `m.MAX_QUEUE_ENTRIES` already."""


@dataclass
class HelpQueue:
    """A room's help queue in order (20.3): first raised first, a re-raised hand keeps its place."""

    items: list[QueueItem] = field(default_factory=list)
    limit: int = m.MAX_QUEUE_ENTRIES

    def find(self, user: str) -> QueueItem | None:
        key = m.name_key(user)
        return next((item for item in self.items if item.key == key), None)

    def position(self, user: str) -> int:
        """1-based place of `user` in the queue, 0 if it is not in it."""
        key = m.name_key(user)
        return next((i + 1 for i, item in enumerate(self.items) if item.key == key), 0)

    def raise_hand(self, user: str, seat: str, question: str, now_ms: int) -> QueueItem:
        """Put `user` at the end, or change its question where it stands. Raises QueueFull."""
        item = self.find(user)
        if item is not None:
            item.question, item.seat = question, seat or item.seat
            return item
        if len(self.items) >= self.limit:
            raise QueueFull
        item = QueueItem(user, seat, question, now_ms)
        self.items.append(item)
        return item

    def take_next(self, by: str, now_ms: int) -> QueueItem | None:
        """The first entry nobody has taken yet, now taken by `by`; None if nobody is waiting."""
        for item in self.items:
            if not item.taken_by:
                item.taken_by, item.taken_ms = by, now_ms
                return item
        return None

    def remove(self, user: str, by: str, now_ms: int) -> DoneItem | None:
        """`user`'s hand goes down (its own HAND 0, or an operator's DONE); None if it had none."""
        place = self.position(user)
        if not place:
            return None
        item = self.items.pop(place - 1)
        return DoneItem(item, now_ms, by, place)

    def moved_up(self, done: DoneItem) -> list[tuple[int, QueueItem]]:
        """The entries not yet taken that moved up when `done` left, with their new 1-based places."""
        behind = range(max(done.place - 1, 0), len(self.items))
        return [(i + 1, self.items[i]) for i in behind if not self.items[i].taken_by]

    def entries(self, room: str) -> list[m.QueueEntry]:
        """The whole queue as QUEUE_ENTRY messages; an empty queue is one entry with `count` 0."""
        if not self.items:
            return [m.QueueEntry(room, 0, 0)]
        count = len(self.items)
        return [
            m.QueueEntry(room, i, count, it.user, it.seat, it.question, it.raised_ms, it.taken_by)
            for i, it in enumerate(self.items)
        ]


class PollError(Exception):
    """A vote or a close that does not apply: the poll is closed or unknown (NO_SUCH_POLL)."""


@dataclass
class RoomPoll:
    """One poll of a room and its votes (20.4). Votes are by name key; a voter may change its mind
    while the poll is open."""

    poll_id: int
    by: str
    question: str
    options: tuple[str, ...]
    anonymous: bool
    opened_ms: int
    closed_ms: int = 0
    #: name key -> (name as spelt, 1-based choice), in the order the votes first came.
    votes: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        return self.closed_ms != 0

    def vote(self, user: str, choice: int) -> bool:
        """Record `user`'s choice; False if it changed nothing. Raises PollError (closed) or
        ValueError (no such option)."""
        if self.closed:
            raise PollError
        if not 1 <= choice <= len(self.options):
            raise ValueError(f"choice {choice}: this poll has options 1 to {len(self.options)}")
        key = m.name_key(user)
        if self.votes.get(key, ("", 0))[1] == choice:
            return False
        self.votes[key] = (user, choice)
        return True

    def close(self, now_ms: int) -> bool:
        if self.closed:
            return False
        self.closed_ms = max(1, now_ms)
        return True

    def counts(self) -> tuple[int, ...]:
        counts = [0] * len(self.options)
        for _, choice in self.votes.values():
            counts[choice - 1] += 1
        return tuple(counts)

    def view(self, room: str, user: str, *, operator: bool) -> m.Poll:
        """POLL as `user` may see it: counts for operators always and for everyone once closed;
        ballots only for operators of a poll that is not anonymous; its own choice always."""
        flags = (m.POLL_ANONYMOUS if self.anonymous else 0) | (m.POLL_CLOSED if self.closed else 0)
        show = operator or self.closed
        counts, voters = (self.counts(), len(self.votes)) if show else ((), 0)
        ballots: tuple[str, ...] = ()
        if operator and not self.anonymous:
            ballots = tuple(f"{choice} {name}" for name, choice in self.votes.values())
        mine = self.votes.get(m.name_key(user), ("", 0))[1]
        return m.Poll(
            room, self.poll_id, self.by, self.question, self.options, flags, counts, voters, mine, ballots
        )


def quiet_until(value: str, now_ms: int) -> int | None:
    """ROOM_SET QUIET's `value` (20.5) as the end of quiet mode in ms (0: off), or None if it is
    neither `off` nor a number of minutes from 1 to 240."""
    if value == "off":
        return 0
    if not value.isdigit() or not value.isascii():
        return None
    minutes = int(value)
    if not 1 <= minutes <= m.MAX_QUIET_MINUTES:
        return None
    return now_ms + minutes * 60_000
