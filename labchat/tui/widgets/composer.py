"""The composer: where a message is written. It owns Enter and paste, so every line reaches the room once.

Why not Textual's `Input`: in Textual 8.2.8, `Input` posts `Submitted` with its value and leaves the
clearing to whoever handles that message later. When keys arrive together (a fast typist, a paste
in a terminal without bracketed paste, where each newline is an Enter key), the next keys are typed
into the old, uncleared value before the handler runs: `fast one⏎fast two⏎` became
`fast onefast two`, sent twice. A bracketed paste of several lines kept only the first line.

Here the text area handles Enter itself, in the same key handler that reads the text: it takes the
text, clears the area and posts `Composer.Submitted`, all before the next key is looked at. So the
order of keys is the order of lines, whatever the typing speed or the terminal.

Keys, as Slack and Discord have them: Enter sends; Shift+Enter, Alt+Enter or Ctrl+J (for terminals
that cannot tell Shift+Enter from Enter) start a new line; a bracketed paste is inserted as it is,
newlines included, and sent as one message when the user presses Enter. Up and Down walk the
history when the cursor is on the first or last line (inside a multi-line draft they move the
cursor). Tab completes names and commands (see `completion.py`), cycling on repeated Tab.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Label, Static, TextArea

from ...i18n import N_, _
from .completion import Completer

#: Lines remembered by the history.
HISTORY_LIMIT = 500

#: Keys that start a new line in the draft instead of sending it.
NEWLINE_KEYS = frozenset({"shift+enter", "alt+enter", "ctrl+j", "ctrl+enter"})

PLACEHOLDER = N_("Message · Enter sends · Shift+Enter or Ctrl+J: new line · Tab completes · /help")
OFFLINE_PLACEHOLDER = N_("Not connected: what you send waits and goes out when the server is back")


class ComposerArea(TextArea):
    """The editable part of the composer: a `TextArea` that sends on Enter (see the module docstring)."""

    @dataclass
    class Entered(Message):
        """Enter was pressed: `text` is what the area held, already cleared from it."""

        text: str

    @dataclass
    class HistoryRequested(Message):
        """Up on the first line or Down on the last one: walk the history by `step`."""

        step: int

    class CompletionRequested(Message):
        """Tab was pressed: complete the word before the cursor."""

    class Edited(Message):
        """Any key other than Tab changed or moved the draft: a completion cycle is over."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            "", id=id, soft_wrap=True, tab_behavior="focus", show_line_numbers=False,
            compact=True, highlight_cursor_line=False, placeholder=_(PLACEHOLDER),
        )  # fmt: skip

    # The `Input`-like surface that the room, the tests and the benchmark use.

    @property
    def value(self) -> str:
        """The draft, every line of it."""
        return self.text

    @value.setter
    def value(self, text: str) -> None:
        self.load_text(text)
        self.move_cursor(self.document.end)

    @property
    def cursor_position(self) -> int:
        """The cursor as an offset into `value` (for single-line drafts, the column)."""
        row, column = self.cursor_location
        lines = self.text.split("\n")
        return sum(len(line) + 1 for line in lines[:row]) + column

    @cursor_position.setter
    def cursor_position(self, offset: int) -> None:
        self.move_cursor(self._location_of(offset))

    def _location_of(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        for row, line in enumerate(self.text.split("\n")):
            if offset <= len(line):
                return (row, offset)
            offset -= len(line) + 1
        return self.document.end

    def insert_text_at_cursor(self, text: str) -> None:
        """Insert `text` where the cursor is, replacing any selection (as a paste does)."""
        start, end = self.selection
        result = self.replace(text, start, end)
        self.move_cursor(result.end_location)

    # Keys and paste: the reason this class exists.

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            event.stop()
            event.prevent_default()
            text = self.text
            if text.strip():
                self.clear()
            self.post_message(self.Entered(text))
            return
        if key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.insert_text_at_cursor("\n")
            self.post_message(self.Edited())
            return
        if key == "tab":
            event.stop()
            event.prevent_default()
            self.post_message(self.CompletionRequested())
            return
        if key in ("up", "down"):
            step = -1 if key == "up" else 1
            at_edge = self.cursor_at_first_line if step < 0 else self.cursor_at_last_line
            if at_edge:
                event.stop()
                event.prevent_default()
                self.post_message(self.HistoryRequested(step))
                return
        self.post_message(self.Edited())
        await super()._on_key(event)

    async def _on_paste(self, event: events.Paste) -> None:
        # Terminals send "\r" or "\r\n" for the pasted newlines; the draft keeps "\n" only.
        text = event.text.replace("\r\n", "\n").replace("\r", "\n")
        event.stop()
        event.prevent_default()
        if text:
            self.insert_text_at_cursor(text)
            self.post_message(self.Edited())


class Composer(Vertical):
    """A prompt, the text area and a completion hint. Posts `Composer.Submitted` for each line sent."""

    #: False while the server is unreachable; the stylesheet shows it (the `-offline` class).
    connected: reactive[bool] = reactive(True)

    @dataclass
    class Submitted(Message):
        """A message was entered (never blank): one line, or several from a multi-line draft."""

        text: str

    def __init__(
        self,
        *,
        names: Callable[[], list[str]] | None = None,
        commands: tuple[str, ...] = (),
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.history: list[str] = []
        self._cursor = 0  # index into history; len(history) means "the draft being written"
        self._draft = ""
        self.completer = Completer(names or (lambda: []), commands)

    def compose(self) -> ComposeResult:
        yield Static("", id="completion")
        with Horizontal(id="composer-row"):
            yield Label("›", id="prompt")
            yield ComposerArea(id="composer-input")

    @property
    def input(self) -> ComposerArea:
        return self.query_one("#composer-input", ComposerArea)

    @property
    def text(self) -> str:
        """The draft as it stands."""
        return self.input.text

    def set_prompt(self, name: str) -> None:
        self.query_one("#prompt", Label).update(Text(f"{name} ›" if name else "›"))

    def focus_input(self, text: str | None = None) -> None:
        """Focus the draft, optionally replacing what it holds (cursor at the end)."""
        if text is not None:
            self.input.value = text
        self.input.focus()

    def insert(self, text: str) -> None:
        """Insert `text` at the cursor, keeping the rest of the draft, and focus the draft."""
        self.input.insert_text_at_cursor(text)
        self.input.focus()

    def type_key(self, character: str) -> None:
        """A printable key typed while something else had the focus: it belongs to the draft."""
        self.insert(character)

    def watch_connected(self, connected: bool) -> None:
        self.set_class(not connected, "-offline")
        self.input.placeholder = _(PLACEHOLDER) if connected else _(OFFLINE_PLACEHOLDER)

    def on_composer_area_entered(self, event: ComposerArea.Entered) -> None:
        event.stop()
        self._end_completion()
        # Trailing spaces and blank lines are never meant (a completion leaves one): not sent.
        text = event.text.rstrip()
        if not text:
            self.input.clear()  # a line of spaces is nothing to send, and nothing to keep
            return
        if not self.history or self.history[-1] != text:
            self.history.append(text)
            del self.history[:-HISTORY_LIMIT]
        self._cursor = len(self.history)
        self._draft = ""
        self.post_message(self.Submitted(text))

    def on_composer_area_history_requested(self, event: ComposerArea.HistoryRequested) -> None:
        event.stop()
        self._end_completion()
        self.action_history(event.step)

    def on_composer_area_completion_requested(self, event: ComposerArea.CompletionRequested) -> None:
        event.stop()
        area = self.input
        result = self.completer.complete(area.text, area.cursor_position)
        if result is None:
            self._end_completion()
            return
        area.value = result.text
        area.cursor_position = result.cursor
        hint = self.query_one("#completion", Static)
        hint.update(self.completer.hint())
        hint.display = len(self.completer.candidates) > 1

    def on_composer_area_edited(self, event: ComposerArea.Edited) -> None:
        event.stop()
        self._end_completion()

    def _end_completion(self) -> None:
        if self.completer.active:
            self.completer.reset()
            self.query_one("#completion", Static).display = False

    def action_history(self, step: int) -> None:
        """Walk the history; walking past the newest line brings back what was being written."""
        if not self.history:
            return
        if self._cursor == len(self.history):
            self._draft = self.input.text
        self._cursor = max(0, min(len(self.history), self._cursor + step))
        self.input.value = self._draft if self._cursor == len(self.history) else self.history[self._cursor]
