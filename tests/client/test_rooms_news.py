"""The sentences of room news (room_news.py) and line mode's records for rooms (plain.py)."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest

from labchat.client import room_news
from labchat.client.plain import event_line, event_record
from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode

A = m.Action
NOW = datetime(2026, 12, 2, 9, 0).timestamp()


def news(action: int, actor: str = "teacher", target: str = "bob", minutes: int = 0, value: str = "") -> str:
    return room_news.describe(
        ev.RoomEvent("cs101", NOW, action, actor, target, minutes, value, "server words")
    )


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (news(A.MUTE, minutes=10), "bob was muted for 10 min by teacher"),
        (news(A.MUTE), "bob was muted by teacher (until lifted)"),
        (news(A.MUTE, minutes=10, value="spam"), "bob was muted for 10 min by teacher: spam"),
        (news(A.KICK, value="spam"), "bob was kicked by teacher: spam"),
        (news(A.BAN, minutes=60), "bob was banned for 60 min by teacher"),
        (news(A.BAN, minutes=2880), "bob was banned for 2 days by teacher"),
        (news(A.BAN), "bob was banned by teacher (until lifted)"),
        (news(A.UNMUTE), "bob was unmuted by teacher"),
        (news(A.UNBAN), "bob was unbanned by teacher"),
        (news(A.OP), "teacher gave bob operator"),
        (news(A.DEOP), "teacher took operator from bob"),
        (news(A.VOICE), "teacher gave bob voice"),
        (news(A.DEVOICE), "teacher took voice from bob"),
        (news(A.INVITE), "teacher invited bob"),
        (news(A.TOPIC_SET, target="", value="Lab 3"), "teacher set the topic: Lab 3"),
        (news(A.TOPIC_SET, target=""), "teacher cleared the topic"),
        (news(A.KEY_SET, target=""), "teacher changed the room key"),
        (news(A.MODERATED_SET, target="", value="on"), "teacher turned moderation on"),
        (news(A.PRIVATE_SET, target="", value="off"), "teacher turned invite-only off"),
        (news(A.TOPIC_LOCK_SET, target="", value="on"), "teacher turned the topic lock on"),
        (news(A.MUTE_ENDED, actor=""), "bob's mute ended"),
        (news(A.BAN_ENDED, actor=""), "bob's ban ended"),
        (news(99), "server words"),  # an action this client does not know: the server's sentence
    ],
)
def test_room_event_sentences(sentence: str, expected: str) -> None:
    assert sentence == expected


def test_announcements_tallies_and_leaving() -> None:
    d = room_news.describe
    assert (
        d(ev.Announcement("cs101", 1, "teacher", NOW, "Quiz at 10")) == "announcement by teacher: Quiz at 10"
    )
    assert (
        d(ev.AnnouncementTally("cs101", 1, 23, 28, ("ani", "budi")))
        == "seen by 23 of 28 — not yet: ani, budi"
    )
    assert d(ev.AnnouncementTally("cs101", 1, 2, 2, ())) == "seen by 2 of 2"
    cut = tuple(f"s{i}" for i in range(m.MAX_TALLY_NAMES))
    assert d(ev.AnnouncementTally("cs101", 1, 0, 50, cut)).endswith("s39, …")
    kicked = ev.RoomLeft("cs101", ErrorCode.KICKED, "teacher", "too loud")
    assert d(kicked, NOW) == "you were kicked from #cs101 by teacher: too loud"
    banned = ev.RoomLeft("cs101", ErrorCode.BANNED, "teacher", "", NOW + 3600)
    assert d(banned, NOW) == "you were banned from #cs101 by teacher until 10:00"
    forever = ev.RoomLeft("cs101", ErrorCode.BANNED, "teacher", "cheating", math.inf)
    assert d(forever, NOW) == "you were banned from #cs101 by teacher (until lifted): cheating"
    assert d(ev.RoomLeft("cs101"), NOW) == "you left #cs101"
    state = ev.RoomState("cs101", "Lab 3", m.ROOM_MODERATED, m.MEMBER_OP, None, 12, True)
    assert d(state) == "you joined #cs101 — topic: Lab 3 (12 members, moderated, you: op)"


def test_who_marks_operators_voiced_and_guests() -> None:
    label = room_news.member_label
    assert label("teacher", m.MEMBER_OP) == "@teacher"
    assert label("root", m.MEMBER_ADMIN) == "@root"
    assert label("bob", m.MEMBER_VOICE | m.MEMBER_MUTED) == "+bob (muted)"
    assert label("ani", m.MEMBER_GUEST) == "ani (guest)"
    presence = ev.PresenceUpdated("cs101", ("ani", "bob", "teacher"), True, {"bob": "lunch"},
                                  {"ani": m.MEMBER_GUEST, "teacher": m.MEMBER_OP})  # fmt: skip
    rec = event_record(presence, NOW)
    assert rec is not None
    assert rec["text"] == "3 online: ani (guest), bob (away: lunch), @teacher"
    assert rec["modes"] == {"ani": ["guest"], "teacher": ["op"]}


def test_every_json_record_has_a_room() -> None:
    events: list[ev.Event] = [
        ev.MessageReceived("cs101", 3, NOW, "bob", "hi"),
        ev.PrivateReceived("bob", "alice", NOW, "psst"),
        ev.StateChanged(ev.ConnectionState.RECONNECTING),
        ev.RoomState("cs101", "", m.ROOM_KEYED | m.ROOM_TOPIC_LOCKED, m.MEMBER_VOICE, math.inf, 3, True),
        ev.RoomLeft("cs101", ErrorCode.BANNED, "teacher", "cheating", NOW + 300),
        ev.RoomList((ev.RoomInfo("cs101", 2, "Lab 3", m.ROOM_MODERATED),), more=True),
        ev.RoomEvent("cs101", NOW, A.MUTE, "teacher", "bob", 10, "spam", "x"),
        ev.Announcement("cs101", 4, "teacher", NOW, "Quiz"),
        ev.AnnouncementTally("cs101", 4, 1, 2, ("budi",)),
        ev.RequestFailed("moderate", "cs101", ErrorCode.NOT_OPERATOR, "only operators of cs101 can kick"),
        ev.MessageFailed(7, "you are muted in cs101", "hello", None, "cs101", ErrorCode.MUTED),
    ]
    records = [event_record(e, NOW, "alice") for e in events]
    for rec in records:
        assert rec is not None and "room" in rec
        json.dumps(rec)  # every value is JSON
    rooms = [r["room"] for r in records if r is not None]
    assert rooms == ["cs101", None, None, "cs101", "cs101", None] + ["cs101"] * 5  # /list: no room
    state, part, listing, event, announcement, tally, refused, failed = records[3:]
    assert state is not None and (state["modes"], state["you"], state["joined"]) == (
        ["keyed", "topic_locked"],
        ["voice"],
        True,
    )
    assert state["muted_until"] is None  # until lifted: no end to give
    assert part is not None and (part["type"], part["code"], part["by"], part["reason"]) == (
        "part",
        "banned",
        "teacher",
        "cheating",
    )
    assert part["until"] is not None and not part["until_lifted"]
    assert listing is not None and listing["rooms"] == [
        {"room": "cs101", "online": 2, "topic": "Lab 3", "modes": ["moderated"]}
    ]
    assert event is not None and (event["type"], event["action"], event["actor"], event["target"]) == (
        "room_event",
        "mute",
        "teacher",
        "bob",
    )
    assert event["minutes"] == 10 and event["text"] == "bob was muted for 10 min by teacher: spam"
    assert announcement is not None and (announcement["id"], announcement["by"], announcement["text"]) == (
        4,
        "teacher",
        "Quiz",
    )
    assert tally is not None and (tally["seen"], tally["total"], tally["not_yet"], tally["text"]) == (
        1,
        2,
        ["budi"],
        "seen by 1 of 2 — not yet: budi",
    )
    assert refused is not None and refused["type"] == "error" and "operators" in refused["text"]
    assert failed is not None and failed["type"] == "error" and failed["code"] == ErrorCode.MUTED


def test_plain_lines_name_the_room_only_when_in_several() -> None:
    said = ev.MessageReceived("cs101", 3, NOW, "alice", "hi")
    assert event_line(said, NOW, "me") == "09:00:00 <alice> hi"
    assert event_line(said, NOW, "me", several=True) == "09:00:00 #cs101 <alice> hi"
    muted = ev.RoomEvent("cs101", NOW, A.MUTE, "teacher", "bob", 10, "", "")
    assert (
        event_line(muted, NOW, "me", several=True)
        == "09:00:00 #cs101 -!- bob was muted for 10 min by teacher"
    )
    shown = ev.Announcement("cs101", 1, "teacher", NOW, "Quiz at 10")
    assert event_line(shown, NOW, "me") == "09:00:00 -!- announcement by teacher: Quiz at 10"
    # Said by the line before or after: the state after a change, an announcement's own event.
    assert event_line(ev.RoomState("cs101", "", 0, 0, None, 3, False), NOW, "me") is None
    assert event_line(ev.RoomEvent("cs101", NOW, A.ANNOUNCEMENT_SET, "t", "", 0, "", ""), NOW, "me") is None
    joined = event_line(ev.RoomState("cs101", "", 0, 0, None, 3, True), NOW, "me")
    assert joined is not None and joined.endswith("-!- you joined #cs101 (3 members)")


def test_a_refused_request_is_the_servers_line() -> None:
    refused = ev.RequestFailed(
        "moderate", "cs101", ErrorCode.NOT_OPERATOR, "only operators of cs101 can kick"
    )
    assert room_news.describe(refused) == "only operators of cs101 can kick"
