"""ChatClient's rooms against a real server over UDP on 127.0.0.1: `rooms=` at start, typed room
commands for the current room, an operator's settings and an announcement's read tally."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol import messages as m
from labchat.protocol.errors import ErrorCode
from labchat.server.relay import RelayConfig
from labchat.server.transport import RelayServer

from ..helpers import ClientUnderTest, connect

#: These need a server with rooms (docs/protocol.md 18); they run wherever the relay has them.
pytestmark = pytest.mark.skipif(
    not RelayConfig().capabilities & m.CAP_ROOMS, reason="this relay has no rooms (protocol 18) yet"
)


async def in_rooms(server: RelayServer, user: str, tmp_path: Path, *rooms: str) -> ClientUnderTest:
    """A logged-in client that asked for `rooms` at start (`--room`), once they are all answered."""
    host, port = server.address
    client = ChatClient(
        host, port, user, "secret", known_servers=KnownServers(tmp_path / f"k-{user}"), rooms=rooms
    )
    cut = await ClientUnderTest(client).start()
    await asyncio.wait_for(client.ready.wait(), 10)
    return cut


async def test_rooms_at_start_and_lines_for_the_current_room(server: RelayServer, tmp_path: Path) -> None:
    alice = await in_rooms(server, "alice", tmp_path, "#CS101", "lab-b")
    assert alice.client.rooms == ("lobby", "cs101", "lab-b")  # a new account starts in lobby
    assert alice.client.current_room == "lab-b"  # the last --room
    bob = await in_rooms(server, "bob", tmp_path, "cs101")
    assert bob.client.current_room == "cs101"

    alice.client.submit("to lab-b")
    sent = alice.client.submit("/say cs101 to the class")
    assert not sent.error and sent.room == "cs101"
    got = await bob.wait_for(ev.MessageReceived, lambda e: e.text == "to the class")
    assert got.room == "cs101"
    await alice.wait_for(ev.MessageDelivered, lambda e: e.text == "to lab-b" and e.room == "lab-b")
    bob.client.submit("from bob")
    await alice.wait_for(ev.MessageReceived, lambda e: e.text == "from bob")
    assert alice.client.unread == {"cs101": 1}  # said where alice is not looking
    assert not [e for e in bob.of(ev.MessageReceived) if e.text == "to lab-b"]

    # A room already held: /join switches to it, locally; the unread count starts over.
    switched = alice.client.submit("/join cs101")
    assert switched.local_lines == ("now talking in #cs101",) and alice.client.current_room == "cs101"
    assert alice.client.unread == {}
    assert alice.client.submit("/rooms").local_lines == (
        "you are in 3 rooms: #lobby, #cs101 (current), #lab-b",
    )

    # /part alone leaves the current room; lines then go to the room joined last.
    alice.client.submit("/part")
    left = await alice.wait_for(ev.RoomLeft)
    assert (left.room, left.code) == ("cs101", 0)
    assert alice.client.current_room == "lab-b" and alice.client.rooms == ("lobby", "lab-b")
    await bob.wait_for(ev.UserLeft, lambda e: e.user == "alice" and e.room == "cs101")
    refused = alice.client.submit("/say cs101 hello?")
    assert refused.error and refused.local_lines == ("you are not in #cs101: /join cs101 first",)
    for c in (alice, bob):
        await c.close()


async def test_an_operator_sets_the_topic_and_counts_who_saw_the_announcement(
    server: RelayServer, tmp_path: Path
) -> None:
    teacher = await in_rooms(server, "teacher", tmp_path, "cs101")  # creates it: its operator
    state = teacher.of(ev.RoomState)[-1]
    assert state.room == "cs101" and state.you & m.MEMBER_OP
    ani = await in_rooms(server, "ani", tmp_path, "cs101")

    teacher.client.submit("/topic Lab 3: sorting")
    news = await ani.wait_for(ev.RoomEvent, lambda e: e.action == m.Action.TOPIC_SET)
    assert (news.actor, news.value) == ("teacher", "Lab 3: sorting")
    await ani.wait_for(ev.RoomState, lambda e: e.topic == "Lab 3: sorting")
    assert ani.client.submit("/topic").local_lines == ("topic of #cs101: Lab 3: sorting",)

    # A member's operator command is refused by the server, in one line, for that room.
    ani.client.submit("/kick teacher")
    failed = await ani.wait_for(ev.RequestFailed)
    assert (failed.request, failed.room, failed.code) == ("moderate", "cs101", ErrorCode.NOT_OPERATOR)

    teacher.client.submit("/announce Quiz at 10")
    shown = await ani.wait_for(ev.Announcement)
    assert (shown.room, shown.by, shown.text) == ("cs101", "teacher", "Quiz at 10")
    ani.client.announcement_seen(shown.room, shown.announcement_id)  # what a UI does once shown
    tally = await teacher.wait_for(ev.AnnouncementTally, lambda e: e.seen == 1)
    assert (tally.seen, tally.total, tally.not_yet) == (1, 1, ())
    lines = teacher.client.submit("/announce").local_lines
    assert lines == ("announcement by teacher: Quiz at 10", "seen by 1 of 1")
    listed = teacher.client.submit("/list")
    assert not listed.error
    rooms = await teacher.wait_for(ev.RoomList)
    assert {(r.room, r.topic) for r in rooms.rooms} >= {("cs101", "Lab 3: sorting"), ("lobby", "")}
    for c in (teacher, ani):
        await c.close()


async def test_a_join_refused_by_the_server_is_one_error(server: RelayServer, tmp_path: Path) -> None:
    owner = await in_rooms(server, "owner", tmp_path, "secret-lab")
    owner.client.submit("/key letmein")
    await owner.wait_for(ev.RoomState, lambda e: bool(e.modes & m.ROOM_KEYED))
    guest = await connect(server, "visitor", tmp_path=tmp_path)
    guest.client.submit("/join secret-lab wrong")
    failed = await guest.wait_for(ev.RequestFailed)
    assert (failed.request, failed.room, failed.code) == ("join", "secret-lab", ErrorCode.BAD_KEY)
    assert guest.client.current_room == "lobby"
    guest.client.submit("/join #Secret-Lab letmein")
    joined = await guest.wait_for(ev.RoomState, lambda e: e.room == "secret-lab")
    assert joined.joined and guest.client.current_room == "secret-lab"
    for c in (owner, guest):
        await c.close()


async def test_history_and_search_are_of_the_current_room(server: RelayServer, tmp_path: Path) -> None:
    bob = await in_rooms(server, "bob", tmp_path, "cs101")
    for text in ("sorting in cs101", "merge sort", "quick sort"):
        bob.client.submit(text)
    await bob.wait_for(ev.MessageDelivered, lambda e: e.text == "quick sort")
    bob.client.submit("/say lobby sorting in lobby")
    await bob.wait_for(ev.MessageDelivered, lambda e: e.room == "lobby")
    alice = await in_rooms(server, "alice", tmp_path, "cs101")
    alice.client.submit("/search sorting")
    results = await alice.wait_for(ev.SearchResults)
    assert results.room == "cs101" and [h.snippet for h in results.hits] == ["sorting in cs101"]
    alice.client.submit("/history 2")
    page = await alice.wait_for(ev.HistoryPage)
    assert page.room == "cs101" and page.error == ""
    assert all(e.room == "cs101" for e in page.messages)
    for c in (alice, bob):
        await c.close()


async def test_part_takes_a_room_only_when_it_is_one_we_are_in(server: RelayServer, tmp_path: Path) -> None:
    ana = await in_rooms(server, "ana", tmp_path, "cs101", "lab-b")
    bob = await in_rooms(server, "bob", tmp_path, "cs101")
    # One word that is not a room of ours: an error, never a part of the wrong room.
    refused = ana.client.submit("/part nowhere")
    assert refused.error and refused.local_lines == ("you are not in #nowhere: /join nowhere first",)
    # A room of ours, then a reason: that room, with that reason.
    ana.client.submit("/part cs101 off to lunch")
    left = await bob.wait_for(ev.UserLeft, lambda e: e.user == "ana")
    assert (left.room, left.reason) == ("cs101", "left: off to lunch")
    # Words that start with no room of ours: all of it is the reason, for the current room.
    ana.client.submit("/part see you all")
    gone = await ana.wait_for(ev.RoomLeft, lambda e: e.room == "lab-b")
    assert gone.code == 0 and ana.client.rooms == ("lobby",) and ana.client.current_room == "lobby"
    for c in (ana, bob):
        await c.close()
