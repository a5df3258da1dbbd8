"""The message log: a bounded, wrapping, scrollable list of entries that stays fast in long sessions.

Why not one widget per message: a busy room would mount thousands of widgets. Why not `RichLog`: it
cannot change a line once written (a pending message must turn delivered or failed in place) and does
not re-wrap when the window is resized. So this is a small `ScrollView` in the style of `RichLog`: each
entry is rendered to rows of `Strip`s once for the current width and kept; `render_line` only crops.

Writes are batched: `add()` queues an entry and one timer per frame renders everything queued, so a
burst of a thousand incoming messages costs a few repaints and typing stays responsive. The log keeps
at most `max_entries` entries; older ones are dropped in chunks.

Where am I: the log follows the newest message while it is *anchored*. Only the user's own scrolling
up releases the anchor, and scrolling back to the bottom (or End, or clicking the "N new messages ↓"
bar shown meanwhile) restores it: content arriving, re-wrapping or a scroll still in flight never do.
Dividers mark a new calendar day, where replayed history ends, and where unread messages begin
(`set_read_marker`, called when the user looks away).

Text can be selected with the mouse and copied (Ctrl+C), as in any Textual widget: rows carry the
offsets Textual's selection needs, and `get_selection` gives back what was typed (wrapped lines join
up again). Clicking a code block copies the whole block.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from datetime import date, tzinfo
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip
from textual.timer import Timer

from ...i18n import N_, _, ngettext
from ...protocol.messages import MAX_TEXT_BYTES
from ...protocol.text import utf8_len
from ..formatting import (
    DATED_STAMP_WIDTH,
    NICK_COLOURS,
    day_label,
    local_date,
    mention_pattern,
    stamp,
)
from ..log_entry import (
    DIVIDER_KINDS,
    MESSAGE_KINDS,
    NICK_WIDTH,
    Delivery,
    Entry,
    EntryKind,
    Row,
    layout_entry,
)

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
#: Narrowest log that shows dates in the time column; a narrower one keeps HH:MM under day dividers.
DATED_MIN_WIDTH = 56
#: A delivery this much later than the typing is worth showing ("sent 14:07").
LATE_SEND_S = 60.0
#: Pieces of one long message arrive this close together.
_PIECE_GAP_S = 5.0
#: Kinds that end the history replay (and so get the "live" divider before them).
_LIVE_KINDS = MESSAGE_KINDS | {EntryKind.JOIN, EntryKind.LEAVE, EntryKind.NOTICE}


def _continues(piece: str, text: str) -> bool:
    """Could `split_text` have cut `piece` from before `text`? Only if the next word would not have
    fitted: the split breaks at the last space within the limit."""
    first_word = text.split(" ", 1)[0]
    return utf8_len(piece) + 1 + utf8_len(first_word) > MAX_TEXT_BYTES


class MessageLog(ScrollView, can_focus=True):
    """The chat log. Add entries with `add`; change one in place with `update`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("end", "jump_to_bottom", N_("Newest"), show=False),
        # Not a printable key: those go to the draft wherever the focus is (the room sees to it).
        Binding("ctrl+y", "copy_code", N_("Copy code"), show=False),
    ]

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
        "message-log--inline-code",
        "message-log--day",
        "message-log--live",
        "message-log--unread",
        "message-log--new-bar",
        *(f"message-log--nick-{i}" for i in range(NICK_COLOURS)),
    }

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        tz: tzinfo | None = None,
        clock: Callable[[], float] = time.time,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.max_entries = max_entries
        self.tz = tz
        self._clock = clock
        self.entries: deque[Entry] = deque()
        self._lines: list[Row] = []
        #: Absolute row number of `_lines[0]` (rows of dropped entries are gone).
        self._dropped_rows = 0
        self._unrendered: deque[Entry] = deque()
        self._width = 0
        self._flush_timer: Timer | None = None
        self._mention: re.Pattern[str] | None = None
        self._styles: dict[str, Style] = {}
        #: Following the newest message; only the user's scrolling up clears it.
        self.anchored = True
        #: Messages (and mentions among them) added while the user was reading further up.
        self.unseen = 0
        self.unseen_mentions = 0
        self._today: date | None = None
        self._last_day: date | None = None
        self._in_history = False
        self._marker_pending = False
        self._marker: Entry | None = None
        #: Entries whose time carries a date (not today); the time column widens while there are some.
        self._dated = 0
        self._time_width = 5

    def on_mount(self) -> None:
        # Unread messages begin where the user stopped looking: when the terminal lost the focus.
        self.watch(self.app, "app_focus", self._app_focus_changed, init=False)

    def _app_focus_changed(self, focused: bool) -> None:
        if not focused:
            self.set_read_marker()
        else:
            self.looked_at()

    def looked_at(self) -> None:
        """The user looks at the log again (the terminal focused, its room shown): if nothing
        arrived meanwhile, no marker is placed later."""
        self._marker_pending = False

    # ------------------------------------------------------------ public API

    def set_own_name(self, name: str) -> None:
        """Highlight this name wherever it is mentioned (in entries added from now on)."""
        self._mention = mention_pattern(name) if name else None

    def add(self, entry: Entry) -> Entry:
        """Append an entry; it appears with the next batched render.

        Returns the entry that shows it: the one given, or the entry of the message's earlier piece
        when it continues a long message the client split (consecutive pieces are one entry).
        """
        merged = self._continue(entry)
        if merged is not None:
            return merged
        if entry.kind not in DIVIDER_KINDS:
            self._dividers_before(entry)
            if entry.kind in MESSAGE_KINDS and not entry.own and not self.anchored:
                self.unseen += 1
                self.unseen_mentions += entry.mention
                self.refresh()
        self._append(entry)
        return entry

    def update(self, entry: Entry) -> None:
        """Redraw an entry whose fields changed (delivered, failed)."""
        if entry.delivery is Delivery.DELIVERED and entry.pending_pieces > 1:
            # One piece of a long message of ours arrived; the entry is delivered with the last one.
            entry.pending_pieces -= 1
            entry.delivery = Delivery.PENDING
        if entry.first_row < 0 or entry.first_row < self._dropped_rows:
            return  # not drawn yet (the next batch draws it as it is now) or already dropped
        self._replace_rows(entry, self._render_entry(entry))
        self.refresh()

    def lay_out_like(self, other: MessageLog) -> None:
        """Draw entries for `other`'s width while this log is not laid out yet (a room's log that
        is hidden until switched to): they are then drawn as they come, in batches, and showing
        the log costs no redraw of everything at once. A different width on show re-wraps."""
        if self._width <= 0 < other._width:
            self._width = other._width

    def plain_lines(self) -> list[str]:
        """Every entry as plain text, oldest first (for tests and accessibility)."""
        return [entry.plain for entry in self.entries]

    def clear(self) -> None:
        """Forget every entry."""
        self.entries.clear()
        self._unrendered.clear()
        self._lines.clear()
        self._dropped_rows = 0
        self._marker = None
        self._marker_pending = False
        self._last_day = None
        self._in_history = False
        self._dated = 0
        self.unseen = self.unseen_mentions = 0
        self.anchored = True
        self.virtual_size = Size(self._width, 0)
        self.refresh()

    def prepend(self, older: list[Entry]) -> None:
        """Show `older` (oldest first: a page of history fetched from the server) above everything
        else, keeping in view what the user was reading: scrolling up is then seamless.

        Entries already shown (same room `seq`) are skipped; day and live dividers are placed anew.
        """
        shown = [e for e in self.entries if e.kind not in DIVIDER_KINDS]
        seqs = {e.seq for e in shown if e.seq}
        older = [e for e in older if not e.seq or e.seq not in seqs]
        if not older:
            return
        top = self._entry_at(int(self.scroll_y))
        self.entries.clear()
        self._unrendered.clear()
        self._marker = None
        self._last_day = None
        self._in_history = False
        for entry in [*older, *shown]:
            entry.first_row = UNRENDERED
            self._dividers_before(entry)
            self.entries.append(entry)
        self._dated = sum(1 for entry in self.entries if self._dated_entry(entry))
        was_anchored = self.anchored
        self.anchored = False  # the re-wrap must not jump to the end
        self._rewrap()
        if top is not None and top.first_row >= 0:
            self.scroll_to(y=top.first_row - self._dropped_rows, animate=False, immediate=True, force=True)
        self.anchored = was_anchored and top is None

    def _entry_at(self, y: int) -> Entry | None:
        """The entry drawn at view row `y` (None for an empty log)."""
        row = y + self._dropped_rows
        for entry in self.entries:
            if entry.first_row >= 0 and entry.first_row + entry.rows > row:
                return entry
        return None

    def set_read_marker(self) -> None:
        """Mark where unread messages will begin: the next message from someone else gets a
        "— new —" divider above it. Called when the user stops looking (the terminal loses the
        focus); a marker set earlier stays until then, and moves down to the new place."""
        self._marker_pending = True

    def clear_read_marker(self) -> None:
        """Remove the read marker (and forget a pending one)."""
        self._marker_pending = False
        if self._marker is not None:
            self._remove(self._marker)
            self._marker = None

    def jump_to_bottom(self) -> None:
        """Show the newest message and follow new ones again."""
        self.anchored = True
        self._clear_unseen()
        self._scroll_to_end()

    @property
    def new_bar_text(self) -> str:
        """What the "new messages" bar says, or "" when it is not shown."""
        if self.anchored or not self.unseen:
            return ""
        if not self.unseen_mentions:
            bar = ngettext("{count} new message", "{count} new messages", self.unseen)
        else:
            bar = ngettext(
                "{count} new, {mentions} mention", "{count} new, {mentions} mentions", self.unseen_mentions
            )
        return " " + bar.format(count=self.unseen, mentions=self.unseen_mentions) + " ↓ "

    @property
    def _rows(self) -> list[Strip]:
        """The drawn rows, oldest first (for tests)."""
        return [row.strip for row in self._lines]

    # ------------------------------------------------------------ adding

    def _append(self, entry: Entry) -> None:
        self.entries.append(entry)
        self._unrendered.append(entry)
        if self._dated_entry(entry):
            self._dated += 1
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(FLUSH_INTERVAL_S, self._flush)

    def _continue(self, entry: Entry) -> Entry | None:
        """Join `entry` to the previous one when it is the next piece of a long message the client
        split: same sender and kind, the next room sequence number (or, for our own still pending
        message, typed at the same moment), and a previous piece too full to have taken this one's
        first word."""
        if not self.entries or entry.kind not in (EntryKind.CHAT, EntryKind.ACTION, EntryKind.PRIVATE_OUT):
            return None
        last = self.entries[-1]
        if (
            last.kind is not entry.kind
            or last.user != entry.user
            or last.own != entry.own
            or last.history != entry.history
            or abs(entry.ts - last.ts) > _PIECE_GAP_S
            or not _continues(last.text[len(last.text) - last.tail_chars :], entry.text)
        ):
            return None
        if entry.seq:
            if last.seq + 1 != entry.seq:
                return None
        elif not (
            entry.own and last.delivery is Delivery.PENDING and entry.delivery is Delivery.PENDING
        ):
            return None
        if entry.delivery is Delivery.PENDING:
            last.pending_pieces += 1
        # split_text drops the space it breaks at; it cuts mid-word only when the piece has no space
        # in its second half.
        tail = last.text[len(last.text) - last.tail_chars :]
        joiner = " " if " " in tail[len(tail) // 2 :] else ""
        last.set_text(last.text + joiner + entry.text)
        last.tail_chars = len(entry.text)
        last.seq = entry.seq or last.seq
        last.mention = last.mention or entry.mention
        self.update(last)
        return last

    def _dividers_before(self, entry: Entry) -> None:
        """The day, live and unread dividers that belong before `entry`."""
        entry.tail_chars = len(entry.text) if entry.kind in MESSAGE_KINDS else 0
        day = local_date(entry.ts, self.tz)
        today = self._current_day()
        if day != self._last_day and (self._last_day is not None or day != today):
            self._append(Entry(EntryKind.DAY, entry.ts, day_label(day, today)))
        self._last_day = day
        if entry.history:
            self._in_history = entry.kind in _LIVE_KINDS or self._in_history
        elif self._in_history and entry.kind in _LIVE_KINDS:
            self._in_history = False
            self._append(Entry(EntryKind.LIVE, entry.ts, _("live")))
        if self._marker_pending and entry.kind in MESSAGE_KINDS and not entry.own and not entry.history:
            self._marker_pending = False
            if self._marker is not None:
                self._remove(self._marker)
            self._marker = Entry(EntryKind.UNREAD, entry.ts, _("new"))
            self._append(self._marker)

    def _current_day(self) -> date:
        return local_date(self._clock(), self.tz)

    def _dated_entry(self, entry: Entry) -> bool:
        return entry.kind not in DIVIDER_KINDS and local_date(entry.ts, self.tz) != self._today

    def _remove(self, entry: Entry) -> None:
        """Take one entry out of the log (the read marker moving on)."""
        try:
            self.entries.remove(entry)
        except ValueError:
            return
        if entry.first_row == UNRENDERED:
            if entry in self._unrendered:  # not when the log was never laid out (see _flush)
                self._unrendered.remove(entry)
            return
        if entry.first_row < self._dropped_rows:
            return
        start = entry.first_row - self._dropped_rows
        del self._lines[start : start + entry.rows]
        for later in self.entries:
            if later.first_row > entry.first_row:
                later.first_row -= entry.rows
        entry.first_row = DROPPED
        self._set_virtual_size()
        self._scroll_to_end_if_following()
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

    def _render_entry(self, entry: Entry) -> list[Row]:
        dated = self._time_width > 5
        today = self._today if dated else None
        sent = ""
        if entry.sent_ts is not None and entry.sent_ts - entry.ts >= LATE_SEND_S:
            sent = stamp(entry.sent_ts, self.tz, today)
        return layout_entry(
            entry, self._width, self.app.console, self._style, stamp(entry.ts, self.tz, today),
            self._mention, time_width=self._time_width, sent_text=sent,
        )  # fmt: skip

    def _append_rows(self, entry: Entry) -> None:
        rows = self._render_entry(entry)
        entry.first_row = self._dropped_rows + len(self._lines)
        entry.rows = len(rows)
        self._lines.extend(rows)

    def _replace_rows(self, entry: Entry, rows: list[Row]) -> None:
        start = entry.first_row - self._dropped_rows
        self._lines[start : start + entry.rows] = rows
        shift = len(rows) - entry.rows
        entry.rows = len(rows)
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
        for _unused in range(excess):
            old = self.entries.popleft()
            if old.first_row >= 0:
                dropped += old.rows
            if self._dated_entry(old):
                self._dated -= 1
            if old is self._marker:
                self._marker = None
            old.first_row = DROPPED
        del self._lines[:dropped]
        self._dropped_rows += dropped

    def _set_virtual_size(self) -> None:
        self.virtual_size = Size(self._width, len(self._lines))

    class TopReached(Message):
        """The user scrolled to the very top: older messages could be fetched."""

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # Anchoring is a state, not a comparison made on every change: content growing, a re-wrap
        # or a scroll to the end still in flight move the view down, never up; only the user
        # scrolls up. Reaching the bottom (by wheel, keys, End or the bar) anchors it again.
        if new_value >= self.max_scroll_y:
            if not self.anchored:
                self.anchored = True
                self._clear_unseen()
        elif new_value < old_value:
            self.anchored = False
        if new_value <= 0 < old_value:
            self.post_message(self.TopReached())

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        # The wheel at the top already (or a log too short to scroll): the user still wants older.
        if self.scroll_y <= 0:
            self.post_message(self.TopReached())

    def _clear_unseen(self) -> None:
        if self.unseen:
            self.unseen = self.unseen_mentions = 0
            self.refresh()

    def _scroll_to_end_if_following(self) -> None:
        if self.anchored:
            # At once, not after the next refresh: the new end is known as soon as the virtual size
            # is set, and a scroll left pending lets a reader (or a test) see the view one batch
            # behind the newest message.
            self._scroll_to_end()

    def _scroll_to_end(self) -> None:
        # `force`: right after the virtual size grows, the scrollbar that allows scrolling exists
        # only after the next layout; the end itself is known already.
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def _flush(self) -> None:
        self._flush_timer = None
        if self._width <= 0:
            # Not laid out yet (a room never shown): the first resize renders every entry, so
            # nothing need wait in the queue; the log still keeps only the newest `max_entries`.
            self._unrendered.clear()
            self._trim()
            return
        if self._check_layout():
            self._trim()  # before drawing everything again: what is dropped need not be drawn
            self._rewrap()
            return
        for _unused in range(min(FLUSH_BATCH, len(self._unrendered))):
            entry = self._unrendered.popleft()
            if entry.first_row == UNRENDERED:
                self._append_rows(entry)
        self._trim()
        self._set_virtual_size()
        self._scroll_to_end_if_following()
        self.refresh()
        if self._unrendered:
            self._flush_timer = self.set_timer(FLUSH_INTERVAL_S, self._flush)

    def _check_layout(self) -> bool:
        """Has the day changed, or the time column's width? Then every row is drawn again."""
        today = self._current_day()
        if today != self._today:
            self._today = today
            self._dated = sum(1 for entry in self.entries if self._dated_entry(entry))
        width = DATED_STAMP_WIDTH if self._dated and self._width >= DATED_MIN_WIDTH else 5
        if width != self._time_width:
            self._time_width = width
            return True
        return False

    def _rewrap(self) -> None:
        """Render every entry again (new width or new styles)."""
        self._check_layout()
        self._lines = []
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
        region = self.scrollable_content_region
        width = region.width
        if self.unseen and not self.anchored and y == region.height - 1 and (bar := self.new_bar_text):
            text = Text.assemble((bar.center(width, "─"), self._style("new-bar")), end="")
            text.truncate(width, overflow="crop")
            return Strip(list(text.render(self.app.console)), text.cell_len).adjust_cell_length(width)
        row = scroll_y + y
        if row >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        strip = self._lines[row].strip
        selection = self.text_selection
        if selection is not None and (span := selection.get_span(row)) is not None:
            strip = self._select(self._lines[row], span)
        strip = strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)
        # The offsets Textual's mouse selection reads (always: a picture must not depend on where
        # the pointer happens to be).
        return strip.apply_offsets(scroll_x, row)

    # ------------------------------------------------------------ selection and copying

    @property
    def allow_select(self) -> bool:
        return True

    def _select(self, row: Row, span: tuple[int, int]) -> Strip:
        """The row with the selected characters drawn in the selection style."""
        start, end = span
        text = row.text
        end = len(text) if end == -1 else end
        a, b = cell_len(text[:start]), cell_len(text[:end])
        if a >= b:
            return row.strip
        style = self.screen.get_component_rich_style("screen--selection")
        strip = row.strip
        return Strip.join(
            [strip.crop(0, a), strip.crop(a, b).apply_style(style), strip.crop(b, strip.cell_length)]
        )

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """The selected text as it was typed: wrapped rows join up again, the gutter of continued
        rows is left out, and line breaks of the message stay line breaks."""
        if not self._lines:
            return None
        start_y, start_x = (0, 0) if selection.start is None else (selection.start.y, selection.start.x)
        if selection.end is None:
            end_y, end_x = len(self._lines) - 1, len(self._lines[-1].text)
        else:
            end_y, end_x = selection.end.y, selection.end.x
        end_y = min(end_y, len(self._lines) - 1)
        out: list[str] = []
        for y in range(max(start_y, 0), end_y + 1):
            row = self._lines[y]
            lo = start_x if y == start_y else 0
            hi = end_x if y == end_y else len(row.text)
            continued = row.body > 0 and not self._starts_entry(y)
            if continued and y != start_y:
                lo = max(lo, row.body)
            piece = row.text[lo:hi]
            if out and not row.soft:
                out[-1] = out[-1].rstrip()
                out.append("\n")
            out.append(piece)
        text = "".join(out).rstrip()
        return text, "\n"

    def _starts_entry(self, y: int) -> bool:
        entry = self._entry_at(y)
        return entry is not None and entry.first_row - self._dropped_rows == y

    def _entry_at(self, y: int) -> Entry | None:
        """The entry drawn on row `y` of `_lines` (binary search: entries are in row order)."""
        absolute = y + self._dropped_rows
        lo, hi = 0, len(self.entries) - 1
        entries = self.entries
        while lo <= hi:
            mid = (lo + hi) // 2
            entry = entries[mid]
            if entry.first_row < 0 or entry.first_row > absolute:
                hi = mid - 1
            elif entry.first_row + entry.rows <= absolute:
                lo = mid + 1
            else:
                return entry
        return None

    def selection_updated(self, selection: Selection | None) -> None:
        self.refresh()

    def copy_code(self, entry: Entry, index: int) -> None:
        """Put one code block of `entry` on the clipboard, whole, and say so."""
        blocks = entry.code_blocks()
        if not 0 <= index < len(blocks):
            return
        block = blocks[index]
        self.app.copy_to_clipboard(block.code)
        lines = block.line_count
        copied = ngettext("Copied {count} line", "Copied {count} lines", lines)
        self.notify(copied.format(count=lines), timeout=2)

    def action_copy_code(self) -> None:
        """Copy the newest code block on screen (Ctrl+Y, for yank)."""
        top = round(self.scroll_y)
        for y in range(min(top + self.scrollable_content_region.height, len(self._lines)) - 1, top - 1, -1):
            row = self._lines[y]
            if row.code >= 0 and (entry := self._entry_at(y)) is not None:
                self.copy_code(entry, row.code)
                return
        self.notify(_("No code block on screen to copy."), timeout=2)

    def action_jump_to_bottom(self) -> None:
        self.jump_to_bottom()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or event.chain > 1:
            return
        if offset.y == self.scrollable_content_region.height - 1 and self.new_bar_text:
            self.jump_to_bottom()
            event.stop()
            return
        if self.text_selection is not None:
            return  # the click ended a drag that selected text: that is what gets copied
        y = round(self.scroll_y) + offset.y
        if 0 <= y < len(self._lines) and (code := self._lines[y].code) >= 0:
            entry = self._entry_at(y)
            if entry is not None:
                self.copy_code(entry, code)
                event.stop()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        """Full names of cut-off senders, and what clicking a code block does, as tooltips."""
        offset = event.get_content_offset(self)
        tip: str | None = None
        if offset is not None:
            y = round(self.scroll_y) + offset.y
            if 0 <= y < len(self._lines):
                row = self._lines[y]
                entry = self._entry_at(y)
                if row.code >= 0:
                    tip = _("Click to copy this code block")
                elif entry is not None and entry.kind in MESSAGE_KINDS:
                    shown = len(entry.user) + (entry.kind is EntryKind.PRIVATE_OUT)
                    tip = entry.user if shown > NICK_WIDTH else None
        if tip != self.tooltip:
            self.tooltip = tip
