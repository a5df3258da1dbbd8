"""The room against a real server and real line-level clients: chat, presence, private messages, leaving."""

from __future__ import annotations

from pathlib import Path

from labchat.protocol import events as ev
from labchat.protocol.channel import ServerChannel
from labchat.protocol.client import ClientConfig
from labchat.server.keys import load_or_create_server_key
from labchat.server.relay import Relay, RelayConfig
from labchat.server.store import Store
from labchat.server.transport import RelayServer, serve
from labchat.tui.log_entry import Delivery, EntryKind
from labchat.tui.screens.login import LoginScreen

from ..helpers import TEST_SCRYPT_N, connect, start_server
from .util import app_for, log_in, log_lines, wait_until


async def type_line(pilot, text: str) -> None:  # type: ignore[no-untyped-def]
    """Type a line into the composer and press Enter, as a person would (paste-speed)."""
    composer = pilot.app.room.composer
    composer.input.value = text
    composer.input.cursor_position = len(text)
    await pilot.press("enter")


async def test_send_and_receive(server: RelayServer, tmp_path: Path) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        await pilot.press(*"hello [bold]bob[/bold] ")
        app.room.composer.input.insert_text_at_cursor("👋")  # as pasted: no key for it
        await pilot.press("enter")
        got = await bob.wait_for(ev.MessageReceived)
        assert (got.user, got.text) == ("alice", "hello [bold]bob[/bold] 👋")
        own = app.room.log_view.entries[-1]
        await wait_until(pilot, lambda: own.delivery is Delivery.DELIVERED)
        assert own.own and own.text == "hello [bold]bob[/bold] 👋"

        bob.client.submit("hi Alice, welcome")
        await wait_until(pilot, lambda: "<bob> hi Alice, welcome" in log_lines(app))
        entry = app.room.log_view.entries[-1]
        assert entry.mention and not entry.own
        assert app.bells == 1  # a mention rings the bell
        bob.client.submit("/me waves")
        await wait_until(pilot, lambda: "* bob waves" in log_lines(app))
        assert app.bells == 1  # no mention, no bell
    await bob.close()


async def test_no_bell_option(server: RelayServer, tmp_path: Path) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path, bell=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        bob.client.submit("alice: ping")
        await wait_until(pilot, lambda: "<bob> alice: ping" in log_lines(app))
        assert app.room.log_view.entries[-1].mention
        assert app.bells == 0
    await bob.close()


async def test_online_list_follows_joins_and_leaves(server: RelayServer, tmp_path: Path) -> None:
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        users = app.room.user_list
        assert users.users == ["alice"]
        bob = await connect(server, "bob", tmp_path=tmp_path)
        await wait_until(pilot, lambda: users.users == ["alice", "bob"])
        assert "Online · 2" in str(users.query_one("#user-count").render())
        assert "bob joined" in log_lines(app)
        await bob.close()
        await wait_until(pilot, lambda: users.users == ["alice"])
        assert "bob left" in log_lines(app)
        kinds = [e.kind for e in app.room.log_view.entries]
        assert EntryKind.JOIN in kinds and EntryKind.LEAVE in kinds


