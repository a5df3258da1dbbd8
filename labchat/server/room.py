"""A room: who is in it, its message numbering, and the recent history kept in memory.

Pure bookkeeping, no I/O: the relay (relay.py) decides who gets what and when; the store keeps the
durable copy. The in-memory ring serves newcomers and clients catching up after a stall without a trip
to the database; older history comes from the store.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from ..protocol.messages import PRESENCE_NAMES_PER_PART, name_key
from .store import StoredMessage

#: JOINED and LEFT go to every member one by one while the room's membership changes at most this
#: often (sustained, per second)...
MEMBERSHIP_EVENTS_PER_S = 5.0
#: ...after a burst of this many (a class logging in together after the bell).
MEMBERSHIP_EVENTS_BURST = 20
#: Faster than that (a bot flood), each change would cost one frame per member: N bots joining a room
#: of N is N^2 frames. The room then sends one PRESENCE refresh per interval instead: at least this
#: long apart...
PRESENCE_REFRESH_MIN_S = 1.0
#: ...and, in a big room, long enough that a member receives at most this many PRESENCE parts (of 40
#: names each) per second: 300 members, 8 parts, every 2 s; 900 members, 23 parts, every 5.75 s.
PRESENCE_PARTS_PER_S = 4.0
#: A refresh goes out to this many members per step, one step every PRESENCE_REFRESH_STEP_S: 900
#: members at once would be ~20 000 frames and ~11 000 datagrams sealed in one go (a stall of tens
#: of milliseconds for the whole room, and a burst of memory); in steps each costs a few ms.
PRESENCE_REFRESH_CHUNK = 64
PRESENCE_REFRESH_STEP_S = 0.01


@dataclass(slots=True)
class MembershipFlow:
    """Decides, per membership change, between one JOINED/LEFT to everyone and a later PRESENCE refresh.

    A token bucket (like the chat rate limit) measures the rate of changes. While it has a token and
    no refresh is pending, the change is announced on its own. Otherwise the change waits for a
    refresh: one full PRESENCE to every member, `refresh_interval` after the first waiting change.
    Coalesced changes keep draining the bucket (down to minus the burst), so announcements one by one
    resume only once the room has been calm for a few seconds, not between two refreshes of a flood.
    """

    events_per_s: float = MEMBERSHIP_EVENTS_PER_S
    burst: int = MEMBERSHIP_EVENTS_BURST
    tokens: float = field(init=False)
    tokens_at: float | None = field(default=None, init=False)
    #: When the pending PRESENCE refresh is due; None while changes are announced one by one.
    refresh_at: float | None = field(default=None, init=False)
    #: Changes waiting for the refresh (for the log and the bench).
    coalesced: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)  # a room starts calm

    def announce_individually(self, now: float, members: int) -> bool:
        """Record one change at `now`; True: announce it on its own now, False: a refresh will."""
        if self.tokens_at is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.tokens_at) * self.events_per_s)
        self.tokens_at = now
        individually = self.refresh_at is None and self.tokens >= 1.0
        self.tokens = max(self.tokens - 1.0, -float(self.burst))
        if not individually:
            self.coalesced += 1
            if self.refresh_at is None:
                self.refresh_at = now + refresh_interval(members)
        return individually

    def refreshed(self) -> int:
        """The refresh went out; how many changes it carried."""
        carried, self.coalesced, self.refresh_at = self.coalesced, 0, None
        return carried


def refresh_interval(members: int) -> float:
    """Seconds between PRESENCE refreshes for a room of `members` (see PRESENCE_PARTS_PER_S)."""
    parts = max(1, math.ceil(members / PRESENCE_NAMES_PER_PART))
    return max(PRESENCE_REFRESH_MIN_S, parts / PRESENCE_PARTS_PER_S)


#: Characters of text the ring keeps at most, besides its count of messages. 4096 short messages
#: stay well under it; 4096 long ones (16 KB each, docs/protocol.md section 15) would be 64 MB, so the
#: ring then keeps fewer, and older catch-ups come from the store.
RING_TEXT_CHARS = 4 * 1024 * 1024


@dataclass(slots=True)
class AwayState:
    """One member's away status (docs/protocol.md section 16.1)."""

    reason: str
    since_ms: int
    #: Senders (name keys) already told "X is away" in this away period: told once, not per line.
    notified: set[str] = field(default_factory=set)


