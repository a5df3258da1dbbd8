"""The full-screen app: it owns the client core, runs it in a worker and routes what it reports.

Shape (as toolong and posting do it): the App owns one `ChatClient` per login attempt. The network
worker starts it and turns each client-core event into a message from `messages.py`, posted to the App.
`_route` does the login-flow part (unlock the form with an error, ask to trust a new key, leave the
login screen) and forwards every message to the room screen, whose handlers update the widgets.
Typed lines go back through `submit`, which is `ChatClient.submit`. No UI code touches a socket.

The room screen is the default screen, underneath the login screen from the start, so it has seen
every event in order by the time the login screen goes away.

`make_app` builds the app for the command line and for the tests alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.command import CommandPalette
from textual.screen import Screen

from ..client.core import ChatClient, ClientError, Submitted
from ..client.discover import BROADCAST, discover
from ..client.known_servers import KnownServers
from ..client.paths import ignore_list_path, ui_settings_path
from ..i18n import N_, _, ngettext
from ..protocol import events as ev
from ..protocol.client import ClientConfig
from ..protocol.discovery import ServerFound
from ..protocol.errors import ErrorCode, LocalProtocolError
from ..signal_handlers import install, signals_named
from ..startup_gc import freeze_startup_objects
from . import messages as msg
from .binding_words import translated_command
from .notifications import desktop_notification
from .screens.login import LoginScreen
from .screens.room import RoomScreen
from .screens.servers import ServersScreen
from .screens.trust import TrustScreen
from .ui_settings import UiSettings
from .widgets.message_log import DEFAULT_MAX_ENTRIES

#: How often the header's round-trip time is refreshed while connected.
RTT_REFRESH_S = 2.0
#: No key, paste or click for this long: the app marks the user away by itself (Slack's 10 minutes).
AUTO_AWAY_S = 600.0
#: The reason others see for an automatic away.
AUTO_AWAY_REASON = "idle"

#: What the command palette offers besides Textual's own entries: (title, help, line to run).
PALETTE_COMMANDS = (
    (N_("Who is online"), N_("List who is in the room (/who)"), "/who"),
    (N_("Help"), N_("The commands and keys (/help)"), "/help"),
    (N_("Clear the log"), N_("Empty the message log on this screen (/clear)"), "/clear"),
    (N_("Resend failed message"), N_("Send the last refused message again (/retry)"), "/retry"),
)


@dataclass(frozen=True)
class AppSettings:
    """Everything the app is told at start; tests pass fixed clocks and zones for stable snapshots."""

    server_host: str
    server_port: int
    #: Local UDP port (0 picks a free one).
    client_port: int = 0
    #: Pre-filled user name (`--user`).
    user: str = ""
    #: Ring the terminal bell on mentions and private messages (`--no-bell` turns it off).
    bell: bool = True
    #: A desktop notification (OSC 777 / OSC 9) for those while the terminal is not focused.
    notify: bool = True
    #: Where the app keeps its own settings (the chosen theme); None keeps nothing.
    settings_path: Path | None = None
    #: Where /ignore is kept across runs; None keeps it for this run only.
    ignore_path: Path | None = None
    #: Pinned server keys; None pins nothing (tests that do not care about trust).
    known_servers: KnownServers | None = None
    #: The client core's timers; the app always asks before trusting a new server key.
    config: ClientConfig = field(default_factory=ClientConfig)
    #: Time for lines the app stamps itself (its own messages before the server confirms them).
    clock: Callable[[], float] = time.time
    #: Zone for displayed times; None is the local zone.
    tz: tzinfo | None = None
    #: Log entries kept.
    max_entries: int = DEFAULT_MAX_ENTRIES
    #: Rooms to join right after the first login (`--room`, repeatable); the last one is shown.
    rooms: tuple[str, ...] = ()
    #: Where the user sits (`--seat`, protocol 20.2); None lets the client core use the host name.
    seat: str | None = None
    #: Idle time before the app sets the user away by itself; 0 never does.
    auto_away_s: float = AUTO_AWAY_S
    #: Where "Find servers" sends its probe (docs/protocol.md 19): the LAN's broadcast address.
    discover_host: str = BROADCAST
    #: A browser tab (`labchat-web`): the server and `client_port` are the web server's to set (the
    #: socket is on its machine), so the login screen offers neither a port nor "Find servers".
    fixed_server: bool = False
    #: Other relays of the same server (`--fallback HOST:PORT`, protocol 22), tried in order when
    #: the server stops answering.
    fallbacks: tuple[tuple[str, int], ...] = ()

    @property
    def server_label(self) -> str:
        host = f"[{self.server_host}]" if ":" in self.server_host else self.server_host
        return f"{host}:{self.server_port}"


class LabchatApp(App[int]):
    """The labchat client. See the module docstring for how the parts talk."""

    CSS_PATH = "labchat.tcss"
    TITLE = "labchat"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", N_("Quit"), priority=True)]

    def __init__(self, settings: AppSettings) -> None:
        super().__init__()
        self.settings = settings
        self.client: ChatClient | None = None
        self.bells = 0
        self._attempt = 0
        self._attempt_over = False  # this attempt's failure is on screen already
        #: (user, password, client port) of the attempt under way; kept only until logged in.
        self._attempt_port: int | None = None  # the client port of the login under way
        self._attempt_user = ""  # the name of the login under way
        self._attempt_register = False  # ...and whether it may create the account
        self._logged_in = False
        self._leaving = False
        self._hung_up = False
        self._room: RoomScreen | None = None
        self.ui_settings = UiSettings(settings.settings_path)
        self._last_input = time.monotonic()
        self._auto_away = False  # the app, not the user, set the current away
        #: Desktop notifications written to the terminal (counted so tests can see them).
        self.notifications: list[tuple[str, str]] = []

    # ------------------------------------------------------------ screens

    def get_default_screen(self) -> Screen[None]:
        self._room = RoomScreen(
            self.settings.server_label,
            submit=self.submit,
            leave=self.action_quit,
            alert=self.alert,
            tz=self.settings.tz,
            clock=self.settings.clock,
            max_entries=self.settings.max_entries,
            switch_room=self.set_current_room,
            announcement_seen=self.announcement_seen,
            deliver=self.deliver_to_browser if self.settings.fixed_server else None,
        )
        return self._room

    def deliver_to_browser(self, path: Path, name: str) -> None:
        """A browser tab (labchat-web): a file the user accepted goes on to the browser as a
        download (Textual's `deliver_binary`, which textual-serve streams to the page); the copy
        the tab saved is on the web server's machine, which the student never sees."""
        self.deliver_binary(path, save_filename=name)

    @property
    def room(self) -> RoomScreen:
        """The room screen (the default screen, there from the start)."""
        assert self._room is not None, "the app is not running"
        return self._room

    @property
    def attempt(self) -> int:
        """The number of the current login attempt; messages from older ones are ignored."""
        return self._attempt

    @property
    def login_screen(self) -> LoginScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, LoginScreen):
                return screen
        return None

    def on_mount(self) -> None:
        settings = self.settings
        theme = self.ui_settings.theme
        if theme is not None and theme in self.available_themes:
            self.theme = theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.push_screen(
            LoginScreen(
                settings.server_label, settings.client_port, settings.user,
                fixed_server=settings.fixed_server,
            )
        )  # fmt: skip
        self.set_interval(RTT_REFRESH_S, self._refresh_rtt)
        if settings.auto_away_s > 0:
            self.set_interval(min(30.0, settings.auto_away_s / 4), self.check_auto_away)
        if not self.is_headless:
            # The terminal closing (SIGHUP), a `kill` (SIGTERM) or a SIGINT from outside: leave as
            # politely as Ctrl+Q does, so the room sees us go at once, and with no traceback.
            # (Windows has no SIGHUP; signal_handlers skips what a platform lacks.)
            install(asyncio.get_running_loop(), signals_named("SIGHUP", "SIGTERM", "SIGINT"), self._on_signal)

    def _on_signal(self, sig: int) -> None:
        if sig in signals_named("SIGHUP"):
            self._hung_up = True
        if self._leaving:
            self._finish(1)  # a second signal: do not wait any longer
        else:
            self.action_quit()

    def _finish(self, code: int) -> None:
        if self._hung_up:
            # The terminal is gone: nothing to restore, and Textual's shutdown would block for ever
            # on its output thread, which died writing to the vanished tty (textual 8.2). We have
            # said goodbye to the server already; end the process here.
            os._exit(code)
        self.exit(code)

    def bell(self) -> None:
        """Ring the terminal bell, unless --no-bell. Counted so tests can see it rang."""
        if self.settings.bell:
            self.bells += 1
            super().bell()

    def alert(self, title: str, body: str) -> None:
        """Someone wants this user's attention (a mention, a private message): the bell, and a
        desktop notification when the terminal is not the focused window (`--no-notify` stops it)."""
        self.bell()
        if self.settings.notify and not self.app_focus:
            self.notifications.append((title, body))
            if self._driver is not None:
                self._driver.write(desktop_notification(title, body, os.environ))

    async def on_event(self, event: events.Event) -> None:
        # Every key, paste and click passes here first, whoever handles it: the idle clock.
        if isinstance(event, (events.Key, events.Paste, events.MouseDown)):
            self._last_input = time.monotonic()
            if self._auto_away:
                self._set_auto_away(False)
        await super().on_event(event)

    def check_auto_away(self, now: float | None = None) -> None:
        """Mark the user away after `auto_away_s` without input (undone by the next key), unless
        they chose an away of their own."""
        now = time.monotonic() if now is None else now
        client = self.client
        if (
            self._logged_in and not self._auto_away and client is not None
            and now - self._last_input >= self.settings.auto_away_s
            and client.conn.away_reason is None
        ):  # fmt: skip
            self._set_auto_away(True)

    def _set_auto_away(self, away: bool) -> None:
        client = self.client
        self._auto_away = away
        if client is not None and not client.closed.is_set():
            client.set_away(AUTO_AWAY_REASON if away else None)

    def _theme_changed(self, theme: object) -> None:
        self.ui_settings.theme = self.theme  # remembered for the next start

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:  # type: ignore[type-arg]
        """The command palette (Ctrl+P): labchat's commands first, then Textual's (themes, keys)."""
        if self._logged_in:
            for title, help_text, line in PALETTE_COMMANDS:
                yield SystemCommand(_(title), _(help_text), lambda line=line: self.room.run_line(line))
            rooms = self.room.room_names
            if len(rooms) > 1:
                for number, name in enumerate(rooms, 1):
                    keys = f" (Alt+{number})" if number <= 9 else ""
                    yield SystemCommand(
                        _("Switch to #{room}").format(room=name),
                        _("Show #{room}{keys}").format(room=name, keys=keys),
                        lambda name=name: self.room.switch_to(name),
                    )
        for command in super().get_system_commands(screen):
            yield translated_command(command)

    def action_command_palette(self) -> None:
        """Ctrl+P: Textual's command palette, with its search prompt in the user's language."""
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(CommandPalette(id="--command-palette", placeholder=_("Search for commands…")))

    def action_help_quit(self) -> None:
        """Ctrl+C where there is nothing to copy: Textual's hint that another key quits, in the
        user's language."""
        for key, active in self.active_bindings.items():
            if active.binding.action in ("quit", "app.quit"):
                self.notify(
                    _("Press [bold]{key}[/bold] to quit the app").format(key=key),
                    title=_("Do you want to quit?"),
                )
                return

    # ------------------------------------------------------------ logging in

    @on(LoginScreen.FindServers)
    @work(exclusive=True, group="discover")
    async def _find_servers(self) -> None:
        """Probe the LAN, then let the user pick; a pick changes where the next login goes."""
        port = self.settings.server_port
        try:
            found = await discover(self.settings.discover_host, port)
        except OSError as exc:
            if (login := self.login_screen) is not None:
                login.show_error(_("Cannot look for servers: {reason}").format(reason=exc.strerror or exc))
            return
        login = self.login_screen
        if login is None:
            return
        if found:
            answered = ngettext("{count} server answered.", "{count} servers answered.", len(found))
            login.show_info(answered.format(count=len(found)))
        else:
            login.show_info(_("No server answered."))

        def picked(choice: ServerFound | None) -> None:
            if choice is None or (screen := self.login_screen) is None:
                return
            self.settings = replace(self.settings, server_host=choice.host, server_port=choice.port)
            screen.set_server(self.settings.server_label)
            self.room.server_label = self.settings.server_label  # the header names it once logged in

        self.push_screen(ServersScreen(found, port), picked)

    @on(LoginScreen.Submitted)
    async def _login(self, event: LoginScreen.Submitted) -> None:
        await self._start_attempt(event.user, event.password, event.client_port, event.register)

    async def _start_attempt(
        self, user: str, password: str, client_port: int, register: bool = False
    ) -> None:
        login = self.login_screen
        await self._drop_client()
        settings = self.settings
        try:
            client = ChatClient(
                settings.server_host, settings.server_port, user, password,
                local_port=client_port,
                config=replace(settings.config, confirm_new_key=True),
                known_servers=settings.known_servers,
                ignore_path=settings.ignore_path,
                # Never register from a typo or a password typed into the name field: the server
                # says NO_SUCH_ACCOUNT and the login screen asks before an account is created.
                register=register,
                rooms=settings.rooms,
                seat=settings.seat,
                fallbacks=settings.fallbacks,
            )  # fmt: skip
        except LocalProtocolError as exc:
            if login is not None:
                login.show_error(_("Cannot log in: {reason}.").format(reason=exc), focus="user")
            return
        self._attempt += 1
        self._attempt_over = False
        self._attempt_port = client_port
        self._attempt_user = user
        self._attempt_register = register
        self.client = client
        if login is not None:
            login.show_busy(
                _("Connecting to {server} as {user}…  (Esc cancels; gives up after {seconds} s)").format(
                    server=settings.server_label, user=user, seconds=f"{settings.config.connect_timeout_s:g}"
                )
            )
        self._network(client, self._attempt)

    @work(group="network", exclusive=True)
    async def _network(self, client: ChatClient, attempt: int) -> None:
        """The network worker: start the client core and post everything it reports."""
        try:
            await client.start()
        except ClientError as exc:
            self.post_message(msg.CoreEvent(attempt, msg.StartFailed(str(exc))))
            return
        while True:
            events = [await client.next_event(), *client.drain_events()]
            handled = asyncio.Event()
            self.post_message(msg.NetworkBatch([msg.CoreEvent(attempt, e) for e in events], handled))
            await handled.wait()  # one batch in the queue at a time: keys never wait behind a flood
            if any(isinstance(e, ev.Closed) for e in events):
                return

    async def _drop_client(self) -> None:
        """Forget the current attempt's client (closing it if it is still open)."""
        client, self.client = self.client, None
        self._attempt += 1  # anything still queued from it is now stale
        if client is not None:
            await client.close()

    @on(LoginScreen.Cancelled)
    async def _cancel_login(self) -> None:
        await self._drop_client()
        login = self.login_screen
        if login is not None:
            login.show_info(_("Cancelled. Press Enter to try again."))

    def _login_failed(self, text: str | Text, focus: str = "user") -> None:
        """Show this attempt's failure once (a refusal is followed by the close, say only the first)."""
        if self._attempt_over or self._logged_in:
            return
        self._attempt_over = True
        login = self.login_screen
        if login is not None:
            login.show_error(text, focus=focus)

    def _ask_trust(self, fingerprint: str) -> None:
        def decided(trusted: bool | None) -> None:
            self.run_worker(self._trust_decided(bool(trusted)), group="trust")

        self.push_screen(TrustScreen(self.settings.server_label, fingerprint), decided)

    async def _trust_decided(self, trusted: bool) -> None:
        client = self.client
        if client is None:
            return
        if not trusted:
            await self._drop_client()
            self._login_failed(_("Not logged in: you did not trust the server's key."))
            return
        client.trust_server_key()  # pins the key; the core shakes hands again and logs in

    # ------------------------------------------------------------ routing

    @on(msg.NetworkBatch)
    def _route_batch(self, batch: msg.NetworkBatch) -> None:
        try:
            for message in batch.events:
                self._route(message)
        finally:
            batch.handled.set()

    @on(msg.CoreEvent)
    def _route(self, message: msg.CoreEvent) -> None:
        if message.attempt != self._attempt:
            return  # from an abandoned attempt
        event = message.event
        login = self.login_screen
        match event:
            case ev.ServerKeyTrusted(first_contact=True) if not self._logged_in:
                self._ask_trust(event.fingerprint)
            case ev.ServerKeyChanged():
                port = self._attempt_port if self._attempt_port is not None else self.settings.client_port
                self._login_failed(_key_changed_text(event, self.settings, port))
            case ev.LoginRefused(code=ErrorCode.NO_SUCH_ACCOUNT) if not self._logged_in:
                if not self._attempt_over and login is not None:
                    self._attempt_over = True
                    login.ask_create(self._attempt_user)
            case ev.LoginRefused():
                # A refusal about the password or a throttle: the cursor goes to the (cleared)
                # password field, never to the name, where a retyped password would become a name.
                about_password = event.code in (ErrorCode.INVALID_PASSWORD, ErrorCode.LOGIN_THROTTLED)
                focus = "password" if about_password else "user"
                self._login_failed(_refusal_text(event, registering=self._attempt_register), focus=focus)
            case ev.LoginQueued() if not self._logged_in and login is not None:
                if event.position == 0:
                    ahead = _("you are next")
                else:
                    ahead = _("{count} ahead of you").format(count=event.position)
                eta = ""
                if event.eta_s >= 1:
                    eta = _(", about {seconds} s").format(seconds=f"{event.eta_s:.0f}")
                login.show_busy(
                    _("The server is checking other logins: {place}{eta}. Waiting…  (Esc cancels)").format(
                        place=ahead, eta=eta
                    )
                )
            case msg.StartFailed():
                self._login_failed(_("Cannot start: {reason}.").format(reason=event.reason), focus="port")
            case ev.ConnectFailed():
                self._login_failed(
                    _(
                        "Server {server} is not answering: {reason}. "
                        "Check the address and port, and that labchat-server is running there."
                    ).format(server=self.settings.server_label, reason=event.reason)
                )
            case ev.Closed() if not self._logged_in:
                self._login_failed(_("Not logged in: {reason}.").format(reason=event.reason))
            case ev.LoggedIn() if not self._logged_in:
                self._logged_in = True
                self._attempt_port = None
                if login is not None and isinstance(self.screen, LoginScreen):
                    self.pop_screen()
        room = self.room
        if room.is_attached:
            room.handle(event)  # directly: a batch must not turn back into N queued messages
        else:
            room.post_message(message)

    def _refresh_rtt(self) -> None:
        client = self.client
        if self._logged_in and client is not None and client.conn.rtt_s is not None:
            self.room.set_rtt(client.conn.rtt_s)

    # ------------------------------------------------------------ the room's actions

    def submit(self, line: str) -> Submitted:
        """Send a typed line through the client core (the one way the UI sends anything)."""
        if self.client is None:
            return Submitted((_("not connected"),), error=True)
        return self.client.submit(line)

    def set_current_room(self, room: str) -> None:
        """The user switched rooms: typed lines go to `room` from now on."""
        client = self.client
        if client is not None:
            # A room we were kicked from, shown greyed, is refused: the screen sends nothing there.
            with contextlib.suppress(LocalProtocolError):
                client.set_current_room(room)

    def announcement_seen(self, room: str, announcement_id: int) -> None:
        """The room's announcement has been on screen: the server counts this user as having seen it."""
        client = self.client
        if client is not None:
            client.announcement_seen(room, announcement_id)

    def action_quit(self) -> None:  # type: ignore[override]
        """Leave politely: tell the server (others see the leave at once), then exit."""
        if not self._leaving:
            self._leaving = True
            self.run_worker(self._leave(), group="leave")

    async def _leave(self) -> None:
        client = self.client
        if client is not None and not client.closed.is_set():
            self.room.status.detail = "leaving"
            await client.close()
        self._finish(0)

    async def on_unmount(self) -> None:
        # Exiting by any other path: still say goodbye (bounded by the core's quit timers).
        if self.client is not None:
            await self.client.close()


