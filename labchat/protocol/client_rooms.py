"""What a client knows of the rooms it is in (docs/protocol.md 18), sans-I/O.

`ClientConnection` (client.py) owns one `RoomBook`. It keeps two things apart on purpose:

- **cursors**: per room, the highest `seq` shown. They make room delivery exactly-once (7.5, applied
  per room by 18.3) and travel in LOGIN (`resume_seq` and `cursors`) after a reconnect, so every
  room resumes where it stopped. A MESSAGE of any room advances its own cursor only.
- **held rooms**: the rooms the session is a member of, in the order it joined them (the order the
  server keeps, 18.3), each with its last ROOM_STATE, announcement, tally and member modes. A room
  is held from its first ROOM_STATE (or, on a server without rooms, from LOGIN_OK) until ROOM_LEFT.

Leaving a room drops both: a later JOIN starts from the newcomer's view again, as the server does.

The book also turns the room messages of section 18 into events (`state`, `left`, `news`,
`announcement`, `tally`), keeping what they change; the connection decides when they apply (a
server with rooms) and what they do to its current room and its requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import events as ev
from . import messages as m
from .errors import ErrorCode
from .text import neutralize, neutralize_text

#: ROOM_EVENT actions that change a member's MEMBER_* bits: (bits set, bits cleared). 18.7 says a
#: client keeps PRESENCE's modes up to date from these between two PRESENCEs.
_BIT_CHANGES: dict[int, tuple[int, int]] = {
    m.Action.OP: (m.MEMBER_OP, 0),
    m.Action.DEOP: (0, m.MEMBER_OP),
    m.Action.VOICE: (m.MEMBER_VOICE, 0),
    m.Action.DEVOICE: (0, m.MEMBER_VOICE),
    m.Action.MUTE: (m.MEMBER_MUTED, 0),
    m.Action.UNMUTE: (0, m.MEMBER_MUTED),
    m.Action.MUTE_ENDED: (0, m.MEMBER_MUTED),
}


@dataclass(slots=True)
class HeldRoom:
    """One room the session is in, as the server last described it."""

    name: str
    #: The last ROOM_STATE (None on a server without rooms, which sends none).
    state: ev.RoomState | None = None
    #: The pinned announcement as last reported (None: none known; empty text: cleared).
    announcement: ev.Announcement | None = None
    #: The highest announcement id this client acknowledged (ANNOUNCEMENT_SEEN sent), 0: none.
    acknowledged: int = 0
    #: The last read tally (operators only).
    tally: ev.AnnouncementTally | None = None
    #: name key -> (name as shown, MEMBER_* bits), for members that have any bits.
    modes: dict[str, tuple[str, int]] = field(default_factory=dict)

    def set_modes(self, members: list[tuple[str, int]]) -> None:
        """A complete PRESENCE: the whole truth about who has which bits."""
        self.modes = {m.name_key(name): (name, bits) for name, bits in members if bits}

    def apply(self, event: ev.RoomEvent) -> None:
        """A ROOM_EVENT between two PRESENCEs: op, voice and mute change a member's bits."""
        change = _BIT_CHANGES.get(event.action)
        if change is None or not event.target:
            return
        key = m.name_key(event.target)
        name, bits = self.modes.get(key, (event.target, 0))
        bits = (bits | change[0]) & ~change[1]
        if bits:
            self.modes[key] = (name, bits)
        else:
            self.modes.pop(key, None)

    def member_modes(self) -> dict[str, int]:
        """Display name -> MEMBER_* bits of the members that have any."""
        return {name: bits for name, bits in self.modes.values()}


def until(ms: int) -> float | None:
    """A sanction's end on the wire (0: none, 2^64-1: until lifted) as event time."""
    if ms == 0:
        return None
    return math.inf if ms == m.UNTIL_LIFTED_MS else ms / 1000


