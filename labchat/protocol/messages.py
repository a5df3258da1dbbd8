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

#: Capability bit (docs/protocol.md section 18.1) in LOGIN's `flags`: the client holds several rooms and
#: reads ROOM_STATE and the other room messages; in LOGIN_OK's: the server has rooms and roles.
CAP_ROOMS = 0x0100_0000
#: Capability bit (20.1): seats, help queue, polls, quiet mode.
CAP_CLASSROOM = 0x0400_0000
#: PRIVATE flag (20.5): a member's room message during quiet mode, for the operators; `to` is the room.
FLAG_TO_OPS = 0x20
#: Longest seat label, in UTF-8 bytes (20.2).
MAX_SEAT_BYTES = 40
#: Longest help-queue or poll question, in UTF-8 bytes.
MAX_QUESTION_BYTES = 300
#: Poll options: how many, and how long each (UTF-8 bytes).
MIN_POLL_OPTIONS = 2
MAX_POLL_OPTIONS = 9
MAX_POLL_OPTION_BYTES = 100
#: POLL flags.
POLL_ANONYMOUS = 0x1
POLL_CLOSED = 0x2
#: QUEUE_TAKE actions.
QUEUE_NEXT = 1
QUEUE_DONE = 2
#: Help-queue entries per room, and the longest quiet mode in minutes.
MAX_QUEUE_ENTRIES = 200
MAX_QUIET_MINUTES = 240
#: Capability bit (21.1): file offers, uploads and downloads.
CAP_FILES = 0x0800_0000
#: Capability bit (22.1): the client moves between relays by itself; the server is several relays.
CAP_FAILOVER = 0x1000_0000
#: FILE_OFFER / FILE_OFFERED flag: the file is a folder packed as a tar stream (21.6).
FILE_FOLDER = 0x1
#: File data in one FILE_CHUNK or FILE_DATA frame at most (21.1).
MAX_CHUNK_BYTES = 960
#: Longest file name, in UTF-8 bytes, and longest mime hint (21.1, 21.2).
MAX_FILE_NAME_BYTES = 255
MAX_MIME_BYTES = 100
SHA256_BYTES = 32
FILE_NAME_RULE = (
    "a file name, not a path: 1-255 bytes, no '/', '\\', NUL or control characters, "
    "not '.' or '..', not starting with '.'"
)
_BAD_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]")
#: Addresses in one RELAYS at most, and the longest host in one (UTF-8 bytes, a DNS name's limit).
MAX_RELAYS = 64
MAX_HOST_BYTES = 255


