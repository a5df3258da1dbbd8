"""Room news for the screen: what a room event does to a member's modes.

The sentences themselves come from the client core (`labchat.client.room_news`), so that line mode
and the app say the same words; this module adds only what the screen needs on top.
"""

from __future__ import annotations

from ..protocol.messages import MEMBER_MUTED, MEMBER_OP, MEMBER_VOICE, Action

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
