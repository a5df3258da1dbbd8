"""The announcement banner: a room's pinned announcement, above its log, as Slack pins a message.

Operators also see the read tally under it ("seen by 23 of 28 — not yet: ani, budi"), which the
server keeps current as members acknowledge it. The banner is hidden while the room has none.

Acknowledging is the room screen's job, not this widget's: it knows which room is on screen and
whether the screen itself is visible (the login screen may still cover it).
"""

from __future__ import annotations

from datetime import tzinfo
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.widgets import Static

from ...client.room_news import describe
from ...i18n import _
from ...protocol import events as ev
from ..formatting import clock_time


def tally_line(tally: ev.AnnouncementTally) -> str:
    """The tally sentence: "seen by 23 of 28 — not yet: ani, budi" ("seen by 2 of 2" once all have)."""
    return describe(tally)  # the same words as line mode


class AnnouncementBanner(Static):
    """The current room's announcement (and, for operators, its tally); hidden when there is none."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"announcement--label", "announcement--by", "announcement--tally"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self.announcement: ev.Announcement | None = None
        self.tally: ev.AnnouncementTally | None = None
        self.display = False

    def show(
        self,
        announcement: ev.Announcement | None,
        tally: ev.AnnouncementTally | None = None,
        tz: tzinfo | None = None,
    ) -> None:
        """Show `announcement` (None or an empty text hides the banner), with `tally` if given
        and about this announcement."""
        if announcement is None or not announcement.text:
            self.announcement = self.tally = None
            self.display = False
            self.update("")
            return
        self.announcement = announcement
        same = tally is not None and tally.announcement_id == announcement.announcement_id
        self.tally = tally if same else None

        def style(name: str) -> Style:
            return self.get_component_rich_style(f"announcement--{name}", partial=True)

        when = clock_time(announcement.ts, tz)
        text = Text.assemble(
            (_("Pinned") + " ", style("label")),
            announcement.text,
            (f"  — {announcement.by}, {when}", style("by")),
        )
        if self.tally is not None:
            text.append("\n")
            text.append(tally_line(self.tally), style=style("tally"))
        self.update(text)
        self.display = True

    @property
    def plain(self) -> str:
        """What the banner says, as plain text ("" when hidden)."""
        if self.announcement is None:
            return ""
        text = self.announcement.text
        if self.tally is not None:
            text += "\n" + tally_line(self.tally)
        return text
