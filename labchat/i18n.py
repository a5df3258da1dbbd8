"""The words labchat shows, in the user's language: `_()` and `ngettext()` bound to one active catalogue.

labchat ships English (the source strings themselves) and Bahasa Indonesia, the language its first
class wrote its guide in. Every string a person reads goes through `_()` (or `ngettext()` when it
counts something); `--json` keys, typed command names and log texts meant only for developers do not.

Catalogues are gettext `.po` files in `labchat/locale/<lang>/LC_MESSAGES/labchat.po`, shipped as
package data and read into memory by the small reader below on first use. Why not `.mo` files and
`gettext.translation()`: `.mo` files would have to be compiled at install time (an editable install
or a plain checkout would then show English), and a build step is one more thing to forget. Why not
Babel: it would be a run-time dependency for about sixty lines of parsing; the subset of the `.po`
format we write (msgid, msgid_plural, msgstr, msgstr[n], comments, the fuzzy flag) is small and fixed.
`python -m labchat.i18n_catalog` keeps the catalogue in step with the code, and tests/test_i18n.py
fails when a shown string is missing or untranslated.

argparse's own words (its help headings and errors) come from the same catalogue once a language is
set: see `_route_argparse_words`.

Placeholders are named (`_("Password for {user}: ").format(user=name)`), never f-strings inside
`_()`: the catalogue holds the string before formatting, and a translation may reorder the words.
"""

from __future__ import annotations

import argparse
import ast
import gettext
import locale
import os
import sys
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

#: Languages with a catalogue, and the English name of each for messages about them.
LANGUAGES: dict[str, str] = {"en": "English", "id": "Bahasa Indonesia"}
DEFAULT_LANGUAGE = "en"
DOMAIN = "labchat"
LOCALE_DIR = Path(__file__).with_name("locale")

#: Locale names that mean Indonesian: ISO 639-1 `id`, the retired code `in` (old Java, Android),
#: and the name Windows reports (`Indonesian_Indonesia`).
_INDONESIAN = ("id", "in", "indonesian")


class CatalogueError(Exception):
    """A `.po` file that the reader cannot understand (a broken catalogue ships nowhere: a test reads it)."""


def _unquote(token: str, path: Path, line_no: int) -> str:
    try:
        value = ast.literal_eval(token)
    except (SyntaxError, ValueError) as exc:
        raise CatalogueError(f"{path}:{line_no}: not a quoted string: {token!r}") from exc
    if not isinstance(value, str):
        raise CatalogueError(f"{path}:{line_no}: not a quoted string: {token!r}")
    return value


def read_po(path: Path) -> dict[str, list[str]]:
    """Translations in `path`: msgid (for plural entries, `msgid` + NUL + `msgid_plural`, as in `.mo`
    files) -> the msgstr forms. Fuzzy entries and empty translations are left out, so that they show
    in English rather than wrong; the header is kept under the empty msgid."""
    entries: dict[str, list[str]] = {}
    fields: dict[str, str] = {}
    current: str | None = None
    fuzzy = False

    def finish() -> None:
        nonlocal fuzzy
        if "msgid" in fields:
            key = fields["msgid"]
            if "msgid_plural" in fields:
                key += "\0" + fields["msgid_plural"]
            forms = [fields[k] for k in sorted(f for f in fields if f.startswith("msgstr"))]
            if not fuzzy and any(forms):
                entries[key] = forms
        fields.clear()
        fuzzy = False

    for line_no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                if current is not None and current.startswith("msgstr"):
                    finish()
                    current = None
                fuzzy = True
            continue
        if line.startswith('"'):
            if current is None:
                raise CatalogueError(f"{path}:{line_no}: a continued string outside an entry")
            fields[current] += _unquote(line, path, line_no)
            continue
        keyword, _sep, rest = line.partition(" ")
        if keyword == "msgstr":
            keyword = "msgstr[0]"
        if keyword in ("msgid", "msgctxt") and current is not None and current.startswith("msgstr"):
            finish()
        if keyword not in ("msgid", "msgid_plural", "msgctxt") and not keyword.startswith("msgstr["):
            raise CatalogueError(f"{path}:{line_no}: unknown keyword {keyword!r}")
        current = keyword
        fields[keyword] = _unquote(rest.strip(), path, line_no)
    finish()
    return entries


