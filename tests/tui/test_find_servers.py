""""Find servers" on the login screen (docs/protocol.md 19): a real server answers a probe sent to
127.0.0.1, the user picks it, and the login goes there."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
from textual.widgets import OptionList

from labchat.tui.app import make_app
from labchat.tui.screens.servers import ServersScreen

from ..helpers import start_server
from .util import log_in, login_ready, pinned, wait_until

pytestmark = pytest.mark.timeout(40)


async def test_find_servers_lists_the_server_and_picking_it_logs_in_there(tmp_path: Path) -> None:
    server = await start_server(tmp_path, server_name="Lab 3")
    server.relay.channel.discovery_name = "Lab 3"
    host, port = server.address
    try:
        known = pinned(server, tmp_path, tmp_path / "known")
        # Started with a name for the host that the probe's answer will replace by its address.
        app = make_app("localhost", port, 0, known_servers=known, tz=UTC, discover_host=host)
        async with app.run_test(size=(100, 30)) as pilot:
            await login_ready(pilot)
            login = app.login_screen
            assert login is not None
            login.query_one("#find").press()
            await wait_until(pilot, lambda: isinstance(app.screen, ServersScreen))
            options = app.screen.query_one(OptionList)
            assert options.option_count == 1
            assert "Lab 3" in str(options.get_option_at_index(0).prompt)
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.settings.server_host == host)
            assert login.server_label == f"{host}:{port}"
            await log_in(pilot, app, "alice")
            assert app.room.logged_in
            assert f"{host}:{port}" in str(app.room.status.render())  # the header says where, too
    finally:
        await server.stop()


async def test_find_servers_says_so_when_nobody_answers(tmp_path: Path) -> None:
    server = await start_server(tmp_path)  # discovery off: it stays silent
    host, port = server.address
    try:
        app = make_app(host, port, 0, tz=UTC, discover_host=host)
        async with app.run_test(size=(100, 30)) as pilot:
            await login_ready(pilot)
            login = app.login_screen
            assert login is not None
            login.query_one("#find").press()
            await wait_until(pilot, lambda: isinstance(app.screen, ServersScreen))
            assert "No labchat server answered" in str(app.screen.query_one("#servers-none").render())
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is login)
            assert app.settings.server_host == host
    finally:
        await server.stop()
