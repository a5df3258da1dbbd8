"""The words of the keys (the footer, the keys panel of the command palette), in the user's language.

Textual reads a key's words from `Binding.description`, a plain string fixed when the class that
declares `BINDINGS` is created, at import time: before `--lang` or the locale has chosen a language,
and the same for every app in the process. So the descriptions stay the English source strings,
marked with `N_()` for the catalogue, and are translated where Textual reads them: every screen's
`active_bindings`, which the footer and the keys panel both draw from (`KeysInLanguage`).

A description that carries a number (`Vote 3`, `Room 3`: one binding per digit, built in a loop)
is made with `numbered()`, which remembers its template so that the translation can put the
number where the language wants it.

Textual's own words that labchat's screens show (the footer's `palette`, the command palette's
`Theme` or `Keys`) are listed here too, so that they are in the catalogue and translated alike.
"""

from __future__ import annotations

from dataclasses import replace

from textual.app import SystemCommand
from textual.binding import ActiveBinding, Binding

from ..i18n import N_, _

#: Textual's English key descriptions on labchat's screens: the footer's, and the keys panel's for
#: the widgets labchat uses (App, Screen, TextArea, Input, OptionList, Button, ScrollView in Textual
#: 8.2.8; tests/tui/test_language.py fails when Textual adds one).
TEXTUAL_KEY_WORDS = (
    N_("Quit"),
    N_("palette"),
    N_("Focus Next"),
    N_("Focus Previous"),
    N_("Copy selected text"),
    N_("Cursor up"),
    N_("Cursor down"),
    N_("Cursor left"),
    N_("Cursor right"),
    N_("Cursor line start"),
    N_("Cursor line end"),
    N_("Cursor page up"),
    N_("Cursor page down"),
    N_("Page Left"),
    N_("Page Right"),
    N_("Cursor word left"),
    N_("Cursor word right"),
    N_("Cursor left word select"),
    N_("Cursor right word select"),
    N_("Cursor line start select"),
    N_("Cursor line end select"),
    N_("Cursor up select"),
    N_("Cursor down select"),
    N_("Cursor left select"),
    N_("Cursor right select"),
    N_("Select line"),
    N_("Select all"),
    N_("Delete character left"),
    N_("Delete left to start of word"),
    N_("Delete character right"),
    N_("Delete right to start of word"),
    N_("Cut"),
    N_("Copy"),
    N_("Paste"),
    N_("Delete to line start"),
    N_("Delete to line end"),
    N_("Delete line"),
    N_("Undo"),
    N_("Redo"),
    N_("Scroll Up"),
    N_("Scroll Down"),
    N_("Move cursor left"),
    N_("Move cursor right or accept the completion suggestion"),
    N_("Go to start"),
    N_("Go to end"),
    N_("Page Up"),
    N_("Page Down"),
    N_("Move cursor left and select"),
    N_("Move cursor left a word"),
    N_("Move cursor left a word and select"),
    N_("Move cursor right and select"),
    N_("Move cursor right a word"),
    N_("Move cursor right a word and select"),
    N_("Select line start"),
    N_("Select line end"),
    N_("Submit"),
    N_("Delete all to the left"),
    N_("Delete all to the right"),
    N_("Cut selected text"),
    N_("Paste text from the clipboard"),
    N_("Up"),
    N_("Down"),
    N_("Scroll Left"),
    N_("Scroll Right"),
    N_("First"),
    N_("Last"),
    N_("Select"),
    N_("Press button"),
    N_("Scroll Home"),
    N_("Scroll End"),
)

#: Textual's entries in the command palette: (title, help) each.
TEXTUAL_PALETTE_WORDS = (
    N_("Theme"),
    N_("Change the current theme"),
    N_("Quit the application as soon as possible"),
    N_("Keys"),
    N_("Hide the keys and widget help panel"),
    N_("Show help for the focused widget and a summary of available keys"),
    N_("Minimize"),
    N_("Minimize the widget and restore to normal size"),
    N_("Maximize"),
    N_("Maximize the focused widget"),
    N_("Screenshot"),
    N_("Save an SVG 'screenshot' of the current screen"),
)

#: English description made by `numbered()` -> (its template, the number).
_NUMBERED: dict[str, tuple[str, int]] = {}


def numbered(template: str, n: int) -> str:
    """The description of the key for number `n`: `template` (marked with `N_()`, holding `{n}`)
    filled in English, as Textual keeps it; `translate` finds the template again."""
    text = template.format(n=n)
    _NUMBERED[text] = (template, n)
    return text


def translate(description: str) -> str:
    """A key description (or a Textual word listed above) in the active language."""
    if description in _NUMBERED:
        template, n = _NUMBERED[description]
        return _(template).format(n=n)
    return _(description) if description else description


def translated_binding(binding: Binding) -> Binding:
    return replace(binding, description=translate(binding.description), tooltip=translate(binding.tooltip))


def translated_active(active: ActiveBinding) -> ActiveBinding:
    return active._replace(binding=translated_binding(active.binding), tooltip=translate(active.tooltip))


def translated_command(command: SystemCommand) -> SystemCommand:
    """One of Textual's command palette entries, in the active language."""
    return command._replace(title=translate(command.title), help=translate(command.help))


class KeysInLanguage:
    """Mixin for a screen whose keys (the footer, the keys panel) show in the active language:
    named first among the screen's bases (`class RoomScreen(KeysInLanguage, Screen[None])`).

    Why a mixin and not a `Screen` subclass: Textual takes a screen's CSS type from its first
    widget base, and a modal screen must keep `ModalScreen` there."""

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        found: dict[str, ActiveBinding] = super().active_bindings  # type: ignore[misc]
        return {key: translated_active(active) for key, active in found.items()}