class RoomBook:
    """Cursors and held rooms of one connection (see the module docstring)."""

    def __init__(self) -> None:
        self.held: dict[str, HeldRoom] = {}  # insertion order = join order
        self._cursors: dict[str, int] = {}
        self._oldest: dict[str, int] = {}
        #: room -> announcement id whose ANNOUNCEMENT_SEEN is still to be sent.
        self.acks_unsent: dict[str, int] = {}

    # ------------------------------------------------------------ cursors

    def last_seq(self, room: str) -> int:
        """The highest `seq` of `room` shown so far (0: none)."""
        return self._cursors.get(room, 0)

    def oldest_seq(self, room: str) -> int:
        """The lowest `seq` of `room` shown so far (0: none): where `/history` pages back from."""
        return self._oldest.get(room, 0)

    def advance(self, room: str, seq: int) -> bool:
        """A room message numbered `seq` arrived: True if it is new (show it), False if it was shown
        already (a replay after a reconnect). The exactly-once rule of 7.5, per room."""
        if seq <= self._cursors.get(room, 0):
            return False
        self._cursors[room] = seq
        if room not in self._oldest:
            self._oldest[room] = seq  # history comes oldest first: the first one shown is the oldest
        return True

    def confirmed(self, room: str, seq: int) -> None:
        """Our own message was stored as `seq`: it counts as shown (ACCEPTED, 7.5)."""
        if seq > self._cursors.get(room, 0):
            self._cursors[room] = seq
        if seq and room not in self._oldest:
            self._oldest[room] = seq

    def paged_back(self, room: str, seq: int) -> None:
        """A history page reached back to `seq`."""
        if seq and (room not in self._oldest or seq < self._oldest[room]):
            self._oldest[room] = seq

    def login_rooms(self, current: str) -> tuple[str, int, tuple[tuple[str, int], ...]]:
        """LOGIN's `room`, `resume_seq` and `cursors` (18.3): the current room if held (else the
        first held, else `current` itself) with its cursor, and every other held room's."""
        room = current if current in self.held or not self.held else next(iter(self.held))
        others = tuple((r, self._cursors.get(r, 0)) for r in self.held if r != room)
        return room, self._cursors.get(room, 0), others[: m.MAX_CURSORS]

    # ------------------------------------------------------------ membership

    @property
    def rooms(self) -> tuple[str, ...]:
        return tuple(self.held)

    def hold(self, room: str) -> tuple[HeldRoom, bool]:
        """The held room `room`, and True if it is new to us (first ROOM_STATE)."""
        held = self.held.get(room)
        if held is not None:
            return held, False
        held = self.held[room] = HeldRoom(room)
        return held, True

    def drop(self, room: str) -> HeldRoom | None:
        """We are no longer in `room`: forget it and its cursor (a later JOIN starts afresh)."""
        self._cursors.pop(room, None)
        self._oldest.pop(room, None)
        self.acks_unsent.pop(room, None)
        return self.held.pop(room, None)

    def acknowledge(self, room: str, announcement_id: int) -> None:
        """The user was shown `room`'s announcement: queue its ANNOUNCEMENT_SEEN, once per id."""
        held = self.held.get(room)
        if held is not None and announcement_id > held.acknowledged:
            held.acknowledged = announcement_id
            self.acks_unsent[room] = announcement_id

    # ------------------------------------------------------------ messages in, events out

    def state(self, msg: m.RoomState) -> ev.RoomState | None:
        """ROOM_STATE: the room as it is now; `joined` when it is new to us. None for a name we
        could not send back in LOGIN's cursors (not a room we can hold)."""
        if not m.is_valid_room(msg.room):
            return None
        held, new = self.hold(msg.room)
        quiet = msg.quiet_until_ms / 1000 if msg.quiet_until_ms else None  # 20.5: 0 is not quiet
        held.state = ev.RoomState(
            msg.room, neutralize(msg.topic), msg.modes, msg.you, until(msg.muted_until_ms), msg.members, new,
            quiet,
        )  # fmt: skip
        return held.state

    def left(self, msg: m.RoomLeft) -> ev.RoomLeft | None:
        """ROOM_LEFT of a room we hold (None otherwise); the caller drops it."""
        if msg.room not in self.held:
            return None
        end = until(msg.until_ms) if msg.code == ErrorCode.BANNED else None
        return ev.RoomLeft(msg.room, msg.code, neutralize(msg.by), neutralize(msg.reason), end)

    def news(self, msg: m.RoomEvent) -> ev.RoomEvent:
        """ROOM_EVENT, with its effect on the member bits of the room."""
        event = ev.RoomEvent(
            msg.room, msg.ts_ms / 1000, msg.action, neutralize(msg.actor), neutralize(msg.target),
            msg.minutes, neutralize(msg.value), neutralize(msg.text),
        )  # fmt: skip
        held = self.held.get(msg.room)
        if held is not None:
            held.apply(event)
        return event

    def announcement(self, msg: m.Announcement) -> ev.Announcement | None:
        """ANNOUNCEMENT of a room we hold; None when it is not news (sent again after a reconnect,
        when our acknowledgement, which may have died with the old session, is queued again)."""
        held = self.held.get(msg.room)
        if held is None:
            return None
        event = ev.Announcement(
            msg.room, msg.announcement_id, neutralize(msg.by), msg.ts_ms / 1000, neutralize_text(msg.text)
        )
        if held.announcement == event:
            if held.acknowledged == msg.announcement_id and msg.text:
                self.acks_unsent[msg.room] = msg.announcement_id  # the server counts each member once
            return None
        held.announcement = event
        return event

    def tally(self, msg: m.AnnouncementTally) -> ev.AnnouncementTally | None:
        """ANNOUNCEMENT_TALLY of a room we hold; None when the count is the one we had."""
        held = self.held.get(msg.room)
        if held is None:
            return None
        event = ev.AnnouncementTally(
            msg.room, msg.announcement_id, msg.seen, msg.total, tuple(neutralize(n) for n in msg.not_yet)
        )
        if held.tally == event:
            return None
        held.tally = event
        return event

    def clear_held(self) -> None:
        """The first login to a server with rooms: the server says which rooms we are in."""
        self.held.clear()
