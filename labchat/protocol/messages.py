"""Typed application messages: what a client and the server say to each other.

Every message is a slotted dataclass that checks itself when it is built, so an invalid message never
exists in memory: a name that breaks the name rule, an empty or over-long text, a room name that is not a
room name. Decoding goes through the same constructors, so whatever `wire.decode_message` returns has
passed the same checks as what we send.

They are values: nothing changes a message after it is built. They are not `frozen`, because a frozen
dataclass sets each field through `object.__setattr__`, and a chat line is decoded into one of these on
every client for every message: measured, that (with the event made from it) was a fifth of the client's
CPU per delivered message.

Each class declares its wire `KIND` and its `FIELDS` in order; `wire.py` turns that table into bytes, and
docs/protocol.md lists the same tables. Receivers ignore bytes after the last field they know, which is
how a later version adds a field without a new message kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from .errors import ErrorCode, LocalProtocolError

#: Longest chat text in one message, in UTF-8 bytes. Chosen so that the largest message frame, with every
#: header of the secure channel and the reliability layer, still fits one 1200-byte datagram with room to
#: spare for acknowledgements; the client splits longer input into consecutive messages.
MAX_TEXT_BYTES = 900
#: Longest password accepted, in UTF-8 bytes (scrypt does not care; the datagram budget does).
MAX_PASSWORD_BYTES = 256
#: Shortest password a new account may register with.
MIN_NEW_PASSWORD_CHARS = 4
#: Longest server notice or error text, in UTF-8 bytes.
MAX_NOTICE_BYTES = 600
#: Longest away reason, in UTF-8 bytes: a status line, not a message (docs/protocol.md section 16.1).
MAX_AWAY_REASON_BYTES = 200
#: The room every client joins; rooms are objects on the server so that more can come later.
DEFAULT_ROOM = "lobby"
#: Longest logical message, in UTF-8 bytes: a page of text or a stack trace. It travels in parts of at
#: most `MAX_TEXT_BYTES` (docs/protocol.md section 15), so every frame still fits one datagram.
MAX_LONG_TEXT_BYTES = 16384
#: Parts one long message may be cut into: 19 are needed at 900 bytes; a sender may cut smaller.
MAX_PARTS = 64
#: Capability bit in the `flags` appended to LOGIN (the client reassembles MESSAGE_PART and
#: PRIVATE_PART) and to LOGIN_OK (the server takes SAY_PART, HISTORY and SEARCH). Bits 8-15 of those
#: flags belong to this feature; bits 0-7 and 16-23 to others (docs/protocol.md section 15.1).
CAP_LONG_MESSAGES = 0x0000_0100
#: Messages in one history page at most.
MAX_HISTORY_PAGE = 100
#: Search hits in one answer at most, newest first.
MAX_SEARCH_HITS = 50
#: Longest search query, in UTF-8 bytes.
MAX_QUERY_BYTES = 256
#: Longest search snippet, in UTF-8 bytes.
MAX_SNIPPET_BYTES = 300

NAME_RULE = (
    "1-20 characters: ASCII letters (a-z, A-Z), digits, '_' or '-', starting with a letter "
    "(case-insensitive)"
)
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,19}")
_ROOM_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


#: Names per PRESENCE part: 40 names of at most 20 bytes keep a part well inside one frame.
PRESENCE_NAMES_PER_PART = 40


def presence_parts(room: str, users: tuple[str, ...], requested: int = 0) -> list[Presence]:
    """The online list as one or more PRESENCE messages (all but the last say `more`)."""
    chunks = [users[i : i + PRESENCE_NAMES_PER_PART] for i in range(0, len(users), PRESENCE_NAMES_PER_PART)]
    chunks = chunks or [()]
    return [Presence(room, chunk, requested, int(i < len(chunks) - 1)) for i, chunk in enumerate(chunks)]


def is_valid_name(name: str) -> bool:
    """Names are ASCII so that two users can never look alike on screen (no homoglyphs)."""
    return _NAME_RE.fullmatch(name) is not None


def name_key(name: str) -> str:
    """Names are unique regardless of case: 'Alice' and 'alice' are the same account."""
    return name.casefold()


def _check_name(name: str, what: str = "name") -> None:
    if not is_valid_name(name):
        raise LocalProtocolError(f"invalid {what} {name!r}: {NAME_RULE}", ErrorCode.INVALID_NAME)


def _check_room(room: str) -> None:
    if _ROOM_RE.fullmatch(room) is None:
        raise LocalProtocolError(f"invalid room name {room!r}", ErrorCode.NO_SUCH_ROOM)


def _check_msg_id(msg_id: int) -> None:
    # 0 would make a resend indistinguishable from "no id" (section 7.3): refused, never deduplicated.
    if msg_id == 0:
        raise LocalProtocolError("msg_id 0 is reserved", ErrorCode.BAD_MESSAGE)


def _check_text(text: str, limit: int = MAX_TEXT_BYTES, *, allow_empty: bool = False) -> None:
    if not text and not allow_empty:
        raise LocalProtocolError("empty message", ErrorCode.BAD_MESSAGE)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise LocalProtocolError("text is not valid Unicode", ErrorCode.BAD_MESSAGE) from None
    if size > limit:
        raise LocalProtocolError(f"text is {size} bytes, the limit is {limit}", ErrorCode.BAD_MESSAGE)


class Kind(IntEnum):
    """Message kinds on the wire. 1-31 go from client to server, 32-63 from server to client."""

    LOGIN = 1
    SAY = 2
    WHISPER = 3
    WHO = 4
    BYE = 5
    PING = 6
    SAY_PART = 7
    HISTORY = 8
    SEARCH = 9
    SET_AWAY = 11

    LOGIN_OK = 32
    LOGIN_FAILED = 33
    ACCEPTED = 34
    REJECTED = 35
    MESSAGE = 36
    JOINED = 37
    LEFT = 38
    PRESENCE = 39
    PRIVATE = 40
    NOTICE = 41
    CLOSED = 42
    MESSAGE_PART = 43
    PRIVATE_PART = 44
    HISTORY_ENTRY = 45
    SEARCH_HIT = 46
    REQUEST_DONE = 47
    AWAY = 48

    LOGIN_QUEUED = 53
    TICKET = 54


class Field(IntEnum):
    """Field encodings (see wire.py): fixed-width big-endian integers, or length-prefixed UTF-8."""

    U8 = 1
    U16 = 2
    U32 = 3
    U64 = 4
    STR = 5  #: u16 byte length, then UTF-8
    STRS = 6  #: u16 count, then that many STR


#: Message flags (a u8 bit set) carried by MESSAGE and PRIVATE.
FLAG_ACTION = 0x01  #: "/me waves": shown as an action, not a quote.
FLAG_HISTORY = 0x02  #: replayed from the room's history to a newcomer, not live.
FLAG_HELD = 0x10  #: PRIVATE held by the server while its recipient was offline; ts_ms is when it was sent.

#: LOGIN flags (the appended `flags U32`; bits 0-7 belong to login, docs/protocol.md 17.1).
LOGIN_NO_REGISTER = 0x1  #: an unknown name fails with NO_SUCH_ACCOUNT instead of being registered.
#: Longest resumption ticket accepted, in characters (base64url; the server's are about 110).
MAX_TICKET_CHARS = 200


@dataclass(slots=True)
class Message:
    """Base of every application message."""

    KIND: ClassVar[Kind]
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]]
    #: How many of FIELDS every sender includes; the ones after were appended by a later version
    #: and may be absent on the wire (their defaults apply). None: all of them.
    REQUIRED_FIELDS: ClassVar[int | None] = None


# ---------------------------------------------------------------- client -> server


@dataclass(slots=True)
class Login(Message):
    """Log in (registering the name when the server allows it) and join `room`.

    `resume_seq` is the last room sequence number the client has shown; the server replays everything
    after it, so a reconnecting client misses nothing. 0 asks for the newcomer's view (recent history).
    `flags` and `ticket` were appended (docs/protocol.md 17.1): a first-version client sends neither,
    which reads as "register if allowed, no ticket".
    """

    KIND: ClassVar[Kind] = Kind.LOGIN
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("user", Field.STR),
        ("password", Field.STR),
        ("room", Field.STR),
        ("resume_seq", Field.U64),
        ("flags", Field.U32),
        ("ticket", Field.STR),
    )
    REQUIRED_FIELDS: ClassVar[int | None] = 4
    user: str
    password: str = field(repr=False)
    room: str = DEFAULT_ROOM
    resume_seq: int = 0
    #: LOGIN_* bits; bits 8-23 belong to other features (docs/protocol.md 17.1).
    flags: int = 0
    #: A resumption ticket from TICKET, or "" (none). As secret as the password: not in repr.
    ticket: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        _check_name(self.user)
        _check_room(self.room)
        if len(self.ticket) > MAX_TICKET_CHARS:
            raise LocalProtocolError("ticket too long", ErrorCode.PROTOCOL_VIOLATION)
        try:
            too_long = len(self.password.encode("utf-8")) > MAX_PASSWORD_BYTES
        except UnicodeEncodeError:
            raise LocalProtocolError("password is not valid Unicode", ErrorCode.INVALID_PASSWORD) from None
        if too_long:
            raise LocalProtocolError("password too long", ErrorCode.INVALID_PASSWORD)


@dataclass(slots=True)
class Say(Message):
    """A chat line for the room. `msg_id` is chosen by the client and makes resending idempotent."""

    KIND: ClassVar[Kind] = Kind.SAY
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("msg_id", Field.U64),
        ("room", Field.STR),
        ("text", Field.STR),
        ("flags", Field.U8),
    )
    msg_id: int
    room: str
    text: str
    flags: int = 0

    def __post_init__(self) -> None:
        _check_msg_id(self.msg_id)
        _check_room(self.room)
        _check_text(self.text)


@dataclass(slots=True)
class Whisper(Message):
    """A private message that only `to` (and the sender) sees."""

    KIND: ClassVar[Kind] = Kind.WHISPER
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("msg_id", Field.U64),
        ("to", Field.STR),
        ("text", Field.STR),
        ("flags", Field.U8),
    )
    msg_id: int
    to: str
    text: str
    flags: int = 0

    def __post_init__(self) -> None:
        _check_msg_id(self.msg_id)
        _check_name(self.to, "recipient")
        _check_text(self.text)


@dataclass(slots=True)
class Who(Message):
    """Ask for the room's online list; answered with PRESENCE."""

    KIND: ClassVar[Kind] = Kind.WHO
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("room", Field.STR),)
    room: str = DEFAULT_ROOM

    def __post_init__(self) -> None:
        _check_room(self.room)


