"""The client's side of a labchat connection, sans-I/O.

`ClientConnection` is everything a client does, except touching a socket or a clock:

    conn.connect(now)                       start the handshake
    conn.receive_datagram(data, now)        feed every datagram from the server
    conn.say(text, now) / whisper / who / quit
    for d in conn.datagrams_to_send(now):   send them
    conn.next_timer() / conn.handle_timer(now)
    for ev in conn.events(): ...            see events.py

Layers inside, top to bottom: the login state machine and the outbox (here), the reliable link
(reliability.py), the secure channel (channel.py). The line-mode client, the Textual app and the
benchmark all drive this same object through `labchat.client.core`.

State machine (docs/protocol.md has the diagram):

    IDLE --connect--> HANDSHAKE --channel up--> [TRUST?] --> LOGIN --LoginOk--> ONLINE
    ONLINE --server silent > stall_s--> ONLINE (shown as RECONNECTING)
           --silent > rehandshake_s, or RESET--> ONLINE + new handshake in the background
                                                 --> LOGIN (resume) --> ONLINE
    any --LoginFailed / Closed(replaced) / key changed / quit acknowledged--> CLOSED

Several relays (docs/protocol.md 22): the address the datagrams go to is part of the state. A client
given fallback addresses, or told the other relays' addresses by RELAYS, moves to the next address
when a handshake has gone unanswered for `failover_s` (the deadline `_move_at`), and logs in there as
after any re-handshake: same password and ticket, `resume_seq`, the outbox resent with its msg_ids.

Nothing typed is lost across a reconnect: messages not yet confirmed by the server stay in the outbox
with their `msg_id` and are sent again on the new session; the server recognises the id and relays each
message once. The room's sequence numbers make the receive side exactly-once and ordered too: the client
asks the server for everything after the last `seq` it showed and drops anything at or below it.

Rooms (docs/protocol.md 18): a client that announces CAP_ROOMS to a server that has them is in several
rooms at once. It keeps one cursor per room (client_rooms.py) and, on every re-login, sends them all
(LOGIN's `room` and `resume_seq` for the current room, `cursors` for the rest). JOIN, PART, LIST,
ROOM_SET and MODERATE are requests like HISTORY: queued while offline, asked again on each new session
until their REQUEST_DONE. Against a server without rooms they are refused locally ("this server has one
room") and everything else behaves as it did before rooms existed.

The classroom (docs/protocol.md 20) rides on rooms: LOGIN carries the user's seat, HAND, QUEUE_TAKE and
the POLL_* requests are room requests like the others, and what their answers and news leave behind
(the operators' help queue, the last poll, our own vote) is kept in a `ClassBook` (classroom.py).
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto

from . import channel as ch
from . import events as ev
from . import messages as m
from .classroom import NO_CLASSROOM, REQUEST_WORDS, ClassBook, ClassRequest, seat_label
from .client_rooms import RoomBook
from .errors import DecodeError, ErrorCode, LocalProtocolError, RemoteProtocolError
from .parts import Reassembler
from .reliability import LinkConfig, ReliableLink
from .text import neutralize, neutralize_text, over_limit, split_parts, split_text, utf8_len
from .transfer import Download, Transfers, Upload
from .wire import decode_message, encode_message


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Timers of a client connection. Tests shrink them; docs/protocol.md documents the defaults."""

    #: Reliable-link knobs (retransmission timeouts and windows).
    link: LinkConfig = field(default_factory=LinkConfig)
    #: Give up on a server that never completed a login within this long (first connection only).
    connect_timeout_s: float = 5.0
    #: Send a PING when nothing has been sent for this long, so both ends know the path is alive.
    #: 8 s keeps three chances inside the server's 30 s timeout and tells an idle user of a dead
    #: server within about 11 s (with `stall_s`); every PING costs a 1000-client server a wake-up
    #: (≈0.1 ms of CPU), so 4 s cost it 3 % of a core and 8 s about 1.5 %.
    keepalive_s: float = 8.0
    #: Nothing heard from the server for this long while waiting for it: show "reconnecting".
    stall_s: float = 3.0
    #: Nothing heard for this long: start a fresh handshake (the server restarted or our address
    #: changed in a way the old session cannot follow).
    rehandshake_s: float = 6.0
    #: A handshake unanswered for this long moves the client to its next relay address, when it has
    #: several (docs/protocol.md 22.3). A live relay answers a HELLO in milliseconds, so 4 s only
    #: ever leaves one that is gone; with `rehandshake_s` a busy client moves 10 s after its relay died.
    failover_s: float = 4.0
    #: After the server announces a shutdown, wait this long before reconnecting, so that we reach
    #: the restarted server rather than the one that is going away.
    shutdown_retry_s: float = 1.0
    #: After QUIT, wait at most this long for messages still in the outbox to be confirmed...
    quit_drain_s: float = 5.0
    #: ...and then at most this long for the server to acknowledge the BYE.
    quit_linger_s: float = 1.0
    #: Unconfirmed messages in flight at once; the rest wait in the outbox. This is the client's half
    #: of rate limiting: a script piping thousands of lines is paced by the server's confirmations.
    max_unconfirmed: int = 256
    #: Ask the owner before logging in to a server whose key was never seen (the Textual app does;
    #: line mode pins on first contact, as `ssh -o StrictHostKeyChecking=accept-new`).
    confirm_new_key: bool = False
    #: The channel's own knobs, or None for its defaults.
    channel: ch.ChannelConfig | None = None
    #: A re-connecting client refused with LOGIN_THROTTLED or SERVER_BUSY and no hint from the server
    #: tries again after this, doubling each time up to `relogin_max_s` (docs/protocol.md 17.6).
    relogin_min_s: float = 1.0
    relogin_max_s: float = 60.0
    #: What LOGIN announces the client can read (docs/protocol.md section 15.1). 0 gets what a
    #: version-1 client gets: a long message as a one-message preview, never in parts.
    capabilities: int = m.CAP_LONG_MESSAGES | m.CAP_ROOMS | m.CAP_CLASSROOM | m.CAP_FILES | m.CAP_FAILOVER
    #: File frames (FILE_CHUNK) we keep in the link's bulk queue or in flight at most (21.5, 21.7):
    #: uploads go as the link drains; chat leaves before any of them that is not sent yet.
    file_window: int = 64
    #: FILE_CHUNKs queued per `datagrams_to_send` at most (21.7): sealing a whole window at once
    #: holds the event loop for milliseconds, and a chat line arriving meanwhile waits for it. The
    #: rest follows on the next call (`file_frames_waiting` says one is due), after the socket is read.
    file_frames_per_flush: int = 32


#: Held private messages remembered to drop a second delivery of the same one (docs/protocol.md 16.2).
HELD_SEEN = 1000

#: The one-line refusal of a room request to a server without rooms (18.1).
ONE_ROOM = "this server has one room"
_OLDER_SERVER = "this server does not offer it: it runs an older labchat"
_NO_FILES = "this server does not take files: it runs an older labchat"

#: Room requests, as `RequestFailed.request` names them.
_REQUEST_WORDS: dict[type[m.Message], str] = {
    m.JoinRoom: "join", m.PartRoom: "part", m.ListRooms: "list", m.SetRoom: "set", m.Moderate: "moderate",
    **REQUEST_WORDS,
}  # fmt: skip
RoomRequest = m.JoinRoom | m.PartRoom | m.ListRooms | m.SetRoom | m.Moderate | ClassRequest
#: REJECTED codes that mean "not now": the message is kept, and sent again with everything after it
#: once `retry_after_ms` has passed (6.5; CLUSTER_UNAVAILABLE: a relay that cannot store now, 22.6).
_NOT_NOW = frozenset((ErrorCode.RATE_LIMITED, ErrorCode.CLUSTER_UNAVAILABLE))
#: A relay's address as the user or the server wrote it: (host, port). Resolving it is the owner's job.
Address = tuple[str, int]


def _address_key(address: Address) -> Address:
    """Two spellings of one address are one entry (22.3): host names compare case-insensitively."""
    return (address[0].lower(), address[1])


class Phase(Enum):
    """Where the connection is in the state machine of the module docstring."""

    #: Created; `connect()` not called yet.
    IDLE = auto()
    #: Secure-channel handshake under way (the first one; later ones run behind ONLINE).
    HANDSHAKE = auto()
    #: First contact: waiting for the user to trust the server's fingerprint.
    AWAIT_TRUST = auto()
    #: LOGIN sent, waiting for LOGIN_OK (after a re-handshake too).
    LOGIN = auto()
    #: Logged in: chatting.
    ONLINE = auto()
    #: BYE sent, waiting for its acknowledgement.
    CLOSING = auto()
    #: Over for good.
    CLOSED = auto()


@dataclass(slots=True)
class _Outgoing:
    msg_id: int
    text: str
    room: str
    action: bool
    to: str | None
    sent: bool = False

    def messages(self) -> list[m.Message]:
        """The frames this message travels in: one SAY or WHISPER, or the parts of a long one."""
        flags = m.FLAG_ACTION if self.action else 0
        if over_limit(self.text):
            pieces = split_parts(self.text)
            to = self.to or ""
            return [
                m.SayPart(self.msg_id, self.room, to, flags, index, len(pieces), piece)
                for index, piece in enumerate(pieces)
            ]
        if self.to is not None:
            return [m.Whisper(self.msg_id, self.to, self.text, flags)]
        return [m.Say(self.msg_id, self.room, self.text, flags)]