class Catalogue(gettext.NullTranslations):
    """One language's translations, from its `.po` file. A string missing from it shows in English."""

    def __init__(self, entries: dict[str, list[str]]) -> None:
        super().__init__()
        self.entries = entries
        header = entries.get("", [""])[0]
        self.plural: Callable[[int], int] = lambda n: int(n != 1)
        for line in header.splitlines():
            name, _sep, value = line.partition(":")
            if name.strip().lower() == "plural-forms" and "plural=" in value:
                # gettext's own parser for the C expression in the header (it refuses anything else).
                self.plural = gettext.c2py(value.split("plural=", 1)[1].strip().rstrip(";"))

    def gettext(self, message: str) -> str:
        forms = self.entries.get(message)
        return forms[0] if forms else message

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        forms = self.entries.get(msgid1 + "\0" + msgid2)
        if not forms:
            return msgid1 if n == 1 else msgid2
        index = self.plural(n)
        return forms[index] if 0 <= index < len(forms) and forms[index] else forms[0]


def catalogue_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def catalogue(lang: str) -> gettext.NullTranslations:
    """The catalogue for `lang` (English: the source strings), read once."""
    if lang == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    return Catalogue(read_po(catalogue_path(lang)))


def language_of(name: str | None) -> str | None:
    """The shipped language a locale name means ('id_ID.UTF-8' -> 'id', 'en_GB' -> 'en'), or None
    when `name` is empty or says nothing ('C', 'POSIX'). Any other language is English."""
    if not name:
        return None
    base = name.split(".", 1)[0].split("@", 1)[0].replace("-", "_").split("_", 1)[0].strip().lower()
    if base in ("", "c", "posix"):
        return None
    return "id" if base in _INDONESIAN else DEFAULT_LANGUAGE


def language_from_locale(environ: dict[str, str] | None = None) -> str:
    """The language the user's locale asks for: LANGUAGE (its first entry), LC_ALL, LC_MESSAGES,
    LANG, in gettext's order, then the process's locale (what Windows and macOS apps are given)."""
    env = os.environ if environ is None else environ
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(variable, "")
        if value:
            found = language_of(value.split(":", 1)[0])
            if found is not None:
                return found
    try:
        found = language_of(locale.getlocale()[0])
    except ValueError:  # an unknown locale name in the environment
        found = None
    return found or DEFAULT_LANGUAGE


_active: gettext.NullTranslations = gettext.NullTranslations()
_active_language = DEFAULT_LANGUAGE


def set_language(lang: str | None) -> str:
    """Make `lang` ('en' or 'id'; None: from the locale) the language of every `_()` from now on.

    Returns the language chosen. Raises ValueError for a language labchat does not ship.
    """
    global _active, _active_language
    chosen = language_from_locale() if lang is None else lang
    if chosen not in LANGUAGES:
        raise ValueError(lang)
    _active = catalogue(chosen)
    _active_language = chosen
    _route_argparse_words()
    return chosen


def current_language() -> str:
    return _active_language


def _(message: str) -> str:
    """`message` in the active language."""
    return _active.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of `singular`/`plural` for the count `n`, in the active language."""
    return _active.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a string for the catalogue without translating it yet (a constant read at import time);
    translate it with `_()` where it is shown."""
    return message


def styled_parts(template: str, style: str = "bold", **values: str) -> list[str | tuple[str, str]]:
    """A translated `template` cut at its `{name}` placeholders, each replaced by `(value, style)`:
    the pieces for `rich.text.Text.assemble`. The translation decides where each value goes, and a
    value (a user or server name) is never read as markup."""
    parts: list[str | tuple[str, str]] = []
    rest = template
    while rest:
        start = rest.find("{")
        end = rest.find("}", start)
        name = rest[start + 1 : end] if 0 <= start < end else ""
        if name not in values:
            parts.append(rest)
            break
        if start:
            parts.append(rest[:start])
        parts.append((values[name], style))
        rest = rest[end + 1 :]
    return parts


# ------------------------------------------------------------ phrases several commands show


def name_rule() -> str:
    """`protocol.messages.NAME_RULE`, in the active language (the protocol layer speaks English only;
    tests/test_i18n.py checks that the English here is still that rule)."""
    return _(
        "1-20 characters: ASCII letters (a-z, A-Z), digits, '_' or '-', starting with a letter "
        "(case-insensitive)"
    )


def room_rule() -> str:
    """`protocol.messages.ROOM_RULE` in the active language (checked as `name_rule` is)."""
    return _("1-32 characters: lowercase letters (a-z), digits, '_' or '-', starting with a letter or digit")


