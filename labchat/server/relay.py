"""The relay server's core: sessions, logins, fan-out, rate limits and timers, without sockets.

`Relay` has the same surface as the client connection (aioquic's shape):

    relay.receive_datagram(data, addr, now)
    for check in relay.password_checks(): ...run it (off the event loop)... relay.complete_login(check, now)
    for datagram, addr in relay.iter_datagrams_to_send(now): sock.sendto(datagram, addr)
    relay.next_timer() / relay.handle_timer(now)

It does call the SQLite store, which is fast local I/O, but never a socket or the clock. Order of work in
`iter_datagrams_to_send` (`datagrams_to_send` is the same as a list): commit the messages that arrived
since the last call in one transaction (group commit), then fan them out and confirm them to their
senders, then pack each touched session's frames into as few datagrams as possible. Nobody, not even
the sender, hears of a message before it is on disk, so a confirmed message survives `kill -9` and a
seq number is never handed out twice.

A stalled client never holds the others back: fan-out stops queueing for a session whose backlog passes
`max_backlog_frames`; that session is fed from history (memory ring, then the store) as it drains.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..i18n import _
from ..protocol import messages as m
from ..protocol.channel import Address, ServerChannel
from ..protocol.errors import DecodeError, ErrorCode, LocalProtocolError, RemoteProtocolError
from ..protocol.parts import Reassembler
from ..protocol.reliability import LinkConfig, ReliableLink
from ..protocol.text import long_preview, over_limit, split_parts, truncate_utf8, utf8_len
from ..protocol.wire import decode_message, encode_message
from .accounts import LoginGate, LoginPolicy, PasswordCheck, RegistrationLimit
from .backplane import RETRY_AFTER_MS, ClusterBackplane, Outgoing
from .classroom import CLASSROOM_REQUEST_KINDS, CLASSROOM_REQUESTS, Classroom
from .files import REQUEST_KINDS as _FILE_REQUEST_KINDS
from .files import FilePolicy, Files
from .formatting import _escape, _excerpt, _fmt, _ms
from .logins import Logins
from .privates import HELD_TTL_S, MAX_HELD_PER_USER, PrivateMessages  # noqa: F401 (re-exported)
from .retention import RetentionPolicy
from .room import (
    MEMBERSHIP_EVENTS_BURST,
    MEMBERSHIP_EVENTS_PER_S,
    PRESENCE_REFRESH_CHUNK,
    PRESENCE_REFRESH_STEP_S,
    AwayState,
    MembershipFlow,
    RemoteMember,
    Room,
)
from .room_requests import RoomRequests
from .store import Store, StoredMessage, StoreError
from .tickets import TICKET_LIFETIME_S, TicketBook

if TYPE_CHECKING:
    from .cluster.exchange import Exchange, RemotePresence

log = logging.getLogger(__name__)

#: Message ids remembered in memory for deduplication (older ones are found in the store).
RECENT_IDS = 100_000


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Server policy. Every field has a command-line flag or a documented default (docs/protocol.md)."""

    #: Reliable-link knobs for every session.
    link: LinkConfig = field(default_factory=LinkConfig)
    #: A session silent for this long is gone: the room is told "X left (timed out)".
    client_timeout_s: float = 30.0
    #: Messages a newcomer is shown from history before live ones.
    history_on_join: int = 50
    #: Register unknown names on first login (True), or admit only existing accounts.
    registration_open: bool = True
    #: Shown to clients on login.
    server_name: str = "labchat"
    #: Token bucket per user: sustained messages per second...
    rate_per_s: float = 100.0
    #: ...and burst size. Over it, messages are held (in order) and released as tokens return.
    rate_burst: int = 500
    #: Messages held for a user over the rate before new ones are refused outright.
    max_held: int = 1024
    #: Frames queued for one session before it is switched to catch-up from history.
    max_backlog_frames: int = 2048
    #: Room messages kept in memory for catch-up.
    ring_size: int = 4096
    #: A session that said BYE is kept this long to acknowledge a retransmitted BYE.
    linger_s: float = 2.0
    #: How much history the database keeps (`--history-days`, `--history-max-mb`; retention.py).
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    #: JOINED/LEFT one by one up to this many membership changes per second per room (sustained)...
    membership_events_per_s: float = MEMBERSHIP_EVENTS_PER_S
    #: ...and bursts of this many; faster, one PRESENCE refresh per interval instead (room.py).
    membership_events_burst: int = MEMBERSHIP_EVENTS_BURST
    #: The login queue, the throttle and the registration bound (docs/protocol.md 17).
    login: LoginPolicy = field(default_factory=LoginPolicy)
    #: How long a resumption ticket is accepted.
    ticket_lifetime_s: int = TICKET_LIFETIME_S
    #: What LOGIN_OK announces the server understands (docs/protocol.md section 15.1). 0 answers as a
    #: version-1 server does, so that clients fall back to what such a server takes.
    capabilities: int = m.CAP_LONG_MESSAGES | m.CAP_ROOMS | m.CAP_CLASSROOM | m.CAP_FILES
    #: The class password (`--class-password`, docs/protocol.md 18.11): LOGINs with it for names that
    #: are not accounts come in as guests, and LOGIN no longer registers accounts. None: off.
    class_password: str | None = field(default=None, repr=False)
    #: Files (section 21, files.py): largest file, quota, retention, where they are kept.
    files: FilePolicy = field(default_factory=FilePolicy)
    #: Several relays (docs/protocol.md 22): the client addresses of this server's other relays, sent
    #: in RELAYS to clients that can move (CAP_FAILOVER). A cluster's directory keeps the list up to
    #: date through `Relay.set_relay_addresses`; a non-empty list here also marks the relay as one of
    #: several from the start.
    relay_addresses: tuple[tuple[str, int], ...] = ()
    #: The address clients should use for this relay (`--advertise`), when it is not the bound one.
    advertise: tuple[str, int] | None = None


@dataclass(eq=False, slots=True)
class Session:
    """One client's session on the server (keyed by the channel's session id)."""

    sid: bytes
    addr: Address
    link: ReliableLink
    last_heard: float
    user: str | None = None
    #: The rooms it is in, in the order it joined them (one for a version-1 session, 18.12).
    rooms: dict[str, Room] = field(default_factory=dict)
    login_pending: bool = False
    closing_at: float | None = None
    timer_at: float | None = None
    timeout_check_at: float = 0.0
    tokens: float = 0.0
    tokens_at: float = 0.0
    held: list[Chat] = field(default_factory=list)  # a list: an empty deque costs 600 bytes
    held_until: float | None = None
    #: Rooms it is catching up in (section 8.8, per room): room name -> the last seq it was given.
    lagging: dict[str, int] = field(default_factory=dict)
    fresh_says: int = 0  # SAYs since login that may be resends: checked against the store
    held_frames: list[tuple[int, int]] | None = None  # (frame seq, held id) sent, not yet acknowledged
    caps: int = 0  # the `flags` of its LOGIN: what the client understands (m.CAP_*)
    parts: Reassembler | None = None  # the long message being reassembled, made on first use
    multi: bool = False  # its LOGIN had CAP_ROOMS (and so does this server): several rooms, section 18
    admin: bool = False  # a server admin: an operator in every room (read at login)
    guest: bool = False  # admitted with the class password (18.11)
    guest_salt: bytes = b""  # what this guest session's tickets are sealed to (valid while it lasts)
    #: Away (16.1) belongs to the user: one state shared by every room it is in (18.3).
    away: AwayState | None = None
    #: Where the user sits (20.2), from its LOGIN, cut and cleaned.
    seat: str = ""
    #: Its LOGIN had CAP_CLASSROOM (and CAP_ROOMS), and so does this server: section 20 applies.
    classroom: bool = False

    def __rich_repr__(self):  # type: ignore[no-untyped-def]
        yield "user", self.user
        yield "addr", self.addr


