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
import hmac
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from ..protocol import messages as m
from ..protocol.channel import Address, ServerChannel
from ..protocol.errors import DecodeError, ErrorCode, RemoteProtocolError
from ..protocol.parts import Reassembler
from ..protocol.reliability import LinkConfig, ReliableLink
from ..protocol.text import long_preview, neutralize, over_limit, split_parts, truncate_utf8, utf8_len
from ..protocol.wire import decode_message, encode_message
from .accounts import LoginGate, LoginPolicy, PasswordCheck, RegistrationLimit
from .retention import RetentionPolicy
from .room import (
    MEMBERSHIP_EVENTS_BURST,
    MEMBERSHIP_EVENTS_PER_S,
    PRESENCE_REFRESH_CHUNK,
    PRESENCE_REFRESH_STEP_S,
    AwayState,
    MembershipFlow,
    Role,
    Room,
)
from .room_requests import RoomRequests
from .store import Store, StoredMessage, StoreError
from .tickets import TICKET_LIFETIME_S, TicketBook

log = logging.getLogger(__name__)

#: After a login, this many SAYs are checked against the store for a msg_id already stored: a client
#: resends its unconfirmed messages first thing after reconnecting (ours keeps at most 256 in flight).
RESEND_CHECK_SAYS = 1024
#: Message ids remembered in memory for deduplication (older ones are found in the store).
RECENT_IDS = 100_000
#: Private messages held for one offline recipient (docs/protocol.md section 16.2): a mailbox for
#: the absent, not an archive; more are refused so that nobody can fill the disk through one name.
MAX_HELD_PER_USER = 100
#: Held private messages older than this are deleted unread.
HELD_TTL_S = 7 * 24 * 3600
#: Recipients for whom "X is offline" notices are remembered before that memory starts over.
OFFLINE_NOTIFIED_RECIPIENTS = 10_000
#: Log lines show at most this much of a message, then how long it was: a 900-byte line, or a flood
#: of them, must not drown the operator's terminal.
LOG_TEXT_CHARS = 200
#: A waiting login hears LOGIN_QUEUED at least this often (docs/protocol.md 17.3)...
QUEUED_RESEND_S = 2.0
#: ...and at most this often when only its position changed.
QUEUED_UPDATE_S = 1.0


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
    capabilities: int = m.CAP_LONG_MESSAGES | m.CAP_ROOMS
    #: The class password (`--class-password`, docs/protocol.md 18.11): LOGINs with it for names that
    #: are not accounts come in as guests, and LOGIN no longer registers accounts. None: off.
    class_password: str | None = field(default=None, repr=False)


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
    #: Away (16.1) belongs to the user: one state shared by every room it is in (18.3).
    away: AwayState | None = None

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
_REQUEST_KINDS = frozenset({m.Kind.JOIN, m.Kind.PART, m.Kind.LIST, m.Kind.ROOM_SET, m.Kind.MODERATE})


@dataclass(slots=True)
class _PendingMessage:
    sender: Session
    say: m.Say | LongChat
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


