"""A room: who is in it, its message numbering, and the recent history kept in memory.

Pure bookkeeping, no I/O: the relay (relay.py) decides who gets what and when; the store keeps the
durable copy. The in-memory ring serves newcomers and clients catching up after a stall without a trip
to the database; older history comes from the store.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from ..protocol import messages as m
from ..protocol.errors import ErrorCode
from ..protocol.messages import PRESENCE_NAMES_PER_PART, name_key
from .store import RoomRecord, SanctionRecord, StoredMessage

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


# ---------------------------------------------------------------- who may do what (protocol.md 18.7)


class Role(IntEnum):
    """A member's standing in one room, lowest first. ADMIN is the server's, valid in every room."""

    GUEST = 0
    MEMBER = 1
    VOICE = 2
    OP = 3
    ADMIN = 4


class Act(Enum):
    """The things whose permission depends on the role (mutes, bans and invitations are state,
    checked beside the table: see `Room.check_join` and `Room.check_speak`)."""

    SPEAK = "speak"
    SPEAK_MODERATED = "speak when the room is moderated"
    SET_TOPIC = "set the topic while the topic lock is off"
    SET_TOPIC_LOCKED = "set the topic while the topic lock is on"
    CHANGE_SETTING = "change the key, the modes or the announcement"
    MODERATE = "op, voice, kick, mute, ban or invite"
    JOIN_PRIVATE_UNINVITED = "join a private room without an invitation"
    JOIN_WITHOUT_KEY = "join a keyed room without its key"
    SEE_PRIVATE = "see a private room in LIST without being in it"
    BE_SANCTIONED = "be kicked, muted or banned by an operator"
    BE_OPERATOR = "be made an operator"
    # ---- the classroom (protocol.md 20)
    RAISE_HAND = "raise a hand in the help queue"
    TAKE_FROM_QUEUE = "take the next student or mark one done"
    SEE_QUEUE = "receive the help queue"
    OPEN_POLL = "open or close a poll"
    VOTE = "vote in a poll"
    SEE_VOTES = "see a poll's counts and ballots while it is open"
    SET_QUIET = "turn quiet mode on or off"
    START_SESSION = "start a class session"
    SPEAK_WHEN_QUIET = "speak to the room while it is quiet"
    BE_MESSAGED_WHEN_QUIET = "receive private messages from students while the room is quiet"


_T, _F = True, False
#: One row per action, one column per role: GUEST, MEMBER, VOICE, OP, ADMIN. The whole policy of
#: 18.7-18.9 in one place; the relay asks `may` and never compares roles itself.
_TABLE: dict[Act, tuple[bool, bool, bool, bool, bool]] = {
    #                             GUEST MEMBER VOICE  OP   ADMIN
    Act.SPEAK:                    (_T,  _T,    _T,    _T,  _T),
    Act.SPEAK_MODERATED:          (_F,  _F,    _T,    _T,  _T),
    Act.SET_TOPIC:                (_T,  _T,    _T,    _T,  _T),
    Act.SET_TOPIC_LOCKED:         (_F,  _F,    _F,    _T,  _T),
    Act.CHANGE_SETTING:           (_F,  _F,    _F,    _T,  _T),
    Act.MODERATE:                 (_F,  _F,    _F,    _T,  _T),
    Act.JOIN_PRIVATE_UNINVITED:   (_F,  _F,    _F,    _T,  _T),
    Act.JOIN_WITHOUT_KEY:         (_F,  _F,    _F,    _T,  _T),
    Act.SEE_PRIVATE:              (_F,  _F,    _F,    _T,  _T),
    Act.BE_SANCTIONED:            (_T,  _T,    _T,    _T,  _F),
    Act.BE_OPERATOR:              (_F,  _T,    _T,    _T,  _T),
    Act.RAISE_HAND:               (_T,  _T,    _T,    _T,  _T),
    Act.TAKE_FROM_QUEUE:          (_F,  _F,    _F,    _T,  _T),
    Act.SEE_QUEUE:                (_F,  _F,    _F,    _T,  _T),
    Act.OPEN_POLL:                (_F,  _F,    _F,    _T,  _T),
    Act.VOTE:                     (_T,  _T,    _T,    _T,  _T),
    Act.SEE_VOTES:                (_F,  _F,    _F,    _T,  _T),
    Act.SET_QUIET:                (_F,  _F,    _F,    _T,  _T),
    Act.START_SESSION:            (_F,  _F,    _F,    _T,  _T),
    Act.SPEAK_WHEN_QUIET:         (_F,  _F,    _F,    _T,  _T),
    Act.BE_MESSAGED_WHEN_QUIET:   (_F,  _F,    _F,    _T,  _T),
}  # fmt: skip
RULES: dict[tuple[Act, Role], bool] = {
    (act, role): allowed for act, row in _TABLE.items() for role, allowed in zip(Role, row, strict=True)
}


def may(act: Act, role: Role) -> bool:
    """Whether `role` may do `act` (the table above)."""
    return RULES[(act, role)]


#: ROOM_SET switches and the ROOM_* bit each one sets.
SWITCH_BITS = {
    m.Setting.MODERATED: m.ROOM_MODERATED,
    m.Setting.PRIVATE: m.ROOM_PRIVATE,
    m.Setting.TOPIC_LOCK: m.ROOM_TOPIC_LOCKED,
}


def minutes_left(until_ms: int, now_ms: int) -> int:
    """Whole minutes until `until_ms`, rounded up (a mute with 10 s left has "1 more min")."""
    return max(1, -(-(until_ms - now_ms) // 60_000))


def until_text(until_ms: int | None, now_ms: int) -> str:
    return "until lifted" if until_ms is None else f"for {minutes_left(until_ms, now_ms)} more min"


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


@dataclass(slots=True)
class RemoteMember:
    """A member of the room whose session is on another relay of the cluster (cluster/presence.py
    keeps these from the presence bucket). Listed like a local member; never fanned out to here."""

    display: str
    #: MEMBER_GUEST / MEMBER_ADMIN of its session, as `member_flags` for a local one.
    flags: int = 0
    away: AwayState | None = None
    seat: str = ""


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
    # ---- rooms and roles (protocol.md 18): durable in the store, mirrored here
    creator: str = ""
    topic: str = ""
    modes: int = 0
    key: str = ""
    created_ms: int = 0
    #: The last announcement number handed out, and the current announcement ('' none).
    announcement_id: int = 0
    announcement_text: str = ""
    announcement_by: str = ""
    announcement_ms: int = 0
    #: Account keys that have acknowledged the current announcement.
    seen: set[str] = field(default_factory=set)
    roles: dict[str, str] = field(default_factory=dict)  # name key -> "op" | "voice"
    sanctions: dict[tuple[str, str], SanctionRecord] = field(default_factory=dict)  # (key, kind) ->
    invites: set[str] = field(default_factory=set)  # name keys invited while the room is private
    #: Accounts with the room in their list; with the online guests, ROOM_STATE `members`.
    account_members: int = 0
    #: MEMBER_GUEST / MEMBER_ADMIN of the online members (name key -> bits); absent: neither.
    member_flags: dict[str, int] = field(default_factory=dict)
    #: Quiet mode (protocol.md 20.5): when it ends, in ms (0: not quiet). Durable in the classroom
    #: tables, not in the room's record.
    quiet_until_ms: int = 0
    #: Members on other relays (cluster mode), by name key. A name that is also a local member is
    #: listed once, as the local one (the newest login wins; the remote entry is on its way out).
    remote: dict[str, RemoteMember] = field(default_factory=dict)

    def quiet(self, now_ms: int) -> bool:
        """Whether quiet mode is on at `now_ms` (it is over at its end, even before the timer runs)."""
        return self.quiet_until_ms > now_ms

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=self.ring_size)
        self._recent_chars = 0  # set here: a mypyc-compiled dataclass skips init=False defaults

    def add_member(self, user: str, session_id: bytes, flags: int = 0) -> bytes | None:
        """Add or replace; returns the session id this name had before (one live session per name).
        `flags`: MEMBER_GUEST / MEMBER_ADMIN of the session."""
        key = name_key(user)
        if key == user:
            key = user  # most names are their own key: keep one string per member, not two
        previous = self.members.get(key)
        self.members[key] = session_id
        self.display[key] = user
        if flags:
            self.member_flags[key] = flags
        else:
            self.member_flags.pop(key, None)
        return previous

    def members_total(self) -> int:
        """ROOM_STATE `members`: accounts with the room in their list, plus its online guests
        (`member_flags` holds only guests and admins, so this costs nothing in a big room)."""
        guests = sum(1 for bits in self.member_flags.values() if bits & m.MEMBER_GUEST)
        return self.account_members + guests

    def remove_member(self, user: str, session_id: bytes) -> bool:
        """Remove `user` if `session_id` is still its live session (a replaced session removes nothing)."""
        key = name_key(user)
        if self.members.get(key) != session_id:
            return False
        del self.members[key]
        del self.display[key]
        self.member_flags.pop(key, None)
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
        listing = [(self.display[k], s) for k, s in self.away.items()]
        if self.remote:
            listing += [
                (r.display, r.away)
                for k, r in self.remote.items()
                if r.away is not None and k not in self.display
            ]
        return sorted(listing, key=lambda p: p[0].casefold())

    def users(self) -> tuple[str, ...]:
        if self.remote:
            return tuple(sorted(self._all_display().values(), key=str.casefold))
        return tuple(sorted(self.display.values(), key=str.casefold))

    def _all_display(self) -> dict[str, str]:
        """Every member's name by key, local and on other relays, each once (the local one wins)."""
        merged = {k: r.display for k, r in self.remote.items()}
        merged.update(self.display)
        return merged

    def is_listed(self, key: str) -> bool:
        """Whether `key` is a member here or on another relay (PRESENCE lists it)."""
        return key in self.display or key in self.remote

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

    # ------------------------------------------------------------ rooms and roles (protocol.md 18)

    @classmethod
    def from_record(cls, record: RoomRecord, **kw: object) -> Room:
        room = cls(record.name, **kw)  # type: ignore[arg-type]
        room.apply(record)
        return room

    def apply(self, record: RoomRecord) -> None:
        self.creator, self.topic, self.modes = record.creator, record.topic, record.modes
        self.key = record.key
        self.created_ms = record.created_ms
        self.announcement_id, self.announcement_text = record.announcement_id, record.announcement_text
        self.announcement_by, self.announcement_ms = record.announcement_by, record.announcement_ms

    def record(self) -> RoomRecord:
        """The durable part, for the store."""
        return RoomRecord(
            self.name, self.creator, self.topic, self.modes, self.key, self.created_ms,
            self.announcement_id, self.announcement_text, self.announcement_by, self.announcement_ms,
        )  # fmt: skip

    def role_of(self, key: str, *, admin: bool = False, guest: bool = False) -> Role:
        if admin:
            return Role.ADMIN
        if guest:
            return Role.GUEST  # never an operator, whatever a row says (18.7)
        role = self.roles.get(key)
        return Role.OP if role == "op" else Role.VOICE if role == "voice" else Role.MEMBER

    def _flags_of(self, key: str) -> int:
        """MEMBER_GUEST / MEMBER_ADMIN of an online member, local or on another relay."""
        if key not in self.member_flags and key not in self.display and key in self.remote:
            return self.remote[key].flags
        return self.member_flags.get(key, 0)

    def member_role(self, key: str) -> Role:
        """The role of an online member, from the flags its session brought."""
        flags = self._flags_of(key)
        return self.role_of(key, admin=bool(flags & m.MEMBER_ADMIN), guest=bool(flags & m.MEMBER_GUEST))

    def sanction(self, key: str, kind: str, now_ms: int) -> SanctionRecord | None:
        """The mute or ban of `key` in force at `now_ms` (one whose end has passed is over, even
        before the timer that announces it has run)."""
        found = self.sanctions.get((key, kind))
        if found is None or (found.until_ms is not None and found.until_ms <= now_ms):
            return None
        return found

    def muted_until_ms(self, key: str, now_ms: int) -> int:
        """ROOM_STATE `muted_until_ms`: 0 not muted, 2^64-1 until lifted."""
        mute = self.sanction(key, "mute", now_ms)
        if mute is None:
            return 0
        return m.UNTIL_LIFTED_MS if mute.until_ms is None else mute.until_ms

    def member_bits(self, key: str, now_ms: int) -> int:
        """MEMBER_* bits of an online member (PRESENCE `modes`, ROOM_STATE `you`)."""
        flags = self._flags_of(key)
        role = self.member_role(key)
        bits = flags & (m.MEMBER_GUEST | m.MEMBER_ADMIN)
        if role >= Role.OP:  # an admin is an operator in every room
            bits |= m.MEMBER_OP
        if self.roles.get(key) == "voice":
            bits |= m.MEMBER_VOICE
        if self.sanctions and self.sanction(key, "mute", now_ms) is not None:
            bits |= m.MEMBER_MUTED
        return bits

    def presence_modes(self, now_ms: int) -> str:
        """PRESENCE `modes` for `users()`: one character per member, in the same order."""
        display = self._all_display() if self.remote else self.display
        keys = sorted(display, key=lambda k: display[k].casefold())
        return "".join(m.member_mode_char(self.member_bits(k, now_ms)) for k in keys)

    def state_for(self, key: str, now_ms: int) -> m.RoomState:
        """ROOM_STATE for the online member `key`."""
        quiet = self.quiet(now_ms)
        return m.RoomState(
            self.name, self.topic, self.modes | (m.ROOM_QUIET if quiet else 0), self.member_bits(key, now_ms),
            self.muted_until_ms(key, now_ms), self.members_total(), self.quiet_until_ms if quiet else 0,
        )  # fmt: skip

    def check_join(
        self, key: str, role: Role, given_key: str, now_ms: int
    ) -> tuple[ErrorCode, str] | None:
        """18.4's checks after the name rule, in order: a ban, the private mode, the key."""
        ban = self.sanction(key, "ban", now_ms) if may(Act.BE_SANCTIONED, role) else None
        if ban is not None:
            return ErrorCode.BANNED, f"you are banned from {self.name} {until_text(ban.until_ms, now_ms)}"
        private = self.modes & m.ROOM_PRIVATE
        if private and key not in self.invites and not may(Act.JOIN_PRIVATE_UNINVITED, role):
            return ErrorCode.INVITE_ONLY, f"{self.name} is invite-only: ask an operator for /invite"
        if self.modes & m.ROOM_KEYED and given_key != self.key and not may(Act.JOIN_WITHOUT_KEY, role):
            return ErrorCode.BAD_KEY, f"{self.name} needs a key: /join {self.name} KEY"
        return None

    def check_speak(self, key: str, now_ms: int) -> tuple[ErrorCode, str] | None:
        """Why the online member `key` may not say something here now, or None."""
        role = self.member_role(key)
        if self.sanctions and may(Act.BE_SANCTIONED, role):
            mute = self.sanction(key, "mute", now_ms)
            if mute is not None:
                return ErrorCode.MUTED, f"you are muted in {self.name} {until_text(mute.until_ms, now_ms)}"
        if self.modes & m.ROOM_MODERATED and not may(Act.SPEAK_MODERATED, role):
            return ErrorCode.MODERATED, f"{self.name} is moderated: only operators and voiced members speak"
        return None

    def visible_to(self, key: str, role: Role) -> bool:
        """LIST shows a private room only to its members, the invited, operators and admins (18.6)."""
        if not self.modes & m.ROOM_PRIVATE:
            return True
        if role not in (Role.ADMIN, Role.GUEST):
            role = self.role_of(key)  # an operator of the room sees it
        return key in self.members or key in self.invites or may(Act.SEE_PRIVATE, role)

    def tally(self, names: list[str]) -> m.AnnouncementTally:
        """The read tally of the current announcement over the room's `names` (members, own spelling)."""
        author = name_key(self.announcement_by)
        others = [n for n in names if name_key(n) != author]
        not_yet = sorted((n for n in others if name_key(n) not in self.seen), key=str.casefold)
        return m.AnnouncementTally(
            self.name, self.announcement_id, len(others) - len(not_yet), len(others),
            tuple(not_yet[: m.MAX_TALLY_NAMES]),
        )  # fmt: skip

    def __rich_repr__(self):  # type: ignore[no-untyped-def]
        yield self.name
        yield "members", len(self.members)
        yield "next_seq", self.next_seq
