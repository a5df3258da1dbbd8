"""The room: header, message log, who is online, the input line and the key bindings.

It reacts to the network messages the App forwards (one handler each) and hands typed lines to the
App's `submit`, which is the client core's `submit`: commands are parsed there once, for every UI.
The only command handled here is `/retry`, because resending is about what this screen showed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from ...client import commands
from ...client.core import Submitted
from ...protocol.events import ConnectionState
from .. import messages as msg
from ..formatting import mentions
from ..log_entry import Delivery, Entry, EntryKind
from ..widgets.composer import Composer
from ..widgets.message_log import DEFAULT_MAX_ENTRIES, MessageLog
from ..widgets.status_bar import StatusBar
from ..widgets.user_list import UserList

#: Below this many columns the online list is hidden, leaving the width to the messages.
NARROW_WIDTH = 64

#: Shown after the core's /help lines: what only the full-screen app adds.
APP_HELP_LINES = (
    "  /retry           resend the last message that failed (or Ctrl+R)",
    "  /clear           empty the log on this screen (the server keeps the history)",
    "Keys: Enter send · Shift+Enter, Alt+Enter or Ctrl+J new line · Tab complete names and /commands",
    "      Up/Down history · PgUp/PgDn scroll · Ctrl+P command palette · Ctrl+Q quit",
    "Copy: select text in the log with the mouse (Shift+drag where the terminal grabs the mouse).",
)


@dataclass(frozen=True, slots=True)
class _Unsent:
    """A message the server refused, kept so that it can be sent again exactly as typed."""

    text: str
    action: bool
    to: str | None

    def as_line(self) -> str:
        """The line to submit again: the command that produces this same message."""
        if self.to is not None:
            return f"/msg {self.to} {self.text}"
        if self.action:
            return f"/me {self.text}"
        return f"/{self.text}" if self.text.startswith("/") else self.text


class RoomScreen(Screen[None]):
    """The chat room. `submit` sends a typed line through the client core; `leave` quits politely."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "resend", "Resend failed"),
        # Priority: the input line would take Page Up/Down for itself, but it has nothing to scroll.
        Binding("pageup", "scroll_log(-1)", "Scroll", key_display="PgUp/PgDn", priority=True),
        Binding("pagedown", "scroll_log(1)", "Scroll", show=False, priority=True),
    ]

    def __init__(
        self,
        server_label: str,
        *,
        submit: Callable[[str], Submitted],
        leave: Callable[[], None],
        alert: Callable[[str, str], None],
        tz: tzinfo | None = None,
        clock: Callable[[], float] = time.time,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        super().__init__()
        self.server_label = server_label
        self._submit = submit
        self._leave = leave
        self._alert = alert
        self._tz = tz
        self._clock = clock
        self._max_entries = max_entries
        self.user = ""
        self.logged_in = False
        self._own: dict[int, Entry] = {}  # local_id -> our pending message's entry
        self._queued: dict[int, _Unsent] = {}  # local_id -> how it was typed (for a resend)
        self.unsent: list[_Unsent] = []  # failed messages, newest last

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="room-body"):
            yield MessageLog(id="log", tz=self._tz, max_entries=self._max_entries, clock=self._clock)
            yield UserList(id="sidebar")
        yield Composer(
            id="composer",
            names=lambda: self.user_list.users,
            commands=(*commands.command_names(), "retry", "clear"),
        )
        yield Footer()

    def on_mount(self) -> None:
        self.status.server = self.server_label

    def on_screen_resume(self) -> None:
        self.composer.focus_input()

    def on_resize(self, event: events.Resize) -> None:
        # In a narrow terminal the words matter more than the list (which /who still gives).
        self.set_class(event.size.width < NARROW_WIDTH, "-narrow")

    @property
    def log_view(self) -> MessageLog:
        return self.query_one(MessageLog)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    @property
    def user_list(self) -> UserList:
        return self.query_one(UserList)

    def info(self, text: str, kind: EntryKind = EntryKind.INFO) -> Entry:
        """A line from the app itself (help, errors, state changes), stamped now."""
        return self.log_view.add(Entry(kind, self._clock(), text))

    # ------------------------------------------------------------ typing

    @on(Composer.Submitted)
    def _line_entered(self, event: Composer.Submitted) -> None:
        self.run_line(event.text)

    def run_line(self, text: str) -> None:
        """Act on a line as if typed: the app's own commands here, everything else to the core."""
        local = text.strip().lower()
        if local == "/retry":
            self.action_resend()
            return
        if local == "/clear":
            self.log_view.clear()  # this screen only: the room's history stays on the server
            return
        result = self._submit(text)
        for line in result.local_lines:
            self.info(line, EntryKind.ERROR if result.error else EntryKind.INFO)
        if isinstance(commands.parse(text), commands.Help):
            for line in APP_HELP_LINES:
                self.info(line)
        if result.quit:
            self._leave()

    def on_key(self, event: events.Key) -> None:
        # A key that nothing focused wanted (the log or the online list had the focus after a click
        # or a Tab): a printable one belongs to the draft, as in Slack, and is never lost.
        if event.is_printable and event.character is not None and not self.composer.input.has_focus:
            event.stop()
            self.composer.type_key(event.character)

    @on(UserList.Selected)
    def _user_selected(self, event: UserList.Selected) -> None:
        # Into the draft at the cursor, keeping what was written: "name: " at the start of an
        # empty draft (as Tab completion does), the name and a space anywhere else.
        draft = self.composer.text
        self.composer.insert(f"{event.name}: " if not draft else f"{event.name} ")

    def action_resend(self) -> None:
        """Send the newest failed message again."""
        if not self.unsent:
            self.info("Nothing to resend: no message failed.")
            return
        self._submit(self.unsent.pop().as_line())

    def action_scroll_log(self, pages: int) -> None:
        if pages < 0:
            self.log_view.scroll_page_up()
        else:
            self.log_view.scroll_page_down()

    # ------------------------------------------------------------ the network

    def on_connection_state_changed(self, message: msg.ConnectionStateChanged) -> None:
        # Shown as reported: the core only reports "reconnecting" once the server has owed an answer
        # for its `stall_s`, so a blip is already filtered out there.
        self.status.state = message.state
        self.status.detail = message.detail
        if message.rtt_s is not None:
            self.status.rtt_s = message.rtt_s
        self.composer.connected = message.state is ConnectionState.CONNECTED
        if self.logged_in and message.state is ConnectionState.RECONNECTING:
            self.info("Connection lost; reconnecting by itself. What you type waits and is sent after.")

    def set_rtt(self, rtt_s: float | None) -> None:
        """A fresh round-trip time measurement for the header."""
        self.status.rtt_s = rtt_s

    def on_logged_in(self, message: msg.LoggedIn) -> None:
        self.user = message.user
        self.status.user = message.user
        self.status.room = message.room
        self.status.server = f"{message.server_name} at {self.server_label}"
        self.log_view.set_own_name(message.user)
        self.user_list.own_name = message.user
        self.composer.set_prompt(message.user)
        if message.resumed:
            self.info("Reconnected.")
        else:
            self.logged_in = True
            self.info(f"Logged in as {message.user} to #{message.room}. Type /help for commands.")
            if message.registered:
                self.info(f"New account {message.user} registered: remember your password.")

    def on_chat_received(self, message: msg.ChatReceived) -> None:
        event = message.event
        mentioned = not event.own and mentions(event.text, self.user)
        self.log_view.add(
            Entry(
                EntryKind.ACTION if event.action else EntryKind.CHAT, event.ts, event.text,
                user=event.user, own=event.own, mention=mentioned, history=event.history, seq=event.seq,
            )
        )  # fmt: skip
        if mentioned and not event.history:
            self._alert(f"{event.user} mentioned you", event.text)

    def on_own_message_queued(self, message: msg.OwnMessageQueued) -> None:
        event = message.event
        if event.to is not None:
            kind = EntryKind.PRIVATE_OUT
        else:
            kind = EntryKind.ACTION if event.action else EntryKind.CHAT
        user = self.user_list.canonical(event.to) if event.to is not None else self.user
        entry = Entry(kind, self._clock(), event.text, user=user, own=True, delivery=Delivery.PENDING)
        self._own[event.local_id] = self.log_view.add(entry)
        self._queued[event.local_id] = _Unsent(event.text, event.action, event.to)

    def on_own_message_delivered(self, message: msg.OwnMessageDelivered) -> None:
        self._queued.pop(message.event.local_id, None)
        entry = self._own.pop(message.event.local_id, None)
        if entry is not None:
            # The time it was typed stays: a line written while offline and delivered a minute
            # later is shown when it was written, as every chat client does.
            entry.delivery = Delivery.DELIVERED
            entry.sent_ts = message.event.ts  # shown beside the typed time when much later
            self.log_view.update(entry)

    def on_own_message_failed(self, message: msg.OwnMessageFailed) -> None:
        event = message.event
        unsent = self._queued.pop(event.local_id, None) or _Unsent(event.text, False, event.to)
        self.unsent.append(unsent)
        entry = self._own.pop(event.local_id, None)
        if entry is not None:
            entry.delivery = Delivery.FAILED
            entry.note = event.reason
            self.log_view.update(entry)

    def on_private_received(self, message: msg.PrivateReceived) -> None:
        event = message.event
        self.log_view.add(Entry(EntryKind.PRIVATE_IN, event.ts, event.text, user=event.sender))
        self._alert(f"{event.sender} (private)", event.text)

    def on_user_joined(self, message: msg.UserJoined) -> None:
        event = message.event
        self.user_list.add_user(event.user)
        self.log_view.add(Entry(EntryKind.JOIN, event.ts, f"{event.user} joined", user=event.user))

    def on_user_left(self, message: msg.UserLeft) -> None:
        event = message.event
        self.user_list.remove_user(event.user)
        why = "" if event.reason == "quit" else f" ({event.reason})"
        self.log_view.add(Entry(EntryKind.LEAVE, event.ts, f"{event.user} left{why}", user=event.user))

    def on_presence_updated(self, message: msg.PresenceUpdated) -> None:
        users = message.event.users
        self.user_list.set_users(users)
        if message.event.requested:
            self.info(f"{len(users)} online: {', '.join(users)}")

    def on_server_notice(self, message: msg.ServerNotice) -> None:
        kind = EntryKind.INFO if message.event.local else EntryKind.NOTICE
        self.log_view.add(Entry(kind, self._clock(), message.event.text))

    def on_session_closed(self, message: msg.SessionClosed) -> None:
        self.composer.connected = False
        if self.logged_in:
            self.user_list.set_offline()
        if self.logged_in and message.reason != "quit":
            self.info(
                f"Disconnected: {message.reason}. Nothing more will arrive; Ctrl+Q quits.",
                EntryKind.ERROR,
            )
