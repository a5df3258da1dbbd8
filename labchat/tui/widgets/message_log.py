"""The message log: a bounded, wrapping, scrollable list of entries that stays fast in long sessions.

Why not one widget per message: a busy room would mount thousands of widgets. Why not `RichLog`: it
cannot change a line once written (a pending message must turn delivered or failed in place) and does
not re-wrap when the window is resized. So this is a small `ScrollView` in the style of `RichLog`: each
entry is rendered to rows of `Strip`s once for the current width and kept; `render_line` only crops.

Writes are batched: `add()` queues an entry and one timer per frame renders everything queued, so a
burst of a thousand incoming messages costs a few repaints and typing stays responsive. The log keeps
at most `max_entries` entries; older ones are dropped in chunks.
"""

from __future__ import annotations

import re
from collections import deque
from datetime import tzinfo
from typing import ClassVar

from rich.style import Style
from textual.events import Resize
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from ..formatting import NICK_COLOURS, clock_time, mention_pattern
from ..log_entry import Entry, render_entry

#: Entries kept; a day of a busy lab room, and still instant to re-wrap on resize.
DEFAULT_MAX_ENTRIES = 5000
#: Seconds between batched renders (about one frame).
#: At most 20 repaints of the log a second: a full repaint costs milliseconds, and under a stream of
#: messages the keys the user types must win the event loop over redrawing the log.
FLUSH_INTERVAL_S = 1 / 20
#: Entries rendered per batch; the rest wait for the next one, so a huge burst never blocks input.
FLUSH_BATCH = 400
#: `Entry.first_row` of an entry not drawn yet, and of one dropped from the log.
UNRENDERED = -1
DROPPED = -2
#: Component styles that colour a whole row.
_BANDS = frozenset({"own", "mention"})


class MessageLog(ScrollView, can_focus=True):
    """The chat log. Add entries with `add`; change one in place with `update`."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "message-log--time",
        "message-log--separator",
        "message-log--own",
        "message-log--mention",
        "message-log--mention-name",
        "message-log--pending",
        "message-log--failed",
        "message-log--action",
        "message-log--private",
        "message-log--private-label",
        "message-log--join",
        "message-log--leave",
        "message-log--notice",
        "message-log--info",
        "message-log--error",
        *(f"message-log--nick-{i}" for i in range(NICK_COLOURS)),
    }

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        tz: tzinfo | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.max_entries = max_entries
        self.tz = tz
        self.entries: deque[Entry] = deque()
        self._rows: list[Strip] = []
        #: Absolute row number of `_rows[0]` (rows of dropped entries are gone).
        self._dropped_rows = 0
        self._unrendered: deque[Entry] = deque()
        self._width = 0
        self._flush_timer: Timer | None = None
        self._mention: re.Pattern[str] | None = None
        self._styles: dict[str, Style] = {}
        self._follow = True

    # ------------------------------------------------------------ public API

    def set_own_name(self, name: str) -> None:
        """Highlight this name wherever it is mentioned (in entries added from now on)."""
        self._mention = mention_pattern(name) if name else None

    def add(self, entry: Entry) -> Entry:
        """Append an entry; it appears with the next batched render."""
        self.entries.append(entry)
        self._unrendered.append(entry)
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(FLUSH_INTERVAL_S, self._flush)
        return entry

    def update(self, entry: Entry) -> None:
        """Redraw an entry whose fields changed (delivered, failed)."""
        if entry.first_row < 0 or entry.first_row < self._dropped_rows:
            return  # not drawn yet (the next batch draws it as it is now) or already dropped
        self._replace_rows(entry, self._render_entry(entry))
        self.refresh()

    def plain_lines(self) -> list[str]:
        """Every entry as plain text, oldest first (for tests and accessibility)."""
        return [entry.plain for entry in self.entries]

    def clear(self) -> None:
        """Forget every entry."""
        self.entries.clear()
        self._unrendered.clear()
        self._rows.clear()
        self._dropped_rows = 0
        self.virtual_size = Size(self._width, 0)
        self.refresh()

    # ------------------------------------------------------------ rendering

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            # Row bands are whole styles, so a translucent background is blended over the log's
            # own; everything else is partial, so it does not paint over the band.
            style = self._styles[name] = self.get_component_rich_style(
                f"message-log--{name}", partial=name not in _BANDS
            )
        return style

    def _render_entry(self, entry: Entry) -> list[Strip]:
        return render_entry(
            entry, self._width, self.app.console, self._style, clock_time(entry.ts, self.tz),
            self._mention,
        )  # fmt: skip

    def _append_rows(self, entry: Entry) -> None:
        strips = self._render_entry(entry)
        entry.first_row = self._dropped_rows + len(self._rows)
        entry.rows = len(strips)
        self._rows.extend(strips)

    def _replace_rows(self, entry: Entry, strips: list[Strip]) -> None:
        start = entry.first_row - self._dropped_rows
        self._rows[start : start + entry.rows] = strips
        shift = len(strips) - entry.rows
        entry.rows = len(strips)
        if shift:
            # Later entries move down (or up); they are few, since only recent ones change.
            for later in reversed(self.entries):
                if later is entry:
                    break
                if later.first_row >= 0:
                    later.first_row += shift
            self._set_virtual_size()
            self._scroll_to_end_if_following()

    def _trim(self) -> None:
        excess = len(self.entries) - self.max_entries
        if excess <= 0:
            return
        dropped = 0
        for _ in range(excess):
            old = self.entries.popleft()
            if old.first_row >= 0:
                dropped += old.rows
            old.first_row = DROPPED
        del self._rows[:dropped]
        self._dropped_rows += dropped

    def _set_virtual_size(self) -> None:
        self.virtual_size = Size(self._width, len(self._rows))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # Follow new messages while at the bottom; stop while the user reads further up.
        self._follow = new_value >= self.max_scroll_y

    def _scroll_to_end_if_following(self) -> None:
        if self._follow:
            # After the refresh: the scrollbar (and so the new end) exists only after layout.
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    def _flush(self) -> None:
        self._flush_timer = None
        if self._width <= 0:
            return  # not laid out yet: the first resize renders everything queued
        for _ in range(min(FLUSH_BATCH, len(self._unrendered))):
            entry = self._unrendered.popleft()
            if entry.first_row == UNRENDERED:
                self._append_rows(entry)
        self._trim()
        self._set_virtual_size()
        self._scroll_to_end_if_following()
        self.refresh()
        if self._unrendered:
            self._flush_timer = self.set_timer(FLUSH_INTERVAL_S, self._flush)

    def _rewrap(self) -> None:
        """Render every entry again (new width or new styles)."""
        self._rows = []
        self._dropped_rows = 0
        self._unrendered.clear()
        for entry in self.entries:
            self._append_rows(entry)
        self._set_virtual_size()
        self._scroll_to_end_if_following()
        self.refresh()

    def on_resize(self, event: Resize) -> None:
        width = self.scrollable_content_region.width
        if width > 0 and width != self._width:
            self._width = width
            self._rewrap()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        if self._width > 0 and self.entries:
            self._rewrap()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        row = scroll_y + y
        if row >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        return self._rows[row].crop_extend(scroll_x, scroll_x + width, self.rich_style)
