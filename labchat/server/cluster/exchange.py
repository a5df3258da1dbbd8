"""What a relay in a cluster owes the other relays, and what it knows of the people on them.

Sans-I/O, like the relay it belongs to (`Relay.cluster`): the relay's logins, private messages and
presence functions write here what must go to NATS (a name whose presence changed, a registration to
claim in the accounts bucket, a private message for a user who is not on this relay), and call
`wake()` so that the asyncio side (people.py) drains it soon. Nothing here imports NATS or asyncio:
with `Relay.cluster` None (a single server) none of it exists.

The asyncio side answers through the relay's own methods (`Relay.apply_remote_presence`,
`Relay.end_replaced`, `Logins.registration_done`, `PrivateMessages.remote_done`, ...), each fed `now`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ...protocol.messages import Login
from ..accounts import PasswordCheck
from ..store import RoomRecord


@dataclass(frozen=True, slots=True)
class RemotePresence:
    """One user online on another relay, as the presence bucket says (presence.py decodes it)."""

    relay: str
    #: The session on that relay (hex of its id): an order to end it names it, so an order that
    #: arrives late never ends a newer session of the same name.
    session: str
    name: str
    rooms: tuple[str, ...] = ()
    #: MEMBER_GUEST / MEMBER_ADMIN of the session.
    flags: int = 0
    away: str | None = None
    away_since_ms: int = 0
    seat: str = ""


@dataclass(frozen=True, slots=True)
class OutgoingPrivate:
    """A private message for a user with no session on this relay: delivered by the relay that
    holds the user, or held in the cluster for the next login anywhere (privates.py)."""

    sender_sid: bytes
    sender: str
    to: str
    ts_ms: int
    text: str
    flags: int
    msg_id: int


@dataclass(frozen=True, slots=True)
class ModerationRecord:
    """One operator's action (MODERATE that changed something, 18.9) for the other relays to carry
    out too (moderation.py): roles, mutes, bans and invitations hold on every relay, and a kick or a
    ban reaches the target wherever it is."""

    relay: str
    room: str
    actor: str
    action: int  # messages.Action
    target: str
    minutes: int
    reason: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class RoomNews:
    """The change a room record carries (ROOM_SET, 18.5), for the other relays' members."""

    action: int  # ROOM_EVENT action: 16 + Setting
    actor: str
    value: str  # as ROOM_EVENT shows it ('' for a key)
    ts_ms: int


@dataclass(frozen=True, slots=True)
class RoomShare:
    """A room record for the other relays (rooms.py): made here (`creator_op`: its creator is its
    operator, 18.4) or changed here (`news`)."""

    relay: str
    record: RoomRecord
    creator_op: bool = False
    news: RoomNews | None = None


@dataclass(eq=False, slots=True)
class Exchange:
    """The relay's side of the cluster's people: see the module docstring."""

    #: This relay's id (relay_subject, the presence bucket's `relay`).
    relay_id: str
    #: Name keys whose presence changed here (login, rooms, away, logout): written to the bucket.
    presence: set[str] = field(default_factory=set)
    #: New accounts to claim in the accounts bucket before their login completes.
    registrations: list[PasswordCheck] = field(default_factory=list)
    #: Logins of a name this relay has no account for: (session id, LOGIN). The bucket is read
    #: first, because an account made a moment ago on another relay may not have been copied here
    #: yet (22.4); `Logins.account_looked_up` goes on.
    lookups: list[tuple[bytes, Login]] = field(default_factory=list)
    #: Private messages for users not on this relay.
    privates: list[OutgoingPrivate] = field(default_factory=list)
    #: (sender key, msg_id) of private messages sent and not answered yet: a resend meanwhile (a
    #: client that reconnected) is not sent twice; once answered, the relay's recent ids know it.
    privates_in_flight: set[tuple[str, int]] = field(default_factory=set)
    #: Users who logged in here: their messages held in the cluster are fetched and delivered.
    held_wanted: list[str] = field(default_factory=list)
    #: Rooms made or set here, for the other relays.
    rooms: list[RoomShare] = field(default_factory=list)
    #: Moderation done here, for the other relays.
    moderation: list[ModerationRecord] = field(default_factory=list)
    #: Users online on other relays, by name key (the presence bucket, as last seen).
    remote: dict[str, RemotePresence] = field(default_factory=dict)
    #: Called after anything above was queued: the asyncio side schedules a drain. Set by it.
    wake: Callable[[], None] = lambda: None

    def presence_changed(self, key: str) -> None:
        self.presence.add(key)
        self.wake()

    def register(self, check: PasswordCheck) -> None:
        self.registrations.append(check)
        self.wake()

    def look_up(self, session_id: bytes, login: Login) -> None:
        self.lookups.append((session_id, login))
        self.wake()

    def send_private(self, private: OutgoingPrivate) -> None:
        self.privates.append(private)
        self.wake()

    def logged_in(self, user: str) -> None:
        self.held_wanted.append(user)
        self.wake()

    def moderated(self, record: ModerationRecord) -> None:
        self.moderation.append(record)
        self.wake()

    def room_changed(self, share: RoomShare) -> None:
        self.rooms.append(share)
        self.wake()
