"""Tab completion for the composer, as WeeChat does it: names and commands, cycling on repeated Tab.

Pure logic (no widgets), so it is tested without an app:

- `/wh⇥` completes a command (`/who `); `@al⇥` a name (`@alice `); a name at the start of the line
  gets WeeChat's `: ` (`al⇥` → `alice: `); anywhere else a plain name (`… al⇥` → `… alice `).
- Tab again replaces the completion with the next candidate, round and round; any other key ends the
  cycle (the composer calls `reset`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text


@dataclass(frozen=True, slots=True)
class Completion:
    """The draft after a completion, and where the cursor goes."""

    text: str
    cursor: int


class Completer:
    """Completes the word before the cursor from `names()` and `commands`."""

    def __init__(self, names: Callable[[], list[str]], commands: tuple[str, ...]) -> None:
        self._names = names
        self._commands = commands
        self.candidates: list[str] = []
        self._index = 0
        self._start = 0  # where the completed word starts in the draft
        self._suffix = ""  # what follows the candidate (": " or " ")
        self._after = ""  # the draft after the cursor, kept as it was

    @property
    def active(self) -> bool:
        """True while a cycle is under way (Tab pressed, nothing else since)."""
        return bool(self.candidates)

    def reset(self) -> None:
        self.candidates = []
        self._index = 0

    def complete(self, text: str, cursor: int) -> Completion | None:
        """The draft with the word before `cursor` completed (or the next candidate, when cycling).

        Returns None when nothing matches.
        """
        if self.candidates:
            self._index = (self._index + 1) % len(self.candidates)
            return self._apply(text[: self._start])
        before, self._after = text[:cursor], text[cursor:]
        self._start = max(before.rfind(" "), before.rfind("\n")) + 1
        word = before[self._start :]
        if word.startswith("/") and self._start == 0:
            prefix = word[1:].lower()
            self.candidates = [f"/{c}" for c in self._commands if c.startswith(prefix)]
            self._suffix = " "
        else:
            at = word.startswith("@")
            prefix = (word[1:] if at else word).casefold()
            if not prefix and not at:
                return None
            names = sorted(self._names(), key=str.casefold)
            self.candidates = [("@" if at else "") + n for n in names if n.casefold().startswith(prefix)]
            self._suffix = ": " if self._start == 0 and not at else " "
        if not self.candidates:
            return None
        self._index = 0
        return self._apply(before[: self._start])

    def _apply(self, head: str) -> Completion:
        body = head + self.candidates[self._index] + self._suffix
        return Completion(body + self._after, len(body))

    def hint(self) -> Text:
        """The candidates, the current one highlighted: shown above the composer while cycling."""
        out = Text(no_wrap=True, overflow="ellipsis")
        for i, candidate in enumerate(self.candidates):
            if i:
                out.append("  ")
            out.append(candidate, style="reverse bold" if i == self._index else "")
        return out
