"""Rooms in the app (docs/protocol.md 18): the rooms list and its badges, switching (each room keeps its
scroll position and draft), members with their roles, the announcement banner, and room news.

Most drive the real app's event routing with the events the client core reports, as the network
worker posts them, with nothing sent anywhere (the app's `submit` is recorded); the last one runs
the app against a real server and a second real client.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from labchat.client.core import Submitted
from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode
from labchat.protocol.messages import (
    MEMBER_GUEST,
    MEMBER_MUTED,
    MEMBER_OP,
    MEMBER_VOICE,
    ROOM_PRIVATE,
    ROOM_TOPIC_LOCKED,
    Action,
)
from labchat.server.transport import RelayServer
from labchat.tui import messages as msg
from labchat.tui.app import LabchatApp, make_app
from labchat.tui.log_entry import EntryKind
from labchat.tui.widgets.room_list import RoomRow

from ..helpers import connect
from .test_room import type_line
from .util import app_for, log_in, log_lines, recording_app, wait_until

T0 = 1_709_631_660.0


def core(app: LabchatApp, *events: ev.Event) -> None:
    """Post events as the network worker does."""
    for event in events:
        app.post_message(msg.CoreEvent(app.attempt, event))


def said(room: str, seq: int, user: str, text: str) -> ev.MessageReceived:
    return ev.MessageReceived(room, seq, T0 + seq, user, text)


def news(room: str, action: Action, target: str, text: str, minutes: int = 0) -> ev.RoomEvent:
    """The teacher did `action` to `target` in `room`."""
    return ev.RoomEvent(room, T0, action, "teacher", target, minutes, "", text)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[object]]:
    """What the screen told the client core: rooms switched to, announcements seen."""
    calls: dict[str, list[object]] = {"switch": [], "seen": []}
    monkeypatch.setattr(LabchatApp, "set_current_room", lambda self, room: calls["switch"].append(room))
    monkeypatch.setattr(
        LabchatApp, "announcement_seen", lambda self, room, aid: calls["seen"].append((room, aid))
    )
    return calls


async def two_rooms(app: LabchatApp, pilot: Pilot[object], submitted: list[str] | None = None) -> None:
    """Logged in as alice to a server with rooms, in lobby and cs101 (lobby on screen)."""
    core(
        app,
        ev.LoggedIn("alice", "lobby", "labchat", False, False, rooms=True),
        ev.RoomState("lobby", "", 0, 0, None, 3, joined=True),
        ev.PresenceUpdated("lobby", ("alice", "bob", "carol")),
        ev.RoomState("cs101", "Lab 3: pointers", ROOM_TOPIC_LOCKED, 0, None, 4, joined=True),
        ev.PresenceUpdated("cs101", ("alice", "teacher"), modes={"teacher": MEMBER_OP}),
    )
    await wait_until(pilot, lambda: app.login_screen is None and app.room.room_names == ["lobby", "cs101"])
    await wait_until(pilot, lambda: app.room.composer.input.has_focus)


async def test_rooms_list_counts_unread_and_mentions_of_other_rooms(
    recorded: dict[str, list[object]],
) -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        rooms = app.room.room_list
        assert rooms.display and rooms.current == "lobby"
        core(
            app,
            said("cs101", 1, "teacher", "open the handout"),
            said("cs101", 2, "teacher", "alice: can you share your screen?"),
            said("lobby", 5, "bob", "lunch?"),
        )
        await wait_until(pilot, lambda: rooms.rows[1] == RoomRow("cs101", unread=2, mentions=1))
        assert app.room.unread("cs101") == (2, 1)
        assert app.room.unread("lobby") == (0, 0)  # on screen: read as it arrives
        assert app.bells == 1  # a mention in another room still rings
        # Each room's messages are in its own log.
        assert "<teacher> open the handout" in app.room.room_log("cs101").plain_lines()  # type: ignore[union-attr]
        assert "<bob> lunch?" in app.room.log_view.plain_lines()
        assert not any("handout" in line for line in app.room.log_view.plain_lines())

        await pilot.press("alt+2")
        await wait_until(pilot, lambda: app.room.current_room == "cs101")
        assert app.room.unread("cs101") == (0, 0)
        assert recorded["switch"] == ["cs101"]
        assert (app.room.status.room, app.room.status.topic) == ("cs101", "Lab 3: pointers")
        assert app.room.user_list.users == ["alice", "teacher"]  # the current room's members
        await wait_until(pilot, lambda: rooms.current == "cs101")
        await pilot.press("alt+1")
        await wait_until(pilot, lambda: app.room.current_room == "lobby")
        assert app.room.user_list.users == ["alice", "bob", "carol"]
        await pilot.press("alt+7")  # no room 7: nothing happens
        assert app.room.current_room == "lobby"


async def test_each_room_keeps_its_scroll_position_and_draft(recorded: dict[str, list[object]]) -> None:
    app = recording_app([])
    async with app.run_test(size=(80, 24)) as pilot:
        await two_rooms(app, pilot)
        core(app, *(said("lobby", seq, "bob", f"lobby line {seq}") for seq in range(1, 61)))
        core(app, *(said("cs101", seq, "teacher", f"cs101 line {seq}") for seq in range(1, 41)))
        lobby = app.room.log_view
        await wait_until(pilot, lambda: not lobby._unrendered and lobby.max_scroll_y > 20)
        await pilot.press("pageup", "pageup")
        await wait_until(pilot, lambda: not lobby.anchored)
        kept_y = lobby.scroll_y
        await pilot.press(*"half a thought")

        await pilot.press("ctrl+pagedown")
        await wait_until(pilot, lambda: app.room.current_room == "cs101")
        cs101 = app.room.log_view
        assert cs101 is not lobby and app.room.composer.text == ""
        await wait_until(pilot, lambda: not cs101._unrendered and cs101.scroll_y == cs101.max_scroll_y > 0)
        assert cs101.anchored  # a room never looked at shows its newest message
        await pilot.press(*"for cs101")

        await pilot.press("ctrl+pageup")
        await wait_until(pilot, lambda: app.room.current_room == "lobby")
        await pilot.pause()
        assert app.room.composer.text == "half a thought"
        assert app.room.composer.input.has_focus
        assert (lobby.scroll_y, lobby.anchored) == (kept_y, False)
        # Meanwhile in cs101: the log still follows the newest line once shown again.
        core(app, said("cs101", 41, "teacher", "newest"))
        await pilot.press("ctrl+pagedown")  # round the list: lobby -> cs101
        await wait_until(pilot, lambda: app.room.current_room == "cs101")
        await wait_until(pilot, lambda: not cs101._unrendered)
        await pilot.pause()
        assert app.room.composer.text == "for cs101"
        assert cs101.anchored and cs101.scroll_y == cs101.max_scroll_y
        assert recorded["switch"] == ["cs101", "lobby", "cs101"]


async def test_read_marker_shows_where_unread_begins_in_a_room_left_behind(
    recorded: dict[str, list[object]],
) -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        core(app, said("lobby", 1, "bob", "seen"))
        await wait_until(pilot, lambda: "<bob> seen" in app.room.log_view.plain_lines())
        await pilot.press("alt+2")
        core(app, said("lobby", 2, "bob", "while you were away"))
        await wait_until(pilot, lambda: app.room.unread("lobby") == (1, 0))
        await pilot.press("alt+1")
        lines = app.room.log_view.plain_lines()
        assert lines.index("— new —") == lines.index("<bob> while you were away") - 1
        # Back and forth with nothing new: no marker lands on what arrives while looking.
        await pilot.press("alt+2", "alt+1")
        await wait_until(pilot, lambda: app.room.current_room == "lobby")
        core(app, said("lobby", 3, "bob", "seen as it came"))
        await wait_until(pilot, lambda: "<bob> seen as it came" in app.room.log_view.plain_lines())
        lines = app.room.log_view.plain_lines()
        assert lines.index("— new —") == lines.index("<bob> while you were away") - 1


async def test_members_show_their_roles_and_follow_room_news(recorded: dict[str, list[object]]) -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        modes = {"teacher": MEMBER_OP, "bob": MEMBER_VOICE, "guest7": MEMBER_GUEST, "carol": MEMBER_MUTED}
        core(app, ev.PresenceUpdated("lobby", ("alice", "bob", "carol", "guest7", "teacher"), modes=modes))
        users = app.room.user_list
        await wait_until(pilot, lambda: users.modes_of("teacher") == MEMBER_OP)

        def labels() -> list[str]:
            option_list = users.query_one("#users")
            return [str(option_list.get_option_at_index(i).prompt) for i in range(len(users.users))]  # type: ignore[attr-defined]

        assert labels() == ["alice (you)", "+bob", "carol muted", "guest7 guest", "@teacher"]
        core(
            app,
            news("lobby", Action.MUTE, "bob", "bob was muted for 10 min by teacher", minutes=10),
            news("lobby", Action.UNMUTE, "carol", "teacher unmuted carol"),
            news("lobby", Action.DEOP, "teacher", "teacher took operator from teacher"),
        )
        await wait_until(pilot, lambda: users.modes_of("teacher") == 0)
        assert labels() == ["alice (you)", "+bob muted", "carol", "guest7 guest", "teacher"]
        assert "bob was muted for 10 min by teacher" in app.room.log_view.plain_lines()
        # News of another room changes that room, not the list on screen.
        core(app, news("cs101", Action.VOICE, "alice", "teacher gave alice voice"))
        cs101 = app.room.room_log("cs101")
        assert cs101 is not None
        await wait_until(pilot, lambda: "teacher gave alice voice" in cs101.plain_lines())
        assert users.modes_of("alice") == 0
        await pilot.press("alt+2")
        await wait_until(pilot, lambda: users.modes_of("alice") == MEMBER_VOICE)


async def test_announcement_banner_is_acknowledged_once_when_shown(recorded: dict[str, list[object]]) -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        banner = app.room.banner
        assert not banner.display
        quiz = ev.Announcement("lobby", 3, "teacher", T0, "Quiz at 10")
        core(app, quiz)
        await wait_until(pilot, lambda: recorded["seen"] == [("lobby", 3)])
        assert banner.display and banner.plain == "Quiz at 10"
        core(app, quiz)  # sent again (a reconnect): already acknowledged
        # An announcement of a room not on screen waits until it is shown.
        core(app, ev.Announcement("cs101", 1, "teacher", T0, "Bring a laptop"))
        await wait_until(pilot, lambda: app.room.announcement_text("cs101") == "Bring a laptop")
        await pilot.pause()
        assert recorded["seen"] == [("lobby", 3)]
        assert banner.plain == "Quiz at 10"
        await pilot.press("alt+2")
        await wait_until(pilot, lambda: recorded["seen"] == [("lobby", 3), ("cs101", 1)])
        assert banner.plain == "Bring a laptop"
        await pilot.press("alt+1", "alt+2")
        await pilot.pause()
        assert len(recorded["seen"]) == 2
        # /announce clear
        core(app, ev.Announcement("cs101", 1, "teacher", T0, ""))
        await wait_until(pilot, lambda: not banner.display)


async def test_operators_see_the_tally_under_the_announcement(recorded: dict[str, list[object]]) -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        core(
            app,
            ev.RoomState("lobby", "", 0, MEMBER_OP, None, 29),
            ev.Announcement("lobby", 4, "alice", T0, "Quiz at 10"),
            ev.AnnouncementTally("lobby", 4, 23, 28, ("ani", "budi")),
        )
        banner = app.room.banner
        await wait_until(pilot, lambda: "seen by" in banner.plain)
        assert banner.plain == "Quiz at 10\nseen by 23 of 28 — not yet: ani, budi"
        core(app, ev.AnnouncementTally("lobby", 4, 28, 28, ()))
        await wait_until(pilot, lambda: banner.plain == "Quiz at 10\nseen by 28 of 28")
        # No longer an operator: no tally.
        core(app, ev.RoomState("lobby", "", 0, 0, None, 29))
        await wait_until(pilot, lambda: banner.plain == "Quiz at 10")


async def test_announcement_covered_by_the_login_screen_is_acknowledged_after_it(
    recorded: dict[str, list[object]],
) -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: app.login_screen is not None)
        # The room screen gets these while the login screen is still on top of it.
        app.room.handle(ev.LoggedIn("alice", "lobby", "labchat", False, False, rooms=True))
        app.room.handle(ev.Announcement("lobby", 9, "teacher", T0, "Welcome"))
        await pilot.pause()
        assert recorded["seen"] == []
        core(app, ev.LoggedIn("alice", "lobby", "labchat", False, False, rooms=True))
        await wait_until(pilot, lambda: recorded["seen"] == [("lobby", 9)])


async def test_kicked_room_stays_greyed_with_the_reason_and_a_parted_one_goes(
    recorded: dict[str, list[object]],
) -> None:
    submitted: list[str] = []
    app = recording_app(submitted)
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        core(app, ev.RoomLeft("cs101", ErrorCode.KICKED, "teacher", "spam"))
        rooms = app.room.room_list
        await wait_until(pilot, lambda: not rooms.rows[1].joined)
        assert rooms.rows[1].left_reason == "kicked by teacher: spam"
        assert "Rooms · 1" in str(rooms.query_one("#room-count").render())
        assert app.room.room_names == ["lobby", "cs101"]  # still listed, its past lines kept
        assert app.room.log_view.entries[-1].kind is EntryKind.ERROR
        line = app.room.log_view.entries[-1].text
        assert "#cs101" in line and "kicked" in line
        await pilot.press("alt+2")
        await wait_until(pilot, lambda: app.room.current_room == "cs101")
        assert app.room.user_list.users == []  # not in it: nobody to show
        assert not app.room.room_log("lobby").display  # type: ignore[union-attr]
        # Nothing typed here goes anywhere: the client core's current room is another one now.
        app.room.run_line("anyone?")
        app.room.run_line("/topic mine now")
        assert app.room.log_view.entries[-1].kind is EntryKind.ERROR
        assert "/join cs101 to go back in" in app.room.log_view.entries[-1].text
        assert app.room.composer.text == "/topic mine now"  # kept, to be sent elsewhere
        app.room.composer.focus_input("")
        assert submitted == []
        # Joining again brings it back.
        core(app, ev.RoomState("cs101", "Lab 3: pointers", 0, 0, None, 4, joined=True))
        await wait_until(pilot, lambda: rooms.rows[1].joined)
        # A part removes the room, and the neighbour comes on screen.
        core(app, ev.RoomLeft("cs101"))
        await wait_until(pilot, lambda: app.room.room_names == ["lobby"])
        assert app.room.current_room == "lobby"
        assert recorded["switch"][-1] == "lobby"


async def test_join_shows_the_new_room_and_private_rooms_are_marked(
    recorded: dict[str, list[object]],
) -> None:
    submitted: list[str] = []
    app = recording_app(submitted)
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        app.room.run_line("/join #Secret key1")
        assert submitted == ["/join #Secret key1"]
        core(
            app,
            ev.RoomState("secret", "", ROOM_PRIVATE, MEMBER_OP, None, 1, joined=True),
            ev.CurrentRoomChanged("secret", joined=True),
        )
        await wait_until(pilot, lambda: app.room.current_room == "secret")
        await wait_until(pilot, lambda: app.room.room_list.rows[2:] == [RoomRow("secret", private=True)])
        assert "you joined #secret (1 member, private, you: op)" in app.room.log_view.plain_lines()
        # /join of a room already held only switches.
        app.room.run_line("/join cs101")
        assert app.room.current_room == "cs101"
        # A private message shows in the room on screen.
        core(app, ev.PrivateReceived("bob", "alice", T0, "psst"))
        await wait_until(pilot, lambda: "[private] <bob> psst" in app.room.log_view.plain_lines())
        # A refused request is one error line.
        core(app, ev.RequestFailed("join", "staff", ErrorCode.INVITE_ONLY, "staff is invite-only"))
        await wait_until(pilot, lambda: app.room.log_view.entries[-1].text == "staff is invite-only")
        assert app.room.log_view.entries[-1].kind is EntryKind.ERROR


async def test_clicking_a_room_and_the_command_palette_switch(recorded: dict[str, list[object]]) -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        await pilot.click("#rooms", offset=(4, 1))
        await wait_until(pilot, lambda: app.room.current_room == "cs101")
        assert app.room.composer.input.has_focus  # back to writing
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Switch to #lobby" in titles and "Switch to #cs101" in titles
        switch = next(c for c in app.get_system_commands(app.screen) if c.title == "Switch to #lobby")
        switch.callback()
        await wait_until(pilot, lambda: app.room.current_room == "lobby")


async def test_own_messages_go_to_their_room(recorded: dict[str, list[object]]) -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        core(
            app,
            ev.MessageQueued(1, "cs101", "to the lab"),
            ev.MessageDelivered(1, "cs101", 7, T0, "to the lab"),
        )
        cs101 = app.room.room_log("cs101")
        assert cs101 is not None
        await wait_until(pilot, lambda: bool(cs101.entries) and cs101.entries[-1].text == "to the lab")
        await wait_until(pilot, lambda: cs101.entries[-1].seq == 0 and 1 not in app.room._own)
        assert app.room.unread("cs101") == (0, 0)  # our own message is not unread
        assert not any("to the lab" in line for line in app.room.log_view.plain_lines())


async def test_one_room_server_shows_no_rooms_list() -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        core(app, ev.LoggedIn("alice", "lobby", "labchat", False, False))
        await wait_until(pilot, lambda: app.login_screen is None)
        await pilot.pause()
        assert not app.room.room_list.display
        assert app.room.room_names == ["lobby"]


async def test_a_busy_room_never_looked_at_keeps_a_bounded_log() -> None:
    app = make_app("127.0.0.1", 9, 0, max_entries=50)
    app.submit = lambda line: Submitted()  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        core(app, *(said("cs101", seq, "bob", f"line {seq}") for seq in range(1, 501)))
        await wait_until(pilot, lambda: app.room.unread("cs101") == (500, 0))
        cs101 = app.room.room_log("cs101")
        assert cs101 is not None
        await wait_until(pilot, lambda: len(cs101.entries) <= 50)
        await pilot.press("alt+2")
        await wait_until(pilot, lambda: bool(cs101._lines) and cs101.scroll_y == cs101.max_scroll_y > 0)
        assert cs101.plain_lines()[-1] == "<bob> line 500"
        assert cs101.anchored


async def test_leaving_the_room_on_screen_follows_the_core_with_the_news(
    recorded: dict[str, list[object]],
) -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 30)) as pilot:
        await two_rooms(app, pilot)
        await pilot.press("alt+2")
        await wait_until(pilot, lambda: app.room.current_room == "cs101")
        core(
            app,
            ev.RoomLeft("cs101", ErrorCode.BANNED, "teacher", "spam", float("inf")),
            ev.CurrentRoomChanged("lobby", joined=False),
        )
        await wait_until(pilot, lambda: app.room.current_room == "lobby")
        assert app.room.log_view.plain_lines()[-1].endswith(
            "you were banned from #cs101 by teacher (until lifted): spam"
        )
        assert app.room.room_list.rows[1].left_reason == "banned by teacher: spam"
        # Our JOIN done: the core says so and the new room comes on screen.
        core(
            app,
            ev.RoomState("physics", "", 0, MEMBER_OP, None, 1, joined=True),
            ev.CurrentRoomChanged("physics", joined=True),
        )
        await wait_until(pilot, lambda: app.room.current_room == "physics")


async def test_a_second_room_against_a_real_server(server: RelayServer, tmp_path: Path) -> None:
    """Join a second room, get a message there while looking at the first: an unread badge with a
    mention; switch to it and talk there."""
    bob = await connect(server, "bob", tmp_path=tmp_path)
    if not bob.of(ev.LoggedIn)[0].rooms:
        await bob.close()
        pytest.skip("this relay has no rooms yet")
    bob.client.submit("/join cs101")
    await bob.wait_for(ev.RoomState, lambda e: e.room == "cs101")
    app = app_for(server, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot, app, "alice")
        assert app.room.room_list.display  # the server has rooms
        await type_line(pilot, "/join #CS101")
        await wait_until(pilot, lambda: app.room.current_room == "cs101")
        await wait_until(pilot, lambda: app.room.user_list.users == ["alice", "bob"])
        await pilot.press("alt+1")
        await wait_until(pilot, lambda: app.room.current_room == "lobby")
        assert app.client is not None and app.client.current_room == "lobby"

        bob.client.submit("/say cs101 alice: the lab starts now")
        await wait_until(pilot, lambda: app.room.unread("cs101") == (1, 1))
        assert app.room.room_list.rows[1] == RoomRow("cs101", unread=1, mentions=1)
        assert not any("lab starts" in line for line in log_lines(app))

        await pilot.press("alt+2")
        await wait_until(pilot, lambda: app.room.current_room == "cs101")
        assert app.client.current_room == "cs101"
        assert "<bob> alice: the lab starts now" in log_lines(app)
        assert app.room.unread("cs101") == (0, 0)
        await type_line(pilot, "on my way")
        got = await bob.wait_for(ev.MessageReceived, lambda e: e.text == "on my way")
        assert got.room == "cs101"
    await bob.close()


async def test_rooms_given_at_start_are_joined_and_the_last_is_shown(
    server: RelayServer, tmp_path: Path
) -> None:
    app = app_for(server, tmp_path, rooms=("#CS101", "lab2"))
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot, app, "alice")
        if not app.room.rooms_enabled:
            pytest.skip("this relay has no rooms yet")
        await wait_until(pilot, lambda: app.room.room_names == ["lobby", "cs101", "lab2"])
        await wait_until(pilot, lambda: app.room.current_room == "lab2")
        assert app.client is not None and app.client.current_room == "lab2"
        assert app.room.status.room == "lab2"


async def test_an_announcement_shown_is_counted_for_the_operator(server: RelayServer, tmp_path: Path) -> None:
    teacher = await connect(server, "teacher", tmp_path=tmp_path)
    if not teacher.of(ev.LoggedIn)[0].rooms:
        await teacher.close()
        pytest.skip("this relay has no rooms yet")
    teacher.client.submit("/join cs101")
    await teacher.wait_for(ev.RoomState, lambda e: e.room == "cs101")
    teacher.client.submit("/announce Quiz at 10")
    await teacher.wait_for(ev.Announcement, lambda e: e.text == "Quiz at 10")
    app = app_for(server, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot, app, "alice")
        await type_line(pilot, "/join cs101")
        await wait_until(pilot, lambda: app.room.current_room == "cs101" and app.room.banner.display)
        assert app.room.banner.plain == "Quiz at 10"
        tally = await teacher.wait_for(ev.AnnouncementTally, lambda e: e.seen == 1)
        assert (tally.seen, tally.total, tally.not_yet) == (1, 1, ())
    await teacher.close()


async def test_kicked_by_a_real_operator(server: RelayServer, tmp_path: Path) -> None:
    teacher = await connect(server, "teacher", tmp_path=tmp_path)
    if not teacher.of(ev.LoggedIn)[0].rooms:
        await teacher.close()
        pytest.skip("this relay has no rooms yet")
    teacher.client.submit("/join cs101")
    await teacher.wait_for(ev.RoomState, lambda e: e.room == "cs101")
    app = app_for(server, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot, app, "alice")
        await type_line(pilot, "/join cs101")
        await wait_until(pilot, lambda: app.room.current_room == "cs101")
        await teacher.wait_for(ev.UserJoined, lambda e: e.user == "alice")
        teacher.client.submit("/kick alice spam")
        await wait_until(pilot, lambda: app.room.current_room == "lobby")
        await wait_until(pilot, lambda: not app.room.room_list.rows[1].joined)
        assert app.room.room_list.rows[1].left_reason == "kicked by teacher: spam"
        assert "you were kicked from #cs101 by teacher: spam" in log_lines(app)
        await type_line(pilot, "back in lobby")
        got = await teacher.wait_for(ev.MessageReceived, lambda e: e.text == "back in lobby")
        assert got.room == "lobby"
    await teacher.close()
