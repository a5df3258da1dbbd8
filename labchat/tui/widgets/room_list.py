"""The rooms list beside the log: every room the user is in, as WeeChat's buffer list or Slack's sidebar.

Each row is the room's number (Alt+1..9 jumps there), its name (a lock for a private room), and on
the right its unread count, or its mentions of you as a "@N" badge, which matters more. The current
room is highlighted. A room the user was kicked or banned from stays, greyed, with the reason on a
second line, so that what happened is not lost with the room. Clicking (or Enter) switches to it.

The widget only draws what the room screen tells it (`set_rooms`); it keeps no state of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Resize
from textual.message import Message
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...i18n import _

#: The mark before a private room's name, instead of '#'.
PRIVATE_MARK = "🔒"


@dataclass(frozen=True, slots=True)
class RoomRow:
    """What one row shows."""

    room: str
    unread: int = 0
    mentions: int = 0
    private: bool = False
    #: Still in the room; False after a kick or a ban (the row is greyed).
    joined: bool = True
    #: Why we are no longer in it ("kicked by teacher: spam").
    left_reason: str = ""


class RoomList(Vertical):
    """The rooms, in join order, with unread and mention badges; posts `Selected` on a click."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "room-list--number",
        "room-list--current",
        "room-list--unread",
        "room-list--mention",
        "room-list--left",
    }

    @dataclass
    class Selected(Message):
        """The user picked a room (click or Enter): the room screen switches to it."""

        room: str

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._rows: list[RoomRow] = []
        self._current = ""

    def compose(self) -> ComposeResult:
        yield Label(_("Rooms"), id="room-count")
        yield OptionList(id="rooms")

    @property
    def rooms(self) -> list[str]:
        """The rooms shown, in order."""
        return [row.room for row in self._rows]

    @property
    def rows(self) -> list[RoomRow]:
        return list(self._rows)

    @property
    def current(self) -> str:
        return self._current

    def set_rooms(self, rows: list[RoomRow], current: str) -> None:
        """Show these rooms, `current` highlighted."""
        self._rows = list(rows)
        self._current = current
        self._redraw()

    def on_resize(self, event: Resize) -> None:
        self._redraw()  # the badges are aligned to the right edge

    def _redraw(self) -> None:
        option_list = self.query_one("#rooms", OptionList)
        width = max(8, option_list.scrollable_content_region.width or self.size.width - 1)
        options = [
            Option(self._label(i, row, width), id=f"room-{row.room}") for i, row in enumerate(self._rows)
        ]
        option_list.set_options(options)
        if self._current in self.rooms:
            option_list.highlighted = self.rooms.index(self._current)
        joined = sum(1 for row in self._rows if row.joined)
        self.query_one("#room-count", Label).update(_("Rooms · {count}").format(count=joined))

    def _label(self, index: int, row: RoomRow, width: int) -> Text:
        def style(name: str) -> Style:
            return self.get_component_rich_style(f"room-list--{name}", partial=True)

        number = f"{index + 1} " if index < 9 else "  "
        badge = Text()
        if row.mentions:
            badge = Text(f" @{row.mentions} ", style=style("mention"))
        elif row.unread:
            badge = Text(f" {row.unread}", style=style("unread"))
        mark = PRIVATE_MARK if row.private else "#"
        name = Text(f"{mark}{row.room}", no_wrap=True, overflow="ellipsis")
        room_width = max(1, width - len(number) - badge.cell_len)
        name.truncate(room_width, overflow="ellipsis", pad=True)
        line = Text.assemble((number, style("number")), name, badge, no_wrap=True, overflow="ellipsis")
        if row.room == self._current:
            line.stylize(style("current"))
        if not row.joined:
            line.stylize(style("left"))
            if row.left_reason:
                reason = Text(f"\n  {row.left_reason}", style=style("left"))
                line.append_text(reason)
        return line

    @on(OptionList.OptionSelected, "#rooms")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        key = event.option.id
        if key is not None and key.startswith("room-"):
            self.post_message(self.Selected(key.removeprefix("room-")))
