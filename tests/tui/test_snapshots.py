"""SVG snapshots of the app at 80x24, with fixed names, times and fingerprints (see scenes.py).

Regenerate after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update` and
look at the pictures before committing them.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import Input

from labchat.protocol import events as ev
from labchat.protocol.errors import ErrorCode
from labchat.tui import messages as msg

from .scenes import (
    FINGERPRINT,
    OTHER_FINGERPRINT,
    T0,
    classroom_student,
    classroom_teacher,
    conversation,
    play,
    rooms_conversation,
    scene_app,
)

SIZE = (80, 24)
Compare = Callable[..., bool]


async def steady(pilot: Pilot[object]) -> None:
    """Let the screen settle with steady cursors: a blink must not land in the picture."""
    await pilot.pause()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


def test_login_screen(snap_compare: Compare) -> None:
    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=steady)


def test_login_invalid_name(snap_compare: Compare) -> None:
    async def type_bad_name(pilot: Pilot[object]) -> None:
        await steady(pilot)
        pilot.app.screen.query_one("#user", Input).value = "9lives"
        pilot.app.screen.query_one("#password", Input).value = "hunter22"
        await pilot.click("#login")

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=type_bad_name)


def test_trust_prompt(snap_compare: Compare) -> None:
    async def first_contact(pilot: Pilot[object]) -> None:
        await steady(pilot)
        pilot.app.post_message(msg.CoreEvent(0, ev.ServerKeyTrusted(FINGERPRINT, first_contact=True)))

    assert snap_compare(scene_app(user="alice"), terminal_size=SIZE, run_before=first_contact)


def test_key_changed(snap_compare: Compare) -> None:
    async def key_changed(pilot: Pilot[object]) -> None:
        await steady(pilot)
        pilot.app.post_message(msg.CoreEvent(0, ev.ServerKeyChanged(FINGERPRINT, OTHER_FINGERPRINT)))

    assert snap_compare(scene_app(user="alice"), terminal_size=SIZE, run_before=key_changed)


def test_room(snap_compare: Compare) -> None:
    async def chat(pilot: Pilot[object]) -> None:
        await steady(pilot)
        await play(pilot, conversation(pilot.app))  # type: ignore[arg-type]

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=chat)


def test_room_disconnected(snap_compare: Compare) -> None:
    async def lost(pilot: Pilot[object]) -> None:
        await steady(pilot)
        app = pilot.app
        await play(pilot, conversation(app))  # type: ignore[arg-type]
        await play(
            pilot,
            [
                msg.CoreEvent(0, ev.StateChanged(ev.ConnectionState.CLOSED, "replaced")),
                msg.CoreEvent(0, ev.Closed("you logged in from another place", 9)),
            ],
        )

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=lost)


def test_completion(snap_compare: Compare) -> None:
    async def complete(pilot: Pilot[object]) -> None:
        await steady(pilot)
        await play(pilot, conversation(pilot.app))  # type: ignore[arg-type]
        await pilot.press(*"thanks", "space", "@", "tab", "tab")

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=complete)


def test_login_after_a_throttle(snap_compare: Compare) -> None:
    async def throttled(pilot: Pilot[object]) -> None:
        await steady(pilot)
        pilot.app.screen.query_one("#password", Input).value = "wrong-again"
        text = "too many failed logins for alice: try again in 6 s"
        pilot.app.post_message(msg.CoreEvent(0, ev.LoginRefused(ErrorCode.LOGIN_THROTTLED, text)))

    assert snap_compare(scene_app(user="alice"), terminal_size=SIZE, run_before=throttled)


def test_login_asks_before_creating_an_account(snap_compare: Compare) -> None:
    async def unknown(pilot: Pilot[object]) -> None:
        await steady(pilot)
        pilot.app._attempt_user = "newbie"  # type: ignore[attr-defined]
        refused = ev.LoginRefused(ErrorCode.NO_SUCH_ACCOUNT, "no account newbie")
        pilot.app.post_message(msg.CoreEvent(0, refused))

    assert snap_compare(scene_app(user="newbie"), terminal_size=SIZE, run_before=unknown)


def test_away(snap_compare: Compare) -> None:
    async def away(pilot: Pilot[object]) -> None:
        await steady(pilot)
        app = pilot.app
        await play(pilot, conversation(app))  # type: ignore[arg-type]
        ts = T0 + 400
        await play(
            pilot,
            [
                msg.CoreEvent(0, ev.UserAway("lobby", "bob", True, "lunch", ts)),
                msg.CoreEvent(0, ev.UserAway("lobby", "alice", True, "idle", ts + 60)),
            ],
        )

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=away)


def test_rooms_with_unread_badges(snap_compare: Compare) -> None:
    """lobby on screen; cs101 has a mention of alice, staff (private) one unread message."""

    async def rooms(pilot: Pilot[object]) -> None:
        await steady(pilot)
        await play(pilot, rooms_conversation(pilot.app))  # type: ignore[arg-type]

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=rooms)


def test_rooms_switched_to_the_announcement(snap_compare: Compare) -> None:
    """cs101 on screen: its topic, the pinned announcement with the operator's tally, roles; the
    draft typed in lobby stays there, and staff was left greyed after a kick."""

    async def switched(pilot: Pilot[object]) -> None:
        await steady(pilot)
        app = pilot.app
        await play(pilot, rooms_conversation(app))  # type: ignore[arg-type]
        await pilot.press(*"brb")
        await pilot.press("alt+2")
        kicked = ev.RoomLeft("staff", ErrorCode.KICKED, "carol", "wrong room")
        await play(pilot, [msg.CoreEvent(0, kicked)])

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=switched)


def test_classroom_teacher_queue_and_poll_tally(snap_compare: Compare) -> None:
    """The teacher's cs101: seats in the online list, the help queue (budi taken by the teacher,
    two waiting, minutes waited), the open poll's live tally with bars and names."""

    async def teacher(pilot: Pilot[object]) -> None:
        await steady(pilot)
        await play(pilot, classroom_teacher(pilot.app))  # type: ignore[arg-type]

    assert snap_compare(scene_app(), terminal_size=(110, 30), run_before=teacher)


def test_classroom_student_quiet_hand_and_poll(snap_compare: Compare) -> None:
    """budi's cs101 in quiet mode: "quiet: 12 min left" and his hand in the header, the poll card
    with his vote (focused, so 1-3 vote), his line shown as going to the operators."""

    async def student(pilot: Pilot[object]) -> None:
        await steady(pilot)
        await play(pilot, classroom_student(pilot.app))  # type: ignore[arg-type]
        pilot.app.room.poll_card.focus()  # type: ignore[attr-defined]
        await pilot.pause()

    assert snap_compare(scene_app(), terminal_size=(100, 26), run_before=student)