@dataclass(slots=True)
class _Request:
    """A request waiting for its REQUEST_DONE (HISTORY, SEARCH, or a room request of section 18);
    asked again on a new session until then."""

    message: m.HistoryRequest | m.SearchRequest | RoomRequest
    sent: bool = False
    entries: list[ev.MessageReceived] = field(default_factory=list)
    hits: list[ev.SearchHit] = field(default_factory=list)
    infos: list[ev.RoomInfo] = field(default_factory=list)
    #: A JOIN whose room became the current one already (on its ROOM_STATE).
    switched: bool = False


class ClientConnection:
    """One user's connection to one server, across any number of reconnects. See the module docstring."""

    def __init__(
        self,
        user: str,
        password: str,
        *,
        room: str = m.DEFAULT_ROOM,
        server_key: bytes | None = None,
        config: ClientConfig | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        register: bool = True,
        seat: str = "",
        address: Address | None = None,
        fallbacks: Sequence[Address] = (),
    ) -> None:
        """Args:
        user, password: the account; checked against the name rule at once (LocalProtocolError).
        seat: where the user sits (20.2), sent in LOGIN: cut to 40 bytes, control characters dropped.
        server_key: the pinned public key of this server, or None on first contact.
        register: False asks the server not to register an unknown name (LOGIN_NO_REGISTER): the
            login then fails with NO_SUCH_ACCOUNT, and the app can ask the user first.
        address: where the server is (`address` then tells the owner where to send); None for an
            owner that keeps the one address itself (nothing can move then).
        fallbacks: more relays of the same server (`--fallback`), tried in this order after
            `address` when it stops answering (docs/protocol.md 22.3).
        """
        m.Login(user, password, room)  # validates name and password size now, not on the wire
        self.user = user
        self.room = room
        self.seat = seat_label(seat)
        self.config = config or ClientConfig()
        self._password = password
        self._rng = rng
        self._pinned = server_key
        self._channel = ch.ClientChannel(server_key, rng=rng, config=self.config.channel)
        self._link = ReliableLink(self.config.link)
        self._phase = Phase.IDLE
        self._state = ev.ConnectionState.CONNECTING
        self._events: deque[ev.Event] = deque()
        self._file_frames_waiting = False
        self._outbox: dict[int, _Outgoing] = {}
        self._msg_base = int.from_bytes(rng(4), "big") << 32
        self._msg_counter = 0
        self._logged_in_once = False
        self._connect_deadline: float | None = None
        self._quit_deadline: float | None = None
        self._last_heard: float = 0.0
        self._rehandshaking = False
        self._quit_requested = False
        # Each client pings after 80-100 % of keepalive_s, its own fraction: a class that logs in
        # together would otherwise ping together forever, a burst at the server every few seconds.
        self._keepalive_spread = 0.8 + 0.2 * rng(1)[0] / 255
        self._keepalive_s = self.config.keepalive_s * self._keepalive_spread
        self._paused_until: float | None = None
        # Per room: a PRESENCE list in parts (name, MEMBER_* bits) until the part without `more`.
        self._presence_parts: dict[str, list[tuple[str, int, str]]] = {}
        self._reconnect_at: float | None = None
        self._waiting_since = 0.0
        self._away_reason: str | None = None  # ours: sent again after every login while set
        # room -> {name -> reason}, from AWAYs before that room's next PRESENCE
        self._away_listing: dict[str, dict[str, str]] = {}
        self._ignored: dict[str, str] = {}  # name key -> name as the user typed it
        self._held_seen: OrderedDict[tuple[str, int, str], None] = OrderedDict()
        self._register = register
        #: The latest resumption ticket (docs/protocol.md 17.4): re-logins carry it.
        self._ticket = ""
        self._relogin_attempts = 0
        # Long messages, history pages and search (docs/protocol.md section 15).
        self._server_caps: int | None = None  # the flags of the last LOGIN_OK; None before one
        self._room_parts = Reassembler()
        self._private_parts = Reassembler()
        self._history_parts = Reassembler()
        self._requests: dict[int, _Request] = {}
        self._requests_unsent = False
        self._request_counter = 0
        # Rooms (section 18): cursors, the rooms held, acknowledgements not sent yet.
        self._book = RoomBook()
        # The classroom (section 20): help queues, polls, hand news.
        self._class = ClassBook()
        #: Uploads and downloads (section 21, transfer.py); they report into our event queue.
        self.files = Transfers(self._events)
        # Several relays (section 22): the addresses given, those the last RELAYS named, the current
        # one, and the deadline to move on from it while a handshake there goes unanswered.
        self._given: list[Address] = [address, *fallbacks] if address is not None else list(fallbacks)
        self._learned: list[Address] = []
        self._address: Address | None = self._given[0] if self._given else None
        self._move_at: float | None = None
        self._first_tries = 1  # addresses tried by the first connection (each gets one turn)
        self._login_address: Address | None = None  # where the last LOGIN_OK came from
        self._session_address: Address | None = self._address  # where the channel's session lives

    # ------------------------------------------------------------ properties

    @property
    def state(self) -> ev.ConnectionState:
        return self._state

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def rtt_s(self) -> float | None:
        return self._link.rtt.srtt

    @property
    def server_key(self) -> bytes | None:
        return self._channel.server_key

    @property
    def last_seq(self) -> int:
        """The highest sequence number of the current room shown so far."""
        return self._book.last_seq(self.room)

    def last_seq_of(self, room: str) -> int:
        """The highest sequence number of `room` shown so far (0: none, or not in it)."""
        return self._book.last_seq(room)

    @property
    def current_room(self) -> str:
        """Where a line sent without naming a room goes (`say(room=None)`, /who, /history)."""
        return self.room

    @property
    def rooms(self) -> tuple[str, ...]:
        """The rooms we are in, in the order we joined them (empty before the first login)."""
        return self._book.rooms

    @property
    def server_has_rooms(self) -> bool | None:
        """Whether the server takes JOIN and the other room requests; None before the first login."""
        if self._server_caps is None:
            return None
        return self._server_rooms()

    def room_state(self, room: str) -> ev.RoomState | None:
        """`room`'s last ROOM_STATE (None: not in it, or a server without rooms)."""
        held = self._book.held.get(room)
        return held.state if held is not None else None

    def announcement(self, room: str) -> tuple[ev.Announcement | None, ev.AnnouncementTally | None]:
        """`room`'s pinned announcement (None: none) and, for operators, its last read tally."""
        held = self._book.held.get(room)
        if held is None or held.announcement is None or not held.announcement.text:
            return None, None
        tally = held.tally
        if tally is not None and tally.announcement_id != held.announcement.announcement_id:
            tally = None
        return held.announcement, tally

    def member_modes(self, room: str) -> dict[str, int]:
        """MEMBER_* bits of `room`'s members that have any (operators, voiced, muted, guests,
        admins), from its last PRESENCE and the ROOM_EVENTs since (18.7)."""
        held = self._book.held.get(room)
        return held.member_modes() if held is not None else {}

    @property
    def server_has_classroom(self) -> bool | None:
        """Whether the server takes hands, polls and quiet mode (20.1); None before the first login."""
        if self._server_caps is None:
            return None
        return self._server_classroom()

    def help_queue(self, room: str) -> ev.QueueUpdated | None:
        """`room`'s help queue as last received (None: never: only operators receive it)."""
        return self._class.queue(room)

    def open_poll(self, room: str) -> ev.PollShown | None:
        """`room`'s open poll as we last saw it (None: none open)."""
        return self._class.open_poll(room)

    def classroom_log(self, room: str) -> tuple[tuple[ev.PollShown, ...], tuple[ev.RoomEvent, ...]]:
        """What `/export` adds to `room`'s messages: every poll seen (its last state) and the hand
        news received, oldest first."""
        known = self._class.rooms.get(room)
        if known is None:
            return (), ()
        return tuple(known.polls.values()), tuple(known.hands)

    def poll_seen_at(self, room: str, poll_id: int) -> float | None:
        """When this client first saw poll `poll_id` of `room` (the `now` of its first POLL)."""
        known = self._class.rooms.get(room)
        return known.first_seen.get(poll_id) if known is not None else None

    def request_pending(self, request_id: int) -> bool:
        """True while request `request_id` waits for its answer."""
        return request_id in self._requests

    @property
    def away_reason(self) -> str | None:
        """Our away reason ("" for away without one), or None while we are not away."""
        return self._away_reason

    @property
    def ignored(self) -> tuple[str, ...]:
        """The names whose messages we hide, sorted case-insensitively."""
        return tuple(sorted(self._ignored.values(), key=str.casefold))

    @property
    def oldest_seq(self) -> int:
        """The lowest sequence number of the current room shown so far (0: none): where `/history`
        pages back from."""
        return self._book.oldest_seq(self.room)

    @property
    def address(self) -> Address | None:
        """Where every datagram goes, and the only sender whose datagrams count (22.3)."""
        return self._address

    @property
    def addresses(self) -> tuple[Address, ...]:
        """Every relay address this client may move to, in the order it tries them (22.3)."""
        seen: set[Address] = set()
        out: list[Address] = []
        for address in (*self._given, *self._learned):
            key = _address_key(address)
            if key not in seen:
                seen.add(key)
                out.append(address)
        return tuple(out)

    @property
    def pending(self) -> int:
        """Messages typed but not yet confirmed by the server."""
        return len(self._outbox)

    # ------------------------------------------------------------ API

    def connect(self, now: float) -> None:
        """Begin: handshake, then login. `ConnectFailed` follows if nothing answers in time."""
        if self._phase is not Phase.IDLE:
            raise LocalProtocolError(f"connect() in phase {self._phase.name}")
        self._phase = Phase.HANDSHAKE
        # Each further address gets its turn of failover_s before the first connection gives up.
        extra = self.config.failover_s * max(0, len(self.addresses) - 1)
        self._connect_deadline = now + self.config.connect_timeout_s + extra
        self._last_heard = now
        self._start_handshake(now)

    def trust_server_key(self, now: float) -> None:
        """The user accepted the fingerprint of a first-contact server: log in."""
        if self._phase is Phase.AWAIT_TRUST:
            # The user may have read the fingerprint for longer than the server keeps a half-open
            # handshake: shake hands again (the key is pinned now, so no second prompt) and give
            # the login its own time.
            self._phase = Phase.HANDSHAKE
            self._connect_deadline = now + self.config.connect_timeout_s
            self._start_handshake(now)

    def say(self, text: str, now: float, *, action: bool = False, room: str | None = None) -> list[int]:
        """Queue a message of up to 16 KB, newlines allowed, to `room` (None: the current room).
        Returns its id (see `MessageQueued`).

        Over 900 bytes it travels in parts and arrives as one message (docs/protocol.md section 15);
        a server too old for that gets it as several messages, so the list may hold more ids.

        Raises:
            LocalProtocolError: empty, over 16 KB ("message too long: 20.1 KB, the limit is 16 KB"),
                a room we are not in, or the connection is closed.
        """
        return self._queue_text(text, now, action=action, to=None, room=self._say_room(room))

    def set_current_room(self, room: str) -> None:
        """Make `room` (one we are in) where lines without a room go from now on.

        Raises:
            LocalProtocolError: we are not in `room`.
        """
        if room != self.room:
            self._check_held(room)
            self.room = room

    def join(self, room: str, key: str, now: float) -> int:
        """JOIN `room` (created, with us as its operator, if it does not exist), with its `key` if it
        has one (18.4). On success a `RoomState(joined=True)` arrives and the room becomes current
        (`CurrentRoomChanged`); a refusal is a `RequestFailed`. Queued while offline.

        Returns:
            The request's id.
        Raises:
            LocalProtocolError: an invalid room name or key, too many rooms, a server without rooms,
                or the connection is closed.
        """
        self._check_rooms_supported()
        if not m.is_valid_room(room):
            raise LocalProtocolError(f"invalid room name {room!r}: room names are {m.ROOM_RULE}",
                                     ErrorCode.INVALID_ROOM)  # fmt: skip
        if room not in self._book.held and len(self._book.held) >= m.MAX_ROOMS_PER_USER:
            raise LocalProtocolError(
                f"you are in {m.MAX_ROOMS_PER_USER} rooms, the most one user may be in: /part one first",
                ErrorCode.TOO_MANY_ROOMS,
            )
        resume = self._book.last_seq(room)
        return self._request(m.JoinRoom(self._next_request_id(), room, resume, key))

    def part(self, room: str, reason: str, now: float) -> int:
        """Leave `room` (18.5); answered by `RoomLeft` (or `RequestFailed`). Queued while offline.

        Raises:
            LocalProtocolError: not in that room, a reason over 200 bytes, a server without rooms.
        """
        self._check_rooms_supported()
        self._check_held(room)
        return self._request(m.PartRoom(self._next_request_id(), room, reason))

    def list_rooms(self, now: float) -> int:
        """Ask for the rooms we may see; answered by one `RoomList` (or `RequestFailed`)."""
        self._check_rooms_supported()
        return self._request(m.ListRooms(self._next_request_id()))

    def set_room(self, room: str, setting: int, value: str, now: float) -> int:
        """Change one of `room`'s settings (`messages.Setting`, 18.8): the room's members then see a
        `RoomEvent`; a refusal (not an operator, ...) is a `RequestFailed`.

        Raises:
            LocalProtocolError: not in that room, an over-long value, a server without rooms.
        """
        self._check_rooms_supported()
        self._check_held(room)
        return self._request(m.SetRoom(self._next_request_id(), room, setting, value))

    def moderate(self, room: str, action: int, user: str, minutes: int, reason: str, now: float) -> int:
        """An operator's `action` (`messages.Action`: OP ... INVITE) on `user` in `room` (18.9), for
        `minutes` (MUTE, BAN; 0: until lifted). Seen as a `RoomEvent`; refused as `RequestFailed`.

        Raises:
            LocalProtocolError: not in that room, a bad name, minutes or reason, a server without rooms.
        """
        self._check_rooms_supported()
        self._check_held(room)
        return self._request(m.Moderate(self._next_request_id(), room, action, user, minutes, reason))

    # ------------------------------------------------------------ the classroom (20)

    def hand(self, room: str, raise_: bool, question: str, now: float) -> int:
        """Raise our hand in `room`'s help queue with `question` (again: a new question, same
        place), or lower it (20.3). Answered by a `RoomEvent` HAND_RAISED / HAND_LOWERED, or a
        `RequestFailed` ("hand").

        Raises:
            LocalProtocolError: not in that room, a question over 300 bytes, a server without it.
        """
        self._check_classroom(room)
        return self._request(m.Hand(self._next_request_id(), room, int(raise_), question))

    def queue_next(self, room: str, now: float) -> int:
        """An operator takes the first student waiting in `room`'s queue ("coming: teacher")."""
        self._check_classroom(room)
        return self._request(m.QueueTake(self._next_request_id(), room, m.QUEUE_NEXT, ""))

    def queue_done(self, room: str, user: str, now: float) -> int:
        """An operator removes `user`'s entry from `room`'s queue (helped, or gone)."""
        self._check_classroom(room)
        if not m.is_valid_name(user):
            raise LocalProtocolError(f"invalid name {user!r}: {m.NAME_RULE}", ErrorCode.INVALID_NAME)
        return self._request(m.QueueTake(self._next_request_id(), room, m.QUEUE_DONE, user))

    def poll_open(
        self, room: str, question: str, options: tuple[str, ...], now: float, *, anonymous: bool = False
    ) -> int:
        """An operator asks `room` `question` with 2-9 `options` (20.4): every member then gets a
        `PollShown`. `anonymous`: nobody, operators included, sees who chose what.

        Raises:
            LocalProtocolError: not in that room, a question or option over its limit, a wrong number
                of options, a server without polls.
        """
        self._check_classroom(room)
        flags = m.POLL_ANONYMOUS if anonymous else 0
        return self._request(m.PollOpen(self._next_request_id(), room, question, options, flags))

    def poll_vote(self, room: str, choice: int, now: float) -> int:
        """Answer `room`'s open poll with option `choice` (1-based); again to change it.

        Raises:
            LocalProtocolError: no open poll known in that room, or `choice` is not one of its options.
        """
        self._check_classroom(room)
        poll = self._class.open_poll(room)
        if poll is None:
            raise LocalProtocolError(f"no open poll in #{room}", ErrorCode.NO_SUCH_POLL)
        if not 1 <= choice <= len(poll.options):
            raise LocalProtocolError(
                f"poll #{poll.poll_id} has options 1 to {len(poll.options)}: /vote N", ErrorCode.BAD_MESSAGE
            )
        return self._request(m.PollVote(self._next_request_id(), room, poll.poll_id, choice))

    def poll_close(self, room: str, now: float) -> int:
        """An operator closes `room`'s open poll: everyone then sees its result.

        Raises:
            LocalProtocolError: no open poll known in that room.
        """
        self._check_classroom(room)
        poll = self._class.open_poll(room)
        if poll is None:
            raise LocalProtocolError(f"no open poll in #{room}", ErrorCode.NO_SUCH_POLL)
        return self._request(m.PollClose(self._next_request_id(), room, poll.poll_id))

    def announcement_seen(self, room: str, announcement_id: int, now: float) -> None:
        """The user has been shown `room`'s announcement `announcement_id`: tell the server, once
        (18.10). Sent as soon as the connection is online; repeated by itself after a reconnect."""
        if self._server_rooms():
            self._book.acknowledge(room, announcement_id)

    # ------------------------------------------------------------ files (docs/protocol.md 21)

    def new_upload_id(self) -> int:
        """A local id for an upload whose offer is still being prepared (its SHA-256 computed):
        the id its events will carry."""
        return self.files.new_local_id()

    def offer_file(
        self, name: str, size: int, sha256: bytes, now: float, *, room: str | None = None, to: str = "",
        mime: str = "", folder: bool = False, local_id: int = 0,
    ) -> int:
        """Offer a file (or a folder's tar stream) of `size` bytes to `room` (None: the current
        room) or to user `to` alone (21.3); sent as soon as we are online, and again after every
        reconnect until the server has stored it. The owner then reads the file as `files.wants()`
        asks and hands the bytes to `files.feed()`. Reported by `FileProgress`, then `FileDone` or
        `FileFailed` (refused before any byte: too large, quota, a bad name).

        Returns:
            The upload's local id (`local_id` if given, from `new_upload_id`).
        Raises:
            LocalProtocolError: a server without files, a bad name or recipient, not in the room.
        """
        self._check_files_supported()
        if to and not m.is_valid_name(to):
            raise LocalProtocolError(f"no such user name {to!r}: {m.NAME_RULE}", ErrorCode.INVALID_NAME)
        target = self._say_room(room)
        local_id = local_id or self.files.new_local_id()
        self.files.upload(local_id, name, size, sha256, room=target, to=to, mime=mime, folder=folder)
        return local_id

    def accept_file(self, file_id: int, now: float) -> Download:
        """Download offer `file_id` (FILE_GET; resumed by itself after a reconnect). The bytes
        arrive as `FileChunkReceived` events for the owner to write, then `FileDone` (verified) or
        `FileFailed`.

        Raises:
            LocalProtocolError: no such offer, or it is under way or saved already.
        """
        if self._phase is Phase.CLOSED:
            raise LocalProtocolError("the connection is closed")
        return self.files.accept(file_id, now)

    def decline_file(self, file_id: int) -> Download:
        """Say no to offer `file_id`; a download under way is cancelled.

        Raises:
            LocalProtocolError: no such offer.
        """
        down = self.files.decline(file_id)
        self.cancel_file(file_id, "declined", direction="down")
        return down

    def cancel_file(self, file_id: int, reason: str, *, direction: str) -> None:
        """Stop upload (`direction` "up", by local id) or download ("down") `file_id`: a
        `FileFailed` with `reason` follows, and the server is told (FILE_CANCEL)."""
        if direction == "up":
            cancel = self.files.cancel_upload(file_id, reason)
        else:
            cancel = self.files.cancel_download(file_id, reason, 0.0)
        if cancel is not None and self._phase is Phase.ONLINE:
            self._send(cancel)

    def list_files(self, room: str | None, now: float) -> int:
        """Ask for the files kept for `room` (None: the current room): each one not known yet
        arrives as a `FileOffered(listing=True)`. Returns the request's id.

        Raises:
            LocalProtocolError: a server without files, a room we are not in.
        """
        self._check_files_supported()
        target = self._say_room(room)
        request_id = self._next_request_id()
        self.files.list_files(request_id, target)
        return request_id

    def file_offers(self, room: str | None = None) -> list[Download]:
        """The offers seen (in `room`, or all), oldest first, with where each stands."""
        return self.files.offers(room)

    def upload(self, local_id: int) -> Upload | None:
        return self.files.uploads.get(local_id)

    @property
    def server_has_files(self) -> bool | None:
        """Whether the server takes files (CAP_FILES); None before the first login."""
        if self._server_caps is None:
            return None
        return self._server_files()

    def whisper(self, to: str, text: str, now: float, *, action: bool = False) -> list[int]:
        """Queue a private message to `to`."""
        if not m.is_valid_name(to):
            raise LocalProtocolError(f"no such user name {to!r}: {m.NAME_RULE}", ErrorCode.INVALID_NAME)
        return self._queue_text(text, now, action=action, to=to)

    def fetch_history(
        self, before_seq: int, now: float, limit: int = m.MAX_HISTORY_PAGE, *, room: str | None = None
    ) -> int:
        """Ask for up to `limit` stored messages of `room` (None: the current room) older than
        `before_seq` (0: the newest).

        Answered by one `HistoryPage`; asked again after a reconnect until it is answered.

        Returns:
            The request's id.
        Raises:
            LocalProtocolError: the connection is closed, or the server is too old for history pages.
        """
        self._check_requests_supported("history pages")
        room = self.room if room is None else room
        return self._request(m.HistoryRequest(self._next_request_id(), room, before_seq, limit))

    def search(self, query: str, now: float, limit: int = m.MAX_SEARCH_HITS) -> int:
        """Search the room's stored messages for every word of `query`; answered by `SearchResults`.

        Raises:
            LocalProtocolError: an empty or over-long query, the connection is closed, or the server
                is too old to search.
        """
        if not query.strip():
            raise LocalProtocolError("search for what? usage: /search words", ErrorCode.BAD_QUERY)
        if utf8_len(query) > m.MAX_QUERY_BYTES:
            raise LocalProtocolError(
                f"search query too long: the limit is {m.MAX_QUERY_BYTES} bytes", ErrorCode.BAD_QUERY
            )
        self._check_requests_supported("search")
        return self._request(m.SearchRequest(self._next_request_id(), self.room, query, limit))

    def who(self, now: float) -> None:
        """Ask for the current room's online list; answered by `PresenceUpdated(requested=True)`."""
        if self._phase is Phase.ONLINE:
            self._send(m.Who(self.room))

    def set_away(self, reason: str | None, now: float) -> None:
        """Mark us away for `reason` ("" for none), or back with None (section 16.1 of the protocol).

        The owner decides when: a typed /away, or its own idle timer. Kept across reconnects (sent
        again after each login) but not beyond this connection. The room's AWAY echo confirms it.

        Raises:
            LocalProtocolError: the reason is longer than `MAX_AWAY_REASON_BYTES`.
        """
        message = m.SetAway(0) if reason is None else m.SetAway(1, reason)  # validates the reason
        if reason == self._away_reason:
            return
        self._away_reason = reason
        if self._phase is Phase.ONLINE:
            self._send(message)

    def ignore(self, name: str) -> bool:
        """Hide room and private messages from `name` from now on; False if already ignored.

        Raises:
            LocalProtocolError: `name` breaks the name rule.
        """
        if not m.is_valid_name(name):
            raise LocalProtocolError(f"invalid name {name!r}: {m.NAME_RULE}", ErrorCode.INVALID_NAME)
        key = m.name_key(name)
        if key in self._ignored:
            return False
        self._ignored[key] = name
        return True

    def unignore(self, name: str) -> bool:
        """Show `name`'s messages again; False if they were not ignored."""
        return self._ignored.pop(m.name_key(name), None) is not None

    def quit(self, now: float) -> None:
        """Leave: tell the server (so the room sees it at once), then close."""
        if self._phase in (Phase.CLOSING, Phase.CLOSED):
            return
        connecting = self._phase in (Phase.HANDSHAKE, Phase.LOGIN) and bool(self._outbox)
        if self._phase is Phase.ONLINE or (self._logged_in_once and self._outbox) or connecting:
            # Typed-ahead messages go first: BYE leaves once the outbox is confirmed, or the drain
            # time is up, so "hello" followed at once by QUIT still reaches the room.
            self._quit_requested = True
            # Typed before the login finished ("hello", then QUIT at once): log in first.
            wait_login = 0.0 if self._logged_in_once else self.config.connect_timeout_s
            self._quit_deadline = now + self.config.quit_drain_s + wait_login
            self._maybe_send_bye(now)
        else:
            self._close("quit", 0)

    def _maybe_send_bye(self, now: float) -> None:
        if not self._quit_requested or self._phase is not Phase.ONLINE:
            return
        if self._outbox and self._quit_deadline is not None and now < self._quit_deadline:
            return
        self._send(m.Bye())
        self._phase = Phase.CLOSING
        self._quit_deadline = now + self.config.quit_linger_s

    def close(self, reason: str = "closed") -> None:
        """Stop at once, without telling the server (it will time us out)."""
        if self._phase is not Phase.CLOSED:
            self._close(reason, 0)

    # ------------------------------------------------------------ I/O surface

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Feed one datagram from the server. Hostile or broken input is dropped, never raised."""
        if self._phase in (Phase.IDLE, Phase.CLOSED):
            return
        payload = self._channel.receive_datagram(data, now)
        self._drain_channel_events(now)
        if payload is None:
            return
        try:
            frames = self._link.receive_packet(payload, now)
        except DecodeError:
            return
        self._heard(now)
        for frame in frames:
            try:
                message = decode_message(frame.kind, frame.body)
            except DecodeError:
                continue
            self._handle(message, now)
        if self._phase is Phase.CLOSING and self._link.idle:
            self._close("quit", 0)

    def datagrams_to_send(self, now: float) -> list[bytes]:
        out = self._channel.datagrams_to_send()
        if (
            self._channel.established
            and self._phase in (Phase.LOGIN, Phase.ONLINE, Phase.CLOSING)
            # After a move the old session's relay is elsewhere: nothing of it goes to the new one
            # (22.3), only the HELLOs, until the new session is up.
            and self._session_address == self._address
        ):
            if self._phase is Phase.ONLINE:
                self._fill_window(now)
                if self._requests_unsent:
                    self._send_requests()
                if self._book.acks_unsent:
                    self._send_acks()
                if self._server_files():
                    self._send_files(now)
                self._maybe_send_bye(now)
            if (
                self._phase is Phase.ONLINE
                and self._link.idle
                and (self._link.last_sent_at is None or now >= self._link.last_sent_at + self._keepalive_s)
            ):
                self._send(m.Ping())
                self._link.request_ack_now()
            idle_before = self._link.in_flight == 0
            for packet in self._link.packets_to_send(now):
                out.append(self._channel.seal(packet, now))
            if idle_before and self._link.in_flight:
                self._waiting_since = now  # from now on, silence from the server means something
        return out

    def next_timer(self) -> float | None:
        if (
            self._phase is Phase.ONLINE
            and not self._quit_requested
            and self._reconnect_at is None
            and self._paused_until is None
            and self._channel.established
            and self._channel.next_timer() is None
        ):
            return self._online_deadline()
        return self._any_deadline()

    def _online_deadline(self) -> float | None:
        """`_any_deadline` for the state a chatting client is in nearly all the time, without the
        list: the owner asks after every datagram, so this is on the path of every message."""
        link = self._link
        deadline = link.next_timer()
        if link.idle:
            base = link.last_sent_at if link.last_sent_at is not None else self._last_heard
            other: float | None = base + self._keepalive_s
        else:
            quiet = self._quiet_since()
            other = None if self._rehandshaking else quiet + self.config.rehandshake_s
            if self._state is ev.ConnectionState.CONNECTED:
                stall = quiet + self.config.stall_s
                if other is None or stall < other:
                    other = stall
        if deadline is None or (other is not None and other < deadline):
            return other
        return deadline

    def _any_deadline(self) -> float | None:
        if self._phase in (Phase.IDLE, Phase.CLOSED):
            return None
        deadlines = [self._channel.next_timer()]
        if self._channel.established and self._phase in (Phase.LOGIN, Phase.ONLINE, Phase.CLOSING):
            deadlines.append(self._link.next_timer())  # only while packets can actually go out
        if self._phase in (Phase.HANDSHAKE, Phase.LOGIN) and not self._logged_in_once:
            deadlines.append(self._connect_deadline)
        if self._phase is Phase.LOGIN and self._logged_in_once and not self._rehandshaking:
            deadlines.append(self._quiet_since() + self.config.rehandshake_s)
        if self._phase is Phase.ONLINE:
            # Each deadline only while it can still act, or the owner would spin on a past time.
            if self._link.idle:
                base = self._link.last_sent_at if self._link.last_sent_at is not None else self._last_heard
                deadlines.append(base + self._keepalive_s)
            else:
                if self._state is ev.ConnectionState.CONNECTED:
                    deadlines.append(self._quiet_since() + self.config.stall_s)
                if not self._rehandshaking:
                    deadlines.append(self._quiet_since() + self.config.rehandshake_s)
        if self._reconnect_at is not None:
            deadlines.append(self._reconnect_at)
        if self._move_at is not None:
            deadlines.append(self._move_at)
        if self._paused_until is not None and self._phase is Phase.ONLINE:
            deadlines.append(self._paused_until)
        if self._phase is Phase.CLOSING or self._quit_requested:
            deadlines.append(self._quit_deadline)
        live = [d for d in deadlines if d is not None]
        return min(live) if live else None

    def handle_timer(self, now: float) -> None:
        if self._phase is Phase.CLOSED:
            return
        if self._reconnect_at is not None and now >= self._reconnect_at:
            self._reconnect_at = None
            self._start_handshake(now)
        if self._move_at is not None and now >= self._move_at:
            self._move_relay(now)
        self._channel.handle_timer(now)
        self._link.handle_timer(now)
        self._drain_channel_events(now)
        if self._phase is Phase.CLOSING and self._quit_deadline is not None:
            if now >= self._quit_deadline:
                self._close("quit", 0)
            return
        if self._quit_requested and self._quit_deadline is not None and now >= self._quit_deadline:
            if self._phase is Phase.ONLINE:
                self._maybe_send_bye(now)
            else:
                self._close("quit", 0)
            return
        if not self._logged_in_once and self._phase in (Phase.HANDSHAKE, Phase.LOGIN):
            if self._connect_deadline is not None and now >= self._connect_deadline:
                self._events.append(ev.ConnectFailed(self._no_answer()))
                self._close("server not answering", 0)
            return
        # After the first login: ONLINE with something unanswered, or a LOGIN (re-login) unanswered.
        if self._phase is Phase.LOGIN or (self._phase is Phase.ONLINE and not self._link.idle):
            # Compare against the same sums next_timer() returned, or float rounding could leave
            # a deadline that has come but never fires.
            if (
                now >= self._quiet_since() + self.config.stall_s
                and self._state is ev.ConnectionState.CONNECTED
            ):
                self._set_state(ev.ConnectionState.RECONNECTING, "server not answering")
            if now >= self._quiet_since() + self.config.rehandshake_s and not self._rehandshaking:
                self._rehandshake(now)

    def events(self) -> Iterator[ev.Event]:
        while self._events:
            yield self._events.popleft()

    # ------------------------------------------------------------ internals

    def _queue_text(
        self, text: str, now: float, *, action: bool, to: str | None, room: str | None = None
    ) -> list[int]:
        room = self.room if room is None else room
        if self._phase is Phase.CLOSED:
            raise LocalProtocolError("the connection is closed")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise LocalProtocolError("text is not valid Unicode", ErrorCode.BAD_MESSAGE) from None
        if size > m.MAX_LONG_TEXT_BYTES:
            raise LocalProtocolError(
                f"message too long: {size / 1024:.1f} KB, the limit is {m.MAX_LONG_TEXT_BYTES // 1024} KB",
                ErrorCode.TOO_LONG,
            )
        if size > m.MAX_TEXT_BYTES and self._server_caps is not None and not self._server_long():
            pieces = split_text(text)  # an older server: separate messages, as before long ones
        else:
            pieces = [text] if text else []
        if not pieces:
            raise LocalProtocolError("empty message", ErrorCode.BAD_MESSAGE)
        ids = []
        for piece in pieces:
            self._msg_counter += 1
            msg_id = self._msg_base | (self._msg_counter & 0xFFFF_FFFF)
            out = _Outgoing(msg_id, piece, room, action, to)
            out.messages()  # validate now
            self._outbox[msg_id] = out
            ids.append(msg_id)
            self._events.append(ev.MessageQueued(msg_id, room, piece, action, to))
        return ids

    def _server_long(self) -> bool:
        return self._server_caps is not None and bool(self._server_caps & m.CAP_LONG_MESSAGES)

    def _server_files(self) -> bool:
        caps = self._server_caps
        return caps is not None and bool(caps & m.CAP_FILES) and bool(self.config.capabilities & m.CAP_FILES)

    def _check_files_supported(self) -> None:
        if self._phase is Phase.CLOSED:
            raise LocalProtocolError("the connection is closed")
        if (self._server_caps is not None and not self._server_files()) or not (
            self.config.capabilities & m.CAP_FILES
        ):
            raise LocalProtocolError(_NO_FILES)

    def _send_files(self, now: float) -> None:
        """File requests not sent on this session, then FILE_CHUNKs while the link holds fewer
        than `file_window` of them: in its bulk queue, behind every chat frame (21.7)."""
        files = self.files
        for message in files.requests_to_send(iter(self._next_request_id, None)):
            self._send(message)
        # The link's delay-based bulk window may open past ours on a fast path: follow it (21.7).
        link = self._link
        budget = max(self.config.file_window, link.bulk_limit) - link.bulk_pending
        burst = min(budget, self.config.file_frames_per_flush - link.bulk_queued)
        self._file_frames_waiting = False
        if burst > 0:
            chunks = files.chunks(burst)
            if chunks:
                for chunk in chunks:
                    link.send(chunk.KIND, encode_message(chunk), bulk=True)  # behind chat (21.7)
                files.progress_due(now)
                self._file_frames_waiting = len(chunks) == burst < budget

    @property
    def file_frames_waiting(self) -> bool:
        """The windows would have taken more FILE_CHUNKs than the last `datagrams_to_send` queued
        (`file_frames_per_flush`): call it again soon, once what arrived meanwhile is handled."""
        return self._file_frames_waiting

    def _server_rooms(self) -> bool:
        """The server has rooms and we said we do (18.1): room requests and news are allowed."""
        caps = self._server_caps
        return caps is not None and bool(caps & m.CAP_ROOMS) and bool(self.config.capabilities & m.CAP_ROOMS)

    def _check_rooms_supported(self) -> None:
        if self._phase is Phase.CLOSED:
            raise LocalProtocolError("the connection is closed")
        if (self._server_caps is not None and not self._server_rooms()) or not (
            self.config.capabilities & m.CAP_ROOMS
        ):
            raise LocalProtocolError(ONE_ROOM)

    def _server_classroom(self) -> bool:
        """The server has the classroom and we said we do (20.1)."""
        caps = self._server_caps
        return (
            self._server_rooms()
            and caps is not None
            and bool(caps & m.CAP_CLASSROOM)
            and bool(self.config.capabilities & m.CAP_CLASSROOM)
        )

    def _check_classroom(self, room: str) -> None:
        """Refuse, in one line, a classroom request this server or room cannot take."""
        self._check_rooms_supported()
        if not self.config.capabilities & m.CAP_CLASSROOM or (
            self._server_caps is not None and not self._server_classroom()
        ):
            raise LocalProtocolError(NO_CLASSROOM)
        self._check_held(room)

    def _check_held(self, room: str) -> None:
        """Refuse, in one line, what names a room we are not in (once the server said which we are)."""
        if not m.is_valid_room(room):
            raise LocalProtocolError(f"invalid room name {room!r}: room names are {m.ROOM_RULE}",
                                     ErrorCode.INVALID_ROOM)  # fmt: skip
        if self._server_caps is None or room in self._book.held:
            return  # before the first login: queued, the server will say
        if not self._server_rooms():
            raise LocalProtocolError(ONE_ROOM)
        raise LocalProtocolError(f"you are not in #{room}: /join {room} first", ErrorCode.NO_SUCH_ROOM)

    def _say_room(self, room: str | None) -> str:
        if room is None:
            room = self.room
            if self._server_caps is not None and self._server_rooms() and room not in self._book.held:
                raise LocalProtocolError("you are in no room: /join ROOM first", ErrorCode.NO_SUCH_ROOM)
            return room
        self._check_held(room)
        return room

    def _switch(self, room: str, *, joined: bool) -> None:
        """Move the current room by ourselves (a JOIN done, the current room left) and say so."""
        if room != self.room:
            self.room = room
            self._events.append(ev.CurrentRoomChanged(room, joined))

    def _check_requests_supported(self, what: str) -> None:
        if self._phase is Phase.CLOSED:
            raise LocalProtocolError("the connection is closed")
        if self._server_caps is not None and not self._server_long():
            raise LocalProtocolError(f"this server does not offer {what}: it runs an older labchat")

    def _next_request_id(self) -> int:
        self._request_counter = self._request_counter % 0xFFFF_FFFF + 1
        return self._request_counter

    def _request(self, message: m.HistoryRequest | m.SearchRequest | RoomRequest) -> int:
        self._requests[message.request_id] = _Request(message)
        self._requests_unsent = True
        return message.request_id

    def _send_requests(self) -> None:
        self._requests_unsent = False
        for request in self._requests.values():
            if not request.sent:
                self._send(request.message)
                request.sent = True

    def _send_acks(self) -> None:
        acks, self._book.acks_unsent = self._book.acks_unsent, {}
        if self._server_rooms():
            for room, announcement_id in acks.items():
                self._send(m.AnnouncementSeen(room, announcement_id))

    def _split_long_outbox(self) -> None:
        """The server turned out to be older than long messages: send them as separate short ones.

        The first piece keeps the entry's id (the UI shows it as that line); the others are new
        messages, announced with `MessageQueued` as if typed one after the other.
        """
        if not any(utf8_len(o.text) > m.MAX_TEXT_BYTES for o in self._outbox.values()):
            return
        outbox: dict[int, _Outgoing] = {}
        for out in self._outbox.values():
            if utf8_len(out.text) <= m.MAX_TEXT_BYTES:
                outbox[out.msg_id] = out
                continue
            first, *rest = split_text(out.text)
            out.text, out.sent = first, False
            outbox[out.msg_id] = out
            for piece in rest:
                self._msg_counter += 1
                msg_id = self._msg_base | (self._msg_counter & 0xFFFF_FFFF)
                outbox[msg_id] = _Outgoing(msg_id, piece, out.room, out.action, out.to)
                self._events.append(ev.MessageQueued(msg_id, out.room, piece, out.action, out.to))
        self._outbox = outbox

    def _fill_window(self, now: float) -> None:
        """Send outbox entries while fewer than `max_unconfirmed` are awaiting confirmation."""
        if self._paused_until is not None:
            if now < self._paused_until:
                return
            self._paused_until = None
        if not self._outbox:
            return  # the usual case: this runs after every datagram received
        in_flight = sum(1 for o in self._outbox.values() if o.sent)
        if in_flight >= self.config.max_unconfirmed:
            return
        for out in self._outbox.values():
            if not out.sent:
                for message in out.messages():
                    self._send(message)
                out.sent = True
                in_flight += 1
                if in_flight >= self.config.max_unconfirmed:
                    break

    def _send(self, message: m.Message) -> None:
        self._link.send(message.KIND, encode_message(message))

    def _quiet_since(self) -> float:
        """Since when the server owes us an answer and has said nothing: a quiet link while we had
        nothing outstanding is not a silent server."""
        return max(self._last_heard, self._waiting_since)

    def _heard(self, now: float) -> None:
        self._last_heard = now
        if (
            self._phase is Phase.ONLINE
            and self._state is ev.ConnectionState.RECONNECTING
            and not self._rehandshaking
        ):
            self._set_state(ev.ConnectionState.CONNECTED, "", self.rtt_s)

    def _set_state(self, state: ev.ConnectionState, detail: str = "", rtt: float | None = None) -> None:
        if state is self._state and state is not ev.ConnectionState.CONNECTED:
            return
        self._state = state
        self._events.append(ev.StateChanged(state, detail, rtt))

    def _close(self, reason: str, code: int) -> None:
        self._phase = Phase.CLOSED
        self._move_at = None
        self._set_state(ev.ConnectionState.CLOSED, reason)
        self._events.append(ev.Closed(reason, code))

    def _rehandshake(self, now: float, delay_s: float = 0.0) -> None:
        """Start a new secure session (now, or after `delay_s`); the outbox and `last_seq` carry the
        conversation across."""
        self._rehandshaking = True
        self._set_state(ev.ConnectionState.RECONNECTING, "reconnecting")
        if delay_s > 0:
            self._reconnect_at = now + delay_s
        else:
            self._start_handshake(now)

    def _start_handshake(self, now: float) -> None:
        """A HELLO to the current address, and the deadline to move on should nobody answer it."""
        self._move_at = now + self.config.failover_s if len(self.addresses) > 1 else None
        self._channel.start(now)

    def _move_relay(self, now: float) -> None:
        """The current relay let a handshake go unanswered for `failover_s`: try the next address
        (22.3). The first connection gives each address one turn; later, the client goes round the
        list until a relay answers."""
        addresses = self.addresses
        keys = [_address_key(a) for a in addresses]
        if len(addresses) < 2 or (not self._logged_in_once and self._first_tries >= len(addresses)):
            self._move_at = None  # the first connection's deadline ends it
            return
        current = _address_key(self._address) if self._address is not None else None
        index = keys.index(current) + 1 if current in keys else 0
        self._address = addresses[index % len(addresses)]
        if not self._logged_in_once:
            self._first_tries += 1
        self._start_handshake(now)

    def _no_answer(self) -> str:
        count = len(self.addresses)
        if count > 1:
            return f"no answer from any of the server's {count} addresses"
        return f"no answer from the server within {self.config.connect_timeout_s:g} s"

    def _drain_channel_events(self, now: float) -> None:
        for event in self._channel.events():
            if isinstance(event, ch.HandshakeCompleted):
                self._on_handshake(event, now)
            elif isinstance(event, ch.ServerKeyChanged):
                self._events.append(ev.ServerKeyChanged(event.expected_fingerprint, event.actual_fingerprint))
                self._close("the server's key has changed", ErrorCode.PROTOCOL_VIOLATION)
            elif (
                isinstance(event, ch.ResetReceived)
                and self._phase in (Phase.ONLINE, Phase.LOGIN)
                and not self._rehandshaking
            ):
                self._rehandshake(now)

    def _on_handshake(self, event: ch.HandshakeCompleted, now: float) -> None:
        self._last_heard = now
        self._move_at = None  # this relay answers: stay
        self._session_address = self._address
        if self._pinned is None:
            self._pinned = event.server_key
            self._events.append(ev.ServerKeyTrusted(event.fingerprint, event.first_contact))
            if self.config.confirm_new_key and event.first_contact and not self._logged_in_once:
                self._phase = Phase.AWAIT_TRUST
                return
        self._start_login(now)

    def _start_login(self, now: float) -> None:
        """(Re)start the session: a fresh link, LOGIN first, then every unconfirmed message in order."""
        self._link = ReliableLink(self.config.link)
        self._phase = Phase.LOGIN
        self._rehandshaking = False  # the new session is up; if it goes quiet too, start over
        flags = (0 if self._register else m.LOGIN_NO_REGISTER) | self.config.capabilities
        room, resume_seq, cursors = self._book.login_rooms(self.room)
        if not self._server_rooms():
            cursors = ()  # the first login, or a server with one room: one cursor says it all
        self._send(
            m.Login(self.user, self._password, room, resume_seq, flags, self._ticket, cursors, self.seat)
        )
        for out in self._outbox.values():
            out.sent = False
        # A message cut off with the old link is sent again whole (catch-up, or our own resend).
        self._room_parts.reset()
        self._private_parts.reset()
        self._history_parts.reset()
        for request in self._requests.values():
            request.sent = False
            request.entries.clear()
            request.hits.clear()
        self._requests_unsent = bool(self._requests)
        self.files.new_session()  # offers sent again (to learn where to resume), downloads asked again

    def _handle(self, message: m.Message, now: float) -> None:
        handler = _HANDLERS.get(type(message))
        if handler is not None:
            handler(self, message, now)

    def _on_login_ok(self, msg: m.LoginOk, now: float) -> None:
        if self._phase is not Phase.LOGIN:
            return
        resumed = self._logged_in_once
        if msg.client_timeout_ms:
            # Stay well inside the server's idle timeout, whatever our own default says.
            limit = min(self.config.keepalive_s, msg.client_timeout_ms / 3000)
            self._keepalive_s = limit * self._keepalive_spread
        self.user = msg.user
        self._phase = Phase.ONLINE
        self._logged_in_once = True
        self._server_caps = msg.flags
        if not self._server_long():
            self._split_long_outbox()
            for request_id, request in list(self._requests.items()):
                if isinstance(request.message, (m.HistoryRequest, m.SearchRequest)):
                    self._finish_request(request_id, _OLDER_SERVER, 0)
        if not self._server_files():
            self.files.unsupported(_NO_FILES)
        rooms = self._server_rooms()
        if rooms and not self._server_classroom():
            for request_id, request in list(self._requests.items()):
                if isinstance(request.message, ClassRequest):  # a server without the classroom
                    self._finish_request(request_id, NO_CLASSROOM, 0)
        if self._address is not None and self._login_address is not None and (
            _address_key(self._address) != _address_key(self._login_address)
        ):
            self._events.append(ev.RelayMoved(*self._address))  # before "reconnected": where to
        self._login_address = self._address
        self._events.append(
            ev.LoggedIn(
                msg.user, msg.room, msg.server_name, bool(msg.registered), resumed, rooms,
                bool(msg.flags & m.LOGIN_OK_GUEST),
            )
        )  # fmt: skip
        if rooms and not resumed:
            # The server says which rooms we are in, one ROOM_STATE each; the first is current.
            self._book.clear_held()
            if m.is_valid_room(msg.room):
                self._switch(msg.room, joined=False)
        elif not rooms:
            self._one_room()
        self._rehandshaking = False
        self._relogin_attempts = 0
        self._set_state(ev.ConnectionState.CONNECTED, "", self.rtt_s)
        if self._away_reason is not None:
            self._send(m.SetAway(1, self._away_reason))  # away survives a reconnect
        elif resumed:
            self._send(m.SetAway(0))  # came back while disconnected: the server may have kept it

    def _one_room(self) -> None:
        """A server without rooms (18.12): we are in the LOGIN's room, and room requests fail."""
        for room in [r for r in self._book.held if r != self.room]:
            self._book.drop(room)  # the server was replaced by one without rooms
            self._events.append(ev.RoomLeft(room, 0, "", ONE_ROOM))
        self._book.hold(self.room)
        for request_id, request in list(self._requests.items()):
            if not isinstance(request.message, (m.HistoryRequest, m.SearchRequest)):
                self._finish_request(request_id, ONE_ROOM, 0)

    def _on_login_failed(self, msg: m.LoginFailed, now: float) -> None:
        text = neutralize(msg.text)
        if self._logged_in_once and msg.code in (ErrorCode.LOGIN_THROTTLED, ErrorCode.SERVER_BUSY):
            # "Not now", to a user who was in: a throttle must never log the rightful user out
            # (somebody guessing at the name, a class logging in at once). Try again, and say so.
            backoff = min(
                self.config.relogin_max_s, self.config.relogin_min_s * 2.0**self._relogin_attempts
            )
            delay = max(msg.retry_after_ms / 1000, backoff if not msg.retry_after_ms else 0.0)
            delay = max(delay, self.config.relogin_min_s)
            self._relogin_attempts += 1
            self._events.append(ev.LoginRetrying(msg.code, text, delay))
            self._rehandshake(now, delay)
            return
        self._events.append(ev.LoginRefused(msg.code, text))
        self._close(text, msg.code)

    def _on_login_queued(self, msg: m.LoginQueued, now: float) -> None:
        if self._phase is not Phase.LOGIN:
            return
        if self._connect_deadline is not None:
            # The server is there and working through a queue: keep waiting as long as it says so.
            self._connect_deadline = max(self._connect_deadline, now + self.config.connect_timeout_s)
        self._events.append(ev.LoginQueued(msg.position, msg.eta_ms / 1000))

    def _on_ticket(self, msg: m.Ticket, now: float) -> None:
        self._ticket = msg.ticket

    def _on_relays(self, msg: m.Relays, now: float) -> None:
        """The server's other relays (22.2): tried after the addresses we were given."""
        if self.config.capabilities & m.CAP_FAILOVER:
            self._learned = list(msg.relays)

    def _on_accepted(self, msg: m.Accepted, now: float) -> None:
        out = self._outbox.pop(msg.msg_id, None)
        if out is None:
            return
        if msg.seq and out.to is None:
            self._book.confirmed(out.room, msg.seq)
        self._events.append(
            ev.MessageDelivered(out.msg_id, out.room, msg.seq, msg.ts_ms / 1000, out.text, out.action, out.to)
        )

    def _on_rejected(self, msg: m.Rejected, now: float) -> None:
        if msg.code in _NOT_NOW and msg.msg_id in self._outbox:
            # Not refused for good: hold the outbox back and send it again when the server says.
            self._outbox[msg.msg_id].sent = False
            self._paused_until = now + msg.retry_after_ms / 1000
            return
        out = self._outbox.pop(msg.msg_id, None)
        if out is not None:
            room = out.room if out.to is None else ""
            text = neutralize(msg.text)
            self._events.append(ev.MessageFailed(out.msg_id, text, out.text, out.to, room, msg.code))
            if msg.code == ErrorCode.NO_SUCH_ROOM and room in self._book.held and self._server_rooms():
                # We were removed while away (a kick during a reconnect): stop holding the room.
                self._left(room, ev.RoomLeft(room, ErrorCode.NO_SUCH_ROOM, "", text))

    def _on_room_message(self, msg: m.RoomMessage, now: float) -> None:
        if not self._book.advance(msg.room, msg.seq):
            return  # seen already (a replay after reconnecting): exactly once, per room
        user = self.user  # names are ASCII: equal keys mean equal lengths, a cheap first test
        own = msg.user == user or (len(msg.user) == len(user) and m.name_key(msg.user) == m.name_key(user))
        action = bool(msg.flags & m.FLAG_ACTION)
        if self._ignored and not own and m.name_key(msg.user) in self._ignored:
            return  # /ignore: counted as shown (last_seq), never reported
        if own and msg.msg_id in self._outbox:
            # Our own message, committed before a reconnect cut off its confirmation.
            out = self._outbox.pop(msg.msg_id)
            self._events.append(
                ev.MessageDelivered(out.msg_id, out.room, msg.seq, msg.ts_ms / 1000, out.text, action, None)
            )
            return
        self._events.append(
            ev.MessageReceived(
                msg.room, msg.seq, msg.ts_ms / 1000, neutralize(msg.user), neutralize_text(msg.text),
                action, bool(msg.flags & m.FLAG_HISTORY), own,
            )
        )  # fmt: skip

    def _on_private(self, msg: m.Private, now: float) -> None:
        held = bool(msg.flags & m.FLAG_HELD)
        if held:
            # Held messages are delivered at least once (a crash between sending and the ack sends
            # them again): drop one we have shown in this run.
            key = (m.name_key(msg.sender), msg.ts_ms, msg.text)
            if key in self._held_seen:
                return
            self._held_seen[key] = None
            if len(self._held_seen) > HELD_SEEN:
                self._held_seen.popitem(last=False)
        if self._ignored and m.name_key(msg.sender) in self._ignored:
            return
        self._events.append(
            ev.PrivateReceived(
                neutralize(msg.sender), neutralize(msg.to), msg.ts_ms / 1000, neutralize_text(msg.text),
                bool(msg.flags & m.FLAG_ACTION), held, bool(msg.flags & m.FLAG_TO_OPS),
            )
        )  # fmt: skip

    def _on_away(self, msg: m.Away, now: float) -> None:
        user, reason = neutralize(msg.user), neutralize(msg.reason)
        if msg.listing:
            if msg.away:  # part of the room's online list that follows
                self._away_listing.setdefault(msg.room, {})[user] = reason
            return
        self._events.append(ev.UserAway(msg.room, user, bool(msg.away), reason, msg.ts_ms / 1000))

    def _on_joined(self, msg: m.Joined, now: float) -> None:
        seat = neutralize(msg.seat) if self._server_classroom() else ""
        self._events.append(ev.UserJoined(msg.room, neutralize(msg.user), msg.ts_ms / 1000, seat))

    def _on_left(self, msg: m.Left, now: float) -> None:
        self._events.append(
            ev.UserLeft(msg.room, neutralize(msg.user), msg.ts_ms / 1000, neutralize(msg.reason))
        )

    def _on_presence(self, msg: m.Presence, now: float) -> None:
        parts = self._presence_parts.setdefault(msg.room, [])
        modes = msg.modes if self._server_rooms() else ""
        seats = msg.seats if self._server_classroom() else ()
        for i, user in enumerate(msg.users):
            # 18.7: one character per name; a `modes` shorter than `users` leaves the rest plain.
            # 20.2: one seat per name too ("" unknown).
            seat = neutralize(seats[i]) if i < len(seats) else ""
            parts.append((neutralize(user), m.member_mode_bits(modes[i]) if i < len(modes) else 0, seat))
        if msg.more:
            return  # the list continues in the next PRESENCE
        del self._presence_parts[msg.room]
        users = tuple(name for name, _, _ in parts)
        # The AWAYs listed since the room's previous PRESENCE are the whole truth about who is away.
        listed = self._away_listing.pop(msg.room, {})
        away = {u: listed[u] for u in users if u in listed}
        held = self._book.held.get(msg.room)
        if held is not None:
            held.set_modes([(name, b) for name, b, _ in parts])
        bits = {name: b for name, b, _ in parts if b}
        where = {name: seat for name, _, seat in parts if seat}
        self._events.append(
            ev.PresenceUpdated(
                msg.room, users, requested=msg.requested != 0, away=away, modes=bits, seats=where
            )
        )

    def _on_message_part(self, msg: m.MessagePart, now: float) -> None:
        try:
            text = self._room_parts.feed(msg.seq, msg.index, msg.count, msg.text)
        except RemoteProtocolError:
            return  # a server bug; the message is not shown rather than shown cut
        if text is not None:
            whole = m.RoomMessage(msg.room, msg.seq, msg.ts_ms, msg.user, text, msg.flags, msg.msg_id)
            self._on_room_message(whole, now)

    def _on_private_part(self, msg: m.PrivatePart, now: float) -> None:
        try:
            text = self._private_parts.feed((msg.sender, msg.ts_ms), msg.index, msg.count, msg.text)
        except RemoteProtocolError:
            return
        if text is not None:
            self._on_private(m.Private(msg.sender, msg.to, msg.ts_ms, text, msg.flags), now)

    def _on_history_entry(self, msg: m.HistoryEntry, now: float) -> None:
        request = self._requests.get(msg.request_id)
        if request is None:
            return  # an answer to a request from an earlier session, already asked again
        try:
            text = self._history_parts.feed((msg.request_id, msg.seq), msg.index, msg.count, msg.text)
        except RemoteProtocolError:
            return
        if text is None:
            return
        own = m.name_key(msg.user) == m.name_key(self.user)
        request.entries.append(
            ev.MessageReceived(
                msg.room, msg.seq, msg.ts_ms / 1000, neutralize(msg.user), neutralize_text(text),
                bool(msg.flags & m.FLAG_ACTION), True, own,
            )
        )  # fmt: skip

    def _on_search_hit(self, msg: m.SearchHit, now: float) -> None:
        request = self._requests.get(msg.request_id)
        if request is not None:
            request.hits.append(
                ev.SearchHit(
                    msg.room, msg.seq, msg.ts_ms / 1000, neutralize(msg.user), neutralize_text(msg.snippet),
                    bool(msg.flags & m.FLAG_ACTION),
                )
            )  # fmt: skip

    def _on_request_done(self, msg: m.RequestDone, now: float) -> None:
        if self.files.on_request_done(msg, now):
            return
        error = (neutralize(msg.text) or f"refused (error {msg.code})") if msg.code else ""
        self._finish_request(msg.request_id, error, msg.more, msg.code)

    def _finish_request(self, request_id: int, error: str, more: int, code: int = 0) -> None:
        request = self._requests.pop(request_id, None)
        if request is None:
            return
        ask = request.message
        if isinstance(ask, m.HistoryRequest):
            page = tuple(request.entries)
            if page:
                self._book.paged_back(ask.room, page[0].seq)
            self._events.append(ev.HistoryPage(ask.room, page, bool(more), ask.before_seq, error, request_id))
        elif isinstance(ask, m.SearchRequest):
            self._events.append(ev.SearchResults(ask.query, tuple(request.hits), bool(more), error, ask.room))
        elif isinstance(ask, m.ListRooms):
            if error:
                self._events.append(ev.RequestFailed("list", "", code, error, request_id))
            else:
                self._events.append(ev.RoomList(tuple(request.infos), bool(more), "", request_id))
        else:
            self._finish_room_request(request_id, request, error, code)

    def _finish_room_request(self, request_id: int, request: _Request, error: str, code: int) -> None:
        ask = request.message
        assert not isinstance(ask, (m.HistoryRequest, m.SearchRequest, m.ListRooms))
        if not error:
            if isinstance(ask, m.JoinRoom) and ask.room in self._book.held and not request.switched:
                self._switch(ask.room, joined=True)  # joined before (at login): switch all the same
            elif isinstance(ask, m.PollVote):
                # A member hears of a poll only when it opens and closes: our vote is ours to show.
                shown = self._class.voted(ask.room, ask.poll_id, ask.choice)
                if shown is not None:
                    self._events.append(shown)
            return
        if isinstance(ask, m.PartRoom) and code == ErrorCode.NO_SUCH_ROOM and ask.room in self._book.held:
            # Asked again after a reconnect, the first PART had already left: so much the better.
            self._left(ask.room, ev.RoomLeft(ask.room))
            return
        self._events.append(ev.RequestFailed(_REQUEST_WORDS[type(ask)], ask.room, code, error, request_id))

    # ------------------------------------------------------------ rooms (docs/protocol.md 18)

    def _on_room_state(self, msg: m.RoomState, now: float) -> None:
        state = self._book.state(msg) if self._server_rooms() else None
        if state is None:
            return
        self._events.append(state)
        if state.joined:
            for request in self._requests.values():
                if isinstance(request.message, m.JoinRoom) and request.message.room == msg.room:
                    request.switched = True
                    self._switch(msg.room, joined=True)  # before its history: lines typed now go there
                    break

    def _on_room_left(self, msg: m.RoomLeft, now: float) -> None:
        event = self._book.left(msg)
        if event is not None:
            self._left(msg.room, event)

    def _left(self, room: str, event: ev.RoomLeft) -> None:
        self._book.drop(room)
        self._class.drop(room)
        self._presence_parts.pop(room, None)
        self._away_listing.pop(room, None)
        self._events.append(event)
        if room == self.room and self._book.held:
            self._switch(self._book.rooms[-1], joined=False)  # the room joined last, as WeeChat does
        elif room == self.room:
            self._events.append(ev.CurrentRoomChanged("", False))

    def _on_room_info(self, msg: m.RoomInfo, now: float) -> None:
        request = self._requests.get(msg.request_id)
        if request is not None and isinstance(request.message, m.ListRooms):
            info = ev.RoomInfo(neutralize(msg.room), msg.online, neutralize(msg.topic), msg.modes)
            request.infos.append(info)

    def _on_room_event(self, msg: m.RoomEvent, now: float) -> None:
        if self._server_rooms():
            event = self._book.news(msg)
            if event.action in (m.Action.HAND_RAISED, m.Action.HAND_TAKEN, m.Action.HAND_LOWERED):
                self._class.hand_news(event)
            self._events.append(event)

    def _on_queue_entry(self, msg: m.QueueEntry, now: float) -> None:
        if self._server_classroom() and msg.room in self._book.held:
            event = self._class.queue_entry(msg)
            if event is not None:
                self._events.append(event)

    def _on_poll(self, msg: m.Poll, now: float) -> None:
        if self._server_classroom() and msg.room in self._book.held:
            self._events.append(self._class.poll(msg, now))

    def _on_announcement(self, msg: m.Announcement, now: float) -> None:
        event = self._book.announcement(msg) if self._server_rooms() else None
        if event is not None:
            self._events.append(event)

    def _on_announcement_tally(self, msg: m.AnnouncementTally, now: float) -> None:
        event = self._book.tally(msg) if self._server_rooms() else None
        if event is not None:
            self._events.append(event)

    # ------------------------------------------------------------ files (docs/protocol.md 21)

    def _on_file_state(self, msg: m.FileState, now: float) -> None:
        if self._server_files():
            self.files.on_state(msg, now)

    def _on_file_data(self, msg: m.FileData, now: float) -> None:
        if self._server_files():
            self.files.on_data(msg, now)

    def _on_file_offered(self, msg: m.FileOffered, now: float) -> None:
        if self._server_files():
            self.files.on_offered(msg, now)

    def _on_notice(self, msg: m.Notice, now: float) -> None:
        self._events.append(ev.ServerNotice(neutralize(msg.text), msg.code))

    def _on_closed(self, msg: m.Closed, now: float) -> None:
        text = neutralize(msg.text)
        if msg.code == ErrorCode.SERVER_SHUTDOWN:
            # The server may well come back (a restart): say so, and keep trying by ourselves.
            self._events.append(ev.ServerNotice(text, msg.code))
            self._rehandshake(now, self.config.shutdown_retry_s)
            return
        self._close(text, msg.code)


