"""The sidebar: who is online, and how many. Selecting a name starts a private message to them.

In a server with rooms each name carries its role in the room on screen, as IRC clients show it:
`@` an operator (or admin), `+` voiced; and a dim mark for a muted member and for a guest. In a
classroom (protocol 20.2) each name is followed, dimmed, by the seat the user sits at when known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...i18n import _
from ...protocol.messages import MEMBER_ADMIN, MEMBER_GUEST, MEMBER_MUTED, MEMBER_OP, MEMBER_VOICE
from ..formatting import NICK_COLOURS, nick_colour


def mode_badge(bits: int) -> str:
    """The one-character role badge before a name: '@' operator or admin, '+' voiced, else ''."""
    if bits & (MEMBER_OP | MEMBER_ADMIN):
        return "@"
    if bits & MEMBER_VOICE:
        return "+"
    return ""


class UserList(Vertical):
    """Online users, sorted case-insensitively, each in their sender colour; yourself marked."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "user-list--you",
        "user-list--away",
        "user-list--badge",
        "user-list--seat",
        *(f"user-list--nick-{i}" for i in range(NICK_COLOURS)),
    }

    @dataclass
    class Selected(Message):
        """The user picked a name (Enter or click): the room offers a /msg to them."""

        name: str

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._users: dict[str, str] = {}  # casefolded name -> name as the server spells it
        self._away: dict[str, str] = {}  # casefolded name -> away reason
        self._modes: dict[str, int] = {}  # casefolded name -> MEMBER_* bits
        self._seats: dict[str, str] = {}  # casefolded name -> seat label
        self.own_name = ""

    def compose(self) -> ComposeResult:
        yield Label(_("Online"), id="user-count")
        yield OptionList(id="users")

    @property
    def users(self) -> list[str]:
        """The names shown, in display order."""
        return [self._users[key] for key in sorted(self._users)]

    def set_users(
        self,
        names: tuple[str, ...] | list[str],
        away: dict[str, str] | None = None,
        modes: dict[str, int] | None = None,
        seats: dict[str, str] | None = None,
    ) -> None:
        """Replace the whole list (a presence update from the server, or another room shown), with
        who is away and why, everyone's MEMBER_* bits in the room, and where they sit."""
        self._users = {name.casefold(): name for name in names}
        self._away = {name.casefold(): reason for name, reason in (away or {}).items()}
        self._modes = {name.casefold(): bits for name, bits in (modes or {}).items()}
        self._seats = {name.casefold(): seat for name, seat in (seats or {}).items() if seat}
        self._refresh_list()

    def modes_of(self, name: str) -> int:
        """`name`'s MEMBER_* bits in the room shown (0: a plain member)."""
        return self._modes.get(name.casefold(), 0)

    def seat_of(self, name: str) -> str:
        """Where `name` sits ("" when unknown)."""
        return self._seats.get(name.casefold(), "")

    def set_away(self, name: str, reason: str | None) -> None:
        """`name` went away (for `reason`, "" if none) or came back (None)."""
        if reason is None:
            self._away.pop(name.casefold(), None)
        else:
            self._away[name.casefold()] = reason
        self._refresh_list()

    def away_reason(self, name: str) -> str | None:
        """Why `name` is away ("" for no reason given), or None when they are not."""
        return self._away.get(name.casefold())

    def add_user(self, name: str, seat: str = "") -> None:
        """A member who joined; `seat`: where they sit, when the server said (20.2)."""
        self._users[name.casefold()] = name
        if seat:
            self._seats[name.casefold()] = seat
        self._refresh_list()

    def remove_user(self, name: str) -> None:
        self._users.pop(name.casefold(), None)
        self._away.pop(name.casefold(), None)
        self._modes.pop(name.casefold(), None)
        self._seats.pop(name.casefold(), None)
        self._refresh_list()

    def _refresh_list(self) -> None:
        option_list = self.query_one("#users", OptionList)
        highlighted = option_list.highlighted_option
        keep = highlighted.id if highlighted is not None else None
        options = []
        # The dim notes after a name: "(you)", "away", "muted", "guest".
        note = self.get_component_rich_style("user-list--you", partial=True)
        for name in self.users:
            own = name.casefold() == self.own_name.casefold()
            # One line each, whatever the name's length: a long name ends in "…", never wraps.
            label = Text(name, style=self._nick_style(name), no_wrap=True, overflow="ellipsis")
            bits = self._modes.get(name.casefold(), 0)
            if badge := mode_badge(bits):
                label = Text.assemble(
                    (badge, self.get_component_rich_style("user-list--badge", partial=True)), label,
                    no_wrap=True, overflow="ellipsis",
                )  # fmt: skip
            if seat := self._seats.get(name.casefold()):
                label.append(f" {seat}", style=self.get_component_rich_style("user-list--seat", partial=True))
            if own:
                label.append(" " + _("(you)"), style=note)
            if name.casefold() in self._away:
                # Dimmed, as Slack's hollow dot: still here, not at the keyboard.
                label.stylize(self.get_component_rich_style("user-list--away", partial=True))
                label.append(" " + _("away"), style=note)
            if bits & MEMBER_MUTED:
                label.append(" " + _("muted"), style=note)
            if bits & MEMBER_GUEST:
                label.append(" " + _("guest"), style=note)
            options.append(Option(label, id=name.casefold()))
        option_list.set_options(options)
        if keep is not None and keep in self._users:
            option_list.highlighted = option_list.get_option_index(keep)
        self.query_one("#user-count", Label).update(_("Online · {count}").format(count=len(self._users)))

    def set_offline(self) -> None:
        """The session is over: nobody is known to be online any more, so show nobody."""
        self._users = {}
        self._refresh_list()
        self.query_one("#user-count", Label).update(_("Offline"))

    def canonical(self, name: str) -> str:
        """`name` as the server spells it when that user is in the list (`/msg BOB` → `bob`)."""
        return self._users.get(name.casefold(), name)

    def _nick_style(self, name: str) -> Style:
        # labchat.tcss styles these together with the log's sender colours: one colour per name.
        return self.get_component_rich_style(f"user-list--nick-{nick_colour(name)}", partial=True)

    @on(OptionList.OptionSelected, "#users")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        key = event.option.id
        if key is not None and key in self._users:
            self.post_message(self.Selected(self._users[key]))
