"""The client's side of the classroom (docs/protocol.md 20), sans-I/O: a `ClientConnection` against a
scripted server that sends exactly what section 20 says a server sends, with a hand-moved clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.classroom import NO_CLASSROOM, ClassBook, ballot, seat_label
from labchat.protocol.client import ClientConnection
from labchat.protocol.errors import ErrorCode, LocalProtocolError

from .scripted_server import ScriptedServer

CLASSROOM = m.CAP_ROOMS | m.CAP_LONG_MESSAGES | m.CAP_CLASSROOM
T0_MS = 1_700_000_000_000


def in_class(
    rooms: tuple[str, ...] = ("cs101",), *, flags: int = CLASSROOM, seat: str = "PC-14"
) -> ScriptedServer:
    """A client with `seat` logged in to a server with `flags`, in `rooms`."""
    conn = ClientConnection("alice", "secret", seat=seat, rng=random.Random(2).randbytes)
    server = ScriptedServer(conn)
    conn.connect(server.now)
    server.exchange()
    server.send(m.LoginOk("alice", rooms[0], flags=flags), m.Ticket("t" * 20, 3600))
    for room in rooms:
        server.send(m.RoomState(room, members=3), m.Presence(room, ("alice", "bob")))
    server.take()
    return server


def done(server: ScriptedServer, kind: type[m.Message], code: int = 0, text: str = "") -> m.Message:
    """Answer the client's last request of `kind` with REQUEST_DONE; returns that request."""
    request = server.last(kind)
    server.send(m.RequestDone(request.request_id, code, 0, text))  # type: ignore[attr-defined]
    return request