def file_name_problem(name: str) -> str | None:
    """Why `name` is not an acceptable file name on the wire (21.2), or None if it is."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    if not name or size > MAX_FILE_NAME_BYTES:
        return f"it must be 1-{MAX_FILE_NAME_BYTES} bytes"
    if name in (".", ".."):
        return "'.' and '..' are not names"
    if name.startswith("."):
        return "it must not start with '.'"
    if _BAD_NAME_CHARS.search(name):
        return "it must not contain '/', '\\', NUL or control characters"
    return None


#: LOGIN_OK flag: this session is a guest admitted with the class password (18.11), not an account.
LOGIN_OK_GUEST = 0x0200_0000
#: Rooms one user may be in at once (18.4).
MAX_ROOMS_PER_USER = 32
#: Entries in LOGIN's `cursors` at most (more are ignored by the server).
MAX_CURSORS = 64
#: Longest room topic, in UTF-8 bytes.
MAX_TOPIC_BYTES = 300
#: Longest room key (IRC's +k), in UTF-8 bytes.
MAX_KEY_BYTES = 64
#: Longest announcement, in UTF-8 bytes: it is pinned, not a document.
MAX_ANNOUNCEMENT_BYTES = 900
#: Longest kick/ban/part reason, in UTF-8 bytes.
MAX_REASON_BYTES = 200
#: Names listed in an ANNOUNCEMENT_TALLY's `not_yet` at most.
MAX_TALLY_NAMES = 40
#: A timed sanction's longest length, in minutes (30 days); 0 means "until lifted".
MAX_SANCTION_MINUTES = 30 * 24 * 60

#: ROOM_STATE `modes` and ROOM_INFO `modes` bits (18.6).
ROOM_PRIVATE = 0x1  #: invite-only: invisible in LIST to non-members
ROOM_MODERATED = 0x2  #: only operators and voiced members may speak
ROOM_KEYED = 0x4  #: JOIN needs the room key
ROOM_TOPIC_LOCKED = 0x8  #: only operators set the topic
ROOM_QUIET = 0x10  #: quiet mode (20.5): members' messages go to the operators only

#: ROOM_STATE `you` bits, and the letters of PRESENCE's appended `modes` (18.7).
MEMBER_OP = 0x1
MEMBER_VOICE = 0x2
MEMBER_MUTED = 0x4
MEMBER_GUEST = 0x8
MEMBER_ADMIN = 0x10


def member_mode_char(bits: int) -> str:
    """PRESENCE `modes` carries one ASCII character per listed user: '@' (0x40) plus its MEMBER_* bits."""
    return chr(0x40 + (bits & 0x1F))


def member_mode_bits(char: str) -> int:
    """The MEMBER_* bits of one `modes` character; anything out of range reads as none."""
    code = ord(char) - 0x40 if char else 0
    return code if 0 <= code <= 0x1F else 0


class Setting(IntEnum):
    """ROOM_SET `setting` (18.8). ROOM_EVENT reports a change as `action` = 16 + setting."""

    TOPIC = 1
    KEY = 2
    MODERATED = 3
    PRIVATE = 4
    ANNOUNCEMENT = 5
    TOPIC_LOCK = 6
    #: docs/protocol.md 20.5: minutes (1-240) or "off".
    QUIET = 7
    #: 20.6: start a class session (value empty).
    SESSION = 8


class Action(IntEnum):
    """MODERATE `action` (18.9) and ROOM_EVENT `action` (18.10): one table for the request and the news."""

    OP = 1
    DEOP = 2
    VOICE = 3
    DEVOICE = 4
    KICK = 5
    MUTE = 6
    UNMUTE = 7
    BAN = 8
    UNBAN = 9
    INVITE = 10
    #: ROOM_EVENT only: a room setting changed (16 + `Setting`).
    TOPIC_SET = 17
    KEY_SET = 18
    MODERATED_SET = 19
    PRIVATE_SET = 20
    ANNOUNCEMENT_SET = 21
    TOPIC_LOCK_SET = 22
    QUIET_SET = 23
    SESSION_STARTED = 24
    #: ROOM_EVENT only: a timed mute or ban ended by itself.
    MUTE_ENDED = 32
    BAN_ENDED = 33
    #: ROOM_EVENT only, to the student concerned and the operators (20.3).
    HAND_RAISED = 40
    HAND_LOWERED = 41
    HAND_TAKEN = 42


#: The actions a MODERATE may carry (the rest are ROOM_EVENT news only).
MODERATE_ACTIONS = frozenset(range(Action.OP, Action.INVITE + 1))

ROOM_RULE = (
    "1-32 characters: lowercase letters (a-z), digits, '_' or '-', starting with a letter or digit"
)

NAME_RULE = (
    "1-20 characters: ASCII letters (a-z, A-Z), digits, '_' or '-', starting with a letter "
    "(case-insensitive)"
)
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,19}")
_ROOM_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


#: Names per PRESENCE part: 40 names of at most 20 bytes keep a part well inside one frame.
PRESENCE_NAMES_PER_PART = 40


def presence_parts(
    room: str, users: tuple[str, ...], requested: int = 0, modes: str = "", seats: tuple[str, ...] = ()
) -> list[Presence]:
    """The online list as one or more PRESENCE messages (all but the last say `more`). `modes` (one
    character per user, 18.7) and `seats` (20.2), if given, are cut along with the names. With seats,
    a part holds fewer names, so that 40-byte seats still fit one frame."""
    step = PRESENCE_NAMES_PER_PART if not seats else PRESENCE_NAMES_PER_PART // 2
    starts = range(0, len(users), step) if users else range(1)
    last = starts[-1]
    return [
        Presence(
            room, users[i : i + step], requested, int(i != last), modes[i : i + step], seats[i : i + step]
        )
        for i in starts
    ]


def is_valid_name(name: str) -> bool:
    """Names are ASCII so that two users can never look alike on screen (no homoglyphs)."""
    return _NAME_RE.fullmatch(name) is not None


def name_key(name: str) -> str:
    """Names are unique regardless of case: 'Alice' and 'alice' are the same account."""
    return name.casefold()


def _check_name(name: str, what: str = "name") -> None:
    if not is_valid_name(name):
        raise LocalProtocolError(f"invalid {what} {name!r}: {NAME_RULE}", ErrorCode.INVALID_NAME)


def is_valid_room(room: str) -> bool:
    """Room names are lowercase ASCII, so `#CS101` typed by a user and `cs101` on the wire are one room."""
    return _ROOM_RE.fullmatch(room) is not None


def room_from_user(text: str) -> str:
    """What a user typed as a room name, as the wire spells it: a leading '#' dropped (IRC habit),
    lowercased. The result may still break the rule; `is_valid_room` says."""
    return text.strip().removeprefix("#").lower()


def _check_room(room: str) -> None:
    if _ROOM_RE.fullmatch(room) is None:
        raise LocalProtocolError(f"invalid room name {room!r}: {ROOM_RULE}", ErrorCode.NO_SUCH_ROOM)


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
    FILE_OFFER = 12
    FILE_CHUNK = 13
    FILE_GET = 14
    FILE_CANCEL = 15
    JOIN = 20
    PART = 21
    LIST = 22
    ROOM_SET = 23
    MODERATE = 24
    ANNOUNCEMENT_SEEN = 25
    HAND = 26
    QUEUE_TAKE = 27
    POLL_OPEN = 28
    POLL_VOTE = 29
    POLL_CLOSE = 30
    FILES = 31

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
    QUEUE_ENTRY = 49
    POLL = 50
    FILE_STATE = 51
    FILE_DATA = 52

    LOGIN_QUEUED = 53
    TICKET = 54
    FILE_OFFERED = 55
    RELAYS = 56

    ROOM_STATE = 57
    ROOM_LEFT = 58
    ROOM_INFO = 59
    ROOM_EVENT = 60
    ANNOUNCEMENT = 61
    ANNOUNCEMENT_TALLY = 62


class Field(IntEnum):
    """Field encodings (see wire.py): fixed-width big-endian integers, or length-prefixed UTF-8."""

    U8 = 1
    U16 = 2
    U32 = 3
    U64 = 4
    STR = 5  #: u16 byte length, then UTF-8
    STRS = 6  #: u16 count, then that many STR
    CURSORS = 7  #: u16 count, then that many (STR room, U64 seq): where a client is in each room (18.3)
    U32S = 8  #: u16 count, then that many U32 (20.4)
    BYTES = 9  #: u16 length, then that many raw bytes (21.1)
    ADDRS = 10  #: u16 count, then that many (STR host, U16 port): relay addresses (22.2)


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
        ("cursors", Field.CURSORS),
        ("seat", Field.STR),
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
    #: Appended (18.3): (room, resume_seq) for every other room the client holds, so that a
    #: reconnecting client resumes each of its rooms where it stopped.
    cursors: tuple[tuple[str, int], ...] = ()
    #: Appended (20.2): where the user sits (host name or `--seat`), at most 40 bytes.
    seat: str = ""

    def __post_init__(self) -> None:
        _check_name(self.user)
        _check_room(self.room)
        # Any length decodes: the server cuts a longer seat to MAX_SEAT_BYTES (20.2) rather than
        # refuse the login over a label.
        _check_request_text(self.seat, MAX_LONG_TEXT_BYTES, "seat")
        if len(self.cursors) > MAX_CURSORS:
            raise LocalProtocolError(f"more than {MAX_CURSORS} room cursors", ErrorCode.PROTOCOL_VIOLATION)
        for room, _ in self.cursors:
            _check_room(room)
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
        ("seat", Field.STR),
    )
    REQUIRED_FIELDS: ClassVar[int | None] = 3
    room: str
    user: str
    ts_ms: int
    #: Appended (20.2), filled for CAP_CLASSROOM clients: where the newcomer sits ("" unknown).
    seat: str = ""


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
        ("modes", Field.STR),
        ("seats", Field.STRS),
    )
    REQUIRED_FIELDS: ClassVar[int | None] = 4
    room: str
    users: tuple[str, ...]
    #: 1 when this answers a WHO, 0 when sent on login.
    requested: int = 0
    #: 1 when another PRESENCE continues the list: a big room does not fit one frame.
    more: int = 0
    #: Appended (18.7), to CAP_ROOMS clients: one character per user, `member_mode_char` of its
    #: MEMBER_* bits (op, voice, muted, guest, admin). Empty: no modes known.
    modes: str = ""
    #: Appended (20.2), to CAP_CLASSROOM clients: each user's seat, in `users` order ("" unknown).
    seats: tuple[str, ...] = ()


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


# ---------------------------------------------------------------- rooms and roles (docs/protocol.md 18)


def _check_request_text(text: str, limit: int, what: str) -> None:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{what} is not valid Unicode", ErrorCode.BAD_MESSAGE) from None
    if size > limit:
        raise LocalProtocolError(f"{what} is {size} bytes, the limit is {limit}", ErrorCode.BAD_MESSAGE)


@dataclass(slots=True)
class JoinRoom(Message):
    """Join `room`, creating it (with the sender as its operator) if it does not exist (18.4).

    `resume_seq` as in LOGIN: 0 for the newcomer's view. `key` for a room with a key, else "".
    """

    KIND: ClassVar[Kind] = Kind.JOIN
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("resume_seq", Field.U64),
        ("key", Field.STR),
    )
    request_id: int
    room: str
    resume_seq: int = 0
    key: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        _check_room(self.room)
        _check_request_text(self.key, MAX_KEY_BYTES, "room key")


@dataclass(slots=True)
class PartRoom(Message):
    """Leave `room` (18.5); the server forgets it from the account's rooms."""

    KIND: ClassVar[Kind] = Kind.PART
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("reason", Field.STR),
    )
    request_id: int
    room: str
    reason: str = ""

    def __post_init__(self) -> None:
        _check_room(self.room)
        _check_request_text(self.reason, MAX_REASON_BYTES, "reason")