# ------------------------------------------------------------ argparse's own words

#: The words argparse itself shows, exactly as CPython's argparse writes them (3.11 to 3.13): the
#: help's headings, the help flag, and the errors a user can cause. Marked here so that the catalogue
#: holds them; `_argparse_gettext` answers argparse from it. (Its errors that only a programmer can
#: cause, such as conflicting option strings, stay English.)
ARGPARSE_WORDS = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("subcommands"),
    N_("show this help message and exit"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("unrecognized arguments: %s"),
    N_("the following arguments are required: %s"),
    N_("one of the arguments %s is required"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("invalid %(type)s value: %(value)r"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("unknown parser %(parser_name)r (choices: %(choices)s)"),
    N_("can't open '%(filename)s': %(error)s"),
    N_("%(prog)s: error: %(message)s\n"),
)

#: argparse's own `_` and `ngettext` (gettext's functions, bound when argparse was imported).
_argparse_originals: tuple[Callable[[str], str], Callable[[str, str, int], str]] | None = None


def _argparse_gettext(message: str) -> str:
    """argparse's `_`: our catalogue's word when the language is not English, else gettext's as before."""
    assert _argparse_originals is not None
    translated = _active.gettext(message) if _active_language != DEFAULT_LANGUAGE else message
    return translated if translated != message else _argparse_originals[0](message)


def _argparse_ngettext(singular: str, plural: str, n: int) -> str:
    assert _argparse_originals is not None
    translated = isinstance(_active, Catalogue) and singular + "\0" + plural in _active.entries
    if translated and _active_language != DEFAULT_LANGUAGE:
        return _active.ngettext(singular, plural, n)
    return _argparse_originals[1](singular, plural, n)


def _route_argparse_words() -> None:
    """Make argparse's headings and errors speak the active language.

    argparse translates its words with gettext, through the module globals `_` and `ngettext` it
    binds at import (`from gettext import gettext as _, ngettext`) and looks up at each call. The
    gettext way to feed it (a compiled `.mo` file for the process-wide default domain) would need a
    build step and would change that domain for every library in the process; instead those two
    globals are pointed at functions that answer from our catalogue and hand any other word to
    gettext as before. English output is therefore unchanged. tests/test_i18n_argparse.py checks that
    argparse still reads these globals, so a Python that stops doing so fails a test rather than
    silently showing English.
    """
    global _argparse_originals
    if _argparse_originals is None:
        _argparse_originals = (argparse._, argparse.ngettext)  # type: ignore[attr-defined]
        argparse._ = _argparse_gettext  # type: ignore[attr-defined]
        argparse.ngettext = _argparse_ngettext  # type: ignore[attr-defined]


# ------------------------------------------------------------ the `--lang` flag of every command


def add_lang_argument(parser: argparse.ArgumentParser) -> None:
    """Give a command's parser `--lang en|id`, worded the same everywhere. `choose_language` has
    already acted on it (before the parser existed); argparse only documents and accepts it."""
    parser.add_argument(
        "--lang",
        metavar="LANG",
        default=None,
        help=_("language of the messages: en (English) or id (Bahasa Indonesia); default: from the locale"),
    )


def lang_from_argv(argv: Iterable[str]) -> str | None:
    """The value of `--lang` in `argv` (the last one wins, as argparse does), read before the full
    parser is built so that its help is already in that language. None when absent."""
    found: str | None = None
    args = list(argv)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--lang="):
            found = arg.split("=", 1)[1]
    return found


def choose_language(prog: str, argv: Iterable[str]) -> str:
    """Set the language from `argv`'s `--lang` (or the locale) for command `prog`.

    A value labchat does not ship is one line on stderr and exit 2, as every bad flag is.
    """
    lang = lang_from_argv(argv)
    try:
        return set_language(lang)
    except ValueError:
        set_language(None)
        print(
            _("{prog}: invalid --lang {value!r}: use en (English) or id (Bahasa Indonesia)").format(
                prog=prog, value=lang
            ),
            file=sys.stderr,
        )
        raise SystemExit(2) from None


__all__ = [
    "ARGPARSE_WORDS",
    "LANGUAGES",
    "N_",
    "Catalogue",
    "CatalogueError",
    "_",
    "add_lang_argument",
    "choose_language",
    "current_language",
    "language_from_locale",
    "language_of",
    "name_rule",
    "ngettext",
    "read_po",
    "room_rule",
    "set_language",
    "styled_parts",
]
