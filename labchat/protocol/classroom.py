"""What a client knows of the classroom of its rooms (docs/protocol.md 20), sans-I/O.

`ClientConnection` (client.py) owns one `ClassBook`. It turns the section's server messages into
events and keeps what later typed commands need:

- the help queue of each room, for operators: QUEUE_ENTRY arrives as the whole queue, one entry per
  message; the copy is replaced when the last one (`index` = `count` - 1, or `count` 0) is in, so a
  UI never shows half a queue (20.3);
- the last poll of each room (20.4): `/vote N` and `/poll close` name the poll by its id, which only
  the POLL that showed it carries; and our own vote, which the server does not echo to a member
  (POLL goes to members only when a poll opens or closes);
- what `/export` writes for an operator besides the messages: the polls and the hand news seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import events as ev
from . import messages as m
from .text import neutralize, truncate_utf8

#: The requests of this section, as `RequestFailed.request` names them.
REQUEST_WORDS: dict[type[m.Message], str] = {
    m.Hand: "hand", m.QueueTake: "queue", m.PollOpen: "poll", m.PollVote: "vote", m.PollClose: "poll",
}  # fmt: skip
ClassRequest = m.Hand | m.QueueTake | m.PollOpen | m.PollVote | m.PollClose

#: The refusal of a classroom request to a server that has rooms but no classroom (20.1).
NO_CLASSROOM = "this server has no classroom (hands, polls, quiet mode): it runs an older labchat"

#: Hand news kept for a transcript at most, per room (a long session of a big class fits).
MAX_HAND_LOG = 2000


def seat_label(seat: str) -> str:
    """A seat as LOGIN may carry it (20.2): control characters dropped, cut to 40 bytes."""
    printable = "".join(ch for ch in seat if ch.isprintable())
    return truncate_utf8(printable.strip(), m.MAX_SEAT_BYTES)


def ballot(entry: str) -> tuple[int, str] | None:
    """One POLL `ballots` entry, "2 budi", as (2, "budi"); None for one that is not of that form."""
    number, _, name = entry.partition(" ")
    if not number.isdigit() or not name or len(number) > 3:
        return None
    return int(number), neutralize(name)


@dataclass(slots=True)
class RoomClass:
    """The classroom side of one room, as last heard."""

    #: The whole queue (operators only); None before the first.
    queue: ev.QueueUpdated | None = None
    #: QUEUE_ENTRY messages of a queue not complete yet.
    parts: list[ev.QueueItem] = field(default_factory=list)
    #: The last poll shown (None: none seen), with our own vote kept up to date.
    poll: ev.PollShown | None = None
    #: Every poll shown, by id, in the order they came (their last state): for /export.
    polls: dict[int, ev.PollShown] = field(default_factory=dict)
    #: HAND_* news of this room, oldest first: for /export.
    hands: list[ev.RoomEvent] = field(default_factory=list)
    #: poll id -> when its first POLL arrived (the client's clock): for /export.
    first_seen: dict[int, float] = field(default_factory=dict)


class ClassBook:
    """The classroom state of one connection, room by room (see the module docstring)."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomClass] = {}

    def of(self, room: str) -> RoomClass:
        found = self.rooms.get(room)
        if found is None:
            found = self.rooms[room] = RoomClass()
        return found

    def drop(self, room: str) -> None:
        """We left `room`: what we knew of its queue and poll no longer holds (kept for /export
        only while we are in it)."""
        self.rooms.pop(room, None)

    # ------------------------------------------------------------ messages in, events out

    def queue_entry(self, msg: m.QueueEntry) -> ev.QueueUpdated | None:
        """One QUEUE_ENTRY; the whole queue once its last entry is in (None before)."""
        room = self.of(msg.room)
        if msg.count == 0:
            room.parts.clear()
            room.queue = ev.QueueUpdated(msg.room, ())
            return room.queue
        if msg.index == 0:
            room.parts.clear()  # a new queue starts: whatever came before it was a queue cut short
        if msg.index != len(room.parts) or msg.index >= msg.count:
            room.parts.clear()  # out of order (a server bug): wait for the next whole queue
            return None
        room.parts.append(
            ev.QueueItem(
                neutralize(msg.user), neutralize(msg.seat), neutralize(msg.question),
                msg.since_ms / 1000, neutralize(msg.taken_by),
            )
        )  # fmt: skip
        if msg.index < msg.count - 1:
            return None
        room.queue = ev.QueueUpdated(msg.room, tuple(room.parts))
        room.parts = []
        return room.queue

    def poll(self, msg: m.Poll, now: float = 0.0) -> ev.PollShown:
        """POLL: the poll as the server shows it to us now (`now`: when it arrived)."""
        ballots = tuple(b for b in (ballot(entry) for entry in msg.ballots) if b is not None)
        shown = ev.PollShown(
            msg.room, msg.poll_id, neutralize(msg.by), neutralize(msg.question),
            tuple(neutralize(o) for o in msg.options), bool(msg.flags & m.POLL_ANONYMOUS),
            bool(msg.flags & m.POLL_CLOSED), tuple(msg.counts), msg.voters, msg.your_choice, ballots,
        )  # fmt: skip
        room = self.of(msg.room)
        room.first_seen.setdefault(msg.poll_id, now)
        if room.poll is None or room.poll.poll_id <= msg.poll_id:
            room.poll = shown
        room.polls[msg.poll_id] = shown
        return shown

    def voted(self, room_name: str, poll_id: int, choice: int) -> ev.PollShown | None:
        """Our POLL_VOTE was taken: the poll as we now see it (our choice marked), None if we no
        longer know that poll."""
        room = self.rooms.get(room_name)
        if room is None or room.poll is None or room.poll.poll_id != poll_id or room.poll.closed:
            return None
        if room.poll.your_choice == choice:
            return None  # the POLL that counted it (an operator's) said so already
        room.poll = replace(room.poll, your_choice=choice)
        room.polls[poll_id] = room.poll
        return room.poll

    def hand_news(self, event: ev.RoomEvent) -> None:
        """A HAND_* ROOM_EVENT, kept for the transcript."""
        hands = self.of(event.room).hands
        hands.append(event)
        if len(hands) > MAX_HAND_LOG:
            del hands[: len(hands) - MAX_HAND_LOG]

    # ------------------------------------------------------------ what commands need

    def open_poll(self, room: str) -> ev.PollShown | None:
        """`room`'s poll if it is open (None: none, or closed)."""
        known = self.rooms.get(room)
        if known is None or known.poll is None or known.poll.closed:
            return None
        return known.poll

    def queue(self, room: str) -> ev.QueueUpdated | None:
        """`room`'s last complete queue (None: never received: we are not an operator there)."""
        known = self.rooms.get(room)
        return known.queue if known is not None else None
