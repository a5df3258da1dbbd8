"""The message log in the running app: copying, code blocks, where-am-I markers, anchoring, long messages.

No server: the tests post the network messages as the worker would (as test_render.py does), with a
fixed clock and UTC, and wait for the log's batched render before looking.
"""

from __future__ import annotations

from datetime import UTC

from textual.geometry import Offset, Size
from textual.pilot import Pilot
from textual.selection import Selection

from labchat.protocol import events as ev
from labchat.protocol.messages import MAX_TEXT_BYTES
from labchat.protocol.text import split_text
from labchat.tui import messages as msg
from labchat.tui.app import LabchatApp, make_app
from labchat.tui.log_entry import Delivery, Entry, EntryKind
from labchat.tui.widgets.message_log import MessageLog

from .util import wait_until

#: 2026-12-01 14:00:00 UTC, a Tuesday.
NOW = 1_796_133_600.0
DAY = 86_400.0
CODE = "def plot(xs):\n    for x in xs:\n        print(x)\n    return len(xs)"


def offline_app(**kwargs: object) -> LabchatApp:
    """The app with no server, frozen at NOW."""
    return make_app("192.0.2.1", 8080, 0, tz=UTC, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def said(app: LabchatApp, seq: int, ts: float, user: str, text: str, **flags: bool) -> msg.CoreEvent:
    return msg.CoreEvent(app.attempt, ev.MessageReceived("lobby", seq, ts, user, text, **flags))


async def settle(pilot: Pilot[object], log: MessageLog, count: int) -> None:
    """Wait until the log holds `count` entries and has drawn them all."""
    await wait_until(pilot, lambda: len(log.entries) >= count and not log._unrendered)
    await pilot.pause()


async def logged_in(pilot: Pilot[object], app: LabchatApp) -> MessageLog:
    app.post_message(msg.CoreEvent(app.attempt, ev.LoggedIn("alice", "lobby", "labchat", False, False)))
    log = app.room.log_view
    await settle(pilot, log, 1)
    return log


def texts(log: MessageLog) -> list[str]:
    return [row.text.rstrip() for row in log._lines]


async def test_a_code_block_is_drawn_in_the_text_column_and_copied_by_a_click() -> None:
    app = offline_app()
    async with app.run_test(size=(100, 30)) as pilot:
        log = await logged_in(pilot, app)
        app.post_message(said(app, 1, NOW, "bob", f"try this:\n```python\n{CODE}\n```\nthen run it"))
        await settle(pilot, log, 2)
        rows = texts(log)
        start = next(i for i, row in enumerate(rows) if row.endswith("try this:"))
        column = rows[start].index("try this:")
        assert [row[column:] for row in rows[start + 1 : start + 5]] == CODE.splitlines()
        assert rows[start + 5][column:] == "then run it"
        assert all(log._lines[start + i].code == 0 for i in range(1, 5))
        # The code is highlighted: `def` has a colour of its own.
        def_segment = next(seg for seg in log._lines[start + 1].strip if seg.text.startswith("def"))
        assert def_segment.style is not None and def_segment.style.color is not None

        await pilot.click(MessageLog, offset=(column + 2, start + 2 - round(log.scroll_y)))
        await wait_until(pilot, lambda: app.clipboard == CODE)
        assert any(n.message == "Copied 4 lines" for n in app._notifications)


async def test_ctrl_y_copies_the_newest_code_block_on_screen() -> None:
    app = offline_app()
    async with app.run_test(size=(100, 30)) as pilot:
        log = await logged_in(pilot, app)
        app.post_message(said(app, 1, NOW, "bob", "```\nfirst\n```"))
        app.post_message(said(app, 2, NOW, "bob", "```sh\nmake test\nmake lint\n```"))
        await settle(pilot, log, 3)
        log.focus()
        await pilot.press("ctrl+y")
        await wait_until(pilot, lambda: app.clipboard == "make test\nmake lint")
        assert any(n.message == "Copied 2 lines" for n in app._notifications)


async def test_selected_text_is_copied_as_typed() -> None:
    app = offline_app()
    async with app.run_test(size=(60, 24)) as pilot:
        log = await logged_in(pilot, app)
        long = " ".join(f"word{i}" for i in range(20))
        app.post_message(said(app, 1, NOW, "bob", "alice wrote most of it"))
        app.post_message(said(app, 2, NOW, "carol", long + "\nsecond line"))
        await settle(pilot, log, 3)
        rows = texts(log)
        first = next(i for i, row in enumerate(rows) if "alice wrote" in row)
        column = rows[first].index("alice")
        # From the start of bob's words to the end of carol's message: the gutter of wrapped rows is
        # left out, the wrapped rows join up again, the message's line break stays.
        selection = Selection(Offset(column, first), Offset(len(log._lines[-1].text), len(rows) - 1))
        app.screen.selections = {log: selection}
        await pilot.pause()
        copied = app.screen.get_selected_text()
        assert copied is not None
        lines = copied.splitlines()
        assert lines[0] == "alice wrote most of it"
        assert lines[1].endswith(f"carol │ {long}")
        assert lines[2] == "second line"
        # Ctrl+C copies it, even while the input line has the focus.
        assert app.room.composer.input.has_focus
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: app.clipboard == copied)


