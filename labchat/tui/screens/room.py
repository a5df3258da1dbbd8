"""The room: header, message log, who is online, the input line and the key bindings.

It reacts to the network messages the App forwards (one handler each) and hands typed lines to the
App's `submit`, which is the client core's `submit`: commands are parsed there once, for every UI.
The only command handled here is `/retry`, because resending is about what this screen showed.

Rooms (docs/protocol.md 18): the screen keeps one `_Room` per room the user is in, each with its own
`MessageLog` (in a `ContentSwitcher`, so each keeps its scroll position, read marker and "new
messages" bar), its own draft, members, topic and announcement. Events are routed by their `room`;
private messages and the app's own lines go to the room on screen. The rooms list shows them all,
with unread and mention counts; switching tells the client core where typed lines go now.

The classroom (docs/protocol.md 20) adds to each room its help queue (a side panel for operators),
its poll (a card pinned under the announcement), quiet mode (in the header, and a member's lines
shown as going to the operators) and where each member sits (in the online list). The panel and
the card turn keys into the typed commands `/next`, `/done NAME` and `/vote N`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer

from ...client import commands
from ...client.core import Submitted
from ...client.room_news import describe, room_list_lines, seats_line
from ...i18n import N_, _, ngettext
from ...protocol import events as ev
from ...protocol.errors import ErrorCode
from ...protocol.events import ConnectionState
from ...protocol.messages import MEMBER_ADMIN, MEMBER_OP, ROOM_PRIVATE, Action
from .. import file_words
from .. import messages as msg
from ..binding_words import KeysInLanguage, numbered
from ..classroom_words import hand_words, poll_tally_line, quiet_words
from ..formatting import local_date, mentions, stamp
from ..log_entry import Delivery, Entry, EntryKind
from ..room_lines import member_bits_after
from ..widgets.announcement import AnnouncementBanner, tally_line
from ..widgets.composer import Composer
from ..widgets.file_cards import FileCard, FileTray
from ..widgets.help_queue import HelpQueue
from ..widgets.message_log import DEFAULT_MAX_ENTRIES, MessageLog
from ..widgets.poll_card import PollCard
from ..widgets.room_list import RoomList, RoomRow
from ..widgets.status_bar import StatusBar
from ..widgets.user_list import UserList
from .file_viewer import FileViewer, view_problem

#: Below this many columns the online list is hidden, leaving the width to the messages.
NARROW_WIDTH = 64
#: Below this width an open help queue takes the online list's place (the queue shows the seats
#: that matter then; /who still lists everyone): the log keeps room for the lines it shows.
QUEUE_BESIDE_LIST_WIDTH = 130
#: Below this many the rooms list is hidden too (Alt+1..9, Ctrl+PgUp/PgDn and Ctrl+P still switch).
TINY_WIDTH = 48

#: How often the header's "quiet: N min left" is redrawn.
QUIET_TICK_S = 10.0
#: The name a member's line in quiet mode is shown as going to.
TO_OPERATORS = "operators"
TO_OPERATORS_LABEL = N_("to the operators")

#: Shown after the core's /help lines: what only the full-screen app adds.
APP_HELP_LINES = (
    N_("  /retry           resend the last message that failed (or Ctrl+R)"),
    N_("  /clear           empty the log on this screen (the server keeps the history)"),
    N_("  /open ID         show a saved text file (Esc closes it)"),
    N_("Keys: Enter send · Shift+Enter, Alt+Enter or Ctrl+J new line · Tab complete names and /commands"),
    N_("      Up/Down history · PgUp/PgDn scroll · Ctrl+P command palette · Ctrl+Q quit"),
    N_("Rooms: Alt+1..9 go to room N · Ctrl+PgUp/Ctrl+PgDn previous/next · click a room in the list"),
    N_("Class: Alt+V then 1-9 votes in the poll · Alt+Q the help queue (operators): n next, d done"),
    N_("Copy: select text in the log with the mouse (Shift+drag where the terminal grabs the mouse)."),
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


@dataclass(eq=False)
class _Room:
    """One room as this screen knows it: its log, members, settings, draft and unread counts."""

    name: str
    log: MessageLog
    #: casefolded name -> name as the server spells it.
    members: dict[str, str] = field(default_factory=dict)
    #: casefolded name -> away reason ("" for none).
    away: dict[str, str] = field(default_factory=dict)
    #: casefolded name -> MEMBER_* bits (only members that have some).
    modes: dict[str, int] = field(default_factory=dict)
    topic: str = ""
    #: ROOM_* bits.
    room_modes: int = 0
    #: Our own MEMBER_* bits here.
    you: int = 0
    #: Still in it; False once kicked, banned (or parted from the last room).
    joined: bool = True
    #: Why we are not in it any more, for the rooms list; and the whole sentence.
    left_reason: str = ""
    left_line: str = ""
    #: What was being written here when the user switched away.
    draft: str = ""
    #: Messages (and mentions of us) that arrived while another room was on screen.
    unread: int = 0
    mentions: int = 0
    announcement: ev.Announcement | None = None
    tally: ev.AnnouncementTally | None = None
    #: The announcement id acknowledged to the server (0: none yet).
    acked: int = 0
    #: The server may hold older messages than the log shows; a page was asked for.
    history_more: bool = True
    history_pending: bool = False
    #: The classroom (20): the help queue (operators), the latest poll, when quiet mode ends
    #: (None: not quiet), our own hand ("" when down), and where members sit.
    queue: tuple[ev.QueueItem, ...] = ()
    poll: ev.PollShown | None = None
    #: The closed poll whose results the user hid (0: none): its card stays hidden.
    poll_hidden: int = 0
    quiet_until: float | None = None
    hand: str = ""
    seats: dict[str, str] = field(default_factory=dict)

    @property
    def operator(self) -> bool:
        return bool(self.you & (MEMBER_OP | MEMBER_ADMIN))

    def quiet(self, now: float) -> bool:
        """Quiet mode is on here now."""
        return self.quiet_until is not None and self.quiet_until > now

    def row(self) -> RoomRow:
        return RoomRow(
            self.name, self.unread, self.mentions, bool(self.room_modes & ROOM_PRIVATE),
            self.joined, self.left_reason,
        )  # fmt: skip


def _no_switch(room: str) -> None:
    """Default for `RoomScreen(switch_room=...)`: nobody to tell."""


def _no_ack(room: str, announcement_id: int) -> None:
    """Default for `RoomScreen(announcement_seen=...)`: nobody to tell."""


class RoomScreen(KeysInLanguage, Screen[None]):
    """The chat room. `submit` sends a typed line through the client core; `leave` quits politely."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "resend", N_("Resend failed")),
        # Priority: the input line would take Page Up/Down for itself, but it has nothing to scroll.
        Binding("pageup", "scroll_log(-1)", N_("Scroll"), key_display="PgUp/PgDn", priority=True),
        Binding("pagedown", "scroll_log(1)", N_("Scroll"), show=False, priority=True),
        Binding("ctrl+pageup", "cycle_room(-1)", N_("Prev room"), show=False, priority=True),
        Binding("ctrl+pagedown", "cycle_room(1)", N_("Next room"), show=False, priority=True),
        *(
            Binding(f"alt+{n}", f"goto_room({n})", numbered(N_("Room {n}"), n), show=False, priority=True)
            for n in range(1, 10)
        ),
        Binding("alt+v", "focus_poll", N_("Vote"), show=False, priority=True),
        Binding("alt+q", "focus_queue", N_("Help queue"), show=False, priority=True),
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
        switch_room: Callable[[str], None] = _no_switch,
        announcement_seen: Callable[[str, int], None] = _no_ack,
        deliver: Callable[[Path, str], None] | None = None,
    ) -> None:
        """`deliver` (a browser tab of labchat-web): hands a saved download on to the browser."""
        super().__init__()
        self.server_label = server_label
        self._deliver = deliver
        #: The relay we are on after a move (protocol 22), "" while on the one given.
        self.relay_label = ""
        self._server_name = ""
        self._submit = submit
        self._leave = leave
        self._alert = alert
        self._tz = tz
        self._clock = clock
        self._max_entries = max_entries
        self.user = ""
        self.logged_in = False
        self._switch_room = switch_room
        self._announcement_seen = announcement_seen
        self._own: dict[int, Entry] = {}  # local_id -> our pending message's entry
        self._own_log: dict[int, MessageLog] = {}  # local_id -> the log that shows it
        self._queued: dict[int, _Unsent] = {}  # local_id -> how it was typed (for a resend)
        self.unsent: list[_Unsent] = []  # failed messages, newest last
        self._logs_made = 0
        # Until the login names the first room, the one log has no room ("").
        self._current = _Room("", self._new_log())
        self._rooms: dict[str, _Room] = {"": self._current}
        #: The server has rooms (LOGIN_OK's CAP_ROOMS): the rooms list is shown.
        self.rooms_enabled = False
        self._rooms_dirty = False

    def _new_log(self) -> MessageLog:
        self._logs_made += 1
        return MessageLog(
            id=f"log-{self._logs_made}", tz=self._tz, max_entries=self._max_entries, clock=self._clock
        )

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="room-body"):
            yield RoomList(id="room-list")
            with Vertical(id="room-main"):
                yield AnnouncementBanner(id="announcement")
                yield PollCard(id="poll")
                with ContentSwitcher(id="logs", initial=self._current.log.id):
                    yield self._current.log
            yield HelpQueue(id="help-queue", clock=self._clock)
            yield UserList(id="sidebar")
        yield FileTray(id="files")
        yield Composer(
            id="composer",
            names=lambda: self.user_list.users,
            commands=(*commands.command_names(), "retry", "clear"),
        )
        yield Footer()

    def on_mount(self) -> None:
        self.status.server = self.server_label
        self.query_one(RoomList).display = False  # until the server turns out to have rooms
        self.help_queue.display = False  # until an operator's room has someone waiting
        self.set_interval(QUIET_TICK_S, self._show_quiet)

    def on_screen_resume(self) -> None:
        self.composer.focus_input()
        self.call_after_refresh(self._acknowledge_announcement)  # the login screen covered it

    def on_resize(self, event: events.Resize) -> None:
        # In a narrow terminal the words matter more than the list (which /who still gives).
        self.set_class(event.size.width < NARROW_WIDTH, "-narrow")
        self.set_class(event.size.width < TINY_WIDTH, "-tiny")
        self.set_class(event.size.width < QUEUE_BESIDE_LIST_WIDTH, "-medium")

    @property
    def log_view(self) -> MessageLog:
        """The log of the room on screen."""
        return self._current.log

    @property
    def current_room(self) -> str:
        """The room on screen ("" before the login)."""
        return self._current.name

    @property
    def room_names(self) -> list[str]:
        """The rooms in the list, in order (left ones included, greyed)."""
        return [name for name in self._rooms if name]

    def room_log(self, room: str) -> MessageLog | None:
        """The log of `room` (None for a room not in the list)."""
        view = self._rooms.get(room)
        return view.log if view is not None else None

    @property
    def room_list(self) -> RoomList:
        return self.query_one(RoomList)

    @property
    def banner(self) -> AnnouncementBanner:
        return self.query_one(AnnouncementBanner)

    @property
    def help_queue(self) -> HelpQueue:
        return self.query_one(HelpQueue)

    @property
    def poll_card(self) -> PollCard:
        return self.query_one(PollCard)

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
        if self._open_typed(text):
            return
        view = self._current
        if not view.joined and _aimed_at_the_room(text):
            why = f" ({view.left_reason})" if view.left_reason else ""
            self.info(
                _(
                    "You are not in #{room} any more{why}: /join {room} to go back in, "
                    "or Alt+1..9 for another room."
                ).format(room=view.name, why=why),
                EntryKind.ERROR,
            )
            self.composer.focus_input(text)  # kept, to be sent elsewhere
            return
        joining = self._rooms.get(_join_target(text))
        if joining is not None and joining.joined:
            # /join of a room already held: the core switches without news (a new room's JOIN is
            # reported by CurrentRoomChanged once done).
            self.switch_to(joining.name)
        result = self._submit(text)
        self._file_answered(text, result)
        for line in result.local_lines:
            self.info(line, EntryKind.ERROR if result.error else EntryKind.INFO)
        if isinstance(commands.parse(text), commands.Help):
            for line in APP_HELP_LINES:
                self.info(_(line))
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

    @on(RoomList.Selected)
    def _room_selected(self, event: RoomList.Selected) -> None:
        self.switch_to(event.room)

    @on(HelpQueue.Next)
    def _queue_next(self, event: HelpQueue.Next) -> None:
        event.stop()
        self.run_line("/next")

    @on(HelpQueue.Done)
    def _queue_done(self, event: HelpQueue.Done) -> None:
        event.stop()
        self.run_line(f"/done {event.user}")

    @on(PollCard.Voted)
    def _poll_voted(self, event: PollCard.Voted) -> None:
        event.stop()
        if event.room == self._current.name:  # /vote is about the current room's poll
            self.run_line(f"/vote {event.choice}")

    @on(PollCard.Dismissed)
    def _poll_dismissed(self, event: PollCard.Dismissed) -> None:
        event.stop()
        view = self._view_for(event.room)
        view.poll_hidden = event.poll_id
        self.composer.focus_input()
        if view is self._current:
            self._show_classroom()

    def action_focus_poll(self) -> None:
        """Alt+V: to the poll card, where 1-9 vote (Esc comes back)."""
        if self.poll_card.display:
            self.poll_card.focus()
        else:
            self.app.bell()

    def action_focus_queue(self) -> None:
        """Alt+Q: to the help queue (operators), where n and d take and finish (Esc comes back)."""
        if self.help_queue.display:
            self.help_queue.query_one("#queue-entries").focus()
        else:
            self.app.bell()

    def action_goto_room(self, number: int) -> None:
        """Alt+N: the N-th room of the list."""
        names = self.room_names
        if 1 <= number <= len(names):
            self.switch_to(names[number - 1])

    def action_cycle_room(self, step: int) -> None:
        """Ctrl+PgUp / Ctrl+PgDn: the previous / next room, round the list."""
        names = self.room_names
        if len(names) > 1 and self._current.name in names:
            self.switch_to(names[(names.index(self._current.name) + step) % len(names)])

    def switch_to(self, room: str) -> None:
        """Show `room`: its log (where it was left), its draft, members, topic and announcement;
        and tell the client core that typed lines go there now."""
        view = self._rooms.get(room)
        if view is None or view is self._current or not room:
            return
        old = self._current
        old.draft = self.composer.text
        old.log.set_read_marker()  # what arrives from now on is unread when the user comes back
        self._current = view
        view.unread = view.mentions = 0
        view.log.looked_at()
        self.query_one("#logs", ContentSwitcher).current = view.log.id
        self.composer.focus_input(view.draft)
        self._show_room()
        self._switch_room(room)

    def _show_room(self) -> None:
        """Header, members, banner and rooms list for the room on screen."""
        view = self._current
        self.status.room = view.name
        self.status.topic = view.topic
        self._show_members()
        self._show_banner()
        self._show_classroom()
        self._show_rooms()

    def _show_members(self) -> None:
        view = self._current
        if view.joined:
            away = {view.members[k]: reason for k, reason in view.away.items() if k in view.members}
            modes = {view.members[k]: bits for k, bits in view.modes.items() if k in view.members}
            seats = {view.members[k]: seat for k, seat in view.seats.items() if k in view.members}
            self.user_list.set_users(list(view.members.values()), away, modes, seats)
        else:
            self.user_list.set_users([])

    def _show_banner(self) -> None:
        view = self._current
        self.banner.show(view.announcement, view.tally if view.operator else None, self._tz)
        self.call_after_refresh(self._acknowledge_announcement)

    def _acknowledge_announcement(self) -> None:
        """Tell the server the current room's announcement has been shown, once: only when the
        banner is on screen (this screen active, not covered by the login screen)."""
        view = self._current
        shown = view.announcement
        if (
            shown is None or not shown.text or view.acked == shown.announcement_id
            or not self.logged_in or not self.is_active or not self.banner.display
            or self.banner.announcement is not shown
        ):  # fmt: skip
            return
        view.acked = shown.announcement_id
        self._announcement_seen(view.name, shown.announcement_id)

    def _show_classroom(self) -> None:
        """The room on screen's help queue (operators, while someone is in it), poll card, the
        header's quiet note and our own hand."""
        view = self._current
        panel = self.help_queue
        panel.own_name = self.user
        panel.show(view.queue if view.operator and view.joined else ())
        panel.display = bool(panel.entries)
        self.set_class(panel.display, "-queue-open")
        poll = view.poll if view.joined else None
        if poll is not None and poll.closed and poll.poll_id == view.poll_hidden:
            poll = None  # its results hidden by the user (x); the log keeps them
        self.poll_card.show(poll, operator=view.operator)
        self.status.hand = view.hand if view.joined else ""
        self._show_quiet()

    def _show_quiet(self) -> None:
        """The header's "quiet: N min left" for the room on screen (redrawn as the minutes pass)."""
        view = self._current
        self.status.quiet = quiet_words(view.quiet_until, self._clock()) if view.joined else ""

    def _show_rooms(self) -> None:
        """Redraw the rooms list once the events being handled are done (a burst of messages in
        a background room redraws it once, not once per message)."""
        if not self._rooms_dirty:
            self._rooms_dirty = True
            self.call_later(self._redraw_rooms)

    def _redraw_rooms(self) -> None:
        self._rooms_dirty = False
        rooms = self.room_list
        rooms.display = self.rooms_enabled or len(self.room_names) > 1
        rooms.set_rooms([view.row() for view in self._rooms.values() if view.name], self._current.name)

    def _view_for(self, room: str) -> _Room:
        """The room's state, made (with its log) the first time the room is named."""
        view = self._rooms.get(room)
        if view is None:
            if not room:
                return self._current
            view = self._rooms[room] = _Room(room, self._new_log())
            view.log.display = False  # the switcher hides only the children it started with
            view.log.lay_out_like(self._current.log)
            self.query_one("#logs", ContentSwitcher).mount(view.log)
            self._show_rooms()
        return view

    def _drop_room(self, view: _Room) -> None:
        """Forget a room the user parted; another one comes on screen if it was this one."""
        if view is self._current:
            names = self.room_names
            index = names.index(view.name)
            rest = names[:index] + names[index + 1 :]
            self.switch_to(rest[min(index, len(rest) - 1)])
        del self._rooms[view.name]
        view.log.remove()
        self._show_rooms()

    def action_resend(self) -> None:
        """Send the newest failed message again."""
        if not self.unsent:
            self.info(_("Nothing to resend: no message failed."))
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
                self._show_user_joined(event)
            case ev.UserLeft():
                self._show_user_left(event)
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
            case ev.RelayMoved():
                self._show_relay_moved(event)
            case ev.LoggedIn():
                self._show_logged_in(event)
            case ev.LoginRetrying() if self.logged_in:
                self.info(
                    _("The server said: {reason}. Logging in again in {seconds} s.").format(
                        reason=event.reason, seconds=f"{event.retry_in_s:.0f}"
                    )
                )
            case ev.Closed():
                self._show_closed(event)
            case ev.RoomState():
                self._show_room_state(event)
            case ev.RoomLeft():
                self._show_room_left(event)
            case ev.RoomEvent():
                self._show_room_event(event)
            case ev.Announcement():
                self._show_announcement(event)
            case ev.AnnouncementTally():
                self._show_tally(event)
            case ev.RequestFailed():
                self.info(describe(event), EntryKind.ERROR)
            case ev.RoomList():
                self._show_room_list(event)
            case ev.CurrentRoomChanged():
                self._follow_current_room(event)
            case ev.FileOffered() | ev.FileProgress() | ev.FileDone() | ev.FileFailed():
                self._show_file_event(event)
            case ev.QueueUpdated():
                self._show_queue(event)
            case ev.PollShown():
                self._show_poll(event)

    def _show_state_changed(self, event: ev.StateChanged) -> None:
        # Shown as reported: the core only reports "reconnecting" once the server has owed an answer
        # for its `stall_s`, so a blip is already filtered out there.
        self.status.state = event.state
        self.status.detail = event.detail
        if event.rtt_s is not None:
            self.status.rtt_s = event.rtt_s
        self.composer.connected = event.state is ConnectionState.CONNECTED
        if self.logged_in and event.state is ConnectionState.RECONNECTING:
            self.info(_("Connection lost; reconnecting by itself. What you type waits and is sent after."))

    def set_rtt(self, rtt_s: float | None) -> None:
        """A fresh round-trip time measurement for the header."""
        # The app's refresh timer can still tick while the app shuts down and the header is gone.
        for status in self.query(StatusBar):
            status.rtt_s = rtt_s

    def _show_logged_in(self, event: ev.LoggedIn) -> None:
        self.user = event.user
        if not self._current.name:
            # The first login names the room the log so far belongs to.
            view = self._rooms.pop("")
            view.name = event.room
            self._rooms = {event.room: view, **self._rooms}
        self.rooms_enabled = self.rooms_enabled or event.rooms
        self.status.user = event.user
        self._server_name = event.server_name
        self._show_server()
        for view in self._rooms.values():
            view.log.set_own_name(event.user)
        self._show_room()
        self.user_list.own_name = event.user
        self.composer.set_prompt(event.user)
        if event.resumed:
            self.info(_("Reconnected."))
        else:
            self.logged_in = True
            self.info(
                _("Logged in as {user} to #{room}. Type /help for commands.").format(
                    user=event.user, room=event.room
                )
            )
            if event.registered:
                self.info(_("New account {user} registered: remember your password.").format(user=event.user))

    def _show_server(self) -> None:
        """`labchat at 10.0.0.5:8080` in the header: the relay we are on now (protocol 22)."""
        where = _("{server} at {address}")
        address = self.relay_label or self.server_label
        self.status.server = where.format(server=self._server_name, address=address)

    def _show_relay_moved(self, event: ev.RelayMoved) -> None:
        """Our relay stopped answering and the client moved to another relay of the same server."""
        self.relay_label = event.label
        self.info(_("Moved to {address}: the server's other relay. Nothing was lost.").format(
            address=self.relay_label
        ))  # fmt: skip
        if self._server_name:
            self._show_server()

    def _show_message_received(self, event: ev.MessageReceived) -> None:
        mentioned = not event.own and mentions(event.text, self.user)
        view = self._view_for(event.room)
        if view is not self._current and not event.own and not event.history:
            view.unread += 1
            view.mentions += mentioned
            self._show_rooms()
        view.log.add(
            Entry(
                EntryKind.ACTION if event.action else EntryKind.CHAT, event.ts, event.text,
                user=event.user, own=event.own, mention=mentioned, history=event.history, seq=event.seq,
            )
        )  # fmt: skip
        if mentioned and not event.history:
            if view is not self._current:
                title = _("{user} mentioned you in #{room}").format(user=event.user, room=event.room)
            else:
                title = _("{user} mentioned you").format(user=event.user)
            self._alert(title, event.text)

    def _show_message_queued(self, event: ev.MessageQueued) -> None:
        if event.to is not None:
            kind = EntryKind.PRIVATE_OUT
        else:
            kind = EntryKind.ACTION if event.action else EntryKind.CHAT
        user = self.user_list.canonical(event.to) if event.to is not None else self.user
        entry = Entry(kind, self._clock(), event.text, user=user, own=True, delivery=Delivery.PENDING)
        room = self._rooms.get(event.room)
        if event.to is None and room is not None and room.quiet(self._clock()) and not room.operator:
            # Quiet mode (20.5): the server passes a member's line to the operators only.
            self._to_operators(entry, event.text, event.action, True)
        # A private message shows where it was typed; a room message in its room.
        log = self.log_view if event.to is not None else self._view_for(event.room).log
        self._own[event.local_id] = log.add(entry)
        self._own_log[event.local_id] = log
        self._queued[event.local_id] = _Unsent(event.text, event.action, event.to)

    def _to_operators(self, entry: Entry, text: str, action: bool, to_ops: bool) -> None:
        """Show our room line as said to the operators only (quiet mode), or as said to the room."""
        if to_ops:
            entry.kind, entry.user, entry.label = EntryKind.PRIVATE_OUT, TO_OPERATORS, _(TO_OPERATORS_LABEL)
            entry.text = f"* {self.user} {text}" if action else text
        else:
            entry.kind = EntryKind.ACTION if action else EntryKind.CHAT
            entry.user, entry.label, entry.text = self.user, "", text

    def _show_message_delivered(self, event: ev.MessageDelivered) -> None:
        queued = self._queued.pop(event.local_id, None)
        entry = self._own.pop(event.local_id, None)
        log = self._own_log.pop(event.local_id, self.log_view)
        if entry is not None:
            # The time it was typed stays: a line written while offline and delivered a minute
            # later is shown when it was written, as every chat client does.
            entry.delivery = Delivery.DELIVERED
            entry.sent_ts = event.ts  # shown beside the typed time when much later
            if event.to is None and queued is not None and queued.to is None:
                # The server's word settles a guess made while typing: a room line it accepted
                # without a place in the room (seq 0) went to the operators only (20.5).
                self._to_operators(entry, queued.text, queued.action, event.seq == 0)
            log.update(entry)

    def _show_message_failed(self, event: ev.MessageFailed) -> None:
        unsent = self._queued.pop(event.local_id, None) or _Unsent(event.text, False, event.to)
        self.unsent.append(unsent)
        entry = self._own.pop(event.local_id, None)
        log = self._own_log.pop(event.local_id, self.log_view)
        if entry is not None:
            entry.delivery = Delivery.FAILED
            entry.note = event.reason
            log.update(entry)

    def _show_private_received(self, event: ev.PrivateReceived) -> None:
        if event.to_ops and event.to in self._rooms:
            self._show_to_operators(event)
            return
        text = event.text
        if event.held:
            text = _("{text}  (sent while you were offline)").format(text=event.text)
        self.log_view.add(Entry(EntryKind.PRIVATE_IN, event.ts, text, user=event.sender))
        self._alert(_("{user} (private)").format(user=event.sender), event.text)

    def _show_to_operators(self, event: ev.PrivateReceived) -> None:
        """A member's line in a quiet room, passed to us as one of its operators: in that room's
        log, marked as meant for the operators only."""
        view = self._view_for(event.to)
        said = f"* {event.sender} {event.text}" if event.action else event.text
        entry = Entry(EntryKind.PRIVATE_IN, event.ts, said, user=event.sender, label=_(TO_OPERATORS_LABEL))
        view.log.add(entry)
        if view is not self._current:
            view.unread += 1
            self._show_rooms()
        title = _("{user} (to the operators of #{room})").format(user=event.sender, room=event.to)
        self._alert(title, event.text)

    def _show_user_joined(self, event: ev.UserJoined) -> None:
        view = self._view_for(event.room)
        view.members[event.user.casefold()] = event.user
        if event.seat:
            view.seats[event.user.casefold()] = event.seat
        if view is self._current:
            self.user_list.add_user(event.user, event.seat)
        joined = _("{user} joined").format(user=event.user)
        view.log.add(Entry(EntryKind.JOIN, event.ts, joined, user=event.user))

    def _show_user_left(self, event: ev.UserLeft) -> None:
        view = self._view_for(event.room)
        key = event.user.casefold()
        view.members.pop(key, None)
        view.away.pop(key, None)
        view.modes.pop(key, None)
        if view is self._current:
            self.user_list.remove_user(event.user)
        if event.reason == "quit":
            text = _("{user} left").format(user=event.user)
        else:
            text = _("{user} left ({reason})").format(user=event.user, reason=event.reason)
        view.log.add(Entry(EntryKind.LEAVE, event.ts, text, user=event.user))

    def _show_user_away(self, event: ev.UserAway) -> None:
        view = self._view_for(event.room)
        if event.away:
            view.away[event.user.casefold()] = event.reason
        else:
            view.away.pop(event.user.casefold(), None)
        if view is self._current:
            self.user_list.set_away(event.user, event.reason if event.away else None)
        own = event.user.casefold() == self.user.casefold()
        if own:
            self.status.away = event.reason if event.away else None
        if not event.away:
            text = _("You are back") if own else _("{user} is back").format(user=event.user)
        elif own:
            if event.reason:
                text = _("You are away: {reason} (/back to return)").format(reason=event.reason)
            else:
                text = _("You are away (/back to return)")
        elif event.reason:
            text = _("{user} is away: {reason}").format(user=event.user, reason=event.reason)
        else:
            text = _("{user} is away").format(user=event.user)
        view.log.add(Entry(EntryKind.INFO, event.ts, text))

    def _show_search_results(self, event: ev.SearchResults) -> None:
        if event.error:
            self.info(
                _("Search for “{query}” failed: {error}").format(query=event.query, error=event.error),
                EntryKind.ERROR,
            )
            return
        if not event.hits:
            self.info(_("No messages with “{query}” in this room's history.").format(query=event.query))
            return
        if event.more:
            found = ngettext(
                "{count} message with “{query}” (the newest; narrow the words to see others), newest first:",
                "{count} messages with “{query}” (the newest; narrow the words to see others), newest first:",
                len(event.hits),
            )
        else:
            found = ngettext(
                "{count} message with “{query}”, newest first:",
                "{count} messages with “{query}”, newest first:",
                len(event.hits),
            )
        self.info(found.format(count=len(event.hits), query=event.query))
        today = local_date(self._clock(), self._tz)
        for hit in event.hits:
            who = f"* {hit.user}" if hit.action else f"<{hit.user}>"
            self.info(f"  {stamp(hit.ts, self._tz, today)}  {who} {hit.snippet}")

    @on(MessageLog.TopReached)
    def _top_reached(self) -> None:
        # Scrolled to the very top: the page before the oldest message shown, once at a time.
        view = self._current
        if self.logged_in and view.joined and view.history_more and not view.history_pending:
            result = self._submit("/history")
            view.history_pending = not result.error

    def _show_history_page(self, event: ev.HistoryPage) -> None:
        view = self._view_for(event.room)
        view.history_pending = False
        if event.error:
            failed = _("Older messages could not be fetched: {error}").format(error=event.error)
            self.info(failed, EntryKind.ERROR)
            return
        view.history_more = event.more
        entries = [
            Entry(
                EntryKind.ACTION if m.action else EntryKind.CHAT, m.ts, m.text, user=m.user,
                own=m.own, history=True, seq=m.seq,
            )
            for m in event.messages
        ]  # fmt: skip
        if not event.more:
            first_ts = entries[0].ts if entries else self._clock()
            entries.insert(0, Entry(EntryKind.INFO, first_ts, _("The beginning of this room's history.")))
        view.log.prepend(entries)

    def _show_presence_updated(self, event: ev.PresenceUpdated) -> None:
        view = self._view_for(event.room)
        view.members = {name.casefold(): name for name in event.users}
        view.away = {name.casefold(): reason for name, reason in event.away.items()}
        view.modes = {name.casefold(): bits for name, bits in event.modes.items() if bits}
        view.seats = {name.casefold(): seat for name, seat in event.seats.items() if seat}
        if view is self._current:
            self._show_members()
        if event.requested:
            names = [_("{name} (away)").format(name=u) if u in event.away else u for u in event.users]
            self.info(_("{count} online: {names}").format(count=len(event.users), names=", ".join(names)))
            seated = seats_line(event.users, event.seats)
            if seated:  # the TA's question: which PC to walk to (20.2)
                self.info(seated)

    def _show_closed(self, event: ev.Closed) -> None:
        self.composer.connected = False
        if self.logged_in:
            self.user_list.set_offline()
            for view in self._rooms.values():
                view.members.clear()
        if self.logged_in and event.reason != "quit":
            self.info(
                _("Disconnected: {reason}. Nothing more will arrive; Ctrl+Q quits.").format(
                    reason=event.reason
                ),
                EntryKind.ERROR,
            )

    # ------------------------------------------------------------ rooms and roles

    def _show_room_state(self, event: ev.RoomState) -> None:
        view = self._view_for(event.room)
        was_joined = view.joined
        view.topic, view.room_modes, view.you = event.topic, event.modes, event.you
        view.quiet_until = event.quiet_until
        view.joined, view.left_reason = True, ""
        if event.joined and (not was_joined or not view.log.entries):
            view.log.add(Entry(EntryKind.INFO, self._clock(), describe(event)))
        if view is self._current:
            self._show_room()
        else:
            self._show_rooms()

    def _follow_current_room(self, event: ev.CurrentRoomChanged) -> None:
        """The client core moved its current room by itself: our JOIN succeeded (show the new room,
        as every chat does), or the room on screen was left (show the one lines go to now, with
        the news of why, so that nothing typed next goes somewhere unseen)."""
        left = self._current
        if not event.room or event.room not in self._rooms:
            return
        self.switch_to(event.room)
        if not event.joined and left is not self._current and not left.joined and left.left_line:
            self.info(left.left_line, EntryKind.ERROR)

    def _show_room_left(self, event: ev.RoomLeft) -> None:
        view = self._rooms.get(event.room)
        if view is None:
            return
        line = describe(event)
        if event.code == 0 and len(self.room_names) > 1:
            self._drop_room(view)
            self.info(line)
            return
        view.joined = False
        view.members.clear()
        view.away.clear()
        view.modes.clear()
        view.you = 0
        view.queue, view.poll, view.quiet_until, view.hand = (), None, None, ""
        if event.code == ErrorCode.KICKED:
            view.left_reason = _("kicked by {user}").format(user=event.by) if event.by else _("kicked")
        elif event.code == ErrorCode.BANNED:
            view.left_reason = _("banned by {user}").format(user=event.by) if event.by else _("banned")
        else:
            view.left_reason = _("left")
        if event.reason:
            view.left_reason += f": {event.reason}"
        view.left_line = line
        view.log.add(Entry(EntryKind.ERROR, self._clock(), line))
        if view is not self._current:
            where = "" if f"#{event.room}" in line else f"#{event.room}: "
            self.info(f"{where}{line}", EntryKind.ERROR)
            self._show_rooms()
        else:
            self._show_room()

    def _show_room_event(self, event: ev.RoomEvent) -> None:
        view = self._view_for(event.room)
        key = event.target.casefold()
        if event.target:
            bits = member_bits_after(view.modes.get(key, 0), event.action)
            if bits:
                view.modes[key] = bits
            else:
                view.modes.pop(key, None)
        # With our name, news of our own hand reads "you are 3rd in the queue".
        view.log.add(Entry(EntryKind.NOTICE, event.ts, describe(event, me=self.user)))
        self._classroom_news(view, event)
        if view is self._current:
            self._show_members()
            self._show_classroom()

    def _classroom_news(self, view: _Room, event: ev.RoomEvent) -> None:
        """What a room event changes of the classroom state: our hand, quiet mode's end."""
        hand = hand_words(event, self.user)
        if hand is not None:
            view.hand = hand
        if event.action == Action.QUIET_SET:
            if event.value == "off":
                view.quiet_until = None
            elif event.minutes > 0 and view.quiet_until is None:
                # The ROOM_STATE that follows carries the exact end; until then, count from now.
                view.quiet_until = event.ts + event.minutes * 60

    def _show_queue(self, event: ev.QueueUpdated) -> None:
        view = self._view_for(event.room)
        view.queue = event.entries
        if view is self._current:
            self._show_classroom()

    def _show_poll(self, event: ev.PollShown) -> None:
        """A poll opened, closed, or its tally moved: the card, and a line in the log when it
        opens or closes (so the log keeps the question and the result)."""
        view = self._view_for(event.room)
        old = view.poll
        view.poll = event
        if old is None or old.poll_id != event.poll_id:
            options = "  ".join(f"{n}) {option}" for n, option in enumerate(event.options, 1))
            if not event.closed:
                line = _("poll #{id} by {actor}: {question}  {options}  — /vote N").format(
                    id=event.poll_id, actor=event.by, question=event.question, options=options
                )
                view.log.add(Entry(EntryKind.NOTICE, self._clock(), line))
                if event.by.casefold() != self.user.casefold():
                    # A question to the class is worth a bell, like a mention.
                    if view is not self._current:
                        view.unread += 1
                        view.mentions += 1
                        self._show_rooms()
                    if view is not self._current:
                        title = _("poll by {actor} in #{room}").format(actor=event.by, room=event.room)
                    else:
                        title = _("poll by {actor}").format(actor=event.by)
                    self._alert(title, event.question)
        if event.closed and (old is None or old.poll_id != event.poll_id or not old.closed):
            if event.counts:
                result = poll_tally_line(event)
            else:
                result = _("poll #{id} closed").format(id=event.poll_id)
            view.log.add(Entry(EntryKind.NOTICE, self._clock(), f"{result} — {event.question}"))
        if view is self._current:
            self._show_classroom()

    def _show_announcement(self, event: ev.Announcement) -> None:
        view = self._view_for(event.room)
        view.announcement = event if event.text else None
        if view.tally is not None and view.tally.announcement_id != event.announcement_id:
            view.tally = None
        if view is self._current:
            self._show_banner()

    def _show_tally(self, event: ev.AnnouncementTally) -> None:
        view = self._view_for(event.room)
        view.tally = event
        if view is self._current:
            self._show_banner()

    def _show_room_list(self, event: ev.RoomList) -> None:
        if event.error:
            self.info(_("The rooms could not be listed: {error}").format(error=event.error), EntryKind.ERROR)
            return
        for line in room_list_lines(event.rooms, event.more):
            self.info(line)

    def announcement_text(self, room: str) -> str:
        """What `room`'s banner says (its tally included for operators); "" when none."""
        view = self._rooms.get(room)
        if view is None or view.announcement is None:
            return ""
        text = view.announcement.text
        if view.operator and view.tally is not None:
            text += "\n" + tally_line(view.tally)
        return text

    def unread(self, room: str) -> tuple[int, int]:
        """(unread messages, mentions) of `room` since the user last had it on screen."""
        view = self._rooms.get(room)
        return (view.unread, view.mentions) if view is not None else (0, 0)

    # ------------------------------------------------------------ files (protocol 21)

    @property
    def file_tray(self) -> FileTray:
        return self.query_one(FileTray)

    def _show_file_event(self, event: ev.FileOffered | ev.FileProgress | ev.FileDone | ev.FileFailed) -> None:
        """A card for each offer and transfer, and a log line for each step but progress."""
        tray = self.file_tray
        me = self.user or None
        log = self.log_view
        if log.anchored:
            # The tray may grow and take lines from the log: the newest message stays in view.
            self.call_after_refresh(log.jump_to_bottom)
        match event:
            case ev.FileOffered():
                tray.offered(event, me)
                self.log_view.add(Entry(EntryKind.NOTICE, event.ts, file_words.offer_line(event, me)))
            case ev.FileProgress():
                tray.progress(event)
            case ev.FileDone():
                tray.done(event)
                self.info(file_words.done_line(event))
                if self._deliver is not None and event.direction == "down" and event.path:
                    self._to_browser(Path(event.path), event.name)
            case ev.FileFailed():
                tray.failed(event)
                self.info(file_words.failed_line(event), EntryKind.ERROR)

    def _to_browser(self, path: Path, name: str) -> None:
        """labchat-web: the tab saved the file on the web server's machine; the student's browser
        gets it as a download (a folder stays there: a browser takes one file)."""
        assert self._deliver is not None
        if not path.is_file():
            return
        self._deliver(path, name)
        self.info(_("{name} sent to your browser's downloads").format(name=name))

    def _file_answered(self, text: str, result: Submitted) -> None:
        """/accept N or /decline N went through: the card follows, whether typed or clicked."""
        answer = _FILE_ANSWER.match(text.strip())
        if answer is None or result.error:
            return
        file_id = int(answer["id"])
        if answer["verb"].lower() == "accept":
            self.file_tray.accepted(file_id)
        else:
            self.file_tray.remove_card("down", file_id)

    def _open_typed(self, text: str) -> bool:
        """/open ID of a file saved in this session: shown here. Other IDs go on to the core."""
        typed = _FILE_OPEN.match(text.strip())
        if typed is None:
            return False
        path = self.file_tray.saved.get(int(typed["id"]))
        if path is None:
            return False
        self.open_file(path)
        return True

    def open_file(self, path: Path) -> None:
        """The viewer for a small text file; for anything else, one line that says why not."""
        problem = view_problem(path)
        if problem is not None:
            self.info(problem)
            return
        self.app.push_screen(FileViewer(path))

    @on(FileCard.Chosen)
    def _file_chosen(self, event: FileCard.Chosen) -> None:
        card = event.card
        if event.action == "dismiss":
            self.file_tray.remove_card(*card.key)
        elif event.action == "open" and card.path is not None:
            self.open_file(card.path)
        elif event.action in ("accept", "decline"):
            self.run_line(f"/{event.action} {card.file_id}")


