"""The classroom's sentences (room_news.py) and line mode's records and lines for it (plain.py): the
words the app and --plain share, and the --json contract of the queue, polls, hands, seats and quiet
mode."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labchat.client import room_news
from labchat.client.plain import event_line, event_record
from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.classroom import ClassBook

A = m.Action
NOW = datetime(2026, 12, 2, 9, 0).timestamp()


def news(action: int, actor: str = "teacher", target: str = "budi", minutes: int = 0, value: str = "",
         me: str | None = None) -> str:  # fmt: skip
    event = ev.RoomEvent("cs101", NOW, action, actor, target, minutes, value, "server words")
    return room_news.describe(event, me=me)


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (news(A.HAND_RAISED, "budi", minutes=3, me="budi"), "you are 3rd in the queue"),
        (news(A.HAND_RAISED, "budi", minutes=1, me="BUDI"), "you are 1st in the queue"),
        (news(A.HAND_RAISED, "", minutes=1, me="budi"), "you moved up: 1st in the queue"),
        (news(A.HAND_RAISED, "budi", minutes=12, value="segfault", me="teacher"),
         "budi raised a hand (12th in the queue): segfault"),
        (news(A.HAND_RAISED, "budi", minutes=2), "budi raised a hand (2nd in the queue)"),
        (news(A.HAND_TAKEN, me="budi"), "coming: teacher"),
        (news(A.HAND_TAKEN, me="teacher"), "teacher is on the way to budi"),
        (news(A.HAND_LOWERED, "budi", me="budi"), "your hand is down"),
        (news(A.HAND_LOWERED, "budi", me="teacher"), "budi's hand is down"),
        (news(A.HAND_LOWERED, me="budi"), "your hand is down (teacher marked it done)"),
        (news(A.HAND_LOWERED), "budi's hand is down (done by teacher)"),
        (news(A.QUIET_SET, minutes=30, value="on", target=""),
         "teacher turned quiet mode on for 30 min: only the teachers see what students say"),
        (news(A.QUIET_SET, value="off", target=""), "teacher turned quiet mode off"),
        (news(A.QUIET_SET, actor="", value="off", target=""), "quiet mode is over: everyone may talk again"),
        (news(A.SESSION_STARTED, target=""), "teacher started a class session"),
    ],
)  # fmt: skip
def test_classroom_sentences(sentence: str, expected: str) -> None:
    assert sentence == expected


def test_action_words_follow_the_member_names() -> None:
    for action in (A.QUIET_SET, A.SESSION_STARTED, A.HAND_RAISED, A.HAND_LOWERED, A.HAND_TAKEN):
        assert room_news.action_word(action) == action.name.lower().removesuffix("_set")


def queue() -> ev.QueueUpdated:
    return ev.QueueUpdated(
        "cs101",
        (
            ev.QueueItem("budi", "PC-14", "segfault in exercise 2", NOW - 185, "teacher"),
            ev.QueueItem("ani", "", "", NOW - 20, ""),
        ),
    )


def test_queue_lines() -> None:
    assert room_news.queue_lines(queue(), NOW) == [
        "help queue of #cs101: 1 waiting, 1 being helped",
        "1. budi (PC-14, waiting 3 min, teacher coming): segfault in exercise 2",
        "2. ani (waiting <1 min)",
    ]
    assert room_news.queue_lines(ev.QueueUpdated("cs101", ()), NOW) == ["the help queue of #cs101 is empty"]
    assert room_news.waiting(NOW - 3900, NOW) == "waiting 1 h 5 min"


def test_the_queue_record() -> None:
    rec = event_record(queue(), NOW)
    assert rec is not None
    assert rec["type"] == "queue" and rec["room"] == "cs101"
    assert rec["entries"][0] == {
        "user": "budi", "seat": "PC-14", "question": "segfault in exercise 2",
        "since": datetime.fromtimestamp(NOW - 185).astimezone().isoformat(timespec="milliseconds"),
        "taken_by": "teacher",
    }  # fmt: skip
    assert rec["entries"][1]["taken_by"] is None
    json.dumps(rec)
    line = event_line(queue(), NOW, "teacher")
    assert line is not None
    entry = "-!- 1. budi (PC-14, waiting 3 min, teacher coming): segfault in exercise 2"
    assert line.splitlines()[1].endswith(entry)


def a_poll(**fields: object) -> ev.PollShown:
    base: dict[str, object] = {
        "room": "cs101", "poll_id": 3, "by": "teacher", "question": "Done with exercise 2?",
        "options": ("yes", "no", "stuck"), "anonymous": False, "closed": False, "counts": (),
        "voters": 0, "your_choice": 0, "ballots": (),
    }  # fmt: skip
    base.update(fields)
    return ev.PollShown(**base)  # type: ignore[arg-type]


def test_poll_lines_as_the_contract_spells_them() -> None:
    assert room_news.poll_lines(a_poll()) == [
        "poll #3 by teacher: Done with exercise 2?  1) yes  2) no  3) stuck  — /vote N"
    ]
    tally = a_poll(counts=(20, 3, 1), voters=24)
    assert room_news.poll_lines(tally) == ["poll #3: yes 20, no 3, stuck 1 (24 voted)"]
    closed = a_poll(closed=True, counts=(20, 3, 1), voters=24)
    assert room_news.poll_lines(closed) == [
        "poll #3 closed: Done with exercise 2?", "poll #3: yes 20, no 3, stuck 1 (24 voted)"
    ]
    mine = a_poll(your_choice=2)
    assert room_news.poll_lines(mine) == [
        "poll #3 (Done with exercise 2?): you chose 2) no — /vote N to change it"
    ]
    assert "(anonymous)" in room_news.poll_line(a_poll(anonymous=True))
    ops = a_poll(counts=(1, 1, 0), voters=2, ballots=((1, "budi"), (2, "ani")))
    assert room_news.ballot_lines(ops) == ["  1) yes: budi", "  2) no: ani"]
    cut = a_poll(counts=(3, 1, 0), voters=4, ballots=((1, "budi"), (2, "ani")))
    assert room_news.ballot_lines(cut)[-1] == "  and 2 more"


def test_the_poll_record() -> None:
    shown = a_poll(counts=(1, 0, 0), voters=1, your_choice=1, ballots=((1, "budi"),))
    rec = event_record(shown, NOW)
    assert rec is not None
    expected = {
        "type": "poll", "room": "cs101", "id": 3, "by": "teacher", "question": "Done with exercise 2?",
        "options": ["yes", "no", "stuck"], "anonymous": False, "closed": False, "counts": [1, 0, 0],
        "voters": 1, "your_choice": 1, "ballots": [{"choice": 1, "user": "budi"}],
        "text": "poll #3: yes 1, no 0, stuck 0 (1 voted)",
    }  # fmt: skip
    assert {k: rec[k] for k in expected} == expected
    line = event_line(a_poll(closed=True, counts=(2, 0, 1), voters=3), NOW, "budi")
    assert line is not None
    first, second = line.splitlines()
    assert first.endswith("-!- poll #3 closed: Done with exercise 2?")
    assert second.endswith("-!- poll #3: yes 2, no 0, stuck 1 (3 voted)")


def test_hand_news_records_use_our_name() -> None:
    event = ev.RoomEvent("cs101", NOW, A.HAND_TAKEN, "teacher", "budi", 0, "", "")
    rec = event_record(event, NOW, "budi")
    assert rec is not None and rec["action"] == "hand_taken" and rec["text"] == "coming: teacher"
    line = event_line(event, NOW, "budi")
    assert line is not None and line.endswith("-!- coming: teacher")


def test_room_record_says_until_when_it_is_quiet() -> None:
    state = ev.RoomState("cs101", "", m.ROOM_QUIET, 0, None, 12, True, NOW + 1800)
    rec = event_record(state, NOW)
    assert rec is not None
    until = datetime.fromtimestamp(NOW + 1800).astimezone().isoformat(timespec="milliseconds")
    assert rec["quiet_until"] == until
    assert rec["modes"] == ["quiet"]
    assert rec["text"] == "you joined #cs101 (12 members, quiet until 09:30)"
    plain = event_record(ev.RoomState("cs101", "", 0, 0, None, 12, True), NOW)
    assert plain is not None and plain["quiet_until"] is None


def test_presence_records_carry_seats() -> None:
    event = ev.PresenceUpdated("cs101", ("teacher", "budi", "ani"), True, {}, {"teacher": m.MEMBER_OP},
                               {"budi": "PC-14", "teacher": "T-1"})  # fmt: skip
    rec = event_record(event, NOW)
    assert rec is not None and rec["seats"] == {"budi": "PC-14", "teacher": "T-1"}
    # The online line keeps its words for scripts; the seats follow on a line of their own.
    assert rec["text"] == "3 online: @teacher, budi, ani\nseats: teacher at T-1, budi at PC-14"


def test_a_students_line_in_quiet_mode() -> None:
    to_ops = ev.PrivateReceived("budi", "cs101", NOW, "can I go out?", to_ops=True)
    rec = event_record(to_ops, NOW)
    assert rec is not None and rec["type"] == "private" and rec["to_ops"] is True and rec["to"] == "cs101"
    line = event_line(to_ops, NOW, "teacher")
    assert line is not None and line.endswith("[to the operators of #cs101] <budi> can I go out?")
    plain = event_record(ev.PrivateReceived("bob", "alice", NOW, "hi"), NOW)
    assert plain is not None and plain["to_ops"] is False


def test_our_line_in_quiet_mode_is_shown_as_to_the_operators() -> None:
    delivered = ev.MessageDelivered(7, "cs101", 0, NOW, "can I go out?")
    rec = event_record(delivered, NOW, "budi")
    assert rec is not None and rec["type"] == "message" and rec["seq"] == 0 and rec["to_ops"] is True
    line = event_line(delivered, NOW, "budi")
    assert line is not None and line.endswith("[to the operators] <budi> can I go out?")
    normal = event_record(ev.MessageDelivered(8, "cs101", 5, NOW, "hi"), NOW, "budi")
    assert normal is not None and normal["to_ops"] is False


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.text(max_size=6), max_size=12),
    st.integers(0, 255),
    st.lists(st.integers(0, 2**32 - 1), max_size=12),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.lists(st.text(max_size=12), max_size=6),
)
def test_any_poll_from_the_server_is_shown_without_raising(
    options: list[str], flags: int, counts: list[int], voters: int, your_choice: int, ballots: list[str]
) -> None:
    book = ClassBook()
    msg = m.Poll("cs101", 1, "teacher", "Q?", tuple(options), flags, tuple(counts), voters, your_choice,
                 tuple(ballots))  # fmt: skip
    shown = book.poll(msg, 0.0)
    room_news.poll_lines(shown)
    room_news.ballot_lines(shown)
    room_news.poll_line(shown)
    assert all(isinstance(choice, int) and name for choice, name in shown.ballots)