async def test_selecting_with_the_mouse() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        log = await logged_in(pilot, app)
        app.post_message(said(app, 1, NOW, "bob", "select these words please"))
        await settle(pilot, log, 2)
        y = len(log._lines) - 1 - round(log.scroll_y)
        column = log._lines[-1].text.index("select")
        await pilot.mouse_down(MessageLog, offset=(column, y))
        await pilot.hover(MessageLog, offset=(column + len("select these"), y))
        await pilot.mouse_up(MessageLog, offset=(column + len("select these"), y))
        await pilot.pause()
        assert app.screen.get_selected_text() == "select these"
        assert app.clipboard != "select these words please"  # a drag is not a click on code


async def test_new_messages_bar_while_scrolled_up_and_end_jumps_back() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 20)) as pilot:
        log = await logged_in(pilot, app)
        for i in range(1, 41):
            app.post_message(said(app, i, NOW, "bob", f"line {i}"))
        await settle(pilot, log, 41)
        assert log.anchored
        await pilot.press("pageup")
        await wait_until(pilot, lambda: not log.anchored)
        top = log.scroll_y
        for i in range(41, 44):
            app.post_message(said(app, i, NOW, "bob", f"line {i}"))
        app.post_message(said(app, 44, NOW, "carol", "alice, look"))
        await settle(pilot, log, 45)
        assert log.scroll_y == top  # the reader's place is kept
        assert log.new_bar_text.strip() == "4 new, 1 mention ↓"
        bottom = log.scrollable_content_region.height - 1
        assert "4 new, 1 mention ↓" in "".join(seg.text for seg in log.render_line(bottom))
        log.focus()
        await pilot.press("end")
        await wait_until(pilot, lambda: log.anchored)
        assert log.scroll_y == log.max_scroll_y
        assert log.new_bar_text == ""


async def test_clicking_the_bar_jumps_to_the_newest() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 20)) as pilot:
        log = await logged_in(pilot, app)
        for i in range(1, 41):
            app.post_message(said(app, i, NOW, "bob", f"line {i}"))
        await settle(pilot, log, 41)
        await pilot.press("pageup")
        app.post_message(said(app, 41, NOW, "bob", "one more"))
        await settle(pilot, log, 42)
        assert log.new_bar_text.strip() == "1 new message ↓"
        await pilot.click(MessageLog, offset=(10, log.scrollable_content_region.height - 1))
        await wait_until(pilot, lambda: log.anchored and log.scroll_y == log.max_scroll_y)


async def test_the_log_stays_anchored_while_content_grows() -> None:
    """Defect 9: the follow state was recomputed on every scroll change, so a scroll to the end that
    ran after more rows had arrived (or before its refresh) dropped the view behind the newest line.
    Anchoring is now a state only the user's scrolling up clears, and the scroll is made at once."""
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        log = await logged_in(pilot, app)
        for i in range(1, 501):
            app.post_message(said(app, i, NOW, "bob", f"message {i} with enough words to wrap once here"))
        await settle(pilot, log, 501)
        assert log.anchored
        # Rows drawn before the view has moved, then a scroll request that was made for an older
        # end: the view goes down but not to the bottom. Neither is the user scrolling up.
        end = log.max_scroll_y
        log.virtual_size = Size(log.virtual_size.width, log.virtual_size.height + 100)
        assert log.anchored
        log.scroll_to(y=end + 50, animate=False, immediate=True, force=True)
        assert log.scroll_y < log.max_scroll_y
        assert log.anchored
        app.post_message(said(app, 600, NOW, "bob", "newest"))
        await settle(pilot, log, 502)
        # Checked without waiting for a refresh: the batch that drew it also scrolled.
        assert log.scroll_y == log.max_scroll_y


