"""ChatClient's classroom (docs/protocol.md 20) against a real server over UDP on 127.0.0.1: seats in
/who, a student's hand in the operator's queue, /next and /done, a poll with three voters, quiet mode
(a classmate's private refused, a room line delivered to the teacher only) and a class session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labchat.client import room_news
from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode
from labchat.server.relay import RelayConfig
from labchat.server.transport import RelayServer

from ..helpers import ClientUnderTest

#: These need a server with the classroom (section 20); they run wherever the relay has it.
pytestmark = pytest.mark.skipif(
    not RelayConfig().capabilities & m.CAP_CLASSROOM, reason="this relay has no classroom (protocol 20) yet"
)


async def in_class(
    server: RelayServer, user: str, tmp_path: Path, seat: str, room: str = "cs101"
) -> ClientUnderTest:
    """A client at `seat`, logged in and in `room` (the first one there creates it: its operator)."""
    host, port = server.address
    client = ChatClient(
        host,
        port,
        user,
        "secret",
        known_servers=KnownServers(tmp_path / f"k-{user}"),
        rooms=(room,),
        seat=seat,
    )
    cut = await ClientUnderTest(client).start()
    await asyncio.wait_for(client.ready.wait(), 10)
    return cut


async def test_seats_in_who_and_a_hand_through_the_queue(server: RelayServer, tmp_path: Path) -> None:
    teacher = await in_class(server, "teacher", tmp_path, "T-1")
    budi = await in_class(server, "budi", tmp_path, "PC-14")
    ani = await in_class(server, "ani", tmp_path, "PC-3")

    teacher.client.submit("/who")
    who = await teacher.wait_for(ev.PresenceUpdated, lambda e: e.requested and "ani" in e.users)
    assert who.seats == {"teacher": "T-1", "budi": "PC-14", "ani": "PC-3"}

    budi.client.submit("/hand segfault in exercise 2")
    mine = await budi.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.HAND_RAISED)
    assert (mine.target, mine.minutes) == ("budi", 1)
    queue = await teacher.wait_for(ev.QueueUpdated, lambda e: len(e.entries) == 1)
    item = queue.entries[0]
    assert (item.user, item.seat, item.question, item.taken_by) == (
        "budi",
        "PC-14",
        "segfault in exercise 2",
        "",
    )
    ani.client.submit("/hand")
    await teacher.wait_for(ev.QueueUpdated, lambda e: len(e.entries) == 2)
    lines = teacher.client.submit("/queue").local_lines
    assert lines[0] == "help queue of #cs101: 2 waiting"
    assert lines[1].startswith("1. budi (PC-14, waiting <1 min): segfault in exercise 2")
    assert lines[2].startswith("2. ani (PC-3, waiting")

    # A student does not see the queue; an operator's command from a student is refused.
    assert budi.client.submit("/queue").error
    budi.client.submit("/next")
    refused = await budi.wait_for(ev.RequestFailed)
    assert (refused.request, refused.code) == ("queue", ErrorCode.NOT_OPERATOR)

    teacher.client.submit("/next")
    coming = await budi.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.HAND_TAKEN)
    assert coming.actor == "teacher"
    await teacher.wait_for(ev.QueueUpdated, lambda e: bool(e.entries) and e.entries[0].taken_by == "teacher")
    teacher.client.submit("/done budi")
    lowered = await budi.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.HAND_LOWERED)
    assert lowered.actor == "teacher"
    # ani was behind budi: she is told her new place, in her own words
    up = await ani.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.HAND_RAISED and not e.actor)
    assert up.minutes == 1 and room_news.describe(up, me="ani") == "you moved up: 1st in the queue"
    ani.client.submit("/hand down")
    await teacher.wait_for(ev.QueueUpdated, lambda e: not e.entries)
    assert teacher.client.submit("/queue").local_lines == ("the help queue of #cs101 is empty",)
    for c in (teacher, budi, ani):
        await c.close()


async def test_a_poll_with_three_voters(server: RelayServer, tmp_path: Path) -> None:
    teacher = await in_class(server, "teacher", tmp_path, "T-1")
    students = [
        await in_class(server, name, tmp_path, f"PC-{i}") for i, name in enumerate(("budi", "ani", "eko"))
    ]
    teacher.client.submit('/poll "Done with exercise 2?" yes | no | stuck')
    for student in students:
        shown = await student.wait_for(ev.PollShown)
        assert (shown.question, shown.options, shown.counts) == (
            "Done with exercise 2?",
            ("yes", "no", "stuck"),
            (),
        )
    for student, choice in zip(students, (1, 1, 3), strict=True):
        assert not student.client.submit(f"/vote {choice}").error
        mine = await student.wait_for(ev.PollShown, lambda e: e.your_choice != 0)
        assert mine.your_choice == choice
    tally = await teacher.wait_for(ev.PollShown, lambda e: e.voters == 3)
    assert tally.counts == (2, 0, 1) and sorted(tally.ballots) == [(1, "ani"), (1, "budi"), (3, "eko")]
    teacher.client.submit("/poll close")
    for student in students:
        closed = await student.wait_for(ev.PollShown, lambda e: e.closed)
        assert (closed.counts, closed.voters) == ((2, 0, 1), 3)
    students[0].client.submit("/vote 2")
    assert students[0].client.submit("/vote 2").local_lines == ("no open poll in #cs101",)
    for c in (teacher, *students):
        await c.close()


async def test_quiet_mode_and_a_class_session(server: RelayServer, tmp_path: Path) -> None:
    teacher = await in_class(server, "teacher", tmp_path, "T-1")
    budi = await in_class(server, "budi", tmp_path, "PC-14")
    ani = await in_class(server, "ani", tmp_path, "PC-3")

    teacher.client.submit("/quiet on 10")
    on = await ani.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.QUIET_SET)
    assert (on.value, on.minutes) == ("on", 10)
    state = await ani.wait_for(ev.RoomState, lambda e: e.quiet_until is not None)
    assert state.modes & m.ROOM_QUIET
    assert ani.client.submit("/quiet").local_lines[0].startswith("#cs101 is quiet for 10 more min")

    budi.client.submit("/msg ani psst")
    refused = await budi.wait_for(ev.MessageFailed)
    assert refused.code == ErrorCode.QUIET and "quiet mode in cs101" in refused.reason
    budi.client.submit("can I go out?")
    delivered = await budi.wait_for(ev.MessageDelivered, lambda e: e.text == "can I go out?")
    assert (delivered.room, delivered.seq, delivered.to) == ("cs101", 0, None)
    got = await teacher.wait_for(ev.PrivateReceived, lambda e: e.text == "can I go out?")
    assert (got.sender, got.to, got.to_ops) == ("budi", "cs101", True)
    budi.client.submit("/msg teacher may I?")
    await teacher.wait_for(ev.PrivateReceived, lambda e: e.text == "may I?")

    teacher.client.submit("/quiet off")
    await ani.wait_for(ev.RoomState, lambda e: e.quiet_until is None)
    teacher.client.submit("/session start")
    started = await ani.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.SESSION_STARTED)
    assert started.actor == "teacher"
    budi.client.submit("/session start")
    refused_set = await budi.wait_for(ev.RequestFailed)
    assert (refused_set.request, refused_set.code) == ("set", ErrorCode.NOT_OPERATOR)
    assert not [e for e in ani.of(ev.MessageReceived) if e.text == "can I go out?"]
    for c in (teacher, budi, ani):
        await c.close()
