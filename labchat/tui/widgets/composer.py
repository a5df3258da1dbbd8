"""The input line: what you type, with a history you can walk with Up and Down, like a shell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Label

#: Lines remembered by the history.
HISTORY_LIMIT = 500


class Composer(Horizontal):
    """A prompt and an `Input`. Posts `Composer.Submitted` with the typed line and clears itself."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", "History", show=False),
        Binding("down", "history(1)", "History", show=False),
    ]

    #: False while the server is unreachable; the stylesheet shows it (the `-offline` class).
    connected: reactive[bool] = reactive(True)

    @dataclass
    class Submitted(Message):
        """A line was entered (never empty)."""

        text: str

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.history: list[str] = []
        self._cursor = 0  # index into history; len(history) means "the line being typed"
        self._draft = ""

    def compose(self) -> ComposeResult:
        yield Label("›", id="prompt")
        yield Input(placeholder="Type a message, or /help", id="composer-input")

    @property
    def input(self) -> Input:
        return self.query_one("#composer-input", Input)

    def set_prompt(self, name: str) -> None:
        self.query_one("#prompt", Label).update(Text(f"{name} ›" if name else "›"))

    def focus_input(self, text: str | None = None) -> None:
        """Focus the line, optionally replacing what it holds (cursor at the end)."""
        if text is not None:
            self.input.value = text
            self.input.cursor_position = len(text)
        self.input.focus()

    def watch_connected(self, connected: bool) -> None:
        self.set_class(not connected, "-offline")
        self.input.placeholder = (
            "Type a message, or /help"
            if connected
            else "Not connected: messages wait and are sent when the server is back"
        )

    @on(Input.Submitted, "#composer-input")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value
        if not text.strip():
            return
        self.input.value = ""
        if not self.history or self.history[-1] != text:
            self.history.append(text)
            del self.history[:-HISTORY_LIMIT]
        self._cursor = len(self.history)
        self._draft = ""
        self.post_message(self.Submitted(text))

    def action_history(self, step: int) -> None:
        """Walk the history; walking past the newest line brings back what was being typed."""
        if not self.history:
            return
        if self._cursor == len(self.history):
            self._draft = self.input.value
        self._cursor = max(0, min(len(self.history), self._cursor + step))
        text = self._draft if self._cursor == len(self.history) else self.history[self._cursor]
        self.input.value = text
        self.input.cursor_position = len(text)
