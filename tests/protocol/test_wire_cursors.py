"""LOGIN's CURSORS field (docs/protocol.md 18.3): any valid list round-trips, and any bytes in its
place decode or raise DecodeError, never anything else."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from labchat.protocol import messages as m
from labchat.protocol.errors import DecodeError
from labchat.protocol.wire import decode_message, encode_message

rooms = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True)
cursors = st.lists(st.tuples(rooms, st.integers(0, 2**64 - 1)), max_size=m.MAX_CURSORS).map(tuple)


@given(cursors)
def test_cursors_round_trip(pairs: tuple[tuple[str, int], ...]) -> None:
    login = m.Login("alice", "pw", "lobby", 3, m.CAP_ROOMS, "", pairs)
    assert decode_message(m.Kind.LOGIN, encode_message(login)) == login


@given(st.binary(max_size=600))
def test_any_bytes_as_cursors_decode_or_raise(tail: bytes) -> None:
    head = encode_message(m.Login("alice", "pw", "lobby", 3, m.CAP_ROOMS, ""))[:-2]  # without the count
    with contextlib.suppress(DecodeError):
        decoded = decode_message(m.Kind.LOGIN, head + tail)
        assert isinstance(decoded, m.Login) and len(decoded.cursors) <= m.MAX_CURSORS
