"""The classroom in the app (docs/protocol.md 20): the operators' help queue panel, the student's own
hand in the header, the poll card (keys 1-9 vote, the operator's live tally, results once closed),
quiet mode in the header and a member's lines shown as going to the operators, seats in the online
list.

Most drive the real app's event routing with the events the client core reports, as the network
worker posts them; what the screen asks the core is recorded (the typed commands it submits). The
clock is a list the test moves, so waiting times and quiet mode's minutes are exact. The last one
runs the app against a real server and a real operator's client.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList

from labchat.client.core import Submitted
from labchat.protocol import events as ev
from labchat.protocol.messages import MEMBER_OP, ROOM_QUIET, Action
from labchat.server.transport import RelayServer
from labchat.tui import messages as msg
from labchat.tui.app import LabchatApp, make_app
from labchat.tui.classroom_words import hand_words, ordinal, quiet_words, waiting_words
from labchat.tui.log_entry import EntryKind

from ..helpers import connect
from .test_room import type_line
from .util import app_for, log_in, wait_until

T0 = 1_709_631_660.0


def core(app: LabchatApp, *events: ev.Event) -> None:
    """Post events as the network worker does."""
    for event in events:
        app.post_message(msg.CoreEvent(app.attempt, event))


def class_app(submitted: list[str], now: list[float]) -> LabchatApp:
    """The app with its sends recorded and its clock at `now[0]`."""
    app = make_app("127.0.0.1", 9, 0, clock=lambda: now[0])

    def record(line: str) -> Submitted:
        submitted.append(line)
        return Submitted()

    app.submit = record  # type: ignore[method-assign]
    app.set_current_room = lambda room: None  # type: ignore[method-assign]
    app.announcement_seen = lambda room, aid: None  # type: ignore[method-assign]
    return app


async def in_class(app: LabchatApp, pilot: Pilot[object], user: str, *, operator: bool) -> None:
    """Logged in as `user` to a classroom server, in cs101 (an operator there or not)."""
    you = MEMBER_OP if operator else 0
    core(
        app,
        ev.LoggedIn(user, "cs101", "labchat", False, False, rooms=True),
        ev.RoomState("cs101", "Lab 3", 0, you, None, 4, joined=True),
        ev.PresenceUpdated(
            "cs101",
            tuple(sorted({"ani", "budi", "teacher", user})),
            modes={"teacher": MEMBER_OP},
            seats={"ani": "PC-03", "budi": "PC-14", "teacher": ""},
        ),
    )
    await wait_until(pilot, lambda: app.login_screen is None and app.room.current_room == "cs101")
    await wait_until(pilot, lambda: app.room.composer.input.has_focus)


def queue(*entries: tuple[str, str, str, float, str]) -> ev.QueueUpdated:
    return ev.QueueUpdated("cs101", tuple(ev.QueueItem(*entry) for entry in entries))


def poll(**changes: object) -> ev.PollShown:
    fields: dict[str, object] = dict(
        room="cs101", poll_id=3, by="teacher", question="Done with exercise 2?",
        options=("yes", "no", "stuck"), anonymous=False, closed=False, counts=(), voters=0,
        your_choice=0, ballots=(),
    )  # fmt: skip
    fields.update(changes)
    return ev.PollShown(**fields)  # type: ignore[arg-type]


def test_words() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th",
    ]  # fmt: skip
    assert waiting_words(T0, T0 + 59) == "just now"
    assert waiting_words(T0, T0 + 60) == "1 min"
    assert waiting_words(T0, T0 + 3725) == "1 h 02 min"
    assert waiting_words(T0 + 10, T0) == "just now"  # a clock a little behind the server's
    assert quiet_words(None, T0) == ""
    assert quiet_words(T0 + 720, T0) == "quiet: 12 min left"
    assert quiet_words(T0 + 1, T0) == "quiet: 1 min left"  # never "0 min" while still quiet
    assert quiet_words(T0, T0) == ""
    raised = ev.RoomEvent("cs101", T0, Action.HAND_RAISED, "budi", "budi", 3, "segfault", "")
    assert hand_words(raised, "Budi") == "your hand is up: 3rd in line"
    assert hand_words(raised, "ani") is None
    taken = ev.RoomEvent("cs101", T0, Action.HAND_TAKEN, "teacher", "budi", 0, "", "")
    assert hand_words(taken, "budi") == "coming: teacher"
    lowered = ev.RoomEvent("cs101", T0, Action.HAND_LOWERED, "teacher", "budi", 0, "", "")
    assert hand_words(lowered, "budi") == ""


async def test_operator_sees_the_queue_with_waiting_times_and_takes_the_next() -> None:
    submitted: list[str] = []
    now = [T0 + 600]
    app = class_app(submitted, now)
    async with app.run_test(size=(110, 30)) as pilot:
        await in_class(app, pilot, "teacher", operator=True)
        panel = app.room.help_queue
        assert not panel.display  # nobody waiting: no panel
        core(
            app,
            queue(
                ("budi", "PC-14", "segfault in exercise 2", T0 + 420, ""),
                ("ani", "PC-03", "", T0 + 590, ""),
            ),
        )
        await wait_until(pilot, lambda: panel.display and len(panel.entries) == 2)
        assert panel.lines() == [
            "1. budi · PC-14 · 3 min\n   segfault in exercise 2",
            "2. ani · PC-03 · just now",
        ]
        assert str(panel.query_one("#queue-title").render()) == "Help queue · 2 waiting"
        # Minutes pass: the times follow without any event.
        now[0] += 120
        panel._redraw()
        assert panel.lines()[1] == "2. ani · PC-03 · 2 min"

        # n in the panel (Alt+Q goes there) takes the next student; the button does the same.
        await pilot.press("alt+q")
        await wait_until(pilot, lambda: panel.query_one(OptionList).has_focus)
        await pilot.press("n")
        await wait_until(pilot, lambda: submitted == ["/next"])
        await pilot.click("#queue-next")
        await wait_until(pilot, lambda: submitted == ["/next", "/next"])

        core(
            app,
            queue(
                ("budi", "PC-14", "segfault in exercise 2", T0 + 420, "teacher"),
                ("ani", "PC-03", "", T0 + 590, ""),
            ),
        )
        await wait_until(pilot, lambda: bool(panel.entries) and panel.entries[0].taken_by == "teacher")
        assert panel.lines()[0].endswith("→ you are helping")
        assert str(panel.query_one("#queue-title").render()) == "Queue · 1 waiting · 1 taken"
        # d is about the highlighted entry: the second one here.
        panel.query_one(OptionList).highlighted = 1
        await pilot.press("d")
        await wait_until(pilot, lambda: submitted[-1] == "/done ani")
        panel.query_one(OptionList).highlighted = 0
        await pilot.click("#queue-done")
        await wait_until(pilot, lambda: submitted[-1] == "/done budi")

        core(app, queue())  # all helped
        await wait_until(pilot, lambda: not panel.display)


async def test_a_student_sees_no_queue_but_their_own_hand_in_the_header() -> None:
    submitted: list[str] = []
    app = class_app(submitted, [T0])
    async with app.run_test(size=(110, 30)) as pilot:
        await in_class(app, pilot, "budi", operator=False)
        status = app.room.status
        core(
            app,
            queue(("budi", "PC-14", "", T0, "")),  # never sent to a student; not shown if it were
            ev.RoomEvent("cs101", T0, Action.HAND_RAISED, "budi", "budi", 3, "segfault", "you are 3rd"),
        )
        await wait_until(pilot, lambda: status.hand == "your hand is up: 3rd in line")
        assert not app.room.help_queue.display
        core(app, ev.RoomEvent("cs101", T0, Action.HAND_TAKEN, "teacher", "budi", 0, "", "coming"))
        await wait_until(pilot, lambda: status.hand == "coming: teacher")
        assert "coming: teacher" in str(status.render())
        # Another student's hand is not ours.
        core(app, ev.RoomEvent("cs101", T0, Action.HAND_RAISED, "ani", "ani", 2, "", ""))
        core(app, ev.RoomEvent("cs101", T0, Action.HAND_LOWERED, "teacher", "budi", 0, "", ""))
        await wait_until(pilot, lambda: status.hand == "")


async def test_poll_card_votes_with_number_keys_and_shows_results_when_closed() -> None:
    submitted: list[str] = []
    app = class_app(submitted, [T0])
    async with app.run_test(size=(100, 30)) as pilot:
        await in_class(app, pilot, "budi", operator=False)
        card = app.room.poll_card
        assert not card.display
        core(app, poll())
        await wait_until(pilot, lambda: card.display)
        assert app.bells == 1  # a question to the class rings, as a mention does
        assert card.plain.splitlines() == [
            "Poll #3 by teacher: Done with exercise 2?",
            " 1) yes    2) no    3) stuck",
            "Alt+V then 1-3 to vote, or /vote N",
        ]
        opened = "poll #3 by teacher: Done with exercise 2?  1) yes  2) no  3) stuck  — /vote N"
        assert opened in app.room.log_view.plain_lines()
        # Typed digits go to the draft while the input line has the focus...
        await pilot.press("2")
        assert submitted == [] and app.room.composer.text == "2"
        app.room.composer.input.value = ""
        # ...and vote while the card has it (Alt+V, or a click).
        await pilot.press("alt+v")
        await wait_until(pilot, lambda: card.has_focus)
        assert card.plain.splitlines()[-1] == "1-3 to vote, or /vote N · Esc back to typing"
        await pilot.press("2")
        await wait_until(pilot, lambda: submitted == ["/vote 2"])
        await pilot.press("7")  # no option 7: nothing sent
        core(app, poll(your_choice=2))
        await wait_until(pilot, lambda: "●2) no" in card.plain)
        assert "you chose 2: 1-3 to change, or /vote N" in card.plain
        await pilot.press("3")
        await wait_until(pilot, lambda: submitted == ["/vote 2", "/vote 3"])

        core(app, poll(closed=True, counts=(20, 3, 1), voters=24, your_choice=3))
        await wait_until(pilot, lambda: card.plain.startswith("Results of poll #3 by teacher: Done"))
        lines = card.plain.splitlines()
        assert lines[1].startswith(" 1) yes   ████████████████  20")
        assert lines[3].startswith("●3) stuck ")
        assert lines[-1] == "24 voted · x hides the results · Esc back to typing"
        await pilot.press("1")  # closed: no vote
        assert submitted == ["/vote 2", "/vote 3"]
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.room.composer.input.has_focus)
        assert card.plain.splitlines()[-1] == "24 voted · Alt+V then x hides them"
        result = "poll #3: yes 20, no 3, stuck 1 (24 voted) — Done with exercise 2?"
        assert result in app.room.log_view.plain_lines()
        # The results stay pinned until hidden: x on the card; the log keeps the result line.
        await pilot.press("alt+v")
        await wait_until(pilot, lambda: card.has_focus)
        await pilot.press("x")
        await wait_until(pilot, lambda: not card.display and app.room.composer.input.has_focus)
        assert app.room.composer.text == "" and result in app.room.log_view.plain_lines()
        core(app, poll(closed=True, counts=(20, 4, 1), voters=25, your_choice=3))  # a late tally
        await pilot.pause()
        assert not card.display
        core(app, poll(poll_id=4))  # the next poll shows again
        await wait_until(pilot, lambda: card.display and card.plain.startswith("Poll #4"))
        await pilot.press("alt+v")
        await wait_until(pilot, lambda: card.has_focus)
        await pilot.press("x")  # an open poll is not hidden: it still wants votes
        await pilot.pause()
        assert card.display


async def test_operator_sees_the_live_tally_with_names_unless_anonymous() -> None:
    app = class_app([], [T0])
    async with app.run_test(size=(100, 30)) as pilot:
        await in_class(app, pilot, "teacher", operator=True)
        card = app.room.poll_card
        core(app, poll(counts=(2, 0, 1), voters=3, ballots=((1, "budi"), (3, "ani"), (1, "Cici"))))
        await wait_until(pilot, lambda: card.display)
        lines = card.plain.splitlines()
        assert lines[1] == " 1) yes   ████████████████   2  budi, Cici"
        assert lines[2] == " 2) no    ░░░░░░░░░░░░░░░░   0"
        assert lines[3] == " 3) stuck ████████░░░░░░░░   1  ani"
        assert lines[4] == "3 voted · /poll close to end it"
        core(app, poll(poll_id=4, anonymous=True, counts=(1, 1, 0), voters=2))
        await wait_until(pilot, lambda: card.plain.startswith("Poll #4 by teacher, anonymous"))
        assert "budi" not in card.plain


async def test_quiet_mode_in_the_header_and_a_members_lines_go_to_the_operators() -> None:
    submitted: list[str] = []
    now = [T0]
    app = class_app(submitted, now)
    async with app.run_test(size=(100, 30)) as pilot:
        await in_class(app, pilot, "budi", operator=False)
        status = app.room.status
        core(app, ev.RoomState("cs101", "Lab 3", ROOM_QUIET, 0, None, 4, quiet_until=T0 + 12 * 60))
        await wait_until(pilot, lambda: status.quiet == "quiet: 12 min left")
        assert "quiet: 12 min left" in str(status.render())
        now[0] += 5 * 60 + 1
        app.room._show_quiet()  # what the screen's timer does every few seconds
        assert status.quiet == "quiet: 7 min left"

        core(app, ev.MessageQueued(1, "cs101", "is exercise 3 graded?"))
        log = app.room.log_view
        await wait_until(pilot, lambda: bool(log.entries) and log.entries[-1].text == "is exercise 3 graded?")
        entry = log.entries[-1]
        assert (entry.kind, entry.user) == (EntryKind.PRIVATE_OUT, "operators")
        assert log.plain_lines()[-1] == "[to the operators] is exercise 3 graded?"

        core(app, ev.MessageDelivered(1, "cs101", 0, T0, "is exercise 3 graded?"))
        # What the app guessed while typing, the server settles: a line it accepted with seq 0 went
        # to the operators (quiet mode began meanwhile); one placed in the room (seq > 0) did not.
        core(app, ev.MessageQueued(7, "cs101", "me too"))
        await wait_until(pilot, lambda: log.entries[-1].text == "me too")
        app.room._current.quiet_until = None
        core(app, ev.MessageQueued(8, "cs101", "same here"))
        core(app, ev.MessageDelivered(8, "cs101", 0, T0, "same here"))
        await wait_until(pilot, lambda: log.entries[-1].label == "to the operators")
        assert log.entries[-1].kind is EntryKind.PRIVATE_OUT
        core(app, ev.MessageDelivered(7, "cs101", 57, T0, "me too"))
        await wait_until(pilot, lambda: log.entries[-2].kind is EntryKind.CHAT)
        assert log.entries[-2].user == "budi" and log.entries[-2].label == ""
        app.room._current.quiet_until = T0 + 12 * 60
        core(app, ev.RoomEvent("cs101", T0, Action.QUIET_SET, "teacher", "", 0, "off", "quiet mode off"))
        await wait_until(pilot, lambda: status.quiet == "")
        core(app, ev.MessageQueued(2, "cs101", "thanks"))
        await wait_until(pilot, lambda: app.room.log_view.entries[-1].text == "thanks")
        assert app.room.log_view.entries[-1].kind is EntryKind.CHAT


async def test_operator_gets_a_members_quiet_line_in_the_room() -> None:
    app = class_app([], [T0])
    async with app.run_test(size=(100, 30)) as pilot:
        await in_class(app, pilot, "teacher", operator=True)
        core(app, ev.PrivateReceived("budi", "cs101", T0, "can I go to the toilet?", to_ops=True))
        log = app.room.log_view
        await wait_until(pilot, lambda: bool(log.entries) and "toilet" in log.entries[-1].text)
        assert log.entries[-1].kind is EntryKind.PRIVATE_IN
        assert log.entries[-1].text == "can I go to the toilet?"
        assert log.plain_lines()[-1] == "[to the operators] <budi> can I go to the toilet?"


async def test_seats_follow_names_in_the_online_list() -> None:
    app = class_app([], [T0])
    async with app.run_test(size=(110, 30)) as pilot:
        await in_class(app, pilot, "teacher", operator=True)
        users = app.room.user_list
        await wait_until(pilot, lambda: users.seat_of("budi") == "PC-14")
        assert users.seat_of("teacher") == ""
        prompts = [str(option.prompt) for option in users.query_one(OptionList).options]
        assert "budi PC-14" in prompts
        assert "@teacher (you)" in prompts
        # a student who comes in later is listed with the seat the server gave with JOINED (20.2)
        core(app, ev.UserJoined("cs101", "dewi", T0, seat="PC-21"))
        await wait_until(pilot, lambda: users.seat_of("dewi") == "PC-21")
        assert "dewi PC-21" in [str(option.prompt) for option in users.query_one(OptionList).options]


async def test_who_says_which_pc_each_member_sits_at() -> None:
    app = class_app([], [T0])
    async with app.run_test(size=(110, 30)) as pilot:
        await in_class(app, pilot, "teacher", operator=True)
        core(app, ev.PresenceUpdated("cs101", ("ani", "budi", "teacher"), requested=True,
                                     seats={"ani": "PC-03", "budi": "PC-14"}))  # fmt: skip
        log = app.room.log_view
        await wait_until(pilot, lambda: any("seats:" in line for line in log.plain_lines()))
        lines = log.plain_lines()
        assert lines[-2].endswith("3 online: ani, budi, teacher")
        assert lines[-1].endswith("seats: ani at PC-03, budi at PC-14")


async def test_a_poll_opened_by_a_real_operator_reaches_the_card_and_a_key_votes(
    server: RelayServer, tmp_path: Path
) -> None:
    """End to end: the teacher (a client core) opens a poll in cs101; alice, in the app, joins, sees
    the card, votes with Alt+V then 2; the teacher's live tally counts her vote by name."""
    teacher = await connect(server, "teacher", tmp_path=tmp_path)
    if not teacher.of(ev.LoggedIn)[0].rooms:
        await teacher.close()
        pytest.skip("this relay has no rooms yet")
    teacher.client.submit("/join cs101")
    await teacher.wait_for(ev.RoomState, lambda e: e.room == "cs101")
    opened = teacher.client.submit('/poll "Done with exercise 2?" yes | no | stuck')
    if opened.error:
        await teacher.close()
        pytest.skip(f"no classroom in this client or relay yet: {' '.join(opened.local_lines)}")
    await teacher.wait_for(ev.PollShown, lambda e: e.room == "cs101" and not e.closed)
    app = app_for(server, tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot, app, "alice")
        await type_line(pilot, "/join cs101")
        card = app.room.poll_card
        await wait_until(pilot, lambda: app.room.current_room == "cs101" and card.display)
        assert card.plain.startswith("Poll #") and "Done with exercise 2?" in card.plain
        await pilot.press("alt+v")
        await wait_until(pilot, lambda: card.has_focus)
        await pilot.press("2")
        tally = await teacher.wait_for(ev.PollShown, lambda e: e.voters == 1)
        assert tally.counts == (0, 1, 0)
        assert tally.ballots == ((2, "alice"),)
        await wait_until(pilot, lambda: card.poll is not None and card.poll.your_choice == 2)
        assert "●2) no" in card.plain
    await teacher.close()