@dataclass(slots=True)
class Bye(Message):
    """Leave on purpose: the room is told at once, instead of after a timeout."""

    KIND: ClassVar[Kind] = Kind.BYE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = ()


@dataclass(slots=True)
class Ping(Message):
    """Keepalive. It is reliable, so its acknowledgement proves the path works and measures the RTT."""

    KIND: ClassVar[Kind] = Kind.PING
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = ()


@dataclass(slots=True)
class SetAway(Message):
    """Mark the sender away (`away` 1, with an optional `reason`) or back (`away` 0): section 16.1."""

    KIND: ClassVar[Kind] = Kind.SET_AWAY
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("away", Field.U8), ("reason", Field.STR))
    away: int
    reason: str = ""

    def __post_init__(self) -> None:
        if self.away not in (0, 1):
            raise LocalProtocolError(f"away must be 0 or 1, not {self.away}", ErrorCode.BAD_MESSAGE)
        _check_text(self.reason, MAX_AWAY_REASON_BYTES, allow_empty=True)


# ---------------------------------------------------------------- server -> client


@dataclass(slots=True)
class LoginOk(Message):
    """Logged in. `user` is the account's own spelling; `registered` says a new account was made."""

    KIND: ClassVar[Kind] = Kind.LOGIN_OK
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("user", Field.STR),
        ("room", Field.STR),
        ("server_name", Field.STR),
        ("registered", Field.U8),
        ("client_timeout_ms", Field.U32),
        ("flags", Field.U32),
    )
    REQUIRED_FIELDS: ClassVar[int | None] = 5
    user: str
    room: str
    server_name: str = "labchat"
    registered: int = 0
    #: The server drops a session silent this long; clients keep alive at a third of it at most.
    client_timeout_ms: int = 30_000
    #: What the server understands (`CAP_*` bits); missing from older servers, then 0.
    flags: int = 0


