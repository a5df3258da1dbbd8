"""The header line: the room, the server, and the state of the link to it."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...i18n import N_, _
from ...protocol.events import ConnectionState
from ..formatting import format_rtt

_STATE_WORDS = {
    ConnectionState.CONNECTING: N_("connecting…"),
    ConnectionState.CONNECTED: N_("connected"),
    ConnectionState.RECONNECTING: N_("reconnecting…"),
    ConnectionState.CLOSED: N_("disconnected"),
}

#: The reasons the client core gives in English (the protocol layer speaks no other language), as
#: shown after the state; a reason the server sent is already in the server's language.
_DETAIL_WORDS = {
    "server not answering": N_("server not answering"),
    "the server's key has changed": N_("the server's key has changed"),
    "quit": N_("quit"),
    "leaving": N_("leaving"),
}


class StatusBar(Widget):
    """`#lobby · labchat at 10.0.0.5:8080 · ● connected 2 ms` on the left, your name on the right."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status-bar--room",
        "status-bar--topic",
        "status-bar--quiet",
        "status-bar--hand",
        "status-bar--server",
        "status-bar--user",
        "status-bar--away",
        "status-bar--connecting",
        "status-bar--connected",
        "status-bar--reconnecting",
        "status-bar--closed",
    }

    room: reactive[str] = reactive("")
    #: The room's topic, shown after its name.
    topic: reactive[str] = reactive("")
    #: The classroom (protocol 20): "quiet: 12 min left" while the room is quiet, and the user's own
    #: hand ("your hand is up: 3rd in line", "coming: teacher"); "" for none.
    quiet: reactive[str] = reactive("")
    hand: reactive[str] = reactive("")
    server: reactive[str] = reactive("")
    user: reactive[str] = reactive("")
    state: reactive[ConnectionState] = reactive(ConnectionState.CONNECTING)
    rtt_s: reactive[float | None] = reactive(None)
    detail: reactive[str] = reactive("")
    #: Our own away reason ("" for none) while away, None while here.
    away: reactive[str | None] = reactive(None)

    def watch_state(self, state: ConnectionState) -> None:
        # The whole bar changes colour too, so a lost link is noticed from the corner of an eye.
        for other in ConnectionState:
            self.set_class(other is state, f"-{other.value}")

    def render(self) -> Text:
        def style(name: str) -> Style:
            return self.get_component_rich_style(f"status-bar--{name}", partial=True)

        state_text = _(_STATE_WORDS[self.state])
        if self.state is ConnectionState.CONNECTED and self.rtt_s is not None:
            state_text += f" · {format_rtt(self.rtt_s)}"
        elif self.state is not ConnectionState.CONNECTED and self.detail not in ("", "reconnecting"):
            detail = self.detail
            state_text += f" ({_(_DETAIL_WORDS[detail]) if detail in _DETAIL_WORDS else detail})"
        left = Text.assemble(
            (f"#{self.room}" if self.room else "labchat", style("room")),
            (f" · {self.topic}" if self.topic and self.room else "", style("topic")),
            (f" · {self.quiet}" if self.quiet else "", style("quiet")),
            (f" · {self.hand}" if self.hand else "", style("hand")),
            "  ",
            (self.server, style("server")),
            "  ",
            ("● " + state_text, style(self.state.value)),
        )
        right = Text(self.user, style=style("user"))
        if self.away is not None:
            away = _(" (away: {reason})").format(reason=self.away) if self.away else _(" (away)")
            right.append(away, style=style("away"))
        width = self.size.width
        gap = width - left.cell_len - right.cell_len - 1
        if gap < 1:
            left.truncate(max(0, width - 1), overflow="ellipsis")
            return left
        return Text.assemble(left, " " * gap, right)