def _refusal_text(message: ev.LoginRefused, *, registering: bool = False) -> str:
    hints = {
        # Creating an account, INVALID_PASSWORD is the new password refused (too short): the
        # server's words say so, and "wrong password" would be wrong.
        ErrorCode.INVALID_PASSWORD: "" if registering else _("Wrong password for this name. Type it again."),
        ErrorCode.INVALID_NAME: _("That user name is not allowed."),
        ErrorCode.REGISTRATION_CLOSED: _(
            "No account with this name, and this server does not register new ones. "
            "Check the spelling, or ask the server's admin for an account."
        ),
    }
    hint = hints.get(message.code)  # type: ignore[call-overload]  # IntEnum keys match ints
    # The server's words already say why (a throttle says how long to wait): say it once.
    reason = message.reason.rstrip(".")
    line = _("Login refused: {reason}.").format(reason=reason)
    return f"{line} {hint}" if hint else line


def _key_changed_text(message: ev.ServerKeyChanged, settings: AppSettings, port: int) -> Text:
    return Text.assemble(
        (_("The server's key has CHANGED.") + " ", "bold"),
        _("Not logged in; your password was not sent.") + "\n",
        _("  pinned:  {fingerprint}").format(fingerprint=message.expected) + "\n",
        _("  now:     {fingerprint}").format(fingerprint=message.actual) + "\n",
        _(
            "Someone may be pretending to be the server. If its admin replaced the key on purpose, "
            "check the new fingerprint with them, then run:"
        )
        + "\n",
        (
            f"  labchat {settings.server_host} {settings.server_port} {port} --accept-new-server-key",
            "bold",
        ),
    )