def poll(room: str = "cs101", poll_id: int = 3, **fields: object) -> m.Poll:
    base: dict[str, object] = {"by": "teacher", "question": "Done with exercise 2?",
                               "options": ("yes", "no", "stuck")}  # fmt: skip
    base.update(fields)
    return m.Poll(room, poll_id, **base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- login and seats


def test_login_announces_the_classroom_and_carries_the_seat() -> None:
    server = in_class(seat="PC-14")
    login = server.last(m.Login)
    assert isinstance(login, m.Login)
    assert login.flags & m.CAP_CLASSROOM and login.seat == "PC-14"
    assert server.conn.server_has_classroom is True


def test_a_seat_is_cut_to_40_bytes_and_loses_its_control_characters() -> None:
    assert seat_label(" PC\x1b[31m-14\n") == "PC[31m-14"
    long = "é" * 30  # 60 bytes
    assert len(seat_label(long).encode()) <= m.MAX_SEAT_BYTES
    assert seat_label(long) == "é" * 20
    server = in_class(seat="x" * 100)
    login = server.last(m.Login)
    assert isinstance(login, m.Login) and login.seat == "x" * 40


def test_presence_carries_each_members_seat() -> None:
    server = in_class()
    server.send(m.Presence("cs101", ("alice", "bob", "teacher"), 1, 0, "@@A", ("PC-14", "", "T-1")))
    [presence] = server.events(ev.PresenceUpdated)
    assert isinstance(presence, ev.PresenceUpdated)
    assert presence.seats == {"alice": "PC-14", "teacher": "T-1"}
    assert presence.modes == {"teacher": m.MEMBER_OP}


def test_presence_seats_in_parts_are_put_together() -> None:
    server = in_class()
    server.send(
        m.Presence("cs101", ("a1", "a2"), 0, 1, "", ("S1", "S2")),
        m.Presence("cs101", ("a3",), 0, 0, "", ("S3",)),
    )
    [presence] = server.events(ev.PresenceUpdated)
    assert presence.seats == {"a1": "S1", "a2": "S2", "a3": "S3"}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the help queue


def test_a_raised_hand_is_a_request_and_its_news_is_a_room_event() -> None:
    server = in_class()
    request_id = server.conn.hand("cs101", True, "segfault in exercise 2", server.now)
    server.exchange()
    hand = server.last(m.Hand)
    assert isinstance(hand, m.Hand)
    assert (hand.request_id, hand.room, hand.raise_, hand.question) == (
        request_id, "cs101", 1, "segfault in exercise 2",
    )  # fmt: skip
    server.send(m.RoomEvent("cs101", T0_MS, m.Action.HAND_RAISED, "alice", "alice", 3, "segfault", ""))
    done(server, m.Hand)
    [news] = server.events(ev.RoomEvent)
    assert isinstance(news, ev.RoomEvent) and news.action == m.Action.HAND_RAISED and news.minutes == 3
    assert not server.events(ev.RequestFailed)
    assert not server.conn.request_pending(request_id)
    _, hands = server.conn.classroom_log("cs101")
    assert hands == (news,)


def test_hand_down_and_a_refused_hand() -> None:
    server = in_class()
    server.conn.hand("cs101", False, "", server.now)
    server.exchange()
    assert server.last(m.Hand).raise_ == 0  # type: ignore[attr-defined]
    server.conn.hand("cs101", True, "", server.now)
    server.exchange()
    done(server, m.Hand, ErrorCode.QUEUE_FULL, "the help queue of #cs101 is full (200)")
    [failed] = server.events(ev.RequestFailed)
    assert isinstance(failed, ev.RequestFailed)
    assert (failed.request, failed.room, failed.code) == ("hand", "cs101", ErrorCode.QUEUE_FULL)
    assert "full" in failed.text


def test_next_and_done_are_queue_takes() -> None:
    server = in_class()
    server.conn.queue_next("cs101", server.now)
    server.exchange()
    take = done(server, m.QueueTake, ErrorCode.NO_SUCH_USER, "nobody is waiting")
    assert isinstance(take, m.QueueTake) and (take.action, take.user) == (m.QUEUE_NEXT, "")
    [failed] = server.events(ev.RequestFailed)
    assert (failed.request, failed.text) == ("queue", "nobody is waiting")  # type: ignore[attr-defined]
    server.conn.queue_done("cs101", "budi", server.now)
    server.exchange()
    take = server.last(m.QueueTake)
    assert isinstance(take, m.QueueTake) and (take.action, take.user) == (m.QUEUE_DONE, "budi")
    with pytest.raises(LocalProtocolError, match="invalid name"):
        server.conn.queue_done("cs101", "no way", server.now)


def test_the_queue_is_reported_whole_once_its_last_entry_is_in() -> None:
    server = in_class()
    server.send(m.QueueEntry("cs101", 0, 2, "budi", "PC-14", "segfault", T0_MS, "teacher"))
    assert not server.events(ev.QueueUpdated)  # half a queue is never shown
    server.send(m.QueueEntry("cs101", 1, 2, "ani", "PC-3", "", T0_MS + 60_000, ""))
    [queue] = server.events(ev.QueueUpdated)
    assert isinstance(queue, ev.QueueUpdated) and queue.room == "cs101"
    assert queue.entries == (
        ev.QueueItem("budi", "PC-14", "segfault", T0_MS / 1000, "teacher"),
        ev.QueueItem("ani", "PC-3", "", T0_MS / 1000 + 60, ""),
    )
    assert server.conn.help_queue("cs101") == queue
    server.take()
    server.send(m.QueueEntry("cs101"))  # count 0: empty
    [empty] = server.events(ev.QueueUpdated)
    assert empty.entries == ()  # type: ignore[attr-defined]


def test_a_queue_cut_short_is_replaced_by_the_next_whole_one() -> None:
    server = in_class()
    server.send(
        m.QueueEntry("cs101", 0, 3, "budi", "", "", T0_MS, ""),
        m.QueueEntry("cs101", 0, 1, "ani", "", "", T0_MS, ""),  # a new queue began
    )
    [queue] = server.events(ev.QueueUpdated)
    assert [e.user for e in queue.entries] == ["ani"]  # type: ignore[attr-defined]


def test_queue_news_of_a_room_we_are_not_in_is_ignored() -> None:
    server = in_class()
    server.send(m.QueueEntry("other", 0, 1, "budi", "", "", T0_MS, ""), poll(room="other"))
    assert not server.events(ev.QueueUpdated) and not server.events(ev.PollShown)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 5), st.text(max_size=8), st.integers(0, 2**64 - 1)),
        max_size=20,
    )
)
def test_queue_entries_in_any_order_never_raise_and_give_only_whole_queues(
    entries: list[tuple[int, int, str, int]],
) -> None:
    book = ClassBook()
    for index, count, name, since in entries:
        queue = book.queue_entry(m.QueueEntry("cs101", index, count, name, "", "", since, ""))
        if queue is not None:
            assert len(queue.entries) == count


# ---------------------------------------------------------------- polls