@dataclass(slots=True)
class ListRooms(Message):
    """Ask for the rooms the sender may see; answered by ROOM_INFO entries and REQUEST_DONE (18.6)."""

    KIND: ClassVar[Kind] = Kind.LIST
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("request_id", Field.U32),)
    request_id: int


@dataclass(slots=True)
class SetRoom(Message):
    """Change one of `room`'s settings (18.8): topic, key, moderated, private, announcement, topic lock.

    Switches take "on" or "off"; TOPIC, KEY and ANNOUNCEMENT take text, "" clearing it.
    """

    KIND: ClassVar[Kind] = Kind.ROOM_SET
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("setting", Field.U8),
        ("value", Field.STR),
    )
    request_id: int
    room: str
    setting: int
    value: str = ""

    def __post_init__(self) -> None:
        _check_room(self.room)
        if self.setting not in Setting._value2member_map_:
            raise LocalProtocolError(f"unknown room setting {self.setting}", ErrorCode.BAD_MESSAGE)
        limit = {Setting.TOPIC: MAX_TOPIC_BYTES, Setting.KEY: MAX_KEY_BYTES}.get(
            Setting(self.setting), MAX_ANNOUNCEMENT_BYTES
        )
        _check_request_text(self.value, limit, "value")


@dataclass(slots=True)
class Moderate(Message):
    """An operator's action on `user` in `room` (18.9). `minutes` bounds a MUTE or BAN (0: until lifted)."""

    KIND: ClassVar[Kind] = Kind.MODERATE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("action", Field.U8),
        ("user", Field.STR),
        ("minutes", Field.U32),
        ("reason", Field.STR),
    )
    request_id: int
    room: str
    action: int
    user: str
    minutes: int = 0
    reason: str = ""

    def __post_init__(self) -> None:
        _check_room(self.room)
        if self.action not in MODERATE_ACTIONS:
            raise LocalProtocolError(f"unknown moderation action {self.action}", ErrorCode.BAD_MESSAGE)
        _check_name(self.user)
        if self.minutes > MAX_SANCTION_MINUTES:
            raise LocalProtocolError(
                f"{self.minutes} minutes: at most {MAX_SANCTION_MINUTES} (30 days)", ErrorCode.BAD_MESSAGE
            )
        _check_request_text(self.reason, MAX_REASON_BYTES, "reason")


