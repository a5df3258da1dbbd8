"""The classroom in the relay (docs/protocol.md section 20): seats, the help queue, polls, quiet mode
and class sessions, driven in-process with raw peers that speak the wire protocol, including a
restart of the relay on the same database (kill -9: only the database survives)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode
from labchat.protocol.wire import MAX_FRAME_BODY_BYTES, encode_message

from ..protocol.sim import SimNet
from .test_rooms import ROOMS, Peer

A = m.Action
CLASS = ROOMS | m.CAP_CLASSROOM


def classroom(tmp_path: Path, *names: str) -> tuple[SimNet, list[Peer]]:
    """`names[0]` creates cs101 (its operator); the others join it. Seats are "PC-<name>"."""
    net = SimNet(tmp_path)
    peers = [Peer(net, name, flags=CLASS, seat=f"PC-{name}") for name in names]
    for peer in peers:
        assert peer.request(m.JoinRoom, "cs101").code == 0
    return net, peers


def queue_of(peer: Peer, since: int = 0) -> list[tuple[str, str, str, str]]:
    """The last whole queue `peer` received for cs101: (user, seat, question, taken_by) in order."""
    entries = [e for e in peer.of(m.QueueEntry, since) if e.room == "cs101"]
    assert entries, f"{peer.user} got no queue"
    last_start = max(i for i, e in enumerate(entries) if e.index == 0)
    whole = entries[last_start:]
    if whole[0].count == 0:
        return []
    assert [e.index for e in whole] == list(range(whole[0].count))
    return [(e.user, e.seat, e.question, e.taken_by) for e in whole]


def restart(net: SimNet) -> None:
    net.crash_relay()
    net.__dict__.get("peers", {}).clear()
    net.start_relay()


def test_seats_reach_classroom_sessions_only_cut_and_cleaned(tmp_path: Path) -> None:
    net, (teacher, budi) = classroom(tmp_path, "teacher", "budi")
    assert teacher.last(m.LoginOk).flags & m.CAP_CLASSROOM
    presence = budi.last(m.Presence)
    assert dict(zip(presence.users, presence.seats, strict=True)) == {
        "budi": "PC-budi",
        "teacher": "PC-teacher",
    }
    rooms_only = Peer(net, "olga", flags=ROOMS, seat="PC-olga")
    assert rooms_only.request(m.JoinRoom, "cs101").code == 0
    assert rooms_only.last(m.Presence).seats == ()
    # JOINED carries the newcomer's seat to classroom sessions (20.2)
    assert (teacher.last(m.Joined).user, teacher.last(m.Joined).seat) == ("olga", "PC-olga")
    odd = Peer(net, "cid", flags=CLASS, seat="\x1b[31mrow\x07" + "é" * 15)  # 41 bytes once escaped
    assert odd.request(m.JoinRoom, "cs101").code == 0
    seats = dict(zip(odd.last(m.Presence).users, odd.last(m.Presence).seats, strict=True))
    assert "\x1b" not in seats["cid"] and "\x07" not in seats["cid"] and len(seats["cid"].encode()) <= 40
    assert teacher.last(m.Joined).seat == seats["cid"]  # cleaned the same way
    assert (rooms_only.last(m.Joined).user, rooms_only.last(m.Joined).seat) == ("cid", "")  # not to others


def test_help_queue_order_events_and_who_sees_what(tmp_path: Path) -> None:
    _net, (teacher, budi, cid, dewi) = classroom(tmp_path, "teacher", "budi", "cid", "dewi")
    assert budi.request(m.Hand, "cs101", 1, "segfault in exercise 2").code == 0
    raised = budi.last(m.RoomEvent)
    assert (raised.action, raised.target, raised.minutes, raised.value) == (
        A.HAND_RAISED,
        "budi",
        1,
        "segfault in exercise 2",
    )
    assert teacher.last(m.RoomEvent) == raised
    assert not [e for e in dewi.of(m.RoomEvent) if e.action == A.HAND_RAISED]  # not the classmates'
    assert not dewi.of(m.QueueEntry)
    assert cid.request(m.Hand, "cs101", 1, "").code == 0
    assert cid.last(m.RoomEvent).minutes == 2
    assert budi.request(m.Hand, "cs101", 1, "segfault, line 12").code == 0  # keeps its place
    assert queue_of(teacher) == [
        ("budi", "PC-budi", "segfault, line 12", ""), ("cid", "PC-cid", "", ""),
    ]  # fmt: skip
    assert budi.request(m.QueueTake, "cs101", m.QUEUE_NEXT, "").code == ErrorCode.NOT_OPERATOR
    assert teacher.request(m.QueueTake, "cs101", m.QUEUE_NEXT, "").code == 0
    taken = budi.last(m.RoomEvent)
    assert (taken.action, taken.actor, taken.target) == (A.HAND_TAKEN, "teacher", "budi")
    assert queue_of(teacher)[0][3] == "teacher"
    assert teacher.request(m.QueueTake, "cs101", m.QUEUE_NEXT, "").code == 0  # cid
    done = teacher.request(m.QueueTake, "cs101", m.QUEUE_NEXT, "")
    assert (done.code, done.text) == (ErrorCode.NO_SUCH_USER, "nobody is waiting")
    assert teacher.request(m.QueueTake, "cs101", m.QUEUE_DONE, "budi").code == 0
    lowered = budi.last(m.RoomEvent)
    assert (lowered.action, lowered.actor, lowered.target) == (A.HAND_LOWERED, "teacher", "budi")
    assert teacher.request(m.QueueTake, "cs101", m.QUEUE_DONE, "budi").code == ErrorCode.NO_SUCH_USER
    assert cid.request(m.Hand, "cs101", 0, "").code == 0
    assert cid.last(m.RoomEvent).actor == "cid" and queue_of(teacher) == []
    assert teacher.of(m.QueueEntry)[-1] == m.QueueEntry("cs101", 0, 0)


def test_students_behind_a_hand_that_goes_down_are_told_their_new_place_alone(tmp_path: Path) -> None:
    _net, (teacher, budi, cid, dewi, eko) = classroom(tmp_path, "teacher", "budi", "cid", "dewi", "eko")
    for student in (budi, cid, dewi):
        assert student.request(m.Hand, "cs101", 1, f"{student.user}'s question").code == 0
    assert teacher.request(m.QueueTake, "cs101", m.QUEUE_NEXT, "").code == 0  # budi: teacher comes
    before = {p.user: len(p.of(m.RoomEvent)) for p in (teacher, budi, cid, dewi, eko)}
    assert teacher.request(m.QueueTake, "cs101", m.QUEUE_DONE, "budi").code == 0
    moved = [e for e in cid.of(m.RoomEvent)[before["cid"]:] if e.action == A.HAND_RAISED]
    assert [(e.actor, e.target, e.minutes, e.value) for e in moved] == [("", "cid", 1, "cid's question")]
    moved = [e for e in dewi.of(m.RoomEvent)[before["dewi"]:] if e.action == A.HAND_RAISED]
    assert [(e.target, e.minutes) for e in moved] == [("dewi", 2)]
    # the operators read it in the new queue; the classmates hear nothing
    assert [e.action for e in teacher.of(m.RoomEvent)[before["teacher"]:]] == [A.HAND_LOWERED]
    assert len(eko.of(m.RoomEvent)) == before["eko"]
    assert [u for u, *_ in queue_of(teacher)] == ["cid", "dewi"]
    # cid lowers its own hand: dewi is first now
    assert cid.request(m.Hand, "cs101", 0, "").code == 0
    assert (dewi.last(m.RoomEvent).action, dewi.last(m.RoomEvent).minutes) == (A.HAND_RAISED, 1)


def test_an_operator_gets_the_queue_on_joining_and_it_survives_a_restart(tmp_path: Path) -> None:
    net, (teacher, budi, cid) = classroom(tmp_path, "teacher", "budi", "cid")
    assert budi.request(m.Hand, "cs101", 1, "help").code == 0
    assert cid.request(m.Hand, "cs101", 1, "me too").code == 0
    assert teacher.request(m.QueueTake, "cs101", m.QUEUE_NEXT, "").code == 0
    restart(net)
    again = Peer(net, "teacher", flags=CLASS)  # back in cs101 from its saved list: gets the queue
    assert [(u, q, t) for u, _s, q, t in queue_of(again)] == [
        ("budi", "help", "teacher"),
        ("cid", "me too", ""),
    ]
    student = Peer(net, "cid", flags=CLASS)
    assert not student.of(m.QueueEntry)
    assert student.request(m.Hand, "cs101", 0, "").code == 0
    assert [u for u, *_ in queue_of(again)] == ["budi"]
    assert net.relay is not None
    log = net.relay.classroom.store.hand_log("cs101")
    assert [(h.user, h.done_by) for h in log] == [("cid", "cid"), ("budi", "")]  # done, then still up


def test_queue_is_bounded(tmp_path: Path) -> None:
    net, (teacher, budi) = classroom(tmp_path, "teacher", "budi")
    assert net.relay is not None
    net.relay.classroom.queue("cs101").limit = 1
    assert teacher.request(m.Hand, "cs101", 1, "first").code == 0
    assert budi.request(m.Hand, "cs101", 1, "").code == ErrorCode.QUEUE_FULL


def test_poll_counts_to_operators_coalesced_and_to_everyone_when_closed(tmp_path: Path) -> None:
    _net, (teacher, budi, cid, dewi) = classroom(tmp_path, "teacher", "budi", "cid", "dewi")
    assert budi.request(m.PollOpen, "cs101", "Done?", ("yes", "no"), 0).code == ErrorCode.NOT_OPERATOR
    assert teacher.request(m.PollOpen, "cs101", "Done with exercise 2?", ("yes", "no", "stuck"), 0).code == 0
    shown = budi.last(m.Poll)
    assert (shown.poll_id, shown.by, shown.options, shown.counts, shown.voters) == (
        1,
        "teacher",
        ("yes", "no", "stuck"),
        (),
        0,
    )
    before = len(teacher.of(m.Poll))
    assert budi.request(m.PollVote, "cs101", 1, 1).code == 0
    assert cid.request(m.PollVote, "cs101", 1, 3).code == 0
    assert dewi.request(m.PollVote, "cs101", 1, 1).code == 0
    assert dewi.request(m.PollVote, "cs101", 1, 2).code == 0  # changed its mind
    assert budi.request(m.PollVote, "cs101", 1, 4).code == ErrorCode.BAD_MESSAGE
    assert budi.request(m.PollVote, "cs101", 7, 1).code == ErrorCode.NO_SUCH_POLL
    tally = teacher.last(m.Poll)
    assert (tally.counts, tally.voters) == ((1, 1, 1), 3)
    assert set(tally.ballots) == {"1 budi", "3 cid", "2 dewi"}
    assert len(teacher.of(m.Poll)) - before == 4  # one per flush (each request is its own flush here)
    assert len(budi.of(m.Poll)) == 1  # classmates see nothing until it closes
    assert teacher.request(m.PollClose, "cs101", 1).code == 0
    final = budi.last(m.Poll)
    assert final.flags & m.POLL_CLOSED and (final.counts, final.voters, final.your_choice) == (
        (1, 1, 1),
        3,
        1,
    )
    assert final.ballots == ()
    assert budi.request(m.PollVote, "cs101", 1, 2).code == ErrorCode.NO_SUCH_POLL
    assert teacher.request(m.PollClose, "cs101", 1).code == ErrorCode.NO_SUCH_POLL


def test_anonymous_poll_shows_no_ballots_and_a_new_poll_closes_the_old(tmp_path: Path) -> None:
    net, (teacher, budi) = classroom(tmp_path, "teacher", "budi")
    assert teacher.request(m.PollOpen, "cs101", "Q1", ("a", "b"), m.POLL_ANONYMOUS).code == 0
    assert budi.request(m.PollVote, "cs101", 1, 2).code == 0
    assert teacher.last(m.Poll).ballots == () and teacher.last(m.Poll).counts == (0, 1)
    late = Peer(net, "late", flags=CLASS)
    assert late.request(m.JoinRoom, "cs101").code == 0
    assert late.last(m.Poll).poll_id == 1  # joined while it is open
    restart(net)
    teacher = Peer(net, "teacher", flags=CLASS)
    assert teacher.last(m.Poll).counts == (0, 1)  # open poll and votes survive a restart
    assert teacher.request(m.PollOpen, "cs101", "Q2", ("x", "y"), 0).code == 0
    polls = teacher.of(m.Poll)
    assert polls[-2].poll_id == 1 and polls[-2].flags & m.POLL_CLOSED and polls[-1].poll_id == 2


def test_poll_that_cannot_fit_a_frame_is_refused(tmp_path: Path) -> None:
    _net, (teacher,) = classroom(tmp_path, "teacher")
    options = tuple("o" * 90 + str(i) for i in range(9))
    question = "q" * (MAX_FRAME_BODY_BYTES - len(encode_message(m.PollOpen(1, "cs101", "q", options))) + 1)
    assert (
        len(encode_message(m.PollOpen(1, "cs101", question, options))) == MAX_FRAME_BODY_BYTES
    )  # it can be sent
    done = teacher.request(m.PollOpen, "cs101", question, options, 0)
    assert done.code == ErrorCode.BAD_MESSAGE and "too long" in done.text


def test_quiet_mode_diverts_to_operators_refuses_classmate_whispers_and_ends_by_itself(
    tmp_path: Path,
) -> None:
    net, (teacher, budi, cid) = classroom(tmp_path, "teacher", "budi", "cid")
    assert budi.request(m.SetRoom, "cs101", m.Setting.QUIET, "10").code == ErrorCode.NOT_OPERATOR
    assert teacher.request(m.SetRoom, "cs101", m.Setting.QUIET, "999").code == ErrorCode.BAD_MESSAGE
    assert teacher.request(m.SetRoom, "cs101", m.Setting.QUIET, "10").code == 0
    state = budi.last(m.RoomState)
    assert state.modes & m.ROOM_QUIET and state.quiet_until_ms == int(net.now * 1000) + 600_000
    news = cid.last(m.RoomEvent)
    assert (news.action, news.value, news.minutes) == (A.QUIET_SET, "on", 10)
    before = len(cid.messages)
    budi.send(m.Say(5, "cs101", "is 3b about pointers?"))
    accepted = budi.last(m.Accepted)
    assert (accepted.msg_id, accepted.room, accepted.seq) == (5, "cs101", 0)
    private = teacher.last(m.Private)
    assert (private.sender, private.to, private.text) == ("budi", "cs101", "is 3b about pointers?")
    assert private.flags & m.FLAG_TO_OPS
    assert not cid.of(m.RoomMessage, before) and not cid.of(m.Private, before)
    assert net.relay is not None and net.relay.store.last_seq("cs101") == 0  # not in the history
    budi.send(m.Say(5, "cs101", "is 3b about pointers?"))  # a resend is confirmed, not relayed again
    assert len([p for p in teacher.of(m.Private) if p.text == "is 3b about pointers?"]) == 1
    budi.send(m.Whisper(6, "cid", "psst"))
    rejected = budi.last(m.Rejected)
    assert (rejected.msg_id, rejected.code) == (6, ErrorCode.QUIET)
    assert rejected.text == "quiet mode in cs101: only the teachers can be messaged"
    budi.send(m.Whisper(7, "teacher", "may I go out?"))
    assert teacher.last(m.Private).text == "may I go out?"
    teacher.send(m.Say(8, "cs101", "5 minutes left"))
    assert cid.last(m.RoomMessage).text == "5 minutes left"
    budi.advance(9 * 60)
    assert budi.last(m.RoomState).modes & m.ROOM_QUIET
    budi.advance(61)
    ended = cid.last(m.RoomEvent)
    assert (ended.action, ended.value, ended.text) == (A.QUIET_SET, "off", "quiet mode ended")
    assert not budi.last(m.RoomState).modes & m.ROOM_QUIET
    budi.send(m.Whisper(9, "cid", "done!"))
    assert cid.last(m.Private).text == "done!"


def test_quiet_mode_ends_across_a_restart_and_can_be_turned_off(tmp_path: Path) -> None:
    net, (teacher, _budi) = classroom(tmp_path, "teacher", "budi")
    assert teacher.request(m.SetRoom, "cs101", m.Setting.QUIET, "1").code == 0
    restart(net)
    assert net.relay is not None and net.relay.rooms["cs101"].quiet_until_ms
    budi = Peer(net, "budi", flags=CLASS)
    assert budi.last(m.RoomState).modes & m.ROOM_QUIET
    budi.advance(61)
    assert (budi.last(m.RoomEvent).action, budi.last(m.RoomEvent).value) == (A.QUIET_SET, "off")
    teacher = Peer(net, "teacher", flags=CLASS)
    assert teacher.request(m.SetRoom, "cs101", m.Setting.QUIET, "5").code == 0
    assert teacher.request(m.SetRoom, "cs101", m.Setting.QUIET, "off").code == 0
    assert budi.last(m.RoomEvent).text == "teacher turned quiet mode off"
    assert not budi.last(m.RoomState).modes & m.ROOM_QUIET


def test_session_start_is_stored_and_announced(tmp_path: Path) -> None:
    net, (teacher, budi) = classroom(tmp_path, "teacher", "budi")
    teacher.send(m.Say(1, "cs101", "before"))
    assert budi.request(m.SetRoom, "cs101", m.Setting.SESSION, "").code == ErrorCode.NOT_OPERATOR
    assert teacher.request(m.SetRoom, "cs101", m.Setting.SESSION, "").code == 0
    news = budi.last(m.RoomEvent)
    assert (news.action, news.actor) == (A.SESSION_STARTED, "teacher")
    assert net.relay is not None
    settings = net.relay.classroom.store.settings("cs101")
    assert settings.session_seq == 1 and settings.session_ms == int(net.now * 1000)


def test_classroom_requests_need_the_capability(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    olga = Peer(net, "olga", flags=ROOMS)
    assert olga.request(m.JoinRoom, "cs101").code == 0
    assert olga.request(m.Hand, "cs101", 1, "").code == ErrorCode.PROTOCOL_VIOLATION
    assert olga.request(m.SetRoom, "cs101", m.Setting.QUIET, "5").code == ErrorCode.PROTOCOL_VIOLATION
    ana = Peer(net, "ana", flags=CLASS)
    assert ana.request(m.Hand, "nowhere", 1, "").code == ErrorCode.NO_SUCH_ROOM


def test_a_longer_seat_is_cut_not_refused(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    ana = Peer(net, "ana", flags=CLASS, seat="é" * 30)  # 60 bytes
    assert ana.last(m.LoginOk).user == "ana"
    assert ana.last(m.Presence).seats == ("é" * 20,)


def test_a_member_made_operator_gets_the_queue_and_the_poll_counts(tmp_path: Path) -> None:
    _net, (teacher, ta, budi) = classroom(tmp_path, "teacher", "ta", "budi")
    assert budi.request(m.Hand, "cs101", 1, "stuck").code == 0
    assert teacher.request(m.PollOpen, "cs101", "Q", ("a", "b"), 0).code == 0
    assert budi.request(m.PollVote, "cs101", 1, 2).code == 0
    assert not ta.of(m.QueueEntry) and ta.last(m.Poll).counts == ()
    assert teacher.request(m.Moderate, "cs101", A.OP, "ta", 0, "").code == 0
    assert [u for u, *_ in queue_of(ta)] == ["budi"]
    assert ta.last(m.Poll).counts == (0, 1) and ta.last(m.Poll).ballots == ("2 budi",)


def test_undecodable_classroom_requests_are_answered_never_a_crash(tmp_path: Path) -> None:
    """Random bodies for every section-20 request kind: each one of 4 bytes or more is answered
    REQUEST_DONE with its request_id; the relay keeps serving."""
    _net, (teacher,) = classroom(tmp_path, "teacher")
    kinds = [m.Kind.HAND, m.Kind.QUEUE_TAKE, m.Kind.POLL_OPEN, m.Kind.POLL_VOTE, m.Kind.POLL_CLOSE]

    @settings(max_examples=150, deadline=None)
    @given(st.sampled_from(kinds), st.binary(min_size=4, max_size=200))
    def one(kind: int, body: bytes) -> None:
        start = len(teacher.messages)
        teacher.link.send(kind, body)
        teacher.pump()
        request_id = int.from_bytes(body[:4], "big")
        answers = [x for x in teacher.of(m.RequestDone, start) if x.request_id == request_id]
        assert len(answers) == 1

    one()
    assert teacher.request(m.Hand, "cs101", 1, "still fine").code == 0


def test_a_version_1_member_hears_of_quiet_mode_and_its_lines_go_to_the_operators(tmp_path: Path) -> None:
    net = SimNet(tmp_path)
    Peer(net, "teacher", flags=CLASS)  # registers the account
    assert net.relay is not None and net.relay.store.set_admin("teacher", True)
    teacher = Peer(net, "teacher", flags=CLASS)  # an admin from this login: an operator of lobby
    olga = Peer(net, "olga", flags=m.CAP_LONG_MESSAGES)
    assert teacher.request(m.SetRoom, "lobby", m.Setting.QUIET, "5").code == 0
    notice = olga.last(m.Notice)
    assert notice.code == ErrorCode.ROOM_NEWS
    assert notice.text.startswith("#lobby: teacher turned quiet mode on")
    assert not olga.of(m.RoomEvent)
    olga.send(m.Say(3, "lobby", "hello?"))
    assert (olga.last(m.Accepted).room, olga.last(m.Accepted).seq) == ("lobby", 0)
    got = teacher.last(m.Private)
    assert (got.sender, got.to, got.text) == ("olga", "lobby", "hello?") and got.flags & m.FLAG_TO_OPS