@dataclass(slots=True)
class LoginFailed(Message):
    """Login refused; `code` says why in a way a program can act on, `text` in words for the user."""

    KIND: ClassVar[Kind] = Kind.LOGIN_FAILED
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("code", Field.U8),
        ("text", Field.STR),
        ("retry_after_ms", Field.U32),
    )
    REQUIRED_FIELDS: ClassVar[int | None] = 2
    code: int
    text: str
    #: Appended: with LOGIN_THROTTLED or SERVER_BUSY, when to try again (0: not applicable).
    retry_after_ms: int = 0


@dataclass(slots=True)
class Accepted(Message):
    """The server has stored (committed) and relayed the sender's message `msg_id` as room `seq`.

    A private message is confirmed with `seq` 0 and an empty room.
    """

    KIND: ClassVar[Kind] = Kind.ACCEPTED
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("msg_id", Field.U64),
        ("room", Field.STR),
        ("seq", Field.U64),
        ("ts_ms", Field.U64),
    )
    msg_id: int
    room: str
    seq: int
    ts_ms: int


@dataclass(slots=True)
class Rejected(Message):
    """The server refused message `msg_id`. With RATE_LIMITED the client resends it after `retry_after_ms`."""

    KIND: ClassVar[Kind] = Kind.REJECTED
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("msg_id", Field.U64),
        ("code", Field.U8),
        ("retry_after_ms", Field.U32),
        ("text", Field.STR),
    )
    msg_id: int
    code: int
    retry_after_ms: int
    text: str