#: Typed commands that act on the room on screen (not sent while it is one we were put out of).
_ROOM_COMMANDS = frozenset(
    {
        "me", "topic", "invite", "key", "op", "deop", "voice", "devoice", "kick", "mute", "unmute",
        "ban", "unban", "moderate", "private", "topiclock", "announce", "part",
    }
)  # fmt: skip


def _aimed_at_the_room(text: str) -> bool:
    """Would this typed line say something in, or change, the room on screen?"""
    line = text.strip()
    if not line.startswith("/") or line.startswith("//"):
        return bool(line)
    word = line[1:].split(maxsplit=1)[0].lower() if len(line) > 1 else ""
    return word in _ROOM_COMMANDS and not (word == "part" and len(line.split()) > 1)


def _join_target(text: str) -> str:
    """The room named by a typed `/join ROOM [KEY]`, as the wire spells it; "" for any other line."""
    words = text.split()
    if len(words) < 2 or words[0].lower() != "/join":
        return ""
    return words[1].removeprefix("#").lower()


#: A typed answer to an offer, and /open, as commands.py spells them.
_FILE_ANSWER = re.compile(r"/(?P<verb>accept|decline)\s+(?P<id>\d+)$", re.IGNORECASE)
_FILE_OPEN = re.compile(r"/open\s+(?P<id>\d+)$", re.IGNORECASE)
