"""How entries look, without a server: colours, mentions, wrapping, wide characters, bounds, bursts."""

from __future__ import annotations

from datetime import UTC

from rich.console import Console
from rich.style import Style

from labchat.protocol import events as ev
from labchat.tui import messages as msg
from labchat.tui.app import LabchatApp, make_app
from labchat.tui.formatting import NICK_COLOURS, clock_time, format_rtt, mentions, nick_colour
from labchat.tui.log_entry import Delivery, Entry, EntryKind, render_entry
from labchat.tui.screens.room import _Unsent

from .util import wait_until

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def no_style(name: str) -> Style:
    return Style()


def row_text(strip: object) -> str:
    return "".join(segment.text for segment in strip)  # type: ignore[attr-defined]


def test_sender_colour_is_stable_and_case_insensitive() -> None:
    # Fixed values: a change here would give people different colours than other clients show.
    assert [nick_colour(n) for n in ("alice", "bob", "carol", "dave", "erin")] == [1, 0, 11, 3, 8]
    assert nick_colour("Alice") == nick_colour("ALICE") == nick_colour("alice")
    assert all(0 <= nick_colour(f"user{i}") < NICK_COLOURS for i in range(200))


def test_mentions_are_whole_names_in_any_case() -> None:
    assert mentions("hi alice!", "alice")
    assert mentions("@Alice: look", "alice")
    assert mentions("ALICE", "alice")
    assert not mentions("malice and alicent", "alice")
    assert not mentions("al-ice", "al")
    assert not mentions("anything", "")


def test_times_and_rtt() -> None:
    assert clock_time(T0, UTC) == "22:13"
    assert format_rtt(None) == ""
    assert format_rtt(0.0004) == "<1 ms"
    assert format_rtt(0.0123) == "12 ms"
    assert format_rtt(1.26) == "1.3 s"


def test_long_lines_wrap_with_a_hanging_indent() -> None:
    console = Console(width=200, color_system=None)
    entry = Entry(EntryKind.CHAT, T0, " ".join(f"word{i}" for i in range(30)), user="alice")
    rows = render_entry(entry, 50, console, no_style, "22:13")
    assert len(rows) > 2
    assert all(row.cell_length == 50 for row in rows)
    first, second = row_text(rows[0]), row_text(rows[1])
    assert first.startswith("22:13      alice │ word0")
    indent = first.index("word0")
    assert second[:indent].strip() == "│" and second[indent:].startswith("word")


def test_wide_characters_line_up() -> None:
    console = Console(width=200, color_system=None)
    entry = Entry(EntryKind.CHAT, T0, "你好👋" * 40, user="bob")
    rows = render_entry(entry, 41, console, no_style, "22:13")
    assert len(rows) > 3
    assert all(row.cell_length == 41 for row in rows)  # no row spills past the edge


def test_network_text_is_never_markup() -> None:
    console = Console(width=200, color_system=None)
    entry = Entry(EntryKind.CHAT, T0, "[bold]not bold[/bold] [link=x]y[/link]", user="mallory")
    rows = render_entry(entry, 80, console, no_style, "22:13")
    assert "[bold]not bold[/bold] [link=x]y[/link]" in row_text(rows[0])


def test_entry_plain_text() -> None:
    failed = Entry(
        EntryKind.PRIVATE_OUT, T0, "hi", user="bob", own=True,
        delivery=Delivery.FAILED, note="bob is not online",
    )  # fmt: skip
    assert failed.plain == "[private to bob] hi [not sent: bob is not online]"
    assert Entry(EntryKind.ACTION, T0, "waves", user="al").plain == "* al waves"


def test_resend_uses_the_command_that_made_the_message() -> None:
    assert _Unsent("hi", False, None).as_line() == "hi"
    assert _Unsent("/etc/hosts is odd", False, None).as_line() == "//etc/hosts is odd"
    assert _Unsent("waves", True, None).as_line() == "/me waves"
    assert _Unsent("psst", False, "bob").as_line() == "/msg bob psst"


def offline_app(**kwargs: object) -> LabchatApp:
    """An app with no server: tests post the network messages themselves."""
    return make_app("192.0.2.1", 8080, 0, tz=UTC, clock=lambda: T0, **kwargs)  # type: ignore[arg-type]


def chat(app: LabchatApp, i: int, user: str = "bob", text: str | None = None) -> msg.CoreEvent:
    body = text if text is not None else f"message {i} with enough words to wrap at least once here"
    return msg.CoreEvent(app.attempt, ev.MessageReceived("lobby", i, T0 + i, user, body))


async def test_a_burst_does_not_freeze_typing() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(msg.CoreEvent(app.attempt, ev.LoggedIn("alice", "lobby", "labchat", False, False)))
        await pilot.pause()
        for i in range(1, 1001):
            app.post_message(chat(app, i))
        await pilot.press("h", "i")
        assert app.room.composer.input.value == "hi"
        log = app.room.log_view
        while len(log.entries) < 1001 or log._unrendered:
            await pilot.pause(0.01)
        # How fast it catches up is measured by `labchat-bench --mode tui`, not asserted here.
        # The view followed the newest message.
        assert log.scroll_y == log.max_scroll_y > 0


async def test_the_log_is_bounded() -> None:
    app = offline_app(max_entries=50)
    async with app.run_test(size=(80, 24)) as pilot:
        app.post_message(msg.CoreEvent(app.attempt, ev.LoggedIn("alice", "lobby", "labchat", False, False)))
        for i in range(1, 201):
            app.post_message(chat(app, i))
        log = app.room.log_view
        while log._unrendered or len(log.entries) < 50:
            await pilot.pause(0.01)
        assert len(log.entries) == 50
        assert log.entries[0].text.startswith("message 151 ")
        assert len(log._rows) == sum(entry.rows for entry in log.entries)
        assert log.virtual_size.height == len(log._rows)


async def test_resizing_rewraps() -> None:
    app = offline_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.post_message(msg.CoreEvent(app.attempt, ev.LoggedIn("alice", "lobby", "labchat", False, False)))
        app.post_message(chat(app, 1, text="x " * 60))
        log = app.room.log_view
        await wait_until(pilot, lambda: bool(log.entries) and log.entries[-1].rows > 0)
        wide_rows = log.entries[-1].rows
        await pilot.resize_terminal(60, 20)
        await wait_until(pilot, lambda: log.entries[-1].rows > wide_rows)  # re-wrapped to the new width
        await wait_until(
            pilot, lambda: all(row.cell_length == log.scrollable_content_region.width for row in log._rows)
        )


async def test_a_refusal_reason_is_shown_as_text_not_markup() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.post_message(msg.CoreEvent(app.attempt, ev.LoginRefused(1, "no [bold]entry[/ for [red]you")))
        await pilot.pause()
        login = app.login_screen
        assert login is not None
        assert "no [bold]entry[/ for [red]you" in str(login.query_one("#login-status").render())
