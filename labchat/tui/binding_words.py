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

#: Textual's English words on labchat's screens: its key descriptions (the footer and the keys
#: panel), and its entries in the command palette (title, help).
TEXTUAL_WORDS = (
    N_("palette"),
    N_("Focus Next"),
    N_("Focus Previous"),
    N_("Copy selected text"),
    N_("Theme"),
    N_("Change the current theme"),
    N_("Quit"),
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