@dataclass(slots=True)
class AnnouncementSeen(Message):
    """The client has shown `room`'s announcement `announcement_id` to its user (18.10)."""

    KIND: ClassVar[Kind] = Kind.ANNOUNCEMENT_SEEN
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("room", Field.STR), ("announcement_id", Field.U64))
    room: str
    announcement_id: int

    def __post_init__(self) -> None:
        _check_room(self.room)


@dataclass(slots=True)
class RoomState(Message):
    """A room the receiver is in, as it is now (18.6): sent on joining it and on every change of its
    settings or of the receiver's own role in it. `muted_until_ms`: 0 not muted, 2^64-1 until lifted."""

    KIND: ClassVar[Kind] = Kind.ROOM_STATE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("topic", Field.STR),
        ("modes", Field.U32),
        ("you", Field.U32),
        ("muted_until_ms", Field.U64),
        ("members", Field.U32),
        ("quiet_until_ms", Field.U64),
    )
    REQUIRED_FIELDS: ClassVar[int | None] = 6
    room: str
    topic: str = ""
    #: ROOM_* bits.
    modes: int = 0
    #: MEMBER_* bits of the receiver in this room.
    you: int = 0
    muted_until_ms: int = 0
    #: Accounts that are members (online or not), plus online guests: the tally's whole.
    members: int = 0
    #: Appended (20.5): when quiet mode ends (0: not quiet).
    quiet_until_ms: int = 0