_HANDLERS: dict[type[m.Message], Callable[[ClientConnection, m.Message, float], None]] = {
    m.LoginOk: ClientConnection._on_login_ok,  # type: ignore[dict-item]
    m.LoginFailed: ClientConnection._on_login_failed,  # type: ignore[dict-item]
    m.LoginQueued: ClientConnection._on_login_queued,  # type: ignore[dict-item]
    m.Ticket: ClientConnection._on_ticket,  # type: ignore[dict-item]
    m.Relays: ClientConnection._on_relays,  # type: ignore[dict-item]
    m.Accepted: ClientConnection._on_accepted,  # type: ignore[dict-item]
    m.Rejected: ClientConnection._on_rejected,  # type: ignore[dict-item]
    m.RoomMessage: ClientConnection._on_room_message,  # type: ignore[dict-item]
    m.Private: ClientConnection._on_private,  # type: ignore[dict-item]
    m.Joined: ClientConnection._on_joined,  # type: ignore[dict-item]
    m.Left: ClientConnection._on_left,  # type: ignore[dict-item]
    m.Presence: ClientConnection._on_presence,  # type: ignore[dict-item]
    m.Notice: ClientConnection._on_notice,  # type: ignore[dict-item]
    m.Closed: ClientConnection._on_closed,  # type: ignore[dict-item]
    m.Away: ClientConnection._on_away,  # type: ignore[dict-item]
    m.MessagePart: ClientConnection._on_message_part,  # type: ignore[dict-item]
    m.PrivatePart: ClientConnection._on_private_part,  # type: ignore[dict-item]
    m.HistoryEntry: ClientConnection._on_history_entry,  # type: ignore[dict-item]
    m.SearchHit: ClientConnection._on_search_hit,  # type: ignore[dict-item]
    m.RequestDone: ClientConnection._on_request_done,  # type: ignore[dict-item]
    m.RoomState: ClientConnection._on_room_state,  # type: ignore[dict-item]
    m.RoomLeft: ClientConnection._on_room_left,  # type: ignore[dict-item]
    m.RoomInfo: ClientConnection._on_room_info,  # type: ignore[dict-item]
    m.RoomEvent: ClientConnection._on_room_event,  # type: ignore[dict-item]
    m.Announcement: ClientConnection._on_announcement,  # type: ignore[dict-item]
    m.AnnouncementTally: ClientConnection._on_announcement_tally,  # type: ignore[dict-item]
    m.QueueEntry: ClientConnection._on_queue_entry,  # type: ignore[dict-item]
    m.Poll: ClientConnection._on_poll,  # type: ignore[dict-item]
    m.FileState: ClientConnection._on_file_state,  # type: ignore[dict-item]
    m.FileData: ClientConnection._on_file_data,  # type: ignore[dict-item]
    m.FileOffered: ClientConnection._on_file_offered,  # type: ignore[dict-item]
}

