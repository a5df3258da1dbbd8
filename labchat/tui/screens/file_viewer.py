"""/open ID: a saved text file shown highlighted in a modal, read-only; Escape closes it.

Only small text files are shown (at most `MAX_VIEW_BYTES`): a big or binary file is named in one
line instead (`view_problem`), as a chat tool is no editor. Highlighting is Rich's `Syntax`
(Pygments, chosen from the file's name and first line), so no parser library is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from ...i18n import N_, _, ngettext

#: The largest file the viewer shows (bytes): a lab script or a log, not a dataset.
MAX_VIEW_BYTES = 256 * 1024


def view_problem(path: Path) -> str | None:
    """None when `path` is a small text file the viewer can show, else the one-line reason not."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            return _("{name} is not a file").format(name=path.name)
        if size > MAX_VIEW_BYTES:
            return _("{name} is too big to show here ({size} KB, at most {most} KB): open {path}").format(
                name=path.name, size=size // 1024, most=MAX_VIEW_BYTES // 1024, path=path
            )
        data = path.read_bytes()
    except OSError as exc:
        return _("cannot read {path}: {error}").format(path=path, error=exc.strerror or exc)
    if b"\0" in data:
        return _("{name} is a binary file: open {path}").format(name=path.name, path=path)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return _("{name} is not UTF-8 text: open {path}").format(name=path.name, path=path)
    return None


class FileViewer(ModalScreen[None]):
    """A read-only, highlighted view of one small text file (checked with `view_problem` first)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", N_("Close"))]

    def __init__(self, path: Path, name: str | None = None) -> None:
        super().__init__()
        self.path = path
        self.title_text = name or path.name
        self.text = path.read_text(encoding="utf-8", errors="replace")

    def compose(self) -> ComposeResult:
        lexer = Syntax.guess_lexer(self.title_text, self.text)
        syntax = Syntax(self.text, lexer, line_numbers=True, word_wrap=False, theme="ansi_dark")
        with Vertical(id="viewer"):
            count = len(self.text.splitlines())
            lines = ngettext("{count} line", "{count} lines", count).format(count=count)
            yield Label(f"{self.title_text}  ({lexer}, {lines})", id="viewer-title")
            with VerticalScroll(id="viewer-body"):
                yield Static(syntax, id="viewer-text")
            yield Label(_("Esc closes"), id="viewer-hint")

    def on_mount(self) -> None:
        self.query_one("#viewer-body").focus()
