"""SVG snapshots of the message log: a code block, the unread marker with the new-messages bar, and
day dividers with dated times. Fixed names, times (UTC, scenes.T0) and sizes, as in test_snapshots.py.

Regenerate after an intended change with `pytest tests/tui/test_log_snapshots.py --snapshot-update`
and look at the pictures before committing them.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from labchat.protocol import events as ev
from labchat.tui import messages as msg
from labchat.tui.app import LabchatApp

from .scenes import T0, play, scene_app

SIZE = (80, 24)
DAY = 86_400.0
Compare = Callable[..., bool]
PLOT_SNIPPET = (
    "```python\ndef plot(xs, ys):\n    # scale before drawing\n    return [y * 2 for y in ys]\n```\n"
    "see the `* 2`?"
)


def said(app: LabchatApp, seq: int, ts: float, user: str, text: str, **flags: bool) -> msg.CoreEvent:
    return msg.CoreEvent(app.attempt, ev.MessageReceived("lobby", seq, ts, user, text, **flags))


def logged_in(app: LabchatApp) -> list[msg.CoreEvent]:
    a = app.attempt
    return [
        msg.CoreEvent(a, ev.StateChanged(ev.ConnectionState.CONNECTED)),
        msg.CoreEvent(a, ev.LoggedIn("alice", "lobby", "physics-lab", False, False)),
        msg.CoreEvent(a, ev.PresenceUpdated("lobby", ("alice", "bob", "carol", "erin"))),
    ]


def test_log_code_block(snap_compare: Compare) -> None:
    async def code(pilot: Pilot[object]) -> None:
        app = pilot.app
        assert isinstance(app, LabchatApp)
        await pilot.pause()
        await play(
            pilot,
            [
                *logged_in(app),
                said(app, 1, T0, "erin", "the `plot_v3.py` bug, I think:"),
                said(app, 2, T0 + 20, "erin", PLOT_SNIPPET),
                said(app, 3, T0 + 60, "bob", "alice wrote that part, ask her"),
            ],
        )

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=code)


def test_log_unread_marker_and_new_messages_bar(snap_compare: Compare) -> None:
    async def away(pilot: Pilot[object]) -> None:
        app = pilot.app
        assert isinstance(app, LabchatApp)
        await pilot.pause()
        earlier = [said(app, i, T0 + i, "bob", f"line {i}") for i in range(1, 21)]
        await play(pilot, [*logged_in(app), *earlier])
        log = app.room.log_view
        log.set_read_marker()
        await play(pilot, [said(app, 20 + i, T0 + 30 + i, "carol", f"new {i}") for i in range(1, 9)])
        # The user scrolls up a little to the marker; then more arrives, one of it a mention.
        log.scroll_to(y=log.max_scroll_y - 6, animate=False, immediate=True)
        await play(pilot, [said(app, 30, T0 + 40, "bob", "alice: the printer works again"),
                           said(app, 31, T0 + 41, "erin", "yay")])

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=away)


def test_log_day_dividers(snap_compare: Compare) -> None:
    async def days(pilot: Pilot[object]) -> None:
        app = pilot.app
        assert isinstance(app, LabchatApp)
        await pilot.pause()
        await play(
            pilot,
            [
                *logged_in(app),
                said(app, 1, T0 - 2 * DAY, "bob", "weekend shift done", history=True),
                said(app, 2, T0 - DAY + 300, "carol", "new samples are in the fridge", history=True),
                said(app, 3, T0 - DAY + 400, "a_twenty_char_name_x", "thanks!", history=True),
                said(app, 4, T0 - 60, "bob", "morning", history=True),
                said(app, 5, T0 + 10, "erin", "hi all"),
            ],
        )

    assert snap_compare(scene_app(), terminal_size=SIZE, run_before=days)