@dataclass
class Room:
    """Members (by casefolded name, in join order) and the numbering of the room's messages."""

    name: str
    #: The seq the next message will get. Starts after the last stored one, so numbers never repeat
    #: across restarts: clients drop anything at or below the last seq they showed.
    next_seq: int = 1
    ring_size: int = 4096
    members: dict[str, bytes] = field(default_factory=dict)  # name key -> session id
    display: dict[str, str] = field(default_factory=dict)  # name key -> name as the user spells it
    away: dict[str, AwayState] = field(default_factory=dict)  # name key -> status, members only
    ring_text_chars: int = RING_TEXT_CHARS
    recent: deque[StoredMessage] = field(init=False)
    #: JOINED/LEFT one by one, or coalesced into PRESENCE refreshes during a flood.
    flow: MembershipFlow = field(default_factory=MembershipFlow)
    _recent_chars: int = field(init=False)

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.ring_size)
        self._recent_chars = 0  # set here: a mypyc-compiled dataclass skips init=False defaults

    def add_member(self, user: str, session_id: bytes) -> bytes | None:
        """Add or replace; returns the session id this name had before (one live session per name)."""
        key = name_key(user)
        if key == user:
            key = user  # most names are their own key: keep one string per member, not two
        previous = self.members.get(key)
        self.members[key] = session_id
        self.display[key] = user
        return previous

    def remove_member(self, user: str, session_id: bytes) -> bool:
        """Remove `user` if `session_id` is still its live session (a replaced session removes nothing)."""
        key = name_key(user)
        if self.members.get(key) != session_id:
            return False
        del self.members[key]
        del self.display[key]
        self.away.pop(key, None)  # away belongs to being here: a logout ends it
        return True

    def session_of(self, user: str) -> bytes | None:
        return self.members.get(name_key(user))

    def set_away(self, user: str, reason: str | None, ts_ms: int) -> bool:
        """Mark `user` away for `reason` (None: back). Returns False when nothing changed, so a
        repeated SET_AWAY (a client resending it after a reconnect) tells the room nothing."""
        key = name_key(user)
        if key not in self.members:
            return False
        current = self.away.get(key)
        if reason is None:
            return self.away.pop(key, None) is not None
        if current is not None and current.reason == reason:
            return False
        self.away[key] = AwayState(reason, ts_ms)
        return True

    def away_of(self, user: str) -> AwayState | None:
        return self.away.get(name_key(user))

    def away_listing(self) -> list[tuple[str, AwayState]]:
        """Every away member (own spelling) with their status, in the order PRESENCE lists names."""
        return sorted(((self.display[k], s) for k, s in self.away.items()), key=lambda p: p[0].casefold())

    def users(self) -> tuple[str, ...]:
        return tuple(sorted(self.display.values(), key=str.casefold))

    def allocate_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def remember(self, message: StoredMessage) -> None:
        recent = self.recent
        if len(recent) == recent.maxlen:
            self._recent_chars -= len(recent[0].text)  # append() drops it
        recent.append(message)
        self._recent_chars += len(message.text)
        while self._recent_chars > self.ring_text_chars and len(recent) > 1:
            self._recent_chars -= len(recent.popleft().text)

    def forget_through(self, seq: int) -> None:
        """Drop ring entries up to `seq`: history pruned from the store must not live on in memory."""
        while self.recent and self.recent[0].seq <= seq:
            self.recent.popleft()

    def recent_after(self, seq: int, limit: int) -> list[StoredMessage] | None:
        """Messages after `seq` from memory, or None when the ring no longer reaches back that far."""
        if not self.recent:
            return [] if seq >= self.next_seq - 1 else None
        first = self.recent[0].seq
        if seq + 1 < first:
            return None
        start = seq + 1 - first
        return [self.recent[i] for i in range(start, min(start + limit, len(self.recent)))]

    def __rich_repr__(self):  # type: ignore[no-untyped-def]
        yield self.name
        yield "members", len(self.members)
        yield "next_seq", self.next_seq