@dataclass(slots=True)
class RoomMessage(Message):
    """A chat line in a room, numbered by the server: `seq` orders the room and never repeats."""

    KIND: ClassVar[Kind] = Kind.MESSAGE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("seq", Field.U64),
        ("ts_ms", Field.U64),
        ("user", Field.STR),
        ("text", Field.STR),
        ("flags", Field.U8),
        ("msg_id", Field.U64),
    )
    room: str
    seq: int
    ts_ms: int
    user: str
    text: str
    flags: int = 0
    #: The author's id for the message, so the author recognises its own message after a reconnect.
    msg_id: int = 0


@dataclass(slots=True)
class Joined(Message):
    """`user` joined `room`."""

    KIND: ClassVar[Kind] = Kind.JOINED
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("user", Field.STR),
        ("ts_ms", Field.U64),
    )
    room: str
    user: str
    ts_ms: int


@dataclass(slots=True)
class Left(Message):
    """`user` left `room`; `reason` is words such as "quit" or "timed out"."""

    KIND: ClassVar[Kind] = Kind.LEFT
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("user", Field.STR),
        ("ts_ms", Field.U64),
        ("reason", Field.STR),
    )
    room: str
    user: str
    ts_ms: int
    reason: str = "quit"


@dataclass(slots=True)
class Presence(Message):
    """Who is in `room` now: sent to a newcomer and in answer to WHO, in parts for a big room."""

    KIND: ClassVar[Kind] = Kind.PRESENCE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("users", Field.STRS),
        ("requested", Field.U8),
        ("more", Field.U8),
    )
    room: str
    users: tuple[str, ...]
    #: 1 when this answers a WHO, 0 when sent on login.
    requested: int = 0
    #: 1 when another PRESENCE continues the list: a big room does not fit one frame.
    more: int = 0


@dataclass(slots=True)
class Private(Message):
    """A private message from `sender` to `to`, delivered only to `to`."""

    KIND: ClassVar[Kind] = Kind.PRIVATE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("sender", Field.STR),
        ("to", Field.STR),
        ("ts_ms", Field.U64),
        ("text", Field.STR),
        ("flags", Field.U8),
    )
    sender: str
    to: str
    ts_ms: int
    text: str
    flags: int = 0


@dataclass(slots=True)
class Notice(Message):
    """A line from the server itself (not from a user): shown differently from chat."""

    KIND: ClassVar[Kind] = Kind.NOTICE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("code", Field.U8), ("text", Field.STR))
    code: int
    text: str


