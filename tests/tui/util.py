"""Helpers for the Textual app tests: build the app the way the CLI does, against a real local server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from labchat.client.core import Submitted
from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol.client import ClientConfig
from labchat.server.keys import load_or_create_server_key, public_key_of
from labchat.server.transport import RelayServer
from labchat.tui import messages as msg
from labchat.tui.app import LabchatApp, make_app

#: Every wait in these tests is bounded by this (seconds): an app's start, a handshake and a login
#: share one event loop with the server, and a loaded machine stretches them; it costs only on failure.
WAIT_S = 15.0


def pinned(server: RelayServer, server_dir: Path, path: Path) -> KnownServers:
    """A known-servers file that already trusts `server` (its key lives in `server_dir`)."""
    known = KnownServers(path)
    host, port = server.address
    known.remember(host, port, public_key_of(load_or_create_server_key(server_dir / "server.key")))
    return known


def app_for(
    server: RelayServer,
    tmp_path: Path,
    *,
    trusted: bool = True,
    config: ClientConfig | None = None,
    **kwargs: object,
) -> LabchatApp:
    """The app from the CLI's factory, pointed at `server`, in UTC with times fixed by the server."""
    host, port = server.address
    known_path = tmp_path / f"known-app-{len(list(tmp_path.glob('known-app-*')))}"
    known = pinned(server, tmp_path, known_path) if trusted else KnownServers(known_path)
    return make_app(
        host,
        port,
        0,
        known_servers=known,
        config=config,
        tz=UTC,
        **kwargs,  # type: ignore[arg-type]
    )


async def wait_until(pilot: Pilot[object], predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Let the app run until `predicate()` holds (the network answers in its own time)."""

    async def poll() -> None:
        while not predicate():
            await pilot.pause(0.01)

    await asyncio.wait_for(poll(), timeout)


async def log_in(pilot: Pilot[object], app: LabchatApp, user: str, password: str = "secret") -> None:
    """Type a name and a password on the login screen and wait for the room."""
    await fill_login(pilot, user, password)

    def offered() -> bool:
        login = app.login_screen
        return login is not None and login.query_one("#create").display

    # A name the server does not know yet: the screen asks before creating it; say yes.
    await wait_until(pilot, lambda: offered() or (app.room.logged_in and app.login_screen is None))
    if offered():
        await pilot.press("enter")
    await wait_until(pilot, lambda: app.room.logged_in and app.login_screen is None)
    await room_shown(pilot, app)


async def room_shown(pilot: Pilot[object], app: LabchatApp) -> None:
    """The room screen is the one shown and is composed: it mounts its widgets a moment after the
    login screen goes, and a query in between finds nothing (seen on a loaded machine)."""
    from labchat.tui.widgets.status_bar import StatusBar

    await wait_until(pilot, lambda: app.screen is app.room and bool(app.room.query(StatusBar)))


async def login_ready(pilot: Pilot[object]) -> None:
    """The login screen is shown, composed and has put the focus in its form: it is pushed as the
    app starts, and on a loaded machine that can take more than a pause."""
    await wait_until(pilot, lambda: bool(pilot.app.screen.query("#user")) and pilot.app.focused is not None)


async def fill_login(pilot: Pilot[object], user: str, password: str) -> None:
    """Fill the form and press Enter in the password field (typing it key by key is one test's job:
    Pilot spends tens of milliseconds per key)."""
    await login_ready(pilot)
    screen = pilot.app.screen
    screen.query_one("#user", Input).value = user
    field = screen.query_one("#password", Input)
    field.value = password
    field.focus()
    await pilot.press("enter")


def log_lines(app: LabchatApp) -> list[str]:
    """What the room's log holds, as plain text."""
    return app.room.log_view.plain_lines()


def recording_app(submitted: list[str]) -> LabchatApp:
    """An app whose room is shown (a fake login) and whose sends are recorded instead of sent."""
    app = make_app("127.0.0.1", 9, 0)

    def record(line: str) -> Submitted:
        submitted.append(line)
        return Submitted()

    app.submit = record  # type: ignore[method-assign]
    return app


def burst(app: LabchatApp, text: str) -> None:
    """Post every key of `text` at once, as a terminal does: "\\n" is the Enter key."""
    for ch in text:
        if ch == "\n":
            app.post_message(events.Key("enter", "\r"))
        elif ch == " ":
            app.post_message(events.Key("space", " "))
        else:
            app.post_message(events.Key(ch, ch))


async def enter_room(app: LabchatApp, pilot: Pilot[object]) -> None:
    """A fake login: the room screen shows, its composer focused."""
    app.post_message(msg.CoreEvent(app.attempt, ev.LoggedIn("alice", "lobby", "labchat", False, False)))
    await wait_until(pilot, lambda: app.login_screen is None)
    await wait_until(pilot, lambda: app.room.composer.input.has_focus)