#: `muted_until_ms` / `until_ms` of a sanction with no end.
UNTIL_LIFTED_MS = 2**64 - 1


@dataclass(slots=True)
class RoomLeft(Message):
    """The receiver is no longer in `room` (18.5, 18.9): `code` 0 it parted, KICKED or BANNED by `by`.
    `until_ms` is a ban's end (UNTIL_LIFTED_MS: until lifted; 0 otherwise)."""

    KIND: ClassVar[Kind] = Kind.ROOM_LEFT
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("code", Field.U8),
        ("by", Field.STR),
        ("reason", Field.STR),
        ("until_ms", Field.U64),
    )
    room: str
    code: int = 0
    by: str = ""
    reason: str = ""
    until_ms: int = 0


@dataclass(slots=True)
class RoomInfo(Message):
    """One room in the answer to LIST `request_id` (18.6)."""

    KIND: ClassVar[Kind] = Kind.ROOM_INFO
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("online", Field.U32),
        ("topic", Field.STR),
        ("modes", Field.U32),
    )
    request_id: int
    room: str
    #: Members online in it now.
    online: int = 0
    topic: str = ""
    modes: int = 0


@dataclass(slots=True)
class RoomEvent(Message):
    """News of a room for its members (18.10): `actor` did `action` to `target` (MUTE for `minutes`...).

    `text` is the server's own sentence for it, for clients that do not know the action; ours build
    their own line from the fields (so that it can be translated).
    """

    KIND: ClassVar[Kind] = Kind.ROOM_EVENT
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("ts_ms", Field.U64),
        ("action", Field.U8),
        ("actor", Field.STR),
        ("target", Field.STR),
        ("minutes", Field.U32),
        ("value", Field.STR),
        ("text", Field.STR),
    )
    room: str
    ts_ms: int
    action: int
    actor: str = ""
    target: str = ""
    minutes: int = 0
    #: A setting's new value (the topic, "on"/"off"), or a kick's or ban's reason.
    value: str = ""
    text: str = ""


@dataclass(slots=True)
class Announcement(Message):
    """`room`'s pinned announcement (18.10); an empty `text` clears it. Sent on joining and on change."""

    KIND: ClassVar[Kind] = Kind.ANNOUNCEMENT
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("announcement_id", Field.U64),
        ("by", Field.STR),
        ("ts_ms", Field.U64),
        ("text", Field.STR),
    )
    room: str
    announcement_id: int
    by: str = ""
    ts_ms: int = 0
    text: str = ""


@dataclass(slots=True)
class AnnouncementTally(Message):
    """For `room`'s operators: `seen` of `total` members have shown announcement `announcement_id`;
    `not_yet` names up to 40 who have not (18.10)."""

    KIND: ClassVar[Kind] = Kind.ANNOUNCEMENT_TALLY
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("announcement_id", Field.U64),
        ("seen", Field.U32),
        ("total", Field.U32),
        ("not_yet", Field.STRS),
    )
    room: str
    announcement_id: int
    seen: int = 0
    total: int = 0
    not_yet: tuple[str, ...] = ()


# ---------------------------------------------------------------- the classroom (docs/protocol.md 20)


