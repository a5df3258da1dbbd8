"""The login screen against a real server: success, every failure inline, correcting and retrying."""

from __future__ import annotations

import socket
from pathlib import Path

from textual import events
from textual.widgets import Input, Static

from labchat.client.known_servers import KnownServers
from labchat.protocol import events as ev
from labchat.protocol.client import ClientConfig
from labchat.protocol.errors import ErrorCode
from labchat.protocol.messages import NAME_RULE
from labchat.server.keys import load_or_create_server_key, public_key_of
from labchat.server.transport import RelayServer
from labchat.tui.app import _refusal_text, make_app
from labchat.tui.screens.login import LoginScreen
from labchat.tui.screens.trust import TrustScreen

from ..helpers import connect, start_server
from .util import app_for, fill_login, log_in, log_lines, login_ready, room_shown, wait_until


async def register(server: RelayServer, tmp_path: Path, user: str, password: str = "secret") -> None:
    """Create the account beforehand, as an earlier session would have."""
    await (await connect(server, user, password, tmp_path=tmp_path)).close()


def status_text(app: object) -> str:
    login = app.login_screen  # type: ignore[attr-defined]
    assert isinstance(login, LoginScreen)
    return str(login.query_one("#login-status", Static).render())


async def wait_for_error(pilot, app) -> str:  # type: ignore[no-untyped-def]
    await wait_until(
        pilot,
        lambda: (
            app.login_screen is not None and app.login_screen.query_one("#login-status").has_class("-error")
        ),
    )
    return status_text(app)


async def test_login_success_shows_the_room(server: RelayServer, tmp_path: Path) -> None:
    await register(server, tmp_path, "alice")
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await login_ready(pilot)
        assert isinstance(app.screen, LoginScreen)
        assert app.focused is not None and app.focused.id == "user"
        await pilot.press(*"alice")
        await pilot.press("tab")
        assert app.focused is not None and app.focused.id == "password"
        password = app.screen.query_one("#password", Input)
        assert password.password  # masked
        await pilot.press(*"secret", "enter")
        await wait_until(pilot, lambda: app.room.logged_in)
        await wait_until(pilot, lambda: app.login_screen is None)
        await room_shown(pilot, app)
        assert app.room.status.user == "alice"
        assert app.room.user_list.users == ["alice"]
        assert any("Logged in as alice" in line for line in log_lines(app))
        assert app.focused is not None and app.focused.id == "composer-input"


async def test_auto_typed_login_in_one_burst(server: RelayServer, tmp_path: Path) -> None:
    """A password manager types "name<Tab>password<Enter>" faster than the app reads it: every key
    must still land where it would if typed by hand."""
    await register(server, tmp_path, "alice")
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await login_ready(pilot)
        burst = [*"alice", "tab", *"secret", "enter"]
        for key in burst:  # posted at once, as the terminal driver posts a burst of input
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        await wait_until(pilot, lambda: app.login_screen is None)
        assert app.room.status.user == "alice"


async def test_user_option_fills_the_name(server: RelayServer, tmp_path: Path) -> None:
    await register(server, tmp_path, "bob")
    app = app_for(server, tmp_path, user="bob")
    async with app.run_test(size=(80, 24)) as pilot:
        await login_ready(pilot)
        assert app.screen.query_one("#user", Input).value == "bob"
        assert app.focused is not None and app.focused.id == "password"
        await pilot.press(*"secret", "enter")
        await wait_until(pilot, lambda: app.room.logged_in)


async def test_a_browser_tab_only_logs_in(server: RelayServer, tmp_path: Path) -> None:
    """In labchat-web the server is fixed and the socket is on the web server's machine: no port row,
    no "Find servers", neither in the Tab order."""
    await register(server, tmp_path, "alice")
    app = app_for(server, tmp_path, fixed_server=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await login_ready(pilot)
        assert not app.screen.query_one("#login-port-row").display
        assert not app.screen.query_one("#find").display
        await pilot.press(*"alice", "tab", *"secret", "tab")
        assert app.focused is not None and app.focused.id == "login"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.room.logged_in)


