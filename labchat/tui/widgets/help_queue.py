"""The help queue panel: for a room's operators, the students waiting for help (docs/protocol.md 20.3).

One entry per raised hand, in queue order: its place, the student, where they sit, how long they
have waited (updated as the minutes pass) and their question; an entry an operator has taken says
who is on the way. "Next" (key n) takes the first student still waiting, "Done" (key d) removes the
highlighted entry once helped. The panel asks nothing of the server itself: it posts `Next` and
`Done`, and the room screen turns them into the typed commands `/next` and `/done NAME`, so the app
and line mode go through the same client code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Label, OptionList
from textual.widgets.option_list import Option

from ...i18n import N_, _
from ...protocol import events as ev
from ..classroom_words import waiting_words
from .composer import Composer

#: How often the waiting times are redrawn (they show whole minutes).
TICK_S = 15.0


class HelpQueue(Vertical):
    """The queue of one room, shown to its operators; hidden while nobody is in it."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "help-queue--place",
        "help-queue--seat",
        "help-queue--wait",
        "help-queue--question",
        "help-queue--taken",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: the room screen hands printable keys nobody bound to the input line.
        Binding("n", "next", N_("Next student"), priority=True),
        Binding("d", "done", N_("Done"), priority=True),
        Binding("escape", "leave", N_("Back to typing")),
    ]

    class Next(Message):
        """The operator asked for the next waiting student (/next)."""

    @dataclass
    class Done(Message):
        """The operator is done helping `user` (/done NAME)."""

        user: str

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._clock = clock
        self.entries: tuple[ev.QueueItem, ...] = ()
        self.own_name = ""

    def compose(self) -> ComposeResult:
        yield Label(_("Help queue"), id="queue-title")
        yield OptionList(id="queue-entries")
        with Horizontal(id="queue-actions"):
            yield Button(_("Next (n)"), id="queue-next", compact=True)
            yield Button(_("Done (d)"), id="queue-done", compact=True)

    def on_mount(self) -> None:
        self.set_interval(TICK_S, self._tick)

    def _tick(self) -> None:
        if self.display and self.entries:
            self._redraw()  # the minutes waited move on

    def show(self, entries: tuple[ev.QueueItem, ...]) -> None:
        """Replace the queue shown (a QueueUpdated, or another room came on screen)."""
        self.entries = entries
        self._redraw()

    @property
    def waiting(self) -> int:
        """Entries nobody has taken yet."""
        return sum(1 for entry in self.entries if not entry.taken_by)

    def lines(self) -> list[str]:
        """The entries as plain text, one per entry, for tests and screen readers."""
        return [self._label(place, entry).plain for place, entry in enumerate(self.entries, 1)]

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"help-queue--{name}", partial=True)

    def _label(self, place: int, entry: ev.QueueItem) -> Text:
        text = Text.assemble((f"{place}. ", self._style("place")), entry.user)
        if entry.seat:
            text.append(f" · {entry.seat}", style=self._style("seat"))
        text.append(f" · {waiting_words(entry.since, self._clock())}", style=self._style("wait"))
        if entry.question:
            text.append(f"\n   {entry.question}", style=self._style("question"))
        if entry.taken_by:
            helping = (
                _("you are helping")
                if entry.taken_by.casefold() == self.own_name.casefold()
                else _("{user} is helping").format(user=entry.taken_by)
            )
            text.append(f"\n   → {helping}", style=self._style("taken"))
        return text

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        options = self.query_one("#queue-entries", OptionList)
        highlighted = options.highlighted_option
        keep = highlighted.id if highlighted is not None else None
        options.set_options(
            Option(self._label(place, entry), id=entry.user.casefold())
            for place, entry in enumerate(self.entries, 1)
        )
        ids = [entry.user.casefold() for entry in self.entries]
        if keep in ids:
            options.highlighted = ids.index(keep)
        total, waiting = len(self.entries), self.waiting
        title = _("Help queue · {waiting} waiting").format(waiting=waiting) if waiting else _("Help queue")
        if total > waiting:
            title = _("Queue · {waiting} waiting · {taken} taken").format(
                waiting=waiting, taken=total - waiting
            )
        self.query_one("#queue-title", Label).update(title)

    def done_target(self) -> str | None:
        """Whom "Done" is about: the highlighted entry, else the first one taken by us, else the
        first taken one; None when the queue is empty."""
        options = self.query_one("#queue-entries", OptionList)
        index = options.highlighted
        if index is not None and 0 <= index < len(self.entries):
            return self.entries[index].user
        own = self.own_name.casefold()
        for entry in self.entries:
            if entry.taken_by and entry.taken_by.casefold() == own:
                return entry.user
        for entry in self.entries:
            if entry.taken_by:
                return entry.user
        return self.entries[0].user if self.entries else None

    def action_leave(self) -> None:
        """Esc: back to the input line."""
        self.screen.query_one(Composer).focus_input()

    def action_next(self) -> None:
        self.post_message(self.Next())

    def action_done(self) -> None:
        user = self.done_target()
        if user is not None:
            self.post_message(self.Done(user))

    @on(Button.Pressed, "#queue-next")
    def _next_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_next()

    @on(Button.Pressed, "#queue-done")
    def _done_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_done()