class Relay(RoomRequests):
    """The whole server, minus sockets. See the module docstring. The rooms-and-roles requests
    (JOIN, PART, LIST, ROOM_SET, MODERATE, ANNOUNCEMENT_SEEN) live in room_requests.py."""

    def __init__(
        self,
        store: Store,
        channel: ServerChannel,
        config: RelayConfig | None = None,
        tickets: TicketBook | None = None,
    ) -> None:
        """`tickets` seals resumption tickets; without one, a key made now (tickets then die with
        the process: the command line passes one kept on disk)."""
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
        self._init_rooms(now_ms=None)

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
        return room

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
            log.info("%s moved from %s to %s", sess.user or "session", _fmt(sess.addr), _fmt(got.addr))
            sess.addr = got.addr
        try:
            frames = sess.link.receive_packet(got.payload, now)
        except DecodeError as exc:
            self.stats.bad_packets += 1
            log.debug("%s: bad packet: %s", _fmt(addr), exc)
            return
        sess.last_heard = now
        if sess.held_frames is not None:
            self._settle_held(sess)
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
            self._refuse_bad_request(sess, int.from_bytes(body[:4], "big"), exc)
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
            self._on_login(sess, message, now)
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
            self._on_room_request(sess, message, now)
        elif isinstance(message, m.AnnouncementSeen):
            self._on_announcement_seen(sess, message, now)
        elif isinstance(message, m.Who):
            room = sess.rooms.get(message.room)
            # An answer is many frames in a big room: WHO spends from the same bucket as messages,
            # so a client asking in a loop cannot make us queue without bound.
            if room is not None and self._take_token(sess, now):
                self._send_presence(sess, room, requested=1)
        elif isinstance(message, m.SetAway):
            self._on_set_away(sess, message, now)
        elif isinstance(message, m.Bye):
            self._end_session(sess, "quit", now)
        elif isinstance(message, m.Ping):
            pass  # its acknowledgement is the answer
        else:
            self.stats.protocol_violations += 1  # a server-to-client kind sent to us

    # ------------------------------------------------------------ login

    def _on_login(self, sess: Session, login: m.Login, now: float) -> None:
        """docs/protocol.md 8.2 in order: room, ticket, unknown name, throttle and queue."""
        if sess.user is not None or sess.login_pending:
            return
        if self.shutting_down:
            self._send(sess, m.Closed(ErrorCode.SERVER_SHUTDOWN, "the server is shutting down"))
            return
        if login.room not in self.rooms:
            # Rooms are the server's to create: a client naming any room must not grow memory.
            self._login_failed(sess, login, ErrorCode.NO_SUCH_ROOM, f"no room named {login.room}", now)
            return
        record = self.store.password_record(login.user)
        if login.ticket:
            salt = record[0] if record is not None else self._guest_salt()
            if salt and self.tickets.open(login.ticket, login.user, salt, now):
                self.stats.ticket_logins += 1
                self._logged_in(
                    sess, login, salt, registered=False, now=now, via_ticket=True, guest=record is None
                )  # fmt: skip
                return
            if not login.password:
                self._login_failed(
                    sess, login, ErrorCode.TICKET_REJECTED,
                    "Your saved login has expired: log in with your password", now,
                )  # fmt: skip
                return
        if record is None and self.config.class_password is not None:
            guest = self.online_by_key.get(m.name_key(login.user))
            if guest is not None and guest.guest:
                text = f"{login.user} is in use by a guest now: pick another name"
                self._login_failed(sess, login, ErrorCode.NAME_IN_USE, text, now)
                return
        elif record is None and not self._may_register(sess, login, now):
            return
        check = PasswordCheck(sess.sid, login, record, self.store.scrypt_n)
        refusal = self.gate.admit(check, sess.addr[0], now)
        if refusal is not None:
            wait = max(1, math.ceil(refusal.wait_s))
            if refusal.reason == "busy":
                code, text = ErrorCode.SERVER_BUSY, f"the server is busy with logins: try again in {wait} s"
            elif refusal.reason == "name":
                code, text = ErrorCode.LOGIN_THROTTLED, (
                    f"too many failed logins for {login.user}: try again in {wait} s"
                )
            else:
                code, text = ErrorCode.LOGIN_THROTTLED, (
                    f"too many failed logins from your address: try again in {wait} s"
                )
            self._login_failed(sess, login, code, text, now, retry_after_s=wait)
            return
        sess.login_pending = True
        # Admitted to a password check: the channel's pre-login bounds (10 s, 16 per host) are for
        # sessions nobody has vouched for. This one waits in a queue bounded by the gate, and a
        # class behind one address, or a long queue, must not be cut off while it waits. If the
        # check fails, `_login_failed` ends the session, so it cannot be parked here.
        self.channel.mark_authenticated(sess.sid)
        self._start_checks(now)
        if check in self.gate.waiting:
            self._tell_queued(sess, check, now)

    def _may_register(self, sess: Session, login: m.Login, now: float) -> bool:
        """An unknown name: may this LOGIN register it? If not, it has been answered."""
        if not self.config.registration_open:
            self._login_failed(
                sess, login, ErrorCode.REGISTRATION_CLOSED,
                "Registration is closed: ask the server's admin for an account", now,
            )  # fmt: skip
            return False
        if login.flags & m.LOGIN_NO_REGISTER:
            self._login_failed(
                sess, login, ErrorCode.NO_SUCH_ACCOUNT,
                f"No account {login.user!r} here yet: log in again to create it", now,
            )  # fmt: skip
            return False
        if len(login.password) < m.MIN_NEW_PASSWORD_CHARS:
            self._login_failed(
                sess, login, ErrorCode.INVALID_PASSWORD,
                f"New accounts need a password of at least {m.MIN_NEW_PASSWORD_CHARS} characters", now,
            )  # fmt: skip
            return False
        wait = self.registrations.take(sess.addr[0], now)
        if wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            self._login_failed(
                sess, login, ErrorCode.REGISTRATION_LIMITED,
                f"too many new accounts from your address: try again in {minutes} min",
                now, retry_after_s=math.ceil(wait),
            )  # fmt: skip
            return False
        return True

    def _start_checks(self, now: float) -> None:
        """Hand the transport every check the gate lets run now."""
        for check in self.gate.start_ready(now):
            if check.session_id in self.sessions:
                self.stats.password_checks += 1
                self._checks.append(check)
            else:  # the session went away while it waited
                self.gate.finished(check, now)
        if self.gate.waiting and self._queue_tick_at is None:
            self._queue_tick_at = now + QUEUED_UPDATE_S

    def _tell_queued(self, sess: Session, check: PasswordCheck, now: float) -> None:
        position = self.gate.position(check)
        check.told_position, check.told_at = position, now
        eta_ms = min(0xFFFF_FFFF, int(self.gate.eta_s(position) * 1000))
        self._send(sess, m.LoginQueued(position, eta_ms))

    def _on_queue_tick(self, now: float) -> None:
        """Tell waiting logins their place when it changed (at most once a second), and every 2 s
        anyway, so that their clients keep waiting."""
        self._queue_tick_at = None
        self._start_checks(now)
        for position, check in enumerate(self.gate.waiting):
            sess = self.sessions.get(check.session_id)
            if sess is None:
                continue
            if position != check.told_position or now - check.told_at >= QUEUED_RESEND_S - 1e-6:
                self._tell_queued(sess, check, now)
        if self.gate.waiting and self._queue_tick_at is None:
            self._queue_tick_at = now + QUEUED_UPDATE_S

    def password_checks(self) -> list[PasswordCheck]:
        """scrypt work for the transport to run off the event loop, then hand to `complete_login`."""
        checks, self._checks = self._checks, []
        return checks

    def complete_login(self, check: PasswordCheck, now: float) -> None:
        """Finish a login once its password check has run (`check.ok` and, for new accounts, the hash)."""
        self._now = now
        self.gate.finished(check, now)
        self._start_checks(now)
        sess = self.sessions.get(check.session_id)
        if sess is None or not sess.login_pending:
            return
        sess.login_pending = False
        login = check.login
        registered = False
        salt = check.record[0] if check.record is not None else b""
        if check.record is None and self.config.class_password is not None:
            # 18.11: a name with no account is a guest if it knows the class password. The check
            # went through the gate like any password check, so guesses are throttled the same way.
            if not hmac.compare_digest(login.password.encode(), self.config.class_password.encode()):
                self._login_failed(sess, login, ErrorCode.INVALID_PASSWORD, "wrong class password", now)
                return
            if self.store.get_account(login.user) is not None or m.name_key(login.user) in self.online_by_key:
                self._login_failed(
                    sess, login, ErrorCode.NAME_IN_USE, f"{login.user} is in use: pick another name", now
                )  # fmt: skip
                return
            self._logged_in(sess, login, self._guest_salt(), registered=False, now=now, guest=True)
            return
        if check.record is None:
            assert check.new_hash is not None
            if self.store.get_account(login.user) is None:
                salt, digest = check.new_hash
                self.store.insert_account(login.user, salt, digest, check.scrypt_n)
                registered = True
            elif not self.store.check_password(login.user, login.password):
                self._login_failed(sess, login, ErrorCode.INVALID_PASSWORD, "Invalid password", now)
                return
            else:
                record = self.store.password_record(login.user)
                salt = record[0] if record is not None else b""
        elif not check.ok:
            self._login_failed(sess, login, ErrorCode.INVALID_PASSWORD, "Invalid password", now)
            return
        self._logged_in(sess, login, salt, registered=registered, now=now)

    def _logged_in(
        self,
        sess: Session,
        login: m.Login,
        salt: bytes,
        *,
        registered: bool,
        now: float,
        via_ticket: bool = False,
        guest: bool = False,
    ) -> None:
        """The password, the ticket or the class password was good: join the rooms (18.3), hand
        out a fresh ticket."""
        account = None if guest else self.store.get_account(login.user)
        user = account.name if account else login.user
        key = m.name_key(user)
        multi = bool(login.flags & m.CAP_ROOMS and self.config.capabilities & m.CAP_ROOMS)
        admin = account is not None and self.store.is_admin(user)
        rooms = self._rooms_at_login(user, multi, guest, admin, login, now)
        if isinstance(rooms, tuple):
            self._login_failed(sess, login, rooms[0], rooms[1], now)
            return
        self.channel.mark_authenticated(sess.sid)  # lifts the channel's pre-login limits
        self.gate.succeeded(login.user, sess.addr[0], now)
        sess.user, sess.caps, sess.multi, sess.admin, sess.guest = user, login.flags, multi, admin, guest
        sess.tokens, sess.tokens_at = float(self.config.rate_burst), now
        sess.fresh_says = RESEND_CHECK_SAYS
        old = self.online_by_key.get(key)
        self.online_by_key[key] = sess
        self.stats.logins += 1
        flags = self.config.capabilities | (m.LOGIN_OK_GUEST if guest else 0)
        if not multi:
            flags &= ~(m.CAP_ROOMS | m.LOGIN_OK_GUEST)  # 18.12: nothing of section 18 to a version-1 client
        self._send(sess, m.LoginOk(
            user, rooms[0].name, self.config.server_name, int(registered),
            int(self.config.client_timeout_s * 1000), flags,
        ))  # fmt: skip
        if salt:
            self._send(sess, m.Ticket(self.tickets.issue(user, salt, now), self.tickets.lifetime_s))
        kept: dict[str, Room] = {}
        if old is not None and old is not sess:
            # One live session per name: the newer login wins, and the old client is told why.
            log.info("%s logged in again from %s; replacing the session from %s",
                     user, _fmt(sess.addr), _fmt(old.addr))  # fmt: skip
            self._send(old, m.Closed(ErrorCode.REPLACED, f"logged in again from {_fmt(sess.addr)}"))
            sess.away = old.away
            kept = old.rooms
            new_names = {r.name for r in rooms}
            for room in list(kept.values()):
                if room.name not in new_names and room.remove_member(user, old.sid):
                    self._announce_membership(room, m.Left(room.name, user, _ms(now), "quit"), old, now)
            self._forget_session(old)
            old.closing_at = now + self.config.linger_s
            self._schedule(old)
        else:
            log.info(
                "[bold green]%s joined[/] from %s (%d online)%s%s",
                user, _fmt(sess.addr), len(self.online_by_key),
                " with a resumption ticket" if via_ticket else "", " as a guest" if guest else "",
            )  # fmt: skip
        cursors = dict(login.cursors[: m.MAX_CURSORS])
        for room in rooms:
            resume = login.resume_seq if room.name == login.room else cursors.get(room.name, 0)
            self._enter_room(sess, room, resume, now, announce=room.name not in kept)
        self._deliver_held(sess, now)

    def _rooms_at_login(
        self, user: str, multi: bool, guest: bool, admin: bool, login: m.Login, now: float
    ) -> list[Room] | tuple[ErrorCode, str]:
        """The rooms a login joins (18.3, 18.12), or why LOGIN's room refuses it."""
        key, now_ms = m.name_key(user), _ms(now)
        rooms: list[Room] = []
        if multi and not guest:
            for name in self.store.memberships_of(user):
                room = self.rooms.get(name)
                role = Role.ADMIN if admin else Role.MEMBER
                if room is None or room.check_join(key, role, room.key, now_ms) is not None:
                    self.store.remove_membership(user, name)  # banned since: dropped from the list
                    continue
                if len(rooms) < m.MAX_ROOMS_PER_USER:
                    rooms.append(room)
        if rooms:
            return rooms
        room = self.rooms[login.room]
        role = room.role_of(key, admin=admin, guest=guest)
        refusal = room.check_join(key, role, "", now_ms)
        if refusal is not None:
            return refusal
        if multi and not guest:
            self.store.add_membership(user, room.name)
            room.account_members += 1
        return [room]

    def _enter_room(self, sess: Session, room: Room, resume_seq: int, now: float, *, announce: bool) -> None:
        """`sess` joins `room`: the room hears JOINED (unless the user was in it already, on the
        session this one replaces), the session gets 18.3's sequence for the room."""
        user = sess.user
        assert user is not None
        key = m.name_key(user)
        flags = (m.MEMBER_GUEST if sess.guest else 0) | (m.MEMBER_ADMIN if sess.admin else 0)
        room.add_member(user, sess.sid, flags)
        sess.rooms[room.name] = room
        if sess.away is not None:
            room.away[key] = sess.away
        if announce:
            self._announce_membership(room, m.Joined(room.name, user, _ms(now)), sess, now)
        if sess.multi:
            self._send(sess, room.state_for(key, _ms(now)))
            if room.announcement_text:
                self._send(sess, self._announcement(room))
                if room.member_role(key) >= Role.OP:
                    self._send(sess, room.tally(self._tally_names(room)))
        self._replay_history(sess, room, resume_seq)
        self._send_presence(sess, room)
        if not sess.multi and room.announcement_text:
            self._send(sess, m.Notice(ErrorCode.ROOM_NEWS, self._announcement_line(room)))

    def _login_failed(
        self, sess: Session, login: m.Login, code: ErrorCode, text: str, now: float, *, retry_after_s: int = 0
    ) -> None:
        """Refuse a login and end the session: a client tries again on a new one (docs/protocol.md
        8.2). Wrong passwords were charged to the throttle when their check was admitted."""
        self.stats.failed_logins += 1
        log.info("login as %s from %s refused: %s", login.user, _fmt(sess.addr), text)
        self._send(sess, m.LoginFailed(code, text, min(0xFFFF_FFFF, retry_after_s * 1000)))
        sess.closing_at = now + self.config.linger_s  # long enough to retransmit the refusal
        self._schedule(sess)

    def _replay_history(self, sess: Session, room: Room, resume_seq: int) -> None:
        if resume_seq == 0:
            history = self.store.last_messages(room.name, self.config.history_on_join)
            flags = m.FLAG_HISTORY
        else:
            history = room.recent_after(resume_seq, self.config.max_backlog_frames) or []
            if not history and resume_seq < room.next_seq - 1:
                history = self.store.messages_after(room.name, resume_seq, self.config.max_backlog_frames)
            flags = 0
        last = max(resume_seq, room.next_seq - 1)
        for stored in history:
            self._send_stored(sess, stored, flags)
            last = stored.seq
            if resume_seq and sess.link.backlog >= self.config.max_backlog_frames:
                break  # long messages are many frames each: the rest comes by catch-up (8.8)
        if last < room.next_seq - 1:
            sess.lagging[room.name] = last

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
            self._whisper(sess, message, now)
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
        stored = StoredMessage(
            room.name,
            room.allocate_seq(),
            _ms(now),
            sess.user,
            message.text,
            message.flags & m.FLAG_ACTION,
            message.msg_id,
        )
        self._pending.append(_PendingMessage(sess, message, stored))
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

    def _whisper(self, sess: Session, message: m.Whisper | LongChat, now: float) -> None:
        assert sess.user is not None
        key = (m.name_key(sess.user), message.msg_id)
        if (known := self._recent_ids.get(key)) is not None:
            self._send(sess, m.Accepted(message.msg_id, "", 0, known[2]))  # a resend: relay once
            return
        target = self._online_session(message.to)
        if target is None:
            self._hold_whisper(sess, message, now)
            return
        assert target.user is not None
        ts = _ms(now)
        flags = message.flags & m.FLAG_ACTION
        for private in _private_frames(sess.user, target.user, ts, message.text, flags, target.caps):
            self._send(target, private)
        self._send(sess, m.Accepted(message.msg_id, "", 0, ts))
        self._remember_id(key, ("", 0, ts))
        log.info("private message %s -> %s", sess.user, target.user)
        away = target.away
        if away is not None and target is not sess and key[0] not in away.notified:
            away.notified.add(key[0])
            because = f": {away.reason}" if away.reason else ""
            text = truncate_utf8(f"{target.user} is away{because}", m.MAX_NOTICE_BYTES)
            self._send(sess, m.Notice(ErrorCode.USER_AWAY, text))

    def _online_session(self, name: str) -> Session | None:
        """The live, logged-in session of `name` (in any room), or None: one dictionary look-up."""
        return self.online_by_key.get(m.name_key(name))

    def _hold_whisper(self, sess: Session, message: m.Whisper | LongChat, now: float) -> None:
        """A WHISPER to an account that is not online: keep it for its next login (section 16.2)."""
        assert sess.user is not None
        account = self.store.get_account(message.to)
        if account is None:
            self._send(
                sess,
                m.Rejected(message.msg_id, ErrorCode.NO_SUCH_USER, 0, f"{message.to} is not online"),
            )
            return
        ts = _ms(now)
        self.store.expire_held(ts - HELD_TTL_S * 1000)
        held_ts = self.store.find_held(sess.user, message.msg_id)
        if held_ts is None:
            if self.store.held_count(account.name) >= MAX_HELD_PER_USER:
                self._send(sess, m.Rejected(
                    message.msg_id, ErrorCode.RECIPIENT_OFFLINE, 0,
                    f"{account.name} is offline and has too many messages waiting",
                ))  # fmt: skip
                return
            held_ts = self.store.hold_private(
                sess.user, account.name, ts, message.text, message.flags & m.FLAG_ACTION, message.msg_id
            )  # committed: the ACCEPTED below is a promise that survives a crash
        self._send(sess, m.Accepted(message.msg_id, "", 0, held_ts))
        self._remember_id((m.name_key(sess.user), message.msg_id), ("", 0, held_ts))
        log.info("private message %s -> %s held: %s is offline", sess.user, account.name, account.name)
        if len(self._offline_notified) >= OFFLINE_NOTIFIED_RECIPIENTS:
            self._offline_notified.clear()  # at worst, a sender is told twice
        told = self._offline_notified.setdefault(account.key, set())
        if m.name_key(sess.user) not in told:
            told.add(m.name_key(sess.user))
            self._send(sess, m.Notice(
                ErrorCode.RECIPIENT_OFFLINE,
                f"{account.name} is offline: will be delivered when {account.name} returns",
            ))  # fmt: skip

    def _deliver_held(self, sess: Session, now: float) -> None:
        """After a login: every private message held for this user, oldest first, flagged HELD with
        its original time. Rows are deleted only once the link has acknowledged them (`_settle_held`)."""
        assert sess.user is not None
        self._offline_notified.pop(m.name_key(sess.user), None)
        # Expired rows are left for the next hold to delete (it writes anyway): a login only reads.
        held = self.store.held_for(sess.user, MAX_HELD_PER_USER, _ms(now) - HELD_TTL_S * 1000)
        if not held:
            return
        frames = []
        for h in held:
            flags = (h.flags & m.FLAG_ACTION) | m.FLAG_HELD
            for private in _private_frames(h.sender, sess.user, h.ts_ms, h.text, flags, sess.caps):
                # A long one is several frames: its row goes once all of them are acknowledged.
                frames.append((sess.link.send(private.KIND, encode_message(private)), h.id))
        sess.held_frames = frames
        self._dirty.add(sess)
        log.info("%s: %d held private message(s) delivered", sess.user, len(held))

    def _settle_held(self, sess: Session) -> None:
        """Delete the held messages whose frames the recipient has acknowledged."""
        assert sess.held_frames is not None
        waiting = {held_id for seq, held_id in sess.held_frames if not sess.link.acked(seq)}
        done = list(dict.fromkeys(held_id for _, held_id in sess.held_frames if held_id not in waiting))
        if not done:
            return
        self.store.delete_held(done)
        settled = set(done)
        rest = [pair for pair in sess.held_frames if pair[1] not in settled]
        sess.held_frames = rest or None

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
            log.info("%s is back", user)
        else:
            log.info("%s is away: %s", user, _escape(_excerpt(reason)))
        for room in sess.rooms.values():
            self._broadcast(room, m.Away(room.name, user, message.away, reason or "", ts))

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
            self._confirm(p.sender, p.say.msg_id, room.name, p.stored.seq, p.stored.ts_ms)
            self.stats.messages_relayed += 1
            self.stats.deliveries += count
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "<%s> %s  [dim](#%d, forwarded to %d)[/]",
                    p.stored.user,
                    _escape(_excerpt(p.stored.text)),
                    p.stored.seq,
                    count,
                )

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

    def _fan_out_long(self, room: Room, stored: StoredMessage, exclude: Session) -> int:
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
            log.warning("%s: %s failed: %s", sess.user, type(req).__name__, exc)
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
            log.info("[bold red]%s left[/] (%s) from %s (%d online)",
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
        sess.user = None
        sess.rooms = {}
        sess.lagging.clear()
        sess.held.clear()
        sess.held_until = None
        sess.parts = None

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

    # ------------------------------------------------------------ output and timers

    def _send(self, sess: Session, message: m.Message) -> None:
        sess.link.send(message.KIND, encode_message(message))
        self._dirty.add(sess)

    def _send_presence(self, sess: Session, room: Room, requested: int = 0, now: float | None = None) -> None:
        # Every away member first: the PRESENCE that follows closes the listing (section 16.1).
        for user, state in room.away_listing() if room.away else ():
            self._send(sess, m.Away(room.name, user, 1, state.reason, state.since_ms, listing=1))
        # `modes` only to CAP_ROOMS sessions (18.7); the clock is the last thing this relay heard.
        modes = room.presence_modes(_ms(self._now if now is None else now)) if sess.multi else ""
        for part in m.presence_parts(room.name, room.users(), requested, modes):
            self._send(sess, part)

    def _announce_membership(self, room: Room, change: m.Joined | m.Left, sess: Session, now: float) -> None:
        """JOINED/LEFT to the others while the room is calm; during a flood, a PRESENCE refresh later
        (room.py, `MembershipFlow`): fan-out that grows with members, not members x changes."""
        if room.flow.announce_individually(now, len(room.members)):
            self._broadcast(room, change, exclude=sess)
        else:
            self._presence_due[room.name] = room

    def _refresh_presence(self, now: float) -> None:
        """Start the PRESENCE refreshes that are due (`handle_timer` then sends their first step)."""
        due = [r for r in self._presence_due.values() if (r.flow.refresh_at or now) <= now]
        for room in due:
            del self._presence_due[room.name]
            carried = room.flow.refreshed()
            # A round still under way is replaced: the new one carries the newer list to everyone.
            self._presence_rounds[room.name] = _PresenceRound(room, list(room.members.values()), now)
            log.info("%d joins and leaves in %s sent as one member list (%d online)", carried, room.name,
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
            listing = room.away_listing() if room.away else ()
            parts: list[m.Message] = [
                m.Away(room.name, user, 1, state.reason, state.since_ms, listing=1) for user, state in listing
            ]
            users = room.users()
            plain = [*parts, *m.presence_parts(room.name, users)]
            bodies = [(part.KIND, encode_message(part)) for part in plain]
            with_modes: list[tuple[int, bytes]] | None = None  # for CAP_ROOMS sessions, made once
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
                for kind, body in with_modes if sess.multi and with_modes is not None else bodies:
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
        if self._tally_due:
            self._send_tallies()
        out = self.channel.datagrams_to_send()
        self.stats.datagrams_sent += len(out)
        yield from out
        dirty, self._dirty = self._dirty, set()
        stats, seal, sessions = self.stats, self.channel.seal, self.sessions
        for sess in dirty:
            if sess.sid not in sessions:
                continue
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
        deadlines = [self.channel.next_timer(), self._queue_tick_at, self._next_sanction_end()]
        deadlines.extend(room.flow.refresh_at for room in self._presence_due.values())
        deadlines.extend(rnd.next_at for rnd in self._presence_rounds.values())
        if self.gate.waiting:
            deadlines.append(self.gate.next_timer())
        while self._timers:
            deadline, _, sid = self._timers[0]
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
        if self._sanction_timers and self._sanction_timers[0][0] <= _ms(now):
            self._end_sanctions(now)
        if self._presence_due:
            self._refresh_presence(now)
        if self._presence_rounds:
            self._step_presence_rounds(now)
        if self.gate.waiting or self._queue_tick_at is not None:
            if self._queue_tick_at is not None and now >= self._queue_tick_at:
                self._on_queue_tick(now)
            else:
                self._start_checks(now)  # a throttled check's budget may have refilled
        # Collect first, then handle: handling may schedule a deadline that is already due (an ACK
        # that goes out with the next flush), which must not be popped again in this same call.
        due: list[Session] = []
        while self._timers and self._timers[0][0] <= now:
            deadline, _, sid = heapq.heappop(self._timers)
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


def _private_frames(sender: str, to: str, ts_ms: int, text: str, flags: int, caps: int) -> list[m.Message]:
    """A private message as its recipient can read it: one PRIVATE, the parts of a long one, or the
    preview of a long one for a client that does not read parts (docs/protocol.md section 15.3)."""
    if not over_limit(text):
        return [m.Private(sender, to, ts_ms, text, flags)]
    if caps & m.CAP_LONG_MESSAGES:
        pieces = split_parts(text)
        count = len(pieces)
        return [m.PrivatePart(sender, to, ts_ms, flags, i, count, piece) for i, piece in enumerate(pieces)]
    return [m.Private(sender, to, ts_ms, long_preview(text), flags)]


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


def _ms(now: float) -> int:
    return int(now * 1000)


def _fmt(addr: Address) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _excerpt(text: str) -> str:
    """At most `LOG_TEXT_CHARS` of a user's text for the log, saying how long the whole was."""
    if len(text) <= LOG_TEXT_CHARS:
        return text
    return f"{text[:LOG_TEXT_CHARS]}… ({len(text)} chars)"


def _escape(text: str) -> str:
    """Log lines go through Rich markup: user text must not be able to style (or hide) itself."""
    return neutralize(text).replace("[", "\\[")
