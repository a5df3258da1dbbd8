"""The composer owns Enter and paste: every line typed or pasted is submitted exactly once, in order.

Keys are posted to the app in bursts, as a terminal delivers them when someone types fast or pastes
without bracketed paste (each newline an Enter key); bracketed paste arrives as one `Paste` event.
Textual 8.2.8's `Input` merged and repeated lines in exactly these cases (see composer.py).
"""

from __future__ import annotations

from pathlib import Path

from textual import events

from labchat.protocol import events as ev
from labchat.server.transport import RelayServer
from labchat.tui.widgets.completion import Completer

from ..helpers import connect
from .util import app_for, burst, enter_room, log_in, recording_app, wait_until


async def test_keys_arriving_together_are_separate_lines_once_each() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    async with app.run_test(size=(80, 24)) as pilot:
        await enter_room(app, pilot)
        burst(app, "fast one\nfast two\nfast three\n")
        await wait_until(pilot, lambda: len(sent) >= 3)
        await pilot.pause()
        assert sent == ["fast one", "fast two", "fast three"]
        assert app.room.composer.text == ""


async def test_unbracketed_paste_of_200_lines_is_200_messages_in_order() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    lines = [f"line {i}" for i in range(200)]
    async with app.run_test(size=(80, 24)) as pilot:
        await enter_room(app, pilot)
        burst(app, "\n".join(lines) + "\n")
        await wait_until(pilot, lambda: len(sent) >= 200, timeout=20)
        await pilot.pause()
        assert sent == lines


async def test_bracketed_paste_of_several_lines_is_one_draft_sent_on_enter() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    async with app.run_test(size=(80, 24)) as pilot:
        await enter_room(app, pilot)
        app.post_message(events.Paste("first\r\nsecond\rthird"))
        await wait_until(pilot, lambda: app.room.composer.text == "first\nsecond\nthird")
        assert sent == []  # seen before it is sent
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(sent))
        assert sent == ["first\nsecond\nthird"]


async def test_newline_keys_add_a_line_and_enter_sends() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    async with app.run_test(size=(80, 24)) as pilot:
        await enter_room(app, pilot)
        await pilot.press("a", "shift+enter", "b", "ctrl+j", "c", "alt+enter", "d")
        assert app.room.composer.text == "a\nb\nc\nd"
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(sent))
        assert sent == ["a\nb\nc\nd"]


async def test_a_line_of_spaces_is_cleared_not_sent() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    async with app.run_test(size=(80, 24)) as pilot:
        await enter_room(app, pilot)
        await pilot.press("space", "space", "space", "enter", *"quit", "enter")
        await wait_until(pilot, lambda: bool(sent))
        assert sent == ["quit"]


async def test_keys_typed_outside_the_composer_reach_it() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    async with app.run_test(size=(80, 24)) as pilot:
        await enter_room(app, pilot)
        await pilot.press(*"hel")
        app.room.log_view.focus()
        await pilot.pause()
        await pilot.press(*"lo")
        assert app.room.composer.text == "hello"
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(sent))
        assert sent == ["hello"]


async def test_clicking_a_name_inserts_it_without_losing_the_draft() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    async with app.run_test(size=(100, 24)) as pilot:
        await enter_room(app, pilot)
        room = app.room
        room.user_list.set_users(["alice", "bob"])
        await pilot.press(*"thanks ")
        room.post_message(room.user_list.Selected("bob"))
        await wait_until(pilot, lambda: room.composer.text == "thanks bob ")
        await pilot.press(*"!")
        assert room.composer.text == "thanks bob !"


async def test_history_walks_on_the_edges_only() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    async with app.run_test(size=(80, 24)) as pilot:
        await enter_room(app, pilot)
        composer = app.room.composer
        await pilot.press(*"one", "enter", *"two", "enter", *"x", "shift+enter", *"y")
        await pilot.press("up")  # inside a two-line draft: the cursor moves up, no history
        assert composer.text == "x\ny"
        await pilot.press("up")  # on the first line: history
        assert composer.text == "two"
        await pilot.press("up", "down", "down")
        assert composer.text == "x\ny"


async def test_tab_completes_names_and_commands_cycling() -> None:
    sent: list[str] = []
    app = recording_app(sent)
    async with app.run_test(size=(100, 24)) as pilot:
        await enter_room(app, pilot)
        room = app.room
        room.user_list.set_users(["alice", "albert", "bob"])
        composer = room.composer
        await pilot.press("a", "l", "tab")
        assert composer.text == "albert: "
        await pilot.press("tab")
        assert composer.text == "alice: "
        await pilot.press(*"hi @b", "tab")
        assert composer.text == "alice: hi @bob "
        composer.input.value = ""
        await pilot.press("/", "w", "h", "tab")
        assert composer.text == "/who "


def test_completer_logic() -> None:
    c = Completer(lambda: ["Alice", "alan", "bob"], ("who", "whois", "msg"))
    first = c.complete("al", 2)
    assert first is not None and first.text == "alan: "
    again = c.complete(first.text, first.cursor)
    assert again is not None and again.text == "Alice: "
    c.reset()
    mid = c.complete("see bo later", 6)
    assert mid is not None and (mid.text, mid.cursor) == ("see bob  later", 8)
    c.reset()
    assert c.complete("zz", 2) is None
    assert c.complete("", 0) is None
    cmd = c.complete("/w", 2)
    assert cmd is not None and cmd.text == "/who "
    c.reset()
    assert c.complete("x /w", 4) is None  # a slash inside a line is not a command



async def test_200_lines_typed_at_once_reach_another_client_exactly_once_in_order(
    server: RelayServer, tmp_path: Path
) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    lines = [f"burst {i:03d}" for i in range(200)]
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        # Typed as fast as a terminal delivers an unbracketed paste: every newline an Enter key.
        burst(app, "\n".join(lines) + "\n")

        def received() -> list[str]:
            return [e.text for e in bob.of(ev.MessageReceived) if e.user == "alice"]

        await wait_until(pilot, lambda: len(received()) >= 200, timeout=30)
        await pilot.pause(0.2)
        assert received() == lines
    await bob.close()


async def test_a_pasted_block_of_lines_arrives_as_one_message_with_its_line_breaks(
    server: RelayServer, tmp_path: Path
) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    trace = "\n".join(f"  File \"lab3.py\", line {i}, in step{i}" for i in range(60))  # ~2.5 KB
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        app.post_message(events.Paste(trace.replace("\n", "\r\n")))
        await wait_until(pilot, lambda: app.room.composer.text == trace)
        await pilot.press("enter")
        got = await bob.wait_for(ev.MessageReceived, lambda e: e.user == "alice", timeout=10)
        assert got.text == trace
        await pilot.pause(0.2)
        assert len([e for e in bob.of(ev.MessageReceived) if e.user == "alice"]) == 1
    await bob.close()