async def test_wrong_password_then_retry(server: RelayServer, tmp_path: Path) -> None:
    owner = await connect(server, "alice", "right", tmp_path=tmp_path)
    await owner.close()
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_login(pilot, "alice", "wrong")
        text = await wait_for_error(pilot, app)
        assert "Wrong password" in text
        # The form is unlocked, the password cleared and focused: type it again.
        assert app.focused is not None and app.focused.id == "password"
        assert app.screen.query_one("#password", Input).value == ""
        await pilot.press(*"right", "enter")
        await wait_until(pilot, lambda: app.room.logged_in)


async def test_invalid_name_says_the_rule(server: RelayServer, tmp_path: Path) -> None:
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_login(pilot, "9lives", "secret")
        text = await wait_for_error(pilot, app)
        assert "invalid" in text.lower() and NAME_RULE in " ".join(text.split())
        assert app.focused is not None and app.focused.id == "user"
        await log_in(pilot, app, "lives9")


async def test_registration_closed(tmp_path: Path) -> None:
    server = await start_server(tmp_path, registration_open=False)
    try:
        app = app_for(server, tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await fill_login(pilot, "newcomer", "secret")
            text = await wait_for_error(pilot, app)
            assert "does not register new" in " ".join(text.split())
    finally:
        await server.stop(grace_s=0)


async def test_server_not_answering(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        app = make_app(
            "127.0.0.1", port, 0,
            known_servers=KnownServers(tmp_path / "known"),
            config=ClientConfig(connect_timeout_s=3.0),  # long enough to see "Connecting" under load
        )  # fmt: skip
        async with app.run_test(size=(80, 24)) as pilot:
            await fill_login(pilot, "alice", "secret")
            await wait_until(pilot, lambda: "Connecting" in status_text(app))
            text = await wait_for_error(pilot, app)
            assert "not answering" in text
            # Still on the login screen, ready for another try.
            assert not app.screen.query_one("#user", Input).disabled


async def test_client_port_taken_then_fixed(server: RelayServer, tmp_path: Path) -> None:
    await register(server, tmp_path, "alice")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy_port = taken.getsockname()[1]
        app = app_for(server, tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await login_ready(pilot)
            app.screen.query_one("#port", Input).value = str(busy_port)
            await fill_login(pilot, "alice", "secret")
            text = await wait_for_error(pilot, app)
            assert f"client port {busy_port} is already in use" in text
            assert app.focused is not None and app.focused.id == "port"
            # Correct the port in the form and retry, without restarting.
            app.screen.query_one("#port", Input).value = "0"
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.room.logged_in)


async def test_first_contact_asks_to_trust(server: RelayServer, tmp_path: Path) -> None:
    await register(server, tmp_path, "alice")
    app = app_for(server, tmp_path, trusted=False)
    known = app.settings.known_servers
    assert known is not None
    host, port = server.address
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_login(pilot, "alice", "secret")
        await wait_until(pilot, lambda: isinstance(app.screen, TrustScreen))
        prompt = app.screen
        assert isinstance(prompt, TrustScreen)
        assert prompt.fingerprint.startswith("SHA256:")
        assert known.lookup(host, port) is None  # nothing pinned before the user says so
        await pilot.press("enter")  # Enter trusts: the default
        await wait_until(pilot, lambda: app.room.logged_in)
        assert known.lookup(host, port) is not None


async def test_first_contact_escape_cancels(server: RelayServer, tmp_path: Path) -> None:
    app = app_for(server, tmp_path, trusted=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_login(pilot, "alice", "secret")
        await wait_until(pilot, lambda: isinstance(app.screen, TrustScreen))
        await pilot.press("escape")
        text = await wait_for_error(pilot, app)
        assert "did not trust" in text
        host, port = server.address
        assert app.settings.known_servers is not None
        assert app.settings.known_servers.lookup(host, port) is None


async def test_changed_key_shows_both_fingerprints(server: RelayServer, tmp_path: Path) -> None:
    app = app_for(server, tmp_path, trusted=False)
    host, port = server.address
    assert app.settings.known_servers is not None
    app.settings.known_servers.remember(host, port, bytes(32))  # some other key
    real = public_key_of(load_or_create_server_key(tmp_path / "server.key"))
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_login(pilot, "alice", "secret")
        text = " ".join((await wait_for_error(pilot, app)).split())
        assert "CHANGED" in text
        assert "--accept-new-server-key" in text
        from labchat.protocol.channel import fingerprint

        assert fingerprint(bytes(32)) in text and fingerprint(real) in text


async def test_escape_gives_up_connecting(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        app = make_app(
            "127.0.0.1", silent.getsockname()[1], 0,
            known_servers=KnownServers(tmp_path / "known"),
            config=ClientConfig(connect_timeout_s=30),
        )  # fmt: skip
        async with app.run_test(size=(80, 24)) as pilot:
            await fill_login(pilot, "alice", "secret")
            await wait_until(pilot, lambda: "Connecting" in status_text(app))
            await pilot.press("escape")
            await wait_until(pilot, lambda: "Cancelled" in status_text(app))
            assert app.client is None
            assert not app.screen.query_one("#user", Input).disabled
            assert app.focused is not None and app.focused.id == "password"


async def asked_to_create(pilot, app, user: str, password: str) -> None:  # type: ignore[no-untyped-def]
    """Log in as a name the server does not know, until the screen offers to create it."""
    await fill_login(pilot, user, password)
    login = app.login_screen
    assert login is not None
    await wait_until(pilot, lambda: login.query_one("#create").display)


async def test_a_new_name_is_created_only_after_the_user_says_so(server: RelayServer, tmp_path: Path) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await asked_to_create(pilot, app, "newbie", "secret")
        assert "No account 'newbie' here yet: create it" in status_text(app)
        assert app.focused is not None and app.focused.id == "create"
        assert not bob.of(ev.UserJoined)  # nothing was created, nobody saw anything
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.room.logged_in)
        assert any("New account newbie registered" in line for line in log_lines(app))
    await bob.close()


async def test_a_new_account_with_a_too_short_password_is_refused_before_anything_is_sent(
    server: RelayServer, tmp_path: Path
) -> None:
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await asked_to_create(pilot, app, "newbie", "pw")
        await pilot.press("enter")  # "create it"
        text = await wait_for_error(pilot, app)
        assert "New accounts need a password of at least 4 characters." in text
        assert "Wrong password" not in text and server.relay.store.get_account("newbie") is None
        assert app.focused is not None and app.focused.id == "password"
        await fill_login(pilot, "newbie", "longer-pw")
        await wait_until(pilot, lambda: "create it" in status_text(app))
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.room.logged_in)


def test_a_refused_new_password_is_not_called_wrong() -> None:
    why = "New accounts need a password of at least 4 characters"
    refused = ev.LoginRefused(ErrorCode.INVALID_PASSWORD, why)
    assert "Wrong password" in _refusal_text(refused)
    assert _refusal_text(refused, registering=True) == (
        "Login refused: New accounts need a password of at least 4 characters."
    )


async def test_a_password_typed_as_a_name_never_becomes_a_public_account(
    server: RelayServer, tmp_path: Path
) -> None:
    """The reported defect: wrong passwords, a throttle, the password retyped into the name field."""
    await register(server, tmp_path, "alice", "Hunter2pw")
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_login(pilot, "alice", "wrong")
        text = await wait_for_error(pilot, app)
        assert app.focused is not None and app.focused.id == "password"
        assert app.screen.query_one("#password", Input).value == ""
        assert text.lower().count("password") >= 1
        # The cursor is in the password field; even so, suppose the name field gets the password:
        await fill_login(pilot, "Hunter2pw", "Hunter2pw")
        login = app.login_screen
        assert login is not None
        await wait_until(pilot, lambda: login.query_one("#create").display)
        await pilot.press("escape")  # "no, that was not a name"
        assert not login.query_one("#create").display
        await pilot.pause(0.3)
    assert not [e for e in bob.of(ev.UserJoined) if e.user.lower() == "hunter2pw"]
    await bob.close()