@dataclass(slots=True)
class Hand(Message):
    """Raise (1) or lower (0) the sender's hand in `room`'s help queue, with a question (20.3)."""

    KIND: ClassVar[Kind] = Kind.HAND
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("raise_", Field.U8),
        ("question", Field.STR),
    )
    request_id: int
    room: str
    raise_: int = 1
    question: str = ""

    def __post_init__(self) -> None:
        _check_room(self.room)
        if self.raise_ not in (0, 1):
            raise LocalProtocolError("raise must be 0 or 1", ErrorCode.BAD_MESSAGE)
        _check_request_text(self.question, MAX_QUESTION_BYTES, "question")


@dataclass(slots=True)
class QueueTake(Message):
    """An operator takes the next waiting student (QUEUE_NEXT) or removes `user` (QUEUE_DONE)."""

    KIND: ClassVar[Kind] = Kind.QUEUE_TAKE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("action", Field.U8),
        ("user", Field.STR),
    )
    request_id: int
    room: str
    action: int = QUEUE_NEXT
    user: str = ""

    def __post_init__(self) -> None:
        _check_room(self.room)
        if self.action not in (QUEUE_NEXT, QUEUE_DONE):
            raise LocalProtocolError(f"unknown queue action {self.action}", ErrorCode.BAD_MESSAGE)
        if self.action == QUEUE_DONE or self.user:
            _check_name(self.user)


@dataclass(slots=True)
class PollOpen(Message):
    """An operator asks `room` a question with 2-9 fixed answers (20.4)."""

    KIND: ClassVar[Kind] = Kind.POLL_OPEN
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("question", Field.STR),
        ("options", Field.STRS),
        ("flags", Field.U8),
    )
    request_id: int
    room: str
    question: str
    options: tuple[str, ...]
    flags: int = 0

    def __post_init__(self) -> None:
        _check_room(self.room)
        _check_text(self.question, MAX_QUESTION_BYTES)
        if not MIN_POLL_OPTIONS <= len(self.options) <= MAX_POLL_OPTIONS:
            raise LocalProtocolError(
                f"a poll has {MIN_POLL_OPTIONS} to {MAX_POLL_OPTIONS} options", ErrorCode.BAD_MESSAGE
            )
        for option in self.options:
            _check_text(option, MAX_POLL_OPTION_BYTES)


@dataclass(slots=True)
class PollVote(Message):
    """The sender's answer `choice` (1-based) to poll `poll_id` in `room`."""

    KIND: ClassVar[Kind] = Kind.POLL_VOTE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("poll_id", Field.U64),
        ("choice", Field.U8),
    )
    request_id: int
    room: str
    poll_id: int
    choice: int

    def __post_init__(self) -> None:
        _check_room(self.room)
        if not 1 <= self.choice <= MAX_POLL_OPTIONS:
            raise LocalProtocolError(
                f"choice {self.choice}: pick 1 to {MAX_POLL_OPTIONS}", ErrorCode.BAD_MESSAGE
            )


@dataclass(slots=True)
class PollClose(Message):
    """An operator closes poll `poll_id`: everyone then sees the result."""

    KIND: ClassVar[Kind] = Kind.POLL_CLOSE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("poll_id", Field.U64),
    )
    request_id: int
    room: str
    poll_id: int

    def __post_init__(self) -> None:
        _check_room(self.room)


@dataclass(slots=True)
class QueueEntry(Message):
    """One entry of `room`'s help queue, for operators (20.3): entries `index` 0..`count`-1 make the
    whole queue; `count` 0 (with empty fields) says it is empty."""

    KIND: ClassVar[Kind] = Kind.QUEUE_ENTRY
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("index", Field.U16),
        ("count", Field.U16),
        ("user", Field.STR),
        ("seat", Field.STR),
        ("question", Field.STR),
        ("since_ms", Field.U64),
        ("taken_by", Field.STR),
    )
    room: str
    index: int = 0
    count: int = 0
    user: str = ""
    seat: str = ""
    question: str = ""
    since_ms: int = 0
    taken_by: str = ""


@dataclass(slots=True)
class Poll(Message):
    """A poll as one member may see it (20.4): counts for operators always, for the others once it
    is closed; `ballots` ("choice name") only for operators of a poll that is not anonymous."""

    KIND: ClassVar[Kind] = Kind.POLL
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("room", Field.STR),
        ("poll_id", Field.U64),
        ("by", Field.STR),
        ("question", Field.STR),
        ("options", Field.STRS),
        ("flags", Field.U8),
        ("counts", Field.U32S),
        ("voters", Field.U32),
        ("your_choice", Field.U8),
        ("ballots", Field.STRS),
    )
    room: str
    poll_id: int
    by: str
    question: str
    options: tuple[str, ...]
    flags: int = 0
    counts: tuple[int, ...] = ()
    voters: int = 0
    your_choice: int = 0
    ballots: tuple[str, ...] = ()