async def test_day_dividers_and_dated_times() -> None:
    app = offline_app()
    async with app.run_test(size=(100, 24)) as pilot:
        log = await logged_in(pilot, app)
        app.post_message(said(app, 1, NOW - 2 * DAY, "bob", "two days ago", history=True))
        app.post_message(said(app, 2, NOW - DAY + 60, "bob", "yesterday", history=True))
        app.post_message(said(app, 3, NOW - 60, "bob", "today", history=True))
        app.post_message(said(app, 4, NOW, "carol", "live now"))
        await settle(pilot, log, 5)
        kinds = [entry.kind for entry in log.entries]
        assert kinds.count(EntryKind.DAY) == 3
        assert EntryKind.LIVE in kinds
        rows = texts(log)
        assert any("Sunday 29 November" in row for row in rows)
        assert any("Monday 30 November" in row for row in rows)
        assert any("Tuesday 1 December" in row for row in rows)
        assert any(row.startswith("29 Nov 14:00        bob │ two days ago") for row in rows)
        assert any(row.startswith("       13:59        bob │ today") for row in rows)
        assert rows.index(next(r for r in rows if " live " in r)) == rows.index(
            next(r for r in rows if "live now" in r)
        ) - 1
        # Every message's text starts in the same column.
        columns = {row.index("│") for row in rows if "│" in row}
        assert len(columns) == 1


async def test_read_marker_goes_before_the_first_unread_message_and_moves() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        log = await logged_in(pilot, app)
        app.post_message(said(app, 1, NOW, "bob", "seen"))
        await settle(pilot, log, 2)
        log.set_read_marker()
        app.post_message(said(app, 2, NOW, "bob", "unread one"))
        app.post_message(said(app, 3, NOW, "bob", "unread two"))
        await settle(pilot, log, 5)
        assert log.plain_lines()[-3:] == ["— new —", "<bob> unread one", "<bob> unread two"]
        log.set_read_marker()
        app.post_message(said(app, 4, NOW, "bob", "later"))
        await settle(pilot, log, 6)
        assert log.plain_lines().count("— new —") == 1
        assert log.plain_lines()[-2:] == ["— new —", "<bob> later"]
        assert len(log._lines) == sum(entry.rows for entry in log.entries)
        log.clear_read_marker()
        await pilot.pause()
        assert "— new —" not in log.plain_lines()


async def test_the_read_marker_follows_the_terminal_focus() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        log = await logged_in(pilot, app)
        app.app_focus = False  # the user switched to another window
        app.post_message(said(app, 1, NOW, "bob", "while you were away"))
        await settle(pilot, log, 3)
        app.app_focus = True
        app.post_message(said(app, 2, NOW, "bob", "seen at once"))
        await settle(pilot, log, 4)
        assert log.plain_lines()[-3:] == ["— new —", "<bob> while you were away", "<bob> seen at once"]
        # Away and back with nothing new: the marker stays where it was.
        app.app_focus = False
        await pilot.pause()
        app.app_focus = True
        app.post_message(said(app, 3, NOW, "bob", "also seen"))
        await settle(pilot, log, 5)
        assert log.plain_lines()[-4:] == [
            "— new —", "<bob> while you were away", "<bob> seen at once", "<bob> also seen",
        ]  # fmt: skip


async def test_hovering_a_cut_name_shows_it_whole() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        log = await logged_in(pilot, app)
        app.post_message(said(app, 1, NOW, "a_twenty_char_name_x", "hello"))
        app.post_message(said(app, 2, NOW, "bob", "```\ncode\n```"))
        await settle(pilot, log, 3)
        first = next(i for i, row in enumerate(log._lines) if row.text.endswith("hello"))
        top = round(log.scroll_y)
        await pilot.hover(MessageLog, offset=(8, first - top))
        await wait_until(pilot, lambda: log.tooltip == "a_twenty_char_name_x")
        code = next(i for i, row in enumerate(log._lines) if row.code >= 0)
        await pilot.hover(MessageLog, offset=(22, code - top))
        await wait_until(pilot, lambda: log.tooltip == "Click to copy this code block")


