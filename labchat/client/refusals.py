"""The server's refusals in the user's language.

The server words its refusals in English (the wire carries one language; docs/protocol.md 6.7), and
each comes with an ErrorCode. A client running in another language shows the sentence its catalogue
has for that code instead of the server's words, so a student reading Bahasa Indonesia is not
handed an English error. In English the server's own words stay: they are the more precise ("muted
for 4 more minutes"). A code this table does not know keeps the server's words in every language.

The client core applies this to every event it passes on (`in_users_language`), so line mode and
the app show the same sentence. Notices (NOTICE) keep the server's words: they name people ("budi
is offline"), which a sentence per code would lose.
"""

from __future__ import annotations

from dataclasses import replace

from ..i18n import N_, _, current_language
from ..protocol import events as ev
from ..protocol.errors import ErrorCode

#: One sentence per ErrorCode a user may meet, in English; translated when shown.
REFUSALS: dict[int, str] = {
    ErrorCode.INTERNAL: N_("the server had an internal error"),
    ErrorCode.INVALID_PASSWORD: N_("wrong password"),
    ErrorCode.INVALID_NAME: N_("that name is not allowed"),
    ErrorCode.REGISTRATION_CLOSED: N_("this server does not create new accounts"),
    ErrorCode.LOGIN_THROTTLED: N_("too many failed logins: wait a moment and try again"),
    ErrorCode.BAD_MESSAGE: N_("the server could not read that message"),
    ErrorCode.RATE_LIMITED: N_("too many messages at once: they are sent a little later"),
    ErrorCode.NO_SUCH_USER: N_("no such user"),
    ErrorCode.REPLACED: N_("you logged in again somewhere else"),
    ErrorCode.SERVER_SHUTDOWN: N_("the server is shutting down"),
    ErrorCode.TIMED_OUT: N_("the connection timed out"),
    ErrorCode.NO_SUCH_ROOM: N_("you are not in that room"),
    ErrorCode.UNSUPPORTED_VERSION: N_("the server speaks another version of labchat"),
    ErrorCode.TOO_LONG: N_("the message is too long"),
    ErrorCode.BAD_QUERY: N_("that search cannot be run"),
    ErrorCode.USER_AWAY: N_("that user is away"),
    ErrorCode.RECIPIENT_OFFLINE: N_("that user is offline: the message waits for them"),
    ErrorCode.NO_SUCH_ACCOUNT: N_("no account with that name"),
    ErrorCode.REGISTRATION_LIMITED: N_("too many new accounts from this computer: try later"),
    ErrorCode.SERVER_BUSY: N_("the server is busy: try again in a moment"),
    ErrorCode.NOT_OPERATOR: N_("only the room's operators may do that"),
    ErrorCode.MUTED: N_("you are muted in this room"),
    ErrorCode.BANNED: N_("you are banned from that room"),
    ErrorCode.KICKED: N_("you were removed from the room"),
    ErrorCode.BAD_KEY: N_("wrong room key"),
    ErrorCode.INVITE_ONLY: N_("that room is by invitation only"),
    ErrorCode.MODERATED: N_("the room is moderated: only voiced members and operators may speak"),
    ErrorCode.TOO_MANY_ROOMS: N_("you are in too many rooms already"),
    ErrorCode.INVALID_ROOM: N_("that room name is not allowed"),
    ErrorCode.NOT_ALLOWED: N_("that is not allowed"),
    ErrorCode.NAME_IN_USE: N_("that name is in use right now"),
    ErrorCode.QUIET: N_("quiet mode: only the operators can be written to now"),
    ErrorCode.NO_SUCH_POLL: N_("no such poll open in this room"),
    ErrorCode.QUEUE_FULL: N_("the help queue is full"),
    ErrorCode.FILE_TOO_LARGE: N_("the file is larger than this server accepts"),
    ErrorCode.QUOTA: N_("your files on the server are over your quota"),
    ErrorCode.BAD_FILE_NAME: N_("that file name is not allowed"),
    ErrorCode.NO_SUCH_FILE: N_("the server no longer keeps that file"),
    ErrorCode.BAD_CHECKSUM: N_("the file changed while it was sent: send it again"),
    ErrorCode.CLUSTER_UNAVAILABLE: N_("the server cannot store messages right now: they are sent later"),
}


def worded(code: int, server_words: str) -> str:
    """What to show for a refusal: the server's words in English, else the catalogue's sentence."""
    sentence = REFUSALS.get(code)
    if sentence is None or not server_words or current_language() == "en":
        return server_words
    return _(sentence)


def in_users_language(event: ev.Event) -> ev.Event:
    """`event` with the server's words of a refusal in the user's language (module docstring)."""
    if current_language() == "en":
        return event
    match event:
        case ev.MessageFailed(code=code, reason=reason) if code:
            return replace(event, reason=worded(code, reason))
        case ev.RequestFailed(code=code, text=text):
            return replace(event, text=worded(code, text))
        case ev.LoginRefused(code=code, reason=reason) | ev.LoginRetrying(code=code, reason=reason):
            return replace(event, reason=worded(code, reason))
        case ev.Closed(code=code, reason=reason) if code:
            return replace(event, reason=worded(code, reason))
    return event