# ---------------------------------------------------------------- files (docs/protocol.md 21)


def _check_bytes(data: bytes, limit: int, what: str, *, exact: bool = False) -> None:
    if exact and len(data) != limit:
        raise LocalProtocolError(f"{what} must be {limit} bytes", ErrorCode.BAD_MESSAGE)
    if len(data) > limit:
        raise LocalProtocolError(f"{what} is {len(data)} bytes, the limit is {limit}", ErrorCode.BAD_MESSAGE)


@dataclass(slots=True)
class FileOffer(Message):
    """Offer a file to `room` (or to `to` alone): its name, size and SHA-256 (21.3). The name's rule
    is the server's to enforce (it answers BAD_FILE_NAME), so a hostile name still decodes."""

    KIND: ClassVar[Kind] = Kind.FILE_OFFER
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("request_id", Field.U32),
        ("room", Field.STR),
        ("to", Field.STR),
        ("name", Field.STR),
        ("size", Field.U64),
        ("sha256", Field.BYTES),
        ("mime", Field.STR),
        ("flags", Field.U8),
    )
    request_id: int
    room: str
    to: str
    name: str
    size: int
    sha256: bytes
    mime: str = ""
    flags: int = 0

    def __post_init__(self) -> None:
        _check_room(self.room)
        if self.to:
            _check_name(self.to, "recipient")
        _check_request_text(self.name, MAX_FILE_NAME_BYTES, "file name")
        _check_request_text(self.mime, MAX_MIME_BYTES, "mime type")
        _check_bytes(self.sha256, SHA256_BYTES, "sha256", exact=True)


@dataclass(slots=True)
class FileChunk(Message):
    """`data` of upload `file_id` at `offset` (21.3)."""

    KIND: ClassVar[Kind] = Kind.FILE_CHUNK
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("file_id", Field.U64),
        ("offset", Field.U64),
        ("data", Field.BYTES),
    )
    file_id: int
    offset: int
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not self.data:
            raise LocalProtocolError("an empty chunk", ErrorCode.BAD_MESSAGE)
        _check_bytes(self.data, MAX_CHUNK_BYTES, "chunk")


@dataclass(slots=True)
class FileGet(Message):
    """Download (or resume) file `file_id` from `offset` (21.5)."""

    KIND: ClassVar[Kind] = Kind.FILE_GET
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("file_id", Field.U64), ("offset", Field.U64))
    file_id: int
    offset: int = 0


@dataclass(slots=True)
class FileCancel(Message):
    """Stop an upload (the sender) or a download (a receiver) of `file_id`."""

    KIND: ClassVar[Kind] = Kind.FILE_CANCEL
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("file_id", Field.U64), ("reason", Field.STR))
    file_id: int
    reason: str = ""

    def __post_init__(self) -> None:
        _check_request_text(self.reason, MAX_REASON_BYTES, "reason")


@dataclass(slots=True)
class ListFiles(Message):
    """Ask for the files kept for `room`; answered by FILE_OFFERED (listing) and REQUEST_DONE."""

    KIND: ClassVar[Kind] = Kind.FILES
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("request_id", Field.U32), ("room", Field.STR))
    request_id: int
    room: str

    def __post_init__(self) -> None:
        _check_room(self.room)


@dataclass(slots=True)
class FileState(Message):
    """Where an upload stands (21.3): its id, the bytes the server holds, or why it failed; also a
    refused download (NO_SUCH_FILE)."""

    KIND: ClassVar[Kind] = Kind.FILE_STATE
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("file_id", Field.U64),
        ("request_id", Field.U32),
        ("received", Field.U64),
        ("code", Field.U8),
        ("text", Field.STR),
    )
    file_id: int
    request_id: int = 0
    received: int = 0
    code: int = 0
    text: str = ""


@dataclass(slots=True)
class FileData(Message):
    """`data` of download `file_id` at `offset` (21.5)."""

    KIND: ClassVar[Kind] = Kind.FILE_DATA
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("file_id", Field.U64),
        ("offset", Field.U64),
        ("data", Field.BYTES),
    )
    file_id: int
    offset: int
    data: bytes = field(repr=False)