@dataclass(slots=True)
class Closed(Message):
    """The server ends this session (replaced elsewhere, shutting down, timed out, kicked)."""

    KIND: ClassVar[Kind] = Kind.CLOSED
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("code", Field.U8), ("text", Field.STR))
    code: int
    text: str


# ---------------------------------------------------------------- long messages, history, search
# docs/protocol.md section 15. A long message travels in parts because a frame holds about 1 KB; the
# parts of one message are consecutive on the (ordered) link, so each end reassembles one at a time.


def _check_part(index: int, count: int, text: str) -> None:
    if not 0 < count <= MAX_PARTS or not 0 <= index < count:
        raise LocalProtocolError(f"part {index} of {count}: at most {MAX_PARTS} parts", ErrorCode.BAD_PARTS)
    _check_text(text)


@dataclass(slots=True)
class SayPart(Message):
    """One part of a long message to the room (`to` empty) or to one user; see protocol.md 15.2."""

    KIND: ClassVar[Kind] = Kind.SAY_PART
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("msg_id", Field.U64),
        ("room", Field.STR),
        ("to", Field.STR),
        ("flags", Field.U8),
        ("index", Field.U16),
        ("count", Field.U16),
        ("text", Field.STR),
    )
    msg_id: int
    room: str
    to: str
    flags: int
    index: int
    count: int
    text: str

    def __post_init__(self) -> None:
        if self.msg_id == 0:
            raise LocalProtocolError("msg_id 0 is reserved", ErrorCode.BAD_PARTS)
        _check_room(self.room)
        if self.to:
            _check_name(self.to, "recipient")
        _check_part(self.index, self.count, self.text)


@dataclass(slots=True)
class HistoryRequest(Message):
    """Ask for a page of the room's stored messages older than `before_seq` (0: the newest)."""

    KIND: ClassVar[Kind] = Kind.HISTORY
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("before_seq", Field.U64),
        ("limit", Field.U16),
    )
    request_id: int
    room: str
    before_seq: int
    limit: int = MAX_HISTORY_PAGE

    def __post_init__(self) -> None:
        _check_room(self.room)


@dataclass(slots=True)
class SearchRequest(Message):
    """Search the room's stored messages for every word of `query`; answered newest first."""

    KIND: ClassVar[Kind] = Kind.SEARCH
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("query", Field.STR),
        ("limit", Field.U16),
    )
    request_id: int
    room: str
    query: str
    limit: int = MAX_SEARCH_HITS

    def __post_init__(self) -> None:
        _check_room(self.room)
        # Over MAX_QUERY_BYTES is the server's to refuse (REQUEST_DONE with BAD_QUERY), so that the
        # client waiting for the answer gets one; a decode error would leave it waiting.
        _check_text(self.query, 0xFFFF, allow_empty=True)


@dataclass(slots=True)
class MessagePart(Message):
    """One part of a long room message, for a client that announced `CAP_LONG_MESSAGES`."""

    KIND: ClassVar[Kind] = Kind.MESSAGE_PART
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("seq", Field.U64),
        ("ts_ms", Field.U64),
        ("user", Field.STR),
        ("flags", Field.U8),
        ("msg_id", Field.U64),
        ("index", Field.U16),
        ("count", Field.U16),
        ("text", Field.STR),
    )
    room: str
    seq: int
    ts_ms: int
    user: str
    flags: int
    msg_id: int
    index: int
    count: int
    text: str

    def __post_init__(self) -> None:
        _check_part(self.index, self.count, self.text)


@dataclass(slots=True)
class PrivatePart(Message):
    """One part of a long private message, for a client that announced `CAP_LONG_MESSAGES`."""

    KIND: ClassVar[Kind] = Kind.PRIVATE_PART
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("sender", Field.STR),
        ("to", Field.STR),
        ("ts_ms", Field.U64),
        ("flags", Field.U8),
        ("index", Field.U16),
        ("count", Field.U16),
        ("text", Field.STR),
    )
    sender: str
    to: str
    ts_ms: int
    flags: int
    index: int
    count: int
    text: str

    def __post_init__(self) -> None:
        _check_part(self.index, self.count, self.text)


