"""Habits of a desktop chat app: notifications while away from the window, the palette, a remembered theme."""

from __future__ import annotations

import time
from pathlib import Path

from labchat.protocol import events as ev
from labchat.server.transport import RelayServer
from labchat.tui import messages as msg
from labchat.tui.app import AUTO_AWAY_S, make_app
from labchat.tui.notifications import desktop_notification
from labchat.tui.ui_settings import UiSettings

from ..helpers import connect
from .util import app_for, enter_room, log_in, recording_app, wait_until

T0 = 1_700_000_000.0


def test_the_terminal_picks_the_notification_sequence() -> None:
    assert desktop_notification("bob", "hi", {}) == "\x1b]777;notify;bob;hi\x07"
    assert desktop_notification("bob", "hi", {"TERM_PROGRAM": "iTerm.app"}) == "\x1b]9;bob: hi\x07"
    assert desktop_notification("bob", "hi", {"WT_SESSION": "x"}) == "\x1b]9;bob: hi\x07"
    # Nothing in a message can end the sequence early or add a field.
    sneaky = desktop_notification("a;b", "x\x07\x1b]0;pwned\x07;y", {})
    assert sneaky.count("\x07") == 1 and sneaky.count("\x1b") == 1
    assert sneaky.count(";") == 3
    assert len(desktop_notification("t", "x" * 5000, {})) < 300


async def test_a_private_message_notifies_only_while_the_terminal_is_not_focused() -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 24)) as pilot:
        await enter_room(app, pilot)
        app.post_message(msg.CoreEvent(app.attempt, ev.PrivateReceived("bob", "alice", T0, "psst")))
        await wait_until(pilot, lambda: app.bells == 1)
        assert app.notifications == []
        app.app_focus = False
        app.post_message(msg.CoreEvent(app.attempt, ev.PrivateReceived("bob", "alice", T0, "again")))
        await wait_until(pilot, lambda: app.bells == 2)
        assert app.notifications == [("bob (private)", "again")]


async def test_no_notify_turns_notifications_off() -> None:
    app = make_app("127.0.0.1", 9, 0, notify=False)
    async with app.run_test(size=(100, 24)) as pilot:
        await enter_room(app, pilot)
        app.app_focus = False
        app.post_message(msg.CoreEvent(app.attempt, ev.PrivateReceived("bob", "alice", T0, "psst")))
        await wait_until(pilot, lambda: app.bells == 1)
        assert app.notifications == []


async def test_the_palette_offers_labchat_commands_and_themes() -> None:
    app = recording_app([])
    async with app.run_test(size=(100, 24)) as pilot:
        await enter_room(app, pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Who is online", "Clear the log", "Theme", "Quit"} <= set(titles)


async def test_the_chosen_theme_is_remembered(tmp_path: Path) -> None:
    path = tmp_path / "ui.json"
    app = make_app("127.0.0.1", 9, 0, settings_path=path)
    async with app.run_test(size=(100, 24)) as pilot:
        app.theme = "nord"
        await pilot.pause()
    assert UiSettings(path).theme == "nord"
    again = make_app("127.0.0.1", 9, 0, settings_path=path)
    async with again.run_test(size=(100, 24)) as pilot:
        await pilot.pause()
        assert again.theme == "nord"


def test_a_corrupt_settings_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "ui.json"
    path.write_bytes(b"\x00{not json")
    assert UiSettings(path).theme is None
    UiSettings(path).theme = "nord"
    assert UiSettings(path).theme == "nord"


async def test_clear_empties_this_screen_only() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    async with app.run_test(size=(100, 24)) as pilot:
        await enter_room(app, pilot)
        app.post_message(msg.CoreEvent(app.attempt, ev.MessageReceived("lobby", 1, T0, "bob", "hi")))
        await wait_until(pilot, lambda: any("hi" in line for line in app.room.log_view.plain_lines()))
        await pilot.press(*"/clear", "enter")
        await wait_until(pilot, lambda: not any("hi" in line for line in app.room.log_view.plain_lines()))
        assert sent == []  # nothing went to the server


async def test_ten_idle_minutes_mark_the_user_away_and_a_key_brings_them_back(
    server: RelayServer, tmp_path: Path
) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    async with app.run_test(size=(100, 24)) as pilot:
        await log_in(pilot, app, "alice")
        app.check_auto_away(time.monotonic() + 599)  # not yet
        app.check_auto_away(time.monotonic() + AUTO_AWAY_S)
        away = await bob.wait_for(ev.UserAway)
        assert (away.user, away.away, away.reason) == ("alice", True, "idle")
        await wait_until(pilot, lambda: app.room.status.away == "idle")
        await pilot.press("x")
        back = await bob.wait_for(ev.UserAway, lambda e: not e.away)
        assert back.user == "alice"
        await wait_until(pilot, lambda: app.room.status.away is None)
    await bob.close()


async def test_an_away_the_user_chose_is_not_undone_by_typing(server: RelayServer, tmp_path: Path) -> None:
    app = app_for(server, tmp_path)
    async with app.run_test(size=(100, 24)) as pilot:
        await log_in(pilot, app, "alice")
        await pilot.press(*"/away lunch", "enter")
        await wait_until(pilot, lambda: app.room.status.away == "lunch")
        app.check_auto_away(time.monotonic() + AUTO_AWAY_S)  # already away: nothing to do
        await pilot.press(*"still typing")
        await pilot.pause(0.2)
        assert app.room.status.away == "lunch"
        assert app.room.user_list.away_reason("alice") == "lunch"
