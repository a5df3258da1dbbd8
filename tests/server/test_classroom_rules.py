"""The classroom's rules without I/O (docs/protocol.md section 20): who may do what (room.py's
table), the help queue's order, polls and quiet mode, with the time as a plain number."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labchat.protocol import messages as m
from labchat.server.classroom_state import HelpQueue, PollError, QueueFull, RoomPoll, clean_seat, quiet_until
from labchat.server.room import Act, Role, Room, may

T0 = 1_700_000_000_000  # a fake clock, in ms


@pytest.mark.parametrize(
    ("act", "allowed"),
    [
        (Act.RAISE_HAND, set(Role)),
        (Act.VOTE, set(Role)),
        (Act.TAKE_FROM_QUEUE, {Role.OP, Role.ADMIN}),
        (Act.SEE_QUEUE, {Role.OP, Role.ADMIN}),
        (Act.OPEN_POLL, {Role.OP, Role.ADMIN}),
        (Act.SEE_VOTES, {Role.OP, Role.ADMIN}),
        (Act.SET_QUIET, {Role.OP, Role.ADMIN}),
        (Act.START_SESSION, {Role.OP, Role.ADMIN}),
        (Act.SPEAK_WHEN_QUIET, {Role.OP, Role.ADMIN}),
        (Act.BE_MESSAGED_WHEN_QUIET, {Role.OP, Role.ADMIN}),
    ],
)
def test_who_may_do_what(act: Act, allowed: set[Role]) -> None:
    assert {role for role in Role if may(act, role)} == allowed


def test_queue_keeps_order_a_re_raised_hand_keeps_its_place_and_next_skips_taken() -> None:
    q = HelpQueue()
    q.raise_hand("budi", "PC-14", "segfault", T0)
    q.raise_hand("Cid", "PC-2", "", T0 + 1000)
    q.raise_hand("dewi", "PC-7", "loops", T0 + 2000)
    q.raise_hand("BUDI", "", "segfault at line 12", T0 + 3000)  # same user (case), keeps place and seat
    assert [(i.user, i.seat, i.question, i.raised_ms) for i in q.items] == [
        ("budi", "PC-14", "segfault at line 12", T0),
        ("Cid", "PC-2", "", T0 + 1000),
        ("dewi", "PC-7", "loops", T0 + 2000),
    ]
    assert q.position("cid") == 2 and q.position("nobody") == 0
    first = q.take_next("teacher", T0 + 5000)
    assert first is not None and (first.user, first.taken_by, first.taken_ms) == (
        "budi",
        "teacher",
        T0 + 5000,
    )
    second = q.take_next("ta", T0 + 6000)
    assert second is not None and second.user == "Cid"
    done = q.remove("cid", "ta", T0 + 9000)
    assert done is not None and (done.item.user, done.done_by, done.done_ms) == ("Cid", "ta", T0 + 9000)
    assert q.remove("cid", "ta", T0) is None
    assert [i.user for i in q.items] == ["budi", "dewi"]
    assert q.take_next("ta", T0) is not None and q.take_next("ta", T0) is None  # nobody waiting
    entries = q.entries("cs101")
    assert [(e.index, e.count, e.user, e.taken_by) for e in entries] == [
        (0, 2, "budi", "teacher"),
        (1, 2, "dewi", "ta"),
    ]
    assert HelpQueue().entries("cs101") == [m.QueueEntry("cs101", 0, 0)]


def test_those_behind_a_hand_that_goes_down_move_up_and_a_taken_one_is_not_told() -> None:
    q = HelpQueue()
    for i, name in enumerate(["budi", "cid", "dewi", "eko"]):
        q.raise_hand(name, "", f"q{i}", T0 + i)
    assert q.take_next("teacher", T0 + 10) is not None  # budi taken
    assert q.take_next("teacher", T0 + 11) is not None  # cid taken
    done = q.remove("budi", "teacher", T0 + 20)
    assert done is not None and done.place == 1
    # cid (taken: someone is on the way) is not told; dewi and eko are, with their new places
    assert [(place, item.user) for place, item in q.moved_up(done)] == [(2, "dewi"), (3, "eko")]
    last = q.remove("eko", "eko", T0 + 30)
    assert last is not None and last.place == 3 and q.moved_up(last) == []  # nobody behind


def test_queue_is_bounded_but_a_member_in_it_may_still_change_its_question() -> None:
    q = HelpQueue(limit=2)
    q.raise_hand("a", "", "", T0)
    q.raise_hand("b", "", "", T0)
    with pytest.raises(QueueFull):
        q.raise_hand("c", "", "", T0)
    assert q.raise_hand("a", "", "new", T0).question == "new"


def test_poll_views_votes_and_close() -> None:
    poll = RoomPoll(3, "teacher", "Done?", ("yes", "no", "stuck"), anonymous=False, opened_ms=T0)
    assert poll.vote("budi", 1) and poll.vote("cid", 3) and poll.vote("budi", 2)
    assert not poll.vote("budi", 2)  # the same vote again changes nothing
    with pytest.raises(ValueError):
        poll.vote("dewi", 4)
    student = poll.view("cs101", "cid", operator=False)
    assert (student.counts, student.voters, student.your_choice, student.ballots) == ((), 0, 3, ())
    teacher = poll.view("cs101", "teacher", operator=True)
    assert (teacher.counts, teacher.voters, teacher.ballots) == ((0, 1, 1), 2, ("2 budi", "3 cid"))
    assert poll.close(T0 + 60_000) and not poll.close(T0 + 61_000)
    with pytest.raises(PollError):
        poll.vote("dewi", 1)
    closed = poll.view("cs101", "dewi", operator=False)
    assert closed.flags == m.POLL_CLOSED and (closed.counts, closed.voters, closed.your_choice) == (
        (0, 1, 1),
        2,
        0,
    )


def test_anonymous_poll_hides_ballots_even_from_operators() -> None:
    poll = RoomPoll(1, "teacher", "Q", ("a", "b"), anonymous=True, opened_ms=T0)
    poll.vote("budi", 2)
    view = poll.view("cs101", "teacher", operator=True)
    assert view.flags == m.POLL_ANONYMOUS and view.counts == (0, 1) and view.ballots == ()
    assert poll.view("cs101", "budi", operator=False).your_choice == 2


def test_quiet_mode_values_and_expiry_on_the_fake_clock() -> None:
    assert quiet_until("off", T0) == 0
    assert quiet_until("30", T0) == T0 + 30 * 60_000
    assert quiet_until("240", T0) == T0 + 240 * 60_000
    for bad in ("0", "241", "-5", "5m", "", "٣"):
        assert quiet_until(bad, T0) is None
    room = Room("cs101")
    room.quiet_until_ms = T0 + 60_000
    assert room.quiet(T0) and room.quiet(T0 + 59_999) and not room.quiet(T0 + 60_000)
    state = room.state_for("budi", T0)
    assert state.modes & m.ROOM_QUIET and state.quiet_until_ms == T0 + 60_000
    over = room.state_for("budi", T0 + 60_000)  # over at its end, before the timer has run
    assert not over.modes & m.ROOM_QUIET and over.quiet_until_ms == 0


@given(st.text(max_size=60))
def test_any_seat_is_cut_to_40_bytes_without_control_characters(seat: str) -> None:
    cleaned = clean_seat(seat)
    assert len(cleaned.encode("utf-8", "surrogatepass")) <= m.MAX_SEAT_BYTES
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in cleaned)