@dataclass(slots=True)
class FileOffered(Message):
    """A stored file the receiver may download (21.4): live (`listing` 0) or listed."""

    KIND: ClassVar[Kind] = Kind.FILE_OFFERED
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (
        ("file_id", Field.U64),
        ("room", Field.STR),
        ("to", Field.STR),
        ("sender", Field.STR),
        ("name", Field.STR),
        ("size", Field.U64),
        ("sha256", Field.BYTES),
        ("mime", Field.STR),
        ("flags", Field.U8),
        ("ts_ms", Field.U64),
        ("listing", Field.U8),
        ("request_id", Field.U32),
    )
    file_id: int
    room: str
    to: str
    sender: str
    name: str
    size: int
    sha256: bytes
    mime: str = ""
    flags: int = 0
    ts_ms: int = 0
    listing: int = 0
    request_id: int = 0


# ---------------------------------------------------------------- several relays (docs/protocol.md 22)


def check_relay_address(host: str, port: int) -> None:
    """Raise LocalProtocolError unless (`host`, `port`) is a relay address RELAYS may carry (22.2):
    a host of 1-255 bytes without spaces or control characters, a port of 1-65535."""
    try:
        size = len(host.encode("utf-8"))
    except UnicodeEncodeError:
        raise LocalProtocolError("a relay host is not valid Unicode", ErrorCode.PROTOCOL_VIOLATION) from None
    if not 1 <= size <= MAX_HOST_BYTES or _BAD_HOST_CHARS.search(host):
        raise LocalProtocolError(f"invalid relay host {host!r}", ErrorCode.PROTOCOL_VIOLATION)
    if not 1 <= port <= 0xFFFF:
        raise LocalProtocolError(f"invalid relay port {port}", ErrorCode.PROTOCOL_VIOLATION)


_BAD_HOST_CHARS = re.compile(r"[\s/\x00-\x1f\x7f-\x9f]")


def parse_relay_address(text: str) -> tuple[str, int] | None:
    """`HOST:PORT` (`[v6]:PORT` for an IPv6 address) as (host, port), or None when it is not a relay
    address by 22.2's rule. What `--fallback` and `--advertise` take and the relay directory stores."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        return None  # a bare IPv6 address is ambiguous: it needs brackets
    if not sep or not port.isdigit() or len(port) > 5:
        return None
    try:
        check_relay_address(host, int(port))
    except LocalProtocolError:
        return None
    return host, int(port)


def format_relay_address(host: str, port: int) -> str:
    """The inverse of `parse_relay_address`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True)
class Relays(Message):
    """The client addresses of this server's other relays, for a client that announced
    `CAP_FAILOVER`: where to go when its relay stops answering (22.2). Each one replaces the last."""

    KIND: ClassVar[Kind] = Kind.RELAYS
    FIELDS: ClassVar[tuple[tuple[str, Field], ...]] = (("relays", Field.ADDRS),)
    relays: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        if len(self.relays) > MAX_RELAYS:
            raise LocalProtocolError(f"more than {MAX_RELAYS} relay addresses", ErrorCode.PROTOCOL_VIOLATION)
        for host, port in self.relays:
            check_relay_address(host, port)


MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.KIND: cls
    for cls in (
        Login, Say, Whisper, Who, Bye, Ping, SayPart, HistoryRequest, SearchRequest, SetAway,
        LoginOk, LoginFailed, Accepted, Rejected, RoomMessage, Joined, Left, Presence, Private,
        Notice, Closed, MessagePart, PrivatePart, HistoryEntry, SearchHit, RequestDone, Away, LoginQueued,
        Ticket, JoinRoom, PartRoom, ListRooms, SetRoom, Moderate, AnnouncementSeen, RoomState, RoomLeft,
        RoomInfo, RoomEvent, Announcement, AnnouncementTally, Hand, QueueTake, PollOpen, PollVote, PollClose,
        QueueEntry, Poll, FileOffer, FileChunk, FileGet, FileCancel, ListFiles, FileState, FileData,
        FileOffered, Relays,
    )
}  # fmt: skip
CLIENT_KINDS = frozenset(k for k in MESSAGE_TYPES if k < 32)
SERVER_KINDS = frozenset(k for k in MESSAGE_TYPES if k >= 32)