async def test_each_room_has_its_own_poll_queue_and_quiet_mode() -> None:
    app = class_app([], [T0])
    async with app.run_test(size=(110, 30)) as pilot:
        await in_class(app, pilot, "teacher", operator=True)
        core(
            app,
            ev.RoomState("lobby", "", ROOM_QUIET, 0, None, 3, joined=True, quiet_until=T0 + 60),
            ev.PollShown("lobby", 9, "carol", "Pizza?", ("yes", "no"), False, False, (), 0, 0, ()),
            queue(("budi", "PC-14", "", T0, "")),
        )
        screen = app.room
        await wait_until(pilot, lambda: screen.unread("lobby") == (1, 1) and screen.help_queue.display)
        assert screen.current_room == "cs101"
        assert not screen.poll_card.display and screen.status.quiet == ""  # lobby's, not shown here
        screen.switch_to("lobby")
        await wait_until(pilot, lambda: screen.poll_card.display)
        assert screen.poll_card.plain.startswith("Poll #9 by carol: Pizza?")
        assert screen.status.quiet == "quiet: 1 min left"
        assert not screen.help_queue.display  # not an operator in lobby
        screen.switch_to("cs101")
        await wait_until(pilot, lambda: not screen.poll_card.display and screen.help_queue.display)
        assert screen.status.quiet == ""