def test_a_poll_is_shown_and_a_vote_names_it_by_its_id() -> None:
    server = in_class()
    server.send(poll())
    [shown] = server.events(ev.PollShown)
    assert shown == ev.PollShown(
        "cs101", 3, "teacher", "Done with exercise 2?", ("yes", "no", "stuck"), False, False, (), 0, 0, ()
    )
    server.take()
    server.conn.poll_vote("cs101", 2, server.now)
    server.exchange()
    vote = done(server, m.PollVote)
    assert isinstance(vote, m.PollVote) and (vote.poll_id, vote.choice) == (3, 2)
    # A member hears nothing more until the poll closes: the client shows its own vote.
    [mine] = server.events(ev.PollShown)
    assert isinstance(mine, ev.PollShown) and mine.your_choice == 2 and not mine.counts
    assert server.conn.open_poll("cs101") == mine


def test_the_operators_see_counts_and_ballots() -> None:
    server = in_class()
    server.send(poll(counts=(1, 1, 0), voters=2, ballots=("1 budi", "2 ani", "junk")))
    [shown] = server.events(ev.PollShown)
    assert isinstance(shown, ev.PollShown)
    assert shown.counts == (1, 1, 0) and shown.voters == 2
    assert shown.ballots == ((1, "budi"), (2, "ani"))  # a malformed entry is dropped


def test_vote_and_close_need_an_open_poll() -> None:
    server = in_class()
    with pytest.raises(LocalProtocolError, match="no open poll in #cs101"):
        server.conn.poll_vote("cs101", 1, server.now)
    with pytest.raises(LocalProtocolError, match="no open poll"):
        server.conn.poll_close("cs101", server.now)
    server.send(poll())
    with pytest.raises(LocalProtocolError, match="options 1 to 3"):
        server.conn.poll_vote("cs101", 4, server.now)
    server.conn.poll_close("cs101", server.now)
    server.exchange()
    close = done(server, m.PollClose)
    assert isinstance(close, m.PollClose) and close.poll_id == 3
    server.send(poll(flags=m.POLL_CLOSED, counts=(2, 0, 1), voters=3))
    assert server.conn.open_poll("cs101") is None
    with pytest.raises(LocalProtocolError, match="no open poll"):
        server.conn.poll_vote("cs101", 1, server.now)
    polls, _ = server.conn.classroom_log("cs101")
    assert [p.closed for p in polls] == [True]


def test_a_vote_on_a_poll_closed_meanwhile_is_refused_by_the_server() -> None:
    server = in_class()
    server.send(poll())
    server.conn.poll_vote("cs101", 1, server.now)
    server.exchange()
    done(server, m.PollVote, ErrorCode.NO_SUCH_POLL, "poll #3 is closed")
    [failed] = server.events(ev.RequestFailed)
    assert (failed.request, failed.code) == ("vote", ErrorCode.NO_SUCH_POLL)  # type: ignore[attr-defined]


def test_open_a_poll_anonymous_or_not() -> None:
    server = in_class()
    server.conn.poll_open("cs101", "Q?", ("a", "b"), server.now, anonymous=True)
    server.exchange()
    opened = done(server, m.PollOpen, ErrorCode.NOT_OPERATOR, "only operators of #cs101 may open a poll")
    assert isinstance(opened, m.PollOpen) and opened.flags == m.POLL_ANONYMOUS
    assert opened.options == ("a", "b")
    [failed] = server.events(ev.RequestFailed)
    assert failed.request == "poll"  # type: ignore[attr-defined]
    with pytest.raises(LocalProtocolError, match="2 to 9 options"):
        server.conn.poll_open("cs101", "Q?", ("only",), server.now)


def test_a_newer_poll_replaces_the_last_one() -> None:
    server = in_class()
    server.send(poll(poll_id=3), poll(poll_id=4, question="Next?"))
    open_poll = server.conn.open_poll("cs101")
    assert open_poll is not None and open_poll.poll_id == 4
    server.send(poll(poll_id=3, flags=m.POLL_CLOSED))  # the old one's closing, late
    open_poll = server.conn.open_poll("cs101")
    assert open_poll is not None and open_poll.poll_id == 4


def test_ballot_entries() -> None:
    assert ballot("2 budi") == (2, "budi")
    assert ballot("budi") is None and ballot("2 ") is None and ballot("99999 x") is None


# ---------------------------------------------------------------- quiet mode and sessions


