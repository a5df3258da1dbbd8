"""The poll card: a room's poll (docs/protocol.md 20.4), pinned above its log like the announcement.

Everyone sees the question and the numbered options; while the card has the focus (Tab, or a click)
the keys 1-9 vote, and a vote can be changed while the poll is open. Operators see the tally grow,
with a bar per option and, unless the poll is anonymous, who chose it. Once closed, everyone sees the
results until they hide them (x on the card; the log keeps the result line). The card does not talk
to the server: it posts `Voted`, and the room screen types `/vote N` for it, as the user could.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Static

from ...i18n import N_, _, ngettext
from ...protocol import events as ev
from ..binding_words import numbered
from ..classroom_words import BAR_WIDTH, tally_bar
from .composer import Composer

#: Names listed after an option's bar before "+N more".
MAX_NAMES = 6


class PollCard(Static, can_focus=True):
    """The room's current poll; hidden while the room has none."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "poll-card--label",
        "poll-card--question",
        "poll-card--number",
        "poll-card--chosen",
        "poll-card--bar",
        "poll-card--names",
        "poll-card--hint",
    }

    BINDINGS: ClassVar[list[BindingType]] = [
        # Priority: the room screen hands printable keys nobody bound to the input line.
        *(
            Binding(str(n), f"vote({n})", numbered(N_("Vote {n}"), n), show=False, priority=True)
            for n in range(1, 10)
        ),
        Binding("x", "dismiss", N_("Hide the results"), show=False, priority=True),
        Binding("escape", "leave", N_("Back to typing")),
    ]

    @dataclass
    class Voted(Message):
        """The user picked option `choice` (1-based) of poll `poll_id` in `room`."""

        room: str
        poll_id: int
        choice: int

    @dataclass
    class Dismissed(Message):
        """The user hid the results of closed poll `poll_id` in `room`."""

        room: str
        poll_id: int

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self.poll: ev.PollShown | None = None
        self.operator = False
        self.display = False

    def on_focus(self, event: events.Focus) -> None:
        self._redraw()  # the hint says what the keys do now

    def on_blur(self, event: events.Blur) -> None:
        self._redraw()

    def _redraw(self) -> None:
        if self.poll is not None:
            self.update(self._render_poll())

    def action_leave(self) -> None:
        """Esc: back to the input line."""
        self.screen.query_one(Composer).focus_input()

    def on_resize(self, event: events.Resize) -> None:
        if self.poll is not None:
            self.update(self._render_poll())  # the bars fit the new width

    def show(self, poll: ev.PollShown | None, *, operator: bool = False) -> None:
        """Show `poll` (None hides the card) as a member, or with the live tally as an operator."""
        self.poll, self.operator = poll, operator
        self.display = poll is not None
        self.set_class(poll is not None and poll.closed, "-closed")
        self.update(self._render_poll() if poll is not None else "")

    @property
    def plain(self) -> str:
        """What the card says, as plain text ("" when hidden)."""
        return self._render_poll().plain if self.poll is not None else ""

    def action_vote(self, choice: int) -> None:
        poll = self.poll
        if poll is None or poll.closed or not 1 <= choice <= len(poll.options):
            self.app.bell()
            return
        self.post_message(self.Voted(poll.room, poll.poll_id, choice))

    def action_dismiss(self) -> None:
        """x: hide a closed poll's results (an open poll stays: it still wants votes)."""
        poll = self.poll
        if poll is None or not poll.closed:
            self.app.bell()
            return
        self.post_message(self.Dismissed(poll.room, poll.poll_id))

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"poll-card--{name}", partial=True)

    def _render_poll(self) -> Text:
        poll = self.poll
        assert poll is not None
        label = _("Results of poll #{id}") if poll.closed else _("Poll #{id}")
        by = _(" by {user}, anonymous: ") if poll.anonymous else _(" by {user}: ")
        text = Text.assemble(
            (label.format(id=poll.poll_id), self._style("label")),
            (by.format(user=poll.by), self._style("hint")),
            (poll.question, self._style("question")),
        )
        tally = bool(poll.counts) and (poll.closed or self.operator)
        if tally:
            self._append_tally(text, poll)
        else:
            text.append("\n")
            for number, option in enumerate(poll.options, 1):
                chosen = number == poll.your_choice
                mark = "●" if chosen else " "
                style = self._style("chosen") if chosen else Style()
                text.append(f"{mark}{number}) ", style=self._style("number") + style)
                text.append(option, style=style)
                text.append("   ")
            text.rstrip()
        text.append("\n")
        text.append(self._hint(poll), style=self._style("hint"))
        return text

    def _append_tally(self, text: Text, poll: ev.PollShown) -> None:
        most = max(poll.counts, default=0)
        width = max(len(option) for option in poll.options)
        # "●1) " + option + " " + bar + " " + count: the bar takes what is left, up to BAR_WIDTH,
        # keeping about as much again for the names of those who chose it.
        room = self.content_size.width - 4 - width - 5
        bar_width = BAR_WIDTH if room <= 0 else max(4, min(BAR_WIDTH, room // 2))
        names: dict[int, list[str]] = {}
        for choice, user in poll.ballots:
            names.setdefault(choice, []).append(user)
        for number, (option, count) in enumerate(zip(poll.options, poll.counts, strict=False), 1):
            chosen = number == poll.your_choice
            mark = "●" if chosen else " "
            text.append(f"\n{mark}{number}) ", style=self._style("number"))
            text.append(option.ljust(width), style=self._style("chosen") if chosen else Style())
            text.append(f" {tally_bar(count, most, bar_width)} ", style=self._style("bar"))
            text.append(f"{count:>3}")
            who = sorted(names.get(number, []), key=str.casefold)
            if who:
                more = _(" +{count} more").format(count=len(who) - MAX_NAMES) if len(who) > MAX_NAMES else ""
                text.append(f"  {', '.join(who[:MAX_NAMES])}{more}", style=self._style("names"))

    def _hint(self, poll: ev.PollShown) -> str:
        voted = (
            ngettext("{count} voted", "{count} voted", poll.voters).format(count=poll.voters)
            if (poll.counts or poll.voters)
            else ""
        )
        if poll.closed:
            if self.has_focus:
                hide = _("x hides the results · Esc back to typing")
            else:
                hide = _("Alt+V then x hides them")
            return f"{voted or _('closed')} · {hide}"
        last = len(poll.options)
        keys = f"1-{last}" if self.has_focus else _("Alt+V then 1-{last}").format(last=last)
        if poll.your_choice:
            hint = _("you chose {choice}: {keys} to change, or /vote N").format(
                choice=poll.your_choice, keys=keys
            )
        else:
            hint = _("{keys} to vote, or /vote N").format(keys=keys)
        if self.has_focus:
            hint += _(" · Esc back to typing")
        if self.operator:
            end = _("/poll close to end it")
            hint = f"{voted} · {end}" if voted else end
        return hint
