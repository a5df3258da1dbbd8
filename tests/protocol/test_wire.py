"""Wire format: every message round-trips, and any bytes either decode or raise DecodeError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.protocol import messages as m
from labchat.protocol.errors import DecodeError, ErrorCode, LocalProtocolError
from labchat.protocol.wire import (
    MAX_ACK_RANGES,
    MAX_FRAME_BODY_BYTES,
    MAX_PACKET_BYTES,
    Ack,
    Frame,
    decode_message,
    decode_packet,
    encode_message,
    encode_packet,
)

SAMPLES: list[m.Message] = [
    m.Login("alice", "secret", "lobby", 0),
    m.Login("Bob_2", "pässwörd 🔑", "lobby", 2**63),
    m.Say(1, "lobby", "hello"),
    m.Say(2**64 - 1, "lobby", "Selamat pagi semuanya! 🇮🇩", m.FLAG_ACTION),
    m.Whisper(7, "bob", "psst"),
    m.Who("lobby"),
    m.Bye(),
    m.Ping(),
    m.LoginOk("alice", "lobby", "lab 3", 1),
    m.LoginFailed(ErrorCode.INVALID_PASSWORD, "Invalid password"),
    m.Accepted(9, "lobby", 12, 1_700_000_000_000),
    m.Rejected(9, ErrorCode.RATE_LIMITED, 250, "slow down"),
    m.RoomMessage("lobby", 12, 1_700_000_000_000, "alice", "hi 👋", m.FLAG_HISTORY, 99),
    m.Joined("lobby", "bob", 5),
    m.Left("lobby", "bob", 6, "timed out"),
    m.Presence("lobby", ("alice", "bob"), 1),
    m.Presence("lobby", ()),
    m.Private("alice", "bob", 5, "secret plans"),
    m.Notice(0, "welcome"),
    m.Closed(ErrorCode.REPLACED, "logged in elsewhere"),
    m.SetAway(1, "lunch 🍜"),
    m.SetAway(0),
    m.Away("lobby", "bob", 1, "lunch", 1_700_000_000_000, 1),
    m.Private("alice", "bob", 5, "while you were out", m.FLAG_HELD),
    m.Login("carol", "pw", "lobby", 3, m.LOGIN_NO_REGISTER, "AQIDBA"),
    m.LoginFailed(ErrorCode.LOGIN_THROTTLED, "try again in 6 s", 6000),
    m.LoginQueued(37, 1500),
    m.Ticket("AQIDBAUG", 43_200),
    m.Login("carol", "pw", "lobby", 3, m.CAP_LONG_MESSAGES),
    m.LoginOk("carol", "lobby", "lab 3", 0, 30_000, m.CAP_LONG_MESSAGES),
    m.SayPart(5, "lobby", "", m.FLAG_ACTION, 0, 3, "first part\nwith a newline"),
    m.SayPart(6, "lobby", "bob", 0, 1, 2, "end"),
    m.HistoryRequest(1, "lobby", 0, 100),
    m.SearchRequest(2, "lobby", 'quoted "words" AND *', 50),
    m.MessagePart("lobby", 40, 1_700_000_000_000, "alice", 0, 77, 0, 19, "x" * 900),
    m.PrivatePart("alice", "bob", 5, m.FLAG_ACTION, 1, 2, "tail"),
    m.HistoryEntry(1, "lobby", 3, 4, "alice", 0, 5, 0, 1, "old line"),
    m.SearchHit(2, "lobby", 3, 4, "alice", m.FLAG_ACTION, "… around the match …"),
    m.RequestDone(2, 0, 1, ""),
    # rooms and roles (docs/protocol.md 18)
    m.Login("dave", "pw", "lobby", 9, m.CAP_ROOMS, "", (("cs101", 12), ("lab-3", 0))),
    m.Presence("cs101", ("alice", "bob"), 0, 0, m.member_mode_char(m.MEMBER_OP) + "@"),
    m.JoinRoom(3, "cs101", 0, "s3cret"),
    m.PartRoom(4, "cs101", "lunch"),
    m.ListRooms(5),
    m.SetRoom(6, "cs101", m.Setting.TOPIC, "Lab 3: sorting 🧮"),
    m.Moderate(7, "cs101", m.Action.MUTE, "bob", 10, "spamming"),
    m.AnnouncementSeen("cs101", 2),
    m.RoomState("cs101", "Lab 3", m.ROOM_MODERATED | m.ROOM_TOPIC_LOCKED, m.MEMBER_OP, 0, 28),
    m.RoomLeft("cs101", ErrorCode.BANNED, "teacher", "cheating", m.UNTIL_LIFTED_MS),
    m.RoomInfo(5, "cs101", 27, "Lab 3", m.ROOM_KEYED),
    m.RoomEvent("cs101", 1_700_000_000_000, m.Action.MUTE, "teacher", "bob", 10, "", "bob was muted"),
    m.Announcement("cs101", 2, "teacher", 1_700_000_000_000, "Quiz at 10:00"),
    m.AnnouncementTally("cs101", 2, 23, 28, ("ani", "budi")),
    # the classroom (docs/protocol.md 20)
    m.Login("eve", "pw", "lobby", 0, m.CAP_ROOMS | m.CAP_CLASSROOM, "", (), "PC-14"),
    m.Presence("cs101", ("ani", "budi"), 0, 0, "@A", ("PC-01", "")),
    m.RoomState("cs101", "", m.ROOM_QUIET, 0, 0, 28, 1_700_000_600_000),
    m.Hand(8, "cs101", 1, "exercise 2 crashes"),
    m.QueueTake(9, "cs101", m.QUEUE_DONE, "budi"),
    m.PollOpen(10, "cs101", "Done with exercise 2?", ("yes", "no", "stuck"), m.POLL_ANONYMOUS),
    m.PollVote(11, "cs101", 3, 2),
    m.PollClose(12, "cs101", 3),
    m.QueueEntry("cs101", 0, 2, "budi", "PC-14", "segfault", 1_700_000_000_000, "teacher"),
    m.Poll("cs101", 3, "teacher", "Done?", ("yes", "no"), m.POLL_CLOSED, (20, 3), 23, 1, ("1 ani", "2 budi")),
    # files (docs/protocol.md 21)
    m.FileOffer(13, "cs101", "", "lab3.py", 4200, bytes(range(32)), "text/x-python"),
    m.FileOffer(14, "cs101", "budi", "../../etc/passwd", 2**40, bytes(32), "", m.FILE_FOLDER),
    m.FileChunk(7, 960, b"\x00\xff" * 480),
    m.FileGet(7, 1920),
    m.FileCancel(7, "changed my mind"),
    m.ListFiles(15, "cs101"),
    m.FileState(7, 13, 1920, 0, ""),
    m.FileData(7, 0, b"print('hi')\n"),
    m.FileOffered(7, "cs101", "", "ani", "lab3.py", 4200, bytes(range(32)), "text/x-python", 0, 5, 1, 15),
    m.Relays((("10.0.0.2", 8080), ("relay-b.lab", 9000))),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda msg: type(msg).__name__)
def test_every_message_round_trips(message: m.Message) -> None:
    assert decode_message(message.KIND, encode_message(message)) == message


def test_every_kind_has_a_sample() -> None:
    assert {type(s) for s in SAMPLES} == set(m.MESSAGE_TYPES.values())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda msg: type(msg).__name__)
def test_truncated_bodies_raise_decode_error(message: m.Message) -> None:
    body = encode_message(message)
    for cut in range(len(body)):
        try:
            decode_message(message.KIND, body[:cut])
        except DecodeError:
            continue
        # A shorter body may still decode when trailing fields are strings that happen to fit;
        # it must never decode into something else than a valid message of that kind.


def test_trailing_bytes_are_ignored_for_forward_compatibility() -> None:
    body = encode_message(m.Say(1, "lobby", "x")) + b"future field"
    assert decode_message(m.Kind.SAY, body) == m.Say(1, "lobby", "x")


def test_unknown_kind() -> None:
    with pytest.raises(DecodeError, match="unknown message kind"):
        decode_message(250, b"")


@pytest.mark.parametrize(
    ("factory", "code"),
    [
        (lambda: m.Login("1abc", "pw"), ErrorCode.INVALID_NAME),
        (lambda: m.Login("a" * 21, "pw"), ErrorCode.INVALID_NAME),
        (lambda: m.Login("al ice", "pw"), ErrorCode.INVALID_NAME),
        (lambda: m.Login("alice", "x" * 300), ErrorCode.INVALID_PASSWORD),
        (lambda: m.Say(1, "lobby", ""), ErrorCode.BAD_MESSAGE),
        (lambda: m.Say(1, "lobby", "é" * 451), ErrorCode.BAD_MESSAGE),
        (lambda: m.Say(1, "Lobby!", "hi"), ErrorCode.NO_SUCH_ROOM),
        (lambda: m.Whisper(1, "no body", "hi"), ErrorCode.INVALID_NAME),
        (lambda: m.SetAway(2, "x"), ErrorCode.BAD_MESSAGE),
        (lambda: m.SetAway(1, "z" * (m.MAX_AWAY_REASON_BYTES + 1)), ErrorCode.BAD_MESSAGE),
    ],
)
def test_invalid_messages_never_exist(factory, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LocalProtocolError) as info:
        factory()
    assert info.value.code == code


def test_invalid_message_from_the_wire_is_a_decode_error_with_its_code() -> None:
    body = encode_message(m.Say(1, "lobby", "hi")).replace(b"hi", b"\xff\xfe")
    with pytest.raises(DecodeError):
        decode_message(m.Kind.SAY, body)
    good = encode_message(m.Login("alice", "pw"))
    bad = good.replace(b"alice", b"9lice")
    with pytest.raises(DecodeError) as info:
        decode_message(m.Kind.LOGIN, bad)
    assert info.value.code == ErrorCode.INVALID_NAME


def test_largest_message_fits_a_frame() -> None:
    biggest = m.RoomMessage("r" * 32, 2**64 - 1, 2**64 - 1, "u" * 20, "€" * 300, 3, 2**64 - 1)
    assert len(encode_message(biggest)) <= MAX_FRAME_BODY_BYTES


def test_packet_round_trip() -> None:
    frames = [Frame(m.Kind.SAY, 1, b"abc"), Frame(m.Kind.PING, 2, b"")]
    ack = Ack(5, ((7, 9), (12, 12)), 3)
    packet = decode_packet(encode_packet(ack, frames))
    assert packet.ack == ack
    assert packet.frames == tuple(frames)
    assert not packet.ack_now
    assert decode_packet(encode_packet(None, [])).frames == ()
    probe = decode_packet(encode_packet(ack, frames, ack_now=True))
    assert probe.ack_now and probe.ack == ack and probe.frames == tuple(frames)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x04",  # unknown flag
        b"\x01\x00",  # truncated ack
        b"\x01" + (5).to_bytes(4, "big") + b"\x00\x00" + bytes([MAX_ACK_RANGES + 1]),
        b"\x01" + (5).to_bytes(4, "big") + b"\x00\x00\x01" + (3).to_bytes(4, "big") + (4).to_bytes(4, "big"),
        b"\x00\x01\x00\x00\x00\x00\x00\x00",  # frame seq 0
        b"\x00\x01\x00\x00\x00\x01\x00\x09abc",  # frame longer than packet
        b"\x00" * (MAX_PACKET_BYTES + 1),
    ],
)
def test_bad_packets(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_packet(data)


@given(st.binary(max_size=1300))
def test_decode_packet_is_total(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_packet(data)


@given(st.integers(min_value=0, max_value=255), st.binary(max_size=1200))
def test_decode_message_is_total(kind: int, body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(kind, body)


@given(st.sampled_from(SAMPLES), st.data())
def test_bit_flips_decode_or_raise(message: m.Message, data: st.DataObject) -> None:
    body = bytearray(encode_message(message))
    if body:
        i = data.draw(st.integers(0, len(body) - 1))
        body[i] ^= 1 << data.draw(st.integers(0, 7))
    with contextlib.suppress(DecodeError):
        decode_message(message.KIND, bytes(body))


def test_a_first_version_login_without_the_appended_fields_still_decodes() -> None:
    """A client of the first version ends LOGIN after resume_seq: flags 0, no ticket."""
    # Without the later appended fields (cursors, seat: 2 bytes each when empty).
    full = encode_message(m.Login("alice", "pw", "lobby", 7, m.LOGIN_NO_REGISTER, "tkt"))[:-4]
    old = full[: -(4 + 2 + 3)]
    assert decode_message(m.Kind.LOGIN, old) == m.Login("alice", "pw", "lobby", 7)
    assert decode_message(m.Kind.LOGIN, full[:-5]).flags == m.LOGIN_NO_REGISTER  # ticket absent
    with pytest.raises(DecodeError):
        decode_message(m.Kind.LOGIN, full[:-7])  # ends inside `flags`
    assert decode_message(m.Kind.LOGIN, full).cursors == ()  # type: ignore[attr-defined]
    with_cursors = encode_message(m.Login("alice", "pw", "lobby", 7, m.CAP_ROOMS, "", (("cs101", 4),)))
    assert decode_message(m.Kind.LOGIN, with_cursors).cursors == (("cs101", 4),)  # type: ignore[attr-defined]
    with pytest.raises(DecodeError):
        decode_message(m.Kind.LOGIN, with_cursors[:-3])  # ends inside a cursor's seq
    failed = encode_message(m.LoginFailed(ErrorCode.INVALID_PASSWORD, "no", 5))
    assert decode_message(m.Kind.LOGIN_FAILED, failed[:-4]).retry_after_ms == 0  # type: ignore[attr-defined]
