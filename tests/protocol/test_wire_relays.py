"""RELAYS' ADDRS field (docs/protocol.md 22.2): any valid list round-trips, any bytes in its place
decode or raise DecodeError, and an invalid address never exists in memory."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.protocol import messages as m
from labchat.protocol.errors import DecodeError, LocalProtocolError
from labchat.protocol.wire import decode_message, encode_message

hosts = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,60}", fullmatch=True)
addresses = st.lists(st.tuples(hosts, st.integers(1, 0xFFFF)), max_size=m.MAX_RELAYS).map(tuple)


@given(addresses)
def test_relays_round_trip(pairs: tuple[tuple[str, int], ...]) -> None:
    message = m.Relays(pairs)
    assert decode_message(m.Kind.RELAYS, encode_message(message)) == message


@given(st.binary(max_size=600))
def test_any_bytes_as_relays_decode_or_raise(body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decoded = decode_message(m.Kind.RELAYS, body)
        assert isinstance(decoded, m.Relays) and len(decoded.relays) <= m.MAX_RELAYS
        for host, port in decoded.relays:
            assert host and 1 <= port <= 0xFFFF


@pytest.mark.parametrize(
    "relays",
    [
        (("", 8080),),
        (("10.0.0.2", 0),),
        (("bad host", 8080),),
        (("x" * 256, 8080),),
        (("10.0.0.2\n", 8080),),
        tuple(("10.0.0.2", 1000 + i) for i in range(m.MAX_RELAYS + 1)),
    ],
)
def test_invalid_relays_never_exist(relays: tuple[tuple[str, int], ...]) -> None:
    with pytest.raises(LocalProtocolError):
        m.Relays(relays)


def test_an_empty_list_says_no_other_relay_now() -> None:
    assert decode_message(m.Kind.RELAYS, b"\x00\x00") == m.Relays(())