@dataclass(slots=True)
class LongChat:
    """A long message put back together from its SAY_PART frames (docs/protocol.md section 15.2):
    from here on it is handled as one SAY (`to` empty) or one WHISPER."""

    msg_id: int
    room: str
    to: str
    text: str
    flags: int

    @property
    def cost(self) -> float:
        """Rate-limit tokens: one per 900 bytes, what the same text split into SAYs would cost."""
        return float(-(-utf8_len(self.text) // m.MAX_TEXT_BYTES))


#: What a client says to the room or to one user, as one logical message.
Chat = m.Say | m.Whisper | LongChat
#: Requests of section 18 answered by REQUEST_DONE, each costing a token (18.13).
_ROOM_REQUESTS = (m.JoinRoom, m.PartRoom, m.ListRooms, m.SetRoom, m.Moderate)
#: Their kinds: a body that does not decode still starts with its request_id (answered, not dropped).
#: Section 20's requests (classroom.py) start with their request_id too.
_REQUEST_KINDS = CLASSROOM_REQUEST_KINDS | {
    m.Kind.JOIN, m.Kind.PART, m.Kind.LIST, m.Kind.ROOM_SET, m.Kind.MODERATE,
}  # fmt: skip
#: Section 21's client messages, handled by files.py.
_FILE_MESSAGES = (m.FileOffer, m.FileChunk, m.FileGet, m.FileCancel, m.ListFiles)


@dataclass(slots=True)
class _PendingMessage:
    #: The session to confirm it to (None: a message from another relay of the cluster, or one whose
    #: sender is no longer waiting here); it is left out of the fan-out.
    sender: Session | None
    msg_id: int
    stored: StoredMessage


@dataclass(slots=True)
class _PresenceRound:
    """A PRESENCE refresh under way: the members still to receive it, and when the next step is."""

    room: Room
    sids: list[bytes]
    next_at: float


@dataclass(slots=True)
class RelayStats:
    datagrams_received: int = 0
    datagrams_sent: int = 0
    messages_relayed: int = 0
    deliveries: int = 0
    bad_packets: int = 0
    bad_messages: int = 0
    protocol_violations: int = 0
    logins: int = 0
    failed_logins: int = 0
    ticket_logins: int = 0
    password_checks: int = 0


class Relay:
    """The whole server, minus sockets. See the module docstring. Logins (logins.py), private
    messages (privates.py) and the rooms-and-roles requests (room_requests.py) are handled by parts
    of their own that work on this object's state."""

    def __init__(
        self,
        store: Store,
        channel: ServerChannel,
        config: RelayConfig | None = None,
        tickets: TicketBook | None = None,
        backplane: ClusterBackplane | None = None,
    ) -> None:
        """`tickets` seals resumption tickets; without one, a key made now (tickets then die with
        the process: the command line passes one kept on disk). `backplane`: this relay is one of a
        cluster, which numbers and stores room messages (backplane.py); None: a single server."""
        self.backplane = backplane
        self.store = store
        self.channel = channel
        self.config = config or RelayConfig()
        self.stats = RelayStats()
        self.sessions: dict[bytes, Session] = {}
        self.rooms: dict[str, Room] = {}
        self.gate = LoginGate(self.config.login)
        self.registrations = RegistrationLimit(self.config.login.registrations_per_hour)
        self.tickets = tickets or TicketBook(
            os.urandom(32), channel.public_key, lifetime_s=self.config.ticket_lifetime_s
        )
        self._checks: list[PasswordCheck] = []
        self._queue_tick_at: float | None = None
        self._pending: list[_PendingMessage] = []
        self._dirty: set[Session] = set()
        self._timers: list[tuple[float, int, bytes]] = []
        self._timer_tiebreak = 0
        self._timers_compact_at = 64
        self.shutting_down = False
        self._recent_ids: OrderedDict[tuple[str, int], tuple[str, int, int]] = OrderedDict()
        self._presence_due: dict[str, Room] = {}  # rooms with a PRESENCE refresh pending, by name
        self._presence_rounds: dict[str, _PresenceRound] = {}  # refreshes under way, by room name
        # recipient key -> sender keys told "X is offline" since X was last online: once, not per line
        self._offline_notified: dict[str, set[str]] = {}
        #: Every logged-in user's session by name key: private messages and moderation find a user
        #: without looking through rooms.
        self.online_by_key: dict[str, Session] = {}
        #: The latest `now` this relay was given (for the few places that format a time unasked).
        self._now = 0.0
        self.logins = Logins(self)
        self.privates = PrivateMessages(self)
        self.room_requests = RoomRequests(self)
        self.room_requests._init_rooms()
        self.classroom = Classroom(self)
        self.classroom.load()
        #: Offers, uploads, downloads and retention of files (section 21).
        self.files = Files(self, self.config.files)
        #: The other relays' client addresses (section 22), and whether this relay is one of several
        #: (LOGIN_OK then carries CAP_FAILOVER).
        self.relay_addresses: tuple[tuple[str, int], ...] = ()
        self.several_relays = bool(self.config.capabilities & m.CAP_FAILOVER)  # a cluster's relay
        if self.config.relay_addresses:
            self.set_relay_addresses(self.config.relay_addresses)
        #: In a cluster (`--cluster`): what goes to the other relays and what is known of their
        #: people (cluster/exchange.py); None for a single server.
        self.cluster: Exchange | None = None

    # ------------------------------------------------------------ rooms

    def room(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            cfg = self.config
            flow = MembershipFlow(cfg.membership_events_per_s, cfg.membership_events_burst)
            room = Room(name, next_seq=self.store.last_seq(name) + 1, ring_size=cfg.ring_size, flow=flow)
            for stored in self.store.last_messages(name, min(self.config.ring_size, 1000)):
                room.remember(stored)
            self.rooms[name] = room
            if self.backplane is not None:
                self.backplane.rooms_to_follow.append(name)  # its stream feeds the local replica
        return room

    def password_checks(self) -> list[PasswordCheck]:
        """scrypt work for the transport to run off the event loop, then hand to `complete_login`."""
        return self.logins.password_checks()

    def complete_login(self, check: PasswordCheck, now: float) -> None:
        """Finish a login once its password check has run (`check.ok` and, for new accounts, the hash)."""
        self.logins.complete_login(check, now)

    def online(self) -> int:
        return len(self.online_by_key)

    # ------------------------------------------------------------ input

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Feed one datagram. Never raises on hostile input: it is counted and dropped."""
        self.stats.datagrams_received += 1
        self._now = now
        got = self.channel.receive_datagram(data, addr, now)
        if got is None:
            return
        sess = self.sessions.get(got.session_id)
        if sess is None:
            sess = Session(got.session_id, got.addr, ReliableLink(self.config.link), now)
            sess.timeout_check_at = self._timeout_check_after(now)
            self.sessions[sess.sid] = sess
            self._schedule(sess)
        elif got.addr != sess.addr:
            log.info(_("%s moved from %s to %s"), sess.user or "session", _fmt(sess.addr), _fmt(got.addr))
            sess.addr = got.addr
        try:
            frames = sess.link.receive_packet(got.payload, now)
        except DecodeError as exc:
            self.stats.bad_packets += 1
            log.debug("%s: bad packet: %s", _fmt(addr), exc)
            return
        sess.last_heard = now
        if sess.held_frames is not None:
            self.privates._settle_held(sess)
        if sess.link.wants_to_send:
            self._dirty.add(sess)
        for frame in frames:
            if sess.sid not in self.sessions:
                break
            try:
                message = decode_message(frame.kind, frame.body)
            except DecodeError as exc:
                self._on_bad_message(sess, frame.kind, frame.body, exc, now)
                continue
            self._dispatch(sess, message, now)
        if sess.lagging:
            self._catch_up(sess)
        if sess.sid in self.files.streaming:
            self.files.pump(sess)  # acknowledgements make room for more FILE_DATA (21.5)

    def _on_bad_message(self, sess: Session, kind: int, body: bytes, exc: DecodeError, now: float) -> None:
        self.stats.bad_messages += 1
        if kind == m.Kind.LOGIN and sess.user is None:
            code = (
                exc.code
                if exc.code in (ErrorCode.INVALID_NAME, ErrorCode.INVALID_PASSWORD)
                else (ErrorCode.PROTOCOL_VIOLATION)
            )
            text = str(exc).removeprefix("invalid Login: ")
            self._send(sess, m.LoginFailed(code, truncate_utf8(text, m.MAX_NOTICE_BYTES)))
        elif kind in _REQUEST_KINDS and sess.user is not None and len(body) >= 4:
            self.room_requests._refuse_bad_request(sess, int.from_bytes(body[:4], "big"), exc)
        elif kind in _FILE_REQUEST_KINDS and sess.user is not None:
            self.files.refuse_undecodable(sess, kind, body, exc)
        elif kind in (m.Kind.SAY, m.Kind.WHISPER, m.Kind.SAY_PART) and sess.user is not None:
            text = truncate_utf8(f"message refused: {exc}", m.MAX_NOTICE_BYTES)
            # Every one of these starts with its msg_id: name it, so the client's outbox lets go of
            # a message that will never be accepted (section 7.3), instead of resending it forever.
            msg_id = int.from_bytes(body[:8], "big") if len(body) >= 8 else 0
            if msg_id:
                self._send(sess, m.Rejected(msg_id, exc.code, 0, text))
            else:
                self._send(sess, m.Notice(exc.code, text))

    def _dispatch(self, sess: Session, message: m.Message, now: float) -> None:
        if sess.closing_at is not None:
            return
        if sess.user is None and not isinstance(message, (m.Login, m.Ping, m.Bye)):
            self.stats.protocol_violations += 1
            return
        if isinstance(message, m.Login):
            if self.backplane is not None and not self.backplane.ready:  # catching up (backplane.py)
                self._defer_login(sess, message, now)
                return
            self.logins._on_login(sess, message, now)
        elif isinstance(message, (m.Say, m.Whisper)):
            if sess.held or not self._take_token(sess, now):
                self._hold(sess, message, now)
            else:
                self._process_chat(sess, message, now)
        elif isinstance(message, m.SayPart):
            self._on_say_part(sess, message, now)
        elif isinstance(message, (m.HistoryRequest, m.SearchRequest)):
            self._on_request(sess, message, now)
        elif isinstance(message, _ROOM_REQUESTS):
            self.room_requests._on_room_request(sess, message, now)
        elif isinstance(message, CLASSROOM_REQUESTS):
            self.classroom.on_request(sess, message, now)
        elif isinstance(message, m.AnnouncementSeen):
            self.room_requests._on_announcement_seen(sess, message, now)
        elif isinstance(message, m.Who):
            room = sess.rooms.get(message.room)
            # An answer is many frames in a big room: WHO spends from the same bucket as messages,
            # so a client asking in a loop cannot make us queue without bound.
            if room is not None and self._take_token(sess, now):
                self._send_presence(sess, room, requested=1)
        elif isinstance(message, m.SetAway):
            self._on_set_away(sess, message, now)
        elif isinstance(message, _FILE_MESSAGES) and self.config.capabilities & m.CAP_FILES:
            self.files.dispatch(sess, message, now)
        elif isinstance(message, m.Bye):
            self._end_session(sess, "quit", now)
        elif isinstance(message, m.Ping):
            pass  # its acknowledgement is the answer
        else:
            self.stats.protocol_violations += 1  # a server-to-client kind sent to us

    # ------------------------------------------------------------ chat

    def _take_token(self, sess: Session, now: float, cost: float = 1.0) -> bool:
        cfg = self.config
        sess.tokens = min(float(cfg.rate_burst), sess.tokens + (now - sess.tokens_at) * cfg.rate_per_s)
        sess.tokens_at = now
        cost = min(cost, float(cfg.rate_burst))  # a bucket smaller than the cost must still pass it
        if sess.tokens >= cost:
            sess.tokens -= cost
            return True
        return False

    def _hold(self, sess: Session, message: Chat, now: float) -> None:
        msg_id = getattr(message, "msg_id", 0)
        if len(sess.held) >= self.config.max_held:
            self._send(
                sess,
                m.Rejected(msg_id, ErrorCode.RATE_LIMITED, 1000, "too many messages: slow down"),
            )
            return
        if not sess.held:
            self._send(sess, m.Notice(
                ErrorCode.RATE_LIMITED,
                f"slow down: over {self.config.rate_per_s:g} messages/s, the rest are queued",
            ))  # fmt: skip
        sess.held.append(message)
        if sess.held_until is None:
            sess.held_until = now + 1.0 / self.config.rate_per_s
            self._schedule(sess)

    def _release_held(self, sess: Session, now: float) -> None:
        if sess.user is None:  # ended or replaced while messages were held
            sess.held.clear()
            sess.held_until = None
            return
        while sess.held and self._take_token(sess, now, _cost(sess.held[0])):
            message = sess.held.pop(0)
            self._process_chat(sess, message, now)
        sess.held_until = now + 1.0 / self.config.rate_per_s if sess.held else None

    def _process_chat(self, sess: Session, message: Chat, now: float) -> None:
        assert sess.user is not None
        if isinstance(message, m.Whisper) or (isinstance(message, LongChat) and message.to):
            self.privates._whisper(sess, message, now)
            return
        room = sess.rooms.get(message.room)
        if room is None:
            self._send(
                sess,
                m.Rejected(message.msg_id, ErrorCode.NO_SUCH_ROOM, 0, f"you are not in room {message.room}"),
            )
            return
        known = self._known_message(sess, message.msg_id)
        if known is not None:
            room_name, seq, ts_ms = known
            self._confirm(sess, message.msg_id, room_name, seq, ts_ms)
            return
        refusal = room.check_speak(m.name_key(sess.user), _ms(now))
        if refusal is not None:  # muted, or a moderated room (18.9): refused, never relayed
            self._send(sess, m.Rejected(message.msg_id, refusal[0], 0, refusal[1]))
            return
        if room.quiet_until_ms and self.classroom.diverts(sess, room, now):
            self.classroom.to_ops(sess, room, message, now)  # quiet mode (20.5): to the operators only
            return
        if self.backplane is not None:
            self._publish(sess, room, message, now)
            return
        stored = StoredMessage(
            room.name,
            room.allocate_seq(),
            _ms(now),
            sess.user,
            message.text,
            message.flags & m.FLAG_ACTION,
            message.msg_id,
        )
        self._pending.append(_PendingMessage(sess, message.msg_id, stored))
        self._remember_id((m.name_key(sess.user), message.msg_id), (room.name, stored.seq, stored.ts_ms))

    def _remember_id(self, key: tuple[str, int], value: tuple[str, int, int]) -> None:
        """Recent (user, msg_id) pairs, so a resent message is confirmed, not relayed again."""
        self._recent_ids[key] = value
        if len(self._recent_ids) > RECENT_IDS:
            self._recent_ids.popitem(last=False)

    def _known_message(self, sess: Session, msg_id: int) -> tuple[str, int, int] | None:
        assert sess.user is not None
        known = self._recent_ids.get((m.name_key(sess.user), msg_id))
        if known is None and sess.fresh_says > 0:
            sess.fresh_says -= 1
            stored = self.store.find_message(sess.user, msg_id)
            if stored is not None:
                known = (stored.room, stored.seq, stored.ts_ms)
        return known

    def _confirm(self, sess: Session, msg_id: int, room: str, seq: int, ts_ms: int) -> None:
        """ACCEPTED, in stream order. A session still catching up gets its own message through the
        catch-up instead (as a MESSAGE carrying its msg_id): an ACCEPTED for a seq ahead of the
        messages it has not been sent yet would make it skip them."""
        lagging = sess.lagging.get(room) if sess.lagging else None
        if lagging is not None and seq > lagging:
            return
        self._send(sess, m.Accepted(msg_id, room, seq, ts_ms))

    def _on_set_away(self, sess: Session, message: m.SetAway, now: float) -> None:
        """Away or back (section 16.1). Away belongs to the user (18.3): every room the session is in
        hears of a change, the user included."""
        user = sess.user
        assert user is not None
        reason = message.reason if message.away else None
        current = sess.away
        if (current is None and reason is None) or (current is not None and current.reason == reason):
            return  # nothing changes: nothing to say, and no token spent
        # A change is a broadcast to the rooms: it spends a token like a message, so flapping
        # between away and back cannot flood them. A legitimate client never runs out.
        if not self._take_token(sess, now):
            return
        ts = _ms(now)
        key = m.name_key(user)
        sess.away = None if reason is None else AwayState(reason, ts)
        for room in sess.rooms.values():
            if sess.away is None:
                room.away.pop(key, None)
            else:
                room.away[key] = sess.away
        if reason is None:
            log.info(_("%s is back"), user)
        else:
            log.info(_("%s is away: %s"), user, _escape(_excerpt(reason)))
        for room in sess.rooms.values():
            self._broadcast(room, m.Away(room.name, user, message.away, reason or "", ts))
        if self.cluster is not None:
            self.cluster.presence_changed(key)

    def _commit_pending(self) -> None:
        """Group commit, then fan-out: one transaction for everything that arrived in this batch."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        self.store.append_messages([p.stored for p in pending], [m.name_key(p.stored.user) for p in pending])
        for p in pending:
            room = self.rooms[p.stored.room]
            room.remember(p.stored)
            if over_limit(p.stored.text):
                count = self._fan_out_long(room, p.stored, p.sender)
            else:
                body = encode_message(_room_message(p.stored))
                count = self._fan_out(room, m.Kind.MESSAGE, body, p.sender, seq=p.stored.seq)
            if p.sender is not None:
                self._confirm(p.sender, p.msg_id, room.name, p.stored.seq, p.stored.ts_ms)
            self.stats.messages_relayed += 1
            self.stats.deliveries += count
            if log.isEnabledFor(logging.INFO):
                log.info(
                    _("<%s> %s  [dim](#%d, forwarded to %d)[/]"),
                    p.stored.user,
                    _escape(_excerpt(p.stored.text)),
                    p.stored.seq,
                    count,
                )

    # ------------------------------------------------------------ cluster: the message path (backplane.py)

    def _publish(self, sess: Session, room: Room, message: m.Say | LongChat, now: float) -> None:
        """Cluster mode: hand the message to the cluster instead of numbering and storing it here.
        ACCEPTED follows when this relay reads it back from the room's stream (`room_message_stored`)."""
        bp = self.backplane
        assert bp is not None and sess.user is not None
        until = bp.refusing.get(sess.sid)
        if until is not None and now >= until:
            del bp.refusing[sess.sid]
            until = None
        if not bp.reachable or until is not None:
            reason = "the cluster is unreachable" if not bp.reachable else "an earlier message was not stored"
            self._refuse_unstored(sess, message.msg_id, reason, now)
            return
        key = (m.name_key(sess.user), message.msg_id)
        if key in bp.awaiting:  # a resend of one on its way: its ACCEPTED goes to this session
            bp.awaiting[key] = sess.sid
            return
        bp.awaiting[key] = sess.sid
        flags = message.flags & m.FLAG_ACTION
        bp.outbox.append(Outgoing(room.name, _ms(now), sess.user, message.text, flags, message.msg_id))

    def _refuse_unstored(self, sess: Session, msg_id: int, reason: str, now: float) -> None:
        """REJECTED that means "not now" (protocol.md 22.6): CLUSTER_UNAVAILABLE to clients that know
        it, RATE_LIMITED to older ones; both keep the line and send it again after `retry_after_ms`.
        The first refusal also says why in a NOTICE, once until a line of the session is stored again
        or the cluster is back."""
        bp = self.backplane
        assert bp is not None
        bp.refused += 1
        code = ErrorCode.CLUSTER_UNAVAILABLE if sess.caps & m.CAP_FAILOVER else ErrorCode.RATE_LIMITED
        text = f"messages cannot be stored now ({reason}); they are kept and sent again"
        if sess.sid not in bp.told:
            log.warning(_("%s: a message was refused: %s"), sess.user, reason)
            self._send(sess, m.Notice(code, text))
            if len(bp.told) > 4096:  # mostly sessions that left: at worst someone is told twice
                bp.told.clear()
            bp.told.add(sess.sid)
        if len(bp.refusing) > 4096:  # sessions that left: forget the windows that are over
            bp.refusing = {sid: t for sid, t in bp.refusing.items() if t > now}
        bp.refusing[sess.sid] = now + RETRY_AFTER_MS / 1000
        self._send(sess, m.Rejected(msg_id, code, RETRY_AFTER_MS, text))

    def room_message_stored(self, stored: StoredMessage, now: float) -> None:
        """The cluster stored `stored` as `stored.seq` of its room (read from the room's stream, in
        stream order, by every relay): keep it in the local replica, fan it out to this relay's
        members and confirm it to the session waiting for it, all at the next flush (one commit for
        everything read meanwhile). A seq this relay already holds (a stream read again) is ignored."""
        self._now = now
        room = self.room(stored.room)
        if stored.seq < room.next_seq:
            return
        room.next_seq = stored.seq + 1
        key = (m.name_key(stored.user), stored.msg_id)
        sender: Session | None = None
        bp = self.backplane
        if bp is not None and (sid := bp.awaiting.pop(key, None)) is not None:
            sess = self.sessions.get(sid)
            if sess is not None and sess.user is not None and m.name_key(sess.user) == key[0]:
                sender = sess
                bp.told.discard(sess.sid)
        self._pending.append(_PendingMessage(sender, stored.msg_id, stored))
        self._remember_id(key, (room.name, stored.seq, stored.ts_ms))

    def room_message_published(self, room: str, user: str, msg_id: int, seq: int, now: float) -> None:
        """The cluster answered the publish of (`user`, `msg_id`) with `seq`. Usually the stream brings
        the message too and confirms it; but a resend the cluster knew already (its first copy was
        read from the stream before anyone here waited for it) is confirmed from the replica now."""
        bp = self.backplane
        if bp is None:
            return
        key = (m.name_key(user), msg_id)
        sid = bp.awaiting.get(key)
        if sid is None:
            return
        known = self._recent_ids.get(key)
        if known is None:  # stored long ago (or before this relay started): the replica has it
            found = self.rooms.get(room)
            stored = self.store.find_message(user, msg_id) if found and found.next_seq > seq else None
            known = (stored.room, stored.seq, stored.ts_ms) if stored is not None else None
        if known is None or known[1] != seq:
            return  # not read from the stream yet: `room_message_stored` confirms it
        del bp.awaiting[key]
        sess = self.sessions.get(sid)
        if sess is not None and sess.user is not None and m.name_key(sess.user) == key[0]:
            self._confirm(sess, msg_id, known[0], known[1], known[2])

    def room_message_refused(self, room: str, user: str, msg_id: int, reason: str, now: float) -> None:
        """The cluster did not store (`user`, `msg_id`) in time: the waiting session hears "not now"
        and will send it again (22.6); the resend is deduplicated if it was stored after all."""
        self._now = now
        bp = self.backplane
        if bp is None:
            return
        sid = bp.awaiting.pop((m.name_key(user), msg_id), None)
        sess = self.sessions.get(sid) if sid is not None else None
        if sess is not None and sess.user is not None and m.name_key(sess.user) == m.name_key(user):
            self._refuse_unstored(sess, msg_id, reason, now)

    def _defer_login(self, sess: Session, login: m.Login, now: float) -> None:
        """A LOGIN while the replica catches up: it waits in the login queue (17.3) until
        `cluster_ready`; LOGIN_QUEUED keeps the client waiting, `login_pending` keeps it from timing
        out. As bounded as the password-check queue (`max_queued`) and by the catch-up's own limit."""
        bp = self.backplane
        assert bp is not None
        if sess.login_pending or sess.user is not None:
            return
        if len(bp.deferred) >= self.config.login.max_queued:
            text = "the server is starting: try again in 1 s"
            self.logins._login_failed(sess, login, ErrorCode.SERVER_BUSY, text, now, retry_after_s=1)
            return
        sess.login_pending = True
        self.channel.mark_authenticated(sess.sid)  # waits in a bounded queue, as admitted logins do
        bp.deferred.append((sess.sid, login))
        self._send(sess, m.LoginQueued(len(bp.deferred), 1000))

    def cluster_starting(self, now: float) -> None:
        """Still catching up: remind the waiting logins (each LOGIN_QUEUED extends a client's wait)."""
        bp = self.backplane
        if bp is None:
            return
        self._now = now
        position = 0
        for sid, _login in bp.deferred:
            sess = self.sessions.get(sid)
            if sess is not None and sess.login_pending:
                position += 1
                self._send(sess, m.LoginQueued(position, 1000))

    def cluster_ready(self, now: float) -> None:
        """The replica has caught up: logins are taken from now on, the waiting ones first, in order."""
        bp = self.backplane
        if bp is None or bp.ready:
            return
        self._now = now
        bp.ready = True
        deferred, bp.deferred = bp.deferred, []
        for sid, login in deferred:
            sess = self.sessions.get(sid)
            if sess is not None and sess.login_pending and sess.closing_at is None:
                sess.login_pending = False
                self.logins._on_login(sess, login, now)

    def set_cluster_reachable(self, reachable: bool, now: float) -> None:
        """The bridge lost (False) or regained (True) its connection to the cluster."""
        self._now = now
        if self.backplane is not None and self.backplane.reachable != reachable:
            self.backplane.reachable = reachable
            if reachable:
                self.backplane.refusing.clear()
                self.backplane.told.clear()
                log.warning(_("the cluster is reachable again: messages are accepted"))
            else:
                log.warning(_("the cluster is unreachable: new messages are refused until it is back"))

    def _fan_out(
        self, room: Room, kind: int, body: bytes, exclude: Session | None, seq: int | None = None
    ) -> int:
        """Queue one encoded body for every member but `exclude`; returns how many it was meant for.

        The body is encoded once for the whole room; each session only adds its own frame header.
        """
        count, ready = self._ready_members(room, exclude, seq)
        for sess in ready:
            sess.link.send(kind, body)
        self._dirty.update(ready)
        return count

    def _ready_members(
        self, room: Room, exclude: Session | None, seq: int | None
    ) -> tuple[int, list[Session]]:
        """The members a fan-out is meant for (counted) and those to queue it for now: a member that
        fell behind is fed from history instead (`_catch_up`); with `seq`, one whose backlog is full
        falls behind from here."""
        count = 0
        ready: list[Session] = []
        limit = self.config.max_backlog_frames
        for sid in room.members.values():
            sess = self.sessions.get(sid)
            if sess is None or sess is exclude:
                continue
            count += 1
            if sess.lagging and room.name in sess.lagging:
                continue
            if seq is not None and sess.link.backlog >= limit:
                sess.lagging[room.name] = seq - 1  # it will be fed from history as it drains
                continue
            ready.append(sess)
        return count, ready

    def _catch_up(self, sess: Session) -> None:
        """Feed a session that fell behind, room by room, from the ring or the store, as far as its
        window allows. Each room catches up on its own (18.3)."""
        for name, room_after in list(sess.lagging.items()):
            room = sess.rooms.get(name)
            if room is None:
                del sess.lagging[name]
                continue
            room_last = room.next_seq - 1
            budget = self.config.max_backlog_frames // 2 - sess.link.backlog
            if budget <= 0:
                return
            batch = room.recent_after(room_after, budget)
            if batch is None:
                batch = self.store.messages_after(room.name, room_after, budget)
            for stored in batch:
                self._send_stored(sess, stored)
                room_after = stored.seq
                if sess.link.backlog >= self.config.max_backlog_frames // 2:
                    break  # a long message is many frames: the budget counted messages
            if room_after >= room_last or not batch:  # nothing left: retention pruned the rest
                del sess.lagging[name]
                self._send_presence(sess, room)
            else:
                sess.lagging[name] = room_after

    # ------------------------------------------------------------ long messages, history, search

    def _on_say_part(self, sess: Session, part: m.SayPart, now: float) -> None:
        """Reassemble a long message (protocol.md 15.2); once whole, it goes on as one SAY or WHISPER."""
        parts = sess.parts
        if parts is None:
            parts = sess.parts = Reassembler()
        if part.index == 0 and parts.busy:
            self._send(sess, m.Notice(ErrorCode.BAD_PARTS, "an unfinished long message was dropped"))
        try:
            text = parts.feed((part.msg_id, part.room, part.to), part.index, part.count, part.text)
        except RemoteProtocolError as exc:
            self.stats.bad_messages += 1
            if exc.code == ErrorCode.TOO_LONG:
                text = f"message too long: the limit is {m.MAX_LONG_TEXT_BYTES // 1024} KB"
                self._send(sess, m.Rejected(part.msg_id, exc.code, 0, text))
            else:
                text = truncate_utf8(f"message refused: {exc}", m.MAX_NOTICE_BYTES)
                self._send(sess, m.Notice(exc.code, text))
            return
        if text is None:
            return
        chat = LongChat(part.msg_id, part.room, part.to, text, part.flags)
        if sess.held or not self._take_token(sess, now, chat.cost):
            self._hold(sess, chat, now)
        else:
            self._process_chat(sess, chat, now)

    def _fan_out_long(self, room: Room, stored: StoredMessage, exclude: Session | None) -> int:
        """`_fan_out` for a long message: in parts to clients that read them, a preview to the others.

        Each form is encoded once for the room. A session gets all parts or none, so the parts stay
        consecutive on its link (the receiver reassembles one message at a time).
        """
        pieces = split_parts(stored.text)
        parts = [
            encode_message(m.MessagePart(
                stored.room, stored.seq, stored.ts_ms, stored.user, stored.flags, stored.msg_id,
                index, len(pieces), piece,
            ))
            for index, piece in enumerate(pieces)
        ]  # fmt: skip
        preview = encode_message(_room_message(replace(stored, text=long_preview(stored.text))))
        count, ready = self._ready_members(room, exclude, stored.seq)
        for sess in ready:
            if sess.caps & m.CAP_LONG_MESSAGES:
                for body in parts:
                    sess.link.send(m.Kind.MESSAGE_PART, body)
            else:
                sess.link.send(m.Kind.MESSAGE, preview)
        self._dirty.update(ready)
        return count

    def _send_stored(self, sess: Session, stored: StoredMessage, extra_flags: int = 0) -> None:
        """One stored message to one session (history, catch-up): whole, in parts, or as a preview."""
        if not over_limit(stored.text):
            self._send(sess, _room_message(stored, extra_flags))
        elif sess.caps & m.CAP_LONG_MESSAGES:
            pieces = split_parts(stored.text)
            for index, piece in enumerate(pieces):
                self._send(sess, m.MessagePart(
                    stored.room, stored.seq, stored.ts_ms, stored.user, stored.flags | extra_flags,
                    stored.msg_id, index, len(pieces), piece,
                ))  # fmt: skip
        else:
            self._send(sess, _room_message(replace(stored, text=long_preview(stored.text)), extra_flags))

    def _on_request(self, sess: Session, req: m.HistoryRequest | m.SearchRequest, now: float) -> None:
        """HISTORY and SEARCH (protocol.md 15.4, 15.5): always ended by one REQUEST_DONE."""
        # An answer can be many frames: each request costs a token, as WHO does, and waits while
        # the session still has a large backlog, so asking in a loop cannot grow our queues.
        if sess.link.backlog >= self.config.max_backlog_frames // 2 or not self._take_token(sess, now):
            self._send(sess, m.RequestDone(req.request_id, ErrorCode.RATE_LIMITED, 0, "slow down"))
            return
        if req.room not in sess.rooms:
            text = f"you are not in room {req.room}"
            self._send(sess, m.RequestDone(req.request_id, ErrorCode.NO_SUCH_ROOM, 0, text))
            return
        try:
            if isinstance(req, m.HistoryRequest):
                self._answer_history(sess, req)
            else:
                self._answer_search(sess, req)
        except StoreError as exc:
            log.warning(_("%s: %s failed: %s"), sess.user, type(req).__name__, exc)
            text = "the room's history is not available now"
            self._send(sess, m.RequestDone(req.request_id, ErrorCode.BAD_QUERY, 0, text))

    def _answer_history(self, sess: Session, req: m.HistoryRequest) -> None:
        limit = max(1, min(req.limit, m.MAX_HISTORY_PAGE))
        before = req.before_seq or 2**63 - 1
        page = self.store.messages_before(req.room, before, limit + 1)
        more = len(page) > limit
        for stored in page[-limit:]:
            pieces = split_parts(stored.text)
            for index, piece in enumerate(pieces):
                self._send(sess, m.HistoryEntry(
                    req.request_id, stored.room, stored.seq, stored.ts_ms, stored.user, stored.flags,
                    stored.msg_id, index, len(pieces), piece,
                ))  # fmt: skip
        self._send(sess, m.RequestDone(req.request_id, 0, int(more)))

    def _answer_search(self, sess: Session, req: m.SearchRequest) -> None:
        if not req.query.strip() or utf8_len(req.query) > m.MAX_QUERY_BYTES:
            text = f"search for 1 to {m.MAX_QUERY_BYTES} bytes of words"
            self._send(sess, m.RequestDone(req.request_id, ErrorCode.BAD_QUERY, 0, text))
            return
        limit = max(1, min(req.limit, m.MAX_SEARCH_HITS))
        hits = self.store.search(req.room, req.query, limit + 1)
        for hit in hits[:limit]:
            snippet = truncate_utf8(hit.snippet, m.MAX_SNIPPET_BYTES)
            self._send(sess, m.SearchHit(
                req.request_id, hit.room, hit.seq, hit.ts_ms, hit.user, hit.flags, snippet
            ))  # fmt: skip
        self._send(sess, m.RequestDone(req.request_id, 0, int(len(hits) > limit)))

    # ------------------------------------------------------------ leaving

    def _end_session(self, sess: Session, reason: str, now: float) -> None:
        if sess.login_pending:
            self.gate.cancel(sess.sid)
            sess.login_pending = False
        user, rooms = sess.user, list(sess.rooms.values())
        self._forget_session(sess)
        if user is not None:
            log.info(_("[bold red]%s left[/] (%s) from %s (%d online)"),
                     user, reason, _fmt(sess.addr), len(self.online_by_key))  # fmt: skip
        for room in rooms:
            if user is not None and room.remove_member(user, sess.sid):
                self._announce_membership(room, m.Left(room.name, user, _ms(now), reason), sess, now)
        if reason == "timed out":
            self._drop(sess)
        else:
            sess.closing_at = now + self.config.linger_s
            self._schedule(sess)

    def _forget_session(self, sess: Session) -> None:
        """The session is no longer its user's (ended, or replaced by a newer login): its rooms,
        its index entry and what it had queued go. Its rooms' member lists are the caller's."""
        if sess.user is not None and self.online_by_key.get(m.name_key(sess.user)) is sess:
            del self.online_by_key[m.name_key(sess.user)]
            if self.cluster is not None:
                self.cluster.presence_changed(m.name_key(sess.user))
        sess.user = None
        sess.rooms = {}
        sess.lagging.clear()
        sess.held.clear()
        sess.held_until = None
        sess.parts = None
        self.files.forget(sess)

    def _drop(self, sess: Session) -> None:
        if sess.login_pending:
            self.gate.cancel(sess.sid)
        self.sessions.pop(sess.sid, None)
        self.channel.close(sess.sid)
        self._dirty.discard(sess)

    def shutdown(self, now: float) -> None:
        """Tell every client the server is going away (they will retry by themselves)."""
        self.shutting_down = True
        for sess in list(self.sessions.values()):
            if sess.user is not None or sess.login_pending:  # waiting logins: try the next server
                self._send(sess, m.Closed(ErrorCode.SERVER_SHUTDOWN, "the server is shutting down"))

    # ------------------------------------------------------------ several relays (protocol 22)

    def set_relay_addresses(self, addresses: Iterable[tuple[str, int]]) -> None:
        """The other relays of this server are now at `addresses` (client addresses, this relay's
        own excluded). From now on this relay is one of several: LOGIN_OK announces CAP_FAILOVER,
        and every logged-in session that announced it gets RELAYS when the list changes (22.2).
        Invalid entries are skipped with a warning, duplicates kept once, at most MAX_RELAYS."""
        kept: list[tuple[str, int]] = []
        for host, port in addresses:
            try:
                m.check_relay_address(host, port)
            except LocalProtocolError as exc:
                log.warning(_("relay address %s:%s left out: %s"), host, port, exc)
                continue
            if (host, port) not in kept and len(kept) < m.MAX_RELAYS:
                kept.append((host, port))
        new = tuple(kept)
        self.several_relays = True
        if new == self.relay_addresses:
            return
        self.relay_addresses = new
        for sess in self.online_by_key.values():
            self.send_relays(sess)

    def send_relays(self, sess: Session) -> None:
        """RELAYS to one logged-in session, if it can use it (after LOGIN_OK, 22.2)."""
        if self.several_relays and sess.caps & m.CAP_FAILOVER:
            self._send(sess, m.Relays(self.relay_addresses))

    # ------------------------------------------------------------ output and timers

    def _send(self, sess: Session, message: m.Message) -> None:
        sess.link.send(message.KIND, encode_message(message))
        self._dirty.add(sess)

    def _send_presence(self, sess: Session, room: Room, requested: int = 0, now: float | None = None) -> None:
        # Every away member first: the PRESENCE that follows closes the listing (section 16.1).
        for user, state in room.away_listing() if room.away or room.remote else ():
            self._send(sess, m.Away(room.name, user, 1, state.reason, state.since_ms, listing=1))
        # `modes` only to CAP_ROOMS sessions (18.7); the clock is the last thing this relay heard.
        modes = room.presence_modes(_ms(self._now if now is None else now)) if sess.multi else ""
        seats = self.classroom.seats(room) if sess.classroom else ()  # 20.2
        for part in m.presence_parts(room.name, room.users(), requested, modes, seats):
            self._send(sess, part)

    def _announce_membership(
        self, room: Room, change: m.Joined | m.Left, sess: Session | None, now: float
    ) -> None:
        """JOINED/LEFT to the others while the room is calm; during a flood, a PRESENCE refresh later
        (room.py, `MembershipFlow`): fan-out that grows with members, not members x changes.
        `sess` None: the change is of a member on another relay (cluster mode)."""
        if self.cluster is not None and sess is not None and sess.user is not None:
            self.cluster.presence_changed(m.name_key(sess.user))
        if not room.flow.announce_individually(now, len(room.members)):
            self._presence_due[room.name] = room
        elif isinstance(change, m.Joined) and change.seat:
            self._announce_joined(room, change, sess)
        else:
            self._broadcast(room, change, exclude=sess)

    def _announce_joined(self, room: Room, joined: m.Joined, exclude: Session | None) -> None:
        """JOINED with the newcomer's seat to CAP_CLASSROOM members, without it to the rest (20.2):
        each form encoded once for the room."""
        with_seat = encode_message(joined)
        plain = encode_message(replace(joined, seat=""))
        _count, ready = self._ready_members(room, exclude, None)
        for member in ready:
            member.link.send(m.Kind.JOINED, with_seat if member.classroom else plain)
        self._dirty.update(ready)

    def apply_remote_presence(
        self, key: str, state: RemotePresence | None, now: float, *, reason: str = "quit"
    ) -> None:
        """Cluster mode: the user `key` is now `state` on another relay (None: on none). Its rooms
        here list it (`Room.remote`), and their local members hear JOINED, LEFT and AWAY for what
        changed, as for a local member; a name that is also a local member is announced once.
        `reason`: LEFT's reason where the user left every room ("timed out" when its entry expired)."""
        assert self.cluster is not None
        old = self.cluster.remote.pop(key, None)
        if state is not None:
            self.cluster.remote[key] = state
        now_ms = _ms(now)
        new_rooms = set(state.rooms) if state is not None else set()
        for name in old.rooms if old is not None else ():
            room = self.rooms.get(name)
            if room is None or name in new_rooms or room.remote.pop(key, None) is None:
                continue
            if key not in room.display and old is not None:
                why = reason if state is None else "left"  # still online: it left this room only
                self._announce_membership(room, m.Left(room.name, old.name, now_ms, why), None, now)
        if state is None:
            return
        away = AwayState(state.away, state.away_since_ms) if state.away is not None else None
        for name in state.rooms:
            room = self.rooms.get(name)
            if room is None:
                continue  # a room this relay does not know (yet): nothing to list it in
            before = room.remote.get(key)
            room.remote[key] = RemoteMember(state.name, state.flags, away, state.seat)
            if key in room.display:
                continue  # listed as the local member
            if before is None:
                joined = m.Joined(room.name, state.name, now_ms, state.seat)
                self._announce_membership(room, joined, None, now)
                if away is not None:
                    self._broadcast(room, m.Away(room.name, state.name, 1, away.reason, away.since_ms))
            elif (before.away is None) != (away is None) or (
                before.away is not None and away is not None and before.away.reason != away.reason
            ):
                reason = away.reason if away is not None else ""
                self._broadcast(room, m.Away(room.name, state.name, int(away is not None), reason, now_ms))

    def list_remote_members(self, room: Room) -> None:
        """Cluster mode: a room this relay has just made (another relay made it): the users on other
        relays who are in it are listed (no JOINED: nobody here is in it yet)."""
        assert self.cluster is not None
        for key, state in self.cluster.remote.items():
            if room.name in state.rooms:
                away = AwayState(state.away, state.away_since_ms) if state.away is not None else None
                room.remote[key] = RemoteMember(state.name, state.flags, away, state.seat)

    def end_replaced(self, key: str, session: str, where: str, now: float) -> bool:
        """Cluster mode: `key` logged in on another relay (`where`), so its session here, if it is
        still `session` (hex of its id), ends with CLOSED(REPLACED) as a replaced one does on a
        single server (logins.py). Returns whether a session was ended."""
        sess = self.online_by_key.get(key)
        if sess is None or sess.sid.hex() != session:
            return False
        user = sess.user
        assert user is not None
        log.info(_("%s logged in again on %s; ending the session from %s"), user, where, _fmt(sess.addr))
        self._send(sess, m.Closed(ErrorCode.REPLACED, f"logged in again from {where}"))
        rooms = list(sess.rooms.values())
        self._forget_session(sess)
        for room in rooms:
            # Where the other relay lists the user already, it stays listed: no LEFT for a move.
            if room.remove_member(user, sess.sid) and key not in room.remote:
                self._announce_membership(room, m.Left(room.name, user, _ms(now), "quit"), sess, now)
        sess.closing_at = now + self.config.linger_s
        self._schedule(sess)
        return True

    def _refresh_presence(self, now: float) -> None:
        """Start the PRESENCE refreshes that are due (`handle_timer` then sends their first step)."""
        due = [r for r in self._presence_due.values() if (r.flow.refresh_at or now) <= now]
        for room in due:
            del self._presence_due[room.name]
            carried = room.flow.refreshed()
            # A round still under way is replaced: the new one carries the newer list to everyone.
            self._presence_rounds[room.name] = _PresenceRound(room, list(room.members.values()), now)
            log.info(_("%d joins and leaves in %s sent as one member list (%d online)"), carried, room.name,
                     len(room.members))  # fmt: skip

    def _step_presence_rounds(self, now: float) -> None:
        """Send each round's next members the room's list as it is *now*: a member who got a JOINED
        or LEFT since the round began still ends with a list that agrees with it. Members who joined
        during the round had their own PRESENCE at login; those who left are skipped."""
        for name, rnd in list(self._presence_rounds.items()):
            if rnd.next_at > now:
                continue
            room = rnd.room
            batch, rnd.sids = rnd.sids[:PRESENCE_REFRESH_CHUNK], rnd.sids[PRESENCE_REFRESH_CHUNK:]
            # The away listing first, as for every PRESENCE (section 16.1): a refresh without it
            # would tell clients that nobody is away.
            listing = room.away_listing() if room.away or room.remote else ()
            parts: list[m.Message] = [
                m.Away(room.name, user, 1, state.reason, state.since_ms, listing=1) for user, state in listing
            ]
            users = room.users()
            plain = [*parts, *m.presence_parts(room.name, users)]
            bodies = [(part.KIND, encode_message(part)) for part in plain]
            with_modes: list[tuple[int, bytes]] | None = None  # for CAP_ROOMS sessions, made once
            with_seats: list[tuple[int, bytes]] | None = None  # for CAP_CLASSROOM sessions (20.2)
            for sid in batch:
                sess = self.sessions.get(sid)
                if sess is None or sess.rooms.get(room.name) is not room or room.name in sess.lagging:
                    continue  # gone, or catching up (it gets PRESENCE when it has caught up)
                if sess.multi and with_modes is None:
                    modes = room.presence_modes(_ms(now))
                    with_modes = [
                        (part.KIND, encode_message(part))
                        for part in [*parts, *m.presence_parts(room.name, users, 0, modes)]
                    ]
                if sess.classroom and with_seats is None:
                    modes, seats = room.presence_modes(_ms(now)), self.classroom.seats(room)
                    with_seats = [
                        (part.KIND, encode_message(part))
                        for part in [*parts, *m.presence_parts(room.name, users, 0, modes, seats)]
                    ]
                chosen = with_seats if sess.classroom else with_modes if sess.multi else bodies
                for kind, body in chosen or bodies:
                    sess.link.send(kind, body)
                self._dirty.add(sess)
            if rnd.sids:
                rnd.next_at = now + PRESENCE_REFRESH_STEP_S
            else:
                del self._presence_rounds[name]

    def _broadcast(self, room: Room, message: m.Message, exclude: Session | None = None) -> int:
        if not room.members:
            return 0
        return self._fan_out(room, message.KIND, encode_message(message), exclude)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        return list(self.iter_datagrams_to_send(now))

    def iter_datagrams_to_send(self, now: float) -> Iterator[tuple[bytes, Address]]:
        """`datagrams_to_send`, each datagram as soon as it is sealed.

        A transport that sends while the relay seals lets the first members of a room start on a
        message while the last copies are still being sealed, instead of all of them waiting for
        the whole fan-out (≈7 µs per member here). Consume it to the end before feeding the relay
        anything else: the sessions it has not reached yet keep their output until it resumes.
        """
        self._commit_pending()
        if self.files.waiting:  # downloads held back to a burst per flush (21.7) go on
            self.files.pump_waiting()
        if self.room_requests._tally_due:
            self.room_requests._send_tallies()
        if self.classroom._polls_due:
            self.classroom.send_due_polls()
        out = self.channel.datagrams_to_send()
        self.stats.datagrams_sent += len(out)
        yield from out
        dirty, self._dirty = self._dirty, set()
        stats, seal, sessions = self.stats, self.channel.seal, self.sessions
        # Sessions with file frames to send go last (21.7): a burst of them takes milliseconds to
        # seal, and a chat line to anyone else must not wait behind it.
        bulky: list[Session] = []
        for sess in dirty:
            if sess.sid not in sessions:
                continue
            if sess.link.bulk_queued:
                bulky.append(sess)
                continue
            for packet in sess.link.packets_to_send(now):
                stats.datagrams_sent += 1
                yield seal(sess.sid, packet, now)
            self._schedule(sess)
        for sess in bulky:
            for packet in sess.link.packets_to_send(now):
                stats.datagrams_sent += 1
                yield seal(sess.sid, packet, now)
            self._schedule(sess)

    def _schedule(self, sess: Session) -> None:
        # Runs for every session touched by every flush: plain comparisons, no temporary list.
        deadline = sess.closing_at if sess.closing_at is not None else sess.timeout_check_at
        link_deadline = sess.link.next_timer()
        if link_deadline is not None and link_deadline < deadline:
            deadline = link_deadline
        if sess.held_until is not None and sess.held_until < deadline:
            deadline = sess.held_until
        if deadline != sess.timer_at:
            sess.timer_at = deadline
            self._timer_tiebreak += 1
            heapq.heappush(self._timers, (deadline, self._timer_tiebreak, sess.sid))
            if len(self._timers) > self._timers_compact_at:
                self._compact_timers()

    def _timeout_check_after(self, heard: float) -> float:
        """When to check a session last heard at `heard` for its timeout: on whole seconds, so the
        sessions due in the same second share one wake-up (a thousand idle sessions would otherwise
        wake the server 33 times a second, each for one check)."""
        return math.ceil(heard + self.config.client_timeout_s)

    def _compact_timers(self) -> None:
        """Drop stale heap entries (a session's deadline moved; the old entry stays until popped).
        A session whose deadline keeps moving later would otherwise leave one entry per move."""
        live = []
        seen: set[bytes] = set()
        for entry in self._timers:
            sid = entry[2]
            sess = self.sessions.get(sid)
            # One entry per session: a deadline that moved away and back (A, B, A) leaves two
            # entries equal to the current one, and keeping both would let the heap grow with
            # every flip (seen with clients that send the moment they are asked to).
            if sess is not None and sess.timer_at == entry[0] and sid not in seen:
                seen.add(sid)
                live.append(entry)
        heapq.heapify(live)
        self._timers = live
        # Next time when the heap has doubled: compaction stays O(1) per push, amortised.
        self._timers_compact_at = 2 * len(live) + 64

    def next_timer(self) -> float | None:
        deadlines = [self.channel.next_timer(), self._queue_tick_at, self.room_requests._next_sanction_end()]
        deadlines.append(self.classroom.next_quiet_end())
        deadlines.extend(room.flow.refresh_at for room in self._presence_due.values())
        deadlines.extend(rnd.next_at for rnd in self._presence_rounds.values())
        if self.gate.waiting:
            deadlines.append(self.gate.next_timer())
        while self._timers:
            deadline, _seq, sid = self._timers[0]
            sess = self.sessions.get(sid)
            if sess is None or sess.timer_at != deadline:
                heapq.heappop(self._timers)  # stale
                continue
            deadlines.append(deadline)
            break
        live = [d for d in deadlines if d is not None]
        return min(live) if live else None

    def handle_timer(self, now: float) -> None:
        self._now = now
        self.channel.handle_timer(now)
        for sid in self.channel.expired_sessions():  # never logged in: the channel forgot them
            sess = self.sessions.get(sid)
            if sess is not None:
                self._drop(sess)
        if self.room_requests._sanction_timers and self.room_requests._sanction_timers[0][0] <= _ms(now):
            self.room_requests._end_sanctions(now)
        if self.classroom._quiet_timers and self.classroom._quiet_timers[0][0] <= _ms(now):
            self.classroom.end_quiet(now)
        if self._presence_due:
            self._refresh_presence(now)
        if self._presence_rounds:
            self._step_presence_rounds(now)
        if self.gate.waiting or self._queue_tick_at is not None:
            if self._queue_tick_at is not None and now >= self._queue_tick_at:
                self.logins._on_queue_tick(now)
            else:
                self.logins._start_checks(now)  # a throttled check's budget may have refilled
        # Collect first, then handle: handling may schedule a deadline that is already due (an ACK
        # that goes out with the next flush), which must not be popped again in this same call.
        due: list[Session] = []
        while self._timers and self._timers[0][0] <= now:
            deadline, _seq, sid = heapq.heappop(self._timers)
            sess = self.sessions.get(sid)
            if sess is None or sess.timer_at != deadline:
                continue
            sess.timer_at = None
            due.append(sess)
        for sess in due:
            if sess.sid in self.sessions:
                self._on_session_timer(sess, now)

    def _on_session_timer(self, sess: Session, now: float) -> None:
        if sess.closing_at is not None and now >= sess.closing_at:
            self._drop(sess)
            return
        if sess.closing_at is None and now >= sess.timeout_check_at:
            if sess.login_pending:
                sess.last_heard = now  # waiting in the login queue is not silence (17.3)
            if now >= sess.last_heard + self.config.client_timeout_s:
                if sess.user is not None:
                    self._end_session(sess, "timed out", now)
                else:
                    self._drop(sess)
                return
            sess.timeout_check_at = self._timeout_check_after(sess.last_heard)
        sess.link.handle_timer(now)
        if sess.held_until is not None and now >= sess.held_until:
            self._release_held(sess, now)
        if sess.link.wants_to_send:
            self._dirty.add(sess)
        self._schedule(sess)


def _cost(message: Chat) -> float:
    return message.cost if isinstance(message, LongChat) else 1.0


def _room_message(stored: StoredMessage, extra_flags: int = 0) -> m.RoomMessage:
    return m.RoomMessage(
        stored.room,
        stored.seq,
        stored.ts_ms,
        stored.user,
        stored.text,
        stored.flags | extra_flags,
        stored.msg_id,
    )
