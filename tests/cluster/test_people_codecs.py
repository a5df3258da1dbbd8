"""What relays read from NATS about people is untrusted input: any bytes decode or are refused."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from labchat.server.cluster.accounts import checked_account
from labchat.server.cluster.codec import AccountValue, CodecError, encode_account
from labchat.server.cluster.exchange import (
    ModerationRecord,
    OutgoingPrivate,
    RemotePresence,
    RoomNews,
    RoomShare,
)
from labchat.server.cluster.moderation import decode_moderation, encode_moderation
from labchat.server.cluster.presence import decode_presence, encode_presence
from labchat.server.cluster.privates import decode_private, encode_private
from labchat.server.cluster.rooms import decode_room, encode_room
from labchat.server.store import RoomRecord

names = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)


@given(st.binary(max_size=300))
def test_any_bytes_are_a_presence_entry_or_refused(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_presence(data)


@given(st.binary(max_size=300))
def test_any_bytes_are_a_private_message_or_refused(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_private(data)


@given(st.binary(max_size=300))
def test_any_bytes_are_an_account_or_refused(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        checked_account(data)


@given(names, st.lists(st.text(max_size=20), max_size=5), st.integers(0, 2**31), st.none() | st.text(),
       st.integers(0, 2**62), st.text(max_size=30))
def test_presence_entries_round_trip(
    name: str, rooms: list[str], flags: int, away: str | None, since: int, seat: str
) -> None:
    state = RemotePresence("relay1", "ab" * 8, name, tuple(rooms), flags, away, since, seat)
    assert decode_presence(encode_presence(state)) == state


@given(names, names, st.integers(0, 2**62), st.text(max_size=200), st.integers(0, 1), st.integers(0, 2**63))
def test_private_messages_round_trip(
    sender: str, to: str, ts: int, text: str, flags: int, msg_id: int
) -> None:
    private = OutgoingPrivate(b"", sender, to, ts, text, flags, msg_id)
    assert decode_private(encode_private(private)) == private


def test_an_account_a_relay_cannot_afford_to_check_is_refused() -> None:
    fine = AccountValue("bob", b"s" * 16, b"d" * 32, 2**14, 8, 1, False, 0)
    assert checked_account(encode_account(fine)) == fine
    for bad in (
        AccountValue("bob", b"s" * 16, b"d" * 32, 2**30, 8, 1, False, 0),  # gigabytes of scrypt memory
        AccountValue("bob", b"s" * 16, b"d" * 32, 1000, 8, 1, False, 0),  # n not a power of two
        AccountValue("bob", b"s" * 16, b"d" * 3, 2**14, 8, 1, False, 0),  # not a scrypt digest
        AccountValue("no spaces allowed?", b"s" * 16, b"d" * 32, 2**14, 8, 1, False, 0),
    ):
        with contextlib.suppress(CodecError):
            checked_account(encode_account(bad))
            raise AssertionError(f"accepted {bad}")


@given(st.binary(max_size=300))
def test_any_bytes_are_a_moderation_record_or_refused(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_moderation(data)


@given(names, st.sampled_from(list(range(1, 11))), st.integers(0, 2**31), st.text(max_size=50))
def test_moderation_records_round_trip(target: str, action: int, minutes: int, reason: str) -> None:
    record = ModerationRecord("relay1", "lobby", "alice", action, target, minutes, reason, 1_700_000_000_000)
    assert decode_moderation(encode_moderation(record)) == record


@given(st.binary(max_size=300))
def test_any_bytes_are_a_room_record_or_refused(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_room(data)


@given(st.sampled_from(["lobby", "lab", "rust-week"]), st.text(max_size=40), st.integers(0, 255),
       st.text(max_size=10), st.none() | st.tuples(st.integers(17, 21), names, st.text(max_size=30)))
def test_room_records_round_trip(
    name: str, topic: str, modes: int, key: str, news: tuple[int, str, str] | None
) -> None:
    record = RoomRecord(name, "alice", topic, modes, key, 1_700_000_000_000, 3, "read this", "alice", 17)
    share = RoomShare("relay1", record, True, RoomNews(news[0], news[1], news[2], 5) if news else None)
    assert decode_room(encode_room(share)) == share
