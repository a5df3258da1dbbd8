"""A room: who is in it, its message numbering, and the recent history kept in memory.

Pure bookkeeping, no I/O: the relay (relay.py) decides who gets what and when; the store keeps the
durable copy. The in-memory ring serves newcomers and clients catching up after a stall without a trip
to the database; older history comes from the store.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..protocol.messages import name_key
from .store import StoredMessage


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
    recent: deque[StoredMessage] = field(init=False)

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.ring_size)

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
        self.recent.append(message)

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
