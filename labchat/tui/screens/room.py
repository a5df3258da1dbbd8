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
from ...protocol import events as ev
from ...protocol.events import ConnectionState
from .. import messages as msg
from ..formatting import local_date, mentions, stamp
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
        self._history_more = True  # the server may hold older messages than the log shows
        self._history_pending = False  # a page was asked for and has not come yet

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
            if self.log_view.scroll_y <= 0:
                self._top_reached()  # at the top already: Page Up asks for older messages
            self.log_view.scroll_page_up()
        else:
            self.log_view.scroll_page_down()

    # ------------------------------------------------------------ the network

    def on_core_event(self, message: msg.CoreEvent) -> None:
        """A core event that arrived before this screen was attached (the App routes them here)."""
        self.handle(message.event)

    def handle(self, event: ev.Event) -> None:
        """Show one client-core event: one `case` per kind of event, one method each."""
        match event:
            case ev.MessageReceived():
                self._show_message_received(event)
            case ev.MessageQueued():
                self._show_message_queued(event)
            case ev.MessageDelivered():
                self._show_message_delivered(event)
            case ev.MessageFailed():
                self._show_message_failed(event)
            case ev.PrivateReceived():
                self._show_private_received(event)
            case ev.UserJoined():
                self.user_list.add_user(event.user)
                self.log_view.add(Entry(EntryKind.JOIN, event.ts, f"{event.user} joined", user=event.user))
            case ev.UserLeft():
                self.user_list.remove_user(event.user)
                why = "" if event.reason == "quit" else f" ({event.reason})"
                text = f"{event.user} left{why}"
                self.log_view.add(Entry(EntryKind.LEAVE, event.ts, text, user=event.user))
            case ev.UserAway():
                self._show_user_away(event)
            case ev.PresenceUpdated():
                self._show_presence_updated(event)
            case ev.SearchResults():
                self._show_search_results(event)
            case ev.HistoryPage():
                self._show_history_page(event)
            case ev.ServerNotice():
                kind = EntryKind.INFO if event.local else EntryKind.NOTICE
                self.log_view.add(Entry(kind, self._clock(), event.text))
            case ev.StateChanged():
                self._show_state_changed(event)
            case ev.LoggedIn():
                self._show_logged_in(event)
            case ev.LoginRetrying() if self.logged_in:
                self.info(f"The server said: {event.reason}. Logging in again in {event.retry_in_s:.0f} s.")
            case ev.Closed():
                self._show_closed(event)

    def _show_state_changed(self, event: ev.StateChanged) -> None:
        # Shown as reported: the core only reports "reconnecting" once the server has owed an answer
        # for its `stall_s`, so a blip is already filtered out there.
        self.status.state = event.state
        self.status.detail = event.detail
        if event.rtt_s is not None:
            self.status.rtt_s = event.rtt_s
        self.composer.connected = event.state is ConnectionState.CONNECTED
        if self.logged_in and event.state is ConnectionState.RECONNECTING:
            self.info("Connection lost; reconnecting by itself. What you type waits and is sent after.")

    def set_rtt(self, rtt_s: float | None) -> None:
        """A fresh round-trip time measurement for the header."""
        self.status.rtt_s = rtt_s

    def _show_logged_in(self, event: ev.LoggedIn) -> None:
        self.user = event.user
        self.status.user = event.user
        self.status.room = event.room
        self.status.server = f"{event.server_name} at {self.server_label}"
        self.log_view.set_own_name(event.user)
        self.user_list.own_name = event.user
        self.composer.set_prompt(event.user)
        if event.resumed:
            self.info("Reconnected.")
        else:
            self.logged_in = True
            self.info(f"Logged in as {event.user} to #{event.room}. Type /help for commands.")
            if event.registered:
                self.info(f"New account {event.user} registered: remember your password.")

    def _show_message_received(self, event: ev.MessageReceived) -> None:
        mentioned = not event.own and mentions(event.text, self.user)
        self.log_view.add(
            Entry(
                EntryKind.ACTION if event.action else EntryKind.CHAT, event.ts, event.text,
                user=event.user, own=event.own, mention=mentioned, history=event.history, seq=event.seq,
            )
        )  # fmt: skip
        if mentioned and not event.history:
            self._alert(f"{event.user} mentioned you", event.text)

    def _show_message_queued(self, event: ev.MessageQueued) -> None:
        if event.to is not None:
            kind = EntryKind.PRIVATE_OUT
        else:
            kind = EntryKind.ACTION if event.action else EntryKind.CHAT
        user = self.user_list.canonical(event.to) if event.to is not None else self.user
        entry = Entry(kind, self._clock(), event.text, user=user, own=True, delivery=Delivery.PENDING)
        self._own[event.local_id] = self.log_view.add(entry)
        self._queued[event.local_id] = _Unsent(event.text, event.action, event.to)

    def _show_message_delivered(self, event: ev.MessageDelivered) -> None:
        self._queued.pop(event.local_id, None)
        entry = self._own.pop(event.local_id, None)
        if entry is not None:
            # The time it was typed stays: a line written while offline and delivered a minute
            # later is shown when it was written, as every chat client does.
            entry.delivery = Delivery.DELIVERED
            entry.sent_ts = event.ts  # shown beside the typed time when much later
            self.log_view.update(entry)

    def _show_message_failed(self, event: ev.MessageFailed) -> None:
        unsent = self._queued.pop(event.local_id, None) or _Unsent(event.text, False, event.to)
        self.unsent.append(unsent)
        entry = self._own.pop(event.local_id, None)
        if entry is not None:
            entry.delivery = Delivery.FAILED
            entry.note = event.reason
            self.log_view.update(entry)

    def _show_private_received(self, event: ev.PrivateReceived) -> None:
        text = f"{event.text}  (sent while you were offline)" if event.held else event.text
        self.log_view.add(Entry(EntryKind.PRIVATE_IN, event.ts, text, user=event.sender))
        self._alert(f"{event.sender} (private)", event.text)

    def _show_user_away(self, event: ev.UserAway) -> None:
        self.user_list.set_away(event.user, event.reason if event.away else None)
        own = event.user.casefold() == self.user.casefold()
        if own:
            self.status.away = event.reason if event.away else None
        why = f": {event.reason}" if event.reason else ""
        text = f"{event.user} is away{why}" if event.away else f"{event.user} is back"
        if own:
            text = f"You are away{why} (/back to return)" if event.away else "You are back"
        self.log_view.add(Entry(EntryKind.INFO, event.ts, text))

    def _show_search_results(self, event: ev.SearchResults) -> None:
        if event.error:
            self.info(f"Search for “{event.query}” failed: {event.error}", EntryKind.ERROR)
            return
        if not event.hits:
            self.info(f"No messages with “{event.query}” in this room's history.")
            return
        more = " (the newest; narrow the words to see others)" if event.more else ""
        count = "1 message" if len(event.hits) == 1 else f"{len(event.hits)} messages"
        self.info(f"{count} with “{event.query}”{more}, newest first:")
        today = local_date(self._clock(), self._tz)
        for hit in event.hits:
            who = f"* {hit.user}" if hit.action else f"<{hit.user}>"
            self.info(f"  {stamp(hit.ts, self._tz, today)}  {who} {hit.snippet}")

    @on(MessageLog.TopReached)
    def _top_reached(self) -> None:
        # Scrolled to the very top: the page before the oldest message shown, once at a time.
        if self.logged_in and self._history_more and not self._history_pending:
            result = self._submit("/history")
            self._history_pending = not result.error

    def _show_history_page(self, event: ev.HistoryPage) -> None:
        self._history_pending = False
        if event.error:
            self.info(f"Older messages could not be fetched: {event.error}", EntryKind.ERROR)
            return
        self._history_more = event.more
        entries = [
            Entry(
                EntryKind.ACTION if m.action else EntryKind.CHAT, m.ts, m.text, user=m.user,
                own=m.own, history=True, seq=m.seq,
            )
            for m in event.messages
        ]  # fmt: skip
        if not event.more:
            first_ts = entries[0].ts if entries else self._clock()
            entries.insert(0, Entry(EntryKind.INFO, first_ts, "The beginning of this room's history."))
        self.log_view.prepend(entries)

    def _show_presence_updated(self, event: ev.PresenceUpdated) -> None:
        self.user_list.set_users(event.users, event.away)
        if event.requested:
            names = [f"{u} (away)" if u in event.away else u for u in event.users]
            self.info(f"{len(event.users)} online: {', '.join(names)}")

    def _show_closed(self, event: ev.Closed) -> None:
        self.composer.connected = False
        if self.logged_in:
            self.user_list.set_offline()
        if self.logged_in and event.reason != "quit":
            self.info(
                f"Disconnected: {event.reason}. Nothing more will arrive; Ctrl+Q quits.",
                EntryKind.ERROR,
            )