@dataclass(slots=True)
class HistoryEntry(Message):
    """One stored message (or one part of a long one) in the page answering HISTORY `request_id`."""

    KIND: ClassVar[Kind] = Kind.HISTORY_ENTRY
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("seq", Field.U64),
        ("ts_ms", Field.U64),
        ("user", Field.STR),
        ("flags", Field.U8),
        ("msg_id", Field.U64),
        ("index", Field.U16),
        ("count", Field.U16),
        ("text", Field.STR),
    )
    request_id: int
    room: str
    seq: int
    ts_ms: int
    user: str
    flags: int
    msg_id: int
    index: int
    count: int
    text: str

    def __post_init__(self) -> None:
        _check_part(self.index, self.count, self.text)


@dataclass(slots=True)
class SearchHit(Message):
    """One message matching SEARCH `request_id`: where it is, who wrote it, and the text around the match."""

    KIND: ClassVar[Kind] = Kind.SEARCH_HIT
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("seq", Field.U64),
        ("ts_ms", Field.U64),
        ("user", Field.STR),
        ("flags", Field.U8),
        ("snippet", Field.STR),
    )
    request_id: int
    room: str
    seq: int
    ts_ms: int
    user: str
    flags: int
    snippet: str

    def __post_init__(self) -> None:
        _check_text(self.snippet, MAX_SNIPPET_BYTES, allow_empty=True)


@dataclass(slots=True)
class RequestDone(Message):
    """The end of the answer to HISTORY or SEARCH `request_id`: `code` 0, or why it failed."""

    KIND: ClassVar[Kind] = Kind.REQUEST_DONE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("code", Field.U8),
        ("more", Field.U8),
        ("text", Field.STR),
    )
    request_id: int
    code: int = 0
    #: HISTORY: older messages remain; SEARCH: more messages matched than were sent.
    more: int = 0
    text: str = ""
@dataclass(slots=True)
class Away(Message):
    """`user` in `room` went away (`away` 1, since `ts_ms`, for `reason`) or came back (`away` 0).

    Sent to the whole room when the state changes (`listing` 0), and for every away member just
    before each PRESENCE (`listing` 1): a listed user without such an AWAY is not away.
    """

    KIND: ClassVar[Kind] = Kind.AWAY
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("user", Field.STR),
        ("away", Field.U8),
        ("reason", Field.STR),
        ("ts_ms", Field.U64),
        ("listing", Field.U8),
    )
    room: str
    user: str
    away: int
    reason: str
    ts_ms: int
    #: 1: part of the listing before a PRESENCE (a state, not news); 0: a change as it happens.
    listing: int = 0


@dataclass(slots=True)
class LoginQueued(Message):
    """The LOGIN waits for its password check: `position` logins are ahead of it, and the server
    expects to start it in about `eta_ms`. Resent while it waits, so the client keeps waiting."""

    KIND: ClassVar[Kind] = Kind.LOGIN_QUEUED
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("position", Field.U32), ("eta_ms", Field.U32))
    position: int
    eta_ms: int = 0


@dataclass(slots=True)
class Ticket(Message):
    """A resumption ticket: a later LOGIN carrying it is accepted without a password check."""

    KIND: ClassVar[Kind] = Kind.TICKET
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("ticket", Field.STR), ("lifetime_s", Field.U32))
    ticket: str = field(repr=False)
    lifetime_s: int = 0

    def __post_init__(self) -> None:
        if not self.ticket or len(self.ticket) > MAX_TICKET_CHARS:
            raise LocalProtocolError("a ticket is 1-200 characters", ErrorCode.PROTOCOL_VIOLATION)


MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Login, Say, Whisper, Who, Bye, Ping, SayPart, HistoryRequest, SearchRequest, SetAway,
        LoginOk, LoginFailed, Accepted, Rejected, RoomMessage, Joined, Left, Presence, Private,
        Notice, Closed, MessagePart, PrivatePart, HistoryEntry, SearchHit, RequestDone, Away, LoginQueued,
        Ticket,
    )
}  # fmt: skip
CLIENT_KINDS = frozenset(k for k in MESSAGE_TYPES if k < 32)
SERVER_KINDS = frozenset(k for k in MESSAGE_TYPES if k >= 32)
