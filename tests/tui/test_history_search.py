"""Finding things in the app: older messages fetched by scrolling up, and /search on the server."""

from __future__ import annotations

from pathlib import Path

from labchat.tui.log_entry import EntryKind

from ..helpers import connect, start_server
from .util import app_for, log_in, log_lines, wait_until


async def test_scrolling_to_the_top_fetches_older_messages_page_by_page(tmp_path: Path) -> None:
    server = await start_server(tmp_path, history_on_join=10)
    try:
        bob = await connect(server, "bob", tmp_path=tmp_path)
        for i in range(130):
            bob.client.submit(f"note {i:03d}")
        await bob.client.wait_drained()
        app = app_for(server, tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await log_in(pilot, app, "alice")
            log = app.room.log_view

            def notes() -> list[str]:
                return [e.text for e in log.entries if e.kind is EntryKind.CHAT]

            await wait_until(pilot, lambda: len(notes()) == 10 and not log._unrendered)
            pages = 0
            while len(notes()) < 130 and pages < 5:  # 120 older ones, in pages of up to 50
                before = len(notes())
                while log.scroll_y > 0:  # Page Up to the top; once more there asks for the next page
                    await pilot.press("pageup")
                await pilot.press("pageup")
                await wait_until(pilot, lambda: len(notes()) > before, timeout=10)  # noqa: B023
                pages += 1
            assert 2 <= pages <= 3
            assert notes() == [f"note {i:03d}" for i in range(130)]
            assert any("beginning of this room's history" in line for line in log_lines(app))
        await bob.close()
    finally:
        await server.stop(grace_s=0)


async def test_search_shows_the_hits_with_their_time(tmp_path: Path) -> None:
    server = await start_server(tmp_path)
    try:
        bob = await connect(server, "bob", tmp_path=tmp_path)
        for text in ("the printer on floor 2 jammed", "lunch at noon?", "printer fixed now"):
            bob.client.submit(text)
        await bob.client.wait_drained()
        app = app_for(server, tmp_path)
        async with app.run_test(size=(100, 24)) as pilot:
            await log_in(pilot, app, "alice")
            await pilot.press(*"/search printer", "enter")
            said = "2 messages with “printer”"
            await wait_until(pilot, lambda: any(said in line for line in log_lines(app)))
            lines = log_lines(app)
            start = next(i for i, line in enumerate(lines) if "2 messages with" in line)
            assert "<bob>" in lines[start + 1] and "fixed" in lines[start + 1]  # newest first
            assert "jammed" in lines[start + 2]
            await pilot.press(*"/search nothing-like-this", "enter")
            await wait_until(pilot, lambda: any("No messages with" in line for line in log_lines(app)))
        await bob.close()
    finally:
        await server.stop(grace_s=0)