def make_app(
    server_host: str,
    server_port: int,
    client_port: int = 0,
    *,
    user: str = "",
    config: ClientConfig | None = None,
    **options: object,
) -> LabchatApp:
    """Build the app (the command line and the tests both come through here).

    `options` are `AppSettings` fields by name (bell, notify, settings_path, ignore_path,
    known_servers, clock, tz, max_entries, auto_away_s, fixed_server, rooms, seat, fallbacks).
    """
    return LabchatApp(
        AppSettings(
            server_host, server_port, client_port, user=user or "", config=config or ClientConfig(),
            **options,  # type: ignore[arg-type]
        )
    )


def run_app(args: argparse.Namespace, known: KnownServers) -> int:
    """Run the app for `labchat HOST PORT CLIENT_PORT`; returns the process exit status."""
    app = make_app(
        args.server_ip,
        args.server_port,
        args.client_port,
        user=args.user or "",
        bell=not args.no_bell,
        notify=not args.no_notify,
        settings_path=ui_settings_path(),
        ignore_path=ignore_list_path(),
        known_servers=known,
        rooms=tuple(args.room),
        seat=args.seat,
        fallbacks=tuple(getattr(args, "fallback", ())),
    )
    freeze_startup_objects()
    try:
        code = app.run()
    except KeyboardInterrupt:  # SIGINT from outside the terminal (Ctrl+C itself is a key here)
        return 130
    return code if code is not None else 0


__all__ = ["AppSettings", "LabchatApp", "make_app", "run_app"]
