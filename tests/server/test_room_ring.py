"""The room's ring of recent messages stays bounded in text as well as in count (long messages)."""

from __future__ import annotations

from labchat.server.room import Room
from labchat.server.store import StoredMessage


def _msg(seq: int, size: int) -> StoredMessage:
    return StoredMessage("lobby", seq, seq, "ana", "x" * size, 0, seq)


def test_ring_keeps_fewer_long_messages_and_says_when_it_cannot_reach_back() -> None:
    room = Room("lobby", ring_size=100, ring_text_chars=50_000)
    for seq in range(1, 101):
        room.remember(_msg(seq, 100))
        room.next_seq = seq + 1
    assert len(room.recent) == 100  # short ones: bounded by count
    for seq in range(101, 111):
        room.remember(_msg(seq, 16_000))
        room.next_seq = seq + 1
    assert sum(len(s.text) for s in room.recent) <= 50_000
    assert [s.seq for s in room.recent] == [108, 109, 110]
    assert room.recent_after(50, 10) is None  # the store serves that catch-up
    assert [s.seq for s in room.recent_after(108, 10) or []] == [109, 110]