def test_room_state_says_until_when_the_room_is_quiet() -> None:
    server = in_class()
    server.send(m.RoomState("cs101", modes=m.ROOM_QUIET, members=3, quiet_until_ms=T0_MS + 1_800_000))
    [state] = server.events(ev.RoomState)
    assert isinstance(state, ev.RoomState) and state.quiet_until == T0_MS / 1000 + 1800
    server.take()
    server.send(m.RoomState("cs101", members=3))
    [state] = server.events(ev.RoomState)
    assert state.quiet_until is None  # type: ignore[attr-defined]


def test_a_line_said_in_quiet_mode_is_delivered_to_the_operators_with_seq_0() -> None:
    server = in_class()
    [local_id] = server.conn.say("can I go out?", server.now)
    server.exchange()
    say = server.last(m.Say)
    assert isinstance(say, m.Say)
    server.send(m.Accepted(say.msg_id, "cs101", 0, T0_MS))
    [delivered] = server.events(ev.MessageDelivered)
    assert isinstance(delivered, ev.MessageDelivered)
    assert (delivered.local_id, delivered.room, delivered.seq, delivered.to) == (local_id, "cs101", 0, None)
    assert server.conn.pending == 0 and server.conn.last_seq_of("cs101") == 0
    # The room's numbering is untouched: the next message of the room is shown.
    server.send(m.RoomMessage("cs101", 1, T0_MS, "teacher", "quiet please", 0, 0))
    assert [e.text for e in server.events(ev.MessageReceived)] == ["quiet please"]  # type: ignore[attr-defined]


def test_a_students_line_reaches_an_operator_marked_to_ops() -> None:
    server = in_class()
    server.send(m.Private("budi", "cs101", T0_MS, "can I go out?", m.FLAG_TO_OPS))
    [private] = server.events(ev.PrivateReceived)
    assert isinstance(private, ev.PrivateReceived)
    assert (private.sender, private.to, private.to_ops) == ("budi", "cs101", True)


def test_quiet_and_session_are_room_settings() -> None:
    server = in_class()
    server.conn.set_room("cs101", m.Setting.QUIET, "30", server.now)
    server.conn.set_room("cs101", m.Setting.SESSION, "", server.now)
    server.exchange()
    sets = server.sent(m.SetRoom)
    assert [(s.setting, s.value) for s in sets] == [(m.Setting.QUIET, "30"), (m.Setting.SESSION, "")]  # type: ignore[attr-defined]


# ---------------------------------------------------------------- older servers


def test_a_server_with_rooms_but_no_classroom_refuses_at_once() -> None:
    server = in_class(flags=m.CAP_ROOMS | m.CAP_LONG_MESSAGES)
    assert server.conn.server_has_classroom is False
    with pytest.raises(LocalProtocolError, match="no classroom"):
        server.conn.hand("cs101", True, "", server.now)
    server.send(poll(), m.QueueEntry("cs101"))  # not ours to believe
    assert not server.events(ev.PollShown) and not server.events(ev.QueueUpdated)


def test_a_hand_typed_before_the_login_fails_on_a_server_without_the_classroom() -> None:
    conn = ClientConnection("alice", "secret", rng=random.Random(2).randbytes)
    server = ScriptedServer(conn)
    conn.connect(server.now)
    server.exchange()
    request_id = conn.hand("lobby", True, "help", server.now)
    server.send(m.LoginOk("alice", "lobby", flags=m.CAP_ROOMS | m.CAP_LONG_MESSAGES))
    [failed] = server.events(ev.RequestFailed)
    assert isinstance(failed, ev.RequestFailed)
    assert (failed.request, failed.request_id, failed.text) == ("hand", request_id, NO_CLASSROOM)
    assert not server.sent(m.Hand)


def test_leaving_a_room_forgets_its_poll_and_queue() -> None:
    server = in_class(("cs101", "lobby"))
    server.send(poll(), m.QueueEntry("cs101", 0, 1, "budi", "", "", T0_MS, ""))
    server.send(m.RoomLeft("cs101", 0))
    assert server.conn.open_poll("cs101") is None and server.conn.help_queue("cs101") is None


def test_classroom_requests_are_asked_again_after_a_reconnect() -> None:
    server = in_class()
    server.conn.hand("cs101", True, "help", server.now)
    server.exchange()
    server.restart()
    login = server.last(m.Login)
    assert isinstance(login, m.Login) and login.seat == "PC-14"
    server.send(m.LoginOk("alice", "cs101", flags=CLASSROOM), m.RoomState("cs101", members=3))
    assert len(server.sent(m.Hand)) == 2  # the first may have died with the old session