async def test_private_message_reaches_only_its_recipient(server: RelayServer, tmp_path: Path) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    carol = await connect(server, "carol", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        await type_line(pilot, "/msg bob just between us")
        private = await bob.wait_for(ev.PrivateReceived)
        assert (private.sender, private.text) == ("alice", "just between us")
        await wait_until(pilot, lambda: app.room.log_view.entries[-1].delivery is Delivery.DELIVERED)
        assert app.room.log_view.entries[-1].kind is EntryKind.PRIVATE_OUT
        await type_line(pilot, "now everyone")
        await carol.wait_for(ev.MessageReceived, lambda e: e.text == "now everyone")
        assert not carol.of(ev.PrivateReceived)
        # And the other way: bob's private message shows as private.
        bob.client.submit("/msg alice psst")
        await wait_until(pilot, lambda: "[private] <bob> psst" in log_lines(app))
    await bob.close()
    await carol.close()


async def test_unknown_command_sends_nothing(server: RelayServer, tmp_path: Path) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        await type_line(pilot, "/frobnicate now")
        assert any("unknown command /frobnicate" in line for line in log_lines(app))
        assert app.room.log_view.entries[-1].kind is EntryKind.ERROR
        await type_line(pilot, "/who")
        await wait_until(pilot, lambda: "2 online: alice, bob" in log_lines(app))
        await type_line(pilot, "/help")
        assert any("/retry" in line for line in log_lines(app))
        await type_line(pilot, "marker")
        got = await bob.wait_for(ev.MessageReceived)
        assert got.text == "marker"  # the first thing bob ever received from alice
    await bob.close()


async def test_failed_message_can_be_resent(server: RelayServer, tmp_path: Path) -> None:
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        await type_line(pilot, "/msg carol are you there?")
        await wait_until(pilot, lambda: app.room.log_view.entries[-1].delivery is Delivery.FAILED)
        failed = app.room.log_view.entries[-1]
        assert "not sent" in failed.plain
        carol = await connect(server, "carol", tmp_path=tmp_path)
        await pilot.press("ctrl+r")
        got = await carol.wait_for(ev.PrivateReceived)
        assert got.text == "are you there?"
        await type_line(pilot, "/retry")
        assert "Nothing to resend" in log_lines(app)[-1]
    await carol.close()


async def test_input_history(server: RelayServer, tmp_path: Path) -> None:
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        await type_line(pilot, "first")
        await type_line(pilot, "second")
        await pilot.press(*"draft")
        field = app.room.composer.input
        await pilot.press("up")
        assert field.value == "second"
        await pilot.press("up", "up")
        assert field.value == "first"
        await pilot.press("down", "down")
        assert field.value == "draft"


async def test_quit_announces_the_leave(server: RelayServer, tmp_path: Path) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        await type_line(pilot, "QUIT")
        left = await bob.wait_for(ev.UserLeft)
        assert (left.user, left.reason) == ("alice", "quit")
        await wait_until(pilot, lambda: app.return_code == 0)
    await bob.close()


async def test_ctrl_q_announces_the_leave(server: RelayServer, tmp_path: Path) -> None:
    bob = await connect(server, "bob", tmp_path=tmp_path)
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        await pilot.press("ctrl+q")
        left = await bob.wait_for(ev.UserLeft)
        assert (left.user, left.reason) == ("alice", "quit")
        await wait_until(pilot, lambda: app.return_code == 0)
    await bob.close()


async def test_ctrl_q_on_the_login_screen_just_exits(server: RelayServer, tmp_path: Path) -> None:
    app = app_for(server, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, LoginScreen)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: app.return_code == 0)


async def test_reconnect_states(tmp_path: Path) -> None:
    server = await start_server(tmp_path)
    port = server.address[1]
    # short timers, but not so short that a loaded machine's pause reads as a dead server
    config = ClientConfig(keepalive_s=0.5, stall_s=1.0, rehandshake_s=2.0)
    app = app_for(server, tmp_path, config=config)
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        status = app.room.status
        await wait_until(pilot, lambda: status.state is ev.ConnectionState.CONNECTED)
        await server.stop(grace_s=0)
        await wait_until(pilot, lambda: status.state is ev.ConnectionState.RECONNECTING)
        await wait_until(pilot, lambda: app.room.composer.has_class("-offline"))
        restarted = await _restart(tmp_path, port)
        try:
            await wait_until(pilot, lambda: status.state is ev.ConnectionState.CONNECTED)
            await wait_until(pilot, lambda: "Reconnected." in log_lines(app))
            await wait_until(pilot, lambda: not app.room.composer.has_class("-offline"))
        finally:
            await restarted.stop(grace_s=0)


async def _restart(server_dir: Path, port: int) -> RelayServer:
    """The same server (same key, same database) back on the same port, as after a restart."""
    store = Store(server_dir / "server.db", scrypt_n=TEST_SCRYPT_N)
    key = load_or_create_server_key(server_dir / "server.key")
    return await serve("127.0.0.1", port, Relay(store, ServerChannel(key), RelayConfig()))
