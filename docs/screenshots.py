"""Regenerate the screenshots of docs/user-guide.md: the app drives itself against a real local server.

    .venv/bin/python docs/screenshots.py            # writes docs/images/*.svg

A relay runs on 127.0.0.1 (a free port, a throwaway database and key), a few line-mode clients play
the other people in the room, and the Textual app is driven headless with Textual's Pilot; each
picture is the app's own `save_screenshot`. Times are shown in UTC so the pictures look the same
wherever they are made (the clock on them is the real one, so they change a little each run).
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widgets import Input

from labchat.client.core import ChatClient
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol.channel import ServerChannel
from labchat.protocol.client import ClientConfig
from labchat.server.keys import load_or_create_server_key
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store
from labchat.server.transport import RelayServer, serve
from labchat.tui.app import LabchatApp, make_app
from labchat.tui.screens.trust import TrustScreen

IMAGES = Path(__file__).resolve().parent / "images"
SIZE = (90, 28)
#: Every wait is bounded by this (seconds).
WAIT_S = 10.0
stopped = False


async def until(pilot: Pilot[object], predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not predicate():
            await pilot.pause(0.02)

    await asyncio.wait_for(poll(), WAIT_S)


async def settle(pilot: Pilot[object]) -> None:
    """Let batched log writes and repaints finish before a picture is taken."""
    app = pilot.app
    assert isinstance(app, LabchatApp)
    await pilot.pause(0.1)
    await until(pilot, lambda: not app.room.log_view._unrendered)
    await pilot.pause(0.05)


async def person(server: RelayServer, name: str, work: Path) -> ChatClient:
    """Another person in the room, on a line-mode client."""
    host, port = server.address
    client = ChatClient(host, port, name, f"{name}-pw", known_servers=KnownServers(work / name))
    await client.start()
    while not isinstance(await asyncio.wait_for(client.next_event(), WAIT_S), ev.LoggedIn):
        pass
    return client


def shot(app: LabchatApp, name: str) -> None:
    path = Path(app.save_screenshot(f"{name}.svg", str(IMAGES)))
    path.write_text(tidy_svg(path.read_text(encoding="utf-8")), encoding="utf-8")
    print("wrote", path.relative_to(IMAGES.parent.parent), file=sys.__stderr__)


_TEXT_RE = re.compile(
    r'(<text [^>]*?x=")([0-9.]+)("[^>]*?textLength=")([0-9.]+)("[^>]*>)((?:&#160;)+)([^<]+)</text>'
)


def tidy_svg(svg: str) -> str:
    """Move each text run's leading spaces into its x position.

    Textual writes a run that starts with spaces as `&#160;&#160;text` at the run's first cell. Some
    SVG renderers (librsvg, and so ImageMagick and many previewers) drop leading no-break spaces and
    draw the text a cell or two early: "alice wrote" looked like "alicewrote". Starting the run where
    its first visible character is draws the same picture in every renderer.
    """

    def move(match: re.Match[str]) -> str:
        head, x, mid, length, tail, spaces, text = match.groups()
        cells = cell_len(html.unescape(spaces + text))
        if cells == 0:
            return match.group(0)
        width = float(length) / cells
        shift = width * spaces.count("&#160;")
        return f"{head}{float(x) + shift:.1f}{mid}{float(length) - shift:.1f}{tail}{text}</text>"

    return _TEXT_RE.sub(move, svg)


async def fill_login(pilot: Pilot[object], user: str, password: str) -> None:
    screen = pilot.app.screen
    screen.query_one("#user", Input).value = user
    field = screen.query_one("#password", Input)
    field.value = password
    field.focus()
    await pilot.pause()


def offered(app: LabchatApp) -> bool:
    """The login screen asks whether to create a new account."""
    login = app.login_screen
    return login is not None and bool(login.query_one("#create").display)


async def settle_login(pilot: Pilot[object]) -> None:
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause(0.1)


async def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        key = load_or_create_server_key(work / "server.key")
        relay = Relay(Store(work / "server.db"), ServerChannel(key), RelayConfig(server_name="physics-lab"))
        server = await serve("127.0.0.1", 0, relay)
        host, port = server.address
        try:
            bob = await person(server, "bob", work)
            carol = await person(server, "carol", work)
            bob.submit("morning! is the printer on the 2nd floor working?")
            carol.submit("it jammed again 🙃 use the one by the stairs")
            await bob.wait_drained()
            await carol.wait_drained()

            known = KnownServers(work / "known_servers")
            app = make_app(host, port, 0, known_servers=known, tz=UTC, config=ClientConfig())
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause()
                shot(app, "login")

                await fill_login(pilot, "alice", "wrong")
                await pilot.press("enter")
                await until(pilot, lambda: isinstance(app.screen, TrustScreen))
                shot(app, "trust")
                await pilot.press("enter")
                await until(pilot, lambda: offered(app))
                await settle_login(pilot)
                shot(app, "create")
                await pilot.press("enter")
                await until(pilot, lambda: app.room.logged_in)

                # Alice registered with "wrong"; log out and show the wrong-password error.
            await app_again(server, known, bob, carol)
        finally:
            if not stopped:
                await server.stop(grace_s=0)


async def app_again(server: RelayServer, known: KnownServers, bob: ChatClient, carol: ChatClient) -> None:
    global stopped
    host, port = server.address
    app = make_app(host, port, 0, known_servers=known, tz=UTC)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await fill_login(pilot, "alice", "typo")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                app.login_screen is not None
                and app.login_screen.query_one("#login-status").has_class("-error")
            ),
        )
        shot(app, "login-error")

        await fill_login(pilot, "alice", "wrong")
        await pilot.press("enter")
        await until(pilot, lambda: app.room.logged_in)
        bob.submit("alice wrote most of the plot script, ask her")
        carol.submit("/me waves")
        await bob.wait_drained()
        await carol.wait_drained()
        room = app.room
        room.composer.input.cursor_blink = False
        for line in ("sure, send it over [after lunch]", "/msg carol coffee at 3?", "/who"):
            room.composer.focus_input(line)
            await pilot.press("enter")
        code = "```python\ndef scale(ys):\n    return [y * 2 for y in ys]\n```"
        bob.submit(f"the plot is off by 2, here:\n{code}")
        await bob.wait_drained()
        bob.submit("/msg alice thanks!")
        await until(pilot, lambda: "[private] <bob> thanks!" in room.log_view.plain_lines())
        room.composer.focus_input("/msg dave are you in today?")
        await pilot.press("enter")
        await until(pilot, lambda: "not sent" in room.log_view.plain_lines()[-1])
        await settle(pilot)
        shot(app, "room")

        room.composer.focus_input("thanks @")
        await pilot.press("tab", "tab")
        await settle(pilot)
        shot(app, "completion")
        room.composer.focus_input("")

        carol.submit("/away lunch")
        await until(pilot, lambda: room.user_list.away_reason("carol") == "lunch")
        await settle(pilot)
        shot(app, "away")

        room.composer.focus_input("/search printer")
        await pilot.press("enter")
        await until(pilot, lambda: any("with “printer”" in line for line in room.log_view.plain_lines()))
        await settle(pilot)
        shot(app, "search")

        room.composer.focus_input("/help")
        await pilot.press("enter")
        await settle(pilot)
        shot(app, "help")

        await server.stop(grace_s=0)  # the server goes away: the app keeps trying by itself
        stopped = True
        await until(pilot, lambda: "reconnecting" in str(room.status.render()))
        await settle(pilot)
        shot(app, "reconnecting")
        await pilot.press("ctrl+q")


if __name__ == "__main__":
    asyncio.run(main())