async def test_long_names_are_cut_and_text_stays_aligned() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        log = await logged_in(pilot, app)
        app.post_message(said(app, 1, NOW, "a_twenty_char_name_x", "hello"))
        app.post_message(said(app, 2, NOW, "bob", "hi"))
        await settle(pilot, log, 3)
        rows = texts(log)
        assert rows[-2] == "14:00 a_twenty_… │ hello"
        assert rows[-1] == "14:00        bob │ hi"
        assert log.plain_lines()[-2] == "<a_twenty_char_name_x> hello"


async def test_a_message_queued_offline_keeps_the_time_it_was_typed() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        log = await logged_in(pilot, app)
        a = app.attempt
        app.post_message(msg.CoreEvent(a, ev.MessageQueued(1, "lobby", "typed offline")))
        await settle(pilot, log, 2)
        app.post_message(
            msg.CoreEvent(a, ev.MessageDelivered(1, "lobby", 9, NOW + 300, "typed offline"))
        )
        await wait_until(pilot, lambda: log.entries[-1].delivery is Delivery.DELIVERED)
        await pilot.pause()
        assert texts(log)[-1] == "14:00      alice │ typed offline  (sent 14:05)"


async def test_the_pieces_of_a_long_message_are_one_entry() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        log = await logged_in(pilot, app)
        long = " ".join(f"word{i:04d}" for i in range(250))
        pieces = split_text(long)
        assert len(pieces) > 2 and all(len(p.encode()) <= MAX_TEXT_BYTES for p in pieces)
        for i, piece in enumerate(pieces):
            app.post_message(said(app, 10 + i, NOW, "bob", piece))
        app.post_message(said(app, 10 + len(pieces), NOW, "bob", "a new message"))
        await settle(pilot, log, 3)
        assert log.plain_lines()[-2:] == [f"<bob> {long}", "<bob> a new message"]
        # Our own long message: one entry, delivered when its last piece is.
        a = app.attempt
        for i, piece in enumerate(pieces):
            app.post_message(msg.CoreEvent(a, ev.MessageQueued(100 + i, "lobby", piece)))
        await settle(pilot, log, 4)
        own = log.entries[-1]
        assert own.text == long
        for i, piece in enumerate(pieces):
            assert own.delivery is Delivery.PENDING
            app.post_message(
                msg.CoreEvent(a, ev.MessageDelivered(100 + i, "lobby", 50 + i, NOW, piece))
            )
            await pilot.pause()
        await wait_until(pilot, lambda: own.delivery is Delivery.DELIVERED)


async def test_a_failed_private_message_shows_its_error_on_a_row_of_its_own() -> None:
    app = offline_app()
    async with app.run_test(size=(100, 24)) as pilot:
        log = await logged_in(pilot, app)
        a = app.attempt
        app.post_message(msg.CoreEvent(a, ev.MessageQueued(1, "lobby", "free today?", to="erin")))
        failed = ev.MessageFailed(1, "erin is not online", "free today?", "erin")
        app.post_message(msg.CoreEvent(a, failed))
        await settle(pilot, log, 2)
        await wait_until(pilot, lambda: log.entries[-1].delivery is Delivery.FAILED)
        await pilot.pause()
        rows = texts(log)
        assert rows[-2].endswith("(private to erin) free today?")
        assert rows[-1].strip().startswith("│ ✗ not sent: erin is not online")


async def test_older_messages_go_above_and_the_view_stays_on_what_was_read() -> None:
    app = offline_app()
    async with app.run_test(size=(80, 24)) as pilot:
        log = await logged_in(pilot, app)
        for seq in range(51, 91):
            app.post_message(said(app, seq, NOW - 600 + seq, "bob", f"message {seq}"))
        await settle(pilot, log, 41)
        log.scroll_to(y=0, animate=False, immediate=True)
        await pilot.pause()
        log.scroll_to(y=3, animate=False, immediate=True)  # reading message 53 or so
        await pilot.pause()
        reading = log._entry_at(int(log.scroll_y))
        assert reading is not None
        older = [
            Entry(EntryKind.CHAT, NOW - 600 + seq, f"message {seq}", user="bob", history=True, seq=seq)
            for seq in range(1, 56)  # overlaps 51-55, which are shown already
        ]
        log.prepend(older)
        await pilot.pause()
        bodies = [e.text for e in log.entries if e.kind is EntryKind.CHAT]
        assert bodies == [f"message {seq}" for seq in range(1, 91)]
        assert log._entry_at(int(log.scroll_y)) is reading  # the same line stays in view
        assert not log.anchored
