"""One small error hierarchy for the whole protocol package.

The strategy is h11's: code inside the protocol raises `LocalProtocolError` when *we* were asked to do
something illegal (a caller bug, or a user typing something that cannot be sent), and `DecodeError` or
`RemoteProtocolError` when the *peer* sent something we cannot accept. Transports catch only these types:
a datagram that raises is counted and dropped, never allowed to reach the event loop.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Codes carried on the wire in LOGIN_FAILED, REJECTED, NOTICE and CLOSED (see docs/protocol.md)."""

    #: Unspecified failure; the text says more.
    INTERNAL = 1
    #: The password did not match the account.
    INVALID_PASSWORD = 2
    #: The user name breaks the name rule (length, characters).
    INVALID_NAME = 3
    #: The name is unknown and the server does not register new accounts.
    REGISTRATION_CLOSED = 4
    #: Too many failed logins; retry after the delay given in the text.
    LOGIN_THROTTLED = 5
    #: A message broke a limit (too long, empty, bad room name).
    BAD_MESSAGE = 6
    #: The sender is over its message rate; the client should hold its queue back.
    RATE_LIMITED = 7
    #: A private message named a user who is not online.
    NO_SUCH_USER = 8
    #: The same account logged in elsewhere; this session is over.
    REPLACED = 9
    #: The server is shutting down.
    SERVER_SHUTDOWN = 10
    #: The peer broke the protocol (a message that is illegal in the session's state).
    PROTOCOL_VIOLATION = 11
    #: The session was idle past the timeout.
    TIMED_OUT = 12
    #: The room does not exist.
    NO_SUCH_ROOM = 13
    #: The peer speaks a protocol version we do not.
    UNSUPPORTED_VERSION = 14
    #: A long message over 16384 bytes (docs/protocol.md section 15.2).
    TOO_LONG = 15
    #: A SAY_PART out of order, or not matching the long message it continues.
    BAD_PARTS = 16
    #: A HISTORY or SEARCH the server cannot answer (no usable query, or its database failed).
    BAD_QUERY = 17
    #: NOTICE: a private message was delivered, but its recipient is away (the text gives the reason).
    USER_AWAY = 18
    #: NOTICE: a private message is held until its offline recipient logs in; REJECTED: no room to hold more.
    RECIPIENT_OFFLINE = 19
    #: Unknown name and the LOGIN said NO_REGISTER: it would be registered if the client asked.
    NO_SUCH_ACCOUNT = 20
    #: The source address registered too many accounts in the last hour.
    REGISTRATION_LIMITED = 21
    #: The login queue is full; retry after the LOGIN_FAILED's `retry_after_ms`.
    SERVER_BUSY = 22
    #: A LOGIN with a ticket the server does not accept and no password to fall back on.
    TICKET_REJECTED = 23
    #: An operator's command from someone who is not an operator of that room (18.9).
    NOT_OPERATOR = 24
    #: REJECTED: the sender is muted in that room; the text says until when.
    MUTED = 25
    #: The user is banned from that room (JOIN, a version-1 LOGIN, ROOM_LEFT, CLOSED).
    BANNED = 26
    #: ROOM_LEFT / CLOSED: an operator removed the user from the room.
    KICKED = 27
    #: JOIN: the room has a key and the JOIN's was missing or wrong.
    BAD_KEY = 28
    #: JOIN: the room is invite-only and the user was not invited.
    INVITE_ONLY = 29
    #: REJECTED: the room is moderated and the sender is neither operator nor voiced.
    MODERATED = 30
    #: JOIN: the user is in too many rooms, or the server holds too many.
    TOO_MANY_ROOMS = 31
    #: A room name that breaks the room rule (the text states it).
    INVALID_ROOM = 32
    #: A request the rules forbid whoever asks (acting on an admin, making a guest an operator).
    NOT_ALLOWED = 33
    #: NOTICE to a version-1 client: a room's news (a mute, a topic, an announcement) in words.
    ROOM_NEWS = 34
    #: LOGIN_FAILED: a guest name that is online already (class password, 18.11).
    NAME_IN_USE = 35
    #: REJECTED: a WHISPER to a classmate while a room the sender is in is quiet (20.5).
    QUIET = 36
    #: REQUEST_DONE: the poll is closed or unknown (20.4).
    NO_SUCH_POLL = 37
    #: REQUEST_DONE: the room's help queue is full (20.3).
    QUEUE_FULL = 38
    #: REQUEST_DONE: a file offer over the server's largest file (21.3).
    FILE_TOO_LARGE = 39
    #: REQUEST_DONE: the sender's kept files would exceed its quota.
    QUOTA = 40
    #: REQUEST_DONE: a file name that breaks the rule of 21.2 (the text says which part).
    BAD_FILE_NAME = 41
    #: FILE_STATE: the file is not kept (expired, unknown, not for this user).
    NO_SUCH_FILE = 42
    #: FILE_STATE: the upload's SHA-256 did not match its offer.
    BAD_CHECKSUM = 43
    #: REJECTED, to CAP_FAILOVER clients: the relay cannot store messages now (the cluster is
    #: unreachable); kept and resent after `retry_after_ms`, like RATE_LIMITED (22.6).
    CLUSTER_UNAVAILABLE = 44


class ProtocolError(Exception):
    """Base of every error the protocol layer raises on purpose."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.PROTOCOL_VIOLATION) -> None:
        super().__init__(message)
        self.code = code


class LocalProtocolError(ProtocolError):
    """We were asked to do something illegal: a caller bug or unsendable user input."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something legal on the wire but illegal in the session's state."""


class DecodeError(ProtocolError):
    """Bytes that are not a valid datagram or message: truncated, oversized, unknown kind, bad UTF-8."""
