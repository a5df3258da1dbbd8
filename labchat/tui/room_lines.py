"""Room news for the screen: the system line for a room event, and what it does to a member's modes.

The sentences themselves belong to the client core (`labchat.client.room_news.describe`), so that
line mode and the app say the same words. Until that module exists this falls back to the
server's own sentence (ROOM_EVENT's `text`) and to a few plain sentences of its own.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ..protocol import events as ev
from ..protocol.errors import ErrorCode
from ..protocol.messages import MEMBER_MUTED, MEMBER_OP, MEMBER_VOICE, Action

try:  # pragma: no cover - which branch runs depends on the client core's version
    from ..client.room_news import describe as _core_describe
except ImportError:  # pragma: no cover
    _core_describe = None


def describe(event: ev.RoomEvent | ev.RoomLeft | ev.RequestFailed) -> str:
    """The one-line sentence for a room event, as line mode prints it."""
    if _core_describe is not None:
        return str(_core_describe(event))
    match event:
        case ev.RoomEvent():
            return event.text
        case ev.RequestFailed():
            return event.text
        case ev.RoomLeft(code=ErrorCode.KICKED):
            by = f" by {event.by}" if event.by else ""
            why = f": {event.reason}" if event.reason else ""
            return f"You were kicked from #{event.room}{by}{why}"
        case ev.RoomLeft(code=ErrorCode.BANNED):
            by = f" by {event.by}" if event.by else ""
            why = f": {event.reason}" if event.reason else ""
            until = ""
            if event.until is not None and math.isfinite(event.until):
                until = f" until {datetime.fromtimestamp(event.until, UTC):%Y-%m-%d %H:%M} UTC"
            return f"You were banned from #{event.room}{by}{until}{why}"
        case _:
            return f"You left #{event.room}"


#: What each action does to its target's MEMBER_* bits: (bits set, bits cleared).
_MODE_CHANGES: dict[int, tuple[int, int]] = {
    Action.OP: (MEMBER_OP, 0),
    Action.DEOP: (0, MEMBER_OP),
    Action.VOICE: (MEMBER_VOICE, 0),
    Action.DEVOICE: (0, MEMBER_VOICE),
    Action.MUTE: (MEMBER_MUTED, 0),
    Action.UNMUTE: (0, MEMBER_MUTED),
    Action.MUTE_ENDED: (0, MEMBER_MUTED),
}


def member_bits_after(bits: int, action: int) -> int:
    """A member's MEMBER_* bits after a ROOM_EVENT `action` about them (18.7: between PRESENCEs)."""
    added, removed = _MODE_CHANGES.get(action, (0, 0))
    return (bits | added) & ~removed
